// Access, in Alerts & Settings (admins): the API keys (`GET /auth/keys`, `POST /auth/keys`,
// whose answer carries the secret once, `DELETE /auth/keys/{id}` to revoke) and the audit
// log (`GET /audit?limit&before`, newest first, paged by `next_before`; `GET /audit/verify`
// checks its hash chain).

import { useState } from "preact/hooks";
import { ROLES } from "../access";
import type { ApiError } from "../api";
import * as f from "../format";
import {
  appendAuditPage,
  emptyKeyForm,
  keyActive,
  outcomeTone,
  sortKeys,
  validateKeyForm,
  verifyText,
  type AuditEntry,
  type AuditPage,
  type AuditVerify,
  type CreatedKey,
  type KeyFormErrors,
  type KeyFormFields,
  type KeyList,
  type RevokedKey,
} from "../keyForm";
import { access, api, notify } from "../ui/app-state";
import { Button, Empty, ErrorNote, Field, Loading, Panel, Pill } from "../ui/components";
import { asApiError, useAction, usePoll } from "../ui/hooks";

const AUDIT_PAGE = 100;

/** `auth_disabled` is no failure: the server runs without authentication. */
function Refusal(props: { error: ApiError | null }) {
  if (props.error?.code === "auth_disabled") {
    return <p class="muted">{props.error.message} — the server runs without authentication.</p>;
  }
  return <ErrorNote error={props.error} />;
}

function NewKey(props: { created: CreatedKey; onDone: () => void }) {
  const k = props.created;
  const [copied, setCopied] = useState<string | null>(null);
  const copy = (): void => {
    const clipboard = typeof navigator !== "undefined" ? navigator.clipboard : undefined;
    if (!clipboard) {
      setCopied("select the key and copy it");
      return;
    }
    clipboard.writeText(k.key).then(
      () => setCopied("copied"),
      () => setCopied("could not copy: select the key and copy it"),
    );
  };
  return (
    <div class="secret-box" data-testid="key-created" role="status">
      <p class="secret-warning">
        <strong>Copy this key now.</strong> It is shown only this once: the server keeps no copy it could show again. If it is
        lost, revoke it and create another.
      </p>
      <div class="secret-row">
        <code class="secret" data-testid="key-secret">
          {k.key}
        </code>
        <Button small onClick={copy} testid="key-copy">
          Copy
        </Button>
        {copied && <span class="muted small">{copied}</span>}
      </div>
      <p class="muted small">
        Key “{k.name}” ({k.role}), listed as <span class="mono">{k.prefix}</span>. Sign in with it, or send it as{" "}
        <span class="mono">Authorization: Bearer …</span>.
      </p>
      <div class="button-row">
        <Button onClick={props.onDone} testid="key-created-done">
          I have copied it
        </Button>
      </div>
    </div>
  );
}

function CreateKey(props: { onCreated: (key: CreatedKey) => void }) {
  const [fields, setFields] = useState<KeyFormFields>(emptyKeyForm);
  const [errors, setErrors] = useState<KeyFormErrors>({});
  const create = useAction<CreatedKey>();
  const set = (key: keyof KeyFormFields) => (e: Event) => {
    const next = { ...fields, [key]: (e.currentTarget as HTMLInputElement | HTMLSelectElement).value };
    setFields(next);
    // Errors shown go away as soon as the field is right.
    if (errors[key] !== undefined) {
      const checked = validateKeyForm(next);
      setErrors(checked.ok ? {} : checked.errors);
    }
  };
  const onSubmit = (e: Event): void => {
    e.preventDefault();
    const checked = validateKeyForm(fields);
    if (!checked.ok) {
      setErrors(checked.errors);
      return;
    }
    setErrors({});
    void create.run(() => api().post<CreatedKey>("/auth/keys", checked.body)).then((created) => {
      if (created) {
        setFields(emptyKeyForm());
        props.onCreated(created);
      }
    });
  };
  return (
    <form class="key-form" onSubmit={onSubmit} noValidate data-testid="key-form">
      <Field
        label="Name"
        error={errors.name}
        errorTestid="key-error-name"
        hint="letters, digits, “-”, “_”, “.” and spaces; 64 at most"
      >
        <input value={fields.name} onInput={set("name")} placeholder="e.g. ci-runner" maxLength={200} data-testid="key-name" />
      </Field>
      <Field label="Role" error={errors.role} errorTestid="key-error-role">
        <select value={fields.role} onChange={set("role")} data-testid="key-role">
          {ROLES.map((r) => (
            <option key={r} value={r}>
              {r}
            </option>
          ))}
        </select>
      </Field>
      <div class="key-form-submit">
        <Button type="submit" kind="primary" needs="admin" busy={create.busy} testid="key-create">
          Create key
        </Button>
      </div>
      <div class="wide">
        <ErrorNote error={create.error} prefix="Not created" />
      </div>
    </form>
  );
}

