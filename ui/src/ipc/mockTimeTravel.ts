// Time travel over the mock's runs, shaped as the engine answers: a rewind's proposal (the
// files the run's steps from `step` on wrote, the first of several a conflict), a fork (a new
// run of the same workflow, its parent set), and two runs compared step by step.
import type { ComparisonView } from "../generated/ComparisonView";
import type { RewindView } from "../generated/RewindView";
import type { StepCompared } from "../generated/StepCompared";
import { fakeHash, type BuiltRun } from "./fixtureBuilder";
import { appError } from "./mockRuns";

/** The files the run's steps from `step` on wrote, in path order. */
function writtenFrom(run: BuiltRun, step: string): string[] {
  const at = run.detail.steps.findIndex((s) => s.id === step);
  if (at < 0) throw appError("invalid", `cannot rewind: run \`${run.item.run_id}\` has no step \`${step}\``);
  const paths = new Set<string>();
  for (const s of run.detail.steps.slice(at))
    for (const op of s.operations) {
      const req = op.request as { kind?: string; path?: string } | null;
      if (req?.kind === "write_file" && req.path) paths.add(req.path);
    }
  return [...paths].sort();
}

export function rewindProposal(run: BuiltRun, step: string, include: string[]): RewindView {
  const paths = writtenFrom(run, step);
  const files = paths.map((path, i) => {
    const conflict = paths.length > 1 && i === 0;
    return {
      path,
      action: "restore",
      included: !conflict || include.includes(path),
      conflict,
      problem: null,
      diff: `--- a/${path}\n+++ b/${path}\n@@ -1 +1 @@\n-as the run left it\n+as it was before \`${step}\`\n`,
    };
  });
  const named = JSON.stringify({ step, files: files.map((f) => [f.path, f.included]) });
  return { run_id: run.item.run_id, to: step, proposal_hash: fakeHash(named), files };
}

export function compareBuilt(a: BuiltRun, b: BuiltRun): ComparisonView {
  const steps: StepCompared[] = [];
  const second = new Map(b.detail.steps.map((s) => [s.id, s]));
  for (const s of a.detail.steps) {
    const other = second.get(s.id);
    second.delete(s.id);
    if (!other) steps.push({ step: s.id, verdict: "only_first", difference: null });
    else if (JSON.stringify(s.output) === JSON.stringify(other.output) && s.status === other.status)
      steps.push({ step: s.id, verdict: "same", difference: null });
    else
      steps.push({
        step: s.id,
        verdict: "differs",
        difference: `the step's output: ${JSON.stringify(s.output ?? s.status)} ≠ ${JSON.stringify(other.output ?? other.status)}`,
      });
  }
  for (const id of second.keys()) steps.push({ step: id, verdict: "only_second", difference: null });
  const run = JSON.stringify(a.detail.inputs) === JSON.stringify(b.detail.inputs) ? [] : [`inputs: ${JSON.stringify(a.detail.inputs)} ≠ ${JSON.stringify(b.detail.inputs)}`];
  const firstStep = steps.find((s) => s.verdict !== "same");
  const first = run[0] ?? (firstStep ? `step \`${firstStep.step}\`: ${firstStep.difference ?? firstStep.verdict}` : null);
  return { first: a.item.run_id, second: b.item.run_id, same: first === null, first_difference: first, run, steps };
}
