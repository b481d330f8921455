/// <reference types="svelte" />
/// <reference types="vite/client" />

import type { Backend } from "./ipc/backend";

declare global {
  interface Window {
    /** A Backend installed by browser tests before the app loads. */
    __STEPWISE_MOCK__?: Backend;
  }
}
