// The signed-in session: the access and refresh tokens `POST /auth/token` gave, kept in
// `sessionStorage` (so they end with the window) under `sutazai.session`. It is the API
// client's `Auth`: it hands out the bearer, refreshes it shortly before it expires, and
// decides what a 401 means: `token_expired` is refreshed once (one refresh shared by
// every request that ran into it) and the request tried again; any other 401, or a second
// one, ends the session, and whoever listens shows the sign-in screen.
// Free of the DOM: storage, clock and the refresh call are passed in.

import { ApiError, type Auth } from "./api";
import { isRole, type Role } from "./access";

export const STORAGE_KEY = "sutazai.session";
/** A fingerprint of the last session the desktop window injected and this page took up. */
export const INJECTED_KEY = "sutazai.session.injected";
/** A token with less than this left is refreshed before it is sent. */
export const REFRESH_MARGIN_MS = 60_000;

/** `POST /auth/token` and `POST /auth/refresh`. */
export interface TokenAnswer {
  access_token: string;
  refresh_token: string;
  token_type?: string;
  /** Seconds. */
  expires_in: number;
  refresh_expires_in?: number;
  role?: Role;
  subject?: string;
}

export interface Tokens {
  accessToken: string;
  refreshToken: string | null;
  /** When the access token expires (ms since the epoch), null when unknown. */
  expiresAt: number | null;
  role: Role | null;
  subject: string | null;
}

/** The part of `Storage` used here. */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function expiry(expiresIn: unknown, now: number): number | null {
  return typeof expiresIn === "number" && Number.isFinite(expiresIn) && expiresIn > 0 ? now + expiresIn * 1000 : null;
}

/** The tokens of a `/auth/token` or `/auth/refresh` answer received at `now`. */
export function tokensFromAnswer(answer: TokenAnswer, now: number): Tokens {
  return {
    accessToken: answer.access_token,
    refreshToken: typeof answer.refresh_token === "string" && answer.refresh_token !== "" ? answer.refresh_token : null,
    expiresAt: expiry(answer.expires_in, now),
    role: isRole(answer.role) ? answer.role : null,
    subject: typeof answer.subject === "string" ? answer.subject : null,
  };
}

/**
 * The session the desktop window injected (`window.SUTAZAI_AUTH = {access_token,
 * refresh_token, expires_in}`), or null when there is none or it is malformed.
 */
export function injectedTokens(value: unknown, now: number): Tokens | null {
  if (!isRecord(value) || typeof value.access_token !== "string" || value.access_token === "") return null;
  return {
    accessToken: value.access_token,
    refreshToken: typeof value.refresh_token === "string" && value.refresh_token !== "" ? value.refresh_token : null,
    expiresAt: expiry(value.expires_in, now),
    role: null,
    subject: null,
  };
}

/** Stored tokens (`serializeTokens`' text), or null when absent or unreadable. */
export function parseTokens(text: string | null): Tokens | null {
  if (text === null) return null;
  try {
    const value: unknown = JSON.parse(text);
    if (!isRecord(value) || typeof value.accessToken !== "string" || value.accessToken === "") return null;
    return {
      accessToken: value.accessToken,
      refreshToken: typeof value.refreshToken === "string" ? value.refreshToken : null,
      expiresAt: typeof value.expiresAt === "number" ? value.expiresAt : null,
      role: isRole(value.role) ? value.role : null,
      subject: typeof value.subject === "string" ? value.subject : null,
    };
  } catch {
    return null;
  }
}

export function serializeTokens(tokens: Tokens): string {
  return JSON.stringify(tokens);
}

/** A short, stable fingerprint of a token (FNV-1a), so the token itself need not be kept twice. */
export function fingerprint(text: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return `${text.length}:${hash.toString(16)}`;
}

/** Asks the server for new tokens (`POST /auth/refresh`). */
export type Refresher = (refreshToken: string) => Promise<TokenAnswer>;

/** Told when the session changes: new tokens, or null with why it ended (null: signed out). */
export type SessionListener = (tokens: Tokens | null, ended: ApiError | null) => void;

export interface SessionOptions {
  store?: StorageLike | null;
  now?: () => number;
  refresh?: Refresher;
  /** The tokens to start with (see `Session.restore`). */
  initial?: Tokens | null;
}

/** Answers to a refresh that mean the refresh token is no good (rather than "try later"). */
function refused(err: unknown): err is ApiError {
  return err instanceof ApiError && (err.status === 400 || err.status === 401 || err.status === 403);
}

export class Session implements Auth {
  private current: Tokens | null;
  private refreshing: Promise<boolean> | null = null;
  private refresher: Refresher | null;
  private readonly store: StorageLike | null;
  private readonly now: () => number;
  private readonly listeners = new Set<SessionListener>();

