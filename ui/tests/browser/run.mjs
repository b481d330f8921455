// Browser tests of the built UI (ui/dist) in Debian's Chromium, with the mock backend installed
// before the app loads, under the app's CSP and with Object.prototype frozen (as in Tauri).
// They assert what a person sees in every view and save a screenshot of each to artifacts/.
// Usage: npm run build && npm run test:browser   (-- --only <name part> to run some)
import { readFileSync } from "node:fs";
import { mkdir, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { ARTIFACTS, buildMock, launch, openApp, painted, serveDist } from "./harness.mjs";

const only = process.argv.includes("--only") ? process.argv[process.argv.indexOf("--only") + 1] : null;
const tests = [];
const test = (name, options, fn) => tests.push(typeof options === "function" ? { name, options: {}, fn: options } : { name, options, fn });

const WAIT = 5000;

class Failure extends Error {}
function fail(message) {
  throw new Failure(message);
}

/** Waits until `locator` is visible. */
async function visible(locator, what) {
  try {
    await locator.first().waitFor({ state: "visible", timeout: WAIT });
  } catch {
    fail(`expected to see ${what}`);
  }
}

/** Waits until `locator` is gone (or hidden). */
async function gone(locator, what) {
  try {
    await locator.first().waitFor({ state: "hidden", timeout: WAIT });
  } catch {
    fail(`expected ${what} to go away`);
  }
}

/** Waits until the text of `locator` contains every one of `parts`. */
async function hasText(locator, parts, what) {
  const want = Array.isArray(parts) ? parts : [parts];
  const deadline = Date.now() + WAIT;
  let last = "";
  while (Date.now() < deadline) {
    last = (await locator.first().innerText().catch(() => "")).replace(/\s+/g, " ");
    if (want.every((p) => last.includes(p))) return last;
    await new Promise((r) => setTimeout(r, 50));
  }
  fail(`expected ${what} to show ${want.map((w) => JSON.stringify(w)).join(", ")}; it shows ${JSON.stringify(last.slice(0, 400))}`);
}

async function count(locator, n, what) {
  const deadline = Date.now() + WAIT;
  let seen = -1;
  while (Date.now() < deadline) {
    seen = await locator.count();
    if (typeof n === "function" ? n(seen) : seen === n) return seen;
    await new Promise((r) => setTimeout(r, 50));
  }
  fail(`expected ${what}: ${typeof n === "function" ? "a different number" : n}, saw ${seen}`);
}

async function eventually(check, what) {
  const deadline = Date.now() + WAIT;
  let last;
  while (Date.now() < deadline) {
    last = await check();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 50));
  }
  fail(`expected ${what}`);
}

async function shot(page, name) {
  await painted(page);
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });
}

// Pairs of texts drawn over each other in the page (overlap.js, shared with the app's test).
const OVERLAP = readFileSync(new URL("./overlap.js", import.meta.url), "utf8");
const overlappingText = (page) => page.evaluate(`(${OVERLAP})()`);

const mockCalls = (page, method) => page.evaluate((m) => window.__STEPWISE_MOCK__.calls.filter((c) => c.method === m).map((c) => c.args), method);
const selectedInbox = (page) => page.locator('[data-testid="inbox"] [aria-selected="true"] .summary');

// ---- Runs ------------------------------------------------------------------------------------

test("runs: every run with its status, filtered and searched", async (page) => {
  const rows = page.locator('[data-testid="runs-list"] [role="option"]');
  await count(rows, (n) => n >= 20, "many run rows");
  await hasText(page.locator('[data-testid="runs-count"]'), "36 of 36", "the run count");
  await hasText(page.locator('[data-run="b2c4e6f8-1a3b-4c5d-8e9f-a0b1c2d3e4f5"]'), ["failed", "refactor-cli", "b2c4e6f8", "cli (dana)", "$0.00348"], "the failed run's row");
  await hasText(page.locator('[data-run="3f9d7b10-8a2c-4e51-b6d4-0c2a9e7f5b13"]'), ["running", "docs-refresh", "started by: modify docs/api.md"], "the running run's row");
  await shot(page, "runs");

  await page.locator('[data-filter="failed"]').click();
  await count(rows, 7, "failed runs after filtering");
  const statuses = await rows.evaluateAll((els) => [...new Set(els.map((e) => e.getAttribute("data-status")))]);
  if (statuses.join() !== "failed") fail(`the failed filter shows ${statuses}`);
  await page.locator('[data-filter="failed"]').click();

  const search = page.getByRole("searchbox", { name: /Search runs/ });
  await search.fill("refactor");
  await count(rows, 1, "runs matching 'refactor'");
  await search.fill("7c1e2a9b");
  await count(rows, 1, "runs matching a run id");
  await hasText(rows, "add-factorial", "the run found by id");
  await search.fill("no-such-workflow");
  await hasText(page.locator('[data-testid="empty"]'), "No run matches", "the no-match state");
  await page.getByRole("button", { name: "Clear the filters" }).click();
  await count(rows, (n) => n >= 20, "all runs again");
});

test("runs: the keyboard opens a run, a live signal adds a row", async (page) => {
  const list = page.locator('[data-testid="runs-list"]');
  await visible(list.locator('[role="option"]'), "run rows");
  await list.focus();
  await page.keyboard.press("j");
  await page.keyboard.press("Enter");
  await eventually(async () => (await page.evaluate(() => location.hash)).startsWith("#/run/7c1e2a9b"), "Enter to open the second run");
  await page.goBack();
  await visible(list.locator('[role="option"]'), "run rows again");
  await page.evaluate(() => {
    const m = window.__STEPWISE_MOCK__;
    return m.listWorkflows().then((w) => m.startRun(w.find((x) => x.name === "hello").path, {}));
  });
  await hasText(page.locator('[data-testid="runs-count"]'), "37 of 37", "the count after a run started elsewhere");
  await hasText(list.locator('[role="option"]').first(), "hello", "the new run at the top");
});

