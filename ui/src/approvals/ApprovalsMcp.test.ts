// An agent's call of an MCP server's tool in the inbox: the server, the tool and the arguments
// as JSON, approved with `a` like any proposal.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mount, unmount } from "svelte";
import App from "../App.svelte";
import { MockBackend } from "../ipc/mock";
import { createFixtures } from "../ipc/fixtures";
import { setBackend } from "../lib/backend";
import { resetLive } from "../lib/live";
import { navigate } from "../lib/router.svelte";
import { press, settle, text } from "../lib/testing";
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
  // The manual gate becomes an agent's MCP call.
  const gate = fixtures.runs.flatMap((r) => r.approvals).find((a) => a.proposal.kind === "gate");
  if (!gate) throw new Error("the fixtures have a gate");
  gate.proposal = { kind: "mcp_call", server: "files", tool: "read_text_file", arguments: { path: "notes.txt", head: 5 } };
  mock = new MockBackend(fixtures);
  setBackend(mock);
  navigate({ view: "approvals" });
  await import("./ApprovalsView.svelte");
  host = document.body.appendChild(document.createElement("div"));
  app = mount(App, { target: host });
  await settle();
  const call = inbox.state.items.find((i) => i.proposal.kind === "mcp_call");
  if (!call) throw new Error("the call is listed");
  inbox.select(itemKey(call));
  await settle();
});

afterEach(() => {
  unmount(app);
  host.remove();
});

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