  constructor(options: SessionOptions = {}) {
    this.store = options.store ?? null;
    this.now = options.now ?? Date.now;
    this.refresher = options.refresh ?? null;
    this.current = options.initial ?? null;
    if (this.current) this.save(this.current);
  }

  /**
   * The session a page starts with: the one the desktop window injected, unless this page
   * took that one up before (a reload: the stored one is newer, its refresh token rotated,
   * or it was signed out); otherwise the one in storage.
   */
  static restore(store: StorageLike | null, injected: unknown, options: Omit<SessionOptions, "store" | "initial"> = {}): Session {
    const now = (options.now ?? Date.now)();
    const given = injectedTokens(injected, now);
    if (given && read(store, INJECTED_KEY) !== fingerprint(given.accessToken)) {
      write(store, INJECTED_KEY, fingerprint(given.accessToken));
      return new Session({ ...options, store, initial: given });
    }
    return new Session({ ...options, store, initial: parseTokens(read(store, STORAGE_KEY)) });
  }

  /** Sets how tokens are refreshed (the client that does it is made after the session). */
  setRefresher(refresh: Refresher): void {
    this.refresher = refresh;
  }

  get tokens(): Tokens | null {
    return this.current;
  }

  accessToken(): string | null {
    return this.current?.accessToken ?? null;
  }

  /** Listens until the returned function is called. */
  subscribe(listener: SessionListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Takes up the tokens of a sign-in. */
  signIn(answer: TokenAnswer): Tokens {
    const tokens = tokensFromAnswer(answer, this.now());
    this.replace(tokens, null);
    return tokens;
  }

  /** Drops the tokens; `reason` is the refusal that ended the session, null for "Sign out". */
  end(reason: ApiError | null = null): void {
    this.refreshing = null;
    this.replace(null, reason);
  }

  /** Whether the access token expires within the margin (and can be refreshed). */
  expiring(): boolean {
    const t = this.current;
    return t !== null && t.refreshToken !== null && t.expiresAt !== null && t.expiresAt - this.now() < REFRESH_MARGIN_MS;
  }

  /**
   * New tokens for the refresh token held. Concurrent callers share one request. Resolves
   * to whether it worked; a refusal ends the session, a failure to reach the server does not.
   */
  refresh(): Promise<boolean> {
    if (this.refreshing) return this.refreshing;
    const from = this.current;
    const refresher = this.refresher;
    if (from === null || from.refreshToken === null || refresher === null) return Promise.resolve(false);
    const refreshToken = from.refreshToken;
    const attempt = (async (): Promise<boolean> => {
      try {
        const answer = await refresher(refreshToken);
        // Signed out (or in again) meanwhile: that session wins.
        if (this.current !== from) return this.current !== null;
        const next = tokensFromAnswer(answer, this.now());
        this.replace({ ...next, role: next.role ?? from.role, subject: next.subject ?? from.subject }, null);
        return true;
      } catch (err) {
        if (refused(err) && this.current === from) this.end(err);
        return false;
      }
    })();
    const shared = attempt.finally(() => {
      if (this.refreshing === shared) this.refreshing = null;
    });
    this.refreshing = shared;
    return shared;
  }

  async bearer(): Promise<string | null> {
    if (this.refreshing) await this.refreshing;
    else if (this.expiring()) await this.refresh();
    return this.accessToken();
  }

  async recover(error: ApiError, used: string | null, attempt: number): Promise<boolean> {
    if (attempt > 0) {
      this.endIfHolding(used, error);
      return false;
    }
    const held = this.accessToken();
    // Refreshed (or signed in) since the request left: try again with the new token.
    if (held !== null && held !== used) return true;
    if (error.code === "token_expired" && this.current?.refreshToken) return this.refresh();
    this.endIfHolding(used, error);
    return false;
  }

  /** Ends the session the refused token belonged to; a newer one stays. */
  private endIfHolding(used: string | null, error: ApiError): void {
    const held = this.accessToken();
    if (held === null || held === used) this.end(error);
  }

  private replace(tokens: Tokens | null, ended: ApiError | null): void {
    this.current = tokens;
    if (tokens) this.save(tokens);
    else remove(this.store, STORAGE_KEY);
    for (const listener of [...this.listeners]) {
      try {
        listener(tokens, ended);
      } catch (err) {
        console.error("a session listener failed", err);
      }
    }
  }

  private save(tokens: Tokens): void {
    write(this.store, STORAGE_KEY, serializeTokens(tokens));
  }
}

// Storage may refuse (private mode, quota): the session then lives in memory only.
function read(store: StorageLike | null, key: string): string | null {
  try {
    return store?.getItem(key) ?? null;
  } catch {
    return null;
  }
}

function write(store: StorageLike | null, key: string, value: string): void {
  try {
    store?.setItem(key, value);
  } catch {
    // Kept in memory only.
  }
}

function remove(store: StorageLike | null, key: string): void {
  try {
    store?.removeItem(key);
  } catch {
    // Nothing to do.
  }
}
