import { describe, expect, it } from "vitest";
import { isTypingTarget, keyCommand } from "./approvalKeys";

const el = (html: string) => {
  const host = document.createElement("div");
  host.innerHTML = html;
  return host.firstElementChild as HTMLElement;
};

describe("keyCommand while browsing", () => {
  it("moves with j/k and the arrows, decides with a/e/r", () => {
    expect(keyCommand({ key: "j" }, "browse")).toBe("next");
    expect(keyCommand({ key: "ArrowDown" }, "browse")).toBe("next");
    expect(keyCommand({ key: "k" }, "browse")).toBe("prev");
    expect(keyCommand({ key: "ArrowUp" }, "browse")).toBe("prev");
    expect(keyCommand({ key: "a" }, "browse")).toBe("approve");
    expect(keyCommand({ key: "e" }, "browse")).toBe("edit");
    expect(keyCommand({ key: "r" }, "browse")).toBe("reject");
  });

  it("ignores other keys, and shortcuts of the system (Ctrl+R reloads, it does not reject)", () => {
    expect(keyCommand({ key: "x" }, "browse")).toBeNull();
    expect(keyCommand({ key: "Enter" }, "browse")).toBeNull();
    expect(keyCommand({ key: "r", ctrlKey: true }, "browse")).toBeNull();
    expect(keyCommand({ key: "a", metaKey: true }, "browse")).toBeNull();
    expect(keyCommand({ key: "a", altKey: true }, "browse")).toBeNull();
  });

  it("never fires while typing in a field", () => {
    for (const html of ["<input>", '<input type="search">', "<textarea></textarea>", "<select></select>", '<div contenteditable="true"></div>']) {
      const target = el(html);
      for (const key of ["a", "r", "e", "j", "k"]) expect(keyCommand({ key, target }, "browse"), `${key} in ${html}`).toBeNull();
    }
  });

  it("still fires from buttons and checkboxes", () => {
    expect(keyCommand({ key: "a", target: el("<button>x</button>") }, "browse")).toBe("approve");
    expect(keyCommand({ key: "j", target: el('<input type="checkbox">') }, "browse")).toBe("next");
  });

  it("does nothing while an input method composes", () => {
    expect(keyCommand({ key: "a", isComposing: true }, "browse")).toBeNull();
  });
});

describe("keyCommand in the reason box", () => {
  const target = el("<textarea></textarea>");
  it("sends the rejection with Enter and closes with Esc", () => {
    expect(keyCommand({ key: "Enter", target }, "reject")).toBe("submit-reject");
    expect(keyCommand({ key: "Escape", target }, "reject")).toBe("close");
  });
  it("lets Shift+Enter make a new line and letters be typed", () => {
    expect(keyCommand({ key: "Enter", shiftKey: true, target }, "reject")).toBeNull();
    expect(keyCommand({ key: "a", target }, "reject")).toBeNull();
    expect(keyCommand({ key: "j", target }, "reject")).toBeNull();
  });
});

describe("keyCommand in the editor", () => {
  const target = el("<textarea></textarea>");
  it("approves the edit with Ctrl/Cmd+Enter, closes with Esc, types everything else", () => {
    expect(keyCommand({ key: "Enter", ctrlKey: true, target }, "edit")).toBe("submit-edit");
    expect(keyCommand({ key: "Enter", metaKey: true, target }, "edit")).toBe("submit-edit");
    expect(keyCommand({ key: "Enter", target }, "edit")).toBeNull();
    expect(keyCommand({ key: "Escape", target }, "edit")).toBe("close");
    expect(keyCommand({ key: "a", target }, "edit")).toBeNull();
  });
});

describe("isTypingTarget", () => {
  it("knows text fields from other controls", () => {
    expect(isTypingTarget(el('<input type="text">'))).toBe(true);
    expect(isTypingTarget(el('<input type="number">'))).toBe(true);
    expect(isTypingTarget(el('<input type="radio">'))).toBe(false);
    expect(isTypingTarget(el("<a href='#'>x</a>"))).toBe(false);
    expect(isTypingTarget(null)).toBe(false);
  });
});

describe("keyCommand while reviewing hunks", () => {
  it("h opens the review; j/k move between hunks, y/n accept or reject one, a applies", () => {
    expect(keyCommand({ key: "h" }, "browse")).toBe("review-hunks");
    expect(keyCommand({ key: "j" }, "hunks")).toBe("next-hunk");
    expect(keyCommand({ key: "k" }, "hunks")).toBe("prev-hunk");
    expect(keyCommand({ key: "y" }, "hunks")).toBe("accept-hunk");
    expect(keyCommand({ key: "n" }, "hunks")).toBe("reject-hunk");
    expect(keyCommand({ key: "a" }, "hunks")).toBe("apply-hunks");
    expect(keyCommand({ key: "Escape" }, "hunks")).toBe("close");
    expect(keyCommand({ key: "e" }, "hunks")).toBeNull();
  });

  it("never fires while the reason is typed", () => {
    for (const key of ["y", "n", "a", "j"]) expect(keyCommand({ key, target: el("<input>") }, "hunks")).toBeNull();
  });
});