function KeyRow(props: { apiKey: KeyList["keys"][number]; onRevoked: (answer: RevokedKey) => void }) {
  const k = props.apiKey;
  const [confirming, setConfirming] = useState(false);
  const revoke = useAction<RevokedKey>();
  const active = keyActive(k);
  return (
    <tr data-testid="key-row" data-key-id={k.id} data-revoked={active ? undefined : "true"} class={active ? "" : "revoked"}>
      <td>{k.name}</td>
      <td>
        <Pill tone={k.role === "admin" ? "good" : k.role === "operator" ? "warn" : "idle"}>{k.role}</Pill>
      </td>
      <td class="mono small">{k.prefix}…</td>
      <td title={f.dateTime(k.created_at)}>{f.ago(k.created_at)}</td>
      <td title={f.dateTime(k.last_used_at)}>{k.last_used_at ? f.ago(k.last_used_at) : "never"}</td>
      <td title={f.dateTime(k.revoked_at)}>{k.revoked_at ? <Pill tone="bad">{f.ago(k.revoked_at)}</Pill> : "—"}</td>
      <td class="actions">
        {active &&
          (confirming ? (
            <span class="confirm">
              Revoke “{k.name}”? Whatever uses it is refused from now on.
              <Button
                small
                kind="danger"
                needs="admin"
                busy={revoke.busy}
                testid="key-revoke-confirm"
                onClick={() =>
                  void revoke.run(() => api().del<RevokedKey>(`/auth/keys/${encodeURIComponent(k.id)}`)).then((answer) => {
                    if (answer) {
                      setConfirming(false);
                      props.onRevoked(answer);
                    }
                  })
                }
              >
                Revoke
              </Button>
              <Button small onClick={() => setConfirming(false)} testid="key-revoke-cancel">
                Keep it
              </Button>
            </span>
          ) : (
            <Button small kind="danger" needs="admin" onClick={() => setConfirming(true)} testid={`key-revoke-${k.id}`}>
              Revoke
            </Button>
          ))}
        <ErrorNote error={revoke.error} prefix="Not revoked" />
      </td>
    </tr>
  );
}

