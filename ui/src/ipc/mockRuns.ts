// The mock's runs seen as the app shows them, and small helpers of the mock: what a started
// run's steps are, how form text becomes inputs, segments opened and closed, a run's header and
// a step's row, and a plausible run behind a generated list row.
import type { CostLine } from "../generated/CostLine";
import type { CostOverview } from "../generated/CostOverview";
import type { NamedCost } from "../generated/NamedCost";
import type { ReplayVerdict } from "../generated/ReplayVerdict";
import type { JsonValue } from "../generated/serde_json/JsonValue";
import type { RunHead } from "../generated/RunHead";
import type { RunListItem } from "../generated/RunListItem";
import type { StepRow } from "../generated/StepRow";
import type { WorkflowInfo } from "../generated/WorkflowInfo";
import type { AppError } from "../generated/AppError";
import type { ErrorCode } from "../generated/ErrorCode";
import { addCost, buildRun, emptyCost, type BuiltRun, type StepView } from "./fixtureBuilder";

export const STEP_TEMPLATES: Record<string, Array<[string, string]>> = {
  "add-factorial": [["read", "read_file"], ["write_code", "prompt"], ["edit", "edit_file"], ["test", "run_command"], ["summary", "set"], ["sign_off", "approval"]],
  "fix-flaky-test": [["locate", "read_file"], ["diagnose", "prompt"], ["patch_test", "edit_file"], ["run_tests", "run_command"], ["report", "set"]],
  hello: [["greet", "set"], ["write", "edit_file"]],
  "llm-factorial": [["read", "read_file"], ["write_code", "prompt"], ["edit", "edit_file"], ["test", "run_command"], ["sign_off", "approval"]],
  "llm-triage": [["issues", "read_file"], ["classify", "prompt"], ["report", "set"]],
  "llm-plan": [["plan", "plan"], ["done", "set"]],
};

/** The error the app's commands answer with. */
export function appError(code: ErrorCode, message: string): AppError {
  return { code, message };
}

/** A form's inputs checked against the workflow's declared ones, as the engine checks them. */
export function checkedInputs(info: WorkflowInfo, inputs: Record<string, string>): Record<string, JsonValue> {
  const values: Record<string, JsonValue> = {};
  for (const name of Object.keys(inputs))
    if (!info.inputs.some((i) => i.name === name))
      throw appError("invalid", `unknown input \`${name}\` (declared: ${info.inputs.map((i) => i.name).join(", ") || "(none)"})`);
  for (const input of info.inputs) {
    const text = inputs[input.name];
    if (text === undefined) {
      if (input.default === null) throw appError("invalid", `missing input \`${input.name}\``);
      values[input.name] = input.default;
      continue;
    }
    const parsed = parseInput(input.kind, text);
    if (parsed === undefined) throw appError("invalid", `input \`${input.name}\` must be ${input.kind}, got \`${text}\``);
    values[input.name] = parsed;
  }
  return values;
}

/** The events a person's decision on a step's proposal records. */
export function decisionEvents(
  step: string,
  proposalHash: string,
  approvedHash: string,
  by: string,
  d: { approved: boolean; comment?: string | null; reason?: string },
): Array<{ kind: string; step: string | null; data: JsonValue }> {
  return d.approved
    ? [
        { kind: "ApprovalGranted", step, data: { step, by, mode: { kind: "manual" }, proposal_hash: proposalHash, approved_hash: approvedHash, comment: d.comment ?? null } },
        { kind: "StepSucceeded", step, data: { step } },
      ]
    : [
        { kind: "ApprovalRejected", step, data: { step, by, proposal_hash: proposalHash, reason: d.reason ?? "" } },
        { kind: "StepRejected", step, data: { step, reason: d.reason ?? "" } },
      ];
}

/** Reads a form's text as the engine does (`--input k=v`). */
export function parseInput(kind: string, text: string): JsonValue | undefined {
  const t = text.trim();
  switch (kind) {
    case "string":
      return text;
    case "integer":
      return /^[+-]?\d+$/.test(t) ? Number(t) : undefined;
    case "number":
      return t !== "" && Number.isFinite(Number(t)) ? Number(t) : undefined;
    case "boolean":
      return ["true", "yes", "1"].includes(t) ? true : ["false", "no", "0"].includes(t) ? false : undefined;
    case "list":
    case "object": {
      try {
        const v = JSON.parse(t) as JsonValue;
        const ok = kind === "list" ? Array.isArray(v) : typeof v === "object" && v !== null && !Array.isArray(v);
        return ok ? v : undefined;
      } catch {
        return undefined;
      }
    }
    default:
      return text;
  }
}

export function closeSegments(step: StepView, at: number): void {
  for (const s of step.segments) if (s.end_ms === null) s.end_ms = Math.max(at, s.start_ms);
}

export function openSegment(step: StepView, kind: "executing" | "waiting" | "outcome_unknown", at: number): void {
  closeSegments(step, at);
  step.segments.push({ kind, start_ms: at, end_ms: null });
}

