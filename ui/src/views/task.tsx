// One task: `GET /tasks/{id}` and its session timeline, kept live by its own `/ws?tokens=true`
// socket (carrying the session's token; token chunks are opt-in, so only this view asks for them and only while the task
// can still change), with cancel (`DELETE /tasks/{id}`) and approve
// (`POST /tasks/{id}/approve`).

import { useEffect, useRef, useState } from "preact/hooks";
import type { ApiError } from "../api";
import * as f from "../format";
import { routeHash } from "../router";
import { emptyTimeline, foldEvent, tokenTotals, wantsReread, withDetail, type Timeline, type TimelineStep } from "../timeline";
import { TERMINAL, type TaskDetail, type WsMessage } from "../types";
import { EventSocket, type SocketState } from "../ws";
import { api, openSocket } from "../ui/app-state";
import { Button, Chips, Empty, ErrorNote, Fold, Json, Loading, Panel, Pill, StatusPill } from "../ui/components";
import { asApiError, useAction } from "../ui/hooks";

/** How often buffered events are folded into the view (tokens arrive much faster). */
const FLUSH_MS = 100;

function useTaskTimeline(taskId: string): {
  timeline: Timeline | null;
  error: ApiError | null;
  live: SocketState;
  reload: () => void;
} {
  const [timeline, setTimeline] = useState<Timeline | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [live, setLive] = useState<SocketState>("connecting");
  const reloadRef = useRef<() => void>(() => undefined);

  useEffect(() => {
    let alive = true;
    let buffer: WsMessage[] = [];
    let flushTimer: ReturnType<typeof setTimeout> | undefined;
    let rereadTimer: ReturnType<typeof setTimeout> | undefined;
    let socket: EventSocket | null = null;
    setTimeline(null);
    setError(null);

    const closeIfDone = (status: string): void => {
      if (TERMINAL.has(status) && socket) {
        socket.stop();
        socket = null;
        setLive("closed");
      }
    };
    const load = async (): Promise<void> => {
      try {
        const detail = await api().get<TaskDetail>(`/tasks/${encodeURIComponent(taskId)}`);
        if (!alive) return;
        setTimeline((old) => withDetail(old, detail));
        setError(null);
        closeIfDone(detail.status);
      } catch (err) {
        if (alive) setError(asApiError(err));
      }
    };
    const reread = (): void => {
      clearTimeout(rereadTimer);
      rereadTimer = setTimeout(() => void load(), 300);
    };
    const flush = (): void => {
      flushTimer = undefined;
      const events = buffer;
      buffer = [];
      setTimeline((old) => events.reduce(foldEvent, old ?? emptyTimeline(taskId)));
    };
    reloadRef.current = () => void load();
    socket = openSocket("/ws", { tokens: true }, {
      onMessage: (m) => {
        if (m.type !== "lagged" && m.task_id !== taskId) return;
        buffer.push(m);
        if (flushTimer === undefined) flushTimer = setTimeout(flush, FLUSH_MS);
        if (wantsReread(m, taskId)) reread();
      },
      onState: (state) => {
        if (!alive) return;
        setLive(state);
        // Whatever happened while the socket was down is in the task now.
        if (state === "open") reread();
      },
    });
    void load();
    return () => {
      alive = false;
      clearTimeout(flushTimer);
      clearTimeout(rereadTimer);
      socket?.stop();
    };
  }, [taskId]);

  return { timeline, error, live, reload: () => reloadRef.current() };
}

function Approvals(props: { timeline: Timeline; onDone: () => void }) {
  const detail = props.timeline.detail;
  const [by, setBy] = useState("dashboard");
  const approve = useAction<unknown>();
  const required = detail?.constraints.required_approvals ?? [];
  if (required.length === 0) return null;
  const given = detail?.approvals ?? [];
  return (
    <Panel title="Approvals" testid="approvals-panel">
      <ul class="plain-list">
        {given.map((a) => (
          <li key={a.name}>
            <Pill tone="good">approved</Pill> <strong>{a.name}</strong>{" "}
            <span class="muted">
              by {a.approved_by}, {f.ago(a.approved_at)}
            </span>
          </li>
        ))}
        {props.timeline.pendingApprovals.map((name) => (
          <li key={name}>
            <Pill tone="warn">pending</Pill> <strong>{name}</strong>{" "}
            <Button
              needs="operator"
              kind="primary"
              busy={approve.busy}
              testid="approve-button"
              onClick={() =>
                void approve
                  .run(() =>
                    api().post(`/tasks/${encodeURIComponent(props.timeline.taskId)}/approve`, {
                      approval: name,
                      approved_by: by.trim() || "dashboard",
                    }),
                  )
                  .then((ok) => ok && props.onDone())
              }
            >
              Approve “{name}”
            </Button>
          </li>
        ))}
      </ul>
      {props.timeline.pendingApprovals.length > 0 && (
        <label class="inline-field">
          <span class="muted small">Approved by</span>
          <input value={by} onInput={(e) => setBy((e.currentTarget as HTMLInputElement).value)} data-testid="approved-by" />
        </label>
      )}
      <ErrorNote error={approve.error} prefix="Not approved" />
    </Panel>
  );
}

