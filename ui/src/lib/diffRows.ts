// An edit proposal's unified diff, as rows to draw: unified (one column, both line numbers)
// or side by side (removed lines paired with the added lines that replace them).
import { applyPatch, parsePatch, reversePatch, structuredPatch } from "diff";
import type { StructuredPatch } from "diff";

export type LineKind = "context" | "add" | "del";

export interface UnifiedRow {
  kind: LineKind | "hunk";
  oldNo: number | null;
  newNo: number | null;
  /** The line without its `+`/`-`/` ` prefix (for a hunk row: its `@@ … @@` header). */
  text: string;
  /** The line ends the file without a newline. */
  noNewline?: boolean;
}

export interface Cell {
  kind: LineKind;
  no: number;
  text: string;
  noNewline?: boolean;
}

export interface SideRow {
  kind: "hunk" | "line";
  /** For a hunk row: its header. */
  text?: string;
  left: Cell | null;
  right: Cell | null;
}

export interface FileDiff {
  oldName: string | null;
  newName: string | null;
  /** The file does not exist yet (`/dev/null` on the left). */
  created: boolean;
  patch: StructuredPatch;
  added: number;
  removed: number;
}

function stripPrefix(name: string | undefined): string | null {
  if (!name || name === "/dev/null") return null;
  return name.replace(/^[ab]\//, "");
}

function count(patch: StructuredPatch): { added: number; removed: number } {
  let added = 0;
  let removed = 0;
  for (const h of patch.hunks)
    for (const l of h.lines) {
      if (l[0] === "+") added++;
      else if (l[0] === "-") removed++;
    }
  return { added, removed };
}

function fromPatch(patch: StructuredPatch): FileDiff {
  return {
    oldName: stripPrefix(patch.oldFileName),
    newName: stripPrefix(patch.newFileName),
    created: patch.oldFileName === "/dev/null",
    patch,
    ...count(patch),
  };
}

/** Parses a unified diff of one file (what `Proposal.diff` holds). */
export function parseFileDiff(diff: string): FileDiff {
  const patches = parsePatch(diff);
  const patch = patches.find((p) => p.hunks.length > 0) ?? patches[0];
  if (!patch) throw new Error("the diff holds no file");
  return fromPatch(patch);
}

/** The diff of two texts, for when there is no diff string (or it cannot be read). */
export function diffTexts(path: string, before: string, after: string): FileDiff {
  return fromPatch(structuredPatch(`a/${path}`, `b/${path}`, before, after, undefined, undefined, { context: 3 }));
}

function hunkHeader(h: StructuredPatch["hunks"][number]): string {
  // jsdiff stores an empty side's start as the line after; the header names the line before.
  const oldStart = h.oldLines === 0 ? h.oldStart - 1 : h.oldStart;
  const newStart = h.newLines === 0 ? h.newStart - 1 : h.newStart;
  return `@@ -${oldStart},${h.oldLines} +${newStart},${h.newLines} @@`;
}

/** One column: every line with its old and new line number. */
export function unifiedRows(fd: FileDiff): UnifiedRow[] {
  const rows: UnifiedRow[] = [];
  for (const h of fd.patch.hunks) {
    rows.push({ kind: "hunk", oldNo: null, newNo: null, text: hunkHeader(h) });
    let oldNo = h.oldStart;
    let newNo = h.newStart;
    for (const line of h.lines) {
      const mark = line[0];
      const text = line.slice(1);
      if (mark === "\\") {
        const last = rows[rows.length - 1];
        if (last && last.kind !== "hunk") last.noNewline = true;
      } else if (mark === "+") {
        rows.push({ kind: "add", oldNo: null, newNo: newNo++, text });
      } else if (mark === "-") {
        rows.push({ kind: "del", oldNo: oldNo++, newNo: null, text });
      } else {
        rows.push({ kind: "context", oldNo: oldNo++, newNo: newNo++, text });
      }
    }
  }
  return rows;
}

/**
 * Two columns: context on both sides; within a change, the n-th removed line beside the n-th
 * added line, the longer side's extra lines beside blanks.
 */
export function sideBySideRows(fd: FileDiff): SideRow[] {
  const rows: SideRow[] = [];
  let dels: Cell[] = [];
  let adds: Cell[] = [];
  const flush = () => {
    const n = Math.max(dels.length, adds.length);
    for (let i = 0; i < n; i++) rows.push({ kind: "line", left: dels[i] ?? null, right: adds[i] ?? null });
    dels = [];
    adds = [];
  };
  for (const row of unifiedRows(fd)) {
    if (row.kind === "hunk") {
      flush();
      rows.push({ kind: "hunk", text: row.text, left: null, right: null });
    } else if (row.kind === "del") {
      // A removal after additions starts a new change block.
      if (adds.length) flush();
      dels.push({ kind: "del", no: row.oldNo!, text: row.text, noNewline: row.noNewline });
    } else if (row.kind === "add") {
      adds.push({ kind: "add", no: row.newNo!, text: row.text, noNewline: row.noNewline });
    } else {
      flush();
      rows.push({
        kind: "line",
        left: { kind: "context", no: row.oldNo!, text: row.text, noNewline: row.noNewline },
        right: { kind: "context", no: row.newNo!, text: row.text, noNewline: row.noNewline },
      });
    }
  }
  flush();
  return rows;
}

/**
 * The file before the edit, rebuilt by applying the diff backwards to the proposed content;
 * `null` when they do not fit together.
 */
export function contentBefore(fd: FileDiff, after: string): string | null {
  if (fd.created) return "";
  try {
    const before = applyPatch(after, reversePatch(fd.patch));
    return before === false ? null : before;
  } catch {
    return null;
  }
}
