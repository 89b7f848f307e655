// Analytics: `GET /analytics/performance` over a chosen range (success rate, p50/p95
// response times, throughput, tokens, per agent and per coordination pattern) and stored
// history from `GET /monitoring/series` for any metric of the catalogue.

import { useEffect, useMemo, useState } from "preact/hooks";
import * as f from "../format";
import { seriesColumns } from "../host";
import { routeHash } from "../router";
import type { Analytics as AnalyticsAnswer, SeriesAnswer, SeriesInfo } from "../types";
import { api } from "../ui/app-state";
import { Chart } from "../ui/chart";
import { Card, Empty, ErrorNote, Loading, Panel } from "../ui/components";
import { usePoll } from "../ui/hooks";

/** The ranges offered, in seconds. */
export const RANGES: { key: string; label: string; seconds: number }[] = [
  { key: "1h", label: "1 h", seconds: 3600 },
  { key: "24h", label: "24 h", seconds: 86_400 },
  { key: "7d", label: "7 d", seconds: 7 * 86_400 },
  { key: "30d", label: "30 d", seconds: 30 * 86_400 },
];

const AUTO_REFRESH_MS = 60_000;
const DEFAULT_METRICS = ["cpu_percent", "memory_percent", "tasks_active", "bus_messages_per_minute"];

/** How a metric's values read, from its name's unit suffix. */
export function metricFormat(metric: string): (v: number) => string {
  if (metric.endsWith("_percent")) return (v) => `${Math.abs(v) < 10 && !Number.isInteger(v) ? v.toFixed(1) : v.toFixed(0)} %`;
  if (metric.endsWith("_bytes_per_second")) return (v) => f.rate(v);
  if (metric.endsWith("_bytes")) return (v) => f.bytes(v);
  if (metric.endsWith("_rate") || metric === "agent_health" || metric === "agent_load") return (v) => f.ratio(v, 0);
  if (metric.endsWith("_seconds")) return (v) => f.duration(v);
  return (v) => f.num(v, 1);
}

function SeriesChart(props: { metric: string; start: string; end: string; onRemove?: () => void }) {
  const answer = usePoll(
    (signal) =>
      api().get<SeriesAnswer>("/monitoring/series", { metric: props.metric, start: props.start, end: props.end }, signal),
    0,
    [props.metric, props.start],
  );
  const columns = useMemo(() => (answer.data ? seriesColumns(answer.data) : null), [answer.data]);
  return (
    <div class="chart-box" data-testid="series-chart" data-metric={props.metric}>
      <h3>
        {props.metric}{" "}
        {answer.data && (
          <span class="muted small">
            step {f.duration(answer.data.step)}
            {columns && columns.omitted > 0
              ? ` · top ${columns.lines.length} of ${columns.lines.length + columns.omitted} subjects`
              : ""}
          </span>
        )}
        {props.onRemove && (
          <button type="button" class="link" onClick={props.onRemove} title="Remove this chart">
            ×
          </button>
        )}
      </h3>
      <ErrorNote error={answer.error} />
      {columns ? <Chart columns={columns} format={metricFormat(props.metric)} /> : answer.error ? null : <Loading />}
    </div>
  );
}

