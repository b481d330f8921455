// The inbox as a person uses it: the whole app mounted over the mock, on the Approvals view.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mount, unmount } from "svelte";
import App from "../App.svelte";
import { MockBackend } from "../ipc/mock";
import { createFixtures, editProposal, UTILS_BEFORE } from "../ipc/fixtures";
import type { ApproveArgs, RejectArgs } from "../ipc/backend";
import { setBackend } from "../lib/backend";
import { resetLive } from "../lib/live";
import { navigate } from "../lib/router.svelte";
import { press, settle, text, typeInto } from "../lib/testing";
import { inbox } from "./inboxStore.svelte";

let mock: MockBackend;
let app: ReturnType<typeof mount>;
let host: HTMLElement;

const selected = () => text(document, '[data-testid="inbox"] [aria-selected="true"] .summary');
const count = () => document.querySelectorAll('[data-testid="inbox"] [role="option"]').length;
const calls = (method: string) => mock.calls.filter((c) => c.method === method).map((c) => c.args[0]);

beforeEach(async () => {
  resetLive();
  inbox.reset();
  mock = new MockBackend(createFixtures(Date.UTC(2026, 10, 26, 9, 0, 0)));
  setBackend(mock);
  navigate({ view: "approvals" });
  // The view is loaded when first opened: load it first, so that mounting shows it at once.
  await import("./ApprovalsView.svelte");
  host = document.body.appendChild(document.createElement("div"));
  app = mount(App, { target: host });
  await settle();
});

afterEach(() => {
  unmount(app);
  host.remove();
});

