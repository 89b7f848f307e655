// Tests of the session with the API client over a scripted `fetch`: the bearer sent, one
// refresh shared by concurrent requests that found their token expired, one retry, the
// session ended by any other 401 (or a second one), the refresh ahead of expiry, and which
// session a page starts with (the desktop's injected one, or the one kept in storage).

import { describe, expect, it } from "vitest";
import { Api, ApiError } from "./api";
import {
  INJECTED_KEY,
  REFRESH_MARGIN_MS,
  STORAGE_KEY,
  Session,
  fingerprint,
  injectedTokens,
  parseTokens,
  serializeTokens,
  tokensFromAnswer,
  type StorageLike,
  type TokenAnswer,
  type Tokens,
} from "./session";

const BASE = "http://api.test";

class MemoryStore implements StorageLike {
  readonly map = new Map<string, string>();
  getItem(key: string): string | null {
    return this.map.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    this.map.set(key, value);
  }
  removeItem(key: string): void {
    this.map.delete(key);
  }
}

interface Call {
  method: string;
  path: string;
  auth: string | null;
  body: unknown;
}

function jsonResponse(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve: (value: T) => void = () => undefined;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/**
 * A scripted server: `handle` answers each call (after `gate`, when set, resolves for
 * refreshes), every call is recorded.
 */
function fakeFetch(handle: (call: Call) => Response | Promise<Response>) {
  const calls: Call[] = [];
  const fetchFn = async (input: string, init?: RequestInit): Promise<Response> => {
    const url = new URL(input);
    const headers = (init?.headers ?? {}) as Record<string, string>;
    const call: Call = {
      method: init?.method ?? "GET",
      path: `${url.pathname}${url.search}`,
      auth: headers.Authorization ?? null,
      body: typeof init?.body === "string" ? JSON.parse(init.body) : undefined,
    };
    calls.push(call);
    return handle(call);
  };
  return { calls, fetchFn };
}

function answer(n: number, expiresIn = 3600): TokenAnswer {
  return {
    access_token: `access-${n}`,
    refresh_token: `refresh-${n}`,
    token_type: "Bearer",
    expires_in: expiresIn,
    refresh_expires_in: 604800,
    role: "operator",
    subject: "key:ci",
  };
}

const expired = () => jsonResponse(401, { code: "token_expired", message: "the access token expired" });

/** A session holding access-1/refresh-1 and a client using it, refreshing through that client. */
function setup(handle: (call: Call) => Response | Promise<Response>, now = () => 1_000_000) {
  const store = new MemoryStore();
  const { calls, fetchFn } = fakeFetch(handle);
  const session = new Session({ store, now, initial: tokensFromAnswer(answer(1), now()) });
  const api = new Api(BASE, fetchFn, session);
  session.setRefresher((token) => api.post<TokenAnswer>("/auth/refresh", { refresh_token: token }, { bearer: false }));
  const ended: (ApiError | null)[] = [];
  session.subscribe((tokens, reason) => {
    if (tokens === null) ended.push(reason);
  });
  return { store, calls, api, session, ended };
}

describe("the bearer", () => {
  it("is sent with every request, and not where the caller says so", async () => {
    const { calls, api } = setup(() => jsonResponse(200, { ok: true }));
    await api.get("/tasks");
    await api.post("/auth/token", { api_key: "szk_x" }, { bearer: false });
    expect(calls.map((c) => [c.path, c.auth])).toEqual([
      ["/tasks", "Bearer access-1"],
      ["/auth/token", null],
    ]);
  });

  it("is left out without a session", async () => {
    const { calls, fetchFn } = fakeFetch(() => jsonResponse(200, {}));
    await new Api(BASE, fetchFn, new Session()).get("/health");
    expect(calls[0]?.auth).toBeNull();
  });
});

describe("refresh on token_expired", () => {
  it("refreshes once for concurrent requests and tries each again with the new token", async () => {
    const gate = deferred<void>();
    const { calls, api, session, ended, store } = setup(async (call) => {
      if (call.path === "/auth/refresh") {
        await gate.promise;
        return jsonResponse(200, answer(2));
      }
      if (call.auth === "Bearer access-1") return expired();
      return jsonResponse(200, { path: call.path });
    });
    const all = Promise.all([api.get("/a"), api.get("/b"), api.post("/c", { x: 1 })]);
    // Let all three fail and meet at the refresh before it answers.
    await new Promise((r) => setTimeout(r, 10));
    gate.resolve();
    expect(await all).toEqual([{ path: "/a" }, { path: "/b" }, { path: "/c" }]);
    const refreshes = calls.filter((c) => c.path === "/auth/refresh");
    expect(refreshes).toHaveLength(1);
    expect(refreshes[0]?.body).toEqual({ refresh_token: "refresh-1" });
    expect(refreshes[0]?.auth).toBeNull();
    const retried = calls.filter((c) => c.auth === "Bearer access-2").map((c) => c.path);
    expect(retried.sort()).toEqual(["/a", "/b", "/c"]);
    expect(calls.find((c) => c.path === "/c" && c.auth === "Bearer access-2")?.body).toEqual({ x: 1 });
    expect(session.accessToken()).toBe("access-2");
    expect(parseTokens(store.getItem(STORAGE_KEY))?.refreshToken).toBe("refresh-2");
    expect(ended).toEqual([]);
  });

  it("retries once only: a second 401 ends the session", async () => {
    const { calls, api, session, ended, store } = setup((call) =>
      call.path === "/auth/refresh" ? jsonResponse(200, answer(2)) : expired(),
    );
    const err = await api.get("/tasks").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).code).toBe("token_expired");
    expect(calls.map((c) => `${c.path} ${c.auth ?? "-"}`)).toEqual([
      "/tasks Bearer access-1",
      "/auth/refresh -",
      "/tasks Bearer access-2",
    ]);
    expect(session.tokens).toBeNull();
    expect(store.getItem(STORAGE_KEY)).toBeNull();
    expect(ended.map((e) => e?.code)).toEqual(["token_expired"]);
  });

  it("ends the session when the refresh is refused", async () => {
    const revoked = { code: "token_revoked", message: "the refresh token was revoked" };
    const { api, session, ended } = setup((call) => (call.path === "/auth/refresh" ? jsonResponse(401, revoked) : expired()));
    const err = (await api.get("/tasks").catch((e: unknown) => e)) as ApiError;
    expect(err.code).toBe("token_expired");
    expect(session.tokens).toBeNull();
    expect(ended.map((e) => e?.message)).toEqual(["the refresh token was revoked"]);
  });

  it("keeps the session when the refresh could not reach the server", async () => {
    const { api, session, ended } = setup((call) => {
      if (call.path === "/auth/refresh") throw new TypeError("connection refused");
      return expired();
    });
    const err = (await api.get("/tasks").catch((e: unknown) => e)) as ApiError;
    expect(err.code).toBe("token_expired");
    expect(session.accessToken()).toBe("access-1");
    expect(ended).toEqual([]);
  });
});

