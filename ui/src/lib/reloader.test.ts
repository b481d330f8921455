import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { coalesce, throttle } from "./reloader";

describe("coalesce", () => {
  it("runs once more after a burst of triggers, never twice at a time", async () => {
    let running = 0;
    let most = 0;
    let runs = 0;
    const release: Array<() => void> = [];
    const load = coalesce(async () => {
      running++;
      most = Math.max(most, running);
      runs++;
      await new Promise<void>((r) => release.push(r));
      running--;
    });
    void load();
    void load();
    void load();
    const done = load();
    release.shift()!();
    await new Promise((r) => setTimeout(r, 0));
    release.shift()!();
    await done;
    expect(runs).toBe(2);
    expect(most).toBe(1);
  });
});

describe("throttle", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("refreshes at once, then every interval while events keep coming, and after the last", () => {
    const fn = vi.fn();
    const t = throttle(fn, 250);
    t();
    expect(fn).toHaveBeenCalledTimes(1);
    for (let i = 0; i < 10; i++) {
      vi.advanceTimersByTime(100);
      t();
    }
    // 1 s of events every 100 ms: the first call, then one per 250 ms.
    expect(fn.mock.calls.length).toBeGreaterThanOrEqual(4);
    expect(fn.mock.calls.length).toBeLessThanOrEqual(6);
    const before = fn.mock.calls.length;
    vi.advanceTimersByTime(300);
    expect(fn.mock.calls.length).toBe(before + 1);
    vi.advanceTimersByTime(1000);
    expect(fn.mock.calls.length).toBe(before + 1);
  });
});
