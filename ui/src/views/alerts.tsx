// Alerts & Settings: the stored alert history (`GET /alerts?status&limit&before`, paged by
// id), acknowledgement (`POST /alerts/{id}/acknowledge`), the rules with editable
// thresholds (`PUT /alerts/rules/{id}` with the whole rule), and what `/status` reports
// about the LLM endpoint and the other settings (read only: no route edits them yet).

import { useEffect, useState } from "preact/hooks";
import * as f from "../format";
import { draftOf, ruleFromDraft, type RuleDraft } from "../ruleForm";
import { SEVERITIES, type AlertList, type AlertRecord, type Rule, type Severity, type SystemStatus } from "../types";
import { api } from "../ui/app-state";
import { Button, Empty, ErrorNote, Loading, Panel, Pill, StatusPill } from "../ui/components";
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

export function Alerts() {
  return (
    <div class="view">
      <h1>Alerts &amp; Settings</h1>
      <AlertHistory />
      <Panel title="Alert rules" actions={<span class="muted small">a saved rule starts its alerts' state over</span>}>
        <Rules />
      </Panel>
      <Panel title="Settings" actions={<span class="muted small">as /status reports them</span>}>
        <Settings />
      </Panel>
    </div>
  );
}