describe("other 401s", () => {
  it.each(["invalid_token", "token_revoked", "unauthorized"])("%s ends the session without a refresh", async (code) => {
    const { calls, api, session, ended } = setup(() => jsonResponse(401, { code, message: `refused: ${code}` }));
    const err = (await api.get("/agents").catch((e: unknown) => e)) as ApiError;
    expect([err.code, err.status]).toEqual([code, 401]);
    expect(calls).toHaveLength(1);
    expect(session.tokens).toBeNull();
    expect(ended.map((e) => e?.code)).toEqual([code]);
  });

  it("a 403 is only an error: the session stays", async () => {
    const { api, session, ended } = setup(() =>
      jsonResponse(403, { code: "forbidden", message: "this needs the admin role; you are operator" }),
    );
    const err = (await api.put("/settings", {}).catch((e: unknown) => e)) as ApiError;
    expect([err.code, err.message]).toEqual(["forbidden", "this needs the admin role; you are operator"]);
    expect(session.accessToken()).toBe("access-1");
    expect(ended).toEqual([]);
  });

  it("with no session held, tells the listeners so the sign-in screen shows", async () => {
    const { calls, fetchFn } = fakeFetch(() => jsonResponse(401, { code: "unauthorized", message: "sign in first" }));
    const session = new Session();
    const ended: (string | undefined)[] = [];
    session.subscribe((tokens, reason) => tokens === null && ended.push(reason?.code));
    await new Api(BASE, fetchFn, session).get("/auth/whoami").catch(() => undefined);
    expect(calls).toHaveLength(1);
    expect(ended).toEqual(["unauthorized"]);
  });

  it("a refusal of an old token does not end a newer session: the request goes again", async () => {
    const gate = deferred<void>();
    const { calls, api, session, ended } = setup(async (call) => {
      if (call.auth === "Bearer access-1") {
        await gate.promise;
        return jsonResponse(401, { code: "token_revoked", message: "revoked" });
      }
      return jsonResponse(200, { ok: true });
    });
    const pending = api.get("/tasks");
    await new Promise((r) => setTimeout(r, 5));
    session.signIn(answer(7));
    gate.resolve();
    expect(await pending).toEqual({ ok: true });
    expect(calls.map((c) => c.auth)).toEqual(["Bearer access-1", "Bearer access-7"]);
    expect(ended).toEqual([]);
  });

  it("with `recover: false` the 401 comes back as it is (signing out)", async () => {
    const { api, session, calls } = setup(() => expired());
    await api.post("/auth/revoke", {}, { recover: false }).catch(() => undefined);
    expect(calls).toHaveLength(1);
    expect(session.accessToken()).toBe("access-1");
  });
});

