// The approvals inbox: its order, which item is selected after a reload, and which items
// replaced a proposal that went stale while a person was looking at it.
import type { ApprovalItem } from "../generated/ApprovalItem";

/** One exact question: this run, this step, this proposal. */
export function itemKey(a: Pick<ApprovalItem, "run_id" | "step" | "proposal_hash">): string {
  return `${a.run_id}\u0000${a.step}\u0000${a.proposal_hash}`;
}

/** Where a question is asked: a run's step (a fresh proposal keeps its slot). */
export function slotKey(a: Pick<ApprovalItem, "run_id" | "step">): string {
  return `${a.run_id}\u0000${a.step}`;
}

/** Newest first; ties by the log's order. */
export function sortInbox(items: readonly ApprovalItem[]): ApprovalItem[] {
  return [...items].sort(
    (a, b) =>
      b.requested_at_ms - a.requested_at_ms ||
      b.requested_seq - a.requested_seq ||
      (a.run_id < b.run_id ? -1 : a.run_id > b.run_id ? 1 : 0),
  );
}

export interface InboxState {
  items: ApprovalItem[];
  /** The selected item's `itemKey`, or `null` when the inbox is empty. */
  selected: string | null;
  /** Items that replaced a stale proposal: fresh item key → the replaced proposal's hash. */
  stale: Map<string, string>;
}

export const emptyInbox = (): InboxState => ({ items: [], selected: null, stale: new Map() });

/**
 * The inbox after a reload.
 * - The selected item stays selected while it is there.
 * - When it is gone and its step now asks with another proposal, that fresh proposal is
 *   selected and marked as replacing a stale one, unless this window decided the old one
 *   (`decidedHere`: the step simply asked again).
 * - When it is gone otherwise (decided), the item that took its place in the list is
 *   selected, so that deciding moves on to the next question.
 * - With nothing selected, the newest item is.
 */
export function reconcileInbox(
  prev: InboxState,
  incoming: readonly ApprovalItem[],
  decidedHere: ReadonlySet<string> = new Set(),
): InboxState {
  const items = sortInbox(incoming);
  const keys = new Set(items.map(itemKey));
  const prevKeys = new Set(prev.items.map(itemKey));

  const stale = new Map<string, string>();
  for (const [key, hash] of prev.stale) if (keys.has(key)) stale.set(key, hash);
  // Any proposal that vanished while its step now asks anew was replaced.
  const goneBySlot = new Map<string, ApprovalItem>();
  for (const old of prev.items) {
    const key = itemKey(old);
    if (!keys.has(key) && !decidedHere.has(key)) goneBySlot.set(slotKey(old), old);
  }
  for (const item of items) {
    const key = itemKey(item);
    if (prevKeys.has(key)) continue;
    const old = goneBySlot.get(slotKey(item));
    if (old && old.proposal_hash !== item.proposal_hash) stale.set(key, old.proposal_hash);
  }

  let selected: string | null = null;
  if (prev.selected && keys.has(prev.selected)) {
    selected = prev.selected;
  } else if (prev.selected) {
    const old = prev.items.find((i) => itemKey(i) === prev.selected);
    const fresh = old && !decidedHere.has(prev.selected)
      ? items.find((i) => slotKey(i) === slotKey(old) && i.proposal_hash !== old.proposal_hash)
      : undefined;
    if (fresh) {
      selected = itemKey(fresh);
    } else {
      // The item that followed it, else the one before: the list closes over the gap.
      const at = prev.items.findIndex((i) => itemKey(i) === prev.selected);
      const after = prev.items.slice(at + 1).find((i) => keys.has(itemKey(i)));
      const before = prev.items.slice(0, Math.max(0, at)).reverse().find((i) => keys.has(itemKey(i)));
      const next = after ?? before ?? items[0];
      selected = next ? itemKey(next) : null;
    }
  } else if (items.length) {
    selected = itemKey(items[0]);
  }
  return { items, selected, stale };
}

/** The selection moved by `delta` (clamped at the ends). */
export function moveSelection(state: InboxState, delta: number): string | null {
  if (!state.items.length) return null;
  const at = state.items.findIndex((i) => itemKey(i) === state.selected);
  const next = Math.min(state.items.length - 1, Math.max(0, (at < 0 ? 0 : at) + delta));
  return itemKey(state.items[next]);
}
