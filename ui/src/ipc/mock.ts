// A Backend over in-memory fixtures, for browser tests, component tests, benchmarks and
// `npm run dev` without Tauri. Deciding an approval, starting or controlling a run change
// the state the way the engine would and push the same live signals and run feed items.
// Test controls (`emit`, `pushFeed`, `replaceProposal`, `failNext`, …) drive the rest.
import type { AppError } from "../generated/AppError";
import type { AppInfo } from "../generated/AppInfo";
import type { ApprovalItem } from "../generated/ApprovalItem";
import type { DecisionView } from "../generated/DecisionView";
import type { EventPage } from "../generated/EventPage";
import type { InboxView } from "../generated/InboxView";
import type { Resolution } from "../generated/Resolution";
import type { RunOverview } from "../generated/RunOverview";
import type { RunsPage } from "../generated/RunsPage";
import type { StepDetail } from "../generated/StepDetail";
import type { StepPage } from "../generated/StepPage";
import type { CostOverview } from "../generated/CostOverview";
import type { EventView } from "../generated/EventView";
import type { LiveSignal } from "../generated/LiveSignal";
import type { Proposal } from "../generated/Proposal";
import type { ReplayVerdict } from "../generated/ReplayVerdict";
import type { RunFeedItem } from "../generated/RunFeedItem";
import type { RunListItem } from "../generated/RunListItem";
import type { JsonValue } from "../generated/serde_json/JsonValue";
import type { WorkflowInfo } from "../generated/WorkflowInfo";
import type { MemoryEntryView } from "../generated/MemoryEntryView";
import type { MemoryView } from "../generated/MemoryView";
import type { StepType } from "../generated/StepType";
import type { DatabaseCheckView } from "../generated/DatabaseCheckView";
import type { DatabaseSettingsView } from "../generated/DatabaseSettingsView";
import type { SignalSentView } from "../generated/SignalSentView";
import type { WorkspaceView } from "../generated/WorkspaceView";
import type { FileNode } from "../generated/FileNode";
import { countByStatus, filterRuns, sortRuns } from "../lib/runsFilter";
import type { ApproveArgs, Backend, ForkArgs, RejectArgs, RunsQuery } from "./backend";
import type { ComparisonView } from "../generated/ComparisonView";
import type { ForkResult } from "../generated/ForkResult";
import type { RewindView } from "../generated/RewindView";
import { compareBuilt, rewindProposal } from "./mockTimeTravel";
import { buildRun, fakeHash, fakeUuid, proposalHash, seeded, type BuiltRun } from "./fixtureBuilder";
import { STEP_TEMPLATES, appError, checkedInputs, closeSegments, costOf, decisionEvents, detailFor, head, openSegment, parseInput, replayOf, stepRow } from "./mockRuns";
import type { Fixtures } from "./fixtures";

export interface MockOptions {
  /** Each call answers after this many ms (0: on the next microtask). */
  latencyMs?: number;
}

/** The largest page the Rust side answers. */
const EVENTS_PAGE_MAX = 1_000;
const STEPS_PAGE_MAX = 500;
const RUNS_PAGE_MAX = 500;


/** What crossing the IPC boundary does to a value: JSON out (in Rust), JSON in (here). */
const clone = <T>(value: T): T => (value === undefined ? value : (JSON.parse(JSON.stringify(value)) as T));
const short = (id: string) => (id.startsWith("sha256:") ? id.slice(7, 15) : id.slice(0, 8));

/** Whether an operation's request is a wait for the signal `name`. */
function waitsFor(request: JsonValue, name: string): boolean {
  const fields = typeof request === "object" && request !== null && !Array.isArray(request) ? request : {};
  return fields.kind === "wait_signal" && fields.name === name;
}

export class MockBackend implements Backend {
  private readonly info: AppInfo;
  private readonly runs = new Map<string, BuiltRun>();
  /** Runs known only as list rows (generated in bulk); detailed on first request. */
  private readonly rows = new Map<string, RunListItem>();
  private readonly workflowList: WorkflowInfo[];
  private readonly stepTypeList: StepType[];
  private readonly memoryEntryLists: Map<string, MemoryEntryView[]>;
  private readonly trees: Record<string, FileNode[]>;
  private readonly listeners: Array<(s: LiveSignal) => void> = [];
  private follower: { run: string; onItem: (item: RunFeedItem) => void } | null = null;
  /** Runs with changes not yet sent to the follower, and the steps that changed. */
  private unsent = new Map<string, Set<string>>();
  /** Runs that "cannot be read", for the inbox's report. */
  private unreadable = new Map<string, string>();
  private readonly failures = new Map<string, AppError>();
  /** Signals sent with a key, by name and key: the same one is one signal. */
  private readonly signalKeys = new Map<string, SignalSentView>();
  private signalCount = 0;
  private database: DatabaseSettingsView;
  private readonly rand = seeded(2024);
  private readonly latencyMs: number;
  /** Every call, for tests to look at. */
  readonly calls: Array<{ method: string; args: unknown[] }> = [];

