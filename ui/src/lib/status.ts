// Run and step statuses: their words and colour tokens. A status is always shown with its
// word (and a shape), never by colour alone.
import type { StepStatus } from "../generated/StepStatus";

export type Tone = "run" | "wait" | "ok" | "bad" | "muted" | "warn" | "info";

export interface StatusLook {
  label: string;
  tone: Tone;
  /** A glyph that differs per status family, for people who cannot tell the colours apart. */
  glyph: string;
}

export const RUN_STATUSES = [
  "running",
  "awaiting_approval",
  "paused",
  "interrupted",
  "succeeded",
  "failed",
  "cancelled",
] as const;

const RUN: Record<string, StatusLook> = {
  running: { label: "running", tone: "run", glyph: "▶" },
  awaiting_approval: { label: "awaiting approval", tone: "wait", glyph: "◐" },
  paused: { label: "paused", tone: "muted", glyph: "‖" },
  interrupted: { label: "interrupted", tone: "warn", glyph: "!" },
  succeeded: { label: "succeeded", tone: "ok", glyph: "✓" },
  failed: { label: "failed", tone: "bad", glyph: "✕" },
  cancelled: { label: "cancelled", tone: "muted", glyph: "⊘" },
};

const STEP: Record<StepStatus, StatusLook> = {
  pending: { label: "pending", tone: "muted", glyph: "○" },
  running: { label: "running", tone: "run", glyph: "▶" },
  awaiting_approval: { label: "awaiting approval", tone: "wait", glyph: "◐" },
  waiting_retry: { label: "waiting to retry", tone: "info", glyph: "↻" },
  outcome_unknown: { label: "outcome unknown", tone: "warn", glyph: "?" },
  succeeded: { label: "succeeded", tone: "ok", glyph: "✓" },
  failed: { label: "failed", tone: "bad", glyph: "✕" },
  skipped: { label: "skipped", tone: "muted", glyph: "–" },
  rejected: { label: "rejected", tone: "bad", glyph: "⊗" },
  cancelled: { label: "cancelled", tone: "muted", glyph: "⊘" },
};

export const STEP_STATUSES = Object.keys(STEP) as StepStatus[];

export function runLook(status: string): StatusLook {
  return RUN[status] ?? { label: status, tone: "muted", glyph: "·" };
}

export function stepLook(status: string): StatusLook {
  return STEP[status as StepStatus] ?? { label: status, tone: "muted", glyph: "·" };
}

/** A run is over: nothing more will happen without a new command. */
export function runFinished(status: string): boolean {
  return status === "succeeded" || status === "failed" || status === "cancelled";
}

/** Which run controls make sense now. */
export function runActions(status: string): { pause: boolean; resume: boolean; cancel: boolean } {
  return {
    pause: status === "running" || status === "awaiting_approval",
    resume: status === "paused" || status === "interrupted",
    cancel: !runFinished(status),
  };
}

/** How much a step's status should catch the eye when many are drawn as one. */
export function stepSeverity(status: string): number {
  switch (status) {
    case "failed":
    case "outcome_unknown":
      return 6;
    case "rejected":
      return 5;
    case "awaiting_approval":
      return 4;
    case "running":
    case "waiting_retry":
      return 3;
    case "cancelled":
      return 2;
    case "succeeded":
      return 1;
    default:
      return 0;
  }
}
