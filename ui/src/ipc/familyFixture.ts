// A family of runs: a parent whose `workflow` step runs a child run, and the child, which waits
// for a person on a custom step type's command (its inputs on stdin). As the Rust side lists
// them: the child right after its parent, its question naming the parent.
import type { Proposal } from "../generated/Proposal";
import type { RunSpec } from "./fixtureBuilder";

export const PARENT_RUN = "5a0c2f7e-31d4-4c8a-9e6b-7d2a1f0e9b11";
export const CHILD_RUN = "9e41b7c2-08aa-5f3d-8c21-4b6e0d9f2a55";

/** A custom step's command, its inputs as JSON on stdin. */
export const CUSTOM_COMMAND: Proposal = {
  kind: "run_command",
  command: { argv: ["python3", "/home/dana/code/acme-billing/.stepwise/steps/count.py"] },
  cwd: ".",
  env: {},
  pass_env: [],
  timeout_ms: 30_000,
  max_output_bytes: 1_048_576,
  stdin: '{"inputs":{"text":"Invoices are due in 30 days."},"run_id":"9e41b7c2-08aa-5f3d-8c21-4b6e0d9f2a55","step_id":"count","workspace":"/home/dana/code/acme-billing"}',
};

export function familyRuns(now: number, workspace: string, minute: number): RunSpec[] {
  const wf = (name: string) => `${workspace}/workflows/${name}.yaml`;
  // Older than every other question, so it is the last in the inbox.
  const started = now - 300 * minute;
  return [
    {
      id: PARENT_RUN,
      workflow: "review-docs",
      workflowPath: wf("review-docs"),
      workspace,
      status: "running",
      trigger: "app (dana)",
      startedBy: "dana",
      startedAt: started,
      inputs: { file: "docs/terms.md" },
      steps: [
        { id: "pick", kind: "set", status: "succeeded", at: 0, phases: [["exec", 5]], output: { file: "docs/terms.md" } },
        { id: "review", kind: "workflow", needs: ["pick"], status: "running", phases: [["exec", null]], childRun: CHILD_RUN },
        { id: "report", kind: "set", needs: ["review"], status: "pending" },
      ],
    },
    {
      id: CHILD_RUN,
      workflow: "review-one",
      workflowPath: wf("review-one"),
      workspace,
      status: "awaiting_approval",
      trigger: "workflow",
      startedBy: "dana",
      startedAt: started + 40,
      inputs: { file: "docs/terms.md" },
      parent: { run_id: PARENT_RUN, step: "review", op: 4, depth: 1, root: PARENT_RUN },
      steps: [
        {
          id: "count",
          kind: "word-count",
          status: "awaiting_approval",
          at: 0,
          phases: [["wait", null]],
          proposal: CUSTOM_COMMAND,
          approvalReason: "step type `word-count` asks a person before each use (`approval: ask` in /home/dana/code/acme-billing/.stepwise/steps/word-count.yaml)",
        },
      ],
    },
  ];
}