  constructor(fixtures: Fixtures, options: MockOptions = {}) {
    this.info = fixtures.appInfo;
    this.database = {
      in_use: fixtures.appInfo.db_path,
      settings_file: "/home/dana/.config/stepwise/settings.yaml",
      url: null,
      password_env: null,
      named_elsewhere: false,
    };
    for (const r of fixtures.runs) this.runs.set(r.item.run_id, r);
    this.workflowList = fixtures.workflows;
    this.stepTypeList = fixtures.stepTypes ?? [];
    this.memoryEntryLists = new Map(Object.entries(clone(fixtures.memories ?? {})));
    this.trees = fixtures.trees;
    this.latencyMs = options.latencyMs ?? 0;
  }

  // ---- The Backend -------------------------------------------------------------------------

  async appInfo(): Promise<AppInfo> {
    await this.enter("appInfo", []);
    return clone(this.info);
  }

  async listRuns(q: RunsQuery): Promise<RunsPage> {
    await this.enter("listRuns", [q]);
    const all = sortRuns([...[...this.runs.values()].map((r) => r.item), ...this.rows.values()]);
    const shown = filterRuns(all, { status: q.status, query: q.query });
    const counts = countByStatus(all);
    const limit = Math.min(q.limit, RUNS_PAGE_MAX);
    return clone({
      offset: q.offset,
      total: shown.length,
      runs: shown.slice(q.offset, q.offset + limit),
      by_status: [...counts.entries()].map(([status, count]) => ({ status, count })),
    });
  }

  async getRun(run: string): Promise<RunOverview> {
    await this.enter("getRun", [run]);
    const r = this.run(run);
    const t0 = r.item.started_at_ms;
    return clone({
      head: head(r),
      inputs: r.detail.inputs,
      started_by: r.detail.started_by,
      host: r.detail.host ?? null,
      elsewhere: r.detail.elsewhere ?? false,
      bars: r.detail.steps.map(
        (s): RunOverview["bars"][number] => [s.id, s.status, s.segments.map((g) => [g.kind, g.start_ms - t0, g.end_ms === null ? null : g.end_ms - t0])],
      ),
      compensations: r.detail.steps.flatMap((s): RunOverview["compensations"] => (s.compensates ? [[s.id, s.compensates]] : [])),
    });
  }

  async getSteps(run: string, filter: string, offset: number, limit: number): Promise<StepPage> {
    await this.enter("getSteps", [run, filter, offset, limit]);
    const r = this.run(run);
    const words = filter.trim().toLowerCase().split(/\s+/).filter(Boolean);
    const end = offset + Math.min(limit, STEPS_PAGE_MAX);
    if (!words.length) {
      const rows = r.detail.steps.slice(offset, end).map((s, i) => stepRow(s, offset + i));
      return clone({ offset, total: r.detail.steps.length, rows });
    }
    const matching: number[] = [];
    r.detail.steps.forEach((s, index) => {
      const hay = `${s.id.toLowerCase()}\n${s.kind}\n${s.status}`;
      if (words.every((w) => hay.includes(w))) matching.push(index);
    });
    const rows = matching.slice(offset, end).map((i) => stepRow(r.detail.steps[i], i));
    return clone({ offset, total: matching.length, rows });
  }

  async getStep(run: string, step: string): Promise<StepDetail> {
    await this.enter("getStep", [run, step]);
    const r = this.run(run);
    const index = r.detail.steps.findIndex((s) => s.id === step);
    if (index < 0) throw appError("not_found", `run ${short(run)} has no step \`${step}\``);
    const s = r.detail.steps[index];
    return clone({
      row: stepRow(s, index),
      needs: s.needs,
      output: s.output,
      error: s.error,
      reason: s.reason,
      operations: s.operations,
      decisions: r.detail.decisions.filter((d) => d.step === step),
      conversation: s.conversation ?? [],
      file_changes: s.file_changes ?? [],
    });
  }

