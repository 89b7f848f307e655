// The Access section's logic (admins): the "Create key" form checked by the server's rules
// for a key's name before `POST /auth/keys`, and the audit log's pages and chain check
// (`GET /audit`, `GET /audit/verify`) in words.

import { isRole, ROLES, type Role } from "./access";

/** `GET /auth/keys` entries. The secret itself is never listed, only its first 12 characters. */
export interface ApiKey {
  id: string;
  name: string;
  role: Role;
  /** "szk_Ab12Cd34". */
  prefix: string;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

export interface KeyList {
  keys: ApiKey[];
}

/** `POST /auth/keys`: the new key, whose `key` is shown in this answer only. */
export interface CreatedKey {
  id: string;
  name: string;
  role: Role;
  prefix: string;
  created_at: string;
  key: string;
}

/** `DELETE /auth/keys/{id}`. */
export interface RevokedKey {
  id: string;
  revoked_at: string;
}

export interface KeyFormFields {
  name: string;
  role: string;
}

export type KeyFormErrors = Partial<Record<keyof KeyFormFields, string>>;

export const MAX_KEY_NAME = 64;
/** Letters, digits, "-", "_", "." and spaces. */
const KEY_NAME = /^[A-Za-z0-9\-_. ]+$/;

export function emptyKeyForm(): KeyFormFields {
  return { name: "", role: "viewer" };
}

/** Checks the form; on success returns the body of `POST /auth/keys` (the name trimmed). */
export function validateKeyForm(
  fields: KeyFormFields,
): { ok: true; body: { name: string; role: Role } } | { ok: false; errors: KeyFormErrors } {
  const errors: KeyFormErrors = {};
  const name = fields.name.trim();
  const length = [...name].length;
  if (length === 0) errors.name = "a key needs a name, e.g. the person or machine that will use it";
  else if (length > MAX_KEY_NAME) errors.name = `at most ${MAX_KEY_NAME} characters, this has ${length}`;
  else if (!KEY_NAME.test(name)) {
    const bad = [...name].find((c) => !KEY_NAME.test(c)) ?? "";
    errors.name = `“${bad}” is not allowed: use letters, digits, “-”, “_”, “.” and spaces`;
  }
  if (!isRole(fields.role)) errors.role = `one of ${ROLES.join(", ")}`;
  if (Object.keys(errors).length > 0) return { ok: false, errors };
  return { ok: true, body: { name, role: fields.role as Role } };
}

/** Whether a key may still be used. */
export function keyActive(key: ApiKey): boolean {
  return key.revoked_at === null;
}

/** Keys in use first (newest first), then the revoked ones. */
export function sortKeys(keys: ApiKey[]): ApiKey[] {
  return [...keys].sort(
    (a, b) =>
      Number(a.revoked_at !== null) - Number(b.revoked_at !== null) ||
      Date.parse(b.created_at) - Date.parse(a.created_at) ||
      a.name.localeCompare(b.name),
  );
}

/** `GET /audit` entries. */
export interface AuditEntry {
  seq: number;
  at: string;
  actor: string;
  role: Role | null;
  method: string;
  path: string;
  status: number;
  peer: string | null;
  outcome: "ok" | "denied" | "failed";
}

export interface AuditPage {
  entries: AuditEntry[];
  /** What `before` asks for the next (older) page; null at the oldest entry. */
  next_before: number | null;
}

/** `GET /audit/verify`. */
export interface AuditVerify {
  ok: boolean;
  entries: number;
  first_bad_seq: number | null;
  head_hash: string;
}

/** An older page added below the entries shown, newest first, none twice. */
export function appendAuditPage(shown: AuditEntry[], page: AuditEntry[]): AuditEntry[] {
  const seen = new Set(shown.map((e) => e.seq));
  return [...shown, ...page.filter((e) => !seen.has(e.seq))].sort((a, b) => b.seq - a.seq);
}

/** The chain check in words: "chain intact, N entries" or "chain broken at entry #seq". */
export function verifyText(v: AuditVerify): { ok: boolean; text: string } {
  if (v.ok) return { ok: true, text: `chain intact, ${v.entries} entries` };
  return { ok: false, text: v.first_bad_seq === null ? "chain broken" : `chain broken at entry #${v.first_bad_seq}` };
}

/** The colour of an audit outcome. */
export function outcomeTone(outcome: string): "good" | "warn" | "bad" | "idle" {
  if (outcome === "ok") return "good";
  if (outcome === "denied") return "warn";
  if (outcome === "failed") return "bad";
  return "idle";
}
