// The approvals inbox's keyboard: which key does what in which mode. Pure, so that the rules
// (and "never while typing") are tested without a DOM.

/** `browse`: moving and deciding; `edit`: the editor is open; `reject`: the reason box is;
 * `answer`: the reply box to an agent's question is; `hunks`: an edit's diff is reviewed hunk
 * by hunk. */
export type InboxMode = "browse" | "edit" | "reject" | "answer" | "hunks";

export type KeyCommand =
  | "next"
  | "prev"
  | "approve"
  | "edit"
  | "reject"
  | "submit-reject"
  | "submit-edit"
  | "submit-answer"
  | "review-hunks"
  | "next-hunk"
  | "prev-hunk"
  | "accept-hunk"
  | "reject-hunk"
  | "apply-hunks"
  | "close";

export interface KeyLike {
  key: string;
  ctrlKey?: boolean;
  metaKey?: boolean;
  altKey?: boolean;
  shiftKey?: boolean;
  isComposing?: boolean;
  target?: EventTarget | null;
}

/** The key goes to a text field (or a select, or editable content), not to the inbox. */
export function isTypingTarget(target: EventTarget | null | undefined): boolean {
  if (!target || typeof (target as Element).tagName !== "string") return false;
  const el = target as HTMLElement;
  const tag = el.tagName.toLowerCase();
  if (tag === "textarea" || tag === "select") return true;
  if (tag === "input") {
    const type = ((el as HTMLInputElement).type || "text").toLowerCase();
    return !["checkbox", "radio", "button", "submit", "reset", "range", "color", "file"].includes(type);
  }
  if (el.isContentEditable === true) return true;
  const editable = el.closest?.("[contenteditable]")?.getAttribute("contenteditable");
  return editable === "" || editable === "true" || editable === "plaintext-only";
}

export function keyCommand(e: KeyLike, mode: InboxMode): KeyCommand | null {
  if (e.isComposing) return null;
  if (mode === "reject" || mode === "answer") {
    if (e.key === "Escape") return "close";
    if (e.key === "Enter" && !e.shiftKey && !e.altKey) return mode === "reject" ? "submit-reject" : "submit-answer";
    return null;
  }
  if (mode === "edit") {
    if (e.key === "Escape") return "close";
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) return "submit-edit";
    return null;
  }
  if (mode === "hunks") {
    if (e.key === "Escape") return "close";
    if (e.ctrlKey || e.metaKey || e.altKey || isTypingTarget(e.target)) return null;
    switch (e.key) {
      case "j":
      case "ArrowDown":
        return "next-hunk";
      case "k":
      case "ArrowUp":
        return "prev-hunk";
      case "y":
        return "accept-hunk";
      case "n":
        return "reject-hunk";
      case "a":
        return "apply-hunks";
      default:
        return null;
    }
  }
  if (e.ctrlKey || e.metaKey || e.altKey) return null;
  if (isTypingTarget(e.target)) return null;
  switch (e.key) {
    case "j":
    case "ArrowDown":
      return "next";
    case "k":
    case "ArrowUp":
      return "prev";
    case "a":
      return "approve";
    case "e":
      return "edit";
    case "r":
      return "reject";
    case "h":
      return "review-hunks";
    default:
      return null;
  }
}
