// The workspace tree as rows: the root first, then each open folder's children, depth-first.
import type { FileNode } from "../generated/FileNode";

export interface TreeRow {
  node: FileNode;
  depth: number;
  /** Folders only: shown open. */
  open: boolean;
}

/** A root node for the workspace itself, so that it is shown and can be folded. */
export function rootNode(root: string, tree: FileNode[]): FileNode {
  const name = root.replace(/[\\/]+$/, "").split(/[\\/]/).pop() || root;
  return { path: "", name, dir: true, size: 0, touched: false, pending_edit: false, children: tree };
}

/** Folders first, then by name. */
function ordered(nodes: readonly FileNode[]): FileNode[] {
  return [...nodes].sort((a, b) => Number(b.dir) - Number(a.dir) || a.name.localeCompare(b.name));
}

export function flattenTree(root: FileNode, closed: ReadonlySet<string>): TreeRow[] {
  const rows: TreeRow[] = [];
  const walk = (node: FileNode, depth: number) => {
    const open = node.dir && !closed.has(node.path);
    rows.push({ node, depth, open });
    if (open) for (const child of ordered(node.children)) walk(child, depth + 1);
  };
  walk(root, 0);
  return rows;
}

/** Whether a folder holds a marked file somewhere below it. */
export function subtreeMarks(node: FileNode): { touched: boolean; pending: boolean } {
  let touched = node.touched;
  let pending = node.pending_edit;
  for (const c of node.children) {
    const m = subtreeMarks(c);
    touched ||= m.touched;
    pending ||= m.pending;
    if (touched && pending) break;
  }
  return { touched, pending };
}

/** What a screen reader says for a row: name, kind and marks. */
export function rowLabel(node: FileNode): string {
  const marks: string[] = [];
  if (node.pending_edit) marks.push("edit waiting for approval");
  if (node.touched) marks.push("touched by runs");
  return [node.name || "/", node.dir ? "folder" : "file", ...marks].join(", ");
}

export function countMarks(nodes: readonly FileNode[]): { files: number; touched: number; pending: number } {
  let files = 0;
  let touched = 0;
  let pending = 0;
  const walk = (list: readonly FileNode[]) => {
    for (const n of list) {
      if (!n.dir) files++;
      if (n.touched) touched++;
      if (n.pending_edit) pending++;
      walk(n.children);
    }
  };
  walk(nodes);
  return { files, touched, pending };
}
