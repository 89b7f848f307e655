// State the whole page shares: the API client and its session, where the page stands with
// the server's authentication (who is signed in, with which role), the one `/ws` socket
// and who listens to it, the socket's state, the last system status, and the toasts
// (alerts, and notes about what the page just did).

import { computed, signal } from "@preact/signals";
import { accessFromWhoami, roleOf, type AccessState, type WhoAmI } from "../access";
import { Api, ApiError, withAccessToken, wsUrl, type Query } from "../api";
import { toastFor, type Toast } from "../live";
import { Session, type StorageLike, type TokenAnswer, type Tokens } from "../session";
import type { WsMessage } from "../types";
import { EventSocket, type EventSocketOptions, type SocketState } from "../ws";

type Listener = (message: WsMessage) => void;

const listeners = new Set<Listener>();
let client: Api | null = null;
let session: Session | null = null;
let socket: EventSocket | null = null;
let whoamiTimer: ReturnType<typeof setTimeout> | undefined;
let whoamiFailures = 0;

/** The page waits for `/auth/whoami` before it shows anything: not for long. */
const WHOAMI_TIMEOUT_MS = 5000;

/** Where the page stands with authentication; the shell shows the sign-in screen on `signed-out`. */
export const access = signal<AccessState>({ phase: "checking" });
/** The role controls are gated by: null when auth is off or unknown (the server decides). */
export const currentRole = computed(() => roleOf(access.value));

/** The `/ws` connection's state, for the header. */
export const socketState = signal<SocketState>("connecting");
/** The last `system_status` message's data. */
export const systemStatus = signal<Record<string, unknown> | null>(null);
/** Toasts showing now, newest last. */
export const toasts = signal<Toast[]>([]);

const TOAST_MS = 10_000;
const MAX_TOASTS = 4;
const seenAlerts = new Set<string>();
let toastSequence = 0;

export function dismissToast(key: string): void {
  toasts.value = toasts.value.filter((t) => t.key !== key);
}

function show(toast: Toast): void {
  toasts.value = [...toasts.value, toast].slice(-MAX_TOASTS);
  setTimeout(() => dismissToast(toast.key), TOAST_MS);
}

/** Says in a toast that something the page asked for is done ("Agent x saved"). */
export function notify(message: string): void {
  toastSequence += 1;
  show({ key: `note-${toastSequence}`, severity: "info", message, status: "", alertId: null, notice: true });
}

function onMessage(message: WsMessage): void {
  if (message.type === "system_status" && typeof message.data === "object" && message.data !== null) {
    systemStatus.value = message.data as Record<string, unknown>;
  }
  if (message.type === "alert") {
    toastSequence += 1;
    const toast = toastFor(message, seenAlerts, toastSequence);
    if (toast) show(toast);
  }
  for (const listener of listeners) {
    try {
      listener(message);
    } catch (err) {
      console.error("a /ws listener failed", err);
    }
  }
}

export interface StartOptions {
  /** Where the session is kept (`sessionStorage`). */
  store?: StorageLike | null;
  /** `window.SUTAZAI_AUTH`, the session the desktop window injected. */
  injected?: unknown;
}

/** Sets up the session and the client, asks `/auth/whoami`, and opens `/ws` (once). */
export function startApp(base: string, fetchFn: typeof fetch, options: StartOptions = {}): Api {
  const s = Session.restore(options.store ?? null, options.injected);
  const c = new Api(base, fetchFn, s);
  s.setRefresher((refreshToken) => c.post<TokenAnswer>("/auth/refresh", { refresh_token: refreshToken }, { bearer: false }));
  s.subscribe(onSession);
  session = s;
  client = c;
  socket?.stop();
  socket = openSocket("/ws", {}, {
    onMessage,
    onState: (state) => {
      socketState.value = state;
    },
  });
  void checkAccess();
  return c;
}

/** The session changed: a refusal ended it (sign-in screen), or new tokens came. */
function onSession(tokens: Tokens | null, ended: ApiError | null): void {
  if (tokens === null) {
    const old = access.value;
    // A server without authentication refuses nothing; a 401 means it is on after all.
    const reason = ended && ended.code !== "unauthorized" ? ended.message : null;
    setAccess({ phase: "signed-out", reason: old.phase === "signed-out" ? (old.reason ?? reason) : reason });
    return;
  }
  const old = access.value;
  if (old.phase === "signed-in" && tokens.role !== null && tokens.role !== old.who.role) {
    setAccess({ phase: "signed-in", who: { ...old.who, role: tokens.role } });
  }
}