test("runs: empty states say what to do next", { config: { scenario: "empty" } }, async (page) => {
  await hasText(page.locator('[data-testid="empty"]'), ["No runs yet", "Workflows", "stepwise run"], "the empty runs view");
  await page.getByRole("link", { name: "Approvals" }).click();
  await hasText(page.locator('[data-testid="empty"]'), "Nothing waits for you", "the empty inbox");
  await page.getByRole("link", { name: "Cost" }).click();
  await hasText(page.locator('[data-testid="empty"]'), "No model calls yet", "the empty cost view");
  await shot(page, "empty-cost");
});

test("errors show their code and message, not a blank view", { config: { failNext: { listRuns: { code: "internal", message: "database is locked" } } } }, async (page) => {
  await hasText(page.getByRole("alert"), ["internal", "database is locked"], "the error");
  await page.getByRole("button", { name: "Try again" }).click();
  await visible(page.locator('[data-testid="runs-list"] [role="option"]'), "the runs after trying again");
});

test("an unknown run shows not_found", { hash: "#/run/00000000-dead-beef-0000-000000000000" }, async (page) => {
  await hasText(page.getByRole("alert"), ["not_found", "no run 00000000-dead-beef"], "the error for a missing run");
});

test("runs: a list of 10,000 runs asks the backend only for the rows it shows", { config: { manyRuns: 10_000 } }, async (page) => {
  const list = page.locator('[data-testid="runs-list"]');
  await visible(list.locator('[role="option"]'), "run rows");
  await hasText(page.locator('[data-testid="runs-count"]'), "10,036 of 10,036", "the count of every run");
  const asked = await mockCalls(page, "listRuns");
  const rows = asked.reduce((n, [q]) => n + q.limit, 0);
  if (rows > 200) fail(`the first screen asked for ${rows} rows: ${JSON.stringify(asked)}`);
  // Scrolled to the middle, the rows there are asked for and shown.
  await list.evaluate((el) => (el.scrollTop = 5_000 * 30));
  const expected = await page.evaluate(() =>
    window.__STEPWISE_MOCK__.listRuns({ status: "all", query: "", offset: 5_000, limit: 1 }).then((p) => p.runs[0].run_id),
  );
  await visible(list.locator(`[data-run="${expected}"]`), "the 5,001st run after scrolling there");
  const later = await mockCalls(page, "listRuns");
  if (later.some(([q]) => q.limit > 100)) fail(`a request asked for more than a block: ${JSON.stringify(later)}`);
  // A filter is applied by the backend: the count and rows are the backend's.
  await page.locator('[data-filter="failed"]').click();
  await eventually(async () => (await list.locator('[role="option"]').evaluateAll((els) => els.every((e) => e.dataset.status === "failed"))) && (await list.locator('[role="option"]').count()) > 0, "only failed runs");
  const last = (await mockCalls(page, "listRuns")).at(-1)[0];
  if (last.status !== "failed") fail(`the filter did not reach the backend: ${JSON.stringify(last)}`);
});

test("a lost live signal reloads what every view shows", async (page) => {
  await visible(page.locator('[data-testid="runs-list"] [role="option"]'), "run rows");
  const before = (await mockCalls(page, "listRuns")).length;
  const inboxBefore = (await mockCalls(page, "listApprovals")).length;
  await page.evaluate(() => window.__STEPWISE_MOCK__.emit({ kind: "lagged" }));
  await eventually(async () => (await mockCalls(page, "listRuns")).length > before, "the runs to be read again");
  await eventually(async () => (await mockCalls(page, "listApprovals")).length > inboxBefore, "the inbox to be read again");
  await page.evaluate(() => (location.hash = "#/cost"));
  await visible(page.locator('[data-testid="chart-day"] canvas'), "the cost view");
  const cost = (await mockCalls(page, "costOverview")).length;
  await page.evaluate(() => window.__STEPWISE_MOCK__.emit({ kind: "lagged" }));
  await eventually(async () => (await mockCalls(page, "costOverview")).length > cost, "the cost to be read again");
});

// ---- Run -------------------------------------------------------------------------------------

