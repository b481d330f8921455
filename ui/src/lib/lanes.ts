// Timeline lanes: steps that overlap in time go on different lanes; a lane is reused as soon
// as its previous step has ended (greedy interval partitioning, lowest free lane first).
import type { Segment } from "../generated/Segment";

export interface Interval {
  start: number;
  end: number;
}

export interface Placed<T> extends Interval {
  item: T;
  lane: number;
  /** The item's index in the items laid out. */
  index: number;
}

export interface Lanes<T> {
  /** Each lane's items, sorted by start (and so by end: they do not overlap). */
  lanes: Placed<T>[][];
  /** Every placed item, in start order. */
  placed: Placed<T>[];
  start: number;
  end: number;
}

/**
 * The span a step covers on the timeline: from its first segment's start to its last
 * segment's end, an open segment lasting until `now`. `null` when it never started.
 */
export function spanOf(segments: readonly Segment[], now: number): Interval | null {
  if (segments.length === 0) return null;
  let start = Infinity;
  let end = -Infinity;
  for (const s of segments) {
    const e = s.end_ms ?? Math.max(now, s.start_ms);
    if (s.start_ms < start) start = s.start_ms;
    if (e > end) end = e;
  }
  return { start, end: Math.max(start, end) };
}

/** A binary min-heap of numbers with a payload, small and allocation-light. */
class Heap<V> {
  private keys: number[] = [];
  private values: V[] = [];
  get size(): number {
    return this.keys.length;
  }
  peekKey(): number {
    return this.keys[0];
  }
  push(key: number, value: V): void {
    const k = this.keys;
    const v = this.values;
    let i = k.length;
    k.push(key);
    v.push(value);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (k[p] <= key) break;
      k[i] = k[p];
      v[i] = v[p];
      i = p;
    }
    k[i] = key;
    v[i] = value;
  }
  pop(): V {
    const k = this.keys;
    const v = this.values;
    const top = v[0];
    const lastK = k.pop()!;
    const lastV = v.pop()!;
    const n = k.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && k[r] < k[l] ? r : l;
        if (k[c] >= lastK) break;
        k[i] = k[c];
        v[i] = v[c];
        i = c;
      }
      k[i] = lastK;
      v[i] = lastV;
    }
    return top;
  }
}

/**
 * Places items on as few lanes as their overlaps need, in O(n log n). Items are taken in
 * start order (ties: longer first, then input order); each goes on the lowest-numbered lane
 * that is free at its start. An item ending exactly when another starts frees its lane.
 */
export function assignLanes<T>(items: readonly T[], spanOfItem: (item: T) => Interval | null): Lanes<T> {
  const placed: Placed<T>[] = [];
  items.forEach((item, index) => {
    const span = spanOfItem(item);
    if (span) placed.push({ item, lane: -1, index, start: span.start, end: Math.max(span.start, span.end) });
  });
  // Steps mostly come in the order they started: then there is nothing to sort.
  let inOrder = true;
  for (let i = 1; i < placed.length && inOrder; i++) {
    const a = placed[i - 1];
    const b = placed[i];
    inOrder = a.start < b.start || (a.start === b.start && a.end >= b.end);
  }
  let sorted = placed;
  if (!inOrder) {
    const order = placed.map((_, i) => i);
    order.sort((a, b) => placed[a].start - placed[b].start || placed[b].end - placed[a].end || a - b);
    sorted = order.map((i) => placed[i]);
  }

  const busy = new Heap<number>(); // key: end time, value: lane
  const free = new Heap<number>(); // key: lane number, value: lane
  const lanes: Placed<T>[][] = [];
  let start = Infinity;
  let end = -Infinity;
  for (const p of sorted) {
    while (busy.size > 0 && busy.peekKey() <= p.start) {
      const lane = busy.pop();
      free.push(lane, lane);
    }
    let lane: number;
    if (free.size > 0) {
      lane = free.pop();
    } else {
      lane = lanes.length;
      lanes.push([]);
    }
    p.lane = lane;
    lanes[lane].push(p);
    busy.push(p.end, lane);
    if (p.start < start) start = p.start;
    if (p.end > end) end = p.end;
  }
  return { lanes, placed: sorted, start: lanes.length ? start : 0, end: lanes.length ? end : 0 };
}

