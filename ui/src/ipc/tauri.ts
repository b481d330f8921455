// The Backend over Tauri's IPC: each method is one command of src-tauri/src/commands.
import { Channel, invoke } from "@tauri-apps/api/core";
import type { LiveSignal } from "../generated/LiveSignal";
import type { RunFeedItem } from "../generated/RunFeedItem";
import type { Backend } from "./backend";

export const tauriBackend: Backend = {
  appInfo: () => invoke("app_info"),
  listRuns: (q) => invoke("list_runs", { status: q.status, query: q.query, offset: q.offset, limit: q.limit }),
  getRun: (run) => invoke("get_run", { run }),
  getSteps: (run, filter, offset, limit) => invoke("get_steps", { run, filter, offset, limit }),
  getStep: (run, step) => invoke("get_step", { run, step }),
  getDecisions: (run) => invoke("get_decisions", { run }),
  getEvents: (run, afterSeq, limit, filter) => invoke("get_events", { run, afterSeq, limit, filter: filter ? { text: filter } : null }),
  pauseRun: (run) => invoke("pause_run", { run }),
  resumeRun: (run) => invoke("resume_run", { run }),
  cancelRun: (run) => invoke("cancel_run", { run }),
  resolveStep: (run, step, resolution) => invoke("resolve_step", { run, step, resolution }),
  databaseSettings: () => invoke("database_settings"),
  checkDatabase: (url, passwordEnv) => invoke("check_database", { url, passwordEnv }),
  saveDatabase: (url, passwordEnv) => invoke("save_database", { url, passwordEnv }),
  sendSignal: (name, data, key) => invoke("send_signal", { name, data: data ?? null, key: key ?? null }),
  replayRun: (run, against) => invoke("replay_run", { run, against }),
  listApprovals: () => invoke("list_approvals"),
  approveStep: (a) =>
    invoke("approve_step", {
      run: a.run,
      step: a.step,
      proposalHash: a.proposalHash,
      comment: a.comment ?? null,
      editedContent: a.editedContent ?? null,
      editedCommand: a.editedCommand ?? null,
      editedAnswer: a.editedAnswer ?? null,
      rejectedHunks: a.rejectedHunks ?? null,
      hunkReason: a.hunkReason ?? null,
    }),
  proposeRewind: (run, step, include) => invoke("propose_rewind", { run, step, include }),
  rewindRun: (run, step, include, proposalHash) => invoke("rewind_run", { run, step, include, proposalHash }),
  forkRun: (a) =>
    invoke("fork_run", { run: a.run, step: a.step, inputs: a.inputs, workspace: a.workspace ?? null, proposalHash: a.proposalHash ?? null }),
  listForks: (run) => invoke("list_forks", { run }),
  compareRuns: (first, second) => invoke("compare_two_runs", { first, second }),
  listStepTypes: (workspace) => invoke("list_step_types", { workspace: workspace ?? null }),
  listMemories: () => invoke("list_memories"),
  memoryEntries: (memory) => invoke("memory_entries", { memory }),
  forgetMemory: (memory, key) => invoke("forget_memory", { memory, key }),
  rejectStep: (a) =>
    invoke("reject_step", { run: a.run, step: a.step, proposalHash: a.proposalHash, reason: a.reason }),
  listWorkflows: (workspace) => invoke("list_workflows", { workspace: workspace ?? null }),
  startRun: (workflow, inputs, workspace, stepThrough) =>
    invoke("start_run", { workflow, inputs, workspace: workspace ?? null, stepThrough: stepThrough ?? false }),
  workspaceTree: (run) => invoke("workspace_tree", { run: run ?? null }),
  costOverview: (run) => invoke("cost_overview", { run: run ?? null }),
  subscribeLive: async (onSignal) => {
    const channel = new Channel<LiveSignal>();
    channel.onmessage = onSignal;
    await invoke("subscribe_live", { channel });
  },
  followRun: async (run, afterSeq, onItem) => {
    const channel = new Channel<RunFeedItem>();
    channel.onmessage = onItem;
    await invoke("follow_run", { run, afterSeq, channel });
  },
};
