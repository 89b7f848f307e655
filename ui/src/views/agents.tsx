// Agents: the registry (`GET /agents`) with filters by status and capability, one agent's
// detail (`GET /agents/{id}`), its lifecycle controls (`POST /agents/{id}/control`:
// start, stop, restart, scale — the actions the handler accepts), and the editor of user
// agents: a new one (`POST /agents`), a definition changed (`GET /agents/{id}/definition`,
// then `PUT /agents/{id}`; a built-in one is then overridden by a user file), or a user
// file deleted (`DELETE /agents/{id}`, which brings back a built-in it overrode).

import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import {
  emptyAgentForm,
  formOfSpec,
  MAX_CONCURRENCY,
  MAX_SYSTEM_PROMPT_CHARS,
  promptLength,
  validateAgent,
  type AgentFormFields,
} from "../agentForm";
import { capabilityCounts, filterAgents, type AgentFilter } from "../agents";
import * as f from "../format";
import { routeHash } from "../router";
import {
  AGENT_CATEGORIES,
  AGENT_ROLES,
  type AgentControlAnswer,
  type AgentDefinition,
  type AgentInfo,
  type AgentList,
  type AgentRemoval,
} from "../types";
import { api, notify } from "../ui/app-state";
import { Button, Chips, Empty, ErrorNote, Field, Json, Loading, Meter, Panel, Pill, StatusPill } from "../ui/components";
import { useAction, useDebounced, usePoll, useSocket } from "../ui/hooks";

/** What the editor shows: a new agent's form, or an existing agent's definition. */
type Editing = { kind: "new" } | { kind: "edit"; id: string };

function AgentControls(props: { agent: AgentInfo; onDone: () => void }) {
  const action = useAction<AgentControlAnswer>();
  const [instances, setInstances] = useState(String(props.agent.max_concurrency));
  const control = (name: string, body: Record<string, unknown> = {}): void => {
    void action
      .run(() =>
        api().post<AgentControlAnswer>(`/agents/${encodeURIComponent(props.agent.id)}/control`, { action: name, ...body }),
      )
      .then((answer) => {
        if (answer) props.onDone();
      });
  };
  const n = Number.parseInt(instances, 10);
  const validScale = Number.isInteger(n) && n >= 1 && String(n) === instances.trim();
  const workers = action.result?.workers;
  return (
    <div class="controls" data-testid="agent-controls">
      <div class="button-row">
        <Button
          needs="operator"
          onClick={() => control("start")}
          busy={action.busy}
          disabled={props.agent.status === "healthy"}
          testid="agent-start"
        >
          Start
        </Button>
        <Button
          needs="operator"
          onClick={() => control("stop")}
          busy={action.busy}
          disabled={props.agent.status === "stopped"}
          kind="danger"
          testid="agent-stop"
        >
          Stop
        </Button>
        <Button
          needs="operator"
          onClick={() => control("restart")}
          busy={action.busy}
          testid="agent-restart"
          title="Start again and reset its circuit breaker"
        >
          Restart
        </Button>
        <span class="inline-field">
          <input
            type="number"
            min={1}
            value={instances}
            onInput={(e) => setInstances((e.currentTarget as HTMLInputElement).value)}
            aria-label="Instances"
            data-testid="agent-instances"
          />
          <Button
            needs="operator"
            onClick={() => control("scale", { instances: n })}
            busy={action.busy}
            disabled={!validScale}
            testid="agent-scale"
            title="Steps it may run at once (and its worker containers when Docker is available)"
          >
            Scale
          </Button>
        </span>
      </div>
      <ErrorNote error={action.error} />
      {action.result && (
        <p class="ok-note">
          {action.result.action} done: the agent is {action.result.status}
          {workers === null || workers === undefined ? " (no worker containers)" : ""}.
        </p>
      )}
      {workers !== null && workers !== undefined && (
        <details>
          <summary>Worker containers</summary>
          <Json value={workers} />
        </details>
      )}
    </div>
  );
}

