import { describe, expect, it } from "vitest";
import type { RunOverview } from "../generated/RunOverview";
import type { RunUpdate } from "../generated/RunUpdate";
import type { StepRow } from "../generated/StepRow";
import { applyUpdate, fromOverview, interestingStep, waitedMs } from "./runView";

const head = (over: Partial<RunOverview["head"]> = {}): RunOverview["head"] => ({
  run: {
    run_id: "r1",
    workflow: "w",
    workflow_path: "w.yaml",
    workspace: "/ws",
    status: "running",
    trigger: "cli",
    started_at_ms: 0,
    updated_at_ms: 0,
    cost_micro_usd: 0,
    held_by: "pid 1",
    parent: null,
    is_child: false,
  },
  note: null,
  pending: [],
  unknown: [],
  budget: null,
  cost: { calls: 0, input_tokens: 0, output_tokens: 0, micro_usd: 0, after_crash: 0, simulated: 0 },
  last_seq: 10,
  decisions: 0,
  steps: 3,
  ...over,
});

const overview: RunOverview = {
  head: head(),
  inputs: {},
  started_by: "ann",
  host: "alpha",
  elsewhere: true,
  bars: [
    ["a", "succeeded", [["executing", 0, 10]]],
    ["b", "running", [["executing", 10, null]]],
    ["c", "pending", []],
  ],
  compensations: [["c", "a"]],
};

const row = (index: number, id: string, over: Partial<StepRow> = {}): StepRow => ({
  index,
  id,
  kind: "run_command",
  status: "running",
  attempt: 1,
  timing: { total_ms: 0, waiting_ms: 0, executing_ms: 0, waiting_now: false },
  segments: [],
  cost: { calls: 0, input_tokens: 0, output_tokens: 0, micro_usd: 0, after_crash: 0, simulated: 0 },
  child_run: null,
  ...over,
});

describe("following a run", () => {
  it("marks the compensations' bars with the step each undoes", () => {
    const data = fromOverview(overview);
    expect(data.bars.map((b) => b.compensates)).toEqual([undefined, undefined, "a"]);
  });

  it("reads the bars' segments as times", () => {
    const data = fromOverview({ ...overview, head: head({ run: { ...head().run, started_at_ms: 5_000 } }) });
    expect(data.bars[1].segments).toEqual([{ kind: "executing", start_ms: 5_010, end_ms: null }]);
  });

  it("applies an update to the bars it names and keeps the others as they were", () => {
    const data = fromOverview(overview);
    const update: RunUpdate = {
      head: head({ last_seq: 14, unknown: ["b"] }),
      changed: [
        {
          row: row(1, "b", {
            status: "outcome_unknown",
            segments: [
              { kind: "executing", start_ms: 10, end_ms: 20 },
              { kind: "outcome_unknown", start_ms: 20, end_ms: null },
            ],
          }),
        },
      ],
      reshaped: false,
      first_at_ms: 20,
    };
    const applied = applyUpdate(data, update);
    expect(applied.reshaped).toBe(false);
    expect(applied.data.head.last_seq).toBe(14);
    expect(applied.data.bars[1].status).toBe("outcome_unknown");
    expect(applied.data.bars[1].segments.map((s) => s.kind)).toEqual(["executing", "outcome_unknown"]);
    expect(applied.data.bars[0]).toBe(data.bars[0]);
    expect(data.bars[1].status).toBe("running");
    expect(applied.rows.get(1)?.id).toBe("b");
  });

  it("asks to read the run again when its steps changed in number", () => {
    const data = fromOverview(overview);
    const applied = applyUpdate(data, { head: head({ steps: 5 }), changed: [], reshaped: false, first_at_ms: 0 });
    expect(applied.reshaped).toBe(true);
  });

  it("shows first a step that waits for a person, an unknown outcome included", () => {
    const data = fromOverview(overview);
    expect(interestingStep(data.bars)).toBe("b");
    const unknown = data.bars.map((b) => (b.id === "c" ? { ...b, status: "outcome_unknown" as const } : b));
    expect(interestingStep(unknown)).toBe("c");
  });

  it("counts an unknown outcome as waiting for a person", () => {
    expect(
      waitedMs(
        [
          { kind: "executing", start_ms: 0, end_ms: 10 },
          { kind: "outcome_unknown", start_ms: 10, end_ms: null },
        ],
        110,
      ),
    ).toBe(100);
  });
});
