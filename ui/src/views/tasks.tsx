// Tasks: the submission form (`POST /tasks`, checked first by `validateTaskForm`) and the
// list with its status filter (`GET /tasks?status&limit`), kept fresh by `/ws` events.

import { useMemo, useState } from "preact/hooks";
import { capabilityCounts } from "../agents";
import * as f from "../format";
import { routeHash } from "../router";
import { emptyTaskForm, validateTaskForm, type TaskFormErrors, type TaskFormFields } from "../taskForm";
import { PATTERNS, PRIORITIES, TASK_STATUSES, type AgentList, type Submitted, type TaskList } from "../types";
import { api } from "../ui/app-state";
import { Button, Empty, ErrorNote, Field, Loading, Panel, StatusPill } from "../ui/components";
import { useAction, useDebounced, usePoll, useSocket } from "../ui/hooks";

const PATTERN_NOTES: Record<string, string> = {
  collaborative: "agents work in parallel, the best-ranked synthesises",
  hierarchical: "a coordinator plans subtasks, workers run them",
  pipeline: "one stage per agent, each building on the last",
  swarm: "rounds over the bus, then a vote",
};

function RequirementPicker(props: {
  value: string[];
  options: { name: string; agents: number }[];
  onChange: (v: string[]) => void;
}) {
  const [query, setQuery] = useState("");
  const q = query.trim().toLowerCase();
  const shown = props.options.filter((o) => q === "" || o.name.includes(q));
  const toggle = (name: string): void => {
    props.onChange(props.value.includes(name) ? props.value.filter((v) => v !== name) : [...props.value, name]);
  };
  return (
    <div class="picker" data-testid="task-requirements">
      <div class="picker-chosen">
        {props.value.length === 0 ? (
          <span class="muted">none chosen</span>
        ) : (
          props.value.map((v) => (
            <button type="button" class="chip removable" key={v} onClick={() => toggle(v)} title="Remove">
              {v} ×
            </button>
          ))
        )}
      </div>
      <input
        type="search"
        placeholder={`Filter ${props.options.length} capabilities`}
        value={query}
        onInput={(e) => setQuery((e.currentTarget as HTMLInputElement).value)}
        data-testid="task-requirements-filter"
      />
      <div class="picker-options">
        {shown.map((o) => (
          <label key={o.name} class="check">
            <input
              type="checkbox"
              checked={props.value.includes(o.name)}
              onChange={() => toggle(o.name)}
              value={o.name}
              data-testid="task-requirement-option"
            />
            <span>{o.name}</span>
            <span class="muted small">{o.agents}</span>
          </label>
        ))}
        {shown.length === 0 && <span class="muted">No capability matches.</span>}
      </div>
    </div>
  );
}

