// The API client: where the API lives, how to ask it, and how its failures reach the
// page. Every error the API sends is `{code, message}` (ARCHITECTURE.md); the client turns
// it into an `ApiError` whose `message` is the API's own words, so views show exactly
// what the server said. Free of the DOM so it is tested against a real HTTP server.

/** Where `sutazai serve` listens unless told otherwise (the spec's base URL). */
export const DEFAULT_API = "http://127.0.0.1:8000";

/** How long an ordinary request may take before it counts as unanswered. */
export const REQUEST_TIMEOUT_MS = 15_000;

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

/** The WebSocket URL of `path` under an http(s) base. */
export function wsUrl(base: string, path: string, query: Query = {}): string {
  const url = base.replace(/^http:/i, "ws:").replace(/^https:/i, "wss:");
  return `${url}${path}${queryString(query)}`;
}

/**
 * `url` carrying `access_token=<token>` in its query: a browser cannot send headers with
 * a WebSocket, so `/ws` and `/ws/agent/{id}` take the token there. The query already in
 * the URL is kept as it is (an `access_token` in it is replaced), a fragment stays last;
 * with no token the URL is returned unchanged.
 */
export function withAccessToken(url: string, token: string | null | undefined): string {
  if (token === null || token === undefined || token === "") return url;
  const hashAt = url.indexOf("#");
  const fragment = hashAt >= 0 ? url.slice(hashAt) : "";
  const beforeHash = hashAt >= 0 ? url.slice(0, hashAt) : url;
  const queryAt = beforeHash.indexOf("?");
  const path = queryAt >= 0 ? beforeHash.slice(0, queryAt) : beforeHash;
  const kept = (queryAt >= 0 ? beforeHash.slice(queryAt + 1) : "")
    .split("&")
    .filter((part) => part !== "" && part.split("=", 1)[0] !== "access_token");
  kept.push(`access_token=${encodeURIComponent(token)}`);
  return `${path}?${kept.join("&")}${fragment}`;
}

/** Query parameters; `undefined`, `null` and `""` are left out. */
export type Query = Record<string, string | number | boolean | null | undefined>;

/** `?a=1&b=x` (or "" when nothing is left), values URL-encoded. */
export function queryString(query: Query): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === "") continue;
    parts.push(`${encodeURIComponent(key)}=${encodeURIComponent(String(value))}`);
  }
  return parts.length === 0 ? "" : `?${parts.join("&")}`;
}

/**
 * A failed request. `message` is what the page shows: the API's `message` when it sent
 * `{code, message}`, otherwise a description of what went wrong on the way. `code` is the
 * API's stable code, or one of this client's: `unreachable`, `timeout`, `http_<status>`,
 * `bad_answer`, `aborted`.
 */
export class ApiError extends Error {
  readonly code: string;
  /** HTTP status; 0 when no answer came. */
  readonly status: number;
  /** Seconds the API asked to wait (`Retry-After`), when it said. */
  readonly retryAfter: number | null;

