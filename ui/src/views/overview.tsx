// Overview: system health (`/status`), active and queued tasks, live host graphs
// (`/monitoring/host`, every 5 s while visible), and the latest alerts. Task and alert
// lists re-read on `/ws` events and otherwise poll slowly: the resident dashboard's idle
// CPU budget (BENCHMARKS.md) is spent mostly on what it redraws.

import { useMemo, useRef } from "preact/hooks";
import { tone } from "../api";
import * as f from "../format";
import { hostColumns, mergeHistory } from "../host";
import { routeHash } from "../router";
import type { AlertList, HostAnswer, SystemStatus, TaskList } from "../types";
import { api } from "../ui/app-state";
import { Chart } from "../ui/chart";
import { Card, Empty, ErrorNote, Loading, Meter, Panel, StatusPill } from "../ui/components";
import { useDebounced, usePoll, useSocket } from "../ui/hooks";

const HOST_MS = 5000;
const STATUS_MS = 10_000;
/** Lists that `/ws` events already keep current: a slow poll only refreshes their ages. */
const LIST_MS = 30_000;
/** Points per graph line at most: about one per two pixels of a half-width chart. */
const GRAPH_POINTS = 360;

function HealthCards(props: { status: SystemStatus }) {
  const s = props.status;
  const firing = s.monitoring.enabled ? (s.monitoring.alerts_firing ?? 0) : null;
  const critical = s.monitoring.alerts_critical ?? 0;
  const llm = s.llm;
  return (
    <section class="cards" data-testid="health-cards">
      <Card
        label="System"
        value={<StatusPill status={s.status} testid="system-status" />}
        note={`health ${f.ratio(s.system_health)}`}
        tone={tone(s.status)}
      />
      <Card label="Active tasks" value={f.count(s.active_tasks)} note={`of ${s.max_concurrent_tasks} slots`} />
      <Card
        label="Queued tasks"
        value={f.count(s.queued_tasks)}
        note={s.awaiting_approval > 0 ? `${s.awaiting_approval} awaiting approval` : "none awaiting approval"}
      />
      <Card
        label="Agents"
        value={`${s.agents.healthy} / ${s.agents.total}`}
        note={
          s.agents.degraded + s.agents.stopped > 0 ? `${s.agents.degraded} degraded, ${s.agents.stopped} stopped` : "all healthy"
        }
        tone={s.agents.degraded > 0 ? "warn" : "good"}
      />
      <Card
        label="Alerts firing"
        value={firing === null ? "—" : f.count(firing)}
        note={firing === null ? "monitoring is off" : critical > 0 ? `${critical} critical` : "none critical"}
        tone={firing === null ? "idle" : critical > 0 ? "bad" : firing > 0 ? "warn" : "good"}
      />
      <Card
        label="LLM"
        value={llm.reachable && llm.model_available ? "ready" : llm.reachable ? "no model" : "unreachable"}
        note={`${llm.provider} · ${llm.model}`}
        tone={llm.reachable && llm.model_available ? "good" : llm.reachable ? "warn" : "bad"}
      />
      <Card
        label="Tasks since start"
        value={f.count(s.tasks.completed)}
        note={`completed · ${f.count(s.tasks.failed)} failed · ${f.count(s.tasks.submitted)} submitted`}
      />
      <Card
        label="Message bus"
        value={s.message_bus.available ? `${f.count(s.message_bus.messages_per_minute ?? 0)}/min` : "down"}
        note={`${s.message_bus.backend}${s.message_bus.dead_letters ? ` · ${s.message_bus.dead_letters} dead letters` : ""}`}
        tone={s.message_bus.available ? "good" : "bad"}
      />
    </section>
  );
}

