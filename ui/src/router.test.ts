// The hash router: every view has an address the desktop shell can open.

import { describe, expect, it } from "vitest";
import { NAV, navOf, parseHash, routeHash, type Route } from "./router";

describe("parseHash", () => {
  it("reads every view", () => {
    expect(parseHash("")).toEqual({ view: "overview" });
    expect(parseHash("#/")).toEqual({ view: "overview" });
    expect(parseHash("#/overview")).toEqual({ view: "overview" });
    expect(parseHash("#/agents")).toEqual({ view: "agents" });
    expect(parseHash("#/agents/senior-ai-engineer")).toEqual({ view: "agents", agentId: "senior-ai-engineer" });
    expect(parseHash("#/tasks")).toEqual({ view: "tasks" });
    expect(parseHash("#/tasks?status=running")).toEqual({ view: "tasks", status: "running" });
    expect(parseHash("#/tasks/0193a5b2-7c4d")).toEqual({ view: "task", taskId: "0193a5b2-7c4d" });
    expect(parseHash("#/messages/dl-1")).toEqual({ view: "messages", deadLetterId: "dl-1" });
    expect(parseHash("#/infrastructure")).toEqual({ view: "infrastructure" });
    expect(parseHash("#/analytics?range=7d")).toEqual({ view: "analytics", range: "7d" });
    expect(parseHash("#/alerts")).toEqual({ view: "alerts" });
    expect(parseHash("#/welcome")).toEqual({ view: "welcome" });
  });

  it("accepts hashes without the leading slash and with encoded ids", () => {
    expect(parseHash("#tasks/abc")).toEqual({ view: "task", taskId: "abc" });
    expect(parseHash("#/agents/a%20b")).toEqual({ view: "agents", agentId: "a b" });
    expect(parseHash("#/agents/%E0%A4%A")).toEqual({ view: "agents", agentId: "%E0%A4%A" });
  });

  it("sends unknown addresses to a not-found view", () => {
    expect(parseHash("#/nope")).toEqual({ view: "notfound", path: "/nope" });
    expect(parseHash("#/tasks/a/b")).toEqual({ view: "notfound", path: "/tasks/a/b" });
    expect(parseHash("#/alerts/3")).toEqual({ view: "notfound", path: "/alerts/3" });
    expect(parseHash("#/welcome/2")).toEqual({ view: "notfound", path: "/welcome/2" });
  });
});

describe("routeHash", () => {
  it("round-trips every route", () => {
    const routes: Route[] = [
      { view: "overview" },
      { view: "agents" },
      { view: "agents", agentId: "x/y z" },
      { view: "tasks" },
      { view: "tasks", status: "awaiting_approval" },
      { view: "task", taskId: "0193-ab" },
      { view: "messages" },
      { view: "messages", deadLetterId: "d1" },
      { view: "infrastructure" },
      { view: "analytics", range: "30d" },
      { view: "alerts" },
      { view: "welcome" },
    ];
    for (const route of routes) expect(parseHash(routeHash(route))).toEqual(route);
    expect(routeHash({ view: "task", taskId: "a b" })).toBe("#/tasks/a%20b");
  });

  it("puts a task under Tasks in the sidebar, which lists every view", () => {
    expect(navOf({ view: "task", taskId: "t" })).toBe("tasks");
    expect(navOf({ view: "notfound", path: "/x" })).toBeNull();
    expect(navOf({ view: "welcome" })).toBe("welcome");
    expect(NAV.map((n) => n.view)).toEqual([
      "overview",
      "agents",
      "tasks",
      "messages",
      "infrastructure",
      "analytics",
      "alerts",
      "welcome",
    ]);
  });
});