/**
 * Sets where the page stands. `/ws` is closed while signed out (it would be refused) and
 * opened again, at once, when that ends.
 */
function setAccess(next: AccessState): void {
  access.value = next;
  if (socket === null) return;
  if (next.phase === "signed-out") {
    if (socket.running) socket.stop();
  } else if (!socket.running) socket.start();
}

/** Asks `/auth/whoami` where the page stands; asks again later while the API does not answer. */
export async function checkAccess(): Promise<AccessState> {
  clearTimeout(whoamiTimer);
  let next: AccessState;
  try {
    next = accessFromWhoami(await api().request<WhoAmI>("/auth/whoami", { timeoutMs: WHOAMI_TIMEOUT_MS }));
  } catch (err) {
    next = accessFromWhoami(err instanceof ApiError ? err : new ApiError("client_error", String(err)));
  }
  if (next.phase === "signed-out") {
    const old = access.value;
    if (old.phase === "signed-out") next = { phase: "signed-out", reason: next.reason ?? old.reason };
  }
  setAccess(next);
  if (next.phase === "unknown") {
    whoamiFailures += 1;
    whoamiTimer = setTimeout(() => void checkAccess(), Math.min(30_000, 2000 * 2 ** Math.min(whoamiFailures, 4)));
  } else whoamiFailures = 0;
  return next;
}

/**
 * Signs in with an API key (`POST /auth/token`). Resolves once signed in; throws the API's
 * refusal (`invalid_credentials`; `auth_disabled` also asks `/auth/whoami` again).
 */
export async function signIn(apiKey: string): Promise<void> {
  let answer: TokenAnswer;
  try {
    answer = await api().post<TokenAnswer>("/auth/token", { api_key: apiKey.trim() }, { bearer: false });
  } catch (err) {
    if (err instanceof ApiError && err.code === "auth_disabled") void checkAccess();
    throw err;
  }
  const tokens = theSession().signIn(answer);
  const expiresAt = tokens.expiresAt === null ? null : new Date(tokens.expiresAt).toISOString();
  if (tokens.role !== null && tokens.subject !== null) {
    setAccess({
      phase: "signed-in",
      who: { auth_enabled: true, subject: tokens.subject, role: tokens.role, via: "jwt", expires_at: expiresAt },
    });
  } else {
    await checkAccess();
  }
}

/**
 * Signs out: revokes the access token and the refresh token (`POST /auth/revoke`), then
 * forgets both whatever the server said, and shows the sign-in screen.
 */
export async function signOut(): Promise<void> {
  const s = theSession();
  try {
    // A token about to expire is refreshed first, so the refresh token revoked is the live one.
    await s.bearer();
    const refreshToken = s.tokens?.refreshToken;
    if (s.accessToken() !== null) {
      await api().post("/auth/revoke", refreshToken ? { token: refreshToken } : {}, { recover: false });
    }
  } catch (err) {
    console.warn("revoking the session failed; it is forgotten here all the same", err);
  } finally {
    s.end(null);
    setAccess({ phase: "signed-out", reason: null });
  }
}

function theSession(): Session {
  if (session === null) throw new Error("startApp has not run");
  return session;
}

/**
 * A `/ws` socket to `path` (`/ws`, `/ws/agent/{id}`), carrying the session's access
 * token in its URL (refreshed first when about to expire), started.
 */
export function openSocket(path: string, query: Query, options: Omit<EventSocketOptions, "prepare">): EventSocket {
  const c = api();
  const s = session;
  return new EventSocket(() => withAccessToken(wsUrl(c.base, path, query), s?.accessToken()), {
    ...options,
    prepare: s ? () => s.bearer() : undefined,
  }).start();
}

/** The API client; `startApp` must have run. */
export function api(): Api {
  if (client === null) throw new Error("startApp has not run");
  return client;
}

/** Listens to every `/ws` message until the returned function is called. */
export function listen(listener: Listener): () => void {
  listeners.add(listener);
  return () => {
    listeners.delete(listener);
  };
}

/** `sessionStorage` (where the session lives), or null where the page may not use it. */
export function sessionStore(): Storage | null {
  try {
    return window.sessionStorage;
  } catch {
    return null;
  }
}

/** `localStorage`, or null where the page may not use it (the welcome flow's flag lives there). */
export function localStore(): Storage | null {
  try {
    return window.localStorage;
  } catch {
    return null;
  }
}
