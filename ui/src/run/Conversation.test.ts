// An agent step read as its conversation: the whole app mounted over the mock, on the Run view
// of the fixture run whose `fix_tests` step is an agent's.
import { afterEach, describe, expect, it } from "vitest";
import { flushSync, mount, unmount } from "svelte";
import App from "../App.svelte";
import type { ConversationTurn } from "../generated/ConversationTurn";
import { MockBackend } from "../ipc/mock";
import { AGENT_REJECTION, AGENT_RULE } from "../ipc/agentFixture";
import { createFixtures, type Fixtures } from "../ipc/fixtures";
import { setBackend } from "../lib/backend";
import { resetLive } from "../lib/live";
import { navigate } from "../lib/router.svelte";
import { settle, text } from "../lib/testing";

const NOW = Date.UTC(2026, 10, 26, 9, 0, 0);
let app: ReturnType<typeof mount> | null = null;
let host: HTMLElement;

const agentRun = (fixtures: Fixtures) => fixtures.runs.find((r) => r.detail.steps.some((s) => s.kind === "agent"))!;

/** Mounts the app on the agent's run at `step`, the conversation changed by `change` first. */
async function open(step: string, change?: (turns: ConversationTurn[]) => ConversationTurn[]): Promise<void> {
  resetLive();
  const fixtures = createFixtures(NOW);
  const run = agentRun(fixtures);
  const agent = run.detail.steps.find((s) => s.kind === "agent")!;
  if (change) agent.conversation = change(agent.conversation!);
  setBackend(new MockBackend(fixtures));
  navigate({ view: "run", runId: run.item.run_id, step, tab: null });
  await import("./RunView.svelte");
  host = document.body.appendChild(document.createElement("div"));
  app = mount(App, { target: host });
  await painted();
}

/** The Run view reads the selected step once it has been painted: two frames, then settles. */
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

const panel = () => document.querySelector<HTMLElement>('[data-testid="step-panel"]')!;
const conversation = () => panel().querySelector<HTMLElement>('[data-testid="conversation"]');
const turns = () => [...panel().querySelectorAll<HTMLElement>('[data-testid="turn"]')];
const headings = () => [...panel().querySelectorAll("h3")].map((h) => (h.textContent ?? "").replace(/\s+/g, " ").trim());
/** A gate chip's words as read out (its glyph is hidden from screen readers). */
function gateText(within: HTMLElement): string {
  const chip = within.querySelector('[data-testid="call-gate"]');
  const words = [...(chip?.childNodes ?? [])].filter((n) => !(n instanceof Element && n.getAttribute("aria-hidden") === "true"));
  return words.map((n) => n.textContent).join("").replace(/\s+/g, " ").trim();
}
const call = (id: string) => panel().querySelector<HTMLElement>(`[data-testid="tool-call"][data-call-id="${id}"]`)!;

