// jsdom lacks a few browser APIs the app touches: stand-ins that do nothing.
class NoResizeObserver {
  observe() {}
  unobserve() {}
  disconnect() {}
}
const w = window as unknown as Record<string, unknown>;
w.ResizeObserver ??= NoResizeObserver;
w.matchMedia ??= (query: string) => ({
  matches: false,
  media: query,
  addEventListener() {},
  removeEventListener() {},
});
Element.prototype.scrollIntoView ??= function () {};
