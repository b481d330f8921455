// Draws one lane of the timeline as plain DOM: a zoomed-out 10,000-step run shows a few hundred
// bars, and making each a reactive component was most of the Run view's first render. Styles go
// through the CSSOM (no inline style text), so a strict style-src still holds. Clicks are handled
// once per lane: an element's `data-select` names the step to choose.
import type { Segment } from "../generated/Segment";
import { formatDuration } from "../lib/format";
import { waitedMs, type Bar as StepBar } from "../lib/runView";
import { stepLook, stepSeverity } from "../lib/status";
import type { Bar } from "../lib/timeline";

export interface LaneDrawing {
  bars: Bar<StepBar>[];
  selected: string | null;
  pxPerMs: number;
  now: number;
  pad: number;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  e.className = cls;
  return e;
}

function segClass(kind: Segment["kind"]): string {
  return kind === "waiting" ? "wait" : kind === "outcome_unknown" ? "unknown" : "exec";
}

function drawBar(bar: Bar<StepBar>, d: LaneDrawing): HTMLElement {
  const s = bar.first.item;
  const button = el("button", "bar");
  button.tabIndex = -1;
  button.style.left = `${bar.x + d.pad}px`;
  button.style.width = `${bar.w}px`;
  if (bar.count > 1) {
    const worst = stepLook(bar.worst.item.status);
    const usual = stepLook(bar.usual.item.status);
    button.className = `bar cluster tone-${usual.tone}`;
    button.title = `${bar.count} steps from ${s.id}; the most notable is ${bar.worst.item.id} (${worst.label}). Zoom in to tell them apart.`;
    button.setAttribute("aria-label", `${bar.count} steps from ${s.id}, the most notable ${worst.label}`);
    button.dataset.select = bar.worst.item.id;
    if (stepSeverity(bar.worst.item.status) >= 4 && bar.worst !== bar.usual) {
      const mark = el("span", `notable tone-${worst.tone}`);
      mark.setAttribute("aria-hidden", "true");
      button.append(mark);
    }
    if (bar.w > 70) button.append(Object.assign(el("span", "label"), { textContent: `${bar.count} steps` }));
    return button;
  }
  const look = stepLook(s.status);
  const took = formatDuration(bar.first.end - bar.first.start);
  const wait = waitedMs(s.segments, d.now);
  button.className = `bar tone-${look.tone}${s.compensates ? " compensation" : ""}${s.id === d.selected ? " selected" : ""}`;
  button.dataset.step = s.id;
  button.dataset.select = s.id;
  const undoes = s.compensates ? ` (↩ undoes ${s.compensates})` : "";
  if (s.compensates) button.dataset.compensates = s.compensates;
  button.title = `${s.id}${undoes} — ${look.label}, ${took}${wait ? `, ${formatDuration(wait)} waiting for a person` : ""}`;
  button.setAttribute("aria-label", `Step ${s.id}${undoes}, ${look.label}, ${took}`);
  if (bar.w >= 6) {
    for (const seg of s.segments) {
      const end = seg.end_ms ?? Math.max(d.now, seg.start_ms);
      const span = el("span", `seg ${segClass(seg.kind)}`);
      span.style.left = `${(seg.start_ms - bar.first.start) * d.pxPerMs}px`;
      span.style.width = `${Math.max(1, (end - seg.start_ms) * d.pxPerMs)}px`;
      button.append(span);
    }
  } else {
    const span = el("span", "seg exec");
    span.style.left = "0";
    span.style.width = "100%";
    button.append(span);
  }
  if (bar.w > 48) {
    const label = el("span", "label");
    label.textContent = s.compensates ? `↩ ${s.id}` : s.id;
    if (bar.w > 110) label.append(Object.assign(el("span", "dur"), { textContent: took }));
    button.append(label);
  }
  return button;
}

/** A Svelte action: the lane's bars, redrawn only when what they show changed. */
export function drawLane(node: HTMLElement, drawing: LaneDrawing) {
  let last: LaneDrawing | null = null;
  const draw = (d: LaneDrawing) => {
    if (last && last.bars === d.bars && last.selected === d.selected && last.pad === d.pad && (last.now === d.now || !d.bars.some((b) => b.first.item.segments.some((s) => s.end_ms === null)))) return;
    last = d;
    node.replaceChildren(...d.bars.map((bar) => drawBar(bar, d)));
  };
  draw(drawing);
  return { update: draw };
}
