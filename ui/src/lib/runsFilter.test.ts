import { describe, expect, it } from "vitest";
import type { RunListItem } from "../generated/RunListItem";
import { countByStatus, filterRuns, runDuration, sortRuns } from "./runsFilter";

const run = (run_id: string, workflow: string, status: string, started: number): RunListItem => ({
  run_id,
  workflow,
  workflow_path: `/w/workflows/${workflow}.yaml`,
  workspace: "/w",
  status,
  trigger: "cli (dana)",
  started_at_ms: started,
  updated_at_ms: started + 1000,
  cost_micro_usd: 0,
  held_by: null,
  parent: null,
  is_child: false,
});

const RUNS = [
  run("7c1e2a9b-0000", "add-factorial", "awaiting_approval", 300),
  run("b2c4e6f8-0000", "refactor-cli", "failed", 100),
  run("3f9d7b10-0000", "docs-refresh", "running", 200),
  run("aaaa0000-0000", "add-factorial", "succeeded", 50),
];

describe("filterRuns", () => {
  it("keeps one status", () => {
    expect(filterRuns(RUNS, { status: "failed", query: "" }).map((r) => r.workflow)).toEqual(["refactor-cli"]);
    expect(filterRuns(RUNS, { status: "all", query: "" })).toHaveLength(4);
  });

  it("searches workflow names and run ids, ignoring case", () => {
    expect(filterRuns(RUNS, { status: "all", query: "FACTORIAL" }).map((r) => r.run_id)).toEqual(["7c1e2a9b-0000", "aaaa0000-0000"]);
    expect(filterRuns(RUNS, { status: "all", query: "b2c4" }).map((r) => r.workflow)).toEqual(["refactor-cli"]);
  });

  it("needs every word to match, together with the status", () => {
    expect(filterRuns(RUNS, { status: "succeeded", query: "add factorial" }).map((r) => r.run_id)).toEqual(["aaaa0000-0000"]);
    expect(filterRuns(RUNS, { status: "all", query: "add docs" })).toHaveLength(0);
  });
});

describe("sortRuns and counts", () => {
  it("lists the newest first and counts each status", () => {
    expect(sortRuns(RUNS).map((r) => r.workflow)).toEqual(["add-factorial", "docs-refresh", "refactor-cli", "add-factorial"]);
    expect(Object.fromEntries(countByStatus(RUNS))).toEqual({ awaiting_approval: 1, failed: 1, running: 1, succeeded: 1 });
  });
});

describe("runDuration", () => {
  it("runs to now while going, to the last update once over", () => {
    expect(runDuration(RUNS[2], 10_000)).toBe(9_800);
    expect(runDuration(RUNS[1], 10_000)).toBe(1_000);
  });
});

describe("runDuration", () => {
  it("counts a run waiting for a person up to now, and a finished one to its end", () => {
    const waiting = { ...RUNS[0], status: "awaiting_approval", started_at_ms: 1_000, updated_at_ms: 1_004 };
    expect(runDuration(waiting, 181_000)).toBe(180_000);
    const done = { ...waiting, status: "succeeded" };
    expect(runDuration(done, 181_000)).toBe(4);
  });
});
