// The Backend the app talks to, chosen once at start (main.ts): Tauri's, or a mock.
import type { Backend } from "../ipc/backend";

let current: Backend | null = null;

export function setBackend(backend: Backend): void {
  current = backend;
}

export function backend(): Backend {
  if (!current) throw new Error("no backend: main.ts sets it before the app mounts");
  return current;
}
