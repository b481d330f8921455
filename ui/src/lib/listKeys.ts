// Moving through a list with the keyboard: j/k and the arrows, Home/End, Page up/down.

/** The new index for a key, or `null` when the key does not move. */
export function listMove(key: string, index: number, count: number, page = 10): number | null {
  if (count === 0) return null;
  let next: number;
  switch (key) {
    case "ArrowDown":
    case "j":
      next = index + 1;
      break;
    case "ArrowUp":
    case "k":
      next = index - 1;
      break;
    case "Home":
      next = 0;
      break;
    case "End":
      next = count - 1;
      break;
    case "PageDown":
      next = index + page;
      break;
    case "PageUp":
      next = index - page;
      break;
    default:
      return null;
  }
  return Math.max(0, Math.min(count - 1, next));
}
