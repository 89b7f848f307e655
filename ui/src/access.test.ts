// Tests of the role gating and of what `/auth/whoami` (or its failure) means for the page.

import { describe, expect, it } from "vitest";
import { accessFromWhoami, allows, gateReason, isRole, roleOf, type WhoAmI } from "./access";
import { ApiError } from "./api";

const who = (over: Partial<WhoAmI> = {}): WhoAmI => ({
  auth_enabled: true,
  subject: "key:ops",
  role: "operator",
  via: "jwt",
  expires_at: "2030-01-01T00:00:00Z",
  ...over,
});

describe("role gating", () => {
  it("orders viewer < operator < admin", () => {
    expect(allows("viewer", "viewer")).toBe(true);
    expect(allows("viewer", "operator")).toBe(false);
    expect(allows("operator", "operator")).toBe(true);
    expect(allows("operator", "admin")).toBe(false);
    expect(allows("admin", "operator")).toBe(true);
    expect(allows("admin", "admin")).toBe(true);
  });

  it("lets everything through when no role is known (auth off: the server decides)", () => {
    expect(allows(null, "admin")).toBe(true);
    expect(gateReason(null, "admin")).toBeNull();
  });

  it("says which role a control needs", () => {
    expect(gateReason("viewer", "operator")).toBe("needs the operator role");
    expect(gateReason("viewer", "admin")).toBe("needs the admin role");
    expect(gateReason("operator", "admin")).toBe("needs the admin role");
    expect(gateReason("operator", "operator")).toBeNull();
    expect(gateReason("viewer", undefined)).toBeNull();
  });

  it("knows the three roles only", () => {
    expect(["viewer", "operator", "admin", "root", "", 1].map(isRole)).toEqual([true, true, true, false, false, false]);
  });
});

describe("accessFromWhoami", () => {
  it("auth off: open, nothing gated", () => {
    const state = accessFromWhoami({ auth_enabled: false, subject: "local", role: "admin", via: "none", expires_at: null });
    expect(state).toEqual({ phase: "open" });
    expect(roleOf(state)).toBeNull();
  });

  it("auth on and accepted: signed in with the role", () => {
    const state = accessFromWhoami(who({ role: "viewer" }));
    expect(state.phase).toBe("signed-in");
    expect(roleOf(state)).toBe("viewer");
  });

  it("a 401 asks for a sign-in; why, unless there simply was no credential", () => {
    expect(accessFromWhoami(new ApiError("unauthorized", "no credential", 401))).toEqual({ phase: "signed-out", reason: null });
    expect(accessFromWhoami(new ApiError("token_revoked", "the token was revoked", 401))).toEqual({
      phase: "signed-out",
      reason: "the token was revoked",
    });
  });

  it("a server without the auth routes counts as open; an unreachable one as unknown", () => {
    expect(accessFromWhoami(new ApiError("not_found", "no route", 404))).toEqual({ phase: "open" });
    const down = accessFromWhoami(new ApiError("unreachable", "GET /auth/whoami: the API is not reachable"));
    expect(down.phase).toBe("unknown");
    expect(roleOf(down)).toBeNull();
  });
});