function AgentDetail(props: { id: string; revision: number; onChanged: () => void; onEdit: (id: string) => void }) {
  const agent = usePoll((signal) => api().get<AgentInfo>(`/agents/${encodeURIComponent(props.id)}`, {}, signal), 5000, [
    props.id,
  ]);
  // A definition saved in the editor shows at once rather than at the next poll.
  const { refresh } = agent;
  useEffect(() => refresh(), [props.revision]);
  const a = agent.data;
  return (
    <Panel
      title={a ? a.name : props.id}
      actions={
        <>
          <Button
            needs="operator"
            small
            onClick={() => props.onEdit(props.id)}
            testid="agent-detail-edit"
            title="Change this agent's definition"
          >
            Edit
          </Button>
          <a href={routeHash({ view: "agents" })}>Close ×</a>
        </>
      }
      class="detail-panel"
      testid="agent-detail"
    >
      {!a ? (
        agent.error ? (
          <ErrorNote error={agent.error} />
        ) : (
          <Loading />
        )
      ) : (
        <>
          <ErrorNote error={agent.error} />
          <dl class="facts">
            <dt>Id</dt>
            <dd class="mono">{a.id}</dd>
            <dt>Status</dt>
            <dd>
              <StatusPill status={a.status} testid="agent-status" />
            </dd>
            <dt>Category · role</dt>
            <dd>
              {f.humanize(a.category)} · {f.humanize(a.role)}
            </dd>
            <dt>Model</dt>
            <dd>
              {a.model} <span class="muted">via {a.provider}</span>
            </dd>
            <dt>Load</dt>
            <dd>
              <Meter percent={a.load * 100} /> {a.active_steps} of {a.max_concurrency} steps
            </dd>
            <dt>Since the journal began</dt>
            <dd>
              {f.count(a.completed_steps)} completed, {f.count(a.failed_steps)} failed · success {f.ratio(a.success_rate)} · mean{" "}
              {f.duration(a.average_response_time)}
            </dd>
            <dt>Last {f.duration(a.recent.window_seconds)} (what alerts judge)</dt>
            <dd>
              {f.count(a.recent.completed)} completed, {f.count(a.recent.failed)} failed · success{" "}
              {f.ratio(a.recent.success_rate)} · errors {f.ratio(a.recent.error_rate)} · mean{" "}
              {f.duration(a.recent.average_response_time)} · p95 {f.duration(a.recent.p95_response_time)}
            </dd>
            <dt>Defined in</dt>
            <dd class="mono">{a.source}</dd>
            <dt>Capabilities</dt>
            <dd>
              <Chips items={a.capabilities} />
            </dd>
          </dl>
          <AgentControls
            agent={a}
            onDone={() => {
              agent.refresh();
              props.onChanged();
            }}
          />
        </>
      )}
    </Panel>
  );
}

/** Where a definition lives, in words. */
function SourceNote(props: { definition: AgentDefinition | null; id: string }) {
  const d = props.definition;
  if (d === null) {
    return (
      <>
        a new file, <span class="mono">{props.id.trim() || "<id>"}.toml</span>, in the user agent directory
      </>
    );
  }
  if (d.source === "builtin") {
    return <>built-in; saving writes a user file that overrides it</>;
  }
  return (
    <>
      <span class="mono">{d.source}</span>
      {d.builtin ? " (overrides the built-in agent of the same id)" : ""}
    </>
  );
}

/**
 * The editor's form: `definition` null for a new agent. Fields are checked on Save, then
 * again on every change so a fixed field loses its error at once; `taken` are the ids a new
 * agent may not have.
 */