test("run: header, timeline lanes and the step panel of a running run", { hash: "#/run/3f9d7b10-8a2c-4e51-b6d4-0c2a9e7f5b13" }, async (page) => {
  await hasText(page.locator(".run-header"), ["running", "docs-refresh", "/home/dana/code/acme-billing", "Started by", "dana", "watch", "Cause", "modify docs/api.md", "Cost"], "the run header");
  const lanes = page.locator('[data-testid="timeline-lane"]');
  await count(lanes, (n) => n >= 3, "at least three lanes for three parallel reads");
  await visible(page.locator('.bar[data-step="rewrite_api"]'), "the bar of rewrite_api");
  await hasText(page.locator('[data-testid="timeline"]'), ["running", "succeeded", "executing"], "the legend");
  // The running model step is selected first; its text streams in.
  await hasText(page.locator('[data-testid="step-panel"]'), ["rewrite_api", "running", "llm_call", "Tighten docs/api.md"], "the step panel with the exact request");
  await page.evaluate(() => {
    const m = window.__STEPWISE_MOCK__;
    m.streamProgress("3f9d7b10-8a2c-4e51-b6d4-0c2a9e7f5b13", "rewrite_api", "# API\n\nThe service exposes ");
    m.streamProgress("3f9d7b10-8a2c-4e51-b6d4-0c2a9e7f5b13", "rewrite_api", "three endpoints.");
  });
  await hasText(page.locator('[data-testid="step-stream"]'), "The service exposes three endpoints.", "the streamed model text");
  await shot(page, "run");
  // Choosing a finished step from the table shows its recorded result, tokens and cost.
  await page.locator('[data-testid="steps-list"] [data-step="rewrite_readme"]').click();
  await hasText(page.locator('[data-testid="step-panel"]'), ["rewrite_readme", "succeeded", "llm_replied", "Input tokens", "600", "Output tokens", "320"], "a finished model step");
  await eventually(async () => (await page.evaluate(() => location.hash)).includes("step=rewrite_readme"), "the step in the address");
});

// The app opens at 1000×700 (tauri.conf.json): no view may draw text over other text there.
test("every view at the app's default window size: no text drawn over other text or out of its box", { hash: "#/run/3f9d7b10-8a2c-4e51-b6d4-0c2a9e7f5b13", viewport: { width: 1000, height: 700 } }, async (page) => {
  await visible(page.locator('[data-testid="steps-list"] [data-step="rewrite_api"]'), "the steps table");
  await hasText(page.locator(".steps .list-head"), ["STATUS", "STEP", "TYPE", "TOOK", "WAITED", "COST"], "the columns that stay");
  await shot(page, "run-1000x700");
  const views = [
    ["#/run/3f9d7b10-8a2c-4e51-b6d4-0c2a9e7f5b13", '[data-testid="steps-list"]'],
    ["#/runs", '[data-testid="runs-list"] .list-row'],
    ["#/approvals", ".diff-row"],
    ["#/cost", "canvas"],
    ["#/workspace", '[role="tree"], .tree'],
    ["#/workflows", "form, .form-pane"],
  ];
  const problems = [];
  for (const [hash, ready] of views) {
    await page.evaluate((h) => (location.hash = h), hash);
    await visible(page.locator(ready).first(), `${hash} to show`);
    await painted(page);
    problems.push(...(await overlappingText(page)).map((p) => `${hash}: ${p}`));
    if (hash === "#/approvals") {
      await page.getByRole("button", { name: "Side by side" }).click();
      await visible(page.locator(".split-row").first(), "the side-by-side diff");
      problems.push(...(await overlappingText(page)).map((p) => `${hash} side by side: ${p}`));
    }
  }
  if (problems.length) throw new Error(`text drawn over other text or out of its box at 1000×700:\n  ${problems.join("\n  ")}`);
});

test("run: an operation cut off by a crash shows as outcome unknown, and a person resolves it", { hash: "#/run/3f9d7b10-8a2c-4e51-b6d4-0c2a9e7f5b13" }, async (page) => {
  const run = "3f9d7b10-8a2c-4e51-b6d4-0c2a9e7f5b13";
  await hasText(page.locator('[data-testid="step-panel"]'), ["rewrite_api", "running"], "the running step");
  // Chosen, so that the panel stays on it whatever happens to the others.
  await page.locator('[data-testid="steps-list"] [data-step="rewrite_api"]').click();
  await page.evaluate((id) => window.__STEPWISE_MOCK__.crash(id, "rewrite_api"), run);
  const panel = page.locator('[data-testid="step-panel"]');
  await hasText(panel.locator('[data-testid="step-unknown"]'), ["Outcome unknown", "Run it again", "It happened: mark done", "Skip the step"], "the resolve actions");
  await hasText(panel.locator(".status").first(), "outcome unknown", "the step's status");
  await hasText(page.locator('[data-testid="run-unknown"]'), ["Outcome unknown", "rewrite_api"], "the run's banner");
  await hasText(page.locator('[data-testid="timeline"] .legend'), "outcome unknown", "the timeline's legend");
  const unknownKey = page.locator('[data-testid="timeline"] .legend .key', { hasText: /^outcome unknown$/ });
  await visible(unknownKey, "the legend's key for the status outcome unknown");
  await visible(page.locator('.bar[data-step="rewrite_api"] .seg.unknown'), "the unknown segment on the timeline");
  await hasText(page.locator('[data-testid="steps-list"] [data-step="rewrite_api"]'), "outcome unknown", "the step's row");
  await shot(page, "run-outcome-unknown");
  await panel.getByRole("button", { name: "It happened: mark done" }).click();
  await hasText(panel.locator(".status").first(), "succeeded", "the resolved step");
  await gone(page.locator('[data-testid="run-unknown"]'), "the run's banner");
  // No step has that status any more: the legend no longer lists it.
  await gone(unknownKey, "the legend's key for a status no step has");
  const [[, step, resolution]] = await mockCalls(page, "resolveStep");
  if (step !== "rewrite_api" || resolution !== "mark_done") fail(`resolveStep got ${step} ${resolution}`);
});

test("run: waiting for a person is drawn apart, decisions are listed", { hash: "#/run/7c1e2a9b-5d44-4b0e-9f3a-2f6f0c1d8e41" }, async (page) => {
  await hasText(page.locator('[data-testid="timeline"]'), "waiting for a person", "the legend entry for waiting");
  await visible(page.locator(".bar .seg.wait"), "a hatched waiting segment");
  await hasText(page.locator('[data-testid="step-panel"]'), ["edit", "awaiting approval", "Waiting for a person", "still waiting", "Waits for you"], "the waiting step");
  await hasText(page.locator('[data-testid="run-pending"]'), ["Waits for you", "edit"], "the run's pending banner");
});

