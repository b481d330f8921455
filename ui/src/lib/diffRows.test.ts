import { describe, expect, it } from "vitest";
import type { Proposal } from "../generated/Proposal";
import { editProposal, UTILS_AFTER, UTILS_BEFORE } from "../ipc/fixtures";
import { contentBefore, diffTexts, parseFileDiff, sideBySideRows, unifiedRows } from "./diffRows";

const diffOf = (p: Proposal): string => {
  if (p.kind !== "edit_file") throw new Error("not an edit");
  return p.diff;
};

// The diff as the engine writes it (similar's unified format).
const ENGINE_DIFF = `--- a/src/app.py
+++ b/src/app.py
@@ -1,4 +1,5 @@
 import os
-import sys
+import sys, json
+import logging
 
 def main():
@@ -10,3 +11,2 @@
 def stop():
-    pass
-    return
+    return None
`;

describe("unifiedRows", () => {
  it("numbers old and new lines and marks additions and removals", () => {
    const rows = unifiedRows(parseFileDiff(ENGINE_DIFF));
    expect(rows[0]).toEqual({ kind: "hunk", oldNo: null, newNo: null, text: "@@ -1,4 +1,5 @@" });
    expect(rows[1]).toEqual({ kind: "context", oldNo: 1, newNo: 1, text: "import os" });
    expect(rows[2]).toEqual({ kind: "del", oldNo: 2, newNo: null, text: "import sys" });
    expect(rows[3]).toEqual({ kind: "add", oldNo: null, newNo: 2, text: "import sys, json" });
    expect(rows[4]).toEqual({ kind: "add", oldNo: null, newNo: 3, text: "import logging" });
    expect(rows[6]).toMatchObject({ kind: "context", oldNo: 4, newNo: 5, text: "def main():" });
    expect(rows[7]).toMatchObject({ kind: "hunk", text: "@@ -10,3 +11,2 @@" });
    expect(rows.slice(8).map((r) => [r.kind, r.oldNo, r.newNo])).toEqual([
      ["context", 10, 11],
      ["del", 11, null],
      ["del", 12, null],
      ["add", null, 12],
    ]);
  });

  it("counts a new file's lines as added", () => {
    const fd = parseFileDiff(diffOf(editProposal("tests/test_x.py", null, "a\nb\n")));
    expect(fd.created).toBe(true);
    expect(fd.added).toBe(2);
    expect(unifiedRows(fd).filter((r) => r.kind === "add").map((r) => r.newNo)).toEqual([1, 2]);
  });

  it("flags a last line without a newline", () => {
    const rows = unifiedRows(diffTexts("x.txt", "a\nb", "a\nc"));
    const last = rows[rows.length - 1];
    expect(last).toMatchObject({ kind: "add", text: "c", noNewline: true });
  });
});

describe("sideBySideRows", () => {
  it("pairs each removed line with the line replacing it", () => {
    const rows = sideBySideRows(parseFileDiff(ENGINE_DIFF)).filter((r) => r.kind === "line");
    // import sys → import sys, json; the extra added line faces a blank.
    expect(rows[1].left).toEqual({ kind: "del", no: 2, text: "import sys", noNewline: undefined });
    expect(rows[1].right).toMatchObject({ kind: "add", no: 2, text: "import sys, json" });
    expect(rows[2].left).toBeNull();
    expect(rows[2].right).toMatchObject({ kind: "add", no: 3, text: "import logging" });
    // Context on both sides, each with its own number.
    expect(rows[4].left).toMatchObject({ kind: "context", no: 4 });
    expect(rows[4].right).toMatchObject({ kind: "context", no: 5 });
    // Two removed, one added: the second removal faces a blank.
    const tail = rows.slice(-3);
    expect(tail[1].left?.text).toBe("    pass");
    expect(tail[1].right?.text).toBe("    return None");
    expect(tail[2].left?.text).toBe("    return");
    expect(tail[2].right).toBeNull();
  });

  it("keeps hunks apart", () => {
    const rows = sideBySideRows(parseFileDiff(ENGINE_DIFF));
    expect(rows.filter((r) => r.kind === "hunk").map((r) => r.text)).toEqual(["@@ -1,4 +1,5 @@", "@@ -10,3 +11,2 @@"]);
  });
});

describe("contentBefore", () => {
  it("rebuilds the file before the edit from the diff and the new content", () => {
    const p = editProposal("src/utils.py", UTILS_BEFORE, UTILS_AFTER);
    expect(contentBefore(parseFileDiff(diffOf(p)), UTILS_AFTER)).toBe(UTILS_BEFORE);
  });

  it("says so when the diff does not fit the content", () => {
    const p = editProposal("src/utils.py", UTILS_BEFORE, UTILS_AFTER);
    expect(contentBefore(parseFileDiff(diffOf(p)), "something else entirely\n")).toBeNull();
  });
});