describe("an agent step's conversation", () => {
  it("is shown from the step that needs it, above the operations, which are folded away", async () => {
    await open("list");
    expect(conversation()).toBeNull();
    expect(headings()).toContain("Operations 1");
    const fixTests = [...panel().querySelectorAll<HTMLButtonElement>("dd button")].find((b) => b.textContent === "fix_tests")!;
    fixTests.click();
    flushSync();
    await painted();
    expect(text(panel(), "h2")).toBe("fix_tests");
    expect(conversation()).not.toBeNull();
    expect(headings()).toContain("Conversation 3 turns");
    const operations = [...panel().querySelectorAll("details")].find((d) => text(d, "summary").startsWith("Operations"))!;
    expect(text(operations, "summary")).toBe("Operations, as recorded 9");
    expect(operations.open).toBe(false);
    expect(conversation()!.compareDocumentPosition(operations) & Node.DOCUMENT_POSITION_FOLLOWING).toBeTruthy();
  });

  it("shows each turn in order: what the model said, its tokens and cost", async () => {
    await open("fix_tests");
    expect(turns().map((t) => text(t, "h4"))).toEqual(["Turn 1", "Turn 2", "Turn 3"]);
    expect(turns().map((t) => text(t, '[data-testid="turn-usage"]'))).toEqual([
      "1,184 in · 61 out · $0.00",
      "2,236 in · 214 out · $0.00",
      "2,690 in · 78 out · $0.00",
    ]);
    expect(text(turns()[0], '[data-testid="turn-text"]')).toBe("I'll run the tests first and read calc.py to see what they exercise.");
    expect(text(turns()[2], '[data-testid="turn-text"]')).toContain("All 3 tests pass now.");
    expect(turns().map((t) => t.querySelectorAll('[data-testid="tool-call"]').length)).toEqual([2, 3, 0]);
  });

  it("shows each call's gate and exactly what the model was told it returned", async () => {
    await open("fix_tests");
    const gate = (id: string) => gateText(call(id));
    const result = (id: string) => call(id).querySelector<HTMLElement>('[data-testid="call-result"]')!;

    expect(text(call("call_1"), "code")).toBe("run_command");
    expect(text(call("call_1"), "pre.args")).toBe('{ "argv": ["python3", "-m", "unittest", "-q"] }');
    expect(gate("call_1")).toBe(`allowed by rule ${AGENT_RULE}`);
    // A long result is folded, its first words still there to open.
    const failed = result("call_1") as HTMLDetailsElement;
    expect(failed.tagName).toBe("DETAILS");
    expect(failed.open).toBe(false);
    expect(text(failed, "summary")).toMatch(/^Returned \(\d+ lines, as the model was told\)$/);
    expect(failed.querySelector("pre")!.textContent).toMatch(/^exit code 1\nstdout:\n\nstderr:\n/);
    expect(failed.querySelector("pre")!.textContent).toContain("FAIL: test_small_values (test_calc.FactorialTest.test_small_values)");

    // A read runs with no gate; its result is shown at once.
    expect(call("call_2").querySelector('[data-testid="call-gate"]')).toBeNull();
    expect(result("call_2").tagName).toBe("DIV");
    expect(result("call_2").textContent).toContain("for k in range(2, n):");

    expect(gate("call_3")).toBe("approved by dana");
    expect(text(call("call_3"), "pre.args")).toContain('"path": "calc.py"');
    expect(text(result("call_3"), "pre")).toBe("`calc.py` was written as proposed");
    expect(gate("call_4")).toBe(`rejected by dana: ${AGENT_REJECTION}`);
    expect(call("call_4").querySelector('[data-testid="call-gate"]')!.classList.contains("tone-bad")).toBe(true);
    expect(text(result("call_4"), "pre")).toBe(`error: a person rejected this: ${AGENT_REJECTION}`);
    expect(text(result("call_5"), "pre")).toContain("exit code 0");
  });

  it("says what a turn and a call are still waiting for, and why a model call failed", async () => {
    await open("fix_tests", ([first, second]) => [
      first,
      {
        ...second,
        calls: [
          { ...second.calls[0], gate: { kind: "asked", reason: "edit_file needs approval by default" }, result: null, ops: [second.calls[0].ops[0]] },
          { ...second.calls[1], gate: null, ops: [], result: null },
        ],
      },
      { ...second, op: second.op + 50, replied: false, text: "", error: "provider: 503 Service Unavailable after 3 attempts", input_tokens: 0, output_tokens: 0, calls: [] },
      { ...second, op: second.op + 60, attempt: 2, replied: false, text: "", input_tokens: 0, output_tokens: 0, calls: [] },
    ]);
    expect(gateText(call("call_3"))).toBe("asks a person: edit_file needs approval by default");
    expect(call("call_3").querySelector('[data-testid="call-gate"]')!.classList.contains("tone-warn")).toBe(true);
    expect(text(call("call_3"), '[data-testid="call-result"]')).toBe("Waiting for a person…");
    expect(text(call("call_4"), '[data-testid="call-result"]')).toBe("Waiting for its turn…");

    const [, , failed, waiting] = turns();
    expect(text(failed, '[data-testid="turn-text"]')).toBe("The model call failed: provider: 503 Service Unavailable after 3 attempts");
    expect(failed.querySelector('[data-testid="turn-text"]')!.classList.contains("bad")).toBe(true);
    expect(text(waiting, "h4")).toBe("Turn 4 · attempt 2");
    expect(text(waiting, '[data-testid="turn-text"]')).toBe("Waiting for the model…");
    expect(waiting.querySelector('[data-testid="turn-usage"]')).toBeNull();
  });
});
