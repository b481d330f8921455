// Builds coherent fixture runs from a compact description: the steps' segments, operations,
// timings, decisions, costs, pending approvals and the raw event log all agree, as they do
// when the Rust side derives them from one log.
import type { ApprovalItem } from "../generated/ApprovalItem";
import type { Budget } from "../generated/Budget";
import type { ConversationTurn } from "../generated/ConversationTurn";
import type { CostLine } from "../generated/CostLine";
import type { DecisionView } from "../generated/DecisionView";
import type { EventView } from "../generated/EventView";
import type { FileChangeView } from "../generated/FileChangeView";
import type { OperationView } from "../generated/OperationView";
import type { ParentLink } from "../generated/ParentLink";
import type { Proposal } from "../generated/Proposal";
import type { WhoMayAnswer } from "../generated/WhoMayAnswer";
import type { RunListItem } from "../generated/RunListItem";
import type { Segment } from "../generated/Segment";
import type { JsonValue } from "../generated/serde_json/JsonValue";
import type { StepStatus } from "../generated/StepStatus";
import type { StepTiming } from "../generated/StepTiming";

export interface OpSpec {
  request: JsonValue;
  result?: JsonValue;
  error?: JsonValue;
}

export interface CostSpec {
  model: string;
  input: number;
  output: number;
  micro: number;
  simulated?: boolean;
  afterCrash?: boolean;
}

export interface DecisionSpec {
  approved: boolean;
  by: string;
  /** Decided by this policy rule (else by hand). */
  rule?: string;
  comment?: string;
  reason?: string;
  edited?: boolean;
}

/** `exec`: executing; `wait`: waiting for a person. A `null` length is still going. */
export type Phase = ["exec" | "wait", number | null];

export interface StepSpec {
  id: string;
  kind: string;
  needs?: string[];
  status: StepStatus;
  /** When it starts, in ms after the run started (default: when its needs have ended). */
  at?: number;
  phases?: Phase[];
  /** Operations, one per executing phase from the last one backwards. */
  ops?: OpSpec[];
  cost?: CostSpec;
  output?: JsonValue;
  error?: string;
  reason?: string;
  attempt?: number;
  decision?: DecisionSpec;
  /** One decision per ended wait, in order (else `decision` for each). */
  decisions?: DecisionSpec[];
  /** An agent's turns; their `op` and calls' `ops` index `ops` (made seqs when built). */
  conversation?: ConversationTurn[];
  /** What its operations changed in the workspace's files. */
  fileChanges?: FileChangeView[];
  /** For a step waiting for approval: what it asks. */
  proposal?: Proposal;
  approvalReason?: string;
  /** A `workflow` step: the child run it started. */
  childRun?: string;
  /** A compensation: the step it undoes. */
  compensates?: string;
}

export interface RunSpec {
  id: string;
  workflow: string;
  workflowPath: string;
  workspace: string;
  status: string;
  trigger: string;
  /** What fired, for a run a trigger started (`modify src/lib.rs`). */
  cause?: string;
  startedBy: string;
  startedAt: number;
  inputs: JsonValue;
  budget?: Budget | null;
  heldBy?: string | null;
  steps: StepSpec[];
  note?: string | null;
  /** A child run: the run and step that started it. */
  parent?: ParentLink;
  /** Who may answer its questions (`approvers`, `self_approval: false`); anyone when absent. */
  whoMayAnswer?: WhoMayAnswer;
}

/** A run's cost, whole and broken down (what the Rust side sums from the log). */
export interface CostReport {
  total: CostLine;
  by_step: Record<string, CostLine>;
  by_model: Record<string, CostLine>;
  by_day: Record<string, CostLine>;
}

/** A step as the mock keeps it: all that the Rust side folds from the log for it. */
export interface StepView {
  id: string;
  kind: string;
  status: StepStatus;
  attempt: number;
  needs: string[];
  output: JsonValue | null;
  error: string | null;
  reason: string | null;
  timing: StepTiming;
  segments: Segment[];
  operations: OperationView[];
  cost: CostLine;
  conversation?: ConversationTurn[];
  file_changes?: FileChangeView[];
  child_run?: string | null;
  compensates?: string;
}

/** A run as the mock keeps it. */
export interface RunDetail {
  run: RunListItem;
  inputs: JsonValue;
  started_by: string;
  /** The machine it belongs to, and whether that is not the app's. */
  host?: string | null;
  elsewhere?: boolean;
  steps: StepView[];
  decisions: DecisionView[];
  pending: ApprovalItem[];
  budget: Budget | null;
  cost: CostReport;
  last_seq: number;
  note: string | null;
}

