// Syntax highlighting with highlight.js: only the languages an engineer's diffs mostly hold,
// registered on the core build (the full build is ten times larger).
import hljs from "highlight.js/lib/core";
import bash from "highlight.js/lib/languages/bash";
import javascript from "highlight.js/lib/languages/javascript";
import json from "highlight.js/lib/languages/json";
import markdown from "highlight.js/lib/languages/markdown";
import python from "highlight.js/lib/languages/python";
import rust from "highlight.js/lib/languages/rust";
import typescript from "highlight.js/lib/languages/typescript";
import yaml from "highlight.js/lib/languages/yaml";

hljs.registerLanguage("python", python);
hljs.registerLanguage("javascript", javascript);
hljs.registerLanguage("typescript", typescript);
hljs.registerLanguage("rust", rust);
hljs.registerLanguage("yaml", yaml);
hljs.registerLanguage("json", json);
hljs.registerLanguage("bash", bash);
hljs.registerLanguage("markdown", markdown);

const BY_EXTENSION: Record<string, string> = {
  py: "python",
  pyi: "python",
  js: "javascript",
  mjs: "javascript",
  cjs: "javascript",
  jsx: "javascript",
  ts: "typescript",
  mts: "typescript",
  tsx: "typescript",
  rs: "rust",
  yaml: "yaml",
  yml: "yaml",
  json: "json",
  sh: "bash",
  bash: "bash",
  md: "markdown",
  markdown: "markdown",
};

/** The language for a file, by its extension; `null` when none of ours fits. */
export function languageFor(path: string): string | null {
  const name = path.split("/").pop() ?? path;
  const dot = name.lastIndexOf(".");
  if (dot < 0) return null;
  return BY_EXTENSION[name.slice(dot + 1).toLowerCase()] ?? null;
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) =>
    c === "&" ? "&amp;" : c === "<" ? "&lt;" : c === ">" ? "&gt;" : c === '"' ? "&quot;" : "&#39;",
  );
}

/**
 * Splits highlighted HTML into lines, closing the spans still open at each line's end and
 * opening them again on the next, so that each line is well-formed on its own.
 */
export function splitHighlightedLines(html: string): string[] {
  const lines: string[] = [];
  const open: string[] = [];
  let current = "";
  const tag = /<span[^>]*>|<\/span>|\n/g;
  let last = 0;
  for (let m = tag.exec(html); m; m = tag.exec(html)) {
    current += html.slice(last, m.index);
    last = m.index + m[0].length;
    if (m[0] === "\n") {
      lines.push(current + "</span>".repeat(open.length));
      current = open.join("");
    } else if (m[0] === "</span>") {
      open.pop();
      current += m[0];
    } else {
      open.push(m[0]);
      current += m[0];
    }
  }
  current += html.slice(last);
  lines.push(current);
  return lines;
}

/** Files larger than this are shown plain: highlighting them would stall the window. */
const MAX_HIGHLIGHTED = 400_000;

/** Each line of `text` as safe HTML, highlighted when the language is known. */
export function highlightLines(text: string, language: string | null): string[] {
  if (!language || text.length > MAX_HIGHLIGHTED || !hljs.getLanguage(language)) {
    return text.split("\n").map(escapeHtml);
  }
  try {
    return splitHighlightedLines(hljs.highlight(text, { language, ignoreIllegals: true }).value);
  } catch {
    return text.split("\n").map(escapeHtml);
  }
}

/** One snippet as safe HTML (JSON panes, commands). */
export function highlightCode(text: string, language: string | null): string {
  return highlightLines(text, language).join("\n");
}
