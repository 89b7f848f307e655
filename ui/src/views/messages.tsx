// Messages: send (`POST /messages/send`) and broadcast (`POST /messages/broadcast`) through
// the bus's rate-limited ingress, the dead-letter queue (list by reason, inspect, replay,
// delete one, purge all), the processes on the bus (`GET /workers`) and the bus figures
// of `/status`.

import { useState } from "preact/hooks";
import * as f from "../format";
import { routeHash } from "../router";
import { blankMessage, messageBody, type MessageFields } from "../messageForm";
import {
  DEAD_REASONS,
  MESSAGE_TYPES,
  PRIORITIES,
  SEND_PATTERNS,
  type AgentList,
  type DeadLetter,
  type DeadLetterList,
  type Sent,
  type SystemStatus,
  type Workers,
} from "../types";
import { api } from "../ui/app-state";
import { Button, Card, Empty, ErrorNote, Field, Json, Loading, Panel, StatusPill } from "../ui/components";
import { useAction, usePoll } from "../ui/hooks";

function Composer(props: { broadcast: boolean; agents: string[] }) {
  const [fields, setFields] = useState<MessageFields>(blankMessage);
  const [errors, setErrors] = useState<Partial<Record<keyof MessageFields, string>>>({});
  const send = useAction<Sent>();
  const set = (key: keyof MessageFields) => (e: Event) => {
    const value = (e.currentTarget as HTMLInputElement).value;
    setFields((old) => ({ ...old, [key]: value }));
  };
  const onSubmit = (e: Event): void => {
    e.preventDefault();
    const checked = messageBody(fields, props.broadcast);
    if (!checked.ok) {
      setErrors(checked.errors);
      return;
    }
    setErrors({});
    const path = props.broadcast ? "/messages/broadcast" : "/messages/send";
    void send.run(() => api().post<Sent>(path, checked.body, { query: { sender_id: fields.sender.trim() || undefined } }));
  };
  const prefix = props.broadcast ? "broadcast" : "send";
  return (
    <form class="form" onSubmit={onSubmit} noValidate data-testid={`${prefix}-form`}>
      <div class="field-row">
        <Field label="Sender">
          <input value={fields.sender} onInput={set("sender")} />
        </Field>
        <Field label="Type">
          <select value={fields.type} onChange={set("type")}>
            {MESSAGE_TYPES.map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Priority">
          <select value={fields.priority} onChange={set("priority")}>
            {PRIORITIES.map((p) => (
              <option key={p} value={p}>
                {p}
              </option>
            ))}
          </select>
        </Field>
      </div>
      {!props.broadcast && (
        <div class="field-row">
          <Field label="Pattern">
            <select value={fields.pattern} onChange={set("pattern")}>
              {SEND_PATTERNS.map((p) => (
                <option key={p} value={p}>
                  {p.replace(/_/g, " ")}
                </option>
              ))}
            </select>
          </Field>
          {fields.pattern === "pub_sub" ? (
            <Field label="Topic" error={errors.topic}>
              <input value={fields.topic} onInput={set("topic")} placeholder="swarm.updates" />
            </Field>
          ) : (
            <Field label="Recipient" error={errors.recipient}>
              <select value={fields.recipient} onChange={set("recipient")} data-testid="send-recipient">
                <option value="">Choose an agent</option>
                {props.agents.map((a) => (
                  <option key={a} value={a}>
                    {a}
                  </option>
                ))}
              </select>
            </Field>
          )}
        </div>
      )}
      <Field label="Payload (JSON object)" error={errors.payload}>
        <textarea
          class="mono"
          rows={3}
          value={fields.payload}
          onInput={set("payload")}
          placeholder={props.broadcast ? '{"message": "Maintenance in 1 hour"}' : '{"action": "analyze"}'}
        />
      </Field>
      <Field label="Expires after (s)" error={errors.ttl} hint="optional ttl_seconds">
        <input type="number" min={1} value={fields.ttl} onInput={set("ttl")} />
      </Field>
      <ErrorNote error={send.error} prefix="Not sent" />
      {send.result && (
        <p class="ok-note">
          {send.result.status}: message <span class="mono">{send.result.message_id}</span> queued on{" "}
          <span class="mono">{send.result.queue}</span>
        </p>
      )}
      <div class="button-row">
        <Button needs="operator" type="submit" kind="primary" busy={send.busy} testid={`${prefix}-submit`}>
          {props.broadcast ? "Broadcast" : "Send"}
        </Button>
      </div>
    </form>
  );
}

function DeadLetterDetail(props: { id: string; onChanged: () => void }) {
  const letter = usePoll(
    (signal) => api().get<DeadLetter>(`/messages/dead-letters/${encodeURIComponent(props.id)}`, {}, signal),
    0,
    [props.id],
  );
  const act = useAction<unknown>();
  const close = (): void => {
    window.location.hash = routeHash({ view: "messages" });
  };
  const d = letter.data;
  return (
    <Panel
      title="Dead letter"
      actions={<a href={routeHash({ view: "messages" })}>Close ×</a>}
      testid="dead-letter-detail"
      class="detail-panel"
    >
      {!d ? (
        letter.error ? (
          <ErrorNote error={letter.error} />
        ) : (
          <Loading />
        )
      ) : (
        <>
          <dl class="facts">
            <dt>Reason</dt>
            <dd>
              <StatusPill status={d.reason} /> {d.detail}
            </dd>
            <dt>Queue</dt>
            <dd class="mono">{d.queue}</dd>
            <dt>Attempts</dt>
            <dd>{d.attempts}</dd>
            <dt>Died</dt>
            <dd>
              {f.dateTime(d.dead_at)} ({f.ago(d.dead_at)})
            </dd>
          </dl>
          {d.message ? (
            <Json value={d.message} />
          ) : (
            <p class="muted">The message could not be read{d.header ? "; its clear-text header:" : "."}</p>
          )}
          {!d.message && d.header !== undefined && <Json value={d.header} />}
          <div class="button-row">
            <Button
              needs="operator"
              kind="primary"
              busy={act.busy}
              disabled={!d.message}
              title={d.message ? "Publish it again and remove the dead letter" : "Only a readable message can be replayed"}
              testid="dead-letter-replay"
              onClick={() =>
                void act
                  .run(() => api().post(`/messages/dead-letters/${encodeURIComponent(d.id)}/replay`))
                  .then((ok) => {
                    if (ok) {
                      props.onChanged();
                      close();
                    }
                  })
              }
            >
              Replay
            </Button>
            <Button
              needs="operator"
              kind="danger"
              busy={act.busy}
              testid="dead-letter-delete"
              onClick={() =>
                void act
                  .run(() => api().del(`/messages/dead-letters/${encodeURIComponent(d.id)}`))
                  .then((ok) => {
                    if (ok) {
                      props.onChanged();
                      close();
                    }
                  })
              }
            >
              Delete
            </Button>
          </div>
          <ErrorNote error={act.error} />
        </>
      )}
    </Panel>
  );
}

function DeadLetters(props: { selected?: string }) {
  const [reason, setReason] = useState("all");
  const list = usePoll(
    (signal) =>
      api().get<DeadLetterList>("/messages/dead-letters", { reason: reason === "all" ? undefined : reason, limit: 200 }, signal),
    10_000,
    [reason],
  );
  const purge = useAction<{ purged: number }>();
  const [confirming, setConfirming] = useState(false);
  return (
    <div class={props.selected ? "split" : ""}>
      <Panel
        title={list.data ? `Dead letters (${list.data.count})` : "Dead letters"}
        actions={
          <div class="filters">
            <select
              value={reason}
              onChange={(e) => setReason((e.currentTarget as HTMLSelectElement).value)}
              aria-label="Reason"
              data-testid="dead-letter-reason"
            >
              <option value="all">Every reason</option>
              {DEAD_REASONS.map((r) => (
                <option key={r} value={r}>
                  {r.replace(/_/g, " ")}
                </option>
              ))}
            </select>
            {confirming ? (
              <>
                <Button
                  needs="operator"
                  kind="danger"
                  busy={purge.busy}
                  testid="dead-letter-purge-confirm"
                  onClick={() =>
                    void purge
                      .run(() => api().del<{ purged: number }>("/messages/dead-letters"))
                      .then(() => {
                        setConfirming(false);
                        list.refresh();
                      })
                  }
                >
                  Delete every dead letter
                </Button>
                <Button onClick={() => setConfirming(false)}>Keep them</Button>
              </>
            ) : (
              <Button
                needs="operator"
                kind="danger"
                disabled={!list.data || list.data.count === 0}
                onClick={() => setConfirming(true)}
                testid="dead-letter-purge"
              >
                Purge all
              </Button>
            )}
          </div>
        }
      >
        <ErrorNote error={list.error} />
        <ErrorNote error={purge.error} prefix="Purge" />
        {purge.result && <p class="ok-note">{purge.result.purged} dead letters deleted.</p>}
        {!list.data ? (
          list.error ? null : (
            <Loading />
          )
        ) : list.data.dead_letters.length === 0 ? (
          <Empty>The dead-letter queue is empty{reason === "all" ? "" : ` for ${reason.replace(/_/g, " ")}`}.</Empty>
        ) : (
          <div class="table-wrap">
            <table class="table" data-testid="dead-letter-table">
              <thead>
                <tr>
                  <th>Died</th>
                  <th>Reason</th>
                  <th>Queue</th>
                  <th>Message</th>
                  <th class="num">Attempts</th>
                </tr>
              </thead>
              <tbody>
                {list.data.dead_letters.map((d) => (
                  <tr key={d.id} class={d.id === props.selected ? "selected" : ""} data-testid="dead-letter-row">
                    <td title={f.dateTime(d.dead_at)}>
                      <a href={routeHash({ view: "messages", deadLetterId: d.id })}>{f.ago(d.dead_at)}</a>
                    </td>
                    <td>
                      <StatusPill status={d.reason} />
                    </td>
                    <td class="mono small">{d.queue}</td>
                    <td class="small">
                      {d.message ? (
                        `${d.message.message_type} from ${d.message.sender_id}`
                      ) : (
                        <span class="muted">unreadable</span>
                      )}
                    </td>
                    <td class="num">{d.attempts}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Panel>
      {props.selected && <DeadLetterDetail id={props.selected} onChanged={list.refresh} />}
    </div>
  );
}

function Bus() {
  const status = usePoll((signal) => api().get<SystemStatus>("/status", {}, signal), 10_000, []);
  const workers = usePoll((signal) => api().get<Workers>("/workers", {}, signal), 10_000, []);
  const bus = status.data?.message_bus;
  const busy = (bus?.queue_depths ?? []).filter((q) => q.waiting + q.pending > 0);
  return (
    <>
      <ErrorNote error={status.error} />
      {bus && (
        <section class="cards">
          <Card
            label="Backend"
            value={bus.backend}
            note={bus.available ? `node ${bus.node_id ?? "—"}` : (bus.error ?? "unavailable")}
            tone={bus.available ? "good" : "bad"}
          />
          <Card label="Messages / min" value={f.count(bus.messages_per_minute)} />
          <Card
            label="Published"
            value={f.count(bus.published)}
            note={`${f.count(bus.delivered)} delivered · ${f.count(bus.acknowledged)} acknowledged`}
          />
          <Card label="Retried" value={f.count(bus.retried)} note={`${f.count(bus.rate_limited)} rate limited`} />
          <Card
            label="Dead letters"
            value={f.count(bus.dead_letters)}
            note={`${f.count(bus.dead_lettered)} since start`}
            tone={(bus.dead_letters ?? 0) > 0 ? "warn" : "good"}
          />
        </section>
      )}
      {busy.length > 0 && (
        <table class="table compact">
          <thead>
            <tr>
              <th>Queue</th>
              <th class="num">Waiting</th>
              <th class="num">Unacknowledged</th>
            </tr>
          </thead>
          <tbody>
            {busy.map((q) => (
              <tr key={q.queue}>
                <td class="mono">{q.queue}</td>
                <td class="num">{q.waiting}</td>
                <td class="num">{q.pending}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h3>Workers {workers.data ? <span class="muted">({workers.data.alive} alive)</span> : null}</h3>
      <ErrorNote error={workers.error} />
      {workers.data &&
        (workers.data.nodes.length === 0 ? (
          <Empty>No process has announced itself on the bus.</Empty>
        ) : (
          <table class="table" data-testid="worker-table">
            <thead>
              <tr>
                <th>Node</th>
                <th>Role</th>
                <th>Host · pid</th>
                <th class="num">Agents</th>
                <th class="num">Handled</th>
                <th>Started</th>
                <th>Last heard</th>
                <th>State</th>
              </tr>
            </thead>
            <tbody>
              {workers.data.nodes.map((n) => (
                <tr key={n.node_id}>
                  <td class="mono small">{n.node_id}</td>
                  <td>{n.role}</td>
                  <td>
                    {n.host} · {n.pid}
                  </td>
                  <td class="num" title={n.agents.join(", ")}>
                    {n.agents.length}
                  </td>
                  <td class="num">{f.count(n.handled)}</td>
                  <td>{f.ago(n.started_at)}</td>
                  <td>{f.ago(n.last_seen)}</td>
                  <td>
                    <StatusPill status={n.alive ? "alive" : "silent"} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        ))}
    </>
  );
}

export function Messages(props: { deadLetterId?: string }) {
  const agents = usePoll((signal) => api().get<AgentList>("/agents", {}, signal), 0, []);
  const ids = (agents.data?.agents ?? []).map((a) => a.id);
  return (
    <div class="view">
      <h1>Messages</h1>
      <div class="two-col">
        <Panel title="Send">
          <Composer broadcast={false} agents={ids} />
        </Panel>
        <Panel title="Broadcast to every agent">
          <Composer broadcast agents={ids} />
        </Panel>
      </div>
      <DeadLetters selected={props.deadLetterId} />
      <Panel title="Message bus">
        <Bus />
      </Panel>
    </div>
  );
}