function TaskForm() {
  const agents = usePoll((signal) => api().get<AgentList>("/agents", {}, signal), 0, []);
  const caps = useMemo(() => capabilityCounts(agents.data?.agents ?? []), [agents.data]);
  const [fields, setFields] = useState<TaskFormFields>(emptyTaskForm);
  const [errors, setErrors] = useState<TaskFormErrors>({});
  const submit = useAction<Submitted>();
  const set = (key: keyof TaskFormFields) => (e: Event) => {
    const value = (e.currentTarget as HTMLInputElement).value;
    setFields((old) => ({ ...old, [key]: value }));
  };

  const onSubmit = (e: Event): void => {
    e.preventDefault();
    const checked = validateTaskForm(
      fields,
      caps.map((c) => c.name),
      agents.data?.agents.length ?? 0,
    );
    if (!checked.ok) {
      setErrors(checked.errors);
      return;
    }
    setErrors({});
    void submit
      .run(() => api().post<Submitted>("/tasks", checked.request))
      .then((answer) => {
        if (answer) {
          setFields(emptyTaskForm());
          window.location.hash = routeHash({ view: "task", taskId: answer.task_id });
        }
      });
  };

  return (
    <form class="form" onSubmit={onSubmit} noValidate data-testid="task-form">
      <Field label="Name" error={errors.name}>
        <input
          value={fields.name}
          onInput={set("name")}
          maxLength={200}
          placeholder="Review the authentication module"
          data-testid="task-name"
        />
      </Field>
      <Field label="Description" error={errors.description} hint="The prompt the agents work from.">
        <textarea value={fields.description} onInput={set("description")} rows={3} data-testid="task-description" />
      </Field>
      <div class="field-row">
        <Field label="Priority" error={errors.priority}>
          <select value={fields.priority} onChange={set("priority")} data-testid="task-priority">
            {PRIORITIES.map((p) => (
              <option key={p} value={p}>
                {p}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Pattern" error={errors.pattern}>
          <select value={fields.pattern} onChange={set("pattern")} data-testid="task-pattern">
            {PATTERNS.map((p) => (
              <option key={p} value={p}>
                {p}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Type" hint="optional, e.g. code_review">
          <input value={fields.type} onInput={set("type")} data-testid="task-type" />
        </Field>
      </div>
      <p class="muted small">{PATTERN_NOTES[fields.pattern]}</p>
      <Field
        label="Requirements"
        error={errors.requirements}
        hint="Capabilities the task needs; each is covered by at least one agent."
      >
        {agents.error ? (
          <ErrorNote error={agents.error} prefix="Capabilities" />
        ) : (
          <RequirementPicker
            value={fields.requirements}
            options={caps}
            onChange={(requirements) => setFields((old) => ({ ...old, requirements }))}
          />
        )}
      </Field>
      <Field label="Payload (JSON object)" error={errors.payload}>
        <textarea
          class="mono"
          value={fields.payload}
          onInput={set("payload")}
          rows={4}
          placeholder={'{"language": "python"}'}
          data-testid="task-payload"
        />
      </Field>
      <div class="field-row">
        <Field label="Max agents" error={errors.maxAgents}>
          <input type="number" min={1} value={fields.maxAgents} onInput={set("maxAgents")} data-testid="task-max-agents" />
        </Field>
        <Field label="Time limit (s)" error={errors.estimatedDuration} hint="estimated_duration">
          <input
            type="number"
            min={1}
            value={fields.estimatedDuration}
            onInput={set("estimatedDuration")}
            data-testid="task-estimated-duration"
          />
        </Field>
      </div>
      <Field
        label="Required approvals"
        error={errors.approvals}
        hint="Comma-separated names; the task waits until each is given."
      >
        <input
          value={fields.approvals}
          onInput={set("approvals")}
          placeholder="security-review, infrastructure-review"
          data-testid="task-approvals"
        />
      </Field>
      <ErrorNote error={submit.error} prefix="Not submitted" />
      {Object.keys(errors).length > 0 && (
        <p class="field-error" data-testid="task-form-invalid">
          Fix the fields marked above.
        </p>
      )}
      <div class="button-row">
        <Button needs="operator" type="submit" kind="primary" busy={submit.busy} testid="task-submit">
          Submit task
        </Button>
      </div>
    </form>
  );
}

function TaskTable(props: { status: string }) {
  const [limit, setLimit] = useState(50);
  const list = usePoll(
    (signal) => api().get<TaskList>("/tasks", { status: props.status === "all" ? undefined : props.status, limit }, signal),
    10_000,
    [props.status, limit],
  );
  const reread = useDebounced(list.refresh, 500);
  useSocket((m) => {
    if (m.type.startsWith("task_") || m.type === "awaiting_approval") reread();
  });
  return (
    <>
      <ErrorNote error={list.error} />
      {!list.data ? (
        list.error ? null : (
          <Loading what="tasks" />
        )
      ) : list.data.tasks.length === 0 ? (
        <Empty>No tasks{props.status === "all" ? "" : ` with status ${props.status.replace(/_/g, " ")}`}.</Empty>
      ) : (
        <div class="table-wrap">
          <table class="table" data-testid="task-table">
            <thead>
              <tr>
                <th>Task</th>
                <th>Status</th>
                <th>Pattern</th>
                <th>Priority</th>
                <th class="num">Agents</th>
                <th class="num">Submitted</th>
                <th class="num">Took</th>
              </tr>
            </thead>
            <tbody>
              {list.data.tasks.map((t) => (
                <tr key={t.id} data-testid="task-row" data-task-id={t.id}>
                  <td>
                    <a href={routeHash({ view: "task", taskId: t.id })}>{t.name}</a>
                    <div class="muted small mono" title={t.id}>
                      …{f.shortId(t.id)}
                    </div>
                  </td>
                  <td>
                    <StatusPill status={t.status} />
                  </td>
                  <td>{t.coordination_pattern}</td>
                  <td>{t.priority}</td>
                  <td class="num">{t.assigned_agents.length || "—"}</td>
                  <td class="num" title={f.dateTime(t.created_at)}>
                    {f.ago(t.created_at)}
                  </td>
                  <td class="num">
                    {t.completed_at ? f.duration(f.elapsed(t.started_at ?? t.created_at, t.completed_at)) : "—"}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {list.data.tasks.length >= limit && (
            <div class="button-row">
              <Button onClick={() => setLimit(Math.min(1000, limit * 2))}>Show more</Button>
            </div>
          )}
        </div>
      )}
    </>
  );
}

export function Tasks(props: { status?: string }) {
  const status = props.status ?? "all";
  const choose = (value: string): void => {
    window.location.hash = routeHash(value === "all" ? { view: "tasks" } : { view: "tasks", status: value });
  };
  return (
    <div class="view">
      <h1>Tasks</h1>
      <div class="split form-split">
        <Panel title="New task">
          <TaskForm />
        </Panel>
        <Panel
          title="Tasks"
          actions={
            <select
              value={status}
              onChange={(e) => choose((e.currentTarget as HTMLSelectElement).value)}
              aria-label="Status"
              data-testid="task-filter-status"
            >
              <option value="all">Every status</option>
              <option value="active">Active (unfinished)</option>
              {TASK_STATUSES.map((s) => (
                <option key={s} value={s}>
                  {s.replace(/_/g, " ")}
                </option>
              ))}
            </select>
          }
        >
          <TaskTable status={status} />
        </Panel>
      </div>
    </div>
  );
}