function Keys() {
  const list = usePoll((signal) => api().get<KeyList>("/auth/keys", {}, signal), 0, []);
  const [created, setCreated] = useState<CreatedKey | null>(null);
  const keys = list.data ? sortKeys(list.data.keys) : [];
  return (
    <Panel
      title="API keys"
      testid="keys-panel"
      actions={<span class="muted small">a key signs in with its role; its secret is shown once, when it is created</span>}
    >
      {created ? (
        <NewKey created={created} onDone={() => setCreated(null)} />
      ) : (
        <CreateKey
          onCreated={(key) => {
            setCreated(key);
            notify(`Key “${key.name}” created`);
            list.refresh();
          }}
        />
      )}
      <Refusal error={list.error} />
      {!list.data ? (
        list.error ? null : (
          <Loading what="keys" />
        )
      ) : keys.length === 0 ? (
        <Empty>No API key yet.</Empty>
      ) : (
        <div class="table-wrap">
          <table class="table" data-testid="keys-table">
            <thead>
              <tr>
                <th>Name</th>
                <th>Role</th>
                <th>Prefix</th>
                <th>Created</th>
                <th>Last used</th>
                <th>Revoked</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {keys.map((k) => (
                <KeyRow
                  key={k.id}
                  apiKey={k}
                  onRevoked={(answer) => {
                    notify(`Key “${k.name}” revoked`);
                    if (answer.id === created?.id) setCreated(null);
                    list.refresh();
                  }}
                />
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Panel>
  );
}

function AuditRow(props: { entry: AuditEntry }) {
  const e = props.entry;
  return (
    <tr data-testid="audit-row" data-seq={e.seq} data-outcome={e.outcome}>
      <td class="num mono small">{e.seq}</td>
      <td title={e.at}>{f.dateTime(e.at)}</td>
      <td class="audit-actor">{e.actor}</td>
      <td>{e.role ?? <span class="muted">—</span>}</td>
      <td class="mono small">{e.method}</td>
      <td class="mono small audit-path">{e.path}</td>
      <td class="num mono small">{e.status}</td>
      <td>
        <Pill tone={outcomeTone(e.outcome)}>{e.outcome}</Pill>
      </td>
      <td class="mono small">{e.peer ?? <span class="muted">—</span>}</td>
    </tr>
  );
}

function Audit() {
  const first = usePoll((signal) => api().get<AuditPage>("/audit", { limit: AUDIT_PAGE }, signal), 0, []);
  const [older, setOlder] = useState<AuditEntry[]>([]);
  const [nextBefore, setNextBefore] = useState<number | null | undefined>(undefined);
  const [olderError, setOlderError] = useState<ApiError | null>(null);
  const [loadingOlder, setLoadingOlder] = useState(false);
  const verify = useAction<AuditVerify>();
  const entries = appendAuditPage(first.data?.entries ?? [], older);
  // Until an older page came, the first page says where the next one starts.
  const before = nextBefore === undefined ? (first.data?.next_before ?? null) : nextBefore;
  const loadOlder = (): void => {
    if (before === null) return;
    setLoadingOlder(true);
    api()
      .get<AuditPage>("/audit", { limit: AUDIT_PAGE, before })
      .then((page) => {
        setOlder((o) => appendAuditPage(o, page.entries));
        setNextBefore(page.next_before);
        setOlderError(null);
      })
      .catch((err: unknown) => setOlderError(asApiError(err)))
      .finally(() => setLoadingOlder(false));
  };
  const reload = (): void => {
    setOlder([]);
    setNextBefore(undefined);
    first.refresh();
  };
  const result = verify.result ? verifyText(verify.result) : null;
  return (
    <Panel
      title="Audit log"
      testid="audit-panel"
      actions={
        <>
          <Button small onClick={reload} testid="audit-refresh">
            Refresh
          </Button>
          <Button
            small
            needs="admin"
            onClick={() => {
              // The list and the verdict describe the same log: refresh both.
              reload();
              void verify.run(() => api().get<AuditVerify>("/audit/verify"));
            }}
            busy={verify.busy}
            testid="audit-verify"
          >
            Verify chain
          </Button>
        </>
      }
    >
      {result && (
        <p
          class={result.ok ? "ok-note" : "error-note"}
          role={result.ok ? "status" : "alert"}
          data-testid="audit-verify-result"
          data-ok={String(result.ok)}
          title={verify.result ? `head hash ${verify.result.head_hash}` : undefined}
        >
          {result.text}
        </p>
      )}
      <ErrorNote error={verify.error} prefix="Not verified" />
      <Refusal error={first.error} />
      {!first.data ? (
        first.error ? null : (
          <Loading what="the audit log" />
        )
      ) : entries.length === 0 ? (
        <Empty>Nothing recorded yet.</Empty>
      ) : (
        <div class="table-wrap">
          <table class="table compact" data-testid="audit-table">
            <thead>
              <tr>
                <th class="num">#</th>
                <th>Time</th>
                <th>Actor</th>
                <th>Role</th>
                <th>Method</th>
                <th>Path</th>
                <th class="num">Status</th>
                <th>Outcome</th>
                <th>Peer</th>
              </tr>
            </thead>
            <tbody>
              {entries.map((e) => (
                <AuditRow key={e.seq} entry={e} />
              ))}
            </tbody>
          </table>
          <ErrorNote error={olderError} />
          {before !== null && (
            <div class="button-row">
              <Button onClick={loadOlder} busy={loadingOlder} testid="audit-older">
                Load older
              </Button>
            </div>
          )}
        </div>
      )}
    </Panel>
  );
}

/** The Access section: for admins only (and when auth is off, where everyone is admin). */
export function AccessSection() {
  const state = access.value;
  if (state.phase === "signed-in" && state.who.role !== "admin") return null;
  return (
    <>
      <h2 class="section-title" id="access">
        Access
      </h2>
      {state.phase === "open" && (
        <p class="muted">
          The server runs without authentication: everyone who can reach it acts as admin. Keys created here take effect
          once it runs with authentication on.
        </p>
      )}
      <Keys />
      <Audit />
    </>
  );
}