function LiveOutput(props: { timeline: Timeline; live: SocketState }) {
  const streaming = props.timeline.steps.filter((s) => s.streamed !== "");
  const running = props.timeline.steps.filter((s) => s.status === "running");
  const ref = useRef<HTMLDivElement>(null);
  const text = streaming.map((s) => s.streamed.length).join(",");
  useEffect(() => {
    const el = ref.current;
    if (el && el.scrollHeight - el.scrollTop - el.clientHeight < 80) el.scrollTop = el.scrollHeight;
  }, [text]);
  const terminal = TERMINAL.has(props.timeline.status);
  return (
    <Panel
      title="Live output"
      actions={
        <Pill tone={props.live === "open" ? "good" : terminal ? "idle" : "warn"}>
          {props.live === "open" ? "streaming" : terminal ? "finished" : props.live}
        </Pill>
      }
    >
      <div class="token-stream" ref={ref} data-testid="token-stream" aria-live="polite">
        {streaming.length === 0 ? (
          <p class="muted">
            {terminal
              ? "The task has ended; each step's output is in the timeline below."
              : running.length > 0
                ? `Waiting for model output from ${running.map((s) => s.agentId).join(", ")}…`
                : "Model output appears here while steps run."}
          </p>
        ) : (
          streaming.map((s) => (
            <div class="stream-step" key={s.key} data-step={s.key}>
              <div class="stream-head">
                <span class="mono">{s.key}</span> · {s.agentId} <StatusPill status={s.status} />
              </div>
              <pre class="stream-text">
                {s.dropped > 0 ? `… (${f.count(s.dropped)} earlier characters not kept)\n` : ""}
                {s.streamed}
              </pre>
            </div>
          ))
        )}
      </div>
    </Panel>
  );
}

/** The answer: its `output` text first when it has one, the whole JSON folded below. */
function Result(props: { result: unknown }) {
  const r = props.result;
  const output =
    typeof r === "object" && r !== null && typeof (r as { output?: unknown }).output === "string"
      ? (r as { output: string }).output
      : null;
  return (
    <Panel title="Result">
      {output !== null ? (
        <>
          <pre class="result-text" data-testid="task-result">
            {output}
          </pre>
          <Fold summary="Whole result (JSON: contributions, synthesiser, pattern)">
            <Json value={r} />
          </Fold>
        </>
      ) : (
        <Json value={r} testid="task-result" />
      )}
    </Panel>
  );
}

function StepRow(props: { step: TimelineStep }) {
  const s = props.step;
  return (
    <li class={`step step-${s.status}`} data-testid="timeline-step" data-step={s.key} data-status={s.status}>
      <div class="step-head">
        <span class="step-seq">{s.seq + 1}</span>
        <span class="mono step-key">{s.key}</span>
        <span class="muted">{s.kind}</span>
        <a href={routeHash({ view: "agents", agentId: s.agentId })}>{s.agentId}</a>
        <StatusPill status={s.status} />
        <span class="step-figures">
          {s.attempts > 1 ? `${s.attempts} attempts · ` : s.attempts === 1 ? "1 attempt · " : ""}
          {f.duration(s.duration)} · {f.count(s.promptTokens)} + {f.count(s.completionTokens)} tokens
          {s.model ? ` · ${s.model}` : ""}
        </span>
      </div>
      {s.error && <div class="error-note">{s.error}</div>}
      {s.output !== null && (
        <Fold summary={`Output (${f.count(s.output.length)} characters)`}>
          <pre class="step-output">{s.output}</pre>
        </Fold>
      )}
      {s.input !== null && (
        <Fold summary="Prompt">
          <pre class="step-output muted">{s.input}</pre>
        </Fold>
      )}
    </li>
  );
}

