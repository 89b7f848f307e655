// Alerts & Settings: the stored alert history (`GET /alerts?status&limit&before`, paged by
// id), acknowledgement (`POST /alerts/{id}/acknowledge`), the rules with editable
// thresholds (`PUT /alerts/rules/{id}` with the whole rule), the editable settings (LLM
// endpoint URLs and alert delivery channels: `GET`/`PUT /settings`, saved to the config
// file and applied at once), what `/status` reports about the rest, and, for admins, Access:
// API keys and the audit log (access.tsx).

import { useEffect, useState } from "preact/hooks";
import * as f from "../format";
import { draftOf, ruleFromDraft, type RuleDraft } from "../ruleForm";
import * as sf from "../settingsForm";
import { SEVERITIES, type AlertList, type AlertRecord, type Rule, type Severity, type SystemStatus } from "../types";
import { api, currentRole } from "../ui/app-state";
import { Button, Empty, ErrorNote, Field, Loading, Panel, Pill, StatusPill, useGate } from "../ui/components";
import { AccessSection } from "./access";
import { asApiError, useAction, useDebounced, usePoll, useSocket } from "../ui/hooks";
import type { ApiError } from "../api";

const PAGE = 50;

function AlertRow(props: { alert: AlertRecord; onChanged: (a: AlertRecord) => void }) {
  const a = props.alert;
  const ack = useAction<AlertRecord>();
  return (
    <tr data-testid="alert-row" data-alert-id={a.id} data-status={a.status} class={`sev-row-${a.severity}`}>
      <td class="num mono small">{a.id}</td>
      <td>
        <StatusPill
          status={a.status === "firing" ? a.severity : "resolved"}
          label={a.status === "firing" ? `${a.severity} · firing` : "resolved"}
        />
      </td>
      <td>
        <div>{a.message}</div>
        <div class="muted small">
          {a.rule_id} · {a.subject} · value {f.num(a.value, 3)}
          {a.deliveries.length > 0 && " · "}
          {a.deliveries.map((d) => `${d.channel} ${d.status}${d.error ? ` (${d.error})` : ""}`).join(", ")}
        </div>
        <ErrorNote error={ack.error} />
      </td>
      <td title={f.dateTime(a.fired_at)}>{f.ago(a.fired_at)}</td>
      <td title={f.dateTime(a.resolved_at)}>{a.resolved_at ? f.ago(a.resolved_at) : "—"}</td>
      <td>
        {a.acknowledged ? (
          <Pill tone="idle" testid="alert-acknowledged">
            acknowledged
          </Pill>
        ) : (
          <Button
            needs="operator"
            busy={ack.busy}
            testid="alert-ack"
            onClick={() =>
              void ack
                .run(() => api().post<AlertRecord>(`/alerts/${a.id}/acknowledge`))
                .then((updated) => {
                  if (updated) props.onChanged(updated);
                })
            }
          >
            Acknowledge
          </Button>
        )}
      </td>
    </tr>
  );
}

function AlertHistory() {
  const [status, setStatus] = useState("all");
  const first = usePoll(
    (signal) => api().get<AlertList>("/alerts", { status: status === "all" ? undefined : status, limit: PAGE }, signal),
    15_000,
    [status],
  );
  const [older, setOlder] = useState<AlertRecord[]>([]);
  const [more, setMore] = useState(true);
  const [olderError, setOlderError] = useState<ApiError | null>(null);
  const [loadingOlder, setLoadingOlder] = useState(false);
  const [updated, setUpdated] = useState<Record<number, AlertRecord>>({});
  const reread = useDebounced(first.refresh, 400);
  useSocket((m) => {
    if (m.type === "alert") reread();
  });
  useEffect(() => {
    setOlder([]);
    setMore(true);
    setUpdated({});
  }, [status]);
  const firstPage = first.data?.alerts ?? [];
  // An acknowledgement shows at once; a later answer about the same alert wins once it
  // says more (acknowledged too, or a new status).
  const pick = (a: AlertRecord): AlertRecord => {
    const u = updated[a.id];
    return u && u.status === a.status && !a.acknowledged ? u : a;
  };
  const all = [...firstPage, ...older.filter((o) => !firstPage.some((a) => a.id === o.id))].map(pick);
  const last = all[all.length - 1];
  const loadOlder = (): void => {
    if (!last) return;
    setLoadingOlder(true);
    api()
      .get<AlertList>("/alerts", { status: status === "all" ? undefined : status, limit: PAGE, before: last.id })
      .then((page) => {
        setOlder((o) => [...o, ...page.alerts]);
        setMore(page.alerts.length === PAGE);
        setOlderError(null);
      })
      .catch((err: unknown) => setOlderError(asApiError(err)))
      .finally(() => setLoadingOlder(false));
  };
  return (
    <Panel
      title="Alert history"
      testid="alert-history"
      actions={
        <select
          value={status}
          onChange={(e) => setStatus((e.currentTarget as HTMLSelectElement).value)}
          aria-label="Status"
          data-testid="alert-filter-status"
        >
          <option value="all">Firing and resolved</option>
          <option value="firing">Firing</option>
          <option value="resolved">Resolved</option>
        </select>
      }
    >
      <ErrorNote error={first.error} />
      {!first.data ? (
        first.error ? null : (
          <Loading what="alerts" />
        )
      ) : all.length === 0 ? (
        <Empty>No alert{status === "all" ? " has fired" : ` is ${status}`}.</Empty>
      ) : (
        <div class="table-wrap">
          <table class="table" data-testid="alert-table">
            <thead>
              <tr>
                <th class="num">#</th>
                <th>State</th>
                <th>Alert</th>
                <th>Fired</th>
                <th>Resolved</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {all.map((a) => (
                <AlertRow key={a.id} alert={a} onChanged={(u) => setUpdated((old) => ({ ...old, [u.id]: u }))} />
              ))}
            </tbody>
          </table>
          <ErrorNote error={olderError} />
          {more && all.length >= PAGE && (
            <div class="button-row">
              <Button onClick={loadOlder} busy={loadingOlder}>
                Older alerts
              </Button>
            </div>
          )}
        </div>
      )}
    </Panel>
  );
}