describe("the approvals inbox", () => {
  it("selects the newest question and shows its diff, with a count in the navigation", () => {
    expect(count()).toBe(8);
    expect(text(document, '[data-testid="approvals-count"]')).toBe("8");
    expect(selected()).toBe("src/utils.py");
    const added = [...document.querySelectorAll(".diff-row.add")].map((r) => r.textContent);
    const removed = [...document.querySelectorAll(".diff-row.del")].map((r) => r.textContent);
    expect(added.some((t) => t?.includes("def factorial(n: int) -> int:"))).toBe(true);
    expect(removed.some((t) => t?.includes("return sum(values) / len(values)"))).toBe(true);
    expect(text(document, '[data-testid="approval-reason"]')).toContain("edit_file needs approval by default");
  });

  it("moves with j and k", () => {
    press("j");
    expect(selected()).toBe("tests/test_utils.py");
    press("j");
    expect(selected()).toContain("python3 -m pytest");
    press("k");
    press("k");
    press("k");
    expect(selected()).toBe("src/utils.py");
  });

  it("approves the selected question with a, then selects the next", async () => {
    const first = inbox.state.items[0];
    press("a");
    await settle();
    expect(calls("approveStep")).toEqual([{ run: first.run_id, step: "edit", proposalHash: first.proposal_hash }]);
    expect(count()).toBe(7);
    expect(text(document, '[data-testid="approvals-count"]')).toBe("7");
    expect(selected()).toBe("tests/test_utils.py");
    expect(text(document, ".toasts")).toContain("Approved");
  });

  it("does not act on keys typed into a field", async () => {
    const comment = document.querySelector<HTMLInputElement>('input[aria-label^="Comment"]')!;
    comment.focus();
    for (const key of ["a", "r", "e", "j"]) press(key, comment);
    await settle();
    expect(calls("approveStep")).toHaveLength(0);
    expect(selected()).toBe("src/utils.py");
    expect(document.querySelector("#reject-reason")).toBeNull();
  });

  it("sends the comment typed with the approval", async () => {
    typeInto(document.querySelector<HTMLInputElement>('input[aria-label^="Comment"]')!, "looks right");
    press("a");
    await settle();
    expect((calls("approveStep")[0] as ApproveArgs).comment).toBe("looks right");
  });

  it("rejects with r, a reason and Enter", async () => {
    press("j"); // the new test file
    press("r");
    await settle();
    const box = document.querySelector<HTMLTextAreaElement>("#reject-reason")!;
    expect(box).not.toBeNull();
    expect(document.activeElement).toBe(box);
    typeInto(box, "a test per edge case, please");
    press("a", box); // typed, not an approval
    press("Enter", box);
    await settle();
    expect(calls("approveStep")).toHaveLength(0);
    expect(calls("rejectStep")).toMatchObject([{ step: "create_test", reason: "a test per edge case, please" }]);
    expect(count()).toBe(7);
    expect(document.querySelector("#reject-reason")).toBeNull();
  });

  it("asks for a reason before rejecting, and Esc closes the box", async () => {
    press("r");
    await settle();
    press("Enter", document.querySelector("#reject-reason")!);
    await settle();
    expect(calls("rejectStep")).toHaveLength(0);
    expect(text(document, '[data-testid="decide-bar"]')).toContain("Write a reason");
    press("Escape", document.querySelector("#reject-reason")!);
    expect(document.querySelector("#reject-reason")).toBeNull();
    press("j");
    expect(selected()).toBe("tests/test_utils.py");
  });

  it("edits the file with e, then approves the edited content with Ctrl+Enter", async () => {
    press("e");
    await settle();
    const editor = document.querySelector<HTMLTextAreaElement>("#edit-box")!;
    expect(editor.value).toContain("def factorial");
    expect(document.activeElement).toBe(editor);
    typeInto(editor, `${editor.value}\n# reviewed\n`);
    press("Enter", editor, { ctrlKey: true });
    await settle();
    const args = calls("approveStep")[0] as ApproveArgs;
    expect(args.editedContent).toMatch(/# reviewed\n$/);
    expect(count()).toBe(7);
  });

  it("edits a command as one argument per line", async () => {
    press("j");
    press("j"); // the pytest command
    press("e");
    await settle();
    const editor = document.querySelector<HTMLTextAreaElement>("#edit-box")!;
    expect(editor.value.split("\n")[0]).toBe("python3");
    typeInto(editor, "python3\n-m\npytest\n-x\n");
    press("Enter", editor, { metaKey: true });
    await settle();
    expect((calls("approveStep")[0] as ApproveArgs).editedCommand).toEqual({ argv: ["python3", "-m", "pytest", "-x"] });
  });

  it("marks a proposal that went stale and selects the fresh one", async () => {
    const old = inbox.state.items[0];
    const fresh = editProposal("src/utils.py", UTILS_BEFORE, `${UTILS_BEFORE}\n\ndef factorial(n):\n    return 1 if n < 2 else n * factorial(n - 1)\n`);
    mock.replaceProposal(old.run_id, "edit", fresh);
    await settle();
    expect(text(document, '[data-testid="stale-notice"]')).toContain("stale — replaced by a fresh proposal");
    const now = inbox.selectedItem!;
    expect(now.step).toBe("edit");
    expect(now.proposal_hash).not.toBe(old.proposal_hash);
    expect([...document.querySelectorAll(".diff-row.add")].some((r) => r.textContent?.includes("n * factorial(n - 1)"))).toBe(true);
    // Approving sends the fresh proposal's hash.
    press("a");
    await settle();
    expect((calls("approveStep")[0] as ApproveArgs).proposalHash).toBe(now.proposal_hash);
  });

  it("shows the backend's error code and message when a decision fails", async () => {
    mock.failNext("rejectStep", { code: "refused", message: "the proposal of step `edit` changed" });
    press("r");
    await settle();
    typeInto(document.querySelector<HTMLTextAreaElement>("#reject-reason")!, "no");
    press("Enter", document.querySelector("#reject-reason")!);
    await settle();
    const box = text(document, '[data-testid="approval-detail"] [role="alert"]');
    expect(box).toContain("refused");
    expect(box).toContain("the proposal of step `edit` changed");
    expect(count()).toBe(8);
    expect((calls("rejectStep")[0] as RejectArgs).reason).toBe("no");
  });
});

describe("an empty inbox", () => {
  it("says that nothing waits and where to go", async () => {
    for (const item of inbox.state.items) await mock.rejectStep({ run: item.run_id, step: item.step, proposalHash: item.proposal_hash, reason: "clearing" });
    await settle();
    expect(count()).toBe(0);
    expect(text(document, '[data-testid="empty"]')).toContain("Nothing waits for you");
    expect(document.querySelector('[data-testid="approvals-count"]')).toBeNull();
  });
});

describe("a run the engine could not go on with", () => {
  it("is said at once in a toast naming the run and why", async () => {
    mock.emit({ kind: "failed", run_id: "0123456789abcdef", message: "workspace: /home/me/gone does not exist" });
    await settle();
    const toasts = text(document, '[aria-live]');
    expect(toasts).toContain("Run 01234567 stopped");
    expect(toasts).toContain("/home/me/gone does not exist");
  });
});

describe("reviewing an edit hunk by hunk", () => {
  it("h opens the review, j/k move, n rejects a hunk, a applies the rest with the reason", async () => {
    const first = inbox.state.items[0];
    press("h");
    await settle();
    const hunks = () => [...document.querySelectorAll<HTMLElement>("[data-hunk]")];
    expect(hunks().map((h) => h.dataset.hunkState)).toEqual(["accepted", "accepted"]);
    expect(hunks()[0].getAttribute("aria-current")).toBe("true");
    press("j");
    await settle();
    expect(hunks()[1].getAttribute("aria-current")).toBe("true");
    press("k");
    press("n");
    await settle();
    expect(hunks().map((h) => h.dataset.hunkState)).toEqual(["rejected", "accepted"]);
    expect(text(document, '[data-testid="hunk-review"]')).toContain("rejecting 1");
    typeInto(document.querySelector<HTMLInputElement>('input[aria-label="Why the rejected hunks"]')!, "keep the docstring");
    press("a");
    await settle();
    expect(calls("approveStep")).toEqual([
      { run: first.run_id, step: "edit", proposalHash: first.proposal_hash, rejectedHunks: [1], hunkReason: "keep the docstring" },
    ]);
    expect(text(document, ".toasts")).toContain("Applied 1 of 2 hunks");
  });

  it("Esc leaves the review without deciding; y accepts", async () => {
    press("h");
    press("n");
    press("Escape");
    await settle();
    expect(document.querySelector("[data-hunk-state]")).toBeNull();
    press("h");
    press("y");
    press("a");
    await settle();
    expect(calls("approveStep")[0]).not.toHaveProperty("rejectedHunks");
  });
});
