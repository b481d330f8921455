// The whole app over the mock, on the Approvals view, its manual gate turned into `proposal`
// and selected (with who may answer it): for tests of how one kind of question is shown and
// decided.
import { mount, unmount } from "svelte";
import App from "../App.svelte";
import type { Proposal } from "../generated/Proposal";
import type { WhoMayAnswer } from "../generated/WhoMayAnswer";
import { MockBackend } from "../ipc/mock";
import { createFixtures } from "../ipc/fixtures";
import { setBackend } from "../lib/backend";
import { itemKey } from "../lib/inbox";
import { resetLive } from "../lib/live";
import { navigate } from "../lib/router.svelte";
import { settle } from "../lib/testing";
import { inbox } from "./inboxStore.svelte";

export interface MountedInbox {
  mock: MockBackend;
  /** The arguments of each call of `method` the window made. */
  calls: (method: string) => unknown[];
  unmount: () => void;
}

export async function mountInboxWith(proposal: Proposal, whoMayAnswer: WhoMayAnswer = {}): Promise<MountedInbox> {
  resetLive();
  inbox.reset();
  const fixtures = createFixtures(Date.UTC(2026, 10, 26, 9, 0, 0));
  const gate = fixtures.runs.flatMap((r) => r.approvals).find((a) => a.proposal.kind === "gate");
  if (!gate) throw new Error("the fixtures have a gate");
  gate.proposal = proposal;
  gate.who_may_answer = whoMayAnswer;
  const mock = new MockBackend(fixtures);
  setBackend(mock);
  navigate({ view: "approvals" });
  await import("./ApprovalsView.svelte");
  const host = document.body.appendChild(document.createElement("div"));
  const app = mount(App, { target: host });
  await settle();
  const item = inbox.state.items.find((i) => i.proposal.kind === proposal.kind);
  if (!item) throw new Error(`the ${proposal.kind} is listed`);
  inbox.select(itemKey(item));
  await settle();
  return {
    mock,
    calls: (method) => mock.calls.filter((c) => c.method === method).map((c) => c.args[0]),
    unmount: () => {
      unmount(app);
      host.remove();
    },
  };
}
