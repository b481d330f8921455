// Realistic data for the mock backend: runs in every status (each built from one coherent
// log), an inbox with every kind of question, costs over several days and models, a
// workspace tree, workflows (one with validation errors), and generators of very large runs
// and run lists for benchmarks.
import { createTwoFilesPatch, FILE_HEADERS_ONLY } from "diff";
import type { AppInfo } from "../generated/AppInfo";
import type { FileNode } from "../generated/FileNode";
import type { LlmRequest } from "../generated/LlmRequest";
import type { Proposal } from "../generated/Proposal";
import type { RunListItem } from "../generated/RunListItem";
import type { StepStatus } from "../generated/StepStatus";
import type { WorkflowInfo } from "../generated/WorkflowInfo";
import { agentStep, CALC_AFTER, CALC_BEFORE } from "./agentFixture";
import { familyRuns } from "./familyFixture";
import { signalRuns } from "./signalFixture";
import { compensatedRuns } from "./compensationFixture";
import { memories, stepTypes } from "./libraryFixture";
import type { MemoryEntryView } from "../generated/MemoryEntryView";
import type { StepType } from "../generated/StepType";
import { buildRun, fakeHash, fakeUuid, seeded, type BuiltRun, type RunSpec, type StepSpec } from "./fixtureBuilder";

export const USER = "dana";
export const WORKSPACE = "/home/dana/code/acme-billing";
export const DEMO_WORKSPACE = "/home/dana/.local/share/stepwise/demo";

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

export const UTILS_BEFORE = `"""Small helpers shared by the CLI and the tests."""

import math


def clamp(value, low, high):
    """Return value limited to the range [low, high]."""
    return max(low, min(high, value))


def mean(values):
    if not values:
        raise ValueError("mean of an empty sequence")
    return sum(values) / len(values)


def percent(part, whole):
    return 100 * part / whole
`;

export const UTILS_AFTER = `"""Small helpers shared by the CLI, the app and the tests."""

import math


def clamp(value, low, high):
    """Return value limited to the range [low, high]."""
    return max(low, min(high, value))


def mean(values):
    """Arithmetic mean of a non-empty sequence."""
    if not values:
        raise ValueError("mean of an empty sequence")
    return math.fsum(values) / len(values)


def percent(part, whole):
    return 100 * part / whole


def factorial(n: int) -> int:
    """Return n! for a non-negative integer n."""
    if n < 0:
        raise ValueError("factorial is not defined for negative numbers")
    result = 1
    for k in range(2, n + 1):
        result *= k
    return result
`;

export const TEST_UTILS = `import pytest

from utils import factorial


@pytest.mark.parametrize("n, expected", [(0, 1), (1, 1), (5, 120), (10, 3628800)])
def test_factorial(n, expected):
    assert factorial(n) == expected


def test_factorial_rejects_negative_numbers():
    with pytest.raises(ValueError):
        factorial(-1)
`;

/** A unified diff in the form the engine writes (`a/path` → `b/path`, 3 lines of context). */
export function unifiedDiff(path: string, before: string | null, after: string): string {
  return createTwoFilesPatch(before === null ? "/dev/null" : `a/${path}`, `b/${path}`, before ?? "", after, undefined, undefined, {
    context: 3,
    headerOptions: FILE_HEADERS_ONLY,
  });
}

export function editProposal(path: string, before: string | null, after: string): Proposal {
  return {
    kind: "edit_file",
    path,
    base_hash: before === null ? null : fakeHash(before),
    content: after,
    diff: unifiedDiff(path, before, after),
  };
}

const price = (input: number, output: number) => ({ input_micro_usd_per_mtok: input, output_micro_usd_per_mtok: output });

const MODELS = {
  local: { provider: "local", kind: "openai" as const, base_url: "http://127.0.0.1:8080/v1", model: "smollm2-135m-instruct", price: price(0, 0) },
  sonnet: { provider: "anthropic", kind: "anthropic" as const, model: "claude-sonnet-4-5", api_key_env: "ANTHROPIC_API_KEY", price: price(3_000_000, 15_000_000) },
  mini: { provider: "openai", kind: "openai" as const, model: "gpt-4.1-mini", api_key_env: "OPENAI_API_KEY", price: price(400_000, 1_600_000) },
  flash: { provider: "gemini", kind: "gemini" as const, model: "gemini-2.5-flash", api_key_env: "GEMINI_API_KEY", price: price(300_000, 2_500_000) },
};
type ModelAlias = keyof typeof MODELS;

function llmRequest(alias: ModelAlias, prompt: string, maxTokens = 2048): LlmRequest {
  return {
    model: alias,
    spec: { ...MODELS[alias], stream: true },
    messages: [
      { role: "system", content: "You are a careful senior engineer. Reply with the whole file only." },
      { role: "user", content: prompt },
    ],
    temperature: 0.2,
    max_tokens: maxTokens,
  };
}

/** Micro-dollars for a call at the alias's prices (integer arithmetic, rounded up). */
function callCost(alias: ModelAlias, input: number, output: number): number {
  const p = MODELS[alias].price;
  return Math.ceil((input * p.input_micro_usd_per_mtok + output * p.output_micro_usd_per_mtok) / 1_000_000);
}

