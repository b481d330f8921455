import type { JsonValue } from "../generated/serde_json/JsonValue";

/** Pretty JSON for request/result panes (2-space indent, stable). */
export function prettyJson(value: JsonValue | unknown): string {
  if (value === undefined) return "undefined";
  try {
    return JSON.stringify(value, null, 2) ?? "null";
  } catch {
    return String(value);
  }
}

/** One-line JSON, cut to `max` characters, for dense rows. */
export function jsonLine(value: JsonValue | unknown, max = 240): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? "null";
  } catch {
    text = String(value);
  }
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export function isObject(value: unknown): value is Record<string, JsonValue> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
