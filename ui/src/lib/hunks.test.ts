import { describe, expect, it } from "vitest";
import { hunkCount, markHunk, moveHunk, rejectedNumbers, startReview } from "./hunks";

describe("a hunk-by-hunk review", () => {
  it("counts a diff's hunks", () => {
    expect(hunkCount("--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n@@ -9 +9 @@\n-c\n+d\n")).toBe(2);
    expect(hunkCount("")).toBe(0);
  });

  it("marks the hunk in focus and moves on, never past the ends", () => {
    let marks = startReview(3);
    expect(rejectedNumbers(marks)).toEqual([]);
    marks = markHunk(marks, false);
    expect(marks.current).toBe(1);
    marks = markHunk(marks, true);
    expect(marks.current).toBe(2);
    marks = markHunk(marks, true);
    expect(marks.current).toBe(2);
    expect(rejectedNumbers(marks)).toEqual([2, 3]);
    marks = moveHunk(moveHunk(marks, -1), -1);
    expect(marks.current).toBe(0);
    expect(moveHunk(marks, -1).current).toBe(0);
    marks = moveHunk(marks, 2);
    marks = markHunk(marks, false);
    expect(rejectedNumbers(marks)).toEqual([2]);
  });
});