function llmStep(id: string, alias: ModelAlias, prompt: string, reply: string, input: number, output: number, extra: Partial<StepSpec> = {}): StepSpec {
  const micro = callCost(alias, input, output);
  return {
    id,
    kind: "prompt",
    status: "succeeded",
    phases: [["exec", 4_200]],
    ops: [
      {
        request: { kind: "llm_call", ...llmRequest(alias, prompt) },
        result: {
          kind: "llm_replied",
          text: reply,
          finish_reason: "stop",
          usage: { input_tokens: input, output_tokens: output },
          latency_ms: 4_180,
          cost_micro_usd: micro,
        },
      },
    ],
    cost: { model: `${MODELS[alias].provider}/${MODELS[alias].model}`, input, output, micro, simulated: false },
    output: { text: reply.length > 400 ? `${reply.slice(0, 400)}…` : reply },
    ...extra,
  };
}

function readStep(id: string, path: string, content: string, extra: Partial<StepSpec> = {}): StepSpec {
  return {
    id,
    kind: "read_file",
    status: "succeeded",
    phases: [["exec", 12]],
    ops: [{ request: { kind: "read_file", path }, result: { kind: "file_read", exists: true, content, hash: fakeHash(content) } }],
    output: { path, content: content.length > 200 ? `${content.slice(0, 200)}…` : content, hash: fakeHash(content) },
    ...extra,
  };
}

function commandOutcome(exit: number, stdout: string, stderr = "", duration = 2_300) {
  return {
    kind: "command_finished",
    exit_code: exit,
    signal: null,
    stdout,
    stderr,
    stdout_bytes: stdout.length,
    stderr_bytes: stderr.length,
    duration_ms: duration,
  };
}

export const PYTEST_COMMAND: Proposal = {
  kind: "run_command",
  command: { argv: ["python3", "-m", "pytest", "-q", "tests/test_invoices.py", "-k", "not slow"] },
  cwd: "services/api",
  env: { PYTHONPATH: "src", PYTEST_ADDOPTS: "-p no:cacheprovider" },
  pass_env: ["HOME", "PATH", "VIRTUAL_ENV"],
  timeout_ms: 120_000,
  max_output_bytes: 1_048_576,
};

export const SHELL_COMMAND: Proposal = {
  kind: "run_command",
  command: { shell: "pip list --outdated --format=json > .stepwise/outdated.json && wc -l .stepwise/outdated.json" },
  cwd: ".",
  env: {},
  pass_env: ["PATH", "PIP_INDEX_URL"],
  timeout_ms: 300_000,
  max_output_bytes: 262_144,
};

export const BUDGET_PROPOSAL: Proposal = {
  kind: "llm_call",
  request: llmRequest("sonnet", "Classify each of the 212 open issues below as bug, feature or question, as JSON…", 4096),
  estimate: { input_tokens: 18_240, output_tokens: 4_096, micro_usd: 116_160 },
  remaining: { micro_usd: 12_500, tokens: 20_000 },
  raise: { micro_usd: 103_660, tokens: 2_336 },
};

export const PLAN_PROPOSAL: Proposal = {
  kind: "plan",
  goal: "Add type hints to src/utils.py and check them with mypy",
  steps: [
    { id: "read_module", type: "read_file", path: "src/utils.py" },
    { id: "annotate", type: "prompt", needs: ["read_module"], model: "sonnet", prompt: "Add precise type hints…" },
    { id: "write", type: "edit_file", needs: ["annotate"], path: "src/utils.py", content: "${steps.annotate.output.text}" },
    { id: "typecheck", type: "run_command", needs: ["write"], command: ["mypy", "--strict", "src/utils.py"] },
    { id: "cleanup", type: "run_command", needs: ["typecheck"], command: "rm -rf .mypy_cache" },
  ],
  verdicts: [
    { id: "read_module", kind: "read_file", approval: "runs without asking: allow read_file `**`" },
    { id: "annotate", kind: "prompt", approval: "runs without asking, unless it would cross the budget" },
    { id: "write", kind: "edit_file", approval: "asks a person (edit_file needs approval by default)" },
    { id: "typecheck", kind: "run_command", approval: "asks a person: ask run_command `mypy*`" },
    { id: "cleanup", kind: "run_command", approval: "refused by policy (deny run_command `rm -rf *`)" },
  ],
};

export const GATE_PROPOSAL: Proposal = {
  kind: "gate",
  message: "Review the generated release notes in CHANGELOG.md before the run is marked done",
};

export interface Fixtures {
  appInfo: AppInfo;
  runs: BuiltRun[];
  workflows: WorkflowInfo[];
  trees: Record<string, FileNode[]>;
  now: number;
  /** The Workflows view's Steps tab (none: only what a test adds). */
  stepTypes?: StepType[];
  /** Memories by name. */
  memories?: Record<string, MemoryEntryView[]>;
}

function file(path: string, size: number, marks: { touched?: boolean } = {}): FileNode {
  return { path, name: path.split("/").pop()!, dir: false, size, touched: !!marks.touched, pending_edit: false, children: [] };
}
function dir(path: string, children: FileNode[]): FileNode {
  return { path, name: path.split("/").pop()!, dir: true, size: 0, touched: false, pending_edit: false, children };
}

