import { describe, expect, it } from "vitest";
import { LaneLayout, assignLanes, spanOf, visibleInLane, type Interval } from "./lanes";

const lanesOf = (intervals: [number, number][]) => {
  const items = intervals.map(([start, end], i) => ({ id: `s${i}`, start, end }));
  const { lanes } = assignLanes(items, (x): Interval => ({ start: x.start, end: x.end }));
  return lanes.map((lane) => lane.map((p) => p.item.id));
};

describe("assignLanes", () => {
  it("puts a sequence of steps on one lane", () => {
    expect(lanesOf([[0, 10], [10, 20], [25, 30]])).toEqual([["s0", "s1", "s2"]]);
  });

  it("gives overlapping steps their own lanes", () => {
    expect(lanesOf([[0, 10], [5, 15], [6, 8]])).toEqual([["s0"], ["s1"], ["s2"]]);
  });

  it("reuses the lowest lane that has come free", () => {
    // s0 and s1 overlap; s2 starts after s0 ended (lane 0 free) while s1 still runs.
    expect(lanesOf([[0, 10], [2, 30], [12, 20], [21, 25]])).toEqual([["s0", "s2", "s3"], ["s1"]]);
  });

  it("uses as many lanes as the most steps running at once", () => {
    const intervals: [number, number][] = [];
    for (let i = 0; i < 200; i++) intervals.push([i * 10, i * 10 + 35]); // 4 at a time
    const lanes = lanesOf(intervals);
    expect(lanes.length).toBe(4);
    expect(lanes.flat().length).toBe(200);
  });

  it("never puts overlapping steps on the same lane (random check)", () => {
    let seed = 1;
    const rand = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    const items = Array.from({ length: 2000 }, (_, i) => {
      const start = Math.floor(rand() * 100_000);
      return { id: i, start, end: start + Math.floor(rand() * 5_000) };
    });
    const { lanes, placed } = assignLanes(items, (x) => x);
    expect(placed.length).toBe(2000);
    for (const lane of lanes)
      for (let i = 1; i < lane.length; i++) expect(lane[i].start).toBeGreaterThanOrEqual(lane[i - 1].end);
    // Optimal: lanes equal the largest number of items open at one instant.
    const points = items.flatMap((x) => [[x.start, 1], [x.end, -1]] as [number, number][]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    let open = 0;
    let most = 0;
    for (const [, d] of points) most = Math.max(most, (open += d));
    expect(lanes.length).toBe(most);
  });

  it("leaves out steps that never started", () => {
    const { lanes, placed } = assignLanes([{ segs: [] }, { segs: [{ kind: "executing" as const, start_ms: 5, end_ms: 9 }] }], (x) => spanOf(x.segs, 100));
    expect(placed.length).toBe(1);
    expect(lanes.length).toBe(1);
  });
});

describe("spanOf", () => {
  it("covers all segments, an open one lasting until now", () => {
    const span = spanOf(
      [
        { kind: "executing", start_ms: 100, end_ms: 150 },
        { kind: "waiting", start_ms: 150, end_ms: null },
      ],
      1_000,
    );
    expect(span).toEqual({ start: 100, end: 1_000 });
  });
});

describe("visibleInLane", () => {
  it("finds the items inside a time window", () => {
    const { lanes } = assignLanes(
      Array.from({ length: 100 }, (_, i) => ({ start: i * 10, end: i * 10 + 5 })),
      (x) => x,
    );
    const shown = visibleInLane(lanes[0], 203, 231);
    expect(shown.map((p) => p.start)).toEqual([200, 210, 220, 230]);
  });
});

describe("lanes kept up to date", () => {
  interface Step {
    s: number | null;
    e: number | null;
  }
  const span = (x: Step) => (x.s === null ? null : { start: x.s, end: x.e ?? 1_000 });
  const open = (x: Step) => x.s !== null && x.e === null;
  const lanesOf = (l: { lanes: { item: Step }[][] }, steps: Step[]) => l.lanes.map((lane) => lane.map((p) => steps.indexOf(p.item)));

  it("places a step that starts as a full layout would, without laying the others out again", () => {
    let steps: Step[] = [
      { s: 0, e: 10 },
      { s: 5, e: null },
      { s: null, e: null },
      { s: null, e: null },
    ];
    const layout = new LaneLayout(steps, span, open);
    expect(layout.rebuilds).toBe(1);
    // Step 0 ended at 10; step 2 starts at 12 on its lane, step 1 still runs.
    steps = [steps[0], steps[1], { s: 12, e: null }, steps[3]];
    layout.update(steps, [2]);
    // Step 1 ends; step 3 starts at 20 on the first free lane.
    steps = [steps[0], { s: 5, e: 18 }, steps[2], { s: 20, e: null }];
    layout.update(steps, [1, 3]);
    expect(layout.rebuilds).toBe(1);
    const full = assignLanes(steps, span);
    expect(lanesOf(layout, steps)).toEqual(lanesOf(full, steps));
    expect(layout.end).toBe(1_000);
  });

  it("lays everything out again when a change does not fit where it was", () => {
    let steps: Step[] = [
      { s: 0, e: 10 },
      { s: 10, e: 20 },
    ];
    const layout = new LaneLayout(steps, span, open);
    steps = [{ s: 0, e: 15 }, steps[1]];
    layout.update(steps, [0]);
    expect(layout.rebuilds).toBe(2);
    expect(lanesOf(layout, steps)).toEqual(lanesOf(assignLanes(steps, span), steps));
  });

  it("grows what lasts until now", () => {
    let now = 100;
    const steps: Step[] = [{ s: 0, e: null }];
    const grow = (x: Step) => (x.s === null ? null : { start: x.s, end: x.e ?? now });
    const layout = new LaneLayout(steps, grow, open);
    now = 250;
    layout.grow(steps);
    expect(layout.placed[0].end).toBe(250);
    expect(layout.end).toBe(250);
  });
});