test("run: 'Open in Approvals' selects that run's question", async (page) => {
  const id = await page.evaluate(() => window.__STEPWISE_MOCK__.listRuns({ status: "all", query: "", offset: 0, limit: 500 }).then((p) => p.runs.find((x) => x.workflow === "fix-flaky-test").run_id));
  await page.evaluate((rid) => (location.hash = `#/run/${rid}`), id);
  await page.locator('[data-testid="run-pending"]').getByRole("link", { name: "Open in Approvals" }).click();
  await hasText(selectedInbox(page), "python3 -m pytest", "the run's command selected in the inbox");
  await eventually(async () => (await page.evaluate(() => location.hash)) === "#/approvals", "the address to settle on the inbox");
});

test("run: decisions with who, how and the approved hash", async (page) => {
  const id = await page.evaluate(() => window.__STEPWISE_MOCK__.listRuns({ status: "all", query: "", offset: 0, limit: 500 }).then((p) => p.runs.find((x) => x.workflow === "release-notes").run_id));
  await page.evaluate((rid) => (location.hash = `#/run/${rid}?tab=decisions`), id);
  await hasText(page.locator('[data-testid="decision"]').first(), ["approved", "by dana", "by hand", "edited before approval", "Fixed the version header by hand", "Approved", "(the edited proposal)"], "a manual, edited approval");
  const other = await page.evaluate(() => window.__STEPWISE_MOCK__.listRuns({ status: "all", query: "", offset: 0, limit: 500 }).then((p) => p.runs.find((x) => x.workflow === "fix-flaky-test").run_id));
  await page.evaluate((rid) => (location.hash = `#/run/${rid}?tab=decisions`), other);
  await hasText(page.locator('[data-testid="decision"]').first(), ["approved", "by policy", "by rule", "allow edit_file"], "an approval by rule");
});

test("compare: a run with another of its workflow, timelines aligned by step", { hash: "#/run/7c1e2a9b-5d44-4b0e-9f3a-2f6f0c1d8e41" }, async (page) => {
  await page.getByRole("button", { name: "Compare with…" }).click();
  await visible(page.locator('[data-testid="compare-picker"] button.link').first(), "another run of the workflow");
  await page.locator('[data-testid="compare-picker"] button.link').first().click();
  await hasText(page.locator('[data-testid="compare-verdict"]'), "First difference", "the first difference");
  await visible(page.locator('.lanes .cell.differs').first(), "a step that differs, marked");
  await shot(page, "compare");
  const overlaps = await overlappingText(page);
  if (overlaps.length) fail(`text over text: ${JSON.stringify(overlaps)}`);
});

test("runs: a child run under its parent, and the parent's workflow step opens it", async (page) => {
  const parent = "5a0c2f7e-31d4-4c8a-9e6b-7d2a1f0e9b11";
  const child = "9e41b7c2-08aa-5f3d-8c21-4b6e0d9f2a55";
  const rows = page.locator('[data-testid="runs-list"] [role="option"]');
  await count(rows, (n) => n >= 20, "many run rows");
  await page.locator('[data-testid="runs-list"]').evaluate((el) => { el.scrollTop = el.scrollHeight; });
  await visible(page.locator(`[data-run="${child}"]`), "the child run's row");
  const order = await rows.evaluateAll((els) => els.map((e) => e.getAttribute("data-run")));
  if (order.indexOf(child) !== order.indexOf(parent) + 1) fail(`the child run is not right under its parent: ${order.join(", ")}`);
  await hasText(page.locator(`[data-run="${child}"]`), ["└review-one", "child of 5a0c2f7e"], "the child run's row");
  await page.locator(`[data-run="${child}"]`).scrollIntoViewIfNeeded();
  await shot(page, "runs-family");
  await page.evaluate((id) => { location.hash = `#/run/${id}`; }, parent);
  const link = page.locator('[data-step="review"] [data-testid="child-run-link"]');
  await visible(link, "the workflow step's link to its child run");
  await link.click();
  await hasText(page.locator(".run-header"), ["review-one", "child run of 5a0c2f7e"], "the child run's header");
});

test("runs: a run a trigger started says what fired", async (page) => {
  const triggered = page.locator('[data-run="3f9d7b10-8a2c-4e51-b6d4-0c2a9e7f5b13"]');
  await visible(triggered, "the row of the run a file trigger started");
  await hasText(triggered.locator("[data-cause]"), "started by: modify docs/api.md", "its cause");
  const byHand = page.locator('[data-testid="runs-list"] [role="option"]').filter({ hasText: "cli (dana)" }).first();
  if ((await byHand.locator("[data-cause]").count()) !== 0) fail("a run a person started shows a cause");
});