export function workspaceTree(): FileNode[] {
  return [
    dir(".stepwise", [file(".stepwise/policy.yaml", 412)]),
    dir("services", [
      dir("services/api", [
        dir("services/api/src", [file("services/api/src/app.py", 3_911), file("services/api/src/invoices.py", 8_240, { touched: true })]),
        dir("services/api/tests", [file("services/api/tests/test_invoices.py", 2_710, { touched: true }), file("services/api/tests/conftest.py", 640)]),
      ]),
    ]),
    dir("src", [file("src/utils.py", UTILS_BEFORE.length, { touched: true }), file("src/cli.py", 5_120, { touched: true }), file("src/__init__.py", 0)]),
    dir("tests", [file("tests/test_cli.py", 1_980)]),
    dir("workflows", [file("workflows/add-factorial.yaml", 1_024), file("workflows/fix-flaky-test.yaml", 880), file("workflows/broken.yaml", 402)]),
    file("CHANGELOG.md", 6_300, { touched: true }),
    file("README.md", 2_200),
    file("pyproject.toml", 760),
  ];
}

const workflow = (path: string, source: string, name: string, description: string, steps: number, inputs: WorkflowInfo["inputs"] = []): WorkflowInfo => ({
  path,
  source,
  name,
  description,
  steps,
  inputs,
  errors: [],
});

export function workflows(): WorkflowInfo[] {
  const bundled = "/usr/share/stepwise/workflows";
  return [
    workflow(`${WORKSPACE}/workflows/add-factorial.yaml`, "workspace", "add-factorial", "Add a factorial function to a Python module and test it", 6, [
      { name: "module", kind: "string", default: "src/utils.py", description: "The module to change" },
      { name: "run_tests", kind: "boolean", default: true, description: "Run pytest after the edit" },
      { name: "max_attempts", kind: "integer", default: 2, description: null },
      { name: "temperature", kind: "number", default: 0.2, description: "Sampling temperature" },
    ]),
    workflow(`${WORKSPACE}/workflows/fix-flaky-test.yaml`, "workspace", "fix-flaky-test", "Find and fix a flaky test, then run it 20 times", 5, [
      { name: "test", kind: "string", default: null, description: "The test's node id" },
      { name: "runs", kind: "integer", default: 20, description: null },
      { name: "markers", kind: "list", default: ["not slow"], description: null },
    ]),
    {
      path: `${WORKSPACE}/workflows/broken.yaml`,
      source: "workspace",
      name: null,
      description: null,
      steps: null,
      inputs: [],
      errors: [
        { line: 12, column: 11, step: "test", message: "unknown step type `run_comand` (did you mean `run_command`?)" },
        { line: 18, column: 12, step: "summary", message: "`needs` refers to `tests`, which is not a step of this workflow" },
        { line: 21, column: 15, step: "summary", message: "the template `${steps.deploy.output}` refers to `deploy`, which is not upstream of `summary`" },
      ],
    },
    workflow(`${bundled}/hello.yaml`, "bundled", "hello", "Write a greeting file (no model needed)", 2, [{ name: "name", kind: "string", default: "world", description: null }]),
    workflow(`${bundled}/llm-factorial.yaml`, "bundled", "llm-factorial", "A model adds factorial() to a module; you approve the edit", 5, [
      { name: "module", kind: "string", default: "utils.py", description: null },
      { name: "run_tests", kind: "boolean", default: false, description: null },
    ]),
    workflow(`${bundled}/llm-triage.yaml`, "bundled", "llm-triage", "Classify issues with structured output", 3, [
      { name: "labels", kind: "object", default: { bug: "red", feature: "green" }, description: null },
    ]),
    workflow(`${bundled}/llm-plan.yaml`, "bundled", "llm-plan", "A model plans steps toward a goal; you approve the plan", 2, [
      { name: "goal", kind: "string", default: "Add type hints to src/utils.py", description: null },
    ]),
  ];
}

