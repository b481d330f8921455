import { describe, expect, it } from "vitest";
import type { ApprovalItem } from "../generated/ApprovalItem";
import { emptyInbox, itemKey, moveSelection, reconcileInbox, sortInbox } from "./inbox";

const item = (run: string, step: string, hash: string, at: number): ApprovalItem => ({
  run_id: run,
  workflow: "wf",
  workspace: "/w",
  step,
  attempt: 1,
  proposal: { kind: "gate", message: `${run}/${step}` },
  proposal_hash: hash,
  reason: "a manual gate",
  requested_seq: at,
  requested_at_ms: at,
  parent: null,
  who_may_answer: {},
});

const A = item("r1", "edit", "h1", 300);
const B = item("r2", "test", "h2", 200);
const C = item("r3", "gate", "h3", 100);

describe("sortInbox", () => {
  it("puts the newest question first", () => {
    expect(sortInbox([C, A, B]).map((i) => i.step)).toEqual(["edit", "test", "gate"]);
  });
});

describe("reconcileInbox", () => {
  it("selects the newest item first", () => {
    const s = reconcileInbox(emptyInbox(), [B, C, A]);
    expect(s.selected).toBe(itemKey(A));
  });

  it("keeps the selection across reloads", () => {
    const s1 = { ...reconcileInbox(emptyInbox(), [A, B, C]), selected: itemKey(B) };
    const s2 = reconcileInbox(s1, [A, B, C, item("r4", "x", "h4", 50)]);
    expect(s2.selected).toBe(itemKey(B));
  });

  it("moves on to the next item once the selected one is decided", () => {
    const s1 = { ...reconcileInbox(emptyInbox(), [A, B, C]), selected: itemKey(B) };
    const s2 = reconcileInbox(s1, [A, C], new Set([itemKey(B)]));
    expect(s2.selected).toBe(itemKey(C));
    expect(s2.stale.size).toBe(0);
    // The last one decided: the one before it.
    const s3 = reconcileInbox({ ...s2, selected: itemKey(C) }, [A], new Set([itemKey(C)]));
    expect(s3.selected).toBe(itemKey(A));
    expect(reconcileInbox(s3, [], new Set([itemKey(A)])).selected).toBeNull();
  });

  it("selects the fresh proposal that replaced a stale one, and marks it", () => {
    const s1 = reconcileInbox(emptyInbox(), [A, B, C]);
    expect(s1.selected).toBe(itemKey(A));
    const fresh = item("r1", "edit", "h1-new", 400);
    const s2 = reconcileInbox(s1, [fresh, B, C]);
    expect(s2.selected).toBe(itemKey(fresh));
    expect(s2.stale.get(itemKey(fresh))).toBe("h1");
    // The mark stays while the fresh item is there, and goes with it.
    expect(reconcileInbox(s2, [fresh, B, C]).stale.get(itemKey(fresh))).toBe("h1");
    expect(reconcileInbox(s2, [B, C]).stale.size).toBe(0);
  });

  it("marks a replaced proposal even when it was not the selected one", () => {
    const s1 = reconcileInbox(emptyInbox(), [A, B, C]);
    const fresh = item("r2", "test", "h2-new", 250);
    const s2 = reconcileInbox(s1, [A, fresh, C]);
    expect(s2.selected).toBe(itemKey(A));
    expect(s2.stale.has(itemKey(fresh))).toBe(true);
  });

  it("does not call it stale when this window decided it and the step asked again", () => {
    const s1 = reconcileInbox(emptyInbox(), [A, B]);
    const again = item("r1", "edit", "h1-attempt2", 500);
    const s2 = reconcileInbox(s1, [again, B], new Set([itemKey(A)]));
    expect(s2.stale.size).toBe(0);
    expect(s2.selected).toBe(itemKey(B));
  });
});

describe("moveSelection", () => {
  it("steps through the list and stops at its ends", () => {
    const s = reconcileInbox(emptyInbox(), [A, B, C]);
    expect(moveSelection(s, 1)).toBe(itemKey(B));
    expect(moveSelection({ ...s, selected: itemKey(C) }, 1)).toBe(itemKey(C));
    expect(moveSelection(s, -1)).toBe(itemKey(A));
    expect(moveSelection(emptyInbox(), 1)).toBeNull();
  });
});
