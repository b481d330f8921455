import { hrefFor, parseHash, type Route } from "./route";

export const router = $state<{ route: Route }>({ route: parseHash(location.hash) });

if (typeof window !== "undefined") {
  window.addEventListener("hashchange", () => {
    router.route = parseHash(location.hash);
  });
}

export function navigate(route: Route): void {
  const href = hrefFor(route);
  if (location.hash !== href) location.hash = href;
  router.route = parseHash(href);
}

/** Changes the address without a new history entry or a reload of the view (selection). */
export function replaceRoute(route: Route): void {
  history.replaceState(history.state, "", hrefFor(route));
  router.route = route;
}