export interface BuiltRun {
  item: RunListItem;
  detail: RunDetail;
  events: EventView[];
  approvals: ApprovalItem[];
  /** A child run: the run and step that started it. */
  parent?: ParentLink | null;
}

/** A stand-in for a content hash: stable, 64 hex digits, not cryptographic. */
export function fakeHash(text: string): string {
  let out = "";
  for (let k = 0; k < 8; k++) {
    let h = (0x811c9dc5 ^ Math.imul(k + 1, 0x9e3779b1)) >>> 0;
    for (let i = 0; i < text.length; i++) {
      h ^= text.charCodeAt(i);
      h = Math.imul(h, 0x01000193);
    }
    out += (h >>> 0).toString(16).padStart(8, "0");
  }
  return `sha256:${out}`;
}

export function proposalHash(p: Proposal): string {
  return fakeHash(JSON.stringify(p));
}

export const emptyCost = (): CostLine => ({
  calls: 0,
  input_tokens: 0,
  output_tokens: 0,
  micro_usd: 0,
  after_crash: 0,
  simulated: 0,
});

export function addCost(sum: CostLine, line: CostLine): void {
  sum.calls += line.calls;
  sum.input_tokens += line.input_tokens;
  sum.output_tokens += line.output_tokens;
  sum.micro_usd += line.micro_usd;
  sum.after_crash += line.after_crash;
  sum.simulated += line.simulated;
}

/** `2026-11-24`, the UTC day the Rust side groups by. */
export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

interface Draft {
  at: number;
  order: number;
  kind: string;
  step: string | null;
  data: Record<string, JsonValue>;
  /** Filled in with the seq of this (OperationStarted) draft once seqs are given. */
  opOf?: Draft;
  seq?: number;
}

const END_EVENT: Partial<Record<StepStatus, string>> = {
  succeeded: "StepSucceeded",
  failed: "StepFailed",
  rejected: "StepRejected",
  cancelled: "StepCancelled",
};