  async getDecisions(run: string): Promise<DecisionView[]> {
    await this.enter("getDecisions", [run]);
    return clone(this.run(run).detail.decisions);
  }

  async getEvents(run: string, afterSeq: number, limit: number, filter?: string): Promise<EventPage> {
    await this.enter("getEvents", [run, afterSeq, limit, filter]);
    const events = this.run(run).events;
    const words = (filter ?? "").trim().toLowerCase().split(/\s+/).filter(Boolean);
    const max = Math.min(Math.max(1, limit), EVENTS_PAGE_MAX);
    const out: EventView[] = [];
    let readTo = afterSeq;
    // Seqs are 1..n in order: the page starts right after `afterSeq`.
    for (let i = Math.max(0, afterSeq); i < events.length && out.length < max; i++) {
      const e = events[i];
      readTo = e.seq;
      if (words.every((w) => e.kind.toLowerCase().includes(w) || (e.step ?? "").toLowerCase().includes(w) || String(e.seq) === w)) out.push(e);
    }
    return clone({ events: out, read_to: readTo, end: readTo >= events.length });
  }

  async pauseRun(run: string): Promise<void> {
    await this.enter("pauseRun", [run]);
    const r = this.run(run);
    if (r.item.status !== "running" && r.item.status !== "awaiting_approval")
      throw appError("refused", `run ${short(run)} is ${r.item.status}: only a running or waiting run can be paused`);
    this.append(r, [{ kind: "RunPauseRequested", step: null, data: { by: this.info.user } }]);
    this.setStatus(r, "paused");
  }

  async resumeRun(run: string): Promise<void> {
    await this.enter("resumeRun", [run]);
    const r = this.run(run);
    if (r.item.status !== "paused" && r.item.status !== "interrupted")
      throw appError("refused", `run ${short(run)} is ${r.item.status}: only a paused or interrupted run can be resumed`);
    this.append(r, [{ kind: "RunResumeRequested", step: null, data: { by: this.info.user } }]);
    r.item.held_by = "pid 4242";
    this.setStatus(r, r.approvals.length ? "awaiting_approval" : "running");
  }

  async cancelRun(run: string): Promise<void> {
    await this.enter("cancelRun", [run]);
    const r = this.run(run);
    if (["succeeded", "failed", "cancelled"].includes(r.item.status))
      throw appError("refused", `run ${short(run)} is already ${r.item.status}`);
    const now = Date.now();
    for (const step of r.detail.steps) {
      if (["running", "awaiting_approval", "pending", "waiting_retry", "outcome_unknown"].includes(step.status)) {
        this.touch(r, step.id);
        closeSegments(step, now);
        step.status = "cancelled";
      }
    }
    const hadApprovals = r.approvals.length > 0;
    r.approvals = [];
    r.detail.pending = [];
    r.item.held_by = null;
    this.append(r, [
      { kind: "RunCancelRequested", step: null, data: { by: this.info.user } },
      { kind: "RunCancelled", step: null, data: {} },
    ]);
    this.setStatus(r, "cancelled");
    if (hadApprovals) this.emit({ kind: "approvals" });
  }

  async databaseSettings(): Promise<DatabaseSettingsView> {
    await this.enter("databaseSettings", []);
    return clone(this.database);
  }

