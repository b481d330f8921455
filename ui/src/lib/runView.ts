// The Run view's data as it follows a run: the overview read once (header and every step's
// timeline bar), then each update the app sends applied to it, so a run of tens of thousands of
// steps is never read again while it streams.
import type { RunHead } from "../generated/RunHead";
import type { RunOverview } from "../generated/RunOverview";
import type { RunUpdate } from "../generated/RunUpdate";
import type { Segment } from "../generated/Segment";
import type { StepRow } from "../generated/StepRow";
import type { StepStatus } from "../generated/StepStatus";

/** One step on the timeline. */
export interface Bar {
  id: string;
  status: StepStatus;
  segments: Segment[];
  /** A compensation: the step it undoes. */
  compensates?: string;
}

export interface RunData {
  head: RunHead;
  inputs: RunOverview["inputs"];
  startedBy: string;
  /** The machine it belongs to, and whether that is not this one. */
  host: string | null;
  elsewhere: boolean;
  bars: Bar[];
}

export function fromOverview(o: RunOverview): RunData {
  // Segments come as `[kind, start, end]` in ms since the run started.
  const t0 = o.head.run.started_at_ms;
  const undoes = new Map(o.compensations);
  return {
    head: o.head,
    inputs: o.inputs,
    startedBy: o.started_by,
    host: o.host,
    elsewhere: o.elsewhere,
    bars: o.bars.map(([id, status, segments]) => ({
      id,
      status,
      segments: segments.map(([kind, start, end]) => ({ kind, start_ms: t0 + start, end_ms: end === null ? null : t0 + end })),
      ...(undoes.has(id) ? { compensates: undoes.get(id) } : {}),
    })),
  };
}

export interface Applied {
  data: RunData;
  /** The rows of the steps that changed, by their index. */
  rows: Map<number, StepRow>;
  /** The run must be read again (its steps changed in number). */
  reshaped: boolean;
}

/** What `update` makes of `data`: a new header, and the changed steps' bars replaced. */
export function applyUpdate(data: RunData, update: RunUpdate): Applied {
  const rows = new Map<number, StepRow>();
  let bars = data.bars;
  let copied = false;
  for (const { row } of update.changed) {
    rows.set(row.index, row);
    const old = bars[row.index];
    if (!old || old.id !== row.id) continue;
    if (!copied) {
      bars = bars.slice();
      copied = true;
    }
    bars[row.index] = { id: row.id, status: row.status, segments: row.segments, ...(row.compensates ? { compensates: row.compensates } : {}) };
  }
  const reshaped = update.reshaped || update.head.steps !== data.bars.length;
  return { data: { ...data, head: update.head, bars }, rows, reshaped };
}

/** The step to show first: one that waits for a person, else one running, else one that went wrong, else the first. */
export function interestingStep(bars: readonly Bar[]): string | null {
  const first = (want: (s: StepStatus) => boolean) => bars.find((b) => want(b.status));
  const found =
    first((s) => s === "awaiting_approval" || s === "outcome_unknown") ??
    first((s) => s === "running") ??
    first((s) => s === "failed" || s === "rejected");
  return (found ?? bars[0])?.id ?? null;
}

/** How long a step waited for a person, from its segments (open ones up to `now`). */
export function waitedMs(segments: readonly Segment[], now: number): number {
  let sum = 0;
  for (const s of segments) if (s.kind !== "executing") sum += (s.end_ms ?? Math.max(now, s.start_ms)) - s.start_ms;
  return sum;
}