test("run: compensations are listed apart, each naming the step it undoes", { hash: "#/run/4d2b8e61-9c3a-4b7f-8e05-1a6c3f9d2e70" }, async (page) => {
  const undo = page.locator('[data-testid="steps-list"] [data-step="undo_create"]');
  await visible(undo, "the compensation's row");
  await hasText(undo, "↩ undoes create", "the compensation's row");
  if ((await page.locator('[data-testid="steps-list"] [data-step="deploy"][data-compensates]').count()) !== 0) fail("a step that undoes nothing is marked");
  await undo.click();
  await hasText(page.locator('[data-testid="step-compensates"]'), "create", "the panel names the step it undoes");
  // The timeline marks the compensations' bars apart, each naming what it undoes.
  const bar = page.locator('.lane .bar[data-step="undo_create"]');
  await visible(bar, "the compensation's bar");
  if ((await bar.getAttribute("data-compensates")) !== "create") fail("the compensation's bar does not name the step it undoes");
  if (!(await bar.getAttribute("class")).includes("compensation")) fail("the compensation's bar is not drawn apart");
  if ((await page.locator('.lane .bar[data-step="deploy"][data-compensates]').count()) !== 0) fail("a bar that undoes nothing is marked");
});

test("run: fork from a step, and the runs list shows the family", async (page) => {
  await page.goto(`${page.url().split("#")[0]}#/runs`);
  const finished = page.locator('[data-status="succeeded"]').filter({ hasText: "add-factorial" }).first();
  await finished.click();
  await page.getByRole("button", { name: "edit", exact: true }).first().click().catch(() => {});
  await page.evaluate(() => { location.hash = location.hash.replace(/\?.*$/, "") + "?step=edit"; });
  await page.getByRole("button", { name: "Fork from here…" }).click();
  await page.getByRole("button", { name: "Fork", exact: true }).click();
  await page.getByRole("button", { name: "Put back and fork" }).click();
  await hasText(page.locator(".run-header"), "fork of", "the fork's header links its parent");
  await shot(page, "run-fork");
  await page.evaluate(() => { location.hash = "#/runs"; });
  await hasText(page.locator(".list-row").filter({ hasText: "fork of" }).first(), "fork of", "the fork in the runs list");
});

test("approvals: an edit reviewed hunk by hunk with j/k and y/n", { hash: "#/approvals" }, async (page) => {
  await hasText(selectedInbox(page), "src/utils.py", "the edit selected");
  await page.keyboard.press("h");
  await hasText(page.locator('[data-testid="hunk-review"]'), "Hunk 1 of 2", "the review under way");
  await page.keyboard.press("n");
  await hasText(page.locator('[data-hunk="1"]'), "rejected", "the first hunk rejected");
  await shot(page, "approvals-hunks");
  const overlaps = await overlappingText(page);
  if (overlaps.length) fail(`text over text: ${JSON.stringify(overlaps)}`);
});

test("run: replay against recorded and current workflow, with the first divergence", { hash: "#/run/7c1e2a9b-5d44-4b0e-9f3a-2f6f0c1d8e41" }, async (page) => {
  await page.getByRole("button", { name: "Replay (recorded)" }).click();
  await hasText(page.locator('[data-testid="replay-verdict"]'), ["Replay matches", "decisions match", "nothing was performed"], "a matching replay");
  await page.getByRole("button", { name: "Replay (current workflow)" }).click();
  const verdict = page.locator('[data-testid="replay-verdict"]');
  await hasText(verdict, ["Replay diverged", "diverged at event", "First divergence", "What the log holds", "--maxfail=1"], "the divergence");
  await shot(page, "run-replay");
  await page.getByRole("button", { name: /Show event \d+ in the log/ }).click();
  await visible(page.locator('[data-testid="event-log"] [aria-selected="true"]'), "the diverging event selected in the log");
});

test("run: the raw event log, filtered", { hash: "#/run/b2c4e6f8-1a3b-4c5d-8e9f-a0b1c2d3e4f5?tab=events" }, async (page) => {
  const log = page.locator('[data-testid="event-log"]');
  await hasText(log, ["RunStarted", "OperationStarted", "StepFailed", "RunFailed"], "events of the failed run");
  await log.getByRole("searchbox").fill("StepFailed");
  await count(log.locator('[role="option"]'), 1, "events after filtering");
  await log.locator('[role="option"]').first().click();
  await hasText(log.locator("aside"), ["StepFailed", "command exited with status 1"], "the selected event's data");
  await shot(page, "run-events");
});

test("run: pause and cancel change the status", { hash: "#/run/3f9d7b10-8a2c-4e51-b6d4-0c2a9e7f5b13" }, async (page) => {
  const header = page.locator(".run-header");
  await page.getByRole("button", { name: "Pause" }).click();
  await hasText(header.locator(".status").first(), "paused", "the paused status");
  await page.getByRole("button", { name: "Resume" }).click();
  await hasText(header.locator(".status").first(), "running", "the resumed status");
  await page.getByRole("button", { name: "Cancel", exact: true }).click();
  await page.getByRole("button", { name: "Really cancel?" }).click();
  await hasText(header.locator(".status").first(), "cancelled", "the cancelled status");
  await hasText(page.locator(".toasts"), "Cancel requested", "the toast");
});

// ---- Approvals -------------------------------------------------------------------------------

test("approvals: the diff of an edit, unified and side by side", { hash: "#/approvals" }, async (page) => {
  await hasText(page.locator('[data-testid="approvals-count"]'), "8", "the count badge");
  await hasText(selectedInbox(page), "src/utils.py", "the newest item selected");
  await hasText(page.locator('[data-testid="approval-reason"]'), "edit_file needs approval by default", "why it waits");
  await hasText(page.locator(".diff-row.add").filter({ hasText: "def factorial" }), "def factorial(n: int) -> int:", "an added line");
  await hasText(page.locator(".diff-row.del").filter({ hasText: "sum(values)" }), "return sum(values) / len(values)", "a removed line");
  await visible(page.locator(".diff-row.add .hljs-keyword"), "syntax highlighting in the diff");
  await shot(page, "approvals");
  await page.getByRole("button", { name: "Side by side" }).click();
  await hasText(page.locator(".split-row .half.del").filter({ hasText: "sum(values)" }), "return sum(values) / len(values)", "the removed line on the left");
  await hasText(page.locator(".split-row .half.add").filter({ hasText: "fsum" }), "return math.fsum(values) / len(values)", "its replacement on the right");
  await shot(page, "approvals-split");
});