export function TaskView(props: { taskId: string }) {
  const { timeline, error, live, reload } = useTaskTimeline(props.taskId);
  const cancel = useAction<unknown>();
  if (!timeline?.detail) {
    return (
      <div class="view">
        <p>
          <a href={routeHash({ view: "tasks" })}>← Tasks</a>
        </p>
        {error ? <ErrorNote error={error} /> : <Loading what="the task" />}
      </div>
    );
  }
  const d = timeline.detail;
  const terminal = TERMINAL.has(timeline.status);
  const tokens = tokenTotals(timeline);
  const took = f.elapsed(d.started_at, d.completed_at);
  return (
    <div class="view" data-testid="task-view" data-task-id={d.id}>
      <p>
        <a href={routeHash({ view: "tasks" })}>← Tasks</a>
      </p>
      <div class="title-row">
        <h1>{d.name}</h1>
        <StatusPill status={timeline.status} testid="task-status" />
        <span class="spacer" />
        {!terminal && (
          <Button
            needs="operator"
            kind="danger"
            busy={cancel.busy}
            testid="cancel-button"
            onClick={() => void cancel.run(() => api().del(`/tasks/${encodeURIComponent(d.id)}`)).then((ok) => ok && reload())}
          >
            Cancel task
          </Button>
        )}
      </div>
      <ErrorNote error={error} />
      <ErrorNote error={cancel.error} prefix="Not cancelled" />
      {timeline.stale && <p class="muted">Some live events were missed; reading the task again.</p>}
      <Panel title="Task">
        <dl class="facts">
          <dt>Id · session</dt>
          <dd class="mono small">
            {d.id} · {d.session_id}
          </dd>
          <dt>Pattern · priority</dt>
          <dd>
            {d.coordination_pattern} · {d.priority}
            {d.type ? ` · type ${d.type}` : ""}
          </dd>
          <dt>Requirements</dt>
          <dd>
            <Chips items={d.requirements} />
          </dd>
          <dt>Agents</dt>
          <dd>
            {timeline.agents.length === 0 ? (
              <span class="muted">not selected yet</span>
            ) : (
              timeline.agents.map((a, i) => (
                <span key={a}>
                  {i > 0 ? ", " : ""}
                  <a href={routeHash({ view: "agents", agentId: a })}>{a}</a>
                </span>
              ))
            )}
          </dd>
          <dt>Submitted</dt>
          <dd>
            {f.dateTime(d.created_at)} <span class="muted">({f.ago(d.created_at)})</span>
          </dd>
          <dt>Ran</dt>
          <dd>
            {d.started_at ? f.dateTime(d.started_at) : "not started"}
            {d.completed_at ? ` → ${f.dateTime(d.completed_at)} (${f.duration(took)})` : ""}
          </dd>
          <dt>Tokens</dt>
          <dd>
            {f.count(tokens.prompt)} prompt + {f.count(tokens.completion)} completion
          </dd>
          <dt>Constraints</dt>
          <dd>
            max agents {d.constraints.max_agents ?? "default"} · time limit{" "}
            {d.constraints.estimated_duration === undefined ? "none" : f.duration(d.constraints.estimated_duration)}
          </dd>
        </dl>
        {d.description && (
          <Fold summary="Description" open>
            <p class="prewrap">{d.description}</p>
          </Fold>
        )}
        {d.payload !== null && typeof d.payload === "object" && Object.keys(d.payload).length > 0 && (
          <Fold summary="Payload">
            <Json value={d.payload} />
          </Fold>
        )}
      </Panel>
      <Approvals timeline={timeline} onDone={reload} />
      {timeline.status === "completed" && timeline.result !== undefined && <Result result={timeline.result} />}
      {timeline.error && (
        <Panel title={timeline.status === "cancelled" ? "Cancelled" : "Failure"}>
          <div class="error-note" data-testid="task-error">
            {timeline.error}
          </div>
        </Panel>
      )}
      <LiveOutput timeline={timeline} live={live} />
      <Panel title={`Session timeline (${timeline.steps.length} steps)`}>
        {timeline.steps.length === 0 ? (
          <Empty>{terminal ? "No step ran." : "No step has started yet."}</Empty>
        ) : (
          <ol class="timeline" data-testid="timeline">
            {timeline.steps.map((s) => (
              <StepRow key={s.key} step={s} />
            ))}
          </ol>
        )}
      </Panel>
    </div>
  );
}
