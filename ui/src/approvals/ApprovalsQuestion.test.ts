// An agent's question in the inbox: `a` opens the reply box, Enter sends the answer (never an
// empty one), Shift+Enter is a new line, and the mock refuses approving it without an answer.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mount, unmount } from "svelte";
import App from "../App.svelte";
import { MockBackend } from "../ipc/mock";
import { createFixtures } from "../ipc/fixtures";
import { setBackend } from "../lib/backend";
import { resetLive } from "../lib/live";
import { navigate } from "../lib/router.svelte";
import { press, settle, text, typeInto } from "../lib/testing";
import { inbox } from "./inboxStore.svelte";
import { itemKey } from "../lib/inbox";

let mock: MockBackend;
let app: ReturnType<typeof mount>;
let host: HTMLElement;

const calls = (method: string) => mock.calls.filter((c) => c.method === method).map((c) => c.args[0]);

beforeEach(async () => {
  resetLive();
  inbox.reset();
  const fixtures = createFixtures(Date.UTC(2026, 10, 26, 9, 0, 0));
  // The manual gate becomes an agent's question.
  const gate = fixtures.runs.flatMap((r) => r.approvals).find((a) => a.proposal.kind === "gate");
  if (!gate) throw new Error("the fixtures have a gate");
  gate.proposal = { kind: "question", question: "Which port should the server use?", answer: null };
  mock = new MockBackend(fixtures);
  setBackend(mock);
  navigate({ view: "approvals" });
  await import("./ApprovalsView.svelte");
  host = document.body.appendChild(document.createElement("div"));
  app = mount(App, { target: host });
  await settle();
  const question = inbox.state.items.find((i) => i.proposal.kind === "question");
  if (!question) throw new Error("the question is listed");
  inbox.select(itemKey(question));
  await settle();
});

afterEach(() => {
  unmount(app);
  host.remove();
});

describe("an agent's question", () => {
  it("shows the question, and a answers it with Enter", async () => {
    expect(text(document, '[data-testid="question-preview"] blockquote')).toBe("Which port should the server use?");
    expect(text(document, '[data-testid="decide-bar"] .btn.primary')).toContain("Answer");
    press("a");
    await settle();
    expect(calls("approveStep")).toHaveLength(0);
    const box = document.querySelector<HTMLTextAreaElement>('[data-testid="answer-box"]')!;
    expect(document.activeElement).toBe(box);
    // An empty answer is not sent.
    press("Enter", box);
    await settle();
    expect(calls("approveStep")).toHaveLength(0);
    expect(text(document, '[data-testid="decide-bar"] .problem')).toContain("Write an answer");
    typeInto(box, "8080");
    // Shift+Enter is a new line, not a send.
    press("Enter", box, { shiftKey: true });
    await settle();
    expect(calls("approveStep")).toHaveLength(0);
    const question = inbox.state.items.find((i) => i.proposal.kind === "question")!;
    press("Enter", box);
    await settle();
    expect(calls("approveStep")).toEqual([
      { run: question.run_id, step: question.step, proposalHash: question.proposal_hash, editedAnswer: "8080" },
    ]);
    expect(inbox.state.items.some((i) => i.proposal.kind === "question")).toBe(false);
    expect(text(document, ".toasts")).toContain("Answered");
  });

  it("is never approved without an answer", async () => {
    const question = inbox.state.items.find((i) => i.proposal.kind === "question")!;
    await expect(mock.approveStep({ run: question.run_id, step: question.step, proposalHash: question.proposal_hash })).rejects.toMatchObject({
      code: "invalid",
    });
  });
});
