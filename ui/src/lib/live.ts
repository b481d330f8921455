// Live signals: the app subscribes once; each view listens while it is shown and reloads
// what it shows of the change.
import type { LiveSignal } from "../generated/LiveSignal";
import type { Backend } from "../ipc/backend";

type Listener = (signal: LiveSignal) => void;

const listeners = new Set<Listener>();
let subscribed: Promise<void> | null = null;

/** Listens until the returned function is called. */
export function onLive(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function dispatchLive(signal: LiveSignal): void {
  for (const l of [...listeners]) {
    try {
      l(signal);
    } catch (error) {
      console.error("live listener failed", error);
    }
  }
}

/** Subscribes to the backend's signals, once per window. */
export function startLive(backend: Backend): Promise<void> {
  subscribed ??= backend.subscribeLive(dispatchLive);
  return subscribed;
}

/** For tests: forget the subscription and every listener. */
export function resetLive(): void {
  subscribed = null;
  listeners.clear();
}
