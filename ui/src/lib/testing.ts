// Helpers for component tests (jsdom): let the mock answer and Svelte render.
import { flushSync } from "svelte";

/** Lets pending promises, microtasks and timers of 0 ms run, and renders. */
export async function settle(rounds = 6): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    await new Promise((r) => setTimeout(r, 0));
    flushSync();
  }
}

export function press(key: string, target: EventTarget = window, init: KeyboardEventInit = {}): KeyboardEvent {
  const event = new KeyboardEvent("keydown", { key, bubbles: true, cancelable: true, ...init });
  target.dispatchEvent(event);
  flushSync();
  return event;
}

export function typeInto(el: HTMLInputElement | HTMLTextAreaElement, value: string): void {
  el.value = value;
  el.dispatchEvent(new Event("input", { bubbles: true }));
  flushSync();
}

export function text(root: ParentNode, selector: string): string {
  return (root.querySelector(selector)?.textContent ?? "").replace(/\s+/g, " ").trim();
}
