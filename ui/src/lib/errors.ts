import type { AppError } from "../generated/AppError";
import type { ErrorCode } from "../generated/ErrorCode";

const CODES: ErrorCode[] = ["invalid", "refused", "not_found", "internal"];

/**
 * Whatever a backend call threw, as `{code, message}`. Tauri rejects with the serialised
 * `AppError`; anything else (a JS error, a string from the IPC layer) becomes `internal`.
 */
export function toAppError(error: unknown): AppError {
  if (typeof error === "object" && error !== null) {
    const e = error as { code?: unknown; message?: unknown };
    if (typeof e.code === "string" && typeof e.message === "string") {
      const code = (CODES as string[]).includes(e.code) ? (e.code as ErrorCode) : "internal";
      return { code, message: e.message };
    }
    if (error instanceof Error) return { code: "internal", message: error.message || String(error) };
  }
  if (typeof error === "string") return { code: "internal", message: error };
  return { code: "internal", message: `unexpected failure: ${String(error)}` };
}

/** `refused: the step now waits on another proposal` */
export function errorText(error: AppError): string {
  return `${error.code}: ${error.message}`;
}
