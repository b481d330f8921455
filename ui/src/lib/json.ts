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

/** JSON on one line, spaced to be read: `{ "argv": ["python3", "-m"] }`. */
function spacedLine(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(spacedLine).join(", ")}]`;
  if (isObject(value)) {
    const fields = Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${spacedLine(v)}`);
    return fields.length ? `{ ${fields.join(", ")} }` : "{}";
  }
  return JSON.stringify(value) ?? "null";
}

/**
 * Compact JSON for a tool call's arguments: on one line when it fits in `width`, else an
 * object's fields one a line (each value on one line, as the model gave it).
 */
export function compactJson(value: JsonValue | unknown, width = 80): string {
  const line = spacedLine(value);
  if (line.length <= width || !isObject(value)) return line;
  const fields = Object.entries(value).map(([k, v]) => `  ${JSON.stringify(k)}: ${spacedLine(v)}`);
  return `{\n${fields.join(",\n")}\n}`;
}
