// The Runs list's filter: a status and a search over workflow names and run ids.
import type { RunListItem } from "../generated/RunListItem";
import { runFinished } from "./status";

export interface RunFilter {
  /** `all`, or one status (`running`, `waiting`, …). */
  status: string;
  /** Free text: every word must match the workflow, its path, the run id or the trigger. */
  query: string;
}

export function filterRuns(runs: readonly RunListItem[], filter: RunFilter): RunListItem[] {
  const words = filter.query.trim().toLowerCase().split(/\s+/).filter(Boolean);
  const out: RunListItem[] = [];
  for (const run of runs) {
    if (filter.status !== "all" && run.status !== filter.status) continue;
    if (words.length) {
      const hay = `${run.workflow}\n${run.workflow_path}\n${run.run_id}\n${run.trigger}`.toLowerCase();
      if (!words.every((w) => hay.includes(w))) continue;
    }
    out.push(run);
  }
  return out;
}

/** Newest first (the order the list shows). */
export function sortRuns(runs: readonly RunListItem[]): RunListItem[] {
  return [...runs].sort((a, b) => b.started_at_ms - a.started_at_ms || (a.run_id < b.run_id ? -1 : 1));
}

/** How many runs have each status, for the filter's labels. */
export function countByStatus(runs: readonly RunListItem[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of runs) counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
  return counts;
}

/** A run's duration: to now while it runs or waits, else to its last update. */
export function runDuration(run: RunListItem, now: number): number {
  const going = !runFinished(run.status);
  return Math.max(0, (going ? Math.max(now, run.updated_at_ms) : run.updated_at_ms) - run.started_at_ms);
}