  constructor(code: string, message: string, status = 0, retryAfter: number | null = null) {
    super(message);
    this.name = "ApiError";
    this.code = code;
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The `{code, message}` of an error body, if that is what it is. */
export function errorBody(body: unknown): { code: string; message: string } | null {
  if (isRecord(body) && typeof body.code === "string" && typeof body.message === "string") {
    return { code: body.code, message: body.message };
  }
  // NDJSON streams end with `{"error": {code, message}}` on failure.
  if (isRecord(body) && isRecord(body.error)) return errorBody(body.error);
  return null;
}

/** Turns a non-2xx response into an ApiError carrying the API's message. */
export async function errorFromResponse(response: Response, what: string): Promise<ApiError> {
  const retry = Number.parseInt(response.headers.get("retry-after") ?? "", 10);
  const retryAfter = Number.isFinite(retry) ? retry : null;
  let text = "";
  try {
    text = await response.text();
  } catch {
    // The body could not be read: the status is all there is.
  }
  try {
    const body = errorBody(JSON.parse(text));
    if (body) return new ApiError(body.code, body.message, response.status, retryAfter);
  } catch {
    // Not JSON: fall through.
  }
  const reason = response.statusText ? ` ${response.statusText}` : "";
  return new ApiError(`http_${response.status}`, `${what}: HTTP ${response.status}${reason}`, response.status, retryAfter);
}

/**
 * Incremental NDJSON decoder: feed it text as it arrives, get back each complete JSON
 * line. Blank lines are skipped; a line that is not JSON throws (the stream is broken).
 */
export class NdjsonDecoder {
  private rest = "";

  push(text: string): unknown[] {
    this.rest += text;
    const lines = this.rest.split("\n");
    this.rest = lines.pop() ?? "";
    return lines.flatMap((line) => this.parse(line));
  }

  /** Whatever is left once the stream ended (a last line without its newline). */
  end(): unknown[] {
    const line = this.rest;
    this.rest = "";
    return this.parse(line);
  }

  private parse(line: string): unknown[] {
    const trimmed = line.trim();
    if (trimmed === "") return [];
    try {
      return [JSON.parse(trimmed)];
    } catch {
      throw new ApiError("bad_answer", `a streamed line is not JSON: ${trimmed.slice(0, 80)}`);
    }
  }
}

/**
 * Reads an NDJSON body to its end, calling `onItem` for each line as it arrives. Returns
 * how many items came. Stops early (without error) when `signal` aborts.
 */
export async function readNdjson(
  body: ReadableStream<Uint8Array>,
  onItem: (item: unknown) => void,
  signal?: AbortSignal,
): Promise<number> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const lines = new NdjsonDecoder();
  let count = 0;
  const abort = (): void => {
    void reader.cancel().catch(() => undefined);
  };
  signal?.addEventListener("abort", abort, { once: true });
  try {
    for (;;) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (err) {
        if (signal?.aborted) return count;
        throw new ApiError("unreachable", `the stream broke off: ${describe(err)}`);
      }
      if (chunk.done) break;
      for (const item of lines.push(decoder.decode(chunk.value, { stream: true }))) {
        count += 1;
        onItem(item);
      }
      if (signal?.aborted) return count;
    }
    for (const item of lines.push(decoder.decode())) {
      count += 1;
      onItem(item);
    }
    for (const item of lines.end()) {
      count += 1;
      onItem(item);
    }
    return count;
  } finally {
    signal?.removeEventListener("abort", abort);
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * What the client asks of whoever holds the session (session.ts): the bearer to send, and
 * what to do about a 401.
 */
export interface Auth {
  /** The access token to send now (refreshed first when it is about to expire), or null. */
  bearer(): Promise<string | null>;
  /**
   * A request sent with `used` (null: none) was answered 401 with `error`, on try
   * `attempt` (0 for the first). True asks for one more try with whatever `bearer()`
   * then gives; false lets the error through.
   */
  recover(error: ApiError, used: string | null, attempt: number): Promise<boolean>;
}

export interface RequestOptions {
  method?: "GET" | "POST" | "PUT" | "DELETE";
  query?: Query;
  /** Sent as JSON. */
  body?: unknown;
  /** 0 waits for as long as it takes (deploy-all). */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** false: no `Authorization` header and no 401 handling (signing in, refreshing). */
  bearer?: boolean;
  /** false: the bearer is sent, but a 401 comes back as it is (signing out). */
  recover?: boolean;
}

/** The API at one base URL. */
export class Api {
  readonly base: string;
  private readonly fetchFn: Fetch;

  private readonly auth: Auth | null;

  constructor(base: string, fetchFn: Fetch, auth: Auth | null = null) {
    this.base = base;
    this.fetchFn = fetchFn;
    this.auth = auth;
  }

  url(path: string, query: Query = {}): string {
    return `${this.base}${path}${queryString(query)}`;
  }

  /**
   * Sends a request and returns the response once its headers arrived and it is 2xx. With
   * a session, the request carries its bearer; a 401 goes to the session, which may ask
   * for one more try (after refreshing an expired token).
   */
  async send(path: string, options: RequestOptions = {}): Promise<Response> {
    const what = `${options.method ?? "GET"} ${path}`;
    const auth = options.bearer === false ? null : this.auth;
    for (let attempt = 0; ; attempt += 1) {
      const token = auth ? await auth.bearer() : null;
      const response = await this.sendOnce(path, options, token);
      if (response.ok) return response;
      const error = await errorFromResponse(response, what);
      if (auth && response.status === 401 && options.recover !== false && (await auth.recover(error, token, attempt))) {
        continue;
      }
      throw error;
    }
  }

  /** One try: the response whatever its status, or an ApiError when none came. */
  private async sendOnce(path: string, options: RequestOptions, token: string | null): Promise<Response> {
    const method = options.method ?? "GET";
    const what = `${method} ${path}`;
    const controller = new AbortController();
    const timeoutMs = options.timeoutMs ?? REQUEST_TIMEOUT_MS;
    let timedOut = false;
    const timer =
      timeoutMs > 0
        ? setTimeout(() => {
            timedOut = true;
            controller.abort();
          }, timeoutMs)
        : undefined;
    const outer = options.signal;
    const forward = (): void => controller.abort();
    if (outer?.aborted) controller.abort();
    outer?.addEventListener("abort", forward, { once: true });
    const headers: Record<string, string> = { Accept: "application/json" };
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    if (token !== null) headers.Authorization = `Bearer ${token}`;
    try {
      return await this.fetchFn(this.url(path, options.query), {
        method,
        headers,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        signal: controller.signal,
      });
    } catch (err) {
      if (timedOut) throw new ApiError("timeout", `${what}: no answer within ${timeoutMs / 1000} s`);
      if (outer?.aborted) throw new ApiError("aborted", `${what}: cancelled`);
      throw new ApiError("unreachable", `${what}: the API is not reachable (${describe(err)})`);
    } finally {
      clearTimeout(timer);
      outer?.removeEventListener("abort", forward);
    }
  }

  /** A JSON request; resolves to the decoded answer. */
  async request<T>(path: string, options: RequestOptions = {}): Promise<T> {
    const response = await this.send(path, options);
    const text = await response.text();
    if (text.trim() === "") return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ApiError("bad_answer", `${options.method ?? "GET"} ${path}: the answer is not JSON`, response.status);
    }
  }

  get<T>(path: string, query: Query = {}, signal?: AbortSignal): Promise<T> {
    return this.request<T>(path, { query, signal });
  }

  post<T>(path: string, body?: unknown, options: Omit<RequestOptions, "method" | "body"> = {}): Promise<T> {
    return this.request<T>(path, { ...options, method: "POST", body });
  }

  put<T>(path: string, body: unknown, options: Omit<RequestOptions, "method" | "body"> = {}): Promise<T> {
    return this.request<T>(path, { ...options, method: "PUT", body });
  }

  del<T>(path: string, options: Omit<RequestOptions, "method" | "body"> = {}): Promise<T> {
    return this.request<T>(path, { ...options, method: "DELETE" });
  }

  /**
   * An NDJSON stream (image pulls, followed logs, streamed stats): calls `onItem` per
   * line until the server ends it or `signal` aborts. A `{"error": {code, message}}`
   * line ends the stream with that error.
   */
  async stream(path: string, options: RequestOptions, onItem: (item: unknown) => void): Promise<number> {
    const response = await this.send(path, { ...options, timeoutMs: options.timeoutMs ?? 0 });
    if (response.body === null) throw new ApiError("bad_answer", `${path}: the answer has no body`);
    let failure: ApiError | null = null;
    const count = await readNdjson(
      response.body,
      (item) => {
        const error = isRecord(item) && "error" in item ? errorBody(item) : null;
        if (error) failure = new ApiError(error.code, error.message, response.status);
        else onItem(item);
      },
      options.signal,
    );
    if (failure) throw failure;
    return count;
  }
}

/** Buckets a status word into the colours the views use. */
export function tone(status: string | null | undefined): "good" | "warn" | "bad" | "idle" {
  const s = (status ?? "").toLowerCase();
  if (
    ["healthy", "ok", "up", "running", "completed", "delivered", "done", "sent", "true", "alive", "available", "ready"].includes(
      s,
    )
  )
    return "good";
  if (
    [
      "degraded",
      "warning",
      "partial",
      "starting",
      "queued",
      "awaiting_approval",
      "pending",
      "retrying",
      "restarting",
      "silent",
      "paused",
    ].includes(s)
  )
    return "warn";
  if (
    ["", "unknown", "none", "absent", "stopped", "cancelled", "resolved", "info", "exited", "created", "acknowledged"].includes(s)
  )
    return "idle";
  return "bad";
}
