// Reviewing an edit hunk by hunk: which hunk is in focus and which are rejected, as the
// approvals inbox keeps them, and what is sent when the accepted ones are applied. Hunks are
// numbered from 1 on the wire, as the diff shows them (and as `stepwise approve --hunks` takes
// them).

/** A review under way: the hunk in focus (from 0) and, per hunk, whether it is rejected. */
export interface HunkMarks {
  current: number;
  rejected: boolean[];
}

/** How many hunks a unified diff has (its `@@` lines). */
export function hunkCount(diff: string): number {
  return diff.split("\n").filter((line) => line.startsWith("@@")).length;
}

/** A review of `count` hunks, all accepted, the first in focus. */
export function startReview(count: number): HunkMarks {
  return { current: 0, rejected: Array.from({ length: count }, () => false) };
}

/** The focus moved by `step` (clamped to the hunks). */
export function moveHunk(marks: HunkMarks, step: number): HunkMarks {
  const last = marks.rejected.length - 1;
  return { ...marks, current: Math.max(0, Math.min(last, marks.current + step)) };
}

/** The hunk in focus accepted (`rejected` false) or rejected, and the focus on the next. */
export function markHunk(marks: HunkMarks, rejected: boolean): HunkMarks {
  const next = marks.rejected.map((r, i) => (i === marks.current ? rejected : r));
  return moveHunk({ current: marks.current, rejected: next }, 1);
}

/** The numbers (from 1) of the rejected hunks. */
export function rejectedNumbers(marks: HunkMarks): number[] {
  return marks.rejected.flatMap((r, i) => (r ? [i + 1] : []));
}
