// The one interface all IPC goes through. The app uses `TauriBackend`; browser tests and the
// component tests use `MockBackend` (mock.ts). Types come from ../generated (ts-rs, from Rust).
import type { AppInfo } from "../generated/AppInfo";
import type { ApprovalItem } from "../generated/ApprovalItem";
import type { CommandLine } from "../generated/CommandLine";
import type { CostOverview } from "../generated/CostOverview";
import type { EventView } from "../generated/EventView";
import type { LiveSignal } from "../generated/LiveSignal";
import type { ReplayVerdict } from "../generated/ReplayVerdict";
import type { RunDetail } from "../generated/RunDetail";
import type { RunFeedItem } from "../generated/RunFeedItem";
import type { RunListItem } from "../generated/RunListItem";
import type { WorkflowInfo } from "../generated/WorkflowInfo";
import type { WorkspaceView } from "../generated/WorkspaceView";

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
}

export interface RejectArgs {
  run: string;
  step: string;
  proposalHash: string;
  reason: string;
}

export interface Backend {
  appInfo(): Promise<AppInfo>;
  listRuns(): Promise<RunListItem[]>;
  getRun(run: string): Promise<RunDetail>;
  getEvents(run: string, afterSeq: number): Promise<EventView[]>;
  pauseRun(run: string): Promise<void>;
  resumeRun(run: string): Promise<void>;
  cancelRun(run: string): Promise<void>;
  replayRun(run: string, against: "recorded" | "current"): Promise<ReplayVerdict>;
  listApprovals(): Promise<ApprovalItem[]>;
  approveStep(args: ApproveArgs): Promise<void>;
  rejectStep(args: RejectArgs): Promise<void>;
  listWorkflows(workspace?: string): Promise<WorkflowInfo[]>;
  /** Returns the new run's id. */
  startRun(workflow: string, inputs: Record<string, string>, workspace?: string): Promise<string>;
  workspaceTree(run?: string): Promise<WorkspaceView>;
  costOverview(run?: string): Promise<CostOverview>;
  /** Calls `onSignal` for every live change from now on. */
  subscribeLive(onSignal: (signal: LiveSignal) => void): Promise<void>;
  /** Streams one run's events after `afterSeq` (and model text as it is written); following
   * another run stops following this one. */
  followRun(run: string, afterSeq: number, onItem: (item: RunFeedItem) => void): Promise<void>;
}
