// How long live updates take to reach the screen: for each update of a followed run, from when
// its first (oldest) event was recorded to the frame that shows it. Kept in a small ring (the newest
// 512) on `window.__stepwise_latency__`, which the app's benchmark reads through WebDriver.

const KEPT = 512;

interface Ring {
  /** Milliseconds from commit to paint, oldest first once full. */
  samples: number[];
  next: number;
}

function ring(): Ring {
  const w = globalThis as unknown as { __stepwise_latency__?: Ring };
  w.__stepwise_latency__ ??= { samples: [], next: 0 };
  return w.__stepwise_latency__;
}

/** Notes, once the next frame is painted, how long ago `recordedAtMs` (wall clock) was. */
export function recordLatency(recordedAtMs: number): void {
  if (!recordedAtMs || typeof requestAnimationFrame !== "function") return;
  requestAnimationFrame(() =>
    setTimeout(() => {
      const r = ring();
      const ms = Date.now() - recordedAtMs;
      if (r.samples.length < KEPT) r.samples.push(ms);
      else r.samples[r.next] = ms;
      r.next = (r.next + 1) % KEPT;
    }, 0),
  );
}
