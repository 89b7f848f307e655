// Who may do what: the API's three roles, what `GET /auth/whoami` says about the caller,
// and the words a control shows when the role signed in may not use it. The server has
// the last word (a 403 `forbidden` still shows as an error); this only keeps the page
// from offering what would be refused.

import { ApiError } from "./api";

export type Role = "viewer" | "operator" | "admin";
/** Weakest first: each role may do everything the ones before it may. */
export const ROLES: readonly Role[] = ["viewer", "operator", "admin"];

export function isRole(value: unknown): value is Role {
  return typeof value === "string" && (ROLES as readonly string[]).includes(value);
}

/** `GET /auth/whoami`. */
export interface WhoAmI {
  auth_enabled: boolean;
  subject: string;
  role: Role;
  via: "jwt" | "api_key" | "none";
  /** RFC 3339, or null when the credential does not expire (an API key, auth off). */
  expires_at: string | null;
}

/**
 * Whether `role` may use something that needs `needs`. A null role (auth off, or the
 * server did not say) allows everything: the server decides then.
 */
export function allows(role: Role | null | undefined, needs: Role): boolean {
  if (role === null || role === undefined) return true;
  return ROLES.indexOf(role) >= ROLES.indexOf(needs);
}

/** The tooltip of a control `role` may not use ("needs the admin role"), or null when it may. */
export function gateReason(role: Role | null | undefined, needs: Role | undefined): string | null {
  if (needs === undefined || allows(role, needs)) return null;
  return `needs the ${needs} role`;
}

/**
 * Where the page stands with the server's authentication:
 * - `checking`: `/auth/whoami` has not answered yet;
 * - `open`: the server runs without authentication (or predates it): no sign-in, no gating;
 * - `signed-in`: a session the server accepts, with its subject and role;
 * - `signed-out`: authentication is on and no credential is held (or it was refused);
 *   `reason` says why when a session just ended;
 * - `unknown`: `/auth/whoami` did not answer (API down): the page shows as usual and asks again.
 */
export type AccessState =
  | { phase: "checking" }
  | { phase: "open" }
  | { phase: "signed-in"; who: WhoAmI }
  | { phase: "signed-out"; reason: string | null }
  | { phase: "unknown"; error: ApiError };

/** What a `/auth/whoami` answer, or its failure, means for the page. */
export function accessFromWhoami(answer: WhoAmI | ApiError): AccessState {
  if (!(answer instanceof ApiError)) {
    return answer.auth_enabled ? { phase: "signed-in", who: answer } : { phase: "open" };
  }
  const error = answer;
  if (error.status === 401) return { phase: "signed-out", reason: error.code === "unauthorized" ? null : error.message };
  // A server without the auth routes has no authentication to speak of.
  if (error.status === 404 || error.code === "auth_disabled") return { phase: "open" };
  return { phase: "unknown", error };
}

/** The role the controls are gated by: null unless a session is signed in. */
export function roleOf(state: AccessState): Role | null {
  return state.phase === "signed-in" && isRole(state.who.role) ? state.who.role : null;
}