export function Analytics(props: { range?: string }) {
  const range = RANGES.find((r) => r.key === props.range) ?? RANGES[1] ?? { key: "24h", label: "24 h", seconds: 86_400 };
  // The window moves to now every minute (while the page is visible) and on Refresh.
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const id = setInterval(() => {
      if (document.visibilityState !== "hidden") setTick((t) => t + 1);
    }, AUTO_REFRESH_MS);
    return () => clearInterval(id);
  }, []);
  const window_ = useMemo(() => {
    const end = new Date();
    const start = new Date(end.getTime() - range.seconds * 1000);
    return { start: start.toISOString(), end: end.toISOString() };
  }, [range.key, tick]);
  const perf = usePoll(
    (signal) =>
      api().get<AnalyticsAnswer>("/analytics/performance", { start_date: window_.start, end_date: window_.end }, signal),
    0,
    [window_.start],
  );
  const catalogue = usePoll((signal) => api().get<SeriesInfo[]>("/monitoring/series/catalogue", {}, signal), 0, []);
  const metrics = useMemo(() => [...new Set((catalogue.data ?? []).map((s) => s.metric))].sort(), [catalogue.data]);
  const [extra, setExtra] = useState<string[]>([]);
  const shown = [...DEFAULT_METRICS, ...extra.filter((m) => !DEFAULT_METRICS.includes(m))];
  const a = perf.data;
  const agents = a
    ? Object.entries(a.agent_performance).sort((x, y) => y[1].completed + y[1].failed - (x[1].completed + x[1].failed))
    : [];
  const patterns = a ? Object.entries(a.pattern_performance) : [];
  const tokens = agents.reduce(
    (acc, [, p]) => ({ prompt: acc.prompt + p.prompt_tokens, completion: acc.completion + p.completion_tokens }),
    { prompt: 0, completion: 0 },
  );

  return (
    <div class="view">
      <div class="title-row">
        <h1>Analytics</h1>
        <span class="spacer" />
        <div class="segmented" role="group" aria-label="Range">
          {RANGES.map((r) => (
            <a
              key={r.key}
              href={routeHash({ view: "analytics", range: r.key })}
              class={r.key === range.key ? "active" : ""}
              data-testid={`range-${r.key}`}
            >
              {r.label}
            </a>
          ))}
        </div>
        <button type="button" class="btn btn-plain" onClick={() => setTick(tick + 1)}>
          Refresh
        </button>
      </div>
      <ErrorNote error={perf.error} />
      {!a ? (
        perf.error ? null : (
          <Loading what="analytics" />
        )
      ) : (
        <>
          <section class="cards" data-testid="analytics-cards">
            <Card
              label="Success rate"
              value={a.total_steps === 0 ? "—" : f.ratio(a.average_success_rate)}
              note={`${f.count(a.completed_steps)} of ${f.count(a.total_steps)} steps`}
            />
            <Card
              label="Response time"
              value={a.total_steps === 0 ? "—" : f.duration(a.average_response_time)}
              note="mean per completed step"
            />
            <Card
              label="p50 / p95"
              value={`${f.duration(a.p50_response_time)} / ${f.duration(a.p95_response_time)}`}
              note="step response times"
            />
            <Card
              label="Throughput"
              value={a.throughput_per_hour === null ? "—" : `${f.num(a.throughput_per_hour, 2)}/h`}
              note="tasks completed per hour"
            />
            <Card
              label="Tokens"
              value={f.count(a.total_tokens)}
              note={`${f.count(tokens.prompt)} prompt · ${f.count(tokens.completion)} completion`}
            />
            <Card label="Failed steps" value={f.count(a.failed_steps)} tone={a.failed_steps > 0 ? "warn" : "good"} />
          </section>
          <Panel title="Coordination patterns">
            {patterns.length === 0 ? (
              <Empty>No task ended in this range.</Empty>
            ) : (
              <table class="table" data-testid="pattern-table">
                <thead>
                  <tr>
                    <th>Pattern</th>
                    <th class="num">Completed</th>
                    <th class="num">Failed</th>
                    <th class="num">Cancelled</th>
                    <th class="num">Completion rate</th>
                    <th class="num">Mean</th>
                    <th class="num">p50</th>
                    <th class="num">p95</th>
                  </tr>
                </thead>
                <tbody>
                  {patterns.map(([name, p]) => (
                    <tr key={name}>
                      <td>{name}</td>
                      <td class="num">{f.count(p.completed)}</td>
                      <td class="num">{f.count(p.failed)}</td>
                      <td class="num">{f.count(p.cancelled)}</td>
                      <td class="num">{f.ratio(p.completion_rate)}</td>
                      <td class="num">{f.duration(p.average_duration)}</td>
                      <td class="num">{f.duration(p.p50_duration)}</td>
                      <td class="num">{f.duration(p.p95_duration)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </Panel>
          <Panel title="Agents">
            {agents.length === 0 ? (
              <Empty>No step finished in this range.</Empty>
            ) : (
              <div class="table-wrap">
                <table class="table" data-testid="agent-performance-table">
                  <thead>
                    <tr>
                      <th>Agent</th>
                      <th class="num">Completed</th>
                      <th class="num">Failed</th>
                      <th class="num">Success</th>
                      <th class="num">Errors</th>
                      <th class="num">Mean</th>
                      <th class="num">p50</th>
                      <th class="num">p95</th>
                      <th class="num">Tokens in / out</th>
                    </tr>
                  </thead>
                  <tbody>
                    {agents.map(([id, p]) => (
                      <tr key={id}>
                        <td>
                          <a href={routeHash({ view: "agents", agentId: id })}>{id}</a>
                        </td>
                        <td class="num">{f.count(p.completed)}</td>
                        <td class="num">{f.count(p.failed)}</td>
                        <td class="num">{f.ratio(p.success_rate)}</td>
                        <td class="num">{f.ratio(p.error_rate)}</td>
                        <td class="num">{f.duration(p.average_response_time)}</td>
                        <td class="num">{f.duration(p.p50_response_time)}</td>
                        <td class="num">{f.duration(p.p95_response_time)}</td>
                        <td class="num">
                          {f.count(p.prompt_tokens)} / {f.count(p.completion_tokens)}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </Panel>
        </>
      )}
      <Panel
        title="History"
        actions={
          <select
            value=""
            onChange={(e) => {
              const m = (e.currentTarget as HTMLSelectElement).value;
              if (m && !shown.includes(m)) setExtra([...extra, m]);
            }}
            aria-label="Add a metric"
            data-testid="series-add"
          >
            <option value="">Add a metric…</option>
            {metrics
              .filter((m) => !shown.includes(m))
              .map((m) => (
                <option key={m} value={m}>
                  {m}
                </option>
              ))}
          </select>
        }
      >
        <ErrorNote error={catalogue.error} prefix="Series catalogue" />
        <div class="chart-grid">
          {shown.map((m) => (
            <SeriesChart
              key={m}
              metric={m}
              start={window_.start}
              end={window_.end}
              onRemove={DEFAULT_METRICS.includes(m) ? undefined : () => setExtra(extra.filter((x) => x !== m))}
            />
          ))}
        </div>
      </Panel>
    </div>
  );
}
