// A run that waits for a signal, in the window: its `wait_signal` step names the signal and
// offers the Send signal form; data that is not JSON is refused in words; a signal sent from
// the form is the step's output and the run goes on; the same key twice is one signal.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mount, unmount } from "svelte";
import App from "../App.svelte";
import { MockBackend } from "../ipc/mock";
import { createFixtures } from "../ipc/fixtures";
import { SIGNAL_NAME, SIGNAL_RUN } from "../ipc/signalFixture";
import { setBackend } from "../lib/backend";
import { resetLive } from "../lib/live";
import { navigate } from "../lib/router.svelte";
import { settle, text } from "../lib/testing";

let mock: MockBackend;
let app: ReturnType<typeof mount>;
let host: HTMLElement;

beforeEach(async () => {
  await import("./RunView.svelte");
  resetLive();
  mock = new MockBackend(createFixtures(Date.UTC(2026, 10, 26, 9, 0, 0)));
  setBackend(mock);
  host = document.body.appendChild(document.createElement("div"));
  navigate({ view: "run", runId: SIGNAL_RUN, step: "deployed", tab: null });
  app = mount(App, { target: host });
  for (let i = 0; i < 8; i++) await settle();
});

afterEach(() => {
  unmount(app);
  host.remove();
});

function fill(name: string, value: string) {
  const field = document.querySelector<HTMLInputElement | HTMLTextAreaElement>(`[data-testid="signal-form"] [name="${name}"]`)!;
  field.value = value;
  field.dispatchEvent(new Event("input", { bubbles: true }));
}

async function submit() {
  document.querySelector<HTMLFormElement>('[data-testid="signal-form"]')!.requestSubmit();
  for (let i = 0; i < 4; i++) await settle();
}

describe("a step that waits for a signal", () => {
  it("names the signal, refuses data that is not JSON, and a sent signal is the step's output", async () => {
    expect(text(document, '[data-testid="signal-name"]')).toBe(SIGNAL_NAME);
    fill("data", "{version: 1");
    await submit();
    expect(text(document, '[data-testid="signal-form"] [role="alert"]')).toContain("the signal's data is not JSON");
    expect((await mock.getRun(SIGNAL_RUN)).head.run.status).toBe("running");

    fill("data", '{"version": "1.2.3"}');
    fill("key", "release-1.2.3");
    await submit();
    const step = await mock.getStep(SIGNAL_RUN, "deployed");
    expect(step.row.status).toBe("succeeded");
    expect(step.output).toEqual({ version: "1.2.3" });
    expect((await mock.getRun(SIGNAL_RUN)).head.run.status).toBe("succeeded");
    expect(document.querySelector('[data-testid="signal-form"]')).toBeNull();
    // The same key again is the same signal.
    const again = await mock.sendSignal(SIGNAL_NAME, '{"version": "9"}', "release-1.2.3");
    expect(again.recorded).toBe(false);
    expect(mock.calls.filter((c) => c.method === "sendSignal").map((c) => c.args)).toEqual([
      [SIGNAL_NAME, "{version: 1", ""],
      [SIGNAL_NAME, '{"version": "1.2.3"}', "release-1.2.3"],
      [SIGNAL_NAME, '{"version": "9"}', "release-1.2.3"],
    ]);
  });
});