test("approvals: keyboard a / r / Enter / Esc change the inbox", { hash: "#/approvals" }, async (page) => {
  const options = page.locator('[data-testid="inbox"] [role="option"]');
  await count(options, 8, "eight questions");
  await page.keyboard.press("j");
  await hasText(selectedInbox(page), "tests/test_utils.py", "j to the second");
  await page.keyboard.press("k");
  await hasText(selectedInbox(page), "src/utils.py", "k back to the first");
  await page.keyboard.press("a");
  await count(options, 7, "seven questions after approving");
  await hasText(page.locator('[data-testid="approvals-count"]'), "7", "the badge after approving");
  await hasText(selectedInbox(page), "tests/test_utils.py", "the next question selected");
  await hasText(page.locator(".toasts"), "Approved", "the confirmation");

  await page.keyboard.press("r");
  const reason = page.locator("#reject-reason");
  await visible(reason, "the reason box");
  if (!(await reason.evaluate((el) => el === document.activeElement))) fail("the reason box should have the focus");
  await page.keyboard.type("one test per edge case, and name them after the behaviour");
  await count(options, 7, "no decision while typing (the reason has an a and an r)");
  await page.keyboard.press("Enter");
  await count(options, 6, "six questions after rejecting");
  const rejected = await mockCalls(page, "rejectStep");
  if (rejected[0]?.[0]?.reason !== "one test per edge case, and name them after the behaviour") fail(`the rejection's reason was ${JSON.stringify(rejected)}`);

  await page.keyboard.press("r");
  await visible(reason, "the reason box again");
  await page.keyboard.press("Escape");
  await gone(reason, "the reason box after Esc");
  await count(options, 6, "nothing decided by Esc");

  // Typing in the comment field never triggers a decision.
  await page.getByRole("textbox", { name: /Comment/ }).fill("a r e j k");
  await count(options, 6, "nothing decided while typing a comment");
});

test("approvals: e edits then approves the edited content", { hash: "#/approvals" }, async (page) => {
  await hasText(selectedInbox(page), "src/utils.py", "the edit selected");
  await page.keyboard.press("e");
  const editor = page.locator("#edit-box");
  await visible(editor, "the editor");
  await editor.press("End");
  await page.keyboard.press("Control+End");
  await page.keyboard.type("\n# reviewed by dana\n");
  await page.keyboard.press("Control+Enter");
  await count(page.locator('[data-testid="inbox"] [role="option"]'), 7, "the edited proposal approved");
  const [[args]] = await mockCalls(page, "approveStep");
  if (!args.editedContent?.includes("# reviewed by dana")) fail(`the approval did not carry the edit: ${JSON.stringify(args).slice(0, 200)}`);
});

test("approvals: command, budget, plan and gate previews", { hash: "#/approvals" }, async (page) => {
  const detail = page.locator('[data-testid="approval-detail"]');
  await hasText(selectedInbox(page), "src/utils.py", "the first item");
  await page.keyboard.press("j");
  await page.keyboard.press("j");
  await hasText(page.locator('[data-testid="command-preview"]'), ["python3 -m pytest -q tests/test_invoices.py -k 'not slow'", "directly, no shell", "services/api", "PYTHONPATH", "src", "PYTEST_ADDOPTS", "VIRTUAL_ENV", "HOME", "2m 00s", "1.0 MB"], "the argv command");
  await hasText(detail, "python3 -m pytest*", "why the command waits");
  await shot(page, "approvals-command");
  await page.keyboard.press("j");
  await hasText(page.locator('[data-testid="budget-preview"]'), ["sonnet", "claude-sonnet-4-5", "$0.11616", "18,240 input + 4,096 output tokens", "$0.0125", "20,000 tokens", "$0.10366"], "the budget proposal");
  await shot(page, "approvals-budget");
  await page.keyboard.press("j");
  const plan = page.locator('[data-testid="plan-preview"]');
  await hasText(plan, ["Add type hints to src/utils.py", "read_module", "runs without asking", "typecheck", "asks a person", "cleanup", "refused by policy"], "the plan with each step's verdict");
  await shot(page, "approvals-plan");
  await page.keyboard.press("j");
  await hasText(page.locator('[data-testid="command-preview"]'), ["pip list --outdated", "through sh -c", "PIP_INDEX_URL", "5m 00s"], "the shell command");
  await page.keyboard.press("j");
  await hasText(page.locator('[data-testid="gate-preview"]'), "Review the generated release notes", "the gate's message");
  await hasText(page.locator('[data-testid="decide-bar"]'), ["Approve", "Edit", "Reject"], "the actions with their keys");
  if (!(await page.getByRole("button", { name: /^Edit/ }).isDisabled())) fail("a gate cannot be edited: Edit should be disabled");
});

