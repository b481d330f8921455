// An agent step for the fixtures, as the bundled agent-fix-tests workflow records one in the demo
// workspace: three model turns, each tool call's operations and gate, and what the model was
// told each call returned. Its model is the local one (free), so it adds nothing to any cost.
import type { ChatMessage } from "../generated/ChatMessage";
import type { ConversationCall } from "../generated/ConversationCall";
import type { ConversationTurn } from "../generated/ConversationTurn";
import type { Proposal } from "../generated/Proposal";
import type { JsonValue } from "../generated/serde_json/JsonValue";
import type { ToolCall } from "../generated/ToolCall";
import { fakeHash, type StepSpec } from "./fixtureBuilder";

export const CALC_BEFORE = `"""A tiny calculator: the demo project of Stepwise's fix-and-test workflow."""


def add(a, b):
    """Return the sum of a and b."""
    return a + b


def factorial(n):
    """Return n! for n >= 0."""
    result = 1
    for k in range(2, n):
        result *= k
    return result
`;

const TEST_CALC = `"""Tests for calc.py; run with \`python3 -m unittest -q\`."""

import unittest

import calc


class AddTest(unittest.TestCase):
    def test_adds(self):
        self.assertEqual(calc.add(2, 3), 5)


class FactorialTest(unittest.TestCase):
    def test_small_values(self):
        self.assertEqual(calc.factorial(0), 1)
        self.assertEqual(calc.factorial(1), 1)
        self.assertEqual(calc.factorial(5), 120)

    def test_negative_is_refused(self):
        with self.assertRaises(ValueError):
            calc.factorial(-1)


if __name__ == "__main__":
    unittest.main()
`;

const OLD_TEXT = "    result = 1\n    for k in range(2, n):";
const NEW_TEXT = '    if n < 0:\n        raise ValueError("factorial is not defined for negative numbers")\n    result = 1\n    for k in range(2, n + 1):';
export const CALC_AFTER = CALC_BEFORE.replace(OLD_TEXT, NEW_TEXT);

export const AGENT_RULE = "allow agent_command command python3 -m unittest * (workspace policy .stepwise/policy.yaml, rule 1)";
export const AGENT_REJECTION = "Leave the tests as they are: change calc.py only, as the instructions say";

const UNITTEST_FAILED = `======================================================================
FAIL: test_negative_is_refused (test_calc.FactorialTest.test_negative_is_refused)
----------------------------------------------------------------------
Traceback (most recent call last):
  File "/home/dana/.local/share/stepwise/demo/test_calc.py", line 21, in test_negative_is_refused
    with self.assertRaises(ValueError):
AssertionError: ValueError not raised

======================================================================
FAIL: test_small_values (test_calc.FactorialTest.test_small_values)
----------------------------------------------------------------------
Traceback (most recent call last):
  File "/home/dana/.local/share/stepwise/demo/test_calc.py", line 17, in test_small_values
    self.assertEqual(calc.factorial(5), 120)
AssertionError: 24 != 120

----------------------------------------------------------------------
Ran 3 tests in 0.001s

FAILED (failures=2)
`;
const UNITTEST_PASSED = "----------------------------------------------------------------------\nRan 3 tests in 0.001s\n\nOK\n";
const UNITTEST = ["python3", "-m", "unittest", "-q"];

const TURN_TEXT = [
  "I'll run the tests first and read calc.py to see what they exercise.",
  "`factorial` stops one short of n (`range(2, n)`) and accepts negative numbers. I'll fix both in calc.py, add a test for 10!, and run the tests again.",
  "All 3 tests pass now. `factorial` in calc.py multiplied only up to n - 1 and accepted negative numbers; it now multiplies up to n and raises ValueError below 0. I left test_calc.py as it was, as you asked.",
];

const calls: ToolCall[][] = [
  [
    { id: "call_1", name: "run_command", arguments: { argv: UNITTEST } },
    { id: "call_2", name: "read_file", arguments: { path: "calc.py" } },
  ],
  [
    { id: "call_3", name: "edit_file", arguments: { path: "calc.py", old_text: OLD_TEXT, new_text: NEW_TEXT } },
    { id: "call_4", name: "edit_file", arguments: { path: "test_calc.py", old_text: "        self.assertEqual(calc.factorial(5), 120)\n", new_text: "        self.assertEqual(calc.factorial(5), 120)\n        self.assertEqual(calc.factorial(10), 3628800)\n" } },
    { id: "call_5", name: "run_command", arguments: { argv: UNITTEST } },
  ],
  [],
];

/** What the model was told each call returned, by call id. */
const told: Record<string, string> = {
  call_1: `exit code 1\nstdout:\n\nstderr:\n${UNITTEST_FAILED}`,
  call_2: CALC_BEFORE,
  call_3: "`calc.py` was written as proposed",
  call_4: `error: a person rejected this: ${AGENT_REJECTION}`,
  call_5: `exit code 0\nstdout:\n\nstderr:\n${UNITTEST_PASSED}`,
};

const TOOLS = Object.entries({
  read_file: ["Read a text file of the workspace.", ["path"]],
  list_files: ["List the files of a directory of the workspace.", []],
  search: ["Search the workspace's text files for a regular expression.", ["pattern"]],
  edit_file: ["Change a text file by replacing `old_text`, which must occur exactly once, with `new_text`.", ["path", "old_text", "new_text"]],
  run_command: ["Run a program in the workspace, without a shell.", ["argv"]],
}).map(([name, [description, required]]) => ({ name, description, parameters: { type: "object", required } }));

