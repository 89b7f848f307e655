// Agents: the registry (`GET /agents`) with filters by status and capability, one agent's
// detail (`GET /agents/{id}`), and its lifecycle controls (`POST /agents/{id}/control`:
// start, stop, restart, scale — the actions the handler accepts).

import { useMemo, useState } from "preact/hooks";
import { capabilityCounts, filterAgents, type AgentFilter } from "../agents";
import * as f from "../format";
import { routeHash } from "../router";
import type { AgentControlAnswer, AgentInfo, AgentList } from "../types";
import { api } from "../ui/app-state";
import { Button, Chips, Empty, ErrorNote, Json, Loading, Meter, Panel, StatusPill } from "../ui/components";
import { useAction, useDebounced, usePoll, useSocket } from "../ui/hooks";

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
          onClick={() => control("start")}
          busy={action.busy}
          disabled={props.agent.status === "healthy"}
          testid="agent-start"
        >
          Start
        </Button>
        <Button
          onClick={() => control("stop")}
          busy={action.busy}
          disabled={props.agent.status === "stopped"}
          kind="danger"
          testid="agent-stop"
        >
          Stop
        </Button>
        <Button
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

function AgentDetail(props: { id: string; onChanged: () => void }) {
  const agent = usePoll((signal) => api().get<AgentInfo>(`/agents/${encodeURIComponent(props.id)}`, {}, signal), 5000, [
    props.id,
  ]);
  const a = agent.data;
  return (
    <Panel
      title={a ? a.name : props.id}
      actions={<a href={routeHash({ view: "agents" })}>Close ×</a>}
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

export function Agents(props: { agentId?: string }) {
  const list = usePoll((signal) => api().get<AgentList>("/agents", {}, signal), 10_000, []);
  const [filter, setFilter] = useState<AgentFilter>({ status: "all", capability: "", text: "" });
  const reread = useDebounced(list.refresh, 1000);
  useSocket((m) => {
    if (m.type === "agent_status" || m.type === "step_finished") reread();
  });
  const agents = list.data?.agents ?? [];
  const caps = useMemo(() => capabilityCounts(agents), [list.data]);
  const shown = useMemo(() => filterAgents(agents, filter), [list.data, filter]);
  return (
    <div class="view">
      <h1>Agents</h1>
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
                        <a href={routeHash({ view: "agents", agentId: a.id })}>{a.name}</a>
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
        {props.agentId && <AgentDetail id={props.agentId} onChanged={list.refresh} />}
      </div>
    </div>
  );
}
