// The editable settings (`GET /settings`, `PUT /settings`): LLM endpoint URLs and the alert
// delivery channels. A draft holds the fields as typed; `editFromDraft` checks them and
// builds the smallest edit (only what changed), since the server rewrites exactly the keys
// an edit names. Secrets (SMTP URL, Slack webhook) are never shown: their fields start
// empty and stay unchanged unless something is typed or "switch off" is ticked.

export interface ProviderView {
  name: string;
  kind: string;
  base_url: string;
  default: boolean;
  api_key_set: boolean;
  locked_by: string | null;
}

export interface SettingsView {
  config_file: string;
  config_file_exists: boolean;
  model: string;
  providers: ProviderView[];
  email: { enabled: boolean; smtp_url_set: boolean; from: string | null; to: string[]; locked_by: string[] };
  slack: { enabled: boolean; locked_by: string | null };
}

export interface SettingsDraft {
  urls: Record<string, string>;
  smtpUrl: string;
  emailOff: boolean;
  from: string;
  to: string;
  slackWebhook: string;
  slackOff: boolean;
}

export interface SettingsEdit {
  providers?: Record<string, string>;
  alert_smtp_url?: string;
  alert_email_from?: string;
  alert_email_to?: string[];
  alert_slack_webhook?: string;
}

export type DraftErrors = Partial<Record<"smtpUrl" | "from" | "to" | "slackWebhook" | `url:${string}`, string>>;

export function draftOf(view: SettingsView): SettingsDraft {
  return {
    urls: Object.fromEntries(view.providers.map((p) => [p.name, p.base_url])),
    smtpUrl: "",
    emailOff: false,
    from: view.email.from ?? "",
    to: view.email.to.join(", "),
    slackWebhook: "",
    slackOff: false,
  };
}

/** Recipients as typed: separated by commas or semicolons (a display name has spaces). */
export function recipients(text: string): string[] {
  return text
    .split(/[,;]+/)
    .map((a) => a.trim())
    .filter((a) => a !== "");
}

function httpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === "http:" || url.protocol === "https:") && url.hostname !== "";
  } catch {
    return false;
  }
}

function smtpUrl(text: string): boolean {
  return /^smtps?:\/\/[^\s/]+/.test(text);
}

function address(text: string): boolean {
  return /^[^\s@<>]+@[^\s@<>]+$/.test(text) || /^[^<>]*<[^\s@<>]+@[^\s@<>]+>$/.test(text.trim());
}

/** The edit a draft makes (empty when nothing changed), or the fields that are wrong. */
export function editFromDraft(
  view: SettingsView,
  draft: SettingsDraft,
): { ok: true; edit: SettingsEdit } | { ok: false; errors: DraftErrors } {
  const errors: DraftErrors = {};
  const edit: SettingsEdit = {};
  for (const p of view.providers) {
    const typed = (draft.urls[p.name] ?? p.base_url).trim();
    if (typed === p.base_url) continue;
    if (!httpUrl(typed)) errors[`url:${p.name}`] = "an http:// or https:// URL";
    else (edit.providers ??= {})[p.name] = typed;
  }
  if (draft.emailOff) {
    if (view.email.smtp_url_set) edit.alert_smtp_url = "";
  } else {
    const smtp = draft.smtpUrl.trim();
    if (smtp !== "") {
      if (!smtpUrl(smtp)) errors.smtpUrl = "smtp://[user:password@]host[:port] or smtps://…";
      else edit.alert_smtp_url = smtp;
    }
    const from = draft.from.trim();
    if (from !== (view.email.from ?? "")) {
      if (from !== "" && !address(from)) errors.from = "an email address";
      else edit.alert_email_from = from;
    }
    const to = recipients(draft.to);
    if (to.join(",") !== view.email.to.join(",")) {
      const bad = to.find((a) => !address(a));
      if (bad !== undefined) errors.to = `“${bad}” is not an email address`;
      else if (to.length > 50) errors.to = "at most 50 recipients";
      else edit.alert_email_to = to;
    }
    const switchingOn = smtp !== "" || (view.email.smtp_url_set && !draft.emailOff);
    if (switchingOn && errors.from === undefined && (edit.alert_email_from ?? view.email.from ?? "") === "")
      errors.from = "needed to send email";
    if (switchingOn && errors.to === undefined && (edit.alert_email_to ?? view.email.to).length === 0)
      errors.to = "needed to send email";
  }
  if (draft.slackOff) {
    if (view.slack.enabled) edit.alert_slack_webhook = "";
  } else {
    const hook = draft.slackWebhook.trim();
    if (hook !== "") {
      if (!httpUrl(hook)) errors.slackWebhook = "an https:// webhook URL";
      else edit.alert_slack_webhook = hook;
    }
  }
  return Object.keys(errors).length > 0 ? { ok: false, errors } : { ok: true, edit };
}

/** Whether an edit changes anything. */
export function isEmpty(edit: SettingsEdit): boolean {
  return Object.keys(edit).length === 0;
}