const system: ChatMessage = {
  role: "system",
  content: "You are a careful Python engineer working in a small project. Use the tools to look\nbefore you change anything. Change calc.py only, never the tests.",
};
const user: ChatMessage = {
  role: "user",
  content: 'The unit tests fail. Run them with ["python3", "-m", "unittest", "-q"], read the test\nand calc.py, fix calc.py with edit_file, and run the tests again until they pass. Then\nanswer with whether they pass and a one-line summary of what you changed.',
};

/** The messages of turn `n` (0-based): what was said and told before it. */
function messages(n: number): ChatMessage[] {
  const out = [system, user];
  for (let t = 0; t < n; t++) {
    out.push({ role: "assistant", content: TURN_TEXT[t], tool_calls: calls[t] });
    for (const c of calls[t]) out.push({ role: "tool", content: told[c.id], tool_call_id: c.id });
  }
  return out;
}

const USAGE: Array<[number, number]> = [[1_184, 61], [2_236, 214], [2_690, 78]];

function modelCall(n: number): { request: JsonValue; result: JsonValue } {
  const [input, output] = USAGE[n];
  return {
    request: {
      kind: "llm_call",
      model: "local",
      spec: { provider: "local", kind: "openai", base_url: "http://127.0.0.1:8080/v1", model: "qwen2.5-coder-7b-instruct", price: { input_micro_usd_per_mtok: 0, output_micro_usd_per_mtok: 0 }, stream: true },
      messages: messages(n),
      temperature: 0,
      max_tokens: 4096,
      tools: TOOLS,
    },
    result: {
      kind: "llm_replied",
      text: TURN_TEXT[n],
      finish_reason: calls[n].length ? "tool_calls" : "stop",
      usage: { input_tokens: input, output_tokens: output },
      latency_ms: 2_900 + 900 * n,
      cost_micro_usd: 0,
      tool_calls: calls[n],
    },
  };
}

function unittest(stderr: string, exit: number): { request: JsonValue; result: JsonValue } {
  return {
    request: { kind: "run_command", command: { argv: UNITTEST }, cwd: ".", env: {}, pass_env: ["HOME", "PATH"], timeout_ms: 300_000, max_output_bytes: 1_048_576 },
    result: { kind: "command_finished", exit_code: exit, signal: null, stdout: "", stderr, stdout_bytes: 0, stderr_bytes: stderr.length, duration_ms: 180 },
  };
}

const read = (path: string, content: string) => ({
  request: { kind: "read_file", path },
  result: { kind: "file_read", exists: true, content, hash: fakeHash(content) },
});

/** A call of turn `t` as the conversation shows it: `ops` index the step's operations. */
function call(t: number, i: number, ops: number[], gate: ConversationCall["gate"]): ConversationCall {
  const c = calls[t][i];
  return { id: c.id, name: c.name, arguments: c.arguments, ops, gate, result: told[c.id] };
}

function turn(n: number, op: number, turnCalls: ConversationCall[]): ConversationTurn {
  const [input, output] = USAGE[n];
  return { op, attempt: 1, replied: true, text: TURN_TEXT[n], error: null, input_tokens: input, output_tokens: output, cost_micro_usd: 0, calls: turnCalls };
}

/**
 * The agent step. `proposal` is the edit of calc.py as a person saw it. The rule's grants of
 * the two commands are not among the step's decisions (the builder records decisions at waits).
 */
export function agentStep(id: string, proposal: Proposal, by: string, extra: Partial<StepSpec> = {}): StepSpec {
  return {
    id,
    kind: "agent",
    status: "succeeded",
    // Operations: 0 turn 1, 1 tests, 2 read calc.py, 3 turn 2, 4 read calc.py, 5 write calc.py,
    // 6 read test_calc.py, 7 tests, 8 turn 3.
    phases: [["exec", 2_900], ["exec", 180], ["exec", 10], ["exec", 3_800], ["exec", 10], ["wait", 48_000], ["exec", 20], ["exec", 10], ["wait", 31_000], ["exec", 180], ["exec", 4_700]],
    ops: [
      modelCall(0),
      unittest(UNITTEST_FAILED, 1),
      read("calc.py", CALC_BEFORE),
      modelCall(1),
      read("calc.py", CALC_BEFORE),
      {
        request: { kind: "write_file", path: "calc.py", base_hash: fakeHash(CALC_BEFORE), content: CALC_AFTER, content_hash: fakeHash(CALC_AFTER) },
        result: { kind: "file_written", before_hash: fakeHash(CALC_BEFORE), after_hash: fakeHash(CALC_AFTER) },
      },
      read("test_calc.py", TEST_CALC),
      unittest(UNITTEST_PASSED, 0),
      modelCall(2),
    ],
    proposal,
    approvalReason: "edit_file needs approval by default",
    decisions: [
      { approved: true, by },
      { approved: false, by, reason: AGENT_REJECTION },
    ],
    conversation: [
      turn(0, 0, [call(0, 0, [1], { kind: "rule", rule: AGENT_RULE }), call(0, 1, [2], null)]),
      turn(1, 3, [
        call(1, 0, [4, 5], { kind: "approved", by, edited: false }),
        call(1, 1, [6], { kind: "rejected", by, reason: AGENT_REJECTION }),
        call(1, 2, [7], { kind: "rule", rule: AGENT_RULE }),
      ]),
      turn(2, 8, []),
    ],
    output: { fixed: true, summary: "factorial() now multiplies up to n and refuses negative numbers" },
    ...extra,
  };
}
