import { describe, expect, it } from "vitest";
import { highlightLines, languageFor, splitHighlightedLines } from "./highlight";

describe("languageFor", () => {
  it("picks a registered language by extension", () => {
    expect(languageFor("src/utils.py")).toBe("python");
    expect(languageFor("ui/src/main.ts")).toBe("typescript");
    expect(languageFor("crates/core/lib.rs")).toBe("rust");
    expect(languageFor("workflows/a.yml")).toBe("yaml");
    expect(languageFor("README.md")).toBe("markdown");
    expect(languageFor("Makefile")).toBeNull();
    expect(languageFor("photo.png")).toBeNull();
  });
});

describe("splitHighlightedLines", () => {
  it("closes and reopens spans that cross lines", () => {
    expect(splitHighlightedLines('a<span class="s">"x\ny"</span>b')).toEqual(['a<span class="s">"x</span>', '<span class="s">y"</span>b']);
  });
});

describe("highlightLines", () => {
  it("highlights a multi-line string on every line it spans", () => {
    const lines = highlightLines('def f():\n    """one\n    two"""\n    return 1', "python");
    expect(lines).toHaveLength(4);
    expect(lines[0]).toContain('<span class="hljs-keyword">def</span>');
    expect(lines[2]).toMatch(/^<span class="hljs-string">/);
  });

  it("escapes HTML in code it does not know", () => {
    expect(highlightLines("<script>alert(1)</script>", null)).toEqual(["&lt;script&gt;alert(1)&lt;/script&gt;"]);
    expect(highlightLines("x = '<b>'", "python").join("")).not.toContain("<b>");
  });
});
