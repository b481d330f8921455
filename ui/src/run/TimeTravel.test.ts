// Time travel from the window, over the mock: rewind a step's files (the proposal, then the
// approval by its hash), fork from a step with a changed input (the restore shown first), and
// two runs compared with their timelines aligned by step.
import { afterEach, describe, expect, it } from "vitest";
import { mount, unmount } from "svelte";
import App from "../App.svelte";
import { MockBackend } from "../ipc/mock";
import { createFixtures, type Fixtures } from "../ipc/fixtures";
import { setBackend } from "../lib/backend";
import { resetLive } from "../lib/live";
import { navigate, router } from "../lib/router.svelte";
import { settle, text, typeInto } from "../lib/testing";

const NOW = Date.UTC(2026, 10, 26, 9, 0, 0);
let app: ReturnType<typeof mount> | null = null;
let host: HTMLElement;
let mock: MockBackend;

/** The finished add-factorial run, whose `edit` step wrote src/utils.py. */
const editedRun = (f: Fixtures) => f.runs.find((r) => r.item.status === "succeeded" && r.detail.steps.some((s) => s.id === "edit" && s.operations.length))!;

async function open(route: Parameters<typeof navigate>[0], fixtures = createFixtures(NOW)): Promise<Fixtures> {
  resetLive();
  mock = new MockBackend(fixtures);
  setBackend(mock);
  navigate(route);
  await import("./RunView.svelte");
  await import("../compare/CompareView.svelte");
  host = document.body.appendChild(document.createElement("div"));
  app = mount(App, { target: host });
  await painted();
  return fixtures;
}

async function painted(): Promise<void> {
  await settle();
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  await settle();
}

afterEach(() => {
  if (app) unmount(app);
  app = null;
  host.remove();
});

const button = (label: string) => [...document.querySelectorAll<HTMLButtonElement>("button")].find((b) => b.textContent?.trim().startsWith(label))!;
const calls = (method: string) => mock.calls.filter((c) => c.method === method).map((c) => c.args);

describe("time travel in the Run view", () => {
  it("rewinds a step's files after showing what goes back, approved by the proposal's hash", async () => {
    const fixtures = createFixtures(NOW);
    const run = editedRun(fixtures);
    await open({ view: "run", runId: run.item.run_id, step: "edit", tab: null }, fixtures);
    button("Rewind to here").click();
    await settle();
    const panel = document.querySelector('[data-testid="time-travel"]')!;
    expect(panel.getAttribute("data-kind")).toBe("rewind");
    expect(text(panel, '[data-testid="restore-list"]')).toContain("src/utils.py");
    expect(panel.querySelector(".diff")?.textContent).toContain("as it was before");
    const proposed = calls("proposeRewind");
    expect(proposed).toEqual([[run.item.run_id, "edit", []]]);
    button("Rewind 1 file").click();
    await settle();
    const [rewound] = calls("rewindRun");
    expect(rewound.slice(0, 3)).toEqual([run.item.run_id, "edit", []]);
    expect(String(rewound[3])).toMatch(/^sha256:/);
    expect(document.querySelector('[data-testid="time-travel"]')).toBeNull();
  });

  it("forks from a step with a changed input, putting the workspace back first", async () => {
    const fixtures = createFixtures(NOW);
    const run = editedRun(fixtures);
    await open({ view: "run", runId: run.item.run_id, step: "edit", tab: null }, fixtures);
    button("Fork from here").click();
    await settle();
    typeInto(document.querySelector<HTMLInputElement>('input[aria-label="Input module"]')!, "src/other.py");
    button("Fork").click();
    await settle();
    expect(text(document, '[data-testid="restore-list"]')).toContain("src/utils.py");
    button("Put back and fork").click();
    await painted();
    const forks = calls("forkRun").map(([a]) => a as { inputs: Record<string, string>; proposalHash?: string });
    expect(forks).toHaveLength(2);
    expect(forks[0].inputs).toEqual({ module: "src/other.py" });
    expect(forks[0].proposalHash).toBeUndefined();
    expect(forks[1].proposalHash).toMatch(/^sha256:/);
    const route = router.route;
    expect(route.view === "run" && route.runId !== run.item.run_id).toBe(true);
    expect(text(document, ".run-header")).toContain(`fork of ${run.item.run_id.slice(0, 8)}`);
  });
});

describe("comparing two runs", () => {
  it("shows both timelines aligned by step and what differs", async () => {
    const fixtures = createFixtures(NOW);
    const same = fixtures.runs.filter((r) => r.item.workflow === "add-factorial");
    const [a, b] = [same[0].item.run_id, same[1].item.run_id];
    await open({ view: "compare", first: a, second: b }, fixtures);
    const view = document.querySelector('[data-testid="compare-view"]')!;
    const cells = [...view.querySelectorAll<HTMLElement>(".cell")];
    const steps = new Set(cells.map((c) => c.dataset.step));
    for (const step of steps) expect(cells.filter((c) => c.dataset.step === step)).toHaveLength(2);
    expect(cells.some((c) => c.dataset.verdict === "differs")).toBe(true);
    expect(text(view, '[data-testid="compare-verdict"]')).toContain("First difference");
  });
});
