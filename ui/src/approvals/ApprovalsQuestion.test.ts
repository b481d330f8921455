// An agent's question in the inbox: `a` opens the reply box, Enter sends the answer (never an
// empty one), Shift+Enter is a new line, and the mock refuses approving it without an answer.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { press, settle, text, typeInto } from "../lib/testing";
import { inbox } from "./inboxStore.svelte";
import { mountInboxWith, type MountedInbox } from "./inboxWith";

let mounted: MountedInbox;
const calls = (method: string) => mounted.calls(method);

beforeEach(async () => {
  mounted = await mountInboxWith({ kind: "question", question: "Which port should the server use?", answer: null });
});

afterEach(() => mounted.unmount());

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
    await expect(mounted.mock.approveStep({ run: question.run_id, step: question.step, proposalHash: question.proposal_hash })).rejects.toMatchObject({
      code: "invalid",
    });
  });
});