  async checkDatabase(url: string, passwordEnv: string | null): Promise<DatabaseCheckView> {
    await this.enter("checkDatabase", [url, passwordEnv]);
    if (!/^postgres(ql)?:\/\//.test(url)) throw appError("invalid", "the database URL must start with postgres:// or postgresql://");
    if (/^postgres(ql)?:\/\/[^@/]*:[^@/]*@/.test(url)) throw appError("invalid", "the database URL holds a password: leave it out");
    if (url.includes("unreachable")) throw appError("internal", `database \`${url}\` could not be reached: connection refused`);
    return { database: url, server_version: "15.18", schema_version: 3 };
  }

  async saveDatabase(url: string | null, passwordEnv: string | null): Promise<DatabaseSettingsView> {
    await this.enter("saveDatabase", [url, passwordEnv]);
    if (url !== null) await this.checkDatabase(url, passwordEnv);
    this.database = { ...this.database, url, password_env: url === null ? null : passwordEnv };
    return clone(this.database);
  }

  async sendSignal(name: string, data?: string, key?: string): Promise<SignalSentView> {
    await this.enter("sendSignal", [name, data, key]);
    if (!/^[A-Za-z0-9_.\/-]{1,128}$/.test(name))
      throw appError("invalid", `cannot send the signal: \`${name}\` is not a signal's name: letters, digits, \`_\`, \`-\`, \`.\` and \`/\`, at most 128 bytes`);
    let payload: JsonValue = null;
    if (data?.trim()) {
      try {
        payload = JSON.parse(data) as JsonValue;
      } catch (e) {
        throw appError("invalid", `the signal's data is not JSON: ${(e as Error).message}`);
      }
    }
    const sent = key ? this.signalKeys.get(`${name}\u0000${key}`) : undefined;
    if (sent) return clone({ ...sent, recorded: false });
    const signalId = ++this.signalCount;
    // The oldest run waiting for it takes it: its step succeeds with the data, the next starts.
    const waiting = [...this.runs.values()]
      .filter((r) => r.item.status === "running")
      .sort((a, b) => a.item.started_at_ms - b.item.started_at_ms)
      .map((r) => ({ r, s: r.detail.steps.find((s) => s.status === "running" && s.operations.some((o) => waitsFor(o.request, name) && !o.result)) }))
      .find((w) => w.s);
    const view: SignalSentView = { signal_id: signalId, recorded: true, taken_by: waiting?.r.item.run_id ?? null };
    if (key) this.signalKeys.set(`${name}\u0000${key}`, view);
    if (waiting?.s) this.takeSignal(waiting.r, waiting.s, name, payload, signalId);
    return clone(view);
  }

  private takeSignal(r: BuiltRun, step: BuiltRun["detail"]["steps"][number], name: string, payload: JsonValue, signalId: number): void {
    const now = Date.now();
    this.touch(r, step.id);
    const op = step.operations.find((o) => waitsFor(o.request, name) && !o.result)!;
    op.result = { kind: "signal_received", signal_id: signalId, name, payload };
    op.ended_at_ms = now;
    closeSegments(step, now);
    step.status = "succeeded";
    step.output = payload;
    this.append(r, [
      { kind: "OperationSucceeded", step: null, data: { op: op.seq, result: op.result } },
      { kind: "StepSucceeded", step: step.id, data: { step: step.id, output: payload } },
    ]);
    const next = r.detail.steps.find((s) => s.status === "pending");
    if (next) {
      this.touch(r, next.id);
      next.status = "succeeded";
      next.attempt = 1;
      next.segments.push({ kind: "executing", start_ms: now, end_ms: now + 5 });
      next.output = { ok: true };
      this.append(r, [
        { kind: "StepStarted", step: next.id, data: { step: next.id, attempt: 1 } },
        { kind: "StepSucceeded", step: next.id, data: { step: next.id, output: next.output } },
      ]);
    }
    this.setStatus(r, r.detail.steps.some((s) => s.status === "pending") ? "running" : "succeeded");
  }

  async resolveStep(run: string, step: string, resolution: Resolution): Promise<void> {
    await this.enter("resolveStep", [run, step, resolution]);
    const r = this.run(run);
    const s = r.detail.steps.find((x) => x.id === step);
    if (!s || s.status !== "outcome_unknown")
      throw appError("refused", `step \`${step}\` is ${s?.status ?? "not in the run"}, not waiting with an unknown outcome`);
    const now = Date.now();
    const op = s.operations.at(-1);
    if (op) op.resolved = `${resolution} by ${this.info.user}`;
    this.append(r, [{ kind: "OperationResolved", step: null, data: { op: op?.seq ?? 0, resolution, by: this.info.user } }]);
    s.timing.waiting_now = false;
    if (resolution === "skip") {
      closeSegments(s, now);
      s.status = "skipped";
    } else if (resolution === "mark_done") {
      closeSegments(s, now);
      s.status = "succeeded";
    } else {
      openSegment(s, "executing", now);
      s.status = "running";
    }
    this.touch(r, s.id);
    this.setStatus(r, r.approvals.length ? "awaiting_approval" : "running");
  }

  async replayRun(run: string, against: "recorded" | "current"): Promise<ReplayVerdict> {
    await this.enter("replayRun", [run, against]);
    return replayOf(this.run(run), against);
  }

  async listApprovals(): Promise<InboxView> {
    await this.enter("listApprovals", []);
    const items = [...this.runs.values()].filter((r) => !this.unreadable.has(r.item.run_id)).flatMap((r) => r.approvals);
    const unreadable = [...this.unreadable.entries()].map(([run_id, message]) => ({ run_id, message }));
    return clone({ items, unreadable });
  }

  async approveStep(args: ApproveArgs): Promise<void> {
    await this.enter("approveStep", [args]);
    const { r, item } = this.waiting(args.run, args.step, args.proposalHash);
    if (args.editedContent !== undefined && item.proposal.kind !== "edit_file")
      throw appError("invalid", `step \`${args.step}\` does not edit a file: its content cannot be edited`);
    if (args.editedCommand !== undefined && item.proposal.kind !== "run_command")
      throw appError("invalid", `step \`${args.step}\` runs no command: its command cannot be edited`);
    if (item.proposal.kind === "question" && !args.editedAnswer?.trim())
      throw appError("invalid", `step \`${args.step}\` asks a question: answer it, or reject it with a reason`);
    if (args.editedAnswer !== undefined && item.proposal.kind !== "question")
      throw appError("invalid", `step \`${args.step}\` does not ask a question`);
    if (args.rejectedHunks !== undefined && item.proposal.kind !== "edit_file")
      throw appError("invalid", `step \`${args.step}\` does not edit a file: it has no hunks`);
    const edited = args.editedContent !== undefined || args.editedCommand !== undefined || (args.rejectedHunks?.length ?? 0) > 0;
    this.decide(r, item, { approved: true, comment: args.comment ?? null, edited });
  }

  async rejectStep(args: RejectArgs): Promise<void> {
    await this.enter("rejectStep", [args]);
    if (!args.reason.trim()) throw appError("invalid", "a rejection needs a reason: the run (and the model) use it");
    const { r, item } = this.waiting(args.run, args.step, args.proposalHash);
    this.decide(r, item, { approved: false, reason: args.reason.trim() });
  }

  async listWorkflows(_workspace?: string): Promise<WorkflowInfo[]> {
    await this.enter("listWorkflows", [_workspace]);
    return clone(this.workflowList);
  }

  async startRun(workflow: string, inputs: Record<string, string>, workspace?: string, stepThrough?: boolean): Promise<string> {
    await this.enter("startRun", stepThrough ? [workflow, inputs, workspace, stepThrough] : [workflow, inputs, workspace]);
    const info = this.workflowList.find((w) => w.path === workflow);
    if (!info) throw appError("not_found", `no workflow at ${workflow}`);
    if (info.errors.length) {
      const first = info.errors[0];
      throw appError("invalid", `${workflow}: ${info.errors.length} problem(s); line ${first.line}, column ${first.column}: ${first.message}`);
    }
    const values = checkedInputs(info, inputs);
    const now = Date.now();
    const id = fakeUuid(this.rand);
    const names = STEP_TEMPLATES[info.name ?? ""] ?? [["start", "set"], ["finish", "set"]];
    const built = buildRun(
      {
        id,
        workflow: info.name ?? workflow,
        workflowPath: workflow,
        workspace: workspace || this.info.default_workspace,
        status: "running",
        trigger: `app (${this.info.user})`,
        startedBy: this.info.user,
        startedAt: now,
        inputs: values,
        steps: names.map(([step, kind], i) =>
          i === 0 ? { id: step, kind, status: "running", at: 0, phases: [["exec", null]] } : { id: step, kind, status: "pending", needs: [names[i - 1][0]] },
        ),
      },
      now,
    );
    this.runs.set(id, built);
    this.emit({ kind: "run", run_id: id });
    return id;
  }

  async proposeRewind(run: string, step: string, include: string[]): Promise<RewindView> {
    await this.enter("proposeRewind", [run, step, include]);
    return clone(rewindProposal(this.run(run), step, include));
  }

  async rewindRun(run: string, step: string, include: string[], proposalHash: string): Promise<void> {
    await this.enter("rewindRun", [run, step, include, proposalHash]);
    const now = rewindProposal(this.run(run), step, include);
    if (now.proposal_hash !== proposalHash) throw appError("invalid", "cannot rewind: the rewind now proposes another change; look at it again");
    this.emit({ kind: "run", run_id: run });
  }

  async forkRun(args: ForkArgs): Promise<ForkResult> {
    await this.enter("forkRun", [args]);
    const parent = this.run(args.run);
    const restore = rewindProposal(parent, args.step, []);
    if (!args.workspace && !args.proposalHash && restore.files.some((f) => f.included)) return clone({ run_id: null, restore });
    const inputs = Object.fromEntries(Object.entries((parent.detail.inputs ?? {}) as Record<string, unknown>).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]));
    const id = await this.startRun(parent.item.workflow_path, { ...inputs, ...args.inputs }, args.workspace);
    this.run(id).item.parent = parent.item.run_id;
    return { run_id: id, restore: null };
  }

  async listForks(run: string): Promise<RunListItem[]> {
    await this.enter("listForks", [run]);
    return clone([...this.runs.values()].map((r) => r.item).filter((item) => item.parent === run));
  }

  async listStepTypes(workspace?: string): Promise<StepType[]> {
    await this.enter("listStepTypes", [workspace]);
    return clone(this.stepTypeList);
  }

  async listMemories(): Promise<MemoryView[]> {
    await this.enter("listMemories", []);
    return [...this.memoryEntryLists.entries()]
      .filter(([, entries]) => entries.length > 0)
      .map(([name, entries]) => ({ name, entries: entries.length, updated_at_ms: Math.max(...entries.map((e) => e.updated_at_ms)) }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  async memoryEntries(memory: string): Promise<MemoryEntryView[]> {
    await this.enter("memoryEntries", [memory]);
    return clone([...(this.memoryEntryLists.get(memory) ?? [])].sort((a, b) => a.key.localeCompare(b.key)));
  }

  async forgetMemory(memory: string, key: string): Promise<boolean> {
    await this.enter("forgetMemory", [memory, key]);
    const entries = this.memoryEntryLists.get(memory) ?? [];
    const kept = entries.filter((e) => e.key !== key);
    this.memoryEntryLists.set(memory, kept);
    return kept.length < entries.length;
  }

  async compareRuns(first: string, second: string): Promise<ComparisonView> {
    await this.enter("compareRuns", [first, second]);
    return clone(compareBuilt(this.run(first), this.run(second)));
  }

  async workspaceTree(run?: string): Promise<WorkspaceView> {
    await this.enter("workspaceTree", [run]);
    const chosen = run ? this.run(run).item : this.newest();
    const root = chosen?.workspace ?? this.info.default_workspace;
    const pending = new Set<string>();
    const touched = new Set<string>();
    for (const r of this.runs.values()) {
      if (r.item.workspace !== root) continue;
      for (const a of r.approvals) if (a.proposal.kind === "edit_file") pending.add(a.proposal.path);
      for (const s of r.detail.steps)
        for (const op of s.operations) {
          const req = op.request as { kind?: string; path?: string } | null;
          if (req && (req.kind === "read_file" || req.kind === "write_file") && req.path) touched.add(req.path);
        }
    }
    const mark = (nodes: FileNode[]): FileNode[] =>
      nodes.map((n) => ({
        ...n,
        touched: n.touched || touched.has(n.path),
        pending_edit: !n.dir && pending.has(n.path),
        children: mark(n.children),
      }));
    return clone({ root, run_id: chosen?.run_id ?? null, elsewhere: null, tree: mark(this.trees[root] ?? []), truncated: 0 });
  }

  async costOverview(run?: string): Promise<CostOverview> {
    await this.enter("costOverview", [run]);
    if (run) this.run(run);
    return clone(costOf([...this.runs.values()], run));
  }

  async subscribeLive(onSignal: (signal: LiveSignal) => void): Promise<void> {
    await this.enter("subscribeLive", []);
    this.listeners.push(onSignal);
  }

  async followRun(run: string, afterSeq: number, onItem: (item: RunFeedItem) => void): Promise<void> {
    await this.enter("followRun", [run, afterSeq]);
    const r = this.run(run);
    this.follower = { run: r.item.run_id, onItem };
    // What was recorded since the window read the run.
    const missed = r.events.filter((e) => e.seq > afterSeq);
    for (const e of missed) if (e.step) this.touch(r, e.step);
    if (missed.length) this.touch(r);
  }

  // ---- Test controls -----------------------------------------------------------------------

  /** Sends a live signal to every subscriber (as the engine's feeds do). */
  emit(signal: LiveSignal): void {
    for (const l of this.listeners) queueMicrotask(() => l(clone(signal)));
  }

  /** Sends an item to the run being followed, if it is `run`. */
  pushFeed(run: string, item: RunFeedItem): void {
    const f = this.follower;
    if (f && f.run === run) queueMicrotask(() => f.onItem(clone(item)));
  }

  /** A model's streamed text for a running step. */
  streamProgress(run: string, step: string, text: string): void {
    this.pushFeed(run, { kind: "progress", step, text });
  }

  /** Makes the next call of `method` fail with `error`. */
  failNext(method: keyof Backend, error: AppError): void {
    this.failures.set(method, error);
  }

  /** Adds a run built elsewhere (a generated large run). */
  addRun(built: BuiltRun): void {
    this.runs.set(built.item.run_id, built);
  }

  /** Adds runs known only as list rows. */
  addRunRows(rows: RunListItem[]): void {
    for (const r of rows) this.rows.set(r.run_id, r);
  }

  /**
   * The process driving `run` died while `step`'s command ran: the step's outcome is unknown
   * until a person resolves it (what the engine records when it recovers the run).
   */
  crash(run: string, step: string): void {
    const r = this.run(run);
    const s = r.detail.steps.find((x) => x.id === step);
    if (!s) throw new Error(`no step ${step} in ${run}`);
    const now = Date.now();
    const op = s.operations.at(-1);
    if (op) {
      op.outcome_unknown = true;
      op.ended_at_ms = now;
    }
    this.append(r, [{ kind: "OperationOutcomeUnknown", step: null, data: { op: op?.seq ?? 0 } }]);
    s.status = "outcome_unknown";
    openSegment(s, "outcome_unknown", now);
    s.timing.waiting_now = true;
    this.touch(r, s.id);
    this.setStatus(r, "awaiting_approval");
  }

  /** From now on the run cannot be read (a damaged page): the inbox must say so. */
  breakRun(run: string, message: string): void {
    this.unreadable.set(run, message);
    this.emit({ kind: "approvals" });
  }

  /** The follower's run id, for tests. */
  following(): string | null {
    return this.follower?.run ?? null;
  }

  /**
   * The step's proposal went stale (its file changed): the old one is voided and the step asks
   * again with `proposal`. Returns the new hash.
   */
  replaceProposal(run: string, step: string, proposal: Proposal): string {
    const r = this.run(run);
    const old = r.approvals.find((a) => a.step === step);
    if (!old) throw new Error(`step ${step} of ${run} waits for nothing`);
    r.approvals = r.approvals.filter((a) => a !== old);
    this.append(r, [{ kind: "ProposalVoided", step, data: { step, proposal_hash: old.proposal_hash, reason: "the file changed since the proposal" } }]);
    return this.ask(r, step, proposal, old.reason);
  }

  /** Makes `step` of `run` ask a person (again). Returns the proposal's hash. */
  ask(r: BuiltRun | string, step: string, proposal: Proposal, reason = "needs approval by default"): string {
    const run = typeof r === "string" ? this.run(r) : r;
    const now = Date.now();
    const hash = proposalHash(proposal) === run.approvals.find((a) => a.step === step)?.proposal_hash ? fakeHash(`${now}`) : proposalHash(proposal);
    const [asked] = this.append(run, [{ kind: "ApprovalRequested", step, data: { step, attempt: 1, proposal_hash: hash, reason } }]);
    const view = run.detail.steps.find((s) => s.id === step);
    if (view) {
      this.touch(run, view.id);
      view.status = "awaiting_approval";
      openSegment(view, "waiting", now);
      view.timing.waiting_now = true;
    }
    const item: ApprovalItem = {
      run_id: run.item.run_id,
      workflow: run.item.workflow,
      workspace: run.item.workspace,
      step,
      attempt: view?.attempt || 1,
      proposal,
      proposal_hash: hash,
      reason,
      requested_seq: asked.seq,
      requested_at_ms: now,
      parent: run.parent ?? null,
      who_may_answer: {},
    };
    run.approvals.push(item);
    run.detail.pending = [...run.approvals];
    this.setStatus(run, "awaiting_approval");
    this.emit({ kind: "asked", run_id: run.item.run_id, step });
    this.emit({ kind: "approvals" });
    return hash;
  }

  // ---- Internals ---------------------------------------------------------------------------

  private async enter(method: string, args: unknown[]): Promise<void> {
    this.calls.push({ method, args });
    if (this.latencyMs > 0) await new Promise((r) => setTimeout(r, this.latencyMs));
    else await Promise.resolve();
    const failure = this.failures.get(method);
    if (failure) {
      this.failures.delete(method);
      throw clone(failure);
    }
  }

  private newest(): RunListItem | undefined {
    let best: RunListItem | undefined;
    for (const r of this.runs.values()) if (!best || r.item.started_at_ms > best.started_at_ms) best = r.item;
    return best;
  }

  private run(id: string): BuiltRun {
    const found = this.runs.get(id);
    if (found) return found;
    const row = this.rows.get(id);
    if (row) {
      const built = detailFor(row);
      this.runs.set(id, built);
      this.rows.delete(id);
      return built;
    }
    throw appError("not_found", `no run ${id}`);
  }

  private waiting(run: string, step: string, hash: string): { r: BuiltRun; item: ApprovalItem } {
    const r = this.run(run);
    const item = r.approvals.find((a) => a.step === step);
    if (!item) throw appError("not_found", `step \`${step}\` of run ${short(run)} waits for no decision`);
    if (item.proposal_hash !== hash)
      throw appError("refused", `the proposal of step \`${step}\` changed (now ${short(item.proposal_hash)}): look at the new one and decide again`);
    return { r, item };
  }

  private decide(r: BuiltRun, item: ApprovalItem, d: { approved: boolean; comment?: string | null; reason?: string; edited?: boolean }): void {
    const now = Date.now();
    const step = r.detail.steps.find((s) => s.id === item.step)!;
    this.touch(r, step.id);
    r.approvals = r.approvals.filter((a) => a !== item);
    r.detail.pending = [...r.approvals];
    closeSegments(step, now);
    step.timing.waiting_now = false;
    const by = this.info.user;
    const approvedHash = d.edited ? fakeHash(`${item.proposal_hash}:edited`) : item.proposal_hash;
    const [decided] = this.append(r, decisionEvents(step.id, item.proposal_hash, approvedHash, by, d));
    r.detail.decisions.push({
      seq: decided.seq,
      at_ms: now,
      step: step.id,
      approved: d.approved,
      by,
      mode: d.approved ? { kind: "manual" } : null,
      proposal_hash: item.proposal_hash,
      approved_hash: d.approved ? approvedHash : null,
      edited: !!d.edited,
      comment: d.approved ? (d.comment ?? null) : null,
      reason: d.approved ? null : (d.reason ?? ""),
    });
    if (d.approved) {
      step.status = "succeeded";
      step.segments.push({ kind: "executing", start_ms: now, end_ms: now + 5 });
    } else {
      step.status = "rejected";
      step.reason = d.reason ?? "";
    }
    // What the run does next.
    let status: string;
    if (r.approvals.length) status = "awaiting_approval";
    else if (!d.approved) {
      status = "failed";
      r.detail.note = `step \`${step.id}\`: ${d.reason}`;
    } else {
      const next = r.detail.steps.find((s) => s.status === "pending");
      if (next) {
        this.touch(r, next.id);
        next.status = "running";
        next.attempt = 1;
        openSegment(next, "executing", now);
        this.append(r, [{ kind: "StepStarted", step: next.id, data: { step: next.id, attempt: 1 } }]);
        status = "running";
      } else status = "succeeded";
    }
    this.setStatus(r, status);
    this.emit({ kind: "approvals" });
    if (item.proposal.kind === "edit_file") this.emit({ kind: "workspace", root: r.item.workspace });
  }

  private setStatus(r: BuiltRun, status: string): void {
    r.item.status = status;
    r.item.updated_at_ms = Date.now();
    r.detail.run = r.item;
    this.touch(r);
    this.emit({ kind: "run", run_id: r.item.run_id });
  }

  /**
   * Notes that `r` (and `step`) changed: the follower gets one update with the run's header
   * and the changed steps' rows once the current change is done, as the app sends one per
   * batch of events.
   */
  private touch(r: BuiltRun, step?: string): void {
    const id = r.item.run_id;
    let steps = this.unsent.get(id);
    if (!steps) {
      steps = new Set();
      this.unsent.set(id, steps);
      queueMicrotask(() => this.flush(id));
    }
    if (step) steps.add(step);
  }

  private flush(id: string): void {
    const steps = this.unsent.get(id);
    this.unsent.delete(id);
    const f = this.follower;
    const r = this.runs.get(id);
    if (!steps || !f || f.run !== id || !r) return;
    const changed = r.detail.steps.flatMap((s, index) => (steps.has(s.id) ? [{ row: stepRow(s, index) }] : []));
    f.onItem(clone({ kind: "update", update: { head: head(r), changed, reshaped: false, first_at_ms: r.item.updated_at_ms } }));
  }

  private append(r: BuiltRun, events: Array<{ kind: string; step: string | null; data: JsonValue }>): EventView[] {
    const now = Date.now();
    const added = events.map((e) => ({ seq: r.events.length + 1 + events.indexOf(e), at_ms: now, ...e }));
    r.events.push(...added);
    r.detail.last_seq = r.events.length;
    r.item.updated_at_ms = now;
    this.touch(r);
    return added;
  }
}

export { parseInput };