function AgentForm(props: {
  definition: AgentDefinition | null;
  taken: string[];
  onClose: () => void;
  onSaved: () => void;
  onDeleted: (removal: AgentRemoval) => void;
}) {
  const d = props.definition;
  const [fields, setFields] = useState<AgentFormFields>(() => (d ? formOfSpec(d.definition) : emptyAgentForm()));
  const [checked, setChecked] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const save = useAction<AgentInfo>();
  const remove = useAction<AgentRemoval>();
  const validated = checked ? validateAgent(fields, d ? [] : props.taken) : null;
  const errors = validated && !validated.ok ? validated.errors : {};
  const set = (key: keyof AgentFormFields) => (e: Event) => {
    const value = (e.currentTarget as HTMLInputElement).value;
    setFields((old) => ({ ...old, [key]: value }));
  };
  const chars = promptLength(fields.system_prompt);

  const onSubmit = (e: Event): void => {
    e.preventDefault();
    setChecked(true);
    const result = validateAgent(fields, d ? [] : props.taken);
    if (!result.ok) return;
    const spec = result.spec;
    void save
      .run(() =>
        d ? api().put<AgentInfo>(`/agents/${encodeURIComponent(spec.id)}`, spec) : api().post<AgentInfo>("/agents", spec),
      )
      .then((info) => {
        if (!info) return;
        notify(d ? `Agent “${info.name}” saved.` : `Agent “${info.name}” created in ${info.source}.`);
        props.onSaved();
      });
  };

  const onDelete = (): void => {
    if (!d) return;
    void remove
      .run(() => api().del<AgentRemoval>(`/agents/${encodeURIComponent(d.definition.id)}`))
      .then((removal) => {
        if (!removal) return;
        notify(
          removal.restored
            ? `Built-in agent “${removal.restored.name}” restored; ${removal.deleted_file} deleted.`
            : `Agent “${removal.id}” deleted with ${removal.deleted_file}.`,
        );
        props.onDeleted(removal);
      });
  };

  const field = (name: keyof AgentFormFields) => ({ "data-testid": `agent-field-${name}` });
  const errorId = (name: keyof AgentFormFields) => `agent-error-${name}`;
  const deleteLabel = d?.builtin ? "Restore built-in" : "Delete";
  return (
    <form class="form" onSubmit={onSubmit} noValidate data-testid="agent-form" data-mode={d ? "edit" : "new"}>
      <div class="field-row">
        <Field
          label="Id"
          error={errors.id}
          errorTestid={errorId("id")}
          hint={d ? "An agent's id cannot change." : "Lowercase letters, digits and “-”; it names the file too."}
        >
          <input
            class="mono"
            value={fields.id}
            onInput={set("id")}
            readOnly={d !== null}
            maxLength={64}
            placeholder="code-reviewer"
            spellcheck={false}
            {...field("id")}
          />
        </Field>
        <Field label="Name" error={errors.name} errorTestid={errorId("name")}>
          <input value={fields.name} onInput={set("name")} placeholder="Code Reviewer" {...field("name")} />
        </Field>
      </div>
      <div class="field-row">
        <Field label="Category" error={errors.category} errorTestid={errorId("category")}>
          <select value={fields.category} onChange={set("category")} {...field("category")}>
            {AGENT_CATEGORIES.map((c) => (
              <option key={c} value={c}>
                {f.humanize(c)}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Role" error={errors.role} errorTestid={errorId("role")}>
          <select value={fields.role} onChange={set("role")} {...field("role")}>
            {AGENT_ROLES.map((r) => (
              <option key={r} value={r}>
                {f.humanize(r)}
              </option>
            ))}
          </select>
        </Field>
      </div>
      <Field
        label="Capabilities"
        error={errors.capabilities}
        errorTestid={errorId("capabilities")}
        hint="Separated by commas or spaces; tasks whose requirements name one of them can be routed here."
      >
        <input
          class="mono"
          value={fields.capabilities}
          onInput={set("capabilities")}
          placeholder="code_review, security_review"
          spellcheck={false}
          {...field("capabilities")}
        />
      </Field>
      <div class="field-row">
        <Field label="Model" hint="empty: the default model">
          <input value={fields.model} onInput={set("model")} placeholder="default" spellcheck={false} {...field("model")} />
        </Field>
        <Field label="Provider" hint="empty: the default provider">
          <input
            value={fields.provider}
            onInput={set("provider")}
            placeholder="default"
            spellcheck={false}
            {...field("provider")}
          />
        </Field>
        <Field label="Temperature" error={errors.temperature} errorTestid={errorId("temperature")} hint="0.0 to 2.0">
          <input
            value={fields.temperature}
            onInput={set("temperature")}
            inputMode="decimal"
            class="narrow"
            {...field("temperature")}
          />
        </Field>
        <Field
          label="Steps at once"
          error={errors.max_concurrency}
          errorTestid={errorId("max_concurrency")}
          hint={`max_concurrency, 1 to ${MAX_CONCURRENCY}`}
        >
          <input
            type="number"
            min={1}
            max={MAX_CONCURRENCY}
            step={1}
            value={fields.max_concurrency}
            onInput={set("max_concurrency")}
            class="narrow"
            {...field("max_concurrency")}
          />
        </Field>
      </div>
      <Field
        label="System prompt"
        error={errors.system_prompt}
        errorTestid={errorId("system_prompt")}
        hint={
          <span class={chars > MAX_SYSTEM_PROMPT_CHARS ? "tone-text-bad" : ""} data-testid="agent-prompt-count">
            {f.count(chars)} / {f.count(MAX_SYSTEM_PROMPT_CHARS)} characters
          </span>
        }
      >
        <textarea
          value={fields.system_prompt}
          onInput={set("system_prompt")}
          rows={8}
          placeholder="You are a meticulous code reviewer. Point out bugs first, then style."
          {...field("system_prompt")}
        />
      </Field>
      <p class="muted small" data-testid="agent-source">
        Defined in: <SourceNote definition={d} id={fields.id} />
      </p>
      {(save.error || remove.error) && (
        <div data-testid="agent-form-error">
          <ErrorNote error={save.error} prefix="Not saved" />
          <ErrorNote error={remove.error} prefix={d?.builtin ? "Not restored" : "Not deleted"} />
        </div>
      )}
      {validated && !validated.ok && (
        <p class="field-error" data-testid="agent-form-invalid">
          Fix the fields marked above.
        </p>
      )}
      <div class="button-row">
        <Button needs="operator" type="submit" kind="primary" busy={save.busy} disabled={remove.busy} testid="agent-save">
          {d ? "Save" : "Create agent"}
        </Button>
        <Button onClick={props.onClose} testid="agent-cancel">
          Cancel
        </Button>
        <span class="spacer" />
        {d &&
          d.source !== "builtin" &&
          (confirming ? (
            <span class="confirm" data-testid="agent-delete-confirm-box">
              <span>
                {d.builtin
                  ? "Delete the user file and go back to the built-in definition?"
                  : "Delete the user file? The agent is removed."}
              </span>
              <Button
                needs="operator"
                kind="danger"
                busy={remove.busy}
                disabled={save.busy}
                onClick={onDelete}
                testid="agent-delete-confirm"
              >
                {deleteLabel}
              </Button>
              <Button onClick={() => setConfirming(false)} testid="agent-delete-cancel">
                Keep it
              </Button>
            </span>
          ) : (
            <Button
              needs="operator"
              kind="danger"
              disabled={save.busy}
              onClick={() => setConfirming(true)}
              testid={`agent-delete-${d.definition.id}`}
              title={d.builtin ? "Delete the user file that overrides the built-in agent" : "Delete this agent's user file"}
            >
              {deleteLabel}
            </Button>
          ))}
      </div>
    </form>
  );
}

/** The editor panel: loads an existing agent's definition first, then its form. */
function AgentEditor(props: {
  editing: Editing;
  taken: string[];
  onClose: () => void;
  onSaved: () => void;
  onDeleted: (removal: AgentRemoval) => void;
}) {
  const id = props.editing.kind === "edit" ? props.editing.id : null;
  const definition = usePoll<AgentDefinition | null>(
    (signal) =>
      id === null
        ? Promise.resolve(null)
        : api().get<AgentDefinition>(`/agents/${encodeURIComponent(id)}/definition`, {}, signal),
    0,
    [id],
  );
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => box.current?.scrollIntoView({ block: "start" }), [id]);
  // Until the definition asked for arrives, the one before may still be there.
  const loaded = definition.data?.definition.id === id ? definition.data : null;
  const form = (d: AgentDefinition | null) => (
    <AgentForm
      key={id ?? "new"}
      definition={d}
      taken={props.taken}
      onClose={props.onClose}
      onSaved={props.onSaved}
      onDeleted={props.onDeleted}
    />
  );
  return (
    <div ref={box}>
      <Panel
        title={id === null ? "New agent" : `Edit ${loaded?.definition.name ?? id}`}
        actions={
          <button type="button" class="link" onClick={props.onClose} aria-label="Close the editor">
            Close ×
          </button>
        }
        testid="agent-editor"
      >
        {id === null ? (
          form(null)
        ) : loaded ? (
          form(loaded)
        ) : definition.error ? (
          <ErrorNote error={definition.error} prefix="Definition" />
        ) : (
          <Loading what="the definition" />
        )}
      </Panel>
    </div>
  );
}

export function Agents(props: { agentId?: string }) {
  const list = usePoll((signal) => api().get<AgentList>("/agents", {}, signal), 10_000, []);
  const [filter, setFilter] = useState<AgentFilter>({ status: "all", capability: "", text: "" });
  const [editing, setEditing] = useState<Editing | null>(null);
  const [revision, setRevision] = useState(0);
  const reread = useDebounced(list.refresh, 1000);
  useSocket((m) => {
    if (m.type === "agent_status" || m.type === "step_finished") reread();
  });
  const agents = list.data?.agents ?? [];
  const caps = useMemo(() => capabilityCounts(agents), [list.data]);
  const shown = useMemo(() => filterAgents(agents, filter), [list.data, filter]);
  const edit = (id: string): void => setEditing({ kind: "edit", id });
  const changed = (): void => {
    setEditing(null);
    setRevision((r) => r + 1);
    list.refresh();
  };
  const deleted = (removal: AgentRemoval): void => {
    changed();
    if (removal.restored === null && removal.id === props.agentId) window.location.hash = routeHash({ view: "agents" });
  };
  return (
    <div class="view">
      <div class="title-row">
        <h1>Agents</h1>
        <Button needs="operator" kind="primary" onClick={() => setEditing({ kind: "new" })} testid="agent-new">
          New agent
        </Button>
      </div>
      {editing && (
        <AgentEditor
          editing={editing}
          taken={agents.map((a) => a.id)}
          onClose={() => setEditing(null)}
          onSaved={changed}
          onDeleted={deleted}
        />
      )}
      <div class={props.agentId ? "split" : ""}>
        <Panel
          title={list.data ? `Registry (${shown.length} of ${agents.length})` : "Registry"}
          actions={
            <div class="filters">
              <select
                value={filter.status}
                onChange={(e) => setFilter({ ...filter, status: (e.currentTarget as HTMLSelectElement).value })}
                aria-label="Status"
                data-testid="agent-filter-status"
              >
                <option value="all">Every status</option>
                <option value="healthy">Healthy</option>
                <option value="degraded">Degraded</option>
                <option value="stopped">Stopped</option>
              </select>
              <select
                value={filter.capability}
                onChange={(e) => setFilter({ ...filter, capability: (e.currentTarget as HTMLSelectElement).value })}
                aria-label="Capability"
                data-testid="agent-filter-capability"
              >
                <option value="">Every capability</option>
                {caps.map((c) => (
                  <option key={c.name} value={c.name}>
                    {c.name} ({c.agents})
                  </option>
                ))}
              </select>
              <input
                type="search"
                placeholder="Search"
                value={filter.text}
                onInput={(e) => setFilter({ ...filter, text: (e.currentTarget as HTMLInputElement).value })}
                aria-label="Search agents"
              />
            </div>
          }
        >
          <ErrorNote error={list.error} />
          {!list.data ? (
            list.error ? null : (
              <Loading what="agents" />
            )
          ) : shown.length === 0 ? (
            <Empty>No agent matches these filters.</Empty>
          ) : (
            <div class="table-wrap">
              <table class="table" data-testid="agent-table">
                <thead>
                  <tr>
                    <th>Agent</th>
                    <th>Status</th>
                    {!props.agentId && <th>Category</th>}
                    {!props.agentId && <th>Model</th>}
                    {!props.agentId && <th>Load</th>}
                    <th class="num">Done / failed</th>
                    <th class="num">Success</th>
                    <th class="num">Mean time</th>
                    {!props.agentId && <th class="num">Last 5 min</th>}
                  </tr>
                </thead>
                <tbody>
                  {shown.map((a) => (
                    <tr key={a.id} class={a.id === props.agentId ? "selected" : ""} data-testid="agent-row" data-agent-id={a.id}>
                      <td>
                        <div class="row-title">
                          <a href={routeHash({ view: "agents", agentId: a.id })}>{a.name}</a>
                          {a.source !== "builtin" && (
                            <Pill tone="idle" title={a.source}>
                              user
                            </Pill>
                          )}
                          <Button needs="operator" small onClick={() => edit(a.id)} testid={`agent-edit-${a.id}`}>
                            Edit
                          </Button>
                        </div>
                        <div class="muted small">
                          {a.capabilities.slice(0, 3).join(", ")}
                          {a.capabilities.length > 3 ? "…" : ""}
                        </div>
                      </td>
                      <td>
                        <StatusPill status={a.status} />
                      </td>
                      {!props.agentId && <td>{f.humanize(a.category)}</td>}
                      {!props.agentId && <td class="small">{a.model}</td>}
                      {!props.agentId && (
                        <td>
                          <Meter percent={a.load * 100} />
                        </td>
                      )}
                      <td class="num">
                        {f.count(a.completed_steps)} / {f.count(a.failed_steps)}
                      </td>
                      <td class="num">{f.ratio(a.success_rate)}</td>
                      <td class="num">{f.duration(a.average_response_time)}</td>
                      {!props.agentId && (
                        <td class="num" title="success rate and p95 over the recent window">
                          {a.recent.completed + a.recent.failed === 0
                            ? "—"
                            : `${f.ratio(a.recent.success_rate, 0)} · p95 ${f.duration(a.recent.p95_response_time)}`}
                        </td>
                      )}
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </Panel>
        {props.agentId && <AgentDetail id={props.agentId} revision={revision} onChanged={list.refresh} onEdit={edit} />}
      </div>
    </div>
  );
}
