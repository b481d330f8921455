// A run of another machine, in the window: the header says which machine it belongs to and
// that a process there drives it; a run of this machine says nothing of it.
import { afterEach, describe, expect, it } from "vitest";
import { mount, unmount } from "svelte";
import App from "../App.svelte";
import { MockBackend } from "../ipc/mock";
import { createFixtures } from "../ipc/fixtures";
import { setBackend } from "../lib/backend";
import { resetLive } from "../lib/live";
import { navigate } from "../lib/router.svelte";
import { settle, text } from "../lib/testing";

let app: ReturnType<typeof mount> | null = null;
let host: HTMLElement | null = null;

afterEach(() => {
  if (app) unmount(app);
  host?.remove();
});

async function open(elsewhere: boolean): Promise<void> {
  await import("./RunView.svelte");
  resetLive();
  const fixtures = createFixtures(Date.UTC(2026, 10, 26, 9, 0, 0));
  const run = fixtures.runs[0];
  run.detail.host = elsewhere ? "buildbox" : "dana-laptop";
  run.detail.elsewhere = elsewhere;
  setBackend(new MockBackend(fixtures));
  host = document.body.appendChild(document.createElement("div"));
  navigate({ view: "run", runId: run.item.run_id, step: null, tab: null });
  app = mount(App, { target: host });
  for (let i = 0; i < 8; i++) await settle();
}

describe("a run's machine", () => {
  it("is named, with who drives it, for a run of another machine", async () => {
    await open(true);
    expect(text(document, '[data-testid="run-elsewhere"]')).toContain("This run belongs to buildbox, where its workspace is: a process there drives it.");
    expect(text(document, ".run-header .facts")).toContain("on buildbox");
  });

  it("is only named for a run of this machine", async () => {
    await open(false);
    expect(document.querySelector('[data-testid="run-elsewhere"]')).toBeNull();
    expect(text(document, ".run-header .facts")).toContain("on dana-laptop");
  });
});
