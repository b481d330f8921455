import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mount, unmount } from "svelte";
import { MockBackend } from "../ipc/mock";
import { createFixtures } from "../ipc/fixtures";
import { setBackend } from "../lib/backend";
import { router, navigate } from "../lib/router.svelte";
import { settle, text, typeInto } from "../lib/testing";
import RunForm from "./RunForm.svelte";

let mock: MockBackend;
let host: HTMLElement;
let form: ReturnType<typeof mount>;
const fixtures = createFixtures(Date.UTC(2026, 10, 26, 9, 0, 0));
const addFactorial = fixtures.workflows.find((w) => w.name === "add-factorial")!;

function field(name: string): HTMLInputElement {
  return host.querySelector<HTMLInputElement>(`[id$="-${name}"]`)!;
}

async function submit() {
  host.querySelector("form")!.dispatchEvent(new Event("submit", { bubbles: true, cancelable: true }));
  await settle();
}

beforeEach(async () => {
  mock = new MockBackend(fixtures);
  setBackend(mock);
  navigate({ view: "workflows" });
  host = document.body.appendChild(document.createElement("div"));
  form = mount(RunForm, { target: host, props: { workflow: addFactorial, defaultWorkspace: "/home/dana/code/acme-billing" } });
  await settle();
});

afterEach(() => {
  unmount(form);
  host.remove();
});

describe("the Run form", () => {
  it("shows a control per input with its default", () => {
    expect(field("module").type).toBe("text");
    expect(field("module").value).toBe("src/utils.py");
    expect(field("run_tests").type).toBe("checkbox");
    expect(field("run_tests").checked).toBe(true);
    expect(field("max_attempts").type).toBe("number");
    expect(field("max_attempts").value).toBe("2");
    expect(field("temperature").value).toBe("0.2");
  });

  it("starts a run with the typed values as text, then opens it", async () => {
    typeInto(field("max_attempts"), "3");
    field("run_tests").click();
    await submit();
    const started = mock.calls.filter((c) => c.method === "startRun");
    expect(started).toHaveLength(1);
    expect(started[0].args).toEqual([addFactorial.path, { module: "src/utils.py", run_tests: "false", max_attempts: "3", temperature: "0.2" }, undefined]);
    expect(router.route.view).toBe("run");
    const listed = (await mock.listRuns({ status: "all", query: "", offset: 0, limit: 100 })).runs;
    expect(listed.some((r) => router.route.view === "run" && r.run_id === router.route.runId && r.workflow === "add-factorial")).toBe(true);
  });

  it("starts a run that steps through when Step is ticked", async () => {
    host.querySelector<HTMLInputElement>('input[id$="__step"]')!.click();
    await submit();
    const started = mock.calls.filter((c) => c.method === "startRun");
    expect(started[0].args[3]).toBe(true);
  });

  it("refuses a fractional number for an integer input, saying why", async () => {
    typeInto(field("max_attempts"), "1.5");
    await submit();
    expect(mock.calls.some((c) => c.method === "startRun")).toBe(false);
    expect(text(host, '[role="alert"]')).toContain("max_attempts: must be a whole number");
  });

  it("shows the backend's refusal with its code", async () => {
    mock.failNext("startRun", { code: "invalid", message: "input `module` must name a file inside the workspace" });
    await submit();
    const alert = text(host, ".error-box");
    expect(alert).toContain("invalid");
    expect(alert).toContain("must name a file inside the workspace");
  });
});
