// What the dashboard knows about the SutazAI API: where it lives, how to ask it, and how
// to read its answers without trusting their shape. Everything here is free of the DOM so
// it can be tested against a real HTTP server under Node.

/** Where `sutazai serve` listens unless told otherwise (the spec's base URL). */
export const DEFAULT_API = "http://127.0.0.1:8000";

/** How long one request may take before the API counts as not reachable. */
export const REQUEST_TIMEOUT_MS = 4000;

/** `/health`, normalised. */
export interface Health {
  /** The API's own word for its state ("healthy", "degraded", ...). */
  status: string;
  /** Overall health as a fraction 0..1, or null when the API did not say. */
  systemHealth: number | null;
}

/** The task counters of `/status`; null where the API did not report one. */
export interface Status {
  activeTasks: number | null;
  queuedTasks: number | null;
}

/** One entry of `/agents`, with every field present so the view never checks. */
export interface Agent {
  id: string;
  name: string;
  category: string;
  role: string;
  status: string;
  capabilities: string[];
}

/** A request that may have failed on its own without taking the page down. */
export type Part<T> = { ok: true; value: T } | { ok: false; error: string };

/** One poll of the API: either it answered `/health`, or it is not reachable. */
export type Snapshot =
  | { kind: "up"; health: Health; status: Part<Status>; agents: Part<Agent[]>; at: Date }
  | { kind: "down"; error: string; at: Date };

/** The subset of `fetch` this module uses, so callers may pass `window.fetch` bound. */
export type Fetch = (input: string, init?: RequestInit) => Promise<Response>;

/**
 * Picks the API base URL. The desktop shell injects `window.SUTAZAI_API` (it knows the
 * configured host and port); a page served over http(s) by `sutazai serve` talks to its
 * own origin; anything else (a file opened directly) falls back to the default.
 */
export function resolveApiBase(injected: unknown, location: { protocol: string; origin: string }): string {
  if (typeof injected === "string" && injected.trim() !== "") {
    return injected.trim().replace(/\/+$/, "");
  }
  if (location.protocol === "http:" || location.protocol === "https:") {
    return location.origin;
  }
  return DEFAULT_API;
}

type Json = Record<string, unknown>;

function isRecord(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Some answers wrap their payload in `{data: ...}` (as the spec's WebSocket messages do);
 * the wrapped fields win over the envelope's own.
 */
function payload(body: unknown): Json {
  if (!isRecord(body)) return {};
  return isRecord(body.data) ? { ...body, ...body.data } : body;
}

function text(value: unknown, fallback: string): string {
  if (typeof value === "string" && value.trim() !== "") return value.trim();
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  return fallback;
}

/** A count, or the length of a list the API returned in its place. */
function count(value: unknown): number | null {
  if (typeof value === "number" && Number.isFinite(value) && value >= 0) return Math.floor(value);
  if (Array.isArray(value)) return value.length;
  return null;
}

/** Reads health as a fraction: 0.93, 93 and "93%" all mean 93 %. */
function fraction(value: unknown): number | null {
  let n: number;
  if (typeof value === "number") n = value;
  else if (typeof value === "string" && value.trim() !== "") n = Number.parseFloat(value);
  else return null;
  if (!Number.isFinite(n) || n < 0) return null;
  const percent = n > 1 || (typeof value === "string" && value.includes("%"));
  return Math.min(1, percent ? n / 100 : n);
}

export function parseHealth(body: unknown): Health {
  const data = payload(body);
  return {
    status: text(data.status, "unknown"),
    systemHealth: fraction(data.system_health),
  };
}

export function parseStatus(body: unknown): Status {
  const data = payload(body);
  return {
    activeTasks: count(data.active_tasks),
    queuedTasks: count(data.queued_tasks),
  };
}

function capability(value: unknown): string | null {
  if (typeof value === "string" && value.trim() !== "") return value.trim();
  if (isRecord(value)) return typeof value.name === "string" && value.name !== "" ? value.name : null;
  return null;
}

export function parseAgents(body: unknown): Agent[] {
  let list: unknown = body;
  if (isRecord(body)) list = Array.isArray(body.agents) ? body.agents : payload(body).agents;
  if (!Array.isArray(list)) return [];
  const agents: Agent[] = [];
  for (const item of list) {
    if (!isRecord(item)) continue;
    const id = text(item.id, "");
    const name = text(item.name, id);
    if (name === "") continue;
    const caps = Array.isArray(item.capabilities) ? item.capabilities : [];
    agents.push({
      id: id === "" ? name : id,
      name,
      category: text(item.category, ""),
      role: text(item.role, ""),
      status: text(item.status, "unknown"),
      capabilities: caps.map(capability).filter((c): c is string => c !== null),
    });
  }
  return agents;
}

/** GETs `path` under `base` and decodes JSON; throws an Error whose message is shown as is. */
export async function getJson(base: string, path: string, fetchFn: Fetch, timeoutMs = REQUEST_TIMEOUT_MS): Promise<unknown> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    let response: Response;
    try {
      response = await fetchFn(`${base}${path}`, {
        signal: controller.signal,
        headers: { Accept: "application/json" },
      });
    } catch (err) {
      if (controller.signal.aborted) throw new Error(`GET ${path}: no answer within ${timeoutMs / 1000} s`);
      throw new Error(`GET ${path}: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (!response.ok) throw new Error(`GET ${path}: HTTP ${response.status}`);
    try {
      return await response.json();
    } catch {
      throw new Error(`GET ${path}: the answer is not JSON`);
    }
  } finally {
    clearTimeout(timer);
  }
}

async function part<T>(request: Promise<unknown>, parse: (body: unknown) => T): Promise<Part<T>> {
  try {
    return { ok: true, value: parse(await request) };
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err.message : String(err) };
  }
}

/** Polls the three endpoints at once; `/health` failing means the API is down. */
export async function loadSnapshot(base: string, fetchFn: Fetch, timeoutMs = REQUEST_TIMEOUT_MS): Promise<Snapshot> {
  const [health, status, agents] = await Promise.all([
    part(getJson(base, "/health", fetchFn, timeoutMs), parseHealth),
    part(getJson(base, "/status", fetchFn, timeoutMs), parseStatus),
    part(getJson(base, "/agents", fetchFn, timeoutMs), parseAgents),
  ]);
  const at = new Date();
  if (!health.ok) return { kind: "down", error: health.error, at };
  return { kind: "up", health: health.value, status, agents, at };
}

/** Buckets a status word into the three colours the view uses. */
export function tone(status: string): "good" | "warn" | "bad" {
  const s = status.toLowerCase();
  if (["healthy", "ok", "up", "active", "idle", "ready", "running", "online"].includes(s)) return "good";
  if (["degraded", "warning", "busy", "starting", "pending", "unknown"].includes(s)) return "warn";
  return "bad";
}
