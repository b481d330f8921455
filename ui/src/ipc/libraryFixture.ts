// What the Workflows view's Steps and Memory tabs list: a few built-in step types, a custom
// one from the workspace's manifests and one that cannot be used; a memory an agent wrote.
import type { MemoryEntryView } from "../generated/MemoryEntryView";
import type { StepType } from "../generated/StepType";

export function stepTypes(workspace: string): StepType[] {
  return [
    {
      name: "read_file",
      description: "Read a UTF-8 text file; output: `content`, `path`, `hash`.",
      source: "built-in",
      fields: [{ name: "path", required: true, kind: "string", description: "" }],
      approval: null,
      problem: null,
    },
    {
      name: "run_command",
      description: "Run a command (argv list, or a string run through `sh -c`). Needs approval by default.",
      source: "built-in",
      fields: [
        { name: "command", required: true, kind: "CommandDef", description: "" },
        { name: "cwd", required: false, kind: "string or null", description: "Working directory inside the workspace (default: the workspace root)." },
      ],
      approval: null,
      problem: null,
    },
    {
      name: "word-count",
      description: "Counts the words of a text",
      source: `${workspace}/.stepwise/steps/word-count.yaml`,
      fields: [
        { name: "min", required: false, kind: "integer", description: "" },
        { name: "text", required: true, kind: "string", description: "The text to count" },
      ],
      approval: "ask",
      problem: null,
    },
    {
      name: "broken",
      description: "",
      source: "",
      fields: [],
      approval: null,
      problem: `${workspace}/.stepwise/steps/broken.yaml:1: \`name\` is \`other\` but the file is \`broken\``,
    },
  ];
}

export function memories(now: number, runId: string): Record<string, MemoryEntryView[]> {
  return {
    "project-notes": [
      { key: "build-command", text: "Build with `just build`, never with make.", run_id: runId, step: "work", updated_at_ms: now - 3_600_000 },
      { key: "test-command", text: "python3 -m unittest -q runs every test in under a second.", run_id: runId, step: "work", updated_at_ms: now - 600_000 },
    ],
  };
}