/** The fixture runs, newest first in time. `now` anchors every timestamp. */
export function createFixtures(now: number = Date.now()): Fixtures {
  const rand = seeded(7);
  const id = () => fakeUuid(rand);
  const wf = (name: string, where = WORKSPACE) => `${where}/workflows/${name}.yaml`;
  const runs: RunSpec[] = [];

  // Waiting: a model wrote the change; the edit waits for a person.
  runs.push({
    id: "7c1e2a9b-5d44-4b0e-9f3a-2f6f0c1d8e41",
    workflow: "add-factorial",
    workflowPath: wf("add-factorial"),
    workspace: WORKSPACE,
    status: "awaiting_approval",
    trigger: "app (dana)",
    startedBy: USER,
    startedAt: now - 6 * MIN,
    inputs: { module: "src/utils.py", run_tests: true, max_attempts: 2, temperature: 0.2 },
    budget: { micro_usd: 500_000, tokens: null },
    steps: [
      readStep("read", "src/utils.py", UTILS_BEFORE, { at: 0 }),
      llmStep("write_code", "sonnet", `Add a \`factorial(n)\` function to this module. Reply with the whole file.\n\n${UTILS_BEFORE}`, UTILS_AFTER, 1_310, 412, { needs: ["read"] }),
      {
        id: "edit",
        kind: "edit_file",
        needs: ["write_code"],
        status: "awaiting_approval",
        phases: [["exec", 30], ["wait", null]],
        proposal: editProposal("src/utils.py", UTILS_BEFORE, UTILS_AFTER),
        approvalReason: "edit_file needs approval by default",
      },
      { id: "test", kind: "run_command", needs: ["edit"], status: "pending" },
      { id: "summary", kind: "set", needs: ["test"], status: "pending" },
      { id: "sign_off", kind: "approval", needs: ["summary"], status: "pending" },
    ],
  });

  // Waiting: a new test file.
  runs.push({
    id: id(),
    workflow: "add-tests",
    workflowPath: wf("add-tests"),
    workspace: WORKSPACE,
    status: "awaiting_approval",
    trigger: "cli (dana)",
    startedBy: USER,
    startedAt: now - 9 * MIN,
    inputs: { module: "src/utils.py" },
    steps: [
      readStep("read", "src/utils.py", UTILS_AFTER, { at: 0 }),
      llmStep("write_tests", "mini", "Write pytest tests for factorial()", TEST_UTILS, 905, 188, { needs: ["read"] }),
      {
        id: "create_test",
        kind: "edit_file",
        needs: ["write_tests"],
        status: "awaiting_approval",
        phases: [["exec", 20], ["wait", null]],
        proposal: editProposal("tests/test_utils.py", null, TEST_UTILS),
        approvalReason: "ask: edit_file `tests/**` (.stepwise/policy.yaml)",
      },
    ],
  });

  // Waiting: a command, with env and passed-through variables.
  runs.push({
    id: id(),
    workflow: "fix-flaky-test",
    workflowPath: wf("fix-flaky-test"),
    workspace: WORKSPACE,
    status: "awaiting_approval",
    trigger: "cli (dana)",
    startedBy: USER,
    startedAt: now - 14 * MIN,
    inputs: { test: "tests/test_invoices.py::test_totals_round_half_even", runs: 20, markers: ["not slow"] },
    steps: [
      readStep("locate", "services/api/tests/test_invoices.py", "def test_totals_round_half_even():\n    ...\n", { at: 0 }),
      llmStep("diagnose", "flash", "Why is this test flaky?", "The test depends on dict ordering of line items…", 2_400, 610, { needs: ["locate"] }),
      {
        id: "patch_test",
        kind: "edit_file",
        needs: ["diagnose"],
        status: "succeeded",
        phases: [["exec", 20], ["wait", 45_000], ["exec", 25]],
        proposal: editProposal("services/api/tests/test_invoices.py", "a\n", "b\n"),
        decision: { approved: true, by: "policy", rule: "allow edit_file `services/*/tests/**`" },
        ops: [{ request: { kind: "write_file", path: "services/api/tests/test_invoices.py", base_hash: fakeHash("a\n"), content: "…", content_hash: fakeHash("b\n") }, result: { kind: "file_written", before_hash: fakeHash("a\n"), after_hash: fakeHash("b\n") } }],
        output: { path: "services/api/tests/test_invoices.py", written: true },
      },
      {
        id: "run_tests",
        kind: "run_command",
        needs: ["patch_test"],
        status: "awaiting_approval",
        phases: [["wait", null]],
        proposal: PYTEST_COMMAND,
        approvalReason: "ask: run_command `python3 -m pytest*` (.stepwise/policy.yaml); it passes environment variables",
      },
      { id: "report", kind: "set", needs: ["run_tests"], status: "pending" },
    ],
  });

  // Waiting: a shell line.
  runs.push({
    id: id(),
    workflow: "nightly-deps",
    workflowPath: wf("nightly-deps"),
    workspace: WORKSPACE,
    status: "awaiting_approval",
    trigger: "watch",
    cause: "schedule 03:00",
    startedBy: "scheduler",
    startedAt: now - 2 * HOUR,
    inputs: {},
    steps: [
      {
        id: "list_outdated",
        kind: "run_command",
        status: "awaiting_approval",
        at: 0,
        phases: [["wait", null]],
        proposal: SHELL_COMMAND,
        approvalReason: "run_command needs approval by default",
      },
    ],
  });

  // Waiting: a model call over the budget.
  runs.push({
    id: id(),
    workflow: "llm-triage",
    workflowPath: wf("llm-triage"),
    workspace: DEMO_WORKSPACE,
    status: "awaiting_approval",
    trigger: "app (dana)",
    startedBy: USER,
    startedAt: now - 22 * MIN,
    inputs: { labels: { bug: "red", feature: "green" } },
    budget: { micro_usd: 50_000, tokens: 40_000 },
    steps: [
      readStep("issues", "issues.json", '[{"id": 1, "title": "Totals off by one cent"}]', { at: 0 }),
      llmStep("summarise", "sonnet", "Summarise these issues", "212 issues, mostly billing rounding…", 9_100, 450, { needs: ["issues"] }),
      {
        id: "classify",
        kind: "prompt",
        needs: ["summarise"],
        status: "awaiting_approval",
        phases: [["wait", null]],
        proposal: BUDGET_PROPOSAL,
        approvalReason: "the call's estimate ($0.11616) would pass the run's remaining budget ($0.0125)",
      },
    ],
  });

  // Waiting: a plan.
  runs.push({
    id: id(),
    workflow: "llm-plan",
    workflowPath: wf("llm-plan"),
    workspace: DEMO_WORKSPACE,
    status: "awaiting_approval",
    trigger: "app (dana)",
    startedBy: USER,
    startedAt: now - 31 * MIN,
    inputs: { goal: "Add type hints to src/utils.py and check them with mypy" },
    steps: [
      {
        id: "plan",
        kind: "plan",
        status: "awaiting_approval",
        at: 0,
        phases: [["exec", 6_100], ["wait", null]],
        ops: [
          {
            request: { kind: "llm_call", ...llmRequest("mini", "Plan steps toward the goal…") },
            result: { kind: "llm_replied", text: JSON.stringify(PLAN_PROPOSAL.kind === "plan" ? PLAN_PROPOSAL.steps : null), finish_reason: "stop", usage: { input_tokens: 3_020, output_tokens: 540 }, latency_ms: 6_050, cost_micro_usd: callCost("mini", 3_020, 540) },
          },
        ],
        cost: { model: "openai/gpt-4.1-mini", input: 3_020, output: 540, micro: callCost("mini", 3_020, 540) },
        proposal: PLAN_PROPOSAL,
        approvalReason: "a plan is always shown to a person before its steps join the run",
      },
    ],
  });

  // Waiting: a manual gate.
  runs.push({
    id: id(),
    workflow: "release-notes",
    workflowPath: wf("release-notes"),
    workspace: WORKSPACE,
    status: "awaiting_approval",
    trigger: "cli (dana)",
    startedBy: USER,
    startedAt: now - 3 * HOUR,
    inputs: { since: "v1.8.0" },
    steps: [
      {
        id: "log",
        kind: "run_command",
        status: "succeeded",
        at: 0,
        phases: [["exec", 180]],
        ops: [{ request: { kind: "run_command", command: { argv: ["git", "log", "--oneline", "v1.8.0..HEAD"] }, cwd: ".", env: {}, pass_env: [], timeout_ms: 30_000, max_output_bytes: 1_048_576 }, result: commandOutcome(0, "a1b2c3d Round totals half-even\n9f8e7d6 Add factorial helper\n", "", 180) }],
        output: { exit_code: 0, stdout: "a1b2c3d Round totals half-even\n9f8e7d6 Add factorial helper\n" },
      },
      llmStep("draft", "sonnet", "Write release notes for these commits", "## v1.9.0\n- Totals are rounded half-even\n- New factorial helper\n", 780, 240, { needs: ["log"] }),
      {
        id: "write_notes",
        kind: "edit_file",
        needs: ["draft"],
        status: "succeeded",
        phases: [["exec", 15], ["wait", 3 * MIN], ["exec", 20]],
        proposal: editProposal("CHANGELOG.md", "# Changelog\n", "# Changelog\n\n## v1.9.0\n"),
        decision: { approved: true, by: USER, comment: "Fixed the version header by hand", edited: true },
        ops: [{ request: { kind: "write_file", path: "CHANGELOG.md", base_hash: fakeHash("# Changelog\n"), content: "# Changelog\n\n## v1.9.0\n…", content_hash: fakeHash("x") }, result: { kind: "file_written", before_hash: fakeHash("# Changelog\n"), after_hash: fakeHash("x") } }],
        output: { path: "CHANGELOG.md", written: true },
      },
      { id: "sign_off", kind: "approval", needs: ["write_notes"], status: "awaiting_approval", phases: [["wait", null]], proposal: GATE_PROPOSAL, approvalReason: "a manual gate" },
    ],
  });

  // Running, with parallel steps and a model streaming its reply.
  runs.push({
    id: "3f9d7b10-8a2c-4e51-b6d4-0c2a9e7f5b13",
    workflow: "docs-refresh",
    workflowPath: wf("docs-refresh"),
    workspace: WORKSPACE,
    status: "running",
    trigger: "watch",
    cause: "modify docs/api.md",
    startedBy: USER,
    startedAt: now - 40_000,
    inputs: { pages: ["README.md", "docs/api.md", "docs/cli.md"] },
    steps: [
      readStep("read_readme", "README.md", "# acme-billing\n", { at: 0 }),
      readStep("read_api", "docs/api.md", "# API\n", { at: 10 }),
      readStep("read_cli", "docs/cli.md", "# CLI\n", { at: 20 }),
      llmStep("rewrite_readme", "local", "Tighten this README", "# acme-billing\n\nInvoices…", 600, 320, { needs: ["read_readme"], phases: [["exec", 9_000]] }),
      { id: "rewrite_api", kind: "prompt", needs: ["read_api"], status: "running", phases: [["exec", null]], ops: [{ request: { kind: "llm_call", ...llmRequest("local", "Tighten docs/api.md") } }] },
      { id: "rewrite_cli", kind: "prompt", needs: ["read_cli"], status: "running", at: 2_000, phases: [["exec", null]], ops: [{ request: { kind: "llm_call", ...llmRequest("local", "Tighten docs/cli.md") } }] },
      { id: "apply", kind: "edit_file", needs: ["rewrite_readme", "rewrite_api", "rewrite_cli"], status: "pending" },
    ],
  });

  // Succeeded earlier: the same workflow, approved by hand with an edit.
  runs.push({
    id: id(),
    workflow: "add-factorial",
    workflowPath: wf("add-factorial"),
    workspace: WORKSPACE,
    status: "succeeded",
    trigger: "app (dana)",
    startedBy: USER,
    startedAt: now - 1 * DAY - 2 * HOUR,
    inputs: { module: "src/utils.py", run_tests: true, max_attempts: 2, temperature: 0.2 },
    steps: [
      readStep("read", "src/utils.py", UTILS_BEFORE, { at: 0 }),
      llmStep("write_code", "sonnet", "Add a `factorial(n)` function…", UTILS_AFTER, 1_290, 398, { needs: ["read"] }),
      {
        id: "edit",
        kind: "edit_file",
        needs: ["write_code"],
        status: "succeeded",
        phases: [["exec", 25], ["wait", 95_000], ["exec", 30]],
        proposal: editProposal("src/utils.py", UTILS_BEFORE, UTILS_AFTER),
        decision: { approved: true, by: USER, comment: "Kept the docstring style of the module", edited: true },
        ops: [{ request: { kind: "write_file", path: "src/utils.py", base_hash: fakeHash(UTILS_BEFORE), content: UTILS_AFTER, content_hash: fakeHash(UTILS_AFTER) }, result: { kind: "file_written", before_hash: fakeHash(UTILS_BEFORE), after_hash: fakeHash(UTILS_AFTER) } }],
        output: { path: "src/utils.py", written: true },
      },
      {
        id: "test",
        kind: "run_command",
        needs: ["edit"],
        status: "succeeded",
        attempt: 2,
        phases: [["exec", 2_100], ["exec", 2_300]],
        ops: [{ request: { kind: "run_command", command: { argv: ["python3", "-m", "pytest", "-q"] }, cwd: ".", env: {}, pass_env: ["PATH"], timeout_ms: 120_000, max_output_bytes: 1_048_576 }, result: commandOutcome(0, "....                                                     [100%]\n4 passed in 0.41s\n") }],
        output: { exit_code: 0, stdout: "4 passed in 0.41s\n" },
      },
      { id: "summary", kind: "set", needs: ["test"], status: "succeeded", phases: [["exec", 2]], output: { tested: true } },
      { id: "sign_off", kind: "approval", needs: ["summary"], status: "succeeded", phases: [["wait", 40_000]], proposal: { kind: "gate", message: "Review the change before the run is marked done" }, decision: { approved: true, by: USER } },
    ],
  });

  // Failed: the tests failed twice.
  runs.push({
    id: "b2c4e6f8-1a3b-4c5d-8e9f-a0b1c2d3e4f5",
    workflow: "refactor-cli",
    workflowPath: wf("refactor-cli"),
    workspace: WORKSPACE,
    status: "failed",
    trigger: "cli (dana)",
    startedBy: USER,
    startedAt: now - 2 * DAY - 5 * HOUR,
    inputs: { module: "src/cli.py" },
    steps: [
      readStep("read", "src/cli.py", "import argparse\n", { at: 0 }),
      llmStep("rewrite", "mini", "Split main() into subcommands", "import argparse\n…", 2_100, 1_650, { needs: ["read"] }),
      {
        id: "edit",
        kind: "edit_file",
        needs: ["rewrite"],
        status: "succeeded",
        phases: [["exec", 20], ["wait", 12_000], ["exec", 20]],
        proposal: editProposal("src/cli.py", "import argparse\n", "import argparse\nimport sys\n"),
        decision: { approved: true, by: "policy", rule: "allow edit_file `src/**`" },
        ops: [{ request: { kind: "write_file", path: "src/cli.py", base_hash: fakeHash("import argparse\n"), content: "import argparse\nimport sys\n", content_hash: fakeHash("y") }, result: { kind: "file_written", before_hash: fakeHash("import argparse\n"), after_hash: fakeHash("y") } }],
      },
      {
        id: "test",
        kind: "run_command",
        needs: ["edit"],
        status: "failed",
        attempt: 2,
        phases: [["exec", 3_000], ["exec", 3_100]],
        ops: [
          {
            request: { kind: "run_command", command: { argv: ["python3", "-m", "pytest", "-q", "tests/test_cli.py"] }, cwd: ".", env: {}, pass_env: ["PATH"], timeout_ms: 120_000, max_output_bytes: 1_048_576 },
            result: commandOutcome(1, "F.\n=================================== FAILURES ===================================\n___________________________ test_help_lists_commands ___________________________\n\n    def test_help_lists_commands():\n>       assert 'export' in run(['--help'])\nE       AssertionError: assert 'export' in 'usage: acme [-h] {import,report}'\n\n1 failed, 1 passed in 0.52s\n", "", 3_100),
          },
        ],
        error: "command exited with status 1 (attempt 2 of 2)",
      },
      { id: "summary", kind: "set", needs: ["test"], status: "skipped", reason: "an upstream step failed" },
    ],
    note: "step `test`: command exited with status 1 (attempt 2 of 2)",
  });

  // Rejected with a reason.
  runs.push({
    id: id(),
    workflow: "bump-deps",
    workflowPath: wf("bump-deps"),
    workspace: WORKSPACE,
    status: "failed",
    trigger: "cli (dana)",
    startedBy: USER,
    startedAt: now - 3 * DAY,
    inputs: {},
    steps: [
      {
        id: "upgrade",
        kind: "run_command",
        status: "rejected",
        at: 0,
        phases: [["wait", 20_000]],
        proposal: { kind: "run_command", command: { shell: "pip install -U -r requirements.txt" }, cwd: ".", env: {}, pass_env: ["PATH"], timeout_ms: 600_000, max_output_bytes: 1_048_576 },
        decision: { approved: false, by: USER, reason: "Pin versions instead: upgrade one package at a time with a changelog check" },
        reason: "Pin versions instead: upgrade one package at a time with a changelog check",
      },
    ],
  });

  runs.push({
    id: id(),
    workflow: "bulk-rename",
    workflowPath: wf("bulk-rename"),
    workspace: WORKSPACE,
    status: "cancelled",
    trigger: "app (dana)",
    startedBy: USER,
    startedAt: now - 4 * DAY,
    inputs: { from: "customer_id", to: "account_id" },
    steps: [
      readStep("scan", "src/cli.py", "customer_id = …\n", { at: 0 }),
      { id: "rename", kind: "prompt", needs: ["scan"], status: "cancelled", phases: [["exec", 8_000]] },
    ],
  });

  runs.push({
    id: id(),
    workflow: "lint-fix",
    workflowPath: wf("lint-fix"),
    workspace: WORKSPACE,
    status: "paused",
    trigger: "cli (dana)",
    startedBy: USER,
    startedAt: now - 50 * MIN,
    inputs: {},
    steps: [
      { id: "lint", kind: "run_command", status: "succeeded", at: 0, phases: [["exec", 1_400]], ops: [{ request: { kind: "run_command", command: { argv: ["ruff", "check", "--output-format", "json", "."] }, cwd: ".", env: {}, pass_env: ["PATH"], timeout_ms: 60_000, max_output_bytes: 1_048_576 }, result: commandOutcome(1, "[]") }] },
      { id: "fix", kind: "prompt", needs: ["lint"], status: "pending" },
    ],
  });

  runs.push({
    id: id(),
    workflow: "index-repo",
    workflowPath: wf("index-repo", DEMO_WORKSPACE),
    workspace: DEMO_WORKSPACE,
    status: "interrupted",
    trigger: "cli (dana)",
    startedBy: USER,
    startedAt: now - 5 * HOUR,
    heldBy: null,
    inputs: {},
    steps: [
      agentStep("fix_tests", editProposal("calc.py", CALC_BEFORE, CALC_AFTER), USER, { at: 0 }),
      { id: "list", kind: "run_command", needs: ["fix_tests"], status: "outcome_unknown", phases: [["exec", 900]], ops: [{ request: { kind: "run_command", command: { argv: ["git", "ls-files"] }, cwd: ".", env: {}, pass_env: [], timeout_ms: 30_000, max_output_bytes: 1_048_576 } }] },
    ],
  });

  runs.push(...familyRuns(now, WORKSPACE, MIN));
  runs.push(...signalRuns(now, WORKSPACE, MIN));
  runs.push(...compensatedRuns(now, WORKSPACE, MIN));

  // Older history: a few days of ordinary runs with model calls, for the Cost view.
  const hist = seeded(11);
  const aliases: ModelAlias[] = ["sonnet", "mini", "flash", "local"];
  for (let i = 0; i < 18; i++) {
    const alias = aliases[i % aliases.length];
    const input = 400 + Math.floor(hist() * 6_000);
    const output = 80 + Math.floor(hist() * 1_500);
    const ok = hist() > 0.2;
    runs.push({
      id: id(),
      workflow: ["llm-factorial", "llm-triage", "add-factorial", "docs-refresh"][i % 4],
      workflowPath: wf(["llm-factorial", "llm-triage", "add-factorial", "docs-refresh"][i % 4]),
      workspace: i % 3 === 0 ? DEMO_WORKSPACE : WORKSPACE,
      status: ok ? "succeeded" : "failed",
      trigger: i % 2 ? "cli (dana)" : "app (dana)",
      startedBy: USER,
      startedAt: now - (1 + (i % 7)) * DAY - Math.floor(hist() * 8) * HOUR,
      inputs: {},
      steps: [
        readStep("read", "src/utils.py", UTILS_BEFORE, { at: 0 }),
        llmStep("ask", alias, "…", "…", input, output, { needs: ["read"], ...(ok ? {} : { status: "failed" as StepStatus, error: "provider: 503 Service Unavailable after 3 attempts", cost: undefined, ops: [{ request: { kind: "llm_call", ...llmRequest(alias, "…") }, error: { kind: "provider", message: "503 Service Unavailable after 3 attempts" } }] }) }),
        ...(ok ? [llmStep("review", alias === "local" ? "local" : "mini", "Review the change", "Looks right.", Math.floor(input / 3), 60, { needs: ["ask"] })] : []),
      ],
    });
  }

  return {
    appInfo: { db_path: "/home/dana/.local/share/stepwise/stepwise.db", user: USER, host: "dana-laptop", default_workspace: WORKSPACE, version: "0.1.0" },
    runs: runs.map((r) => buildRun(r, now)),
    workflows: workflows(),
    trees: { [WORKSPACE]: workspaceTree(), [DEMO_WORKSPACE]: [file("issues.json", 48_000, { touched: true }), file("utils.py", 420)] },
    now,
    stepTypes: stepTypes(WORKSPACE),
    memories: memories(now, runs[0].id),
  };
}

