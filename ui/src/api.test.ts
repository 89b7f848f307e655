// Tests of the API client against a real HTTP server on 127.0.0.1:0: resolving the base
// URL, reading loosely shaped answers, and telling "down" from "partly up".

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { loadSnapshot, parseAgents, parseHealth, parseStatus, resolveApiBase, tone, DEFAULT_API } from "./api";

type Route = (req: IncomingMessage, res: ServerResponse) => void;

const servers: Server[] = [];

/** Starts a real HTTP server answering `routes` by path; resolves to its base URL. */
async function serve(routes: Record<string, Route>): Promise<string> {
  const server = createServer((req, res) => {
    const route = routes[req.url ?? ""];
    if (route) route(req, res);
    else {
      res.writeHead(404).end();
    }
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return `http://127.0.0.1:${port}`;
}

const json = (body: unknown, code = 200): Route => (_req, res) => {
  res.writeHead(code, { "content-type": "application/json" }).end(JSON.stringify(body));
};

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

describe("resolveApiBase", () => {
  it("prefers the URL the desktop shell injected, without a trailing slash", () => {
    expect(resolveApiBase(" http://127.0.0.1:9100/ ", { protocol: "tauri:", origin: "tauri://localhost" })).toBe(
      "http://127.0.0.1:9100",
    );
  });
  it("uses the page origin when served over http", () => {
    expect(resolveApiBase(undefined, { protocol: "http:", origin: "http://10.1.2.3:8000" })).toBe("http://10.1.2.3:8000");
  });
  it("falls back to the default otherwise", () => {
    expect(resolveApiBase("", { protocol: "file:", origin: "null" })).toBe(DEFAULT_API);
    expect(resolveApiBase(42, { protocol: "tauri:", origin: "tauri://localhost" })).toBe(DEFAULT_API);
  });
});

describe("parsers", () => {
  it("reads health as a fraction whatever its spelling", () => {
    expect(parseHealth({ status: "healthy", system_health: 0.93 })).toEqual({ status: "healthy", systemHealth: 0.93 });
    expect(parseHealth({ status: "degraded", system_health: 87 }).systemHealth).toBeCloseTo(0.87);
    expect(parseHealth({ status: "ok", system_health: "50%" }).systemHealth).toBeCloseTo(0.5);
    expect(parseHealth({ data: { status: "healthy", system_health: 1 } })).toEqual({ status: "healthy", systemHealth: 1 });
    expect(parseHealth("nonsense")).toEqual({ status: "unknown", systemHealth: null });
    expect(parseHealth({ status: "", system_health: -3 })).toEqual({ status: "unknown", systemHealth: null });
  });

  it("reads task counters as numbers or list lengths", () => {
    expect(parseStatus({ active_tasks: 3, queued_tasks: 0 })).toEqual({ activeTasks: 3, queuedTasks: 0 });
    expect(parseStatus({ active_tasks: [{}, {}], queued_tasks: "many" })).toEqual({ activeTasks: 2, queuedTasks: null });
    expect(parseStatus(null)).toEqual({ activeTasks: null, queuedTasks: null });
  });

  it("keeps well-formed agents and fills gaps in the rest", () => {
    const agents = parseAgents({
      agents: [
        { id: "senior-ai-engineer", name: "Senior AI Engineer", category: "development", role: "engineer", status: "healthy", capabilities: ["code_generation", { name: "review" }, 7] },
        { id: "bare" },
        { name: "" },
        "not an agent",
        null,
      ],
    });
    expect(agents).toEqual([
      { id: "senior-ai-engineer", name: "Senior AI Engineer", category: "development", role: "engineer", status: "healthy", capabilities: ["code_generation", "review"] },
      { id: "bare", name: "bare", category: "", role: "", status: "unknown", capabilities: [] },
    ]);
    expect(parseAgents([{ id: "a", name: "A" }])).toHaveLength(1);
    expect(parseAgents({ agents: "none" })).toEqual([]);
  });

  it("buckets status words", () => {
    expect(tone("Healthy")).toBe("good");
    expect(tone("degraded")).toBe("warn");
    expect(tone("failed")).toBe("bad");
  });
});

describe("loadSnapshot over real HTTP", () => {
  it("collects all three endpoints", async () => {
    const base = await serve({
      "/health": json({ status: "healthy", system_health: 0.99 }),
      "/status": json({ active_tasks: 1, queued_tasks: 4 }),
      "/agents": json({ agents: [{ id: "a", name: "A", status: "idle", capabilities: ["x"] }] }),
    });
    const snap = await loadSnapshot(base, fetch);
    expect(snap.kind).toBe("up");
    if (snap.kind !== "up") return;
    expect(snap.health).toEqual({ status: "healthy", systemHealth: 0.99 });
    expect(snap.status).toEqual({ ok: true, value: { activeTasks: 1, queuedTasks: 4 } });
    expect(snap.agents.ok && snap.agents.value.map((a) => a.id)).toEqual(["a"]);
  });

  it("stays up when only /status or /agents fail, naming what failed", async () => {
    const base = await serve({
      "/health": json({ status: "degraded" }),
      "/status": json({ error: "boom" }, 500),
      "/agents": (_req, res) => {
        res.writeHead(200, { "content-type": "application/json" }).end("{not json");
      },
    });
    const snap = await loadSnapshot(base, fetch);
    expect(snap.kind).toBe("up");
    if (snap.kind !== "up") return;
    expect(snap.status).toEqual({ ok: false, error: "GET /status: HTTP 500" });
    expect(snap.agents).toEqual({ ok: false, error: "GET /agents: the answer is not JSON" });
  });

  it("is down when nothing listens", async () => {
    const base = await serve({});
    const closed = servers.pop();
    await new Promise((r) => closed?.close(r));
    const snap = await loadSnapshot(base, fetch);
    expect(snap.kind).toBe("down");
    if (snap.kind === "down") expect(snap.error).toMatch(/^GET \/health: /);
  });

  it("is down when /health never answers within the timeout", async () => {
    const base = await serve({ "/health": () => undefined, "/status": json({}), "/agents": json({ agents: [] }) });
    const snap = await loadSnapshot(base, fetch, 200);
    expect(snap).toMatchObject({ kind: "down", error: "GET /health: no answer within 0.2 s" });
  });
});
