// Text a person could not read because other text is drawn over it: every pair of visible
// text-bearing elements whose line boxes, clipped by their scrolling or clipping ancestors and
// the window, overlap. Toasts float over the page on purpose and are left out. One function
// expression, run in the page by the browser tests (Playwright, Chromium) and by the real app's
// end-to-end test (WebDriver, WebKit): `(source)()` returns the overlapping pairs.
() => {
  // Each line box of an element (an inline element that wraps has one per line), clipped.
  const boxes = (el) => {
    const clips = [];
    for (let a = el.parentElement; a; a = a.parentElement) {
      const cs = getComputedStyle(a);
      if (cs.overflowX !== "visible" || cs.overflowY !== "visible") clips.push(a.getBoundingClientRect());
    }
    clips.push({ left: 0, top: 0, right: innerWidth, bottom: innerHeight });
    return [...el.getClientRects()]
      .map((r) => clips.reduce((c, a) => ({ l: Math.max(c.l, a.left), t: Math.max(c.t, a.top), r: Math.min(c.r, a.right), b: Math.min(c.b, a.bottom) }), { l: r.left, t: r.top, r: r.right, b: r.bottom }))
      .filter((c) => c.r - c.l > 1 && c.b - c.t > 1);
  };
  const texts = [...document.querySelectorAll("body *")]
    .filter((el) => ![...el.childNodes].some((n) => n.nodeType === 1 && n.textContent.trim()) && el.textContent.trim())
    .filter((el) => !el.closest(".toasts, .sr-only") && getComputedStyle(el).visibility !== "hidden")
    .map((el) => ({ el, boxes: boxes(el) }))
    .filter((x) => x.boxes.length);
  const overlap = (a, b) => Math.min(a.r, b.r) - Math.max(a.l, b.l) > 2 && Math.min(a.b, b.b) - Math.max(a.t, b.t) > 2;
  const found = [];
  for (let i = 0; i < texts.length; i++) {
    for (let j = i + 1; j < texts.length; j++) {
      if (texts[i].el.contains(texts[j].el) || texts[j].el.contains(texts[i].el)) continue;
      if (texts[i].boxes.some((a) => texts[j].boxes.some((b) => overlap(a, b)))) {
        found.push(`"${texts[i].el.textContent.trim().slice(0, 30)}" and "${texts[j].el.textContent.trim().slice(0, 30)}"`);
      }
    }
  }
  // Text that spills out of a box it belongs to (its ancestors up to the body), though no
  // other text happens to be under it there: a column pushed out of its pane, say.
  for (const { el, boxes: lines } of texts) {
    for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
      const box = a.getBoundingClientRect();
      if (box.width === 0 || box.height === 0) continue;
      if (lines.some((c) => c.l < box.left - 1 || c.r > box.right + 1 || c.t < box.top - 1 || c.b > box.bottom + 1)) {
        found.push(`"${el.textContent.trim().slice(0, 30)}" spills out of <${a.tagName.toLowerCase()} class="${a.className}">`);
        break;
      }
    }
  }
  return found;
}