export function buildRun(spec: RunSpec, now: number): BuiltRun {
  const t0 = spec.startedAt;
  const drafts: Draft[] = [];
  let order = 0;
  const push = (d: Omit<Draft, "order">): Draft => {
    const draft = { ...d, order: order++ };
    drafts.push(draft);
    return draft;
  };
  push({ at: t0, kind: "RunStarted", step: null, data: { workflow: spec.workflow, inputs: spec.inputs, started_by: spec.startedBy } });

  const ends = new Map<string, number>();
  const steps: StepView[] = [];
  const decisions: Array<{ draft: Draft; view: Omit<DecisionView, "seq"> }> = [];
  const approvals: Array<{ draft: Draft; item: Omit<ApprovalItem, "requested_seq"> }> = [];
  const opDrafts: Array<{ start: Draft; end: Draft | null; view: Omit<OperationView, "seq"> }[]> = [];
  const report: CostReport = { total: emptyCost(), by_step: {}, by_model: {}, by_day: {} };

  for (const s of spec.steps) {
    const attempt = s.attempt ?? 1;
    const needsEnd = Math.max(t0, ...(s.needs ?? []).map((n) => ends.get(n) ?? t0));
    const start = s.at !== undefined ? t0 + s.at : needsEnd + 40;
    const phases: Phase[] = s.phases ?? (s.status === "pending" || s.status === "skipped" ? [] : [["exec", 800]]);
    const segments: Segment[] = [];
    const stepOps: { start: Draft; end: Draft | null; view: Omit<OperationView, "seq"> }[] = [];
    let t = start;
    let waiting = 0;
    let executing = 0;
    let waitingNow = false;
    let waitsDecided = 0;
    const execPhases = phases.map((p, i) => (p[0] === "exec" ? i : -1)).filter((i) => i >= 0);
    const ops = s.ops ?? [];
    // Operations go into the last executing phases, in order.
    const opAt = new Map<number, OpSpec>();
    const firstOpPhase = execPhases.length - ops.length;
    ops.forEach((op, i) => {
      const phase = execPhases[firstOpPhase + i];
      if (phase !== undefined) opAt.set(phase, op);
    });
    if (phases.length) push({ at: start, kind: "StepStarted", step: s.id, data: { step: s.id, attempt } });
    phases.forEach(([kind, length], i) => {
      const end = length === null ? null : t + length;
      segments.push({ kind: kind === "exec" ? "executing" : "waiting", start_ms: t, end_ms: end });
      const lasted = (end ?? now) - t;
      if (kind === "wait") {
        waiting += lasted;
        if (end === null) waitingNow = true;
        const proposal = s.proposal ?? ({ kind: "gate", message: `step ${s.id}` } as Proposal);
        const hash = proposalHash(proposal);
        const reason = s.approvalReason ?? `${s.kind} needs approval by default`;
        const asked = push({ at: t, kind: "ApprovalRequested", step: s.id, data: { step: s.id, attempt, proposal_hash: hash, reason } });
        if (end === null) {
          approvals.push({
            draft: asked,
            item: {
              run_id: spec.id,
              workflow: spec.workflow,
              workspace: spec.workspace,
              step: s.id,
              attempt,
              proposal,
              proposal_hash: hash,
              reason,
              requested_at_ms: t,
              parent: spec.parent ?? null,
              who_may_answer: spec.whoMayAnswer ?? {},
            },
          });
        } else if (s.decisions?.[waitsDecided] ?? s.decision) {
          const d = (s.decisions?.[waitsDecided++] ?? s.decision)!;
          const approvedHash = d.edited ? fakeHash(`${hash}:edited`) : hash;
          const decided = push({
            at: end,
            kind: d.approved ? "ApprovalGranted" : "ApprovalRejected",
            step: s.id,
            data: d.approved
              ? { step: s.id, by: d.by, mode: d.rule ? { kind: "rule", rule: d.rule } : { kind: "manual" }, proposal_hash: hash, approved_hash: approvedHash, comment: d.comment ?? null }
              : { step: s.id, by: d.by, proposal_hash: hash, reason: d.reason ?? "" },
          });
          decisions.push({
            draft: decided,
            view: {
              at_ms: end,
              step: s.id,
              approved: d.approved,
              by: d.by,
              mode: d.approved ? (d.rule ? { kind: "rule", rule: d.rule } : { kind: "manual" }) : null,
              proposal_hash: hash,
              approved_hash: d.approved ? approvedHash : null,
              edited: d.approved && !!d.edited,
              comment: d.approved ? (d.comment ?? null) : null,
              reason: d.approved ? null : (d.reason ?? ""),
            },
          });
        }
      } else {
        executing += lasted;
        const op = opAt.get(i);
        if (op) {
          const started = push({ at: t, kind: "OperationStarted", step: s.id, data: { step: s.id, request: op.request } });
          let ended: Draft | null = null;
          if (end !== null && (op.result !== undefined || op.error !== undefined)) {
            ended = push({
              at: end,
              kind: op.error !== undefined ? "OperationFailed" : "OperationSucceeded",
              step: s.id,
              data: op.error !== undefined ? { error: op.error } : { result: op.result ?? null },
              opOf: started,
            });
          }
          stepOps.push({
            start: started,
            end: ended,
            view: {
              request: op.request,
              result: ended && op.result !== undefined ? op.result : null,
              error: ended && op.error !== undefined ? op.error : null,
              outcome_unknown: false,
              resolved: null,
              started_at_ms: t,
              ended_at_ms: ended ? end : null,
            },
          });
          if (ended && s.cost) {
            push({
              at: end!,
              kind: "CostRecorded",
              step: s.id,
              data: { step: s.id, model: s.cost.model, input_tokens: s.cost.input, output_tokens: s.cost.output, micro_usd: s.cost.micro },
            });
          }
        }
      }
      if (end !== null) t = end;
    });
    const open = phases.length > 0 && phases[phases.length - 1][1] === null;
    const stepEnd = phases.length === 0 ? (s.status === "skipped" ? needsEnd : null) : open ? null : t;
    if (stepEnd !== null) ends.set(s.id, stepEnd);
    if (s.status === "skipped") {
      push({ at: stepEnd ?? needsEnd, kind: "StepSkipped", step: s.id, data: { step: s.id, reason: s.reason ?? "`when` was false" } });
    } else if (stepEnd !== null && END_EVENT[s.status]) {
      const data: Record<string, JsonValue> = { step: s.id };
      if (s.status === "failed") data.error = s.error ?? "failed";
      if (s.status === "rejected") data.reason = s.reason ?? "";
      if (s.status === "succeeded") data.output = s.output ?? null;
      push({ at: stepEnd, kind: END_EVENT[s.status]!, step: s.id, data });
    }
    const cost = emptyCost();
    if (s.cost && stepOps.some((o) => o.end)) {
      cost.calls = 1;
      cost.input_tokens = s.cost.input;
      cost.output_tokens = s.cost.output;
      cost.micro_usd = s.cost.micro;
      cost.simulated = s.cost.simulated ? 1 : 0;
      cost.after_crash = s.cost.afterCrash ? 1 : 0;
      addCost(report.total, cost);
      report.by_step[s.id] = { ...cost };
      const model = (report.by_model[s.cost.model] ??= emptyCost());
      addCost(model, cost);
      const day = (report.by_day[utcDay(stepOps[stepOps.length - 1].view.ended_at_ms ?? start)] ??= emptyCost());
      addCost(day, cost);
    }
    opDrafts.push(stepOps);
    steps.push({
      id: s.id,
      kind: s.kind,
      status: s.status,
      attempt: phases.length ? attempt : 0,
      needs: s.needs ?? [],
      output: s.output ?? null,
      error: s.error ?? null,
      reason: s.reason ?? null,
      timing: {
        total_ms: phases.length ? (stepEnd ?? now) - start : 0,
        waiting_ms: waiting,
        executing_ms: executing,
        waiting_now: waitingNow,
      },
      segments,
      operations: [],
      cost,
      child_run: s.childRun ?? null,
      ...(s.compensates ? { compensates: s.compensates } : {}),
    });
  }

  const finished = spec.status === "succeeded" || spec.status === "failed" || spec.status === "cancelled";
  const lastAt = drafts.reduce((m, d) => Math.max(m, d.at), t0);
  if (finished) {
    const kind = spec.status === "succeeded" ? "RunSucceeded" : spec.status === "failed" ? "RunFailed" : "RunCancelled";
    push({ at: lastAt + 5, kind, step: null, data: spec.status === "failed" ? { error: spec.note ?? "a step failed" } : {} });
  }

  drafts.sort((a, b) => a.at - b.at || a.order - b.order);
  drafts.forEach((d, i) => (d.seq = i + 1));
  const events: EventView[] = drafts.map((d) => ({
    seq: d.seq!,
    at_ms: d.at,
    kind: d.kind,
    step: d.step,
    data: d.opOf ? { op: d.opOf.seq!, ...d.data } : d.data,
  }));
  steps.forEach((step, i) => {
    step.operations = opDrafts[i].map((o) => ({ seq: o.start.seq!, ...o.view }));
    const seq = (op: number) => step.operations[op].seq;
    if (spec.steps[i].fileChanges) step.file_changes = spec.steps[i].fileChanges;
    const turns = spec.steps[i].conversation;
    if (turns) step.conversation = turns.map((t) => ({ ...t, op: seq(t.op), calls: t.calls.map((c) => ({ ...c, ops: c.ops.map(seq) })) }));
  });

  const updated = events[events.length - 1].at_ms;
  const item: RunListItem = {
    run_id: spec.id,
    workflow: spec.workflow,
    workflow_path: spec.workflowPath,
    workspace: spec.workspace,
    status: spec.status,
    trigger: spec.trigger,
    started_at_ms: t0,
    updated_at_ms: updated,
    cost_micro_usd: report.total.micro_usd,
    held_by: spec.heldBy ?? (finished ? null : "pid 4242"),
    parent: spec.parent?.run_id ?? null,
    is_child: !!spec.parent,
    ...(spec.cause ? { cause: spec.cause } : {}),
  };
  const pending: ApprovalItem[] = approvals.map((a) => ({ ...a.item, requested_seq: a.draft.seq! }));
  const failedNote = steps
    .filter((s) => (s.status === "failed" || s.status === "rejected") && (s.error || s.reason))
    .map((s) => `step \`${s.id}\`: ${s.error ?? s.reason}`)
    .join("; ");
  const detail: RunDetail = {
    run: item,
    inputs: spec.inputs,
    started_by: spec.startedBy,
    steps,
    decisions: decisions.map((d) => ({ seq: d.draft.seq!, ...d.view })).sort((a, b) => a.seq - b.seq),
    pending,
    budget: spec.budget ?? null,
    cost: report,
    last_seq: events.length,
    note: spec.note ?? (failedNote || null),
  };
  return { item, detail, events, approvals: pending, parent: spec.parent ?? null };
}

/** A small seeded random source (mulberry32), so generated fixtures are the same each time. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A UUID-shaped id from a random source. */
export function fakeUuid(rand: () => number): string {
  const hex = (n: number) =>
    Array.from({ length: n }, () => Math.floor(rand() * 16).toString(16)).join("");
  return `${hex(8)}-${hex(4)}-4${hex(3)}-${"89ab"[Math.floor(rand() * 4)]}${hex(3)}-${hex(12)}`;
}