function RuleRow(props: { rule: Rule; onSaved: (rule: Rule) => void }) {
  const [draft, setDraft] = useState<RuleDraft>(() => draftOf(props.rule));
  const [invalid, setInvalid] = useState<string | null>(null);
  const save = useAction<Rule>();
  useEffect(() => setDraft(draftOf(props.rule)), [props.rule]);
  const r = props.rule;
  const changed = JSON.stringify(draft) !== JSON.stringify(draftOf(r));
  const set = (key: "threshold" | "for_seconds" | "cooldown_seconds") => (e: Event) =>
    setDraft({ ...draft, [key]: (e.currentTarget as HTMLInputElement).value });
  return (
    <tr data-testid="rule-row" data-rule-id={r.id}>
      <td>
        <div class="mono small">{r.id}</div>
        <div class="muted small">
          {r.metric} {r.comparison === "above" ? ">" : "<"} threshold
        </div>
      </td>
      <td>
        <input
          class="narrow"
          value={draft.threshold}
          onInput={set("threshold")}
          aria-label="Threshold"
          data-testid="rule-threshold"
        />
      </td>
      <td>
        <input
          class="narrow"
          type="number"
          min={0}
          value={draft.for_seconds}
          onInput={set("for_seconds")}
          aria-label="For seconds"
        />
      </td>
      <td>
        <input
          class="narrow"
          type="number"
          min={0}
          value={draft.cooldown_seconds}
          onInput={set("cooldown_seconds")}
          aria-label="Cooldown seconds"
        />
      </td>
      <td>
        <select
          value={draft.severity}
          onChange={(e) => setDraft({ ...draft, severity: (e.currentTarget as HTMLSelectElement).value as Severity })}
          aria-label="Severity"
        >
          {SEVERITIES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
      </td>
      <td>
        <input
          type="checkbox"
          checked={draft.enabled}
          onChange={(e) => setDraft({ ...draft, enabled: (e.currentTarget as HTMLInputElement).checked })}
          aria-label="Enabled"
        />
      </td>
      <td>
        <Button
          needs="admin"
          kind={changed ? "primary" : "plain"}
          disabled={!changed}
          busy={save.busy}
          testid="rule-save"
          onClick={() => {
            const checked = ruleFromDraft(r, draft);
            if (!checked.ok) {
              setInvalid(checked.error);
              return;
            }
            setInvalid(null);
            void save
              .run(() => api().put<Rule>(`/alerts/rules/${encodeURIComponent(r.id)}`, checked.rule))
              .then((saved) => saved && props.onSaved(saved));
          }}
        >
          Save
        </Button>
        {invalid && <div class="field-error">{invalid}</div>}
        <ErrorNote error={save.error} />
      </td>
    </tr>
  );
}

function Rules() {
  const list = usePoll((signal) => api().get<AlertList>("/alerts", { limit: 1 }, signal), 0, []);
  const [saved, setSaved] = useState<Record<string, Rule>>({});
  if (!list.data) return list.error ? <ErrorNote error={list.error} /> : <Loading what="rules" />;
  const rules = list.data.rules.map((r) => saved[r.id] ?? r);
  return (
    <div class="table-wrap">
      <table class="table" data-testid="rule-table">
        <thead>
          <tr>
            <th>Rule</th>
            <th>Threshold</th>
            <th>For (s)</th>
            <th>Cooldown (s)</th>
            <th>Severity</th>
            <th>On</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {rules.map((r) => (
            <RuleRow key={r.id} rule={r} onSaved={(rule) => setSaved((old) => ({ ...old, [rule.id]: rule }))} />
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Settings() {
  const status = usePoll((signal) => api().get<SystemStatus>("/status", {}, signal), 30_000, []);
  const s = status.data;
  if (!s) return status.error ? <ErrorNote error={status.error} /> : <Loading />;
  return (
    <dl class="facts" data-testid="settings">
      <dt>LLM endpoint</dt>
      <dd>
        <StatusPill
          status={s.llm.reachable ? (s.llm.model_available ? "healthy" : "degraded") : "unreachable"}
          label={s.llm.reachable ? (s.llm.model_available ? "ready" : "model missing") : "unreachable"}
        />{" "}
        provider <strong>{s.llm.provider}</strong>, model <strong>{s.llm.model}</strong>
        {s.llm.error ? <div class="error-note">{s.llm.error}</div> : null}
      </dd>
      <dt>Journal</dt>
      <dd>{s.journal.ok ? "answering" : "not answering"}</dd>
      <dt>Message bus</dt>
      <dd>
        {s.message_bus.backend}
        {s.message_bus.available ? "" : ` — unavailable: ${s.message_bus.error ?? ""}`}
      </dd>
      <dt>Docker</dt>
      <dd>
        {s.infrastructure.available
          ? `available (${s.infrastructure.version ?? "?"})`
          : `unavailable${s.infrastructure.reason ? `: ${s.infrastructure.reason}` : ""}`}
        {s.infrastructure.docker_host ? <span class="muted mono small"> {s.infrastructure.docker_host}</span> : null}
      </dd>
      <dt>Monitoring</dt>
      <dd>
        {s.monitoring.enabled
          ? `on, history ${s.monitoring.history ? "stored" : "in memory only"}, ${s.monitoring.gpus ?? 0} GPU(s)`
          : "off"}
      </dd>
      <dt>Concurrent tasks</dt>
      <dd>at most {s.max_concurrent_tasks}</dd>
      <dt>Version · uptime</dt>
      <dd>
        {s.version} · {f.duration(s.uptime)}
      </dd>
    </dl>
  );
}

function Locked(props: { by: string | null | undefined }) {
  if (!props.by) return null;
  return <span class="muted small"> — set by the environment variable {props.by}; unset it to edit here</span>;
}

/** The editable settings: admins only; others are told so rather than refused. */
function EditableSettingsGate() {
  const gated = useGate("admin");
  if (gated !== null) {
    return (
      <p class="muted" data-testid="settings-gated" title={gated}>
        Changing endpoints and alert delivery needs the admin role; you are {currentRole.value}.
      </p>
    );
  }
  return <EditableSettings />;
}

function EditableSettings() {
  const loaded = usePoll((signal) => api().get<sf.SettingsView>("/settings", {}, signal), 0, []);
  const [view, setView] = useState<sf.SettingsView | null>(null);
  const [draft, setDraft] = useState<sf.SettingsDraft | null>(null);
  const [errors, setErrors] = useState<sf.DraftErrors>({});
  const [saved, setSaved] = useState(false);
  const save = useAction<sf.SettingsView>();
  useEffect(() => {
    if (loaded.data) {
      setView(loaded.data);
      setDraft(sf.draftOf(loaded.data));
    }
  }, [loaded.data]);
  if (!view || !draft) return loaded.error ? <ErrorNote error={loaded.error} /> : <Loading what="settings" />;
  const checked = sf.editFromDraft(view, draft);
  const changed = !checked.ok || !sf.isEmpty(checked.edit);
  const emailLocked = view.email.locked_by.length > 0 ? view.email.locked_by.join(", ") : null;
  const text = (key: "smtpUrl" | "from" | "to" | "slackWebhook") => (e: Event) => {
    setSaved(false);
    setDraft({ ...draft, [key]: (e.currentTarget as HTMLInputElement).value });
  };
  const onSave = (): void => {
    if (!checked.ok) {
      setErrors(checked.errors);
      return;
    }
    setErrors({});
    void save.run(() => api().put<sf.SettingsView>("/settings", checked.edit)).then((next) => {
      if (next) {
        setView(next);
        setDraft(sf.draftOf(next));
        setSaved(true);
      }
    });
  };
  return (
    <form
      class="settings-form"
      data-testid="settings-form"
      onSubmit={(e) => {
        e.preventDefault();
        onSave();
      }}
    >
      <h3>LLM endpoints</h3>
      <div class="form-grid">
        {view.providers.map((p) => (
          <Field
            key={p.name}
            label={`${p.name} (${p.kind}${p.default ? ", default" : ""})`}
            error={errors[`url:${p.name}`]}
            hint={p.api_key_set ? "an API key is configured" : undefined}
            wide
          >
            <input
              value={draft.urls[p.name] ?? p.base_url}
              disabled={!!p.locked_by}
              data-testid={`settings-url-${p.name}`}
              onInput={(e) => {
                setSaved(false);
                setDraft({ ...draft, urls: { ...draft.urls, [p.name]: (e.currentTarget as HTMLInputElement).value } });
              }}
            />
            <Locked by={p.locked_by} />
          </Field>
        ))}
      </div>
      <p class="muted small">Default model: {view.model}</p>
      <h3>
        Alert email <Pill tone={view.email.enabled ? "good" : "idle"}>{view.email.enabled ? "on" : "off"}</Pill>
        <Locked by={emailLocked} />
      </h3>
      <div class="form-grid">
        <Field
          label="SMTP URL"
          error={errors.smtpUrl}
          hint={view.email.smtp_url_set ? "set (hidden); type a new one to replace it" : "smtp://user:password@host:587?tls=required"}
          wide
        >
          <input
            type="password"
            autocomplete="off"
            value={draft.smtpUrl}
            disabled={!!emailLocked || draft.emailOff}
            placeholder={view.email.smtp_url_set ? "•••••••• (unchanged)" : ""}
            data-testid="settings-smtp-url"
            onInput={text("smtpUrl")}
          />
        </Field>
        <Field label="From" error={errors.from}>
          <input value={draft.from} disabled={!!emailLocked || draft.emailOff} data-testid="settings-email-from" onInput={text("from")} />
        </Field>
        <Field label="To" error={errors.to} hint="addresses separated by commas">
          <input value={draft.to} disabled={!!emailLocked || draft.emailOff} data-testid="settings-email-to" onInput={text("to")} />
        </Field>
        {view.email.smtp_url_set && (
          <label class="check">
            <input
              type="checkbox"
              checked={draft.emailOff}
              disabled={!!emailLocked}
              data-testid="settings-email-off"
              onChange={(e) => setDraft({ ...draft, emailOff: (e.currentTarget as HTMLInputElement).checked })}
            />{" "}
            switch email off
          </label>
        )}
      </div>
      <h3>
        Slack <Pill tone={view.slack.enabled ? "good" : "idle"}>{view.slack.enabled ? "on" : "off"}</Pill>
        <Locked by={view.slack.locked_by} />
      </h3>
      <div class="form-grid">
        <Field
          label="Incoming webhook URL"
          error={errors.slackWebhook}
          hint={view.slack.enabled ? "set (hidden); type a new one to replace it" : "https://hooks.slack.com/services/…"}
          wide
        >
          <input
            type="password"
            autocomplete="off"
            value={draft.slackWebhook}
            disabled={!!view.slack.locked_by || draft.slackOff}
            placeholder={view.slack.enabled ? "•••••••• (unchanged)" : ""}
            data-testid="settings-slack-webhook"
            onInput={text("slackWebhook")}
          />
        </Field>
        {view.slack.enabled && (
          <label class="check">
            <input
              type="checkbox"
              checked={draft.slackOff}
              disabled={!!view.slack.locked_by}
              data-testid="settings-slack-off"
              onChange={(e) => setDraft({ ...draft, slackOff: (e.currentTarget as HTMLInputElement).checked })}
            />{" "}
            switch Slack off
          </label>
        )}
      </div>
      <div class="form-actions">
        <Button needs="admin" type="submit" kind="primary" disabled={!changed} busy={save.busy} testid="settings-save">
          Save settings
        </Button>
        {saved && !changed && (
          <span class="muted small" data-testid="settings-saved">
            saved to {view.config_file} and applied
          </span>
        )}
        {!saved && <span class="muted small">saved to {view.config_file}; applied at once, no restart</span>}
      </div>
      <ErrorNote error={save.error} />
    </form>
  );
}

export function Alerts() {
  return (
    <div class="view">
      <h1>Alerts &amp; Settings</h1>
      <AlertHistory />
      <Panel title="Alert rules" actions={<span class="muted small">a saved rule starts its alerts' state over</span>}>
        <Rules />
      </Panel>
      <Panel title="Endpoints and delivery" actions={<span class="muted small">editable</span>}>
        <EditableSettingsGate />
      </Panel>
      <Panel title="Status" actions={<span class="muted small">as /status reports them</span>}>
        <Settings />
      </Panel>
      <AccessSection />
    </div>
  );
}
