// Who may answer a question (the run's `approvers`, `self_approval: false`) is shown beside
// why it waits; a question anyone may answer says nothing of it.
import { afterEach, describe, expect, it } from "vitest";
import { text } from "../lib/testing";
import { mountInboxWith, type MountedInbox } from "./inboxWith";

let mounted: MountedInbox | null = null;

afterEach(() => mounted?.unmount());

describe("who may answer", () => {
  it("names the approvers and the starter who may not approve", async () => {
    mounted = await mountInboxWith(
      { kind: "gate", message: "Ship it?" },
      { only: ["lead", "reviewer"], not_approving: "dana" },
    );
    const who = text(document, '[data-testid="approval-who"]');
    expect(who).toContain("May answer lead, reviewer.");
    expect(who).toContain("dana started the run and may reject but not approve it.");
  });

  it("says nothing when anyone may answer", async () => {
    mounted = await mountInboxWith({ kind: "gate", message: "Ship it?" });
    expect(document.querySelector('[data-testid="approval-detail"]')).not.toBeNull();
    expect(document.querySelector('[data-testid="approval-who"]')).toBeNull();
  });
});
