// A family of runs in the window: a child run listed under its parent, the parent's `workflow`
// step opening the child, the child's question naming the parent (and showing the custom
// step's stdin), and the Workflows view's Steps and Memory tabs.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mount, unmount } from "svelte";
import App from "../App.svelte";
import { MockBackend } from "../ipc/mock";
import { createFixtures } from "../ipc/fixtures";
import { CHILD_RUN, PARENT_RUN } from "../ipc/familyFixture";
import { setBackend } from "../lib/backend";
import { resetLive } from "../lib/live";
import { navigate } from "../lib/router.svelte";
import { settle, text } from "../lib/testing";
import { inbox } from "../approvals/inboxStore.svelte";

let mock: MockBackend;
let app: ReturnType<typeof mount>;
let host: HTMLElement;

beforeEach(async () => {
  // The views are loaded when first opened: load them first, so that mounting shows them.
  await Promise.all([import("./RunsView.svelte"), import("../run/RunView.svelte"), import("../approvals/ApprovalsView.svelte"), import("../workflows/WorkflowsView.svelte")]);
  resetLive();
  inbox.reset();
  mock = new MockBackend(createFixtures(Date.UTC(2026, 10, 26, 9, 0, 0)));
  setBackend(mock);
  host = document.body.appendChild(document.createElement("div"));
});

afterEach(() => {
  unmount(app);
  host.remove();
});

async function open(route: Parameters<typeof navigate>[0]) {
  navigate(route);
  app = mount(App, { target: host });
  for (let i = 0; i < 8; i++) await settle();
}

describe("a family of runs", () => {
  // The runs list and the steps table are virtual lists, drawn in a real browser
  // (tests/browser: "runs: a child run under its parent…"); here, what they are given.
  it("lists a child run right after its parent, and opens it from the parent's workflow step", async () => {
    const page = await mock.listRuns({ status: "all", query: "", offset: 0, limit: 500 });
    const ids = page.runs.map((r) => r.run_id);
    expect(ids.indexOf(CHILD_RUN)).toBe(ids.indexOf(PARENT_RUN) + 1);
    expect(page.runs[ids.indexOf(CHILD_RUN)]).toMatchObject({ is_child: true, parent: PARENT_RUN });
    const steps = await mock.getSteps(PARENT_RUN, "", 0, 10);
    expect(steps.rows.find((r) => r.id === "review")?.child_run).toBe(CHILD_RUN);

    await open({ view: "run", runId: PARENT_RUN, step: "review", tab: null });
    expect(document.querySelector<HTMLAnchorElement>('[data-testid="step-child-run"]')?.getAttribute("href")).toBe(`#/run/${CHILD_RUN}`);
    unmount(app);
    await open({ view: "run", runId: CHILD_RUN, step: null, tab: null });
    expect(text(document, '[data-testid="child-of"]')).toBe(`child run of ${PARENT_RUN.slice(0, 8)}`);
  });

  it("names the parent of a child's question and shows what the custom step reads on stdin", async () => {
    await open({ view: "approvals", run: CHILD_RUN, step: "count" });
    expect(text(document, '[data-testid="inbox-parent"]')).toBe(`· child of ${PARENT_RUN.slice(0, 8)} (review)`);
    expect(text(document, '[data-testid="approval-parent"]')).toBe(`child run of ${PARENT_RUN.slice(0, 8)}, its step review`);
    const stdin = document.querySelector('[data-testid="command-stdin"]')?.textContent ?? "";
    expect(JSON.parse(stdin)).toEqual({ inputs: { text: "Invoices are due in 30 days." }, run_id: CHILD_RUN, step_id: "count", workspace: "/home/dana/code/acme-billing" });
    expect(stdin).toContain('\n  "inputs": {');
  });
});

describe("the Workflows view's other tabs", () => {
  it("lists the step types, custom ones with their inputs and a broken manifest with why", async () => {
    await open({ view: "workflows" });
    document.querySelector<HTMLButtonElement>('[data-testid="tab-steps"]')!.click();
    await settle();
    const custom = document.querySelector('[data-testid="step-type"][data-name="word-count"]');
    expect(custom?.textContent).toContain("approval: ask");
    expect(custom?.textContent).toContain("with.text");
    expect(custom?.textContent).toContain("string, required");
    expect(document.querySelector('[data-name="broken"]')?.textContent).toContain("cannot be used");
    expect(document.querySelector('[data-name="read_file"]')).not.toBeNull();
  });

  it("lists a memory's entries with who remembered them, and forgets one", async () => {
    await open({ view: "workflows" });
    document.querySelector<HTMLButtonElement>('[data-testid="tab-memory"]')!.click();
    await settle();
    const keys = () => [...document.querySelectorAll<HTMLElement>('[data-testid="memory-entry"]')].map((e) => e.dataset.key);
    expect(keys()).toEqual(["build-command", "test-command"]);
    document.querySelector<HTMLButtonElement>('[aria-label="Forget build-command"]')!.click();
    await settle();
    expect(keys()).toEqual(["test-command"]);
    expect(mock.calls.filter((c) => c.method === "forgetMemory").map((c) => c.args)).toEqual([["project-notes", "build-command"]]);
  });
});