/** No runs, no workflows' runs, nothing spent: the first start. */
export function emptyFixtures(now: number = Date.now()): Fixtures {
  return {
    appInfo: { db_path: "/home/dana/.local/share/stepwise/stepwise.db", user: USER, host: "dana-laptop", default_workspace: DEMO_WORKSPACE, version: "0.1.0" },
    runs: [],
    workflows: workflows().filter((w) => w.source === "bundled"),
    trees: { [DEMO_WORKSPACE]: [file("README.md", 900)] },
    now,
  };
}

const BIG_KINDS = ["read_file", "prompt", "run_command", "edit_file", "set"] as const;

/**
 * A run of `count` steps, up to `width` running at once, with waits for people, retries,
 * failures and a running tail: for benchmarks of the Run view.
 */
export function generateBigRun(count = 10_000, now: number = Date.now(), width = 8): BuiltRun {
  const rand = seeded(42);
  const steps: StepSpec[] = [];
  const laneEnds: number[] = Array(width).fill(0);
  let clock = 0;
  for (let i = 0; i < count; i++) {
    const idText = `s${String(i + 1).padStart(5, "0")}`;
    const kind = BIG_KINDS[Math.floor(rand() * BIG_KINDS.length)];
    // Start on whichever of `width` slots frees first.
    let slot = 0;
    for (let s = 1; s < width; s++) if (laneEnds[s] < laneEnds[slot]) slot = s;
    const at = Math.max(laneEnds[slot], clock) + Math.floor(rand() * 200);
    clock = Math.max(clock, at - 5_000);
    const tail = i >= count - 3;
    const exec = 100 + Math.floor(rand() * 2_500);
    const waits = kind === "edit_file" || (kind === "run_command" && rand() < 0.3);
    const phases: StepSpec["phases"] = tail
      ? [["exec", null]]
      : waits
        ? [["exec", 20], ["wait", 1_000 + Math.floor(rand() * 20_000)], ["exec", exec]]
        : [["exec", exec]];
    const roll = rand();
    const status: StepStatus = tail ? "running" : roll < 0.01 ? "failed" : waits && roll < 0.03 ? "rejected" : "succeeded";
    const path = `src/pkg${i % 40}/mod${i % 97}.py`;
    const request =
      kind === "prompt"
        ? { kind: "llm_call", model: "local", max_tokens: 512, messages: [{ role: "user", content: `Summarise ${path}` }] }
        : kind === "run_command"
          ? { kind: "run_command", command: { argv: ["python3", "-m", "pytest", "-q", path] }, cwd: ".", env: {}, pass_env: ["PATH"], timeout_ms: 60_000, max_output_bytes: 65_536 }
          : kind === "set"
            ? null
            : { kind: kind === "edit_file" ? "write_file" : "read_file", path };
    const result =
      status !== "succeeded" || tail
        ? undefined
        : kind === "prompt"
          ? { kind: "llm_replied", text: "ok", finish_reason: "stop", usage: { input_tokens: 120, output_tokens: 40 }, latency_ms: exec, cost_micro_usd: 0 }
          : kind === "run_command"
            ? commandOutcome(0, "1 passed\n", "", exec)
            : { kind: kind === "edit_file" ? "file_written" : "file_read", path };
    steps.push({
      id: idText,
      kind,
      status,
      at,
      phases,
      ops: request ? [{ request, result, error: status === "failed" ? { kind: "io", message: "disk full" } : undefined }] : [],
      error: status === "failed" ? "io: disk full" : undefined,
      reason: status === "rejected" ? "not this module" : undefined,
      decision: waits && !tail ? { approved: status !== "rejected", by: rand() < 0.5 ? USER : "policy", rule: rand() < 0.5 ? "allow edit_file `src/**`" : undefined, reason: "not this module" } : undefined,
      proposal: waits ? { kind: "gate", message: `approve ${idText}` } : undefined,
      cost: kind === "prompt" && status === "succeeded" && !tail ? { model: "local/smollm2-135m-instruct", input: 120, output: 40, micro: 0 } : undefined,
    });
    const stepEnd = at + phases.reduce((sum, p) => sum + (p[1] ?? 0), 0);
    laneEnds[slot] = stepEnd;
  }
  const span = Math.max(...laneEnds);
  return buildRun(
    {
      id: "b16b16b1-0000-4000-8000-000000010000",
      workflow: "bulk-migrate",
      workflowPath: `${WORKSPACE}/workflows/bulk-migrate.yaml`,
      workspace: WORKSPACE,
      status: "running",
      trigger: "cli (dana)",
      startedBy: USER,
      startedAt: now - span - 1_000,
      inputs: { modules: count },
      steps,
    },
    now,
  );
}

