// The one interface all IPC goes through. The app uses `TauriBackend`; browser tests and the
// component tests use `MockBackend` (mock.ts). Types come from ../generated (ts-rs, from Rust).
import type { AppInfo } from "../generated/AppInfo";
import type { CommandLine } from "../generated/CommandLine";
import type { CostOverview } from "../generated/CostOverview";
import type { DecisionView } from "../generated/DecisionView";
import type { EventPage } from "../generated/EventPage";
import type { InboxView } from "../generated/InboxView";
import type { LiveSignal } from "../generated/LiveSignal";
import type { ReplayVerdict } from "../generated/ReplayVerdict";
import type { Resolution } from "../generated/Resolution";
import type { RunFeedItem } from "../generated/RunFeedItem";
import type { RunOverview } from "../generated/RunOverview";
import type { RunsPage } from "../generated/RunsPage";
import type { StepDetail } from "../generated/StepDetail";
import type { StepPage } from "../generated/StepPage";
import type { WorkflowInfo } from "../generated/WorkflowInfo";
import type { WorkspaceView } from "../generated/WorkspaceView";
import type { RewindView } from "../generated/RewindView";
import type { ForkResult } from "../generated/ForkResult";
import type { ComparisonView } from "../generated/ComparisonView";
import type { RunListItem } from "../generated/RunListItem";
import type { MemoryEntryView } from "../generated/MemoryEntryView";
import type { MemoryView } from "../generated/MemoryView";
import type { StepType } from "../generated/StepType";
import type { SignalSentView } from "../generated/SignalSentView";
import type { DatabaseCheckView } from "../generated/DatabaseCheckView";
import type { DatabaseSettingsView } from "../generated/DatabaseSettingsView";

export interface ApproveArgs {
  run: string;
  step: string;
  /** The hash of the proposal the person saw: refused if the step now waits on another. */
  proposalHash: string;
  comment?: string;
  /** New full content for an edit. */
  editedContent?: string;
  /** Another command for a command. */
  editedCommand?: CommandLine;
  /** The answer to an agent's question (which is approved only with one). */
  editedAnswer?: string;
  /** An edit's hunks (numbered from 1) left out; the others are applied. */
  rejectedHunks?: number[];
  /** Why those hunks were left out. */
  hunkReason?: string;
}

export interface RejectArgs {
  run: string;
  step: string;
  proposalHash: string;
  reason: string;
}

export interface RunsQuery {
  /** `all`, a status, or `interrupted`. */
  status: string;
  /** Words that must each appear in the workflow, its path, the run id or the trigger. */
  query: string;
  offset: number;
  limit: number;
}

export interface Backend {
  appInfo(): Promise<AppInfo>;
  /** A page of the runs list, newest first, filtered and counted by the store. */
  listRuns(q: RunsQuery): Promise<RunsPage>;
  /** The run's header and every step's timeline bar. */
  getRun(run: string): Promise<RunOverview>;
  /** A page of the steps table: the steps whose id, type or status match `filter`. */
  getSteps(run: string, filter: string, offset: number, limit: number): Promise<StepPage>;
  /** One step in full: operations, output, decisions. */
  getStep(run: string, step: string): Promise<StepDetail>;
  getDecisions(run: string): Promise<DecisionView[]>;
  /** Up to `limit` events after `afterSeq` matching `filter` (words in the type, step or seq). */
  getEvents(run: string, afterSeq: number, limit: number, filter?: string): Promise<EventPage>;
  pauseRun(run: string): Promise<void>;
  resumeRun(run: string): Promise<void>;
  cancelRun(run: string): Promise<void>;
  /** Says what became of an operation cut off by a crash. */
  resolveStep(run: string, step: string, resolution: Resolution): Promise<void>;
  /** Records a signal (`data`: JSON text; `key`: its idempotency key) that a `wait_signal` step
   * waiting for `name` takes. */
  sendSignal(name: string, data?: string, key?: string): Promise<SignalSentView>;
  replayRun(run: string, against: "recorded" | "current"): Promise<ReplayVerdict>;
  listApprovals(): Promise<InboxView>;
  approveStep(args: ApproveArgs): Promise<void>;
  rejectStep(args: RejectArgs): Promise<void>;
  listWorkflows(workspace?: string): Promise<WorkflowInfo[]>;
  /** Returns the new run's id. `stepThrough`: the run waits for a person before each step. */
  startRun(workflow: string, inputs: Record<string, string>, workspace?: string, stepThrough?: boolean): Promise<string>;
  workspaceTree(run?: string): Promise<WorkspaceView>;
  /** The database in use, and the connection the user's settings keep. */
  databaseSettings(): Promise<DatabaseSettingsView>;
  /** Connects once to the database the form names (its password from `passwordEnv`,
   * PGPASSWORD or ~/.pgpass); changes nothing there. */
  checkDatabase(url: string, passwordEnv: string | null): Promise<DatabaseCheckView>;
  /** Keeps the connection in the settings (`url` null: back to the SQLite file); used from the
   * next start. */
  saveDatabase(url: string | null, passwordEnv: string | null): Promise<DatabaseSettingsView>;
  costOverview(run?: string): Promise<CostOverview>;
  /** Calls `onSignal` for every live change from now on. */
  subscribeLive(onSignal: (signal: LiveSignal) => void): Promise<void>;
  /** Sends what each batch of one run's events after `afterSeq` changed (and model text as it
   * is written); following another run stops following this one. */
  followRun(run: string, afterSeq: number, onItem: (item: RunFeedItem) => void): Promise<void>;
  /** What rewinding `run` to the start of `step` would put back (conflicts in `include` too). */
  proposeRewind(run: string, step: string, include: string[]): Promise<RewindView>;
  /** Rewinds as proposed (refused if the proposal is no longer `proposalHash`). */
  rewindRun(run: string, step: string, include: string[], proposalHash: string): Promise<void>;
  /** Forks `run` from `step`: the new run's id, or the restore to approve first. */
  forkRun(args: ForkArgs): Promise<ForkResult>;
  /** The runs forked from `run`, oldest first. */
  listForks(run: string): Promise<RunListItem[]>;
  compareRuns(first: string, second: string): Promise<ComparisonView>;
  /** The step types a workflow may use: built-in, then the manifests of `workspace` (default:
   * the app's) and the user's. */
  listStepTypes(workspace?: string): Promise<StepType[]>;
  /** The memories agent steps share, by name. */
  listMemories(): Promise<MemoryView[]>;
  memoryEntries(memory: string): Promise<MemoryEntryView[]>;
  /** Removes `key` from `memory`; whether it was there. */
  forgetMemory(memory: string, key: string): Promise<boolean>;
}

export interface ForkArgs {
  run: string;
  step: string;
  /** Inputs changed for the new run; the others are the run's. */
  inputs: Record<string, string>;
  /** Another (new or empty) directory, which receives a copy of the workspace as it was. */
  workspace?: string;
  /** The restore proposal approved (in the run's own workspace). */
  proposalHash?: string;
}
