import { describe, expect, it } from "vitest";
import type { LiveSignal } from "../generated/LiveSignal";
import type { RunFeedItem } from "../generated/RunFeedItem";
import { assignLanes, spanOf } from "../lib/lanes";
import { createFixtures, generateBigRun } from "./fixtures";
import { MockBackend } from "./mock";

const NOW = Date.UTC(2026, 10, 26, 9, 0, 0);
const flush = () => new Promise((r) => setTimeout(r, 0));

describe("MockBackend", () => {
  it("approves: the question goes, the run moves on, and signals and one update go out", async () => {
    const mock = new MockBackend(createFixtures(NOW));
    const signals: LiveSignal[] = [];
    const feed: RunFeedItem[] = [];
    await mock.subscribeLive((s) => signals.push(s));
    const [item] = (await mock.listApprovals()).items.filter((a) => a.step === "edit" && a.workflow === "add-factorial");
    const before = await mock.getRun(item.run_id);
    await mock.followRun(item.run_id, before.head.last_seq, (i) => feed.push(i));
    await mock.approveStep({ run: item.run_id, step: "edit", proposalHash: item.proposal_hash, comment: "ok" });
    await flush();
    expect((await mock.listApprovals()).items.some((a) => a.run_id === item.run_id && a.step === "edit")).toBe(false);
    const after = await mock.getRun(item.run_id);
    const status = (id: string) => after.bars.find(([s]) => s === id)?.[1];
    expect(status("edit")).toBe("succeeded");
    expect(status("test")).toBe("running");
    expect((await mock.getDecisions(item.run_id)).at(-1)).toMatchObject({ step: "edit", approved: true, by: "dana", comment: "ok" });
    expect(signals).toContainEqual({ kind: "approvals" });
    expect(signals).toContainEqual({ kind: "run", run_id: item.run_id });
    const updates = feed.flatMap((f) => (f.kind === "update" ? [f.update] : []));
    expect(updates).toHaveLength(1);
    expect(updates[0].changed.map((c) => c.row.id).sort()).toEqual(["edit", "test"]);
    expect(updates[0].head.last_seq).toBe(after.head.last_seq);
    expect(after.head.last_seq).toBeGreaterThan(before.head.last_seq);
  });

  it("pages the runs list and the steps table, and reads a step in full", async () => {
    const mock = new MockBackend(createFixtures(NOW));
    const page = await mock.listRuns({ status: "failed", query: "", offset: 0, limit: 2 });
    expect(page.runs).toHaveLength(2);
    expect(page.total).toBeGreaterThan(2);
    expect(page.runs.every((r) => r.status === "failed")).toBe(true);
    const [run] = (await mock.listRuns({ status: "all", query: "add-factorial", offset: 0, limit: 1 })).runs;
    const steps = await mock.getSteps(run.run_id, "", 1, 2);
    expect(steps.rows.map((r) => r.index)).toEqual([1, 2]);
    const step = await mock.getStep(run.run_id, steps.rows[0].id);
    expect(step.row.id).toBe(steps.rows[0].id);
    expect(step.operations.length).toBeGreaterThan(0);
  });

  it("refuses a decision on a proposal that is no longer the one waiting", async () => {
    const mock = new MockBackend(createFixtures(NOW));
    const [item] = (await mock.listApprovals()).items;
    await expect(mock.approveStep({ run: item.run_id, step: item.step, proposalHash: "sha256:old" })).rejects.toMatchObject({ code: "refused" });
    await expect(mock.rejectStep({ run: item.run_id, step: item.step, proposalHash: item.proposal_hash, reason: "  " })).rejects.toMatchObject({ code: "invalid" });
  });

  it("checks a started run's inputs as the engine does", async () => {
    const fixtures = createFixtures(NOW);
    const mock = new MockBackend(fixtures);
    const wf = fixtures.workflows.find((w) => w.name === "add-factorial")!;
    await expect(mock.startRun(wf.path, { max_attempts: "two" })).rejects.toMatchObject({ code: "invalid" });
    await expect(mock.startRun(wf.path, { colour: "red" })).rejects.toMatchObject({ code: "invalid" });
    const broken = fixtures.workflows.find((w) => w.errors.length)!;
    await expect(mock.startRun(broken.path, {})).rejects.toMatchObject({ code: "invalid" });
    const id = await mock.startRun(wf.path, { max_attempts: "3" });
    expect((await mock.getRun(id)).inputs).toMatchObject({ max_attempts: 3, run_tests: true, module: "src/utils.py" });
  });
});

describe("the fixtures", () => {
  it("agree with themselves: run cost is the sum of its steps, pending approvals match waiting steps", () => {
    for (const r of createFixtures(NOW).runs) {
      const steps = r.detail.steps.reduce((n, s) => n + s.cost.micro_usd, 0);
      expect(r.item.cost_micro_usd).toBe(steps);
      const waiting = r.detail.steps.filter((s) => s.status === "awaiting_approval").map((s) => s.id);
      expect(r.approvals.map((a) => a.step).sort()).toEqual(waiting.sort());
      expect(r.events.map((e) => e.seq)).toEqual(r.events.map((_, i) => i + 1));
    }
  });

  it("generate a 10,000-step run that packs onto a few lanes", () => {
    const big = generateBigRun(10_000, NOW);
    expect(big.detail.steps).toHaveLength(10_000);
    const { lanes, placed } = assignLanes(big.detail.steps, (s) => spanOf(s.segments, NOW));
    expect(placed.length).toBe(10_000);
    expect(lanes.length).toBeLessThanOrEqual(12);
    expect(big.events.length).toBeGreaterThan(30_000);
  });
});
