// Tests of the API client against a real HTTP server on 127.0.0.1:0: the base URL, the
// API's `{code, message}` errors reaching the page as their message, the other ways a
// request fails, and NDJSON streams read as they arrive.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import {
  Api,
  ApiError,
  DEFAULT_API,
  NdjsonDecoder,
  queryString,
  readNdjson,
  resolveApiBase,
  tone,
  withAccessToken,
  wsUrl,
} from "./api";

type Route = (req: IncomingMessage, res: ServerResponse, body: string) => void;

const servers: Server[] = [];

/** Starts a real HTTP server answering `routes` by "METHOD path"; resolves to its base URL. */
async function serve(routes: Record<string, Route>): Promise<string> {
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk: Buffer) => (body += chunk.toString("utf8")));
    req.on("end", () => {
      const route = routes[`${req.method} ${req.url ?? ""}`];
      if (route) route(req, res, body);
      else
        res
          .writeHead(404, { "content-type": "application/json" })
          .end(JSON.stringify({ code: "not_found", message: `no route for ${req.url}` }));
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return `http://127.0.0.1:${port}`;
}

const json =
  (body: unknown, code = 200, headers: Record<string, string> = {}): Route =>
  (_req, res) => {
    res.writeHead(code, { "content-type": "application/json", ...headers }).end(JSON.stringify(body));
  };

afterEach(async () => {
  await Promise.all(
    servers.splice(0).map(
      (s) =>
        new Promise((r) => {
          s.closeAllConnections();
          s.close(r);
        }),
    ),
  );
});

async function failure(p: Promise<unknown>): Promise<ApiError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ApiError);
    return err as ApiError;
  }
  throw new Error("the request did not fail");
}

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

describe("URLs", () => {
  it("builds query strings, leaving out empty values and encoding the rest", () => {
    expect(queryString({})).toBe("");
    expect(queryString({ status: "active", limit: 10, before: undefined, reason: "", x: null })).toBe("?status=active&limit=10");
    expect(queryString({ start: "2026-01-01T00:00:00+01:00", follow: true })).toBe(
      "?start=2026-01-01T00%3A00%3A00%2B01%3A00&follow=true",
    );
  });
  it("turns the http base into the WebSocket URL", () => {
    expect(wsUrl("http://127.0.0.1:8000", "/ws")).toBe("ws://127.0.0.1:8000/ws");
    expect(wsUrl("https://sutazai.example", "/ws", { tokens: true })).toBe("wss://sutazai.example/ws?tokens=true");
  });
});

describe("Api over real HTTP", () => {
  it("decodes JSON answers and sends query parameters", async () => {
    const base = await serve({ "GET /tasks?status=active&limit=5": json({ tasks: [{ id: "t1" }], total: 1 }) });
    const answer = await new Api(base, fetch).get<{ total: number }>("/tasks", { status: "active", limit: 5 });
    expect(answer.total).toBe(1);
  });

  it("sends bodies as JSON with their method", async () => {
    const seen: string[] = [];
    const echo: Route = (req, res, body) => {
      seen.push(`${req.method} ${req.headers["content-type"] ?? "-"} ${body}`);
      res.writeHead(200, { "content-type": "application/json" }).end(body || "{}");
    };
    const base = await serve({ "POST /tasks": echo, "PUT /alerts/rules/r1": echo, "DELETE /tasks/t1": echo });
    const api = new Api(base, fetch);
    expect(await api.post("/tasks", { name: "x" })).toEqual({ name: "x" });
    await api.put("/alerts/rules/r1", { id: "r1", threshold: 3 });
    await api.del("/tasks/t1");
    expect(seen).toEqual(['POST application/json {"name":"x"}', 'PUT application/json {"id":"r1","threshold":3}', "DELETE - "]);
  });

  it("maps an API error to its message and code", async () => {
    const base = await serve({
      "POST /tasks": json({ code: "invalid_request", message: "name: must not be empty" }, 422),
    });
    const err = await failure(new Api(base, fetch).post("/tasks", { name: "" }));
    expect(err.message).toBe("name: must not be empty");
    expect(err.code).toBe("invalid_request");
    expect(err.status).toBe(422);
  });

  it("keeps Retry-After of a rate-limited send", async () => {
    const base = await serve({
      "POST /messages/send?sender_id=ui": json({ code: "rate_limited", message: "sender ui is over its rate limit" }, 429, {
        "retry-after": "3",
      }),
    });
    const err = await failure(new Api(base, fetch).post("/messages/send", {}, { query: { sender_id: "ui" } }));
    expect([err.code, err.status, err.retryAfter]).toEqual(["rate_limited", 429, 3]);
  });

  it("describes failures that are not API errors", async () => {
    const base = await serve({
      "GET /status": (_req, res) => res.writeHead(502, "Bad Gateway", { "content-type": "text/html" }).end("<h1>proxy</h1>"),
      "GET /agents": (_req, res) => res.writeHead(200, { "content-type": "application/json" }).end("{not json"),
    });
    const api = new Api(base, fetch);
    const gateway = await failure(api.get("/status"));
    expect([gateway.code, gateway.message]).toEqual(["http_502", "GET /status: HTTP 502 Bad Gateway"]);
    const garbled = await failure(api.get("/agents"));
    expect([garbled.code, garbled.message]).toEqual(["bad_answer", "GET /agents: the answer is not JSON"]);
  });

  it("says the API is unreachable when nothing listens", async () => {
    const base = await serve({});
    const closed = servers.pop();
    await new Promise((r) => closed?.close(r));
    const err = await failure(new Api(base, fetch).get("/health"));
    expect(err.code).toBe("unreachable");
    expect(err.message).toMatch(/^GET \/health: the API is not reachable/);
  });

  it("gives up after the timeout, and on the caller's abort", async () => {
    const base = await serve({ "GET /health": () => undefined });
    const api = new Api(base, fetch);
    const slow = await failure(api.request("/health", { timeoutMs: 150 }));
    expect([slow.code, slow.message]).toEqual(["timeout", "GET /health: no answer within 0.15 s"]);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const aborted = await failure(api.get("/health", {}, controller.signal));
    expect(aborted.code).toBe("aborted");
  });
});