test("approvals: a stale proposal is replaced by a fresh one", { hash: "#/approvals" }, async (page) => {
  await hasText(selectedInbox(page), "src/utils.py", "the edit selected");
  await page.evaluate(() => {
    const m = window.__STEPWISE_MOCK__;
    const t = window.__STEPWISE_TEST__;
    return m.listApprovals().then(({ items }) => {
      const edit = items.find((i) => i.step === "edit" && i.workflow === "add-factorial");
      m.replaceProposal(edit.run_id, "edit", t.editProposal("src/utils.py", t.UTILS_BEFORE, `${t.UTILS_BEFORE}\n\ndef factorial(n):\n    return 1 if n < 2 else n * factorial(n - 1)\n`));
    });
  });
  await hasText(page.locator('[data-testid="stale-notice"]'), "stale — replaced by a fresh proposal", "the stale notice");
  await hasText(page.locator(".diff-row.add").filter({ hasText: "n * factorial" }), "n * factorial(n - 1)", "the fresh proposal's diff");
  await shot(page, "approvals-stale");
});

test("approvals: a refused decision shows its code and message", { hash: "#/approvals" }, async (page) => {
  await hasText(selectedInbox(page), "src/utils.py", "the edit selected");
  await page.evaluate(() => window.__STEPWISE_MOCK__.failNext("approveStep", { code: "refused", message: "the file changed since the proposal" }));
  await page.keyboard.press("a");
  await hasText(page.locator('[data-testid="approval-detail"] [role="alert"]'), ["refused", "the file changed since the proposal"], "the error in the detail");
  await hasText(page.locator(".toasts"), ["refused", "the file changed since the proposal"], "the error toast");
  await count(page.locator('[data-testid="inbox"] [role="option"]'), 8, "nothing decided");
});

test("approvals: a run that cannot be read is named, not left out in silence", { hash: "#/approvals" }, async (page) => {
  await hasText(selectedInbox(page), "src/utils.py", "the inbox");
  await page.evaluate(() => window.__STEPWISE_MOCK__.breakRun("7c1e2a9b-5d44-4b0e-9f3a-2f6f0c1d8e41", "database disk image is malformed"));
  await hasText(page.locator('[data-testid="unreadable-runs"]'), ["A run cannot be read", "7c1e2a9b", "database disk image is malformed"], "the unreadable run");
});

test("approvals: dark mode", { hash: "#/approvals", colorScheme: "dark" }, async (page) => {
  await visible(page.locator(".diff-row.add"), "the diff");
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  if (bg === "rgb(255, 255, 255)") fail("the page stayed light under prefers-color-scheme: dark");
  await shot(page, "approvals-dark");
});

// ---- Cost ------------------------------------------------------------------------------------

test("cost: charts and totals at micro-dollar precision", { hash: "#/cost" }, async (page) => {
  const expected = await page.evaluate(() => window.__STEPWISE_MOCK__.costOverview().then((o) => o.total));
  const dollars = `$0.${String(expected.micro_usd).padStart(6, "0")}`.replace(/^\$0\.(\d{2,}?)0*$/, "$$0.$1");
  await hasText(page.locator('[data-testid="cost-total"]'), dollars, "the total");
  await hasText(page.locator('[data-testid="cost-totals"]'), [String(expected.calls), expected.input_tokens.toLocaleString("en-US"), expected.output_tokens.toLocaleString("en-US")], "calls and tokens");
  for (const chart of ["chart-day", "chart-model", "chart-run", "chart-step"]) {
    const canvas = page.locator(`[data-testid="${chart}"] canvas`);
    await visible(canvas, `the ${chart} canvas`);
    const size = await canvas.evaluate((c) => [c.width, c.height]);
    if (size[0] < 100 || size[1] < 50) fail(`${chart} was not drawn (${size})`);
  }
  await hasText(page.locator(".cost-table").nth(1), ["anthropic/claude-sonnet-4-5", "openai/gpt-4.1-mini", "Total"], "the per-model table");
  await shot(page, "cost");
  await page.getByRole("button", { name: "Tokens" }).click();
  await visible(page.locator('[data-testid="chart-day"] canvas'), "the day chart in tokens");
});

// ---- Workspace -------------------------------------------------------------------------------

test("workspace: the tree with touched files and pending edits", { hash: "#/workspace" }, async (page) => {
  const tree = page.locator('[data-testid="workspace-tree"]');
  await hasText(tree.locator('[role="treeitem"]').first(), "/home/dana/code/acme-billing", "the root");
  const utils = tree.locator('[data-path="src/utils.py"]');
  await hasText(utils, ["utils.py", "pending edit", "touched"], "the marks on src/utils.py");
  const label = await utils.getAttribute("aria-label");
  if (!label.includes("edit waiting for approval") || !label.includes("touched by runs")) fail(`utils.py's label says ${label}`);
  await hasText(page.locator(".legend"), ["edit waiting for approval", "touched by runs"], "the legend");
  await shot(page, "workspace");
  await tree.locator('[data-path="src"]').click();
  await gone(utils, "utils.py once src/ is folded");
  await hasText(tree.locator('[data-path="src"]'), "inside", "the folded folder's marks");
  await tree.locator('[data-path="src"]').click();
  await visible(utils, "utils.py again");
  // Approving the edit elsewhere clears its mark live.
  await page.evaluate(() => {
    const m = window.__STEPWISE_MOCK__;
    return m.listApprovals().then(({ items }) => {
      const edit = items.find((i) => i.step === "edit" && i.workflow === "add-factorial");
      return m.approveStep({ run: edit.run_id, step: "edit", proposalHash: edit.proposal_hash });
    });
  });
  await eventually(async () => (await utils.getAttribute("data-pending")) === "false", "the pending mark to clear after approval");
});

// ---- Workflows -------------------------------------------------------------------------------

