// Reloading on live signals: bursts of signals must not pile up requests, and a late answer
// must not overwrite a newer one.

/**
 * Wraps `load` so that at most one call runs at a time; triggers while it runs are merged
 * into one more call after it.
 */
export function coalesce(load: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | null = null;
  let again = false;
  const run = (): Promise<void> => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      try {
        do {
          again = false;
          await load();
        } while (again);
      } finally {
        running = null;
      }
    })();
    return running;
  };
  return run;
}

/** Calls `fn` once, `ms` after the last of a burst of calls. */
export function debounce(fn: () => void, ms: number): { (): void; cancel(): void } {
  let timer: ReturnType<typeof setTimeout> | null = null;
  const call = () => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      fn();
    }, ms);
  };
  call.cancel = () => {
    if (timer) clearTimeout(timer);
    timer = null;
  };
  return call;
}

/**
 * Calls `fn` at once, then at most once every `ms` while calls keep coming (the last call of
 * a burst is never lost). For following a busy run: it refreshes during a stream of events,
 * which a debounce would hold back until the stream paused.
 */
export function throttle(fn: () => void, ms: number | (() => number)): { (): void; cancel(): void } {
  const interval = typeof ms === "number" ? () => ms : ms;
  let last = -Infinity;
  let timer: ReturnType<typeof setTimeout> | null = null;
  const fire = () => {
    timer = null;
    last = Date.now();
    fn();
  };
  const call = () => {
    if (timer) return;
    const wait = last + interval() - Date.now();
    if (wait <= 0) fire();
    else timer = setTimeout(fire, wait);
  };
  call.cancel = () => {
    if (timer) clearTimeout(timer);
    timer = null;
  };
  return call;
}