/**
 * The items of one lane that intersect `[from, to]`, by binary search (a lane's items are
 * sorted and do not overlap).
 */
export function visibleInLane<T>(lane: readonly Placed<T>[], from: number, to: number): Placed<T>[] {
  let lo = 0;
  let hi = lane.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (lane[mid].end < from) lo = mid + 1;
    else hi = mid;
  }
  const out: Placed<T>[] = [];
  for (let i = lo; i < lane.length && lane[i].start <= to; i++) out.push(lane[i]);
  return out;
}

/**
 * Lanes kept up to date as a run streams: built once, then each changed item is applied where
 * it is, without laying out the other thousands again. A step that starts (after every other)
 * goes on the lowest lane that is free by then, as a full layout would put it; a step whose
 * span grows or ends stays where it is while it does not reach the next one in its lane; items
 * whose span ends at "now" grow with it. Anything else (a span that moved, or runs into its
 * neighbour) lays everything out again.
 */
export class LaneLayout<T> {
  lanes: Placed<T>[][] = [];
  placed: Placed<T>[] = [];
  start = 0;
  end = 0;
  /** Each item's place, by its index in the items. */
  private at: Array<Placed<T> | null> = [];
  /** Items whose span lasts until now. */
  private open = new Set<number>();
  /** Full layouts made (for tests). */
  rebuilds = 0;
  /** A number per lane that changes whenever the lane does: what is drawn of it may be kept till then. */
  stamps: number[] = [];
  private stamp = 0;

  constructor(
    items: readonly T[],
    private readonly spanOfItem: (item: T) => Interval | null,
    private readonly isOpen: (item: T) => boolean,
  ) {
    this.rebuild(items);
  }

  rebuild(items: readonly T[]): void {
    this.rebuilds++;
    const { lanes, placed, start, end } = assignLanes(items, this.spanOfItem);
    this.lanes = lanes;
    this.placed = placed;
    this.start = start;
    this.end = end;
    this.stamps = lanes.map(() => ++this.stamp);
    this.at = items.map(() => null);
    this.open.clear();
    for (const p of placed) {
      this.at[p.index] = p;
      if (this.isOpen(p.item)) this.open.add(p.index);
    }
  }

  /** Takes in the items at `changed` (the rest are as they were). */
  update(items: readonly T[], changed: readonly number[]): void {
    if (items.length !== this.at.length) return this.rebuild(items);
    for (const i of changed) {
      if (!this.apply(i, items[i])) return this.rebuild(items);
    }
  }

  /** Items lasting until now grow to `span`'s new end (the caller's "now" moved). */
  grow(items: readonly T[]): void {
    for (const i of this.open) {
      const p = this.at[i];
      const span = p && this.spanOfItem(items[i]);
      if (!p || !span) continue;
      const end = Math.max(p.start, span.end);
      if (end === p.end) continue;
      p.end = end;
      this.stamps[p.lane] = ++this.stamp;
      if (p.end > this.end) this.end = p.end;
    }
  }

  private apply(i: number, item: T): boolean {
    const old = this.at[i];
    const span = this.spanOfItem(item);
    if (this.isOpen(item)) this.open.add(i);
    else this.open.delete(i);
    if (!span) return old === null;
    const end = Math.max(span.start, span.end);
    if (old) {
      if (old.start !== span.start) return false;
      const lane = this.lanes[old.lane];
      const k = lane.indexOf(old);
      const next = lane[k + 1];
      if (next && next.start < end) return false;
      old.item = item;
      old.end = end;
      this.stamps[old.lane] = ++this.stamp;
      if (end > this.end) this.end = end;
      return true;
    }
    // A new item: only one that starts after every other is placed as a full layout would.
    const last = this.placed[this.placed.length - 1];
    if (last && span.start < last.start) return false;
    let lane = this.lanes.findIndex((l) => l[l.length - 1].end <= span.start);
    if (lane < 0) {
      lane = this.lanes.length;
      this.lanes.push([]);
    }
    this.stamps[lane] = ++this.stamp;
    const p: Placed<T> = { item, lane, index: i, start: span.start, end };
    this.lanes[lane].push(p);
    this.placed.push(p);
    this.at[i] = p;
    if (this.placed.length === 1) this.start = span.start;
    if (end > this.end) this.end = end;
    return true;
  }
}