test("workflows: validation errors and starting a run from the form", { hash: "#/workflows" }, async (page) => {
  const broken = page.locator('[data-testid="workflow"][data-path$="broken.yaml"]');
  await hasText(broken, ["broken.yaml", "3 problems", "line 12, column 11", "step test", "run_comand", "line 18, column 12", "step summary"], "the broken workflow's problems");
  await hasText(page.locator('[data-testid="workflow"]').first(), ["add-factorial", "valid", "6 steps"], "a valid workflow");
  // The group headings are set in capitals by CSS: compare what is written.
  const groups = await page.locator(".group").allTextContents();
  if (groups.join("|") !== "In the workspace|Bundled examples") fail(`the groups are ${groups.join(", ")}`);
  await shot(page, "workflows");
  const form = page.locator('[data-testid="run-form"]');
  const module = form.getByLabel(/module/);
  if ((await module.inputValue()) !== "src/utils.py") fail("the module default is not prefilled");
  if (!(await form.getByLabel("run_tests").isChecked())) fail("run_tests should start checked");
  const attempts = form.getByLabel(/max_attempts/);
  if ((await attempts.getAttribute("type")) !== "number") fail("an integer input should be a number field");
  await attempts.fill("1.5");
  await form.getByRole("button", { name: "Start run" }).click();
  await hasText(form.getByRole("alert"), "must be a whole number", "the integer check");
  await attempts.fill("3");
  await form.getByLabel("run_tests").uncheck();
  await form.getByRole("button", { name: "Start run" }).click();
  await eventually(async () => (await page.evaluate(() => location.hash)).startsWith("#/run/"), "the new run to open");
  await hasText(page.locator(".run-header"), ["add-factorial", "running", "app (dana)"], "the new run's header");
  const [[path, inputs]] = await mockCalls(page, "startRun");
  if (!path.endsWith("add-factorial.yaml") || JSON.stringify(inputs) !== JSON.stringify({ module: "src/utils.py", run_tests: "false", max_attempts: "3", temperature: "0.2" }))
    fail(`startRun got ${path} ${JSON.stringify(inputs)}`);
});

// ---- Keyboard and landmarks ------------------------------------------------------------------

test("landmarks and keyboard reach", async (page) => {
  await visible(page.getByRole("navigation", { name: "Views" }), "the navigation landmark");
  await visible(page.getByRole("main"), "the main landmark");
  const labels = await page.getByRole("navigation", { name: "Views" }).locator("a").evaluateAll((as) => as.map((a) => a.childNodes[0].textContent.trim()));
  if (labels.join("|") !== "Runs|Approvals|Workspace|Cost|Workflows|Settings") fail(`the navigation reads ${labels.join(", ")}`);
  // Tab from the top reaches the navigation's links, in order.
  const reached = [];
  for (let i = 0; i < 8; i++) {
    await page.keyboard.press("Tab");
    reached.push(await page.evaluate(() => document.activeElement?.childNodes[0]?.textContent?.trim() ?? ""));
  }
  for (const label of ["Runs", "Approvals", "Workspace", "Cost", "Workflows", "Settings"]) if (!reached.includes(label)) fail(`Tab did not reach ${label} (reached ${reached.join(", ")})`);
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll("button, a[href], input, select, textarea")]
      .filter((el) => !(el.getAttribute("aria-label") || el.textContent.trim() || el.getAttribute("placeholder") || (el.id && document.querySelector(`label[for="${el.id}"]`))))
      .map((el) => el.outerHTML.slice(0, 80)),
  );
  if (unlabelled.length) fail(`controls without a name: ${unlabelled.join(" ")}`);
});

// ---- Runner ----------------------------------------------------------------------------------

async function main() {
  await mkdir(ARTIFACTS, { recursive: true });
  // Failure screenshots of an earlier run would mislead.
  for (const f of await readdir(ARTIFACTS)) if (f.startsWith("FAILED-")) await rm(join(ARTIFACTS, f));
  const started = Date.now();
  const mock = await buildMock();
  const server = await serveDist();
  const browser = await launch();
  const results = [];
  try {
    for (const t of tests) {
      if (only && !t.name.includes(only)) continue;
      const t0 = Date.now();
      const { page, context, problems } = await openApp(browser, server.url, mock, { config: t.options.config, hash: t.options.hash ?? "#/runs", colorScheme: t.options.colorScheme, viewport: t.options.viewport });
      let error = null;
      try {
        await t.fn(page);
        // A favicon or other 404 would show here too: the page must be clean.
        if (problems.length) fail(`the page reported problems:\n      ${problems.join("\n      ")}`);
      } catch (e) {
        error = e;
        await page.screenshot({ path: join(ARTIFACTS, `FAILED-${t.name.replace(/[^a-z0-9]+/gi, "-").slice(0, 60)}.png`) }).catch(() => {});
      } finally {
        await context.close();
      }
      const ms = Date.now() - t0;
      results.push({ name: t.name, ok: !error, ms });
      console.log(`${error ? "✗ FAIL" : "✓ ok  "} ${t.name} (${ms} ms)`);
      if (error) console.log(`      ${error instanceof Failure ? error.message : error.stack}`);
    }
  } finally {
    await browser.close();
    await server.close();
  }
  const failed = results.filter((r) => !r.ok);
  console.log(`\n${results.length - failed.length} passed, ${failed.length} failed in ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots in ${ARTIFACTS}`);
  process.exit(failed.length || results.length === 0 ? 1 : 0);
}

main().catch((e) => {
  console.error(`browser tests could not run: ${e.message}`);
  process.exit(2);
});
