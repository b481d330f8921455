// Bundled into an IIFE by the browser harness and installed with `page.addInitScript` before
// the app loads: a MockBackend over the fixtures on `window.__STEPWISE_MOCK__`, and a few
// fixture builders on `window.__STEPWISE_TEST__` for tests that change the world.
import type { AppError } from "../../src/generated/AppError";
import type { Backend } from "../../src/ipc/backend";
import { MockBackend } from "../../src/ipc/mock";
import { createFixtures, editProposal, emptyFixtures, generateBigRun, generateRunList, TEST_UTILS, UTILS_AFTER, UTILS_BEFORE } from "../../src/ipc/fixtures";

interface MockConfig {
  scenario?: "default" | "empty";
  /** Add a run of this many steps. */
  bigRun?: number;
  /** Add this many runs to the list. */
  manyRuns?: number;
  latencyMs?: number;
  /** Calls that fail once, from the start. */
  failNext?: Partial<Record<keyof Backend, AppError>>;
}

const w = window as unknown as Record<string, unknown>;
const config = (w.__STEPWISE_MOCK_CONFIG__ ?? {}) as MockConfig;
const mock = new MockBackend(config.scenario === "empty" ? emptyFixtures() : createFixtures(), { latencyMs: config.latencyMs });
if (config.bigRun) mock.addRun(generateBigRun(config.bigRun));
if (config.manyRuns) mock.addRunRows(generateRunList(config.manyRuns));
for (const [method, error] of Object.entries(config.failNext ?? {})) mock.failNext(method as keyof Backend, error as AppError);

w.__STEPWISE_MOCK__ = mock;
w.__STEPWISE_TEST__ = { editProposal, UTILS_BEFORE, UTILS_AFTER, TEST_UTILS };
