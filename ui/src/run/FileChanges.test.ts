// The step panel's list of what a step changed in the workspace's files.
import { afterEach, describe, expect, it } from "vitest";
import { flushSync, mount, unmount } from "svelte";
import FileChanges from "./FileChanges.svelte";
import type { FileChangeView } from "../generated/FileChangeView";

const version = (hash: string, stored = true) => ({ hash, size: 4, stored });
let app: ReturnType<typeof mount> | null = null;

afterEach(() => {
  if (app) unmount(app);
  app = null;
  document.body.innerHTML = "";
});

function show(changes: FileChangeView[]): HTMLElement {
  const host = document.body.appendChild(document.createElement("div"));
  app = mount(FileChanges, { target: host, props: { changes } });
  flushSync();
  return host;
}

describe("FileChanges", () => {
  it("says what happened to each file as `show` does, and shows a text file's diff", () => {
    const host = show([
      { change: { path: "build/out.txt", kind: "created", after: version("sha256:a") }, diff: "--- /dev/null\n+++ b/build/out.txt\n@@ -0,0 +1 @@\n+out" },
      { change: { path: "new.txt", kind: "renamed", from: "old.txt", before: version("sha256:b"), after: version("sha256:b") }, diff: null },
      { change: { path: "big.bin", kind: "modified", before: version("sha256:c", false), after: version("sha256:d", false) }, diff: null },
      { change: { path: "tmp.log", kind: "deleted", before: version("sha256:e") }, diff: "--- a/tmp.log\n+++ /dev/null\n@@ -1,1 +0,0 @@\n-scratch" },
    ]);
    const lines = [...host.querySelectorAll("li")].map((li) => li.querySelector(".kind")?.textContent);
    expect(lines).toEqual(["created build/out.txt", "renamed old.txt to new.txt", "wrote big.bin", "deleted tmp.log"]);
    expect(host.textContent).toContain("recorded by its hash only");
    const added = host.querySelector("pre.diff .add");
    expect(added?.textContent).toBe("+out");
    expect(host.querySelectorAll("pre.diff .del")[0]?.textContent).toBe("-scratch");
  });

  it("shows markup in a diff as text", () => {
    const host = show([{ change: { path: "x.html", kind: "created", after: version("sha256:f") }, diff: "+<img src=x onerror=alert(1)>" }]);
    expect(host.querySelector("img")).toBeNull();
    expect(host.querySelector("pre.diff")?.textContent).toContain("<img src=x onerror=alert(1)>");
  });
});
