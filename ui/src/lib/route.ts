// Where the window is: one route per view, kept in the location hash so that reloads, links
// and the back button work inside the webview.

export type Route =
  | { view: "runs" }
  | { view: "run"; runId: string; step: string | null; tab: string | null }
  /** `run`/`step`: select that question when it is in the inbox. */
  | { view: "approvals"; run?: string | null; step?: string | null }
  | { view: "workspace" }
  | { view: "cost" }
  | { view: "workflows" }
  | { view: "settings" }
  /** Two runs side by side. */
  | { view: "compare"; first: string; second: string };

export const VIEWS = ["runs", "approvals", "workspace", "cost", "workflows", "settings"] as const;

export function parseHash(hash: string): Route {
  const raw = hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(query);
  switch (parts[0]) {
    case "run":
      if (parts[1]) return { view: "run", runId: parts[1], step: params.get("step"), tab: params.get("tab") };
      return { view: "runs" };
    case "approvals":
      return { view: "approvals", run: params.get("run"), step: params.get("step") };
    case "compare":
      if (parts[1] && parts[2]) return { view: "compare", first: parts[1], second: parts[2] };
      return { view: "runs" };
    case "workspace":
    case "cost":
    case "workflows":
    case "settings":
      return { view: parts[0] };
    default:
      return { view: "runs" };
  }
}

export function hrefFor(route: Route): string {
  if (route.view === "run") {
    const params = new URLSearchParams();
    if (route.step) params.set("step", route.step);
    if (route.tab) params.set("tab", route.tab);
    const q = params.toString();
    return `#/run/${encodeURIComponent(route.runId)}${q ? `?${q}` : ""}`;
  }
  if (route.view === "approvals" && route.run && route.step) return approvalsHref(route.run, route.step);
  if (route.view === "compare") return `#/compare/${encodeURIComponent(route.first)}/${encodeURIComponent(route.second)}`;
  return `#/${route.view}`;
}

export function runHref(runId: string, step?: string | null): string {
  return hrefFor({ view: "run", runId, step: step ?? null, tab: null });
}

export function approvalsHref(run: string, step: string): string {
  return `#/approvals?${new URLSearchParams({ run, step }).toString()}`;
}
