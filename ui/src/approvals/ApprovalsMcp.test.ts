// An agent's call of an MCP server's tool in the inbox: the server, the tool and the arguments
// as JSON, approved with `a` like any proposal.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { press, settle, text } from "../lib/testing";
import { inbox } from "./inboxStore.svelte";
import { mountInboxWith, type MountedInbox } from "./inboxWith";

let mounted: MountedInbox;
const calls = (method: string) => mounted.calls(method);

beforeEach(async () => {
  mounted = await mountInboxWith({ kind: "mcp_call", server: "files", tool: "read_text_file", arguments: { path: "notes.txt", head: 5 } });
});

afterEach(() => mounted.unmount());

describe("an agent's MCP call", () => {
  it("shows the server, tool and arguments, and a approves it", async () => {
    expect(text(document, '[data-testid="inbox"] [aria-selected="true"] .summary')).toBe("files.read_text_file");
    const preview = text(document, '[data-testid="mcp-preview"]');
    expect(preview).toContain("Call tool read_text_file of MCP server files");
    expect(preview).toContain('"path": "notes.txt"');
    expect(preview).toContain('"head": 5');
    const call = inbox.state.items.find((i) => i.proposal.kind === "mcp_call")!;
    press("a");
    await settle();
    expect(calls("approveStep")).toEqual([{ run: call.run_id, step: call.step, proposalHash: call.proposal_hash }]);
    expect(inbox.state.items.some((i) => i.proposal.kind === "mcp_call")).toBe(false);
  });
});
