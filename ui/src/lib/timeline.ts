// Timeline geometry: which bars of a lane to draw at a zoom, and the time axis's ticks.
import { visibleInLane, type Placed } from "./lanes";

export interface Bar<T> {
  /** Pixels from the timeline's start. */
  x: number;
  w: number;
  /** The first item drawn in this bar. */
  first: Placed<T>;
  /** More than 1: items too small to draw apart, drawn as one cluster. */
  count: number;
  /** The item of the cluster that matters most (by `severity`). */
  worst: Placed<T>;
  /** The most common item of the cluster (by `severity` class), whose status it is drawn in. */
  usual: Placed<T>;
}

/**
 * The bars of one lane inside `[from, to]` at `pxPerMs`. Neighbours narrower than a few
 * pixels are merged into clusters at most `maxCluster` pixels wide, each showing the most
 * severe of its items, so a zoomed-out lane of thousands of steps stays a few hundred
 * elements and a failure among them still shows.
 */
export function laneBars<T>(
  lane: readonly Placed<T>[],
  from: number,
  to: number,
  t0: number,
  pxPerMs: number,
  severity: (item: T) => number = () => 0,
  minWidth = 3,
  maxCluster = 24,
): Bar<T>[] {
  const out: Bar<T>[] = [];
  // Per cluster: how many items of each severity, and one item of each.
  let tally = new Map<number, { n: number; item: Placed<T> }>();
  const closeCluster = () => {
    const last = out[out.length - 1];
    if (last && last.count > 1) {
      let best: { n: number; item: Placed<T> } | null = null;
      for (const t of tally.values()) if (!best || t.n > best.n) best = t;
      if (best) last.usual = best.item;
    }
    tally = new Map();
  };
  const count = (p: Placed<T>) => {
    const k = severity(p.item);
    const t = tally.get(k);
    if (t) t.n++;
    else tally.set(k, { n: 1, item: p });
  };
  for (const p of visibleInLane(lane, from, to)) {
    const x = (p.start - t0) * pxPerMs;
    const w = Math.max(minWidth, (p.end - p.start) * pxPerMs);
    const last = out[out.length - 1];
    // Only tiny bars merge, into a tiny bar or a cluster before them: a long step stays a bar
    // of its own even when a tiny one just before it touches it.
    const tiny = w <= minWidth * 2;
    if (last && tiny && x < last.x + last.w + 1 && (last.count > 1 || last.w <= minWidth * 2) && last.w < maxCluster) {
      last.w = Math.max(last.w, x + w - last.x);
      last.count++;
      if (severity(p.item) > severity(last.worst.item)) last.worst = p;
      count(p);
      continue;
    }
    closeCluster();
    out.push({ x, w, first: p, count: 1, worst: p, usual: p });
    count(p);
  }
  closeCluster();
  return out;
}

const TICK_STEPS = [
  1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000,
  900_000, 1_800_000, 3_600_000, 7_200_000, 10_800_000, 21_600_000, 43_200_000, 86_400_000,
];

/** Offsets from the run's start: `0`, `500 ms`, `1.5 s`, `2m 30s`, `1h 05m`. */
export function formatOffset(ms: number, step: number): string {
  if (ms === 0) return "0";
  if (step < 1_000) return ms < 1_000 ? `${ms} ms` : `${(ms / 1000).toFixed(step < 100 ? 2 : 1)} s`;
  if (ms < 60_000) return `${Math.round(ms / 1000)} s`;
  const s = Math.round(ms / 1000);
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${s % 60 ? ` ${String(s % 60).padStart(2, "0")}s` : ""}`;
  const h = Math.floor(m / 60);
  return `${h}h ${String(m % 60).padStart(2, "0")}m`;
}

export interface Tick {
  /** ms from the start. */
  t: number;
  x: number;
  label: string;
}

/** Ticks at a round interval at least `minGap` pixels apart, inside `[from, to]` (offsets). */
export function axisTicks(from: number, to: number, pxPerMs: number, minGap = 90): Tick[] {
  const step = TICK_STEPS.find((s) => s * pxPerMs >= minGap) ?? TICK_STEPS[TICK_STEPS.length - 1];
  const ticks: Tick[] = [];
  const first = Math.max(0, Math.floor(from / step) * step);
  for (let t = first; t <= to && ticks.length < 500; t += step) ticks.push({ t, x: t * pxPerMs, label: formatOffset(t, step) });
  return ticks;
}
