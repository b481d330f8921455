import { describe, expect, it } from "vitest";
import { assignLanes } from "./lanes";
import { axisTicks, laneBars } from "./timeline";

describe("laneBars", () => {
  const items = Array.from({ length: 10_000 }, (_, i) => ({ start: i * 100, end: i * 100 + 90 }));
  const lane = assignLanes(items, (x) => x).lanes[0];

  it("draws each step apart when zoomed in", () => {
    const bars = laneBars(lane, 0, 1_000, 0, 1); // 1 px per ms, first second
    expect(bars.map((b) => [b.x, b.w, b.count])).toEqual(Array.from({ length: 10 }, (_, i) => [i * 100, 90, 1]).concat([[1000, 90, 1]]));
  });

  it("merges steps too small to see when zoomed out, so a lane stays a few hundred elements", () => {
    const pxPerMs = 800 / 1_000_000; // the whole run in 800 px
    const bars = laneBars(lane, 0, 1_000_000, 0, pxPerMs);
    expect(bars.length).toBeLessThan(400);
    expect(bars.reduce((n, b) => n + b.count, 0)).toBe(10_000);
  });

  it("keeps a long step as its own bar right after a tiny one", () => {
    const lane = assignLanes([{ start: 0, end: 10 }, { start: 12, end: 40_000 }], (x) => x).lanes[0];
    const bars = laneBars(lane, 0, 40_000, 0, 800 / 40_000);
    expect(bars).toHaveLength(2);
    expect(bars[1]).toMatchObject({ count: 1, first: { start: 12 } });
  });
});

describe("axisTicks", () => {
  it("spaces ticks at a round interval at least the gap apart", () => {
    const ticks = axisTicks(0, 60_000, 800 / 60_000);
    expect(ticks[1].t - ticks[0].t).toBe(10_000);
    expect(ticks.map((t) => t.label)).toEqual(["0", "10 s", "20 s", "30 s", "40 s", "50 s", "1m"]);
  });
});
