// A shared "now" for durations of what is still going. It ticks once a second only while a
// view asks for it; no data is fetched on the tick.
export const clock = $state({ now: Date.now() });

let users = 0;
let timer: ReturnType<typeof setInterval> | null = null;

/** Keeps the clock ticking until the returned function is called. */
export function useClock(): () => void {
  users++;
  clock.now = Date.now();
  timer ??= setInterval(() => (clock.now = Date.now()), 1000);
  return () => {
    users--;
    if (users <= 0 && timer) {
      clearInterval(timer);
      timer = null;
      users = 0;
    }
  };
}
