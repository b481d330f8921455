// The one approvals inbox of the window: the nav badge and the Approvals view both read it;
// it reloads on `approvals` and `asked` signals whatever view is shown.
import type { AppError } from "../generated/AppError";
import type { UnreadableRun } from "../generated/UnreadableRun";
import { backend } from "../lib/backend";
import { toAppError } from "../lib/errors";
import { emptyInbox, itemKey, reconcileInbox, type InboxState } from "../lib/inbox";
import { coalesce } from "../lib/reloader";

class InboxStore {
  state: InboxState = $state.raw(emptyInbox());
  loaded = $state(false);
  error: AppError | null = $state.raw(null);
  /** Runs that could not be read: whatever of theirs waits is not in the list. */
  unreadable: UnreadableRun[] = $state.raw([]);
  /** Proposals decided in this window: when their step asks again, that is not staleness. */
  private decided = new Set<string>();

  readonly reload = coalesce(async () => {
    try {
      const inbox = await backend().listApprovals();
      this.state = reconcileInbox(this.state, inbox.items, this.decided);
      this.unreadable = inbox.unreadable;
      this.error = null;
    } catch (error) {
      this.error = toAppError(error);
    } finally {
      this.loaded = true;
    }
  });

  select(key: string | null): void {
    this.state = { ...this.state, selected: key };
  }

  markDecided(key: string): void {
    this.decided.add(key);
  }

  get selectedItem() {
    const key = this.state.selected;
    return key ? (this.state.items.find((i) => itemKey(i) === key) ?? null) : null;
  }

  /** For tests: start over. */
  reset(): void {
    this.state = emptyInbox();
    this.loaded = false;
    this.error = null;
    this.unreadable = [];
    this.decided.clear();
  }
}

export const inbox = new InboxStore();