describe("withAccessToken", () => {
  it("appends the token to a socket URL, URL-encoded", () => {
    expect(withAccessToken("ws://127.0.0.1:8000/ws", "a.b+c/d=")).toBe("ws://127.0.0.1:8000/ws?access_token=a.b%2Bc%2Fd%3D");
    expect(withAccessToken(wsUrl("https://h", "/ws/agent/coder"), "t k&x")).toBe("wss://h/ws/agent/coder?access_token=t%20k%26x");
  });

  it("keeps the query already there, and a fragment last", () => {
    expect(withAccessToken("ws://h/ws?tokens=true", "abc")).toBe("ws://h/ws?tokens=true&access_token=abc");
    expect(withAccessToken("ws://h/ws?a=1&b=x%20y", "abc")).toBe("ws://h/ws?a=1&b=x%20y&access_token=abc");
    expect(withAccessToken("ws://h/ws?", "abc")).toBe("ws://h/ws?access_token=abc");
    expect(withAccessToken("ws://h/ws?a=1#frag", "abc")).toBe("ws://h/ws?a=1&access_token=abc#frag");
  });

  it("replaces a token already in the URL, and leaves the URL alone without one", () => {
    expect(withAccessToken("ws://h/ws?access_token=old&tokens=true", "new")).toBe("ws://h/ws?tokens=true&access_token=new");
    expect(withAccessToken("ws://h/ws?tokens=true", null)).toBe("ws://h/ws?tokens=true");
    expect(withAccessToken("ws://h/ws", "")).toBe("ws://h/ws");
  });
});

describe("NDJSON", () => {
  it("decodes lines split anywhere across chunks", () => {
    const d = new NdjsonDecoder();
    expect(d.push('{"a":1}\n{"b"')).toEqual([{ a: 1 }]);
    expect(d.push(":2}\n\n")).toEqual([{ b: 2 }]);
    expect(d.push('{"c":3}')).toEqual([]);
    expect(d.end()).toEqual([{ c: 3 }]);
    expect(d.end()).toEqual([]);
  });

  it("refuses a line that is not JSON", () => {
    const d = new NdjsonDecoder();
    expect(() => d.push("oops\n")).toThrowError(/a streamed line is not JSON: oops/);
  });

  it("reads a byte stream, multi-byte characters split between chunks included", async () => {
    const bytes = new TextEncoder().encode('{"line":"héllo ✓"}\n{"line":"two"}\n{"line":"last"}');
    // Cut inside "é" and inside "✓".
    const cuts = [11, 17, 30];
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        let from = 0;
        for (const at of [...cuts, bytes.length]) {
          controller.enqueue(bytes.slice(from, at));
          from = at;
        }
        controller.close();
      },
    });
    const items: unknown[] = [];
    const count = await readNdjson(stream, (item) => items.push(item));
    expect(count).toBe(3);
    expect(items).toEqual([{ line: "héllo ✓" }, { line: "two" }, { line: "last" }]);
  });

  it("streams items over HTTP as they come, and ends with the stream's error line", async () => {
    const base = await serve({
      "POST /infrastructure/images/pull": (_req, res) => {
        res.writeHead(200, { "content-type": "application/x-ndjson" });
        res.write('{"reference":"redis:7","layer":"a1","status":"Downloading","current":5,"total":10}\n');
        setTimeout(() => {
          res.write(
            '{"reference":"redis:7","layer":"a1","status":"Pull complete"}\n{"error":{"code":"pull_failed","message":"manifest unknown"}}\n',
          );
          res.end();
        }, 30);
      },
    });
    const items: unknown[] = [];
    const err = await failure(
      new Api(base, fetch).stream("/infrastructure/images/pull", { method: "POST", body: { image: "redis:7" } }, (i) =>
        items.push(i),
      ),
    );
    expect(items).toHaveLength(2);
    expect([err.code, err.message]).toEqual(["pull_failed", "manifest unknown"]);
  });

  it("stops reading a followed stream when the caller aborts", async () => {
    let ticker: ReturnType<typeof setInterval> | undefined;
    const base = await serve({
      "GET /infrastructure/services/redis/logs?tail=200&follow=true": (_req, res) => {
        res.writeHead(200, { "content-type": "application/x-ndjson" });
        let n = 0;
        ticker = setInterval(() => res.write(`${JSON.stringify({ container: "c", stream: "stdout", line: `l${n++}` })}\n`), 10);
        res.on("close", () => clearInterval(ticker));
      },
    });
    const controller = new AbortController();
    const lines: unknown[] = [];
    const done = new Api(base, fetch).stream(
      "/infrastructure/services/redis/logs",
      { query: { tail: 200, follow: true }, signal: controller.signal },
      (l) => {
        lines.push(l);
        if (lines.length === 3) controller.abort();
      },
    );
    await expect(done).resolves.toBeGreaterThanOrEqual(3);
    clearInterval(ticker);
    expect(lines.length).toBeLessThan(10);
  });
});

describe("tone", () => {
  it("buckets status words", () => {
    expect(tone("Healthy")).toBe("good");
    expect(tone("awaiting_approval")).toBe("warn");
    expect(tone("failed")).toBe("bad");
    expect(tone("absent")).toBe("idle");
    expect(tone(undefined)).toBe("idle");
  });
});