describe("refresh ahead of expiry", () => {
  it("refreshes before sending when less than a minute is left", async () => {
    let now = 1_000_000;
    const { calls, api, session } = setup(
      (call) => (call.path === "/auth/refresh" ? jsonResponse(200, answer(2)) : jsonResponse(200, {})),
      () => now,
    );
    await api.get("/a");
    // A minute and a millisecond left: not yet.
    now += 3600 * 1000 - REFRESH_MARGIN_MS - 1;
    await api.get("/b");
    now += 2;
    await Promise.all([api.get("/c"), api.get("/d")]);
    expect(calls.map((c) => `${c.path} ${c.auth ?? "-"}`)).toEqual([
      "/a Bearer access-1",
      "/b Bearer access-1",
      "/auth/refresh -",
      "/c Bearer access-2",
      "/d Bearer access-2",
    ]);
    expect(session.tokens?.expiresAt).toBe(now + 3600 * 1000);
  });

  it("keeps role and subject when the refresh answer leaves them out", async () => {
    const { session } = setup(() => jsonResponse(200, { access_token: "a2", refresh_token: "r2", expires_in: 60 }));
    expect(await session.refresh()).toBe(true);
    expect(session.tokens).toMatchObject({ accessToken: "a2", refreshToken: "r2", role: "operator", subject: "key:ci" });
  });
});

describe("where a session starts", () => {
  const injected = { access_token: "desk-a", refresh_token: "desk-r", expires_in: 900 };

  it("reads the desktop's injected session, checking its shape", () => {
    expect(injectedTokens(injected, 1000)).toEqual({
      accessToken: "desk-a",
      refreshToken: "desk-r",
      expiresAt: 1000 + 900_000,
      role: null,
      subject: null,
    });
    expect(injectedTokens({ access_token: "" }, 0)).toBeNull();
    expect(injectedTokens("desk-a", 0)).toBeNull();
    expect(injectedTokens(undefined, 0)).toBeNull();
    expect(injectedTokens({ access_token: "a" }, 0)).toMatchObject({ refreshToken: null, expiresAt: null });
  });

  it("takes up the injected session once; a reload keeps the stored one", () => {
    const store = new MemoryStore();
    const first = Session.restore(store, injected, { now: () => 0 });
    expect(first.accessToken()).toBe("desk-a");
    expect(store.getItem(INJECTED_KEY)).toBe(fingerprint("desk-a"));
    // Refreshed since: the stored session is the newer one.
    first.signIn(answer(3));
    expect(Session.restore(store, injected).accessToken()).toBe("access-3");
    // Signed out: the same injection does not sign in again.
    first.end();
    expect(Session.restore(store, injected).tokens).toBeNull();
    // A new injection is taken up.
    expect(Session.restore(store, { ...injected, access_token: "desk-b" }).accessToken()).toBe("desk-b");
  });

  it("keeps its tokens under sutazai. keys only", () => {
    const store = new MemoryStore();
    Session.restore(store, injected);
    expect([...store.map.keys()].every((k) => k.startsWith("sutazai."))).toBe(true);
  });

  it("reads stored tokens back, and nothing from garbage", () => {
    const tokens: Tokens = { accessToken: "a", refreshToken: "r", expiresAt: 5, role: "viewer", subject: "key:x" };
    expect(parseTokens(serializeTokens(tokens))).toEqual(tokens);
    expect(parseTokens("{not json")).toBeNull();
    expect(parseTokens('{"accessToken":""}')).toBeNull();
    expect(parseTokens(null)).toBeNull();
    expect(parseTokens('{"accessToken":"a","role":"root"}')).toMatchObject({ role: null, refreshToken: null });
  });

  it("lives in memory when storage refuses", () => {
    const refusing: StorageLike = {
      getItem: () => {
        throw new Error("denied");
      },
      setItem: () => {
        throw new Error("denied");
      },
      removeItem: () => {
        throw new Error("denied");
      },
    };
    const session = Session.restore(refusing, injected);
    expect(session.accessToken()).toBe("desk-a");
    session.end();
    expect(session.tokens).toBeNull();
  });
});
