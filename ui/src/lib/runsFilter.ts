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
  // As the store lists them: newest family first, a child run right after its family's
  // top-level run, the children in the order they started.
  const byId = new Map(runs.map((r) => [r.run_id, r]));
  const top = (run: RunListItem): RunListItem => {
    let at = run;
    for (let depth = 0; depth < 16 && at.is_child && at.parent && byId.has(at.parent); depth++) at = byId.get(at.parent)!;
    return at;
  };
  const order = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  return [...runs].sort((a, b) => {
    const [ta, tb] = [top(a), top(b)];
    const [sa, sb] = [a === ta ? 0 : a.started_at_ms, b === tb ? 0 : b.started_at_ms];
    return tb.started_at_ms - ta.started_at_ms || order(ta.run_id, tb.run_id) || sa - sb || order(a.run_id, b.run_id);
  });
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
