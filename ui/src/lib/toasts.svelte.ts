// Short messages in an aria-live region: what an action did, or why it failed (code and
// message, as the backend said).
import type { AppError } from "../generated/AppError";

export interface Toast {
  id: number;
  tone: "info" | "ok" | "error";
  text: string;
  code?: string;
}

export const toasts = $state<{ list: Toast[] }>({ list: [] });
let next = 1;

export function dismiss(id: number): void {
  toasts.list = toasts.list.filter((t) => t.id !== id);
}

export function toast(text: string, tone: Toast["tone"] = "info", ms = 5000): void {
  const id = next++;
  toasts.list = [...toasts.list.slice(-4), { id, tone, text }];
  if (ms > 0) setTimeout(() => dismiss(id), ms);
}

export function toastError(error: AppError, what?: string): void {
  const id = next++;
  const text = what ? `${what}: ${error.message}` : error.message;
  toasts.list = [...toasts.list.slice(-4), { id, tone: "error", text, code: error.code }];
  setTimeout(() => dismiss(id), 12000);
}
