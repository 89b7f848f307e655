// Tests of the Access section's logic: the key form's checks (the server's name rules), the
// key list's order, audit pages put together, and the chain check in words.

import { describe, expect, it } from "vitest";
import { appendAuditPage, emptyKeyForm, sortKeys, validateKeyForm, verifyText, type ApiKey, type AuditEntry } from "./keyForm";

describe("validateKeyForm", () => {
  it("accepts letters, digits, - _ . and spaces, trimmed, with a role", () => {
    expect(validateKeyForm({ name: "  ci-runner_2.eu west ", role: "operator" })).toEqual({
      ok: true,
      body: { name: "ci-runner_2.eu west", role: "operator" },
    });
    expect(validateKeyForm({ name: "x".repeat(64), role: "admin" }).ok).toBe(true);
  });

  it("starts as a viewer key with no name, which is refused", () => {
    const form = emptyKeyForm();
    expect(form.role).toBe("viewer");
    const checked = validateKeyForm(form);
    expect(checked.ok).toBe(false);
    if (!checked.ok) expect(Object.keys(checked.errors)).toEqual(["name"]);
  });

  it("names the problem with the name", () => {
    const errors = (name: string) => {
      const checked = validateKeyForm({ name, role: "viewer" });
      return checked.ok ? null : checked.errors.name;
    };
    expect(errors("   ")).toMatch(/needs a name/);
    expect(errors("x".repeat(65))).toBe("at most 64 characters, this has 65");
    expect(errors("alice/laptop")).toBe("“/” is not allowed: use letters, digits, “-”, “_”, “.” and spaces");
    expect(errors("zoë")).toMatch(/^“ë” is not allowed/);
    expect(errors("tab\there")).toMatch(/is not allowed/);
  });

  it("refuses a role that is not one of the three", () => {
    const checked = validateKeyForm({ name: "ok", role: "root" });
    expect(checked).toEqual({ ok: false, errors: { role: "one of viewer, operator, admin" } });
  });
});

const key = (id: string, created: string, revoked: string | null = null): ApiKey => ({
  id,
  name: id,
  role: "viewer",
  prefix: "szk_Ab12Cd34",
  created_at: created,
  last_used_at: null,
  revoked_at: revoked,
});

describe("sortKeys", () => {
  it("lists keys in use first, newest first, revoked ones last", () => {
    const keys = [
      key("old", "2026-01-01T00:00:00Z"),
      key("gone", "2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z"),
      key("new", "2026-02-01T00:00:00Z"),
    ];
    expect(sortKeys(keys).map((k) => k.id)).toEqual(["new", "old", "gone"]);
    expect(keys.map((k) => k.id)).toEqual(["old", "gone", "new"]);
  });
});

const entry = (seq: number): AuditEntry => ({
  seq,
  at: "2026-01-01T00:00:00Z",
  actor: "key:ci",
  role: "operator",
  method: "POST",
  path: "/tasks",
  status: 201,
  peer: "127.0.0.1",
  outcome: "ok",
});

describe("audit log", () => {
  it("adds an older page below, newest first, none twice", () => {
    const shown = [entry(200), entry(199), entry(198)];
    expect(appendAuditPage(shown, [entry(198), entry(197), entry(150)]).map((e) => e.seq)).toEqual([200, 199, 198, 197, 150]);
    expect(appendAuditPage([], []).length).toBe(0);
  });

  it("says whether the chain is intact", () => {
    expect(verifyText({ ok: true, entries: 42, first_bad_seq: null, head_hash: "ab" })).toEqual({
      ok: true,
      text: "chain intact, 42 entries",
    });
    expect(verifyText({ ok: false, entries: 42, first_bad_seq: 17, head_hash: "ab" })).toEqual({
      ok: false,
      text: "chain broken at entry #17",
    });
    expect(verifyText({ ok: false, entries: 0, first_bad_seq: null, head_hash: "" }).text).toBe("chain broken");
  });
});
