// The Settings view's connection form: a URL holding a password is refused before anything is
// kept, a connection is tested before it is saved, and what is saved is the URL and the name
// of the password's variable, never a password.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mount, unmount } from "svelte";
import App from "../App.svelte";
import { MockBackend } from "../ipc/mock";
import { createFixtures } from "../ipc/fixtures";
import { setBackend } from "../lib/backend";
import { resetLive } from "../lib/live";
import { navigate } from "../lib/router.svelte";
import { settle, text, typeInto } from "../lib/testing";

let mock: MockBackend;
let app: ReturnType<typeof mount>;
let host: HTMLElement;

beforeEach(async () => {
  await import("./SettingsView.svelte");
  resetLive();
  mock = new MockBackend(createFixtures(Date.UTC(2026, 10, 26, 9, 0, 0)));
  setBackend(mock);
  host = document.body.appendChild(document.createElement("div"));
  navigate({ view: "settings" });
  app = mount(App, { target: host });
  for (let i = 0; i < 6; i++) await settle();
});

afterEach(() => {
  unmount(app);
  host.remove();
});

const calls = (method: string) => mock.calls.filter((c) => c.method === method).map((c) => c.args);
const field = (name: string) => document.querySelector<HTMLInputElement>(`[data-testid="database-form"] [name="${name}"]`)!;
const button = (label: string) =>
  [...document.querySelectorAll<HTMLButtonElement>('[data-testid="database-form"] button')].find((b) => b.textContent?.trim() === label)!;

describe("the database connection", () => {
  it("shows the database in use", () => {
    expect(text(document, '[data-testid="database-in-use"]')).toContain("stepwise.db");
  });

  it("refuses a URL with a password and keeps nothing", async () => {
    typeInto(field("url"), "postgres://ann:secret@db/stepwise");
    await settle();
    button("Save").click();
    for (let i = 0; i < 4; i++) await settle();
    expect(document.body.textContent).toContain("holds a password");
    expect(calls("saveDatabase")).toHaveLength(0);
  });

  it("tests, then saves the URL and the password's variable", async () => {
    typeInto(field("url"), "postgres://ann@db/stepwise");
    typeInto(field("password_env"), "STEPWISE_DB_PASSWORD");
    await settle();
    button("Test connection").click();
    for (let i = 0; i < 4; i++) await settle();
    expect(text(document, '[data-testid="database-check"]')).toContain("Connected to postgres://ann@db/stepwise (PostgreSQL 15.18)");
    button("Save").click();
    for (let i = 0; i < 4; i++) await settle();
    expect(calls("saveDatabase")).toEqual([["postgres://ann@db/stepwise", "STEPWISE_DB_PASSWORD"]]);
    expect(text(document, '[data-testid="database-restart"]')).toContain("Restart Stepwise to use it");
  });
});
