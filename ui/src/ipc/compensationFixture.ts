// A run that failed at its third step, whose first two steps were undone by their
// compensations (`compensate:`), the last to succeed first.
import type { RunSpec } from "./fixtureBuilder";

export const COMPENSATED_RUN = "4d2b8e61-9c3a-4b7f-8e05-1a6c3f9d2e70";

export function compensatedRuns(now: number, workspace: string, minute: number): RunSpec[] {
  const ran = (id: string, kind: string, extra: Partial<RunSpec["steps"][number]> = {}) => ({
    id,
    kind,
    status: "succeeded" as const,
    phases: [["exec", 200]] as RunSpec["steps"][number]["phases"],
    output: { exit_code: 0 },
    ...extra,
  });
  return [
    {
      id: COMPENSATED_RUN,
      workflow: "release-with-undo",
      workflowPath: `${workspace}/workflows/release-with-undo.yaml`,
      workspace,
      status: "failed",
      trigger: "cli (dana)",
      startedBy: "dana",
      // Older than the runs the other views look at first.
      startedAt: now - 600 * minute,
      inputs: {},
      note: "step `deploy`: exit code 1",
      steps: [
        ran("create", "run_command", { at: 0 }),
        ran("update", "run_command", { needs: ["create"] }),
        { id: "deploy", kind: "run_command", needs: ["update"], status: "failed", phases: [["exec", 300]], error: "exit code 1" },
        ran("undo_update", "run_command", { needs: ["deploy"], compensates: "update" }),
        ran("undo_create", "run_command", { needs: ["undo_update"], compensates: "create" }),
      ],
    },
  ];
}