/** What the Run view's header shows of a run. */
export function head(r: BuiltRun): RunHead {
  const d = r.detail;
  return {
    run: r.item,
    note: d.note,
    pending: d.pending,
    unknown: d.steps.filter((s) => s.status === "outcome_unknown").map((s) => s.id),
    budget: d.budget,
    cost: d.cost.total,
    last_seq: d.last_seq,
    decisions: d.decisions.length,
    steps: d.steps.length,
  };
}

export function stepRow(s: StepView, index: number): StepRow {
  return { index, id: s.id, kind: s.kind, status: s.status, attempt: s.attempt, timing: s.timing, segments: s.segments, cost: s.cost, child_run: s.child_run ?? null, ...(s.compensates ? { compensates: s.compensates } : {}) };
}

/** A plausible small run behind a generated list row. */
export function detailFor(row: RunListItem): BuiltRun {
  const finished = ["succeeded", "failed", "cancelled"].includes(row.status);
  const built = buildRun(
    {
      id: row.run_id,
      workflow: row.workflow,
      workflowPath: row.workflow_path,
      workspace: row.workspace,
      status: row.status,
      trigger: row.trigger,
      startedBy: "dana",
      startedAt: row.started_at_ms,
      inputs: {},
      steps: [
        { id: "read", kind: "read_file", status: "succeeded", at: 0, phases: [["exec", 40]] },
        {
          id: "work",
          kind: "run_command",
          needs: ["read"],
          status: finished ? (row.status === "succeeded" ? "succeeded" : row.status === "failed" ? "failed" : "cancelled") : "running",
          phases: [["exec", finished ? Math.max(50, row.updated_at_ms - row.started_at_ms - 100) : null]],
          error: row.status === "failed" ? "command exited with status 2" : undefined,
        },
      ],
    },
    Math.max(Date.now(), row.updated_at_ms),
  );
  built.item.cost_micro_usd = row.cost_micro_usd;
  built.item.held_by = row.held_by;
  built.item.updated_at_ms = row.updated_at_ms;
  return built;
}

/** What replaying a mock run says: a match against what was recorded, a divergence at the
 * first command for two workflows whose files "changed". */
export function replayOf(r: BuiltRun, against: "recorded" | "current"): ReplayVerdict {
    const decisions = r.events.filter((e) => e.kind.startsWith("Approval") || e.kind.startsWith("Step")).length;
    const changed = against === "current" && (r.item.workflow === "add-factorial" || r.item.workflow === "refactor-cli");
    if (!changed) {
      return {
        matches: true,
        against: against === "recorded" ? "the workflow recorded when the run started" : r.item.workflow_path,
        events: r.events.length,
        decisions,
        diverged_at: null,
        expected: null,
        recorded: null,
        message: `all ${decisions} decisions match over ${r.events.length} events; nothing was performed`,
      };
    }
    const at = r.events.find((e) => e.kind === "OperationStarted" && e.step === "test") ?? r.events[Math.min(2, r.events.length - 1)];
    const recorded = at.data as JsonValue;
    const expected: JsonValue = {
      type: "OperationStarted",
      step: at.step ?? "test",
      request: {
        kind: "run_command",
        command: { argv: ["python3", "-m", "pytest", "-q", "--maxfail=1"] },
        cwd: ".",
        env: {},
        pass_env: ["PATH"],
        timeout_ms: 120000,
        max_output_bytes: 1048576,
      },
    };
    return {
      matches: false,
      against: r.item.workflow_path,
      events: r.events.length,
      decisions: 0,
      diverged_at: at.seq,
      expected,
      recorded: { type: at.kind, ...(recorded as Record<string, JsonValue>) },
      message: `diverged at event ${at.seq}`,
    };
}

/** Cost across the mock's runs, as the app sums it. */
export function costOf(runs: BuiltRun[], run?: string): CostOverview {
    const total = emptyCost();
    const byModel = new Map<string, CostLine>();
    const byDay = new Map<string, CostLine>();
    const byRun: CostOverview["by_run"] = [];
    let steps: { id: string; list: NamedCost[] } | null = null;
    const newestFirst = [...runs].sort((a, b) => b.item.started_at_ms - a.item.started_at_ms);
    for (const r of newestFirst) {
      const report = r.detail.cost;
      if (report.total.calls === 0) continue;
      addCost(total, report.total);
      for (const [model, line] of Object.entries(report.by_model)) {
        if (!byModel.has(model)) byModel.set(model, emptyCost());
        addCost(byModel.get(model)!, line!);
      }
      for (const [day, line] of Object.entries(report.by_day)) {
        if (!byDay.has(day)) byDay.set(day, emptyCost());
        addCost(byDay.get(day)!, line!);
      }
      const wanted = run ? r.item.run_id === run : steps === null;
      if (wanted) steps = { id: r.item.run_id, list: Object.entries(report.by_step).map(([name, cost]) => ({ name, cost: cost! })) };
      byRun.push({ run_id: r.item.run_id, workflow: r.item.workflow, started_at_ms: r.item.started_at_ms, cost: report.total });
    }
    const named = (m: Map<string, CostLine>) => [...m.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, cost]) => ({ name, cost }));
    const found = steps as { id: string; list: NamedCost[] } | null;
    return {
      total,
      by_run: byRun,
      by_model: named(byModel),
      by_day: named(byDay),
      run_id: found?.id ?? run ?? null,
      by_step: found?.list ?? [],
    };
}
