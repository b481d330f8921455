// A run that waits for a signal: its `wait_signal` step runs until `stepwise signal
// deploy/done` (or the window's Send signal form) records one; then its smoke test runs.
import type { RunSpec } from "./fixtureBuilder";

export const SIGNAL_RUN = "7c3e9a15-2b4d-4f60-9a81-5e2d7b0c4f36";
export const SIGNAL_NAME = "deploy/done";

export function signalRuns(now: number, workspace: string, minute: number): RunSpec[] {
  return [
    {
      id: SIGNAL_RUN,
      workflow: "release-wait",
      workflowPath: `${workspace}/workflows/release-wait.yaml`,
      workspace,
      status: "running",
      trigger: "cli (dana)",
      startedBy: "dana",
      // Older than the runs the other views look at first.
      startedAt: now - 500 * minute,
      inputs: {},
      steps: [
        {
          id: "deployed",
          kind: "wait_signal",
          status: "running",
          at: 0,
          phases: [["exec", null]],
          ops: [{ request: { kind: "wait_signal", name: SIGNAL_NAME, timeout_ms: 30 * minute } }],
        },
        { id: "smoke", kind: "set", needs: ["deployed"], status: "pending" },
      ],
    },
  ];
}
