// Hash routing: `#/tasks/ID`, `#/alerts`, `#/analytics?range=24h`. The desktop shell opens
// a view by setting the URL's hash (a notification click), so every view has an address.

export type View = "overview" | "agents" | "tasks" | "messages" | "infrastructure" | "analytics" | "alerts" | "welcome";

export type Route =
  | { view: "overview" }
  | { view: "agents"; agentId?: string }
  | { view: "tasks"; status?: string }
  | { view: "task"; taskId: string }
  | { view: "messages"; deadLetterId?: string }
  | { view: "infrastructure" }
  | { view: "analytics"; range?: string }
  | { view: "alerts" }
  | { view: "welcome" }
  | { view: "notfound"; path: string };

/** The sidebar, in order. */
export const NAV: { view: View; label: string }[] = [
  { view: "overview", label: "Overview" },
  { view: "agents", label: "Agents" },
  { view: "tasks", label: "Tasks" },
  { view: "messages", label: "Messages" },
  { view: "infrastructure", label: "Infrastructure" },
  { view: "analytics", label: "Analytics" },
  { view: "alerts", label: "Alerts & Settings" },
  { view: "welcome", label: "Get started" },
];

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** Reads a location hash (`#/tasks/abc?x=1`, with or without `#` and the first `/`). */
export function parseHash(hash: string): Route {
  const raw = hash.replace(/^#/, "").replace(/^\/+/, "");
  const [pathPart = "", queryPart = ""] = raw.split("?", 2);
  const segments = pathPart
    .split("/")
    .filter((s) => s !== "")
    .map(decode);
  const query = new URLSearchParams(queryPart);
  const [head, id, ...rest] = segments;
  const path = `/${segments.join("/")}`;
  if (rest.length > 0) return { view: "notfound", path };
  switch (head) {
    case undefined:
    case "overview":
      return id === undefined ? { view: "overview" } : { view: "notfound", path };
    case "agents":
      return id === undefined ? { view: "agents" } : { view: "agents", agentId: id };
    case "tasks": {
      if (id !== undefined) return { view: "task", taskId: id };
      const status = query.get("status");
      return status ? { view: "tasks", status } : { view: "tasks" };
    }
    case "messages":
      return id === undefined ? { view: "messages" } : { view: "messages", deadLetterId: id };
    case "infrastructure":
      return id === undefined ? { view: "infrastructure" } : { view: "notfound", path };
    case "analytics": {
      if (id !== undefined) return { view: "notfound", path };
      const range = query.get("range");
      return range ? { view: "analytics", range } : { view: "analytics" };
    }
    case "alerts":
      return id === undefined ? { view: "alerts" } : { view: "notfound", path };
    case "welcome":
      return id === undefined ? { view: "welcome" } : { view: "notfound", path };
    default:
      return { view: "notfound", path };
  }
}

/** The hash of a route; `parseHash(routeHash(r))` gives `r` back. */
export function routeHash(route: Route): string {
  const enc = encodeURIComponent;
  switch (route.view) {
    case "overview":
      return "#/overview";
    case "agents":
      return route.agentId === undefined ? "#/agents" : `#/agents/${enc(route.agentId)}`;
    case "tasks":
      return route.status ? `#/tasks?status=${enc(route.status)}` : "#/tasks";
    case "task":
      return `#/tasks/${enc(route.taskId)}`;
    case "messages":
      return route.deadLetterId === undefined ? "#/messages" : `#/messages/${enc(route.deadLetterId)}`;
    case "infrastructure":
      return "#/infrastructure";
    case "analytics":
      return route.range ? `#/analytics?range=${enc(route.range)}` : "#/analytics";
    case "alerts":
      return "#/alerts";
    case "welcome":
      return "#/welcome";
    case "notfound":
      return `#${route.path}`;
  }
}

/** The sidebar entry a route belongs to (a task's view is under Tasks). */
export function navOf(route: Route): View | null {
  if (route.view === "task") return "tasks";
  if (route.view === "notfound") return null;
  return route.view;
}
