import { describe, expect, it } from "vitest";
import { draftOf, editFromDraft, isEmpty, recipients, type SettingsView } from "./settingsForm";

const view: SettingsView = {
  config_file: "/home/me/.config/sutazai/sutazai.toml",
  config_file_exists: true,
  model: "llama3.2",
  providers: [
    { name: "ollama", kind: "ollama", base_url: "http://127.0.0.1:11434", default: true, api_key_set: false, locked_by: null },
    { name: "vllm", kind: "openai", base_url: "http://gpu:8001/v1", default: false, api_key_set: true, locked_by: null },
  ],
  email: { enabled: false, smtp_url_set: false, from: null, to: [], locked_by: [] },
  slack: { enabled: true, locked_by: null },
};

describe("settings form", () => {
  it("an untouched draft edits nothing", () => {
    const result = editFromDraft(view, draftOf(view));
    expect(result).toEqual({ ok: true, edit: {} });
    if (result.ok) expect(isEmpty(result.edit)).toBe(true);
  });

  it("sends only the endpoint that changed, and checks it is http(s)", () => {
    const draft = draftOf(view);
    draft.urls.vllm = " http://gpu2:8001/v1 ";
    expect(editFromDraft(view, draft)).toEqual({ ok: true, edit: { providers: { vllm: "http://gpu2:8001/v1" } } });
    draft.urls.ollama = "ftp://nope";
    const bad = editFromDraft(view, draft);
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.errors["url:ollama"]).toMatch(/http/);
  });

  it("switching email on needs an SMTP URL, a sender and recipients", () => {
    const draft = { ...draftOf(view), smtpUrl: "smtp://user:pw@mail.example.org:587?tls=required" };
    const missing = editFromDraft(view, draft);
    expect(missing.ok).toBe(false);
    if (!missing.ok) {
      expect(missing.errors.from).toBe("needed to send email");
      expect(missing.errors.to).toBe("needed to send email");
    }
    const full = editFromDraft(view, { ...draft, from: "SutazAI <alerts@example.org>", to: "ops@example.org; me@example.org" });
    expect(full).toEqual({
      ok: true,
      edit: {
        alert_smtp_url: "smtp://user:pw@mail.example.org:587?tls=required",
        alert_email_from: "SutazAI <alerts@example.org>",
        alert_email_to: ["ops@example.org", "me@example.org"],
      },
    });
    const wrong = editFromDraft(view, { ...draft, smtpUrl: "mail.example.org", from: "x@y", to: "nobody" });
    expect(wrong.ok).toBe(false);
    if (!wrong.ok) {
      expect(wrong.errors.smtpUrl).toMatch(/smtp:\/\//);
      expect(wrong.errors.to).toContain("nobody");
    }
  });

  it("switching a channel off sends an empty value, only when it is on", () => {
    expect(editFromDraft(view, { ...draftOf(view), slackOff: true })).toEqual({ ok: true, edit: { alert_slack_webhook: "" } });
    expect(editFromDraft(view, { ...draftOf(view), emailOff: true })).toEqual({ ok: true, edit: {} });
    const on = { ...view, email: { ...view.email, enabled: true, smtp_url_set: true, from: "a@b.c", to: ["d@e.f"] } };
    expect(editFromDraft(on, { ...draftOf(on), emailOff: true })).toEqual({ ok: true, edit: { alert_smtp_url: "" } });
  });

  it("a new webhook must be a URL; the secret is never prefilled", () => {
    expect(draftOf(view).slackWebhook).toBe("");
    const bad = editFromDraft(view, { ...draftOf(view), slackWebhook: "hooks.slack.com/x" });
    expect(bad.ok).toBe(false);
    expect(editFromDraft(view, { ...draftOf(view), slackWebhook: "https://hooks.slack.com/services/T/B/X" })).toEqual({
      ok: true,
      edit: { alert_slack_webhook: "https://hooks.slack.com/services/T/B/X" },
    });
  });

  it("splits recipients on commas and semicolons, keeping display names", () => {
    expect(recipients(" a@b.c,d@e.f;  Ops Team <g@h.i> ,")).toEqual(["a@b.c", "d@e.f", "Ops Team <g@h.i>"]);
    const named = { ...view, email: { ...view.email, to: ["Ops Team <g@h.i>"] } };
    expect(editFromDraft(named, draftOf(named))).toEqual({ ok: true, edit: {} });
    expect(recipients("")).toEqual([]);
  });
});
