// Infrastructure: the Docker services the app manages (`GET /infrastructure/status`),
// deploy-all with its progress from `/ws` `infrastructure` events, lifecycle buttons,
// image pulls with per-layer progress (an NDJSON answer read as a stream), logs (a tail,
// or followed as NDJSON) and live container stats. Without Docker it shows the API's
// reason and hint.

import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { ApiError } from "../api";
import * as f from "../format";
import type { Columns } from "../host";
import { describeInfra, emptyPull, foldPull, type PullState } from "../live";
import type {
  ContainerInfo,
  InfraEvent,
  InfraStatus,
  LogLine,
  ServiceStatus,
  StatsSample,
  SystemStatus,
} from "../types";
import { api } from "../ui/app-state";
import { Chart } from "../ui/chart";
import { Button, Empty, ErrorNote, Json, Loading, Panel, Progress, StatusPill } from "../ui/components";
import { DeployProgress, PullBars, useDeployAll } from "../ui/deploy";
import { asApiError, useAction, useDebounced, usePoll, useSocket } from "../ui/hooks";

const MAX_LOG_LINES = 2000;
const MAX_EVENTS = 200;

function Unavailable(props: { error: ApiError }) {
  const status = usePoll((signal) => api().get<SystemStatus>("/status", {}, signal), 10_000, []);
  const docker = status.data?.infrastructure;
  return (
    <section class="banner" data-testid="docker-unavailable">
      <h2>Docker is unavailable</h2>
      <p>{props.error.message}</p>
      {docker && (
        <dl class="facts">
          {docker.docker_host && (
            <>
              <dt>Looking at</dt>
              <dd class="mono">{docker.docker_host}</dd>
            </>
          )}
          {docker.reason && (
            <>
              <dt>Reason</dt>
              <dd data-testid="docker-reason">{docker.reason}</dd>
            </>
          )}
          {docker.hint && (
            <>
              <dt>What to do</dt>
              <dd data-testid="docker-hint">{docker.hint}</dd>
            </>
          )}
          {docker.checked_at && (
            <>
              <dt>Checked</dt>
              <dd>{f.ago(docker.checked_at)}</dd>
            </>
          )}
        </dl>
      )}
      <p class="muted">The rest of SutazAI works without it; this page checks again every few seconds.</p>
    </section>
  );
}

function ImagePull() {
  const [image, setImage] = useState("");
  const [pull, setPull] = useState<PullState | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const controller = useRef<AbortController | null>(null);
  useEffect(() => () => controller.current?.abort(), []);
  const start = (e: Event): void => {
    e.preventDefault();
    const reference = image.trim();
    if (reference === "" || busy) return;
    const c = new AbortController();
    controller.current = c;
    setBusy(true);
    setError(null);
    let state = emptyPull(reference);
    setPull(state);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const flush = (): void => {
      timer = undefined;
      setPull(state);
    };
    api()
      .stream("/infrastructure/images/pull", { method: "POST", body: { image: reference }, signal: c.signal }, (item) => {
        state = foldPull(state, item as Parameters<typeof foldPull>[1]);
        if (timer === undefined) timer = setTimeout(flush, 200);
      })
      .catch((err: unknown) => {
        if (!c.signal.aborted) setError(asApiError(err));
      })
      .finally(() => {
        clearTimeout(timer);
        setPull(state);
        setBusy(false);
      });
  };
  return (
    <Panel title="Pull an image">
      <form class="inline-form" onSubmit={start}>
        <input
          value={image}
          onInput={(e) => setImage((e.currentTarget as HTMLInputElement).value)}
          placeholder="redis:7-alpine"
          aria-label="Image"
          data-testid="pull-image"
        />
        <Button needs="operator" type="submit" kind="primary" busy={busy} disabled={image.trim() === ""} testid="pull-submit">
          Pull
        </Button>
        {busy && <Button onClick={() => controller.current?.abort()}>Stop watching</Button>}
      </form>
      <ErrorNote error={error} prefix="Pull failed" />
      {pull && <PullBars pull={pull} />}
    </Panel>
  );
}