/** `count` runs for the list (their details are built on demand by the mock). */
export function generateRunList(count = 10_000, now: number = Date.now()): RunListItem[] {
  const rand = seeded(99);
  const statuses = ["succeeded", "succeeded", "succeeded", "failed", "cancelled", "awaiting_approval", "running"];
  const names = ["add-factorial", "llm-triage", "docs-refresh", "fix-flaky-test", "nightly-deps", "release-notes", "lint-fix"];
  const out: RunListItem[] = [];
  for (let i = 0; i < count; i++) {
    const started = now - i * 7 * MIN - Math.floor(rand() * MIN);
    const name = names[Math.floor(rand() * names.length)];
    const status = i < 20 ? statuses[5 + (i % 2)] : statuses[Math.floor(rand() * 5)];
    out.push({
      run_id: fakeUuid(rand),
      workflow: name,
      workflow_path: `${WORKSPACE}/workflows/${name}.yaml`,
      workspace: WORKSPACE,
      status,
      trigger: rand() < 0.5 ? "cli (dana)" : "app (dana)",
      started_at_ms: started,
      updated_at_ms: started + Math.floor(rand() * 10 * MIN),
      cost_micro_usd: Math.floor(rand() * 90_000),
      held_by: status === "running" || status === "awaiting_approval" ? "pid 4242" : null,
      parent: null,
      is_child: false,
    });
  }
  return out;
}
