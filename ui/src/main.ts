import { mount } from "svelte";
import App from "./App.svelte";
import { setBackend } from "./lib/backend";
import { tauriBackend } from "./ipc/tauri";
import type { Backend } from "./ipc/backend";
import "./app.css";

async function chooseBackend(): Promise<Backend> {
  // Browser tests install a mock before the app's script runs.
  if (window.__STEPWISE_MOCK__) return window.__STEPWISE_MOCK__;
  // `npm run dev` in a plain browser: `?mock` loads the fixtures (never part of a build).
  if (import.meta.env.DEV && new URLSearchParams(location.search).has("mock")) {
    const [{ MockBackend }, { createFixtures }] = await Promise.all([import("./ipc/mock"), import("./ipc/fixtures")]);
    return new MockBackend(createFixtures());
  }
  return tauriBackend;
}

chooseBackend().then((backend) => {
  setBackend(backend);
  mount(App, { target: document.getElementById("app")! });
});