function Logs(props: { name: string; onClose: () => void }) {
  const [follow, setFollow] = useState(false);
  const [lines, setLines] = useState<LogLine[]>([]);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(true);
  const box = useRef<HTMLPreElement>(null);
  useEffect(() => {
    const c = new AbortController();
    const path = `/infrastructure/services/${encodeURIComponent(props.name)}/logs`;
    setLines([]);
    setError(null);
    setLoading(true);
    if (!follow) {
      api()
        .get<{ lines: LogLine[] }>(path, { tail: 200 }, c.signal)
        .then((answer) => setLines(answer.lines))
        .catch((err: unknown) => !c.signal.aborted && setError(asApiError(err)))
        .finally(() => setLoading(false));
    } else {
      let buffer: LogLine[] = [];
      let timer: ReturnType<typeof setTimeout> | undefined;
      const flush = (): void => {
        timer = undefined;
        const add = buffer;
        buffer = [];
        setLines((old) => [...old, ...add].slice(-MAX_LOG_LINES));
      };
      api()
        .stream(path, { query: { tail: 200, follow: true }, signal: c.signal }, (item) => {
          setLoading(false);
          buffer.push(item as LogLine);
          if (timer === undefined) timer = setTimeout(flush, 250);
        })
        .catch((err: unknown) => !c.signal.aborted && setError(asApiError(err)))
        .finally(() => {
          setLoading(false);
          clearTimeout(timer);
          if (!c.signal.aborted) flush();
        });
    }
    return () => c.abort();
  }, [props.name, follow]);
  useEffect(() => {
    const el = box.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [lines]);
  return (
    <Panel
      title={`Logs: ${props.name}`}
      testid="logs-panel"
      actions={
        <>
          <label class="check">
            <input
              type="checkbox"
              checked={follow}
              onChange={(e) => setFollow((e.currentTarget as HTMLInputElement).checked)}
              data-testid="logs-follow"
            />
            Follow
          </label>
          <Button onClick={props.onClose}>Close</Button>
        </>
      }
    >
      <ErrorNote error={error} />
      {loading && lines.length === 0 ? (
        <Loading what="logs" />
      ) : (
        <pre class="logs" ref={box} data-testid="logs">
          {lines.length === 0
            ? "(no log lines)"
            : lines.map((l) => `${l.container} ${l.stream === "stderr" ? "!" : "|"} ${l.line}`).join("\n")}
        </pre>
      )}
    </Panel>
  );
}

function Stats(props: { container: string; onClose: () => void }) {
  const [samples, setSamples] = useState<StatsSample[]>([]);
  const [error, setError] = useState<ApiError | null>(null);
  useEffect(() => {
    const c = new AbortController();
    setSamples([]);
    setError(null);
    api()
      .stream(
        `/infrastructure/containers/${encodeURIComponent(props.container)}/stats`,
        { query: { stream: true }, signal: c.signal },
        (item) => {
          setSamples((old) => [...old, item as StatsSample].slice(-300));
        },
      )
      .catch((err: unknown) => !c.signal.aborted && setError(asApiError(err)));
    return () => c.abort();
  }, [props.container]);
  const latest = samples[samples.length - 1];
  const columns = useMemo<Columns>(
    () => ({
      times: samples.map((s, i) => (s.read_at ? Date.parse(s.read_at) / 1000 : i)),
      lines: [
        { label: "CPU (% of one core)", values: samples.map((s) => s.cpu_percent) },
        {
          label: "Memory (% of limit)",
          values: samples.map((s) => (s.memory_limit_bytes > 0 ? (s.memory_bytes / s.memory_limit_bytes) * 100 : null)),
        },
      ],
    }),
    [samples],
  );
  return (
    <Panel title={`Stats: ${props.container}`} testid="stats-panel" actions={<Button onClick={props.onClose}>Close</Button>}>
      <ErrorNote error={error} />
      {!latest ? (
        error ? null : (
          <Loading what="stats" />
        )
      ) : (
        <>
          <dl class="facts">
            <dt>CPU</dt>
            <dd>{f.percent(latest.cpu_percent)} of one core</dd>
            <dt>Memory</dt>
            <dd>
              {f.bytes(latest.memory_bytes)} of {f.bytes(latest.memory_limit_bytes)}
            </dd>
            <dt>Network</dt>
            <dd>
              {f.bytes(latest.network_rx_bytes)} received · {f.bytes(latest.network_tx_bytes)} sent
            </dd>
            <dt>Block I/O</dt>
            <dd>
              {f.bytes(latest.block_read_bytes)} read · {f.bytes(latest.block_write_bytes)} written
            </dd>
          </dl>
          <Chart columns={columns} format={(v) => `${v.toFixed(0)} %`} height={140} />
        </>
      )}
    </Panel>
  );
}

function ContainerRows(props: { containers: ContainerInfo[]; onLogs: (name: string) => void; onStats: (name: string) => void }) {
  if (props.containers.length === 0) return <p class="muted small">No container.</p>;
  return (
    <table class="table compact">
      <thead>
        <tr>
          <th>Container</th>
          <th>State</th>
          <th>Health</th>
          <th class="num">Up</th>
          <th class="num">Restarts</th>
          <th>Ports</th>
          <th />
        </tr>
      </thead>
      <tbody>
        {props.containers.map((c) => (
          <tr key={c.id} data-testid="container-row">
            <td class="mono small" title={c.image}>
              {c.name}
            </td>
            <td>
              <StatusPill status={c.state} />
              {c.exit_code !== null && c.state !== "running" ? <span class="muted small"> exit {c.exit_code}</span> : null}
            </td>
            <td>
              <StatusPill status={c.health} />
            </td>
            <td class="num">{f.duration(c.uptime_seconds)}</td>
            <td class="num">{c.restarts}</td>
            <td class="mono small">{c.ports.join(", ") || "—"}</td>
            <td class="actions">
              <Button onClick={() => props.onLogs(c.name)}>Logs</Button>
              <Button onClick={() => props.onStats(c.name)} disabled={c.state !== "running"}>
                Stats
              </Button>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function ServiceCard(props: {
  service: ServiceStatus;
  onChanged: () => void;
  onLogs: (name: string) => void;
  onStats: (name: string) => void;
}) {
  const s = props.service;
  const act = useAction<ServiceStatus>();
  const [replicas, setReplicas] = useState(String(Math.max(1, s.desired_replicas)));
  const [confirmRemove, setConfirmRemove] = useState(false);
  const control = (action: string, instances?: number): void => {
    setConfirmRemove(false);
    void act
      .run(() =>
        api().post<ServiceStatus>(
          `/infrastructure/services/${encodeURIComponent(s.name)}/control`,
          instances === undefined ? { action } : { action, instances },
          { timeoutMs: 0 },
        ),
      )
      .then(() => props.onChanged());
  };
  const n = Number.parseInt(replicas, 10);
  return (
    <div class="service" data-testid="service" data-service={s.name}>
      <div class="service-head">
        <strong>{s.name}</strong> <span class="muted">{s.kind}</span>
        <StatusPill status={s.state} testid="service-state" />
        <StatusPill status={s.health} />
        <span class="muted small">
          {s.running_replicas} / {s.desired_replicas} replicas
        </span>
        <span class="spacer" />
        <span class="mono small muted">{s.endpoint ?? ""}</span>
      </div>
      <div class="muted small">
        {s.description} · <span class="mono">{s.image}</span>
      </div>
      <div class="button-row">
        <Button needs="operator" onClick={() => control("start")} busy={act.busy} testid="service-start">
          Start
        </Button>
        <Button
          needs="operator"
          onClick={() => control("stop")}
          busy={act.busy}
          disabled={s.running_replicas === 0}
          testid="service-stop"
        >
          Stop
        </Button>
        <Button
          needs="operator"
          onClick={() => control("restart")}
          busy={act.busy}
          disabled={s.containers.length === 0}
          testid="service-restart"
        >
          Restart
        </Button>
        <span class="inline-field">
          <input
            type="number"
            min={0}
            value={replicas}
            onInput={(e) => setReplicas((e.currentTarget as HTMLInputElement).value)}
            aria-label="Replicas"
          />
          <Button
            needs="operator"
            onClick={() => control("scale", n)}
            busy={act.busy}
            disabled={!Number.isInteger(n) || n < 0}
            testid="service-scale"
          >
            Scale
          </Button>
        </span>
        {confirmRemove ? (
          <>
            <Button
              needs="operator"
              kind="danger"
              onClick={() => control("remove")}
              busy={act.busy}
              testid="service-remove-confirm"
            >
              Remove its containers (volumes stay)
            </Button>
            <Button onClick={() => setConfirmRemove(false)}>Keep</Button>
          </>
        ) : (
          <Button
            needs="operator"
            kind="danger"
            onClick={() => setConfirmRemove(true)}
            disabled={s.containers.length === 0}
            testid="service-remove"
          >
            Remove
          </Button>
        )}
        <Button onClick={() => props.onLogs(s.name)} disabled={s.containers.length === 0}>
          Logs
        </Button>
      </div>
      {act.busy && <Progress fraction={null} label="working" />}
      <ErrorNote error={act.error} />
      <ContainerRows containers={s.containers} onLogs={props.onLogs} onStats={props.onStats} />
    </div>
  );
}

interface Logged {
  at: number;
  event: InfraEvent;
}

export function Infrastructure() {
  const status = usePoll((signal) => api().get<InfraStatus>("/infrastructure/status", {}, signal), 5000, []);
  const [events, setEvents] = useState<Logged[]>([]);
  const [logs, setLogs] = useState<string | null>(null);
  const [stats, setStats] = useState<string | null>(null);
  const deploy = useDeployAll();
  const reread = useDebounced(status.refresh, 700);

  useSocket((m) => {
    if (m.type !== "infrastructure" || typeof m.data !== "object" || m.data === null) return;
    const event = m.data as InfraEvent;
    // Pulls show as bars under deploy-all (useDeployAll folds them).
    if (event.event === "pull") return;
    setEvents((old) => [...old, { at: Date.now(), event }].slice(-MAX_EVENTS));
    if (event.event !== "step") reread();
  });

  const startDeploy = (): void => {
    void deploy.start().then(() => status.refresh());
  };
  const unavailable = status.error?.code === "docker_unavailable" ? status.error : null;

  return (
    <div class="view">
      <h1>Infrastructure</h1>
      {unavailable ? (
        <Unavailable error={unavailable} />
      ) : (
        <>
          <ErrorNote error={status.error} />
          {!status.data ? (
            status.error ? null : (
              <Loading what="services" />
            )
          ) : (
            <>
              <Panel
                title="Docker"
                actions={
                  <Button needs="operator" kind="primary" busy={deploy.action.busy} onClick={startDeploy} testid="deploy-all">
                    Deploy all
                  </Button>
                }
              >
                <p>
                  <StatusPill
                    status={status.data.docker.available ? "healthy" : "unavailable"}
                    label={status.data.docker.available ? "available" : "unavailable"}
                  />{" "}
                  Docker {status.data.docker.version ?? ""} at <span class="mono">{status.data.docker.docker_host}</span> ·
                  project <span class="mono">{status.data.project}</span> · auto-scaling {status.data.auto_scaling ? "on" : "off"}
                </p>
                <DeployProgress deploy={deploy} />
              </Panel>
              <Panel title={`Services (${status.data.services.length})`}>
                {status.data.services.length === 0 ? (
                  <Empty>The catalogue has no service.</Empty>
                ) : (
                  status.data.services.map((s) => (
                    <ServiceCard
                      key={s.name}
                      service={s}
                      onChanged={status.refresh}
                      onLogs={(n) => setLogs(n)}
                      onStats={(n) => setStats(n)}
                    />
                  ))
                )}
              </Panel>
              {logs && <Logs name={logs} onClose={() => setLogs(null)} />}
              {stats && <Stats container={stats} onClose={() => setStats(null)} />}
              <ImagePull />
            </>
          )}
        </>
      )}
      <Panel title="Infrastructure events" actions={<span class="muted small">live from /ws since this page opened</span>}>
        {events.length === 0 ? (
          <Empty>None yet.</Empty>
        ) : (
          <ul class="event-list" data-testid="infra-events">
            {[...events].reverse().map((e, i) => {
              const d = describeInfra(e.event);
              return (
                <li key={`${e.at}-${i}`} class={`tone-text-${d.tone}`}>
                  <span class="muted small">{new Date(e.at).toLocaleTimeString()}</span> {d.text}
                </li>
              );
            })}
          </ul>
        )}
        {deploy.action.result && (
          <details>
            <summary>Last deploy report</summary>
            <Json value={deploy.action.result} />
          </details>
        )}
      </Panel>
    </div>
  );
}
