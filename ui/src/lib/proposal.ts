// What a proposal is, in a word and a line, for the inbox list and headers.
import type { Proposal } from "../generated/Proposal";
import { commandText } from "./command";
import { formatUsd } from "./money";

export function proposalLabel(p: Proposal): string {
  switch (p.kind) {
    case "edit_file":
      return p.base_hash === null ? "New file" : "Edit";
    case "run_command":
      return "Command";
    case "read_file":
      return "Read";
    case "gate":
      return "Gate";
    case "breakpoint":
      return "Breakpoint";
    case "question":
      return "Question";
    case "mcp_call":
      return "MCP";
    case "plan":
      return "Plan";
    case "llm_call":
      return "Budget";
  }
}

export function proposalTone(p: Proposal): string {
  switch (p.kind) {
    case "edit_file":
      return "run";
    case "run_command":
    case "mcp_call":
      return "warn";
    case "llm_call":
    case "question":
      return "info";
    case "plan":
      return "ok";
    default:
      return "muted";
  }
}

export function proposalSummary(p: Proposal): string {
  switch (p.kind) {
    case "edit_file":
    case "read_file":
      return p.path;
    case "run_command":
      return commandText(p.command);
    case "gate":
    case "breakpoint":
      return p.message;
    case "question":
      return p.question.split("\n")[0];
    case "mcp_call":
      return `${p.server}.${p.tool}`;
    case "plan":
      return p.goal;
    case "llm_call":
      return `${p.request.model} · estimate ${formatUsd(p.estimate.micro_usd)}`;
  }
}

/** Whether `e` can edit it before approving (a file's content, a command). */
export function editable(p: Proposal): boolean {
  return p.kind === "edit_file" || p.kind === "run_command";
}
