// The "Run" form of a workflow: a control per declared input, prefilled with its default,
// and the values typed turned into the text map `start_run` takes (as `--input k=v` would).
import type { JsonValue } from "../generated/serde_json/JsonValue";
import type { WorkflowInput } from "../generated/WorkflowInput";

export type Control = "checkbox" | "integer" | "number" | "json" | "text";

export type FieldValue = string | number | boolean | null | undefined;

export function controlFor(kind: string): Control {
  switch (kind) {
    case "boolean":
      return "checkbox";
    case "integer":
      return "integer";
    case "number":
      return "number";
    case "list":
    case "object":
      return "json";
    default:
      return "text";
  }
}

/** A default as the control shows it. */
export function defaultValue(input: WorkflowInput): FieldValue {
  const d: JsonValue | null = input.default;
  const control = controlFor(input.kind);
  if (control === "checkbox") return d === true;
  if (d === null || d === undefined) return control === "integer" || control === "number" ? null : "";
  if (control === "integer" || control === "number") return typeof d === "number" ? d : Number(d);
  if (control === "json") return JSON.stringify(d);
  return typeof d === "string" ? d : JSON.stringify(d);
}

export function initialValues(inputs: readonly WorkflowInput[]): Record<string, FieldValue> {
  return Object.fromEntries(inputs.map((i) => [i.name, defaultValue(i)]));
}

export interface Coerced {
  /** What to send: input name → text. */
  inputs: Record<string, string>;
  /** What is wrong, per input; empty when the form can be sent. */
  errors: Record<string, string>;
}

function isBlank(v: FieldValue): boolean {
  return v === null || v === undefined || (typeof v === "string" && v.trim() === "") || (typeof v === "number" && Number.isNaN(v));
}

/**
 * Checks the form and turns it into text values. A blank field is left out when the input
 * has a default (the engine applies it) and is an error when it has none (it is required).
 */
export function coerceInputs(inputs: readonly WorkflowInput[], values: Record<string, FieldValue>): Coerced {
  const out: Record<string, string> = {};
  const errors: Record<string, string> = {};
  for (const input of inputs) {
    const v = values[input.name];
    const control = controlFor(input.kind);
    const hasDefault = input.default !== null && input.default !== undefined;
    if (control === "checkbox") {
      out[input.name] = v === true || v === "true" ? "true" : "false";
      continue;
    }
    if (isBlank(v)) {
      if (control === "text" && typeof v === "string" && hasDefault) out[input.name] = v;
      else if (!hasDefault) errors[input.name] = "required";
      continue;
    }
    const text = String(v).trim();
    if (control === "integer") {
      if (!/^[+-]?\d+$/.test(text) || !Number.isSafeInteger(Number(text))) errors[input.name] = "must be a whole number";
      else out[input.name] = String(Number(text));
    } else if (control === "number") {
      if (!Number.isFinite(Number(text))) errors[input.name] = "must be a number";
      else out[input.name] = text;
    } else if (control === "json") {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      const isList = Array.isArray(parsed);
      const isObject = typeof parsed === "object" && parsed !== null && !isList;
      if (input.kind === "list" && !isList) errors[input.name] = 'must be a JSON list, like ["a", "b"]';
      else if (input.kind === "object" && !isObject) errors[input.name] = 'must be a JSON object, like {"key": "value"}';
      else out[input.name] = text;
    } else {
      out[input.name] = String(v);
    }
  }
  return { inputs: out, errors };
}