function Resources() {
  const kept = useRef<HostAnswer>({ latest: null, history: [] });
  const host = usePoll(
    async (signal) => {
      const before = kept.current;
      const answer = await api().get<HostAnswer>(
        "/monitoring/host",
        { since: before.history[before.history.length - 1]?.at },
        signal,
      );
      const history = mergeHistory(before.history, answer.history);
      // Unchanged: the same object, so nothing re-renders or redraws.
      if (history !== before.history || answer.latest?.at !== before.latest?.at)
        kept.current = { latest: answer.latest, history };
      return kept.current;
    },
    HOST_MS,
    [],
  );
  // An hour of 1 s samples thinned to what a graph's width shows (see `thin`).
  const columns = useMemo(() => (host.data ? hostColumns(host.data.history, GRAPH_POINTS) : null), [host.data]);
  const latest = host.data?.latest ?? null;
  if (host.error && !host.data) return <ErrorNote error={host.error} prefix="Host monitoring" />;
  if (!columns || !latest)
    return host.loading ? <Loading what="host samples" /> : <Empty>The sampler has not reported yet.</Empty>;
  return (
    <>
      <ErrorNote error={host.error} />
      <div class="chart-grid">
        <div class="chart-box">
          <h3>
            CPU{" "}
            <span class="muted">
              {f.percent(latest.cpu_percent)} · load {latest.load_average.map((l) => f.num(l)).join(" / ")}
            </span>
          </h3>
          <Chart columns={columns.cpu} format={(v) => `${v.toFixed(0)} %`} yMax={100} testid="chart-cpu" />
        </div>
        <div class="chart-box">
          <h3>
            Memory{" "}
            <span class="muted">
              {f.bytes(latest.memory_used_bytes)} of {f.bytes(latest.memory_total_bytes)}
            </span>
          </h3>
          <Chart columns={columns.memory} format={(v) => `${v.toFixed(0)} %`} yMax={100} testid="chart-memory" />
        </div>
        {columns.gpus.map((gpu) => (
          <div class="chart-box" key={gpu.name}>
            <h3>
              GPU <span class="muted">{gpu.name}</span>
            </h3>
            <Chart columns={gpu.columns} format={(v) => `${v.toFixed(0)} %`} yMax={100} testid="chart-gpu" />
          </div>
        ))}
        <div class="chart-box">
          <h3>
            Disk <span class="muted">used, per filesystem</span>
          </h3>
          <Chart columns={columns.disk} format={(v) => `${v.toFixed(0)} %`} yMax={100} testid="chart-disk" />
        </div>
        <div class="chart-box">
          <h3>
            Network <span class="muted">all interfaces but loopback</span>
          </h3>
          <Chart columns={columns.network} format={(v) => f.rate(v)} testid="chart-network" />
        </div>
      </div>
      <div class="two-col">
        <table class="table compact">
          <thead>
            <tr>
              <th>Top processes</th>
              <th class="num">CPU</th>
              <th class="num">Memory</th>
            </tr>
          </thead>
          <tbody>
            {latest.top_processes.map((p) => (
              <tr key={p.pid}>
                <td>
                  {p.name} <span class="muted mono">{p.pid}</span>
                </td>
                <td class="num">{f.percent(p.cpu_percent)}</td>
                <td class="num">{f.bytes(p.memory_bytes)}</td>
              </tr>
            ))}
          </tbody>
        </table>
        <table class="table compact">
          <thead>
            <tr>
              <th>Disk</th>
              <th>Used</th>
              <th class="num">Free</th>
            </tr>
          </thead>
          <tbody>
            {latest.disks.map((d) => (
              <tr key={d.mount}>
                <td class="mono">{d.mount}</td>
                <td>
                  <Meter percent={d.used_percent} />
                </td>
                <td class="num">{f.bytes(d.available_bytes)}</td>
              </tr>
            ))}
            {latest.gpus.map((g) => (
              <tr key={`gpu${g.index}`}>
                <td>
                  gpu{g.index} VRAM{" "}
                  <span class="muted">{g.temperature_celsius === null ? "" : `${g.temperature_celsius} °C`}</span>
                </td>
                <td>
                  <Meter percent={g.memory_percent} />
                </td>
                <td class="num">{f.bytes(g.memory_total_bytes - g.memory_used_bytes)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}

function ActiveTasks() {
  const tasks = usePoll((signal) => api().get<TaskList>("/tasks", { status: "active", limit: 10 }, signal), LIST_MS, []);
  const reread = useDebounced(tasks.refresh, 500);
  useSocket((m) => {
    if (m.type.startsWith("task_") || m.type === "awaiting_approval") reread();
  });
  if (!tasks.data) return tasks.error ? <ErrorNote error={tasks.error} /> : <Loading />;
  if (tasks.data.tasks.length === 0) return <Empty>No task is running, queued or awaiting approval.</Empty>;
  return (
    <table class="table" data-testid="active-tasks">
      <thead>
        <tr>
          <th>Task</th>
          <th>Status</th>
          <th>Priority</th>
          <th>Agents</th>
          <th class="num">Submitted</th>
        </tr>
      </thead>
      <tbody>
        {tasks.data.tasks.map((t) => (
          <tr key={t.id}>
            <td>
              <a href={routeHash({ view: "task", taskId: t.id })}>{t.name}</a>
            </td>
            <td>
              <StatusPill status={t.status} />
            </td>
            <td>{t.priority}</td>
            <td>{t.assigned_agents.length || "—"}</td>
            <td class="num">{f.ago(t.created_at)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function RecentAlerts() {
  const alerts = usePoll((signal) => api().get<AlertList>("/alerts", { limit: 5 }, signal), LIST_MS, []);
  const reread = useDebounced(alerts.refresh, 500);
  useSocket((m) => {
    if (m.type === "alert") reread();
  });
  if (!alerts.data) return alerts.error ? <ErrorNote error={alerts.error} /> : <Loading />;
  if (alerts.data.alerts.length === 0) return <Empty>No alert has fired.</Empty>;
  return (
    <ul class="alert-list">
      {alerts.data.alerts.map((a) => (
        <li key={a.id} class={`alert-item sev-${a.severity}`}>
          <StatusPill status={a.status === "firing" ? (a.acknowledged ? "acknowledged" : a.severity) : "resolved"} />
          <span class="alert-message">{a.message}</span>
          <span class="muted">{f.ago(a.fired_at)}</span>
        </li>
      ))}
    </ul>
  );
}

export function Overview() {
  const status = usePoll((signal) => api().get<SystemStatus>("/status", {}, signal), STATUS_MS, []);
  return (
    <div class="view">
      <h1>Overview</h1>
      {status.data ? (
        <HealthCards status={status.data} />
      ) : status.error ? (
        <ErrorNote error={status.error} prefix="Status" />
      ) : (
        <Loading what="status" />
      )}
      {status.data && status.error && <ErrorNote error={status.error} prefix="Status (showing the last answer)" />}
      <Panel title="Resources" actions={<span class="muted">last hour, 1 s samples, refreshed every 5 s</span>}>
        <Resources />
      </Panel>
      <div class="two-col">
        <Panel title="Active tasks" actions={<a href={routeHash({ view: "tasks" })}>All tasks →</a>}>
          <ActiveTasks />
        </Panel>
        <Panel title="Recent alerts" actions={<a href={routeHash({ view: "alerts" })}>All alerts →</a>}>
          <RecentAlerts />
        </Panel>
      </div>
    </div>
  );
}
