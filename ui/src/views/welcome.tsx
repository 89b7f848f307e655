// Get started: the first-run flow (issue 6 §5), opened by itself on a first launch. It runs
// the doctor checks (`GET /setup/doctor`) and shows each with its fix, offers deploy-all
// where Docker is available, pulls the default model with a progress bar (`POST
// /models/pull`, NDJSON), and submits a first multi-agent task, then opens its view.
// "Skip" or "Done" (or the first task) sets the flag that keeps it from opening again.

import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { ApiError } from "../api";
import * as f from "../format";
import { routeHash } from "../router";
import type { AgentList, DoctorCheck, DoctorReport, Submitted, SystemStatus } from "../types";
import { api, localStore } from "../ui/app-state";
import { Button, Chips, ErrorNote, Loading, Panel, Pill, Progress, type Tone } from "../ui/components";
import { DeployProgress, useDeployAll } from "../ui/deploy";
import { asApiError, useAction, usePoll } from "../ui/hooks";
import {
  doctorSummary,
  emptyModelPull,
  firstTaskRequest,
  foldModelPull,
  markWelcomeDone,
  planWelcome,
  pullBytes,
  pullFraction,
  type ModelPull,
} from "../welcome";

/** The doctor probes each dependency with its own short limit; together they take a while. */
const DOCTOR_TIMEOUT_MS = 60_000;
/** How often streamed pull lines are drawn (they come much faster). */
const PULL_FLUSH_MS = 150;

function checkTone(c: DoctorCheck): Tone {
  if (c.status === "pass") return "good";
  if (c.status === "skip") return "idle";
  return c.essential ? "bad" : "warn";
}

function CheckRow(props: { check: DoctorCheck }) {
  const c = props.check;
  return (
    <li
      class={`doctor-check doctor-${c.status} ${c.essential ? "doctor-essential" : ""}`}
      data-testid="doctor-check"
      data-name={c.name}
      data-status={c.status}
    >
      <div class="doctor-head">
        <Pill tone={checkTone(c)}>{c.status === "pass" ? "ok" : c.status === "fail" ? "problem" : "skipped"}</Pill>
        <strong>{c.name}</strong>
        {c.essential && <span class="muted small">essential</span>}
      </div>
      <div class="doctor-detail">{c.detail}</div>
      {c.hint && (
        <div class="doctor-hint" data-testid="doctor-hint">
          <strong>Fix:</strong> {c.hint}
        </div>
      )}
      {c.notes && c.notes.length > 0 && (
        <ul class="doctor-notes">
          {c.notes.map((n, i) => (
            <li key={i}>{n}</li>
          ))}
        </ul>
      )}
    </li>
  );
}

function ModelPullBar(props: { pull: ModelPull }) {
  const p = props.pull;
  const fraction = pullFraction(p);
  const all = pullBytes(p);
  return (
    <div class="model-pull" data-testid="welcome-pull-progress">
      <Progress fraction={fraction} tone={p.done ? "good" : "warn"} label={p.status} testid="pull-bar" />
      <div class="small model-pull-text">
        <span data-testid="pull-status">{p.done ? "pulled" : p.status || "starting…"}</span>
        {p.layer && !p.done && (
          <span class="muted">
            {" "}
            · {f.bytes(p.layer.completed)} / {f.bytes(p.layer.total)}
          </span>
        )}
        {p.layers.length > 1 && (
          <span class="muted">
            {" "}
            · {p.layers.length} layers, {f.bytes(all.completed)} / {f.bytes(all.total)} in all
          </span>
        )}
      </div>
    </div>
  );
}

/** "Pull <model>": reads the NDJSON answer as it streams and draws the bar. */
function usePullModel(onPulled: (model: string) => void): {
  pull: ModelPull | null;
  error: ApiError | null;
  busy: boolean;
  start: (model: string | null) => void;
} {
  const [pull, setPull] = useState<ModelPull | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const controller = useRef<AbortController | null>(null);
  const onPulledRef = useRef(onPulled);
  onPulledRef.current = onPulled;
  useEffect(() => () => controller.current?.abort(), []);
  const start = (model: string | null): void => {
    if (busy) return;
    const c = new AbortController();
    controller.current = c;
    setBusy(true);
    setError(null);
    let state = emptyModelPull(model ?? "");
    setPull(state);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const flush = (): void => {
      timer = undefined;
      setPull(state);
    };
    api()
      .stream("/models/pull", { method: "POST", body: model === null ? {} : { model }, signal: c.signal }, (item) => {
        state = foldModelPull(state, item);
        if (timer === undefined) timer = setTimeout(flush, PULL_FLUSH_MS);
      })
      .then(() => {
        if (c.signal.aborted) return;
        if (state.done) onPulledRef.current(state.model);
        else if (state.error) setError(new ApiError(state.error.code, state.error.message));
        else setError(new ApiError("pull_incomplete", "the pull ended before the server said it succeeded"));
      })
      .catch((err: unknown) => {
        if (!c.signal.aborted) setError(asApiError(err));
      })
      .finally(() => {
        clearTimeout(timer);
        if (c.signal.aborted) return;
        setPull(state);
        setBusy(false);
      });
  };
  return { pull, error, busy, start };
}

function finish(hash: string): void {
  markWelcomeDone(localStore());
  window.location.hash = hash;
}

export function Welcome() {
  const doctor = useAction<DoctorReport>();
  const status = usePoll((signal) => api().get<SystemStatus>("/status", {}, signal), 0, []);
  const agents = usePoll((signal) => api().get<AgentList>("/agents", {}, signal), 0, []);
  const deploy = useDeployAll();
  const [pulled, setPulled] = useState<string | null>(null);
  const first = useAction<Submitted>();

  const runDoctor = (): void => {
    void doctor.run(() => api().request<DoctorReport>("/setup/doctor", { timeoutMs: DOCTOR_TIMEOUT_MS }));
  };
  const checkAgain = (): void => {
    runDoctor();
    status.refresh();
    agents.refresh();
  };
  useEffect(runDoctor, []);
  const pull = usePullModel((model) => {
    setPulled(model === "" ? (status.data?.llm.model ?? null) : model);
    checkAgain();
  });

  const report = doctor.result;
  const plan = planWelcome({ report, status: status.data, pulled });
  const request = useMemo(() => (agents.data ? firstTaskRequest(agents.data.agents) : null), [agents.data]);
  // Optional parts (Docker, Redis) may stay missing: "Done" once nothing essential fails
  // and the model is there.
  const allGood = plan.checks.ok === true && plan.pull.state === "ready";

  const startDeploy = (): void => {
    void deploy.start().then((report) => report && checkAgain());
  };
  const runFirstTask = (): void => {
    if (request === null) return;
    void first.run(() => api().post<Submitted>("/tasks", request)).then((answer) => {
      if (answer) finish(routeHash({ view: "task", taskId: answer.task_id }));
    });
  };

  return (
    <div class="view welcome" data-testid="welcome">
      <h1>Get started</h1>
      <p class="lead">
        Four steps from a fresh install to agents working together: check this machine, start the services, get the
        model, and run a first task. Nothing here needs a terminal.
      </p>

      <Panel
        title="1 · Check this machine"
        actions={
          <Button onClick={checkAgain} busy={doctor.busy} testid="doctor-rerun">
            Check again
          </Button>
        }
      >
        <ErrorNote error={doctor.error} prefix="The checks did not run" />
        {report === null ? (
          doctor.busy ? (
            <Loading what="the checks (a few seconds)" />
          ) : null
        ) : (
          <>
            <p data-testid="doctor-summary" class={plan.checks.failed.length === 0 ? "ok-note" : plan.checks.ok ? "" : "field-error"}>
              {doctorSummary(report)}
            </p>
            <ul class="doctor-list">
              {report.checks.map((c, i) => (
                <CheckRow key={`${i}-${c.name}`} check={c} />
              ))}
            </ul>
          </>
        )}
        <ErrorNote error={status.error} prefix="Status" />
      </Panel>

      <Panel title="2 · Start the services">
        <p class={plan.deploy.offer ? "" : "muted"}>{plan.deploy.reason}</p>
        {plan.deploy.offer && (
          <div class="button-row">
            <Button needs="operator" kind="primary" onClick={startDeploy} busy={deploy.action.busy} testid="welcome-deploy">
              Deploy all services
            </Button>
          </div>
        )}
        <DeployProgress deploy={deploy} />
      </Panel>

      <Panel title="3 · Get the default model">
        <p class={plan.pull.state === "ready" ? "ok-note" : plan.pull.state === "offer" ? "" : "muted"}>
          {plan.pull.reason}
        </p>
        {(plan.pull.state === "offer" || plan.pull.state === "unreachable" || pull.busy) && (
          <div class="button-row">
            <Button
              needs="operator"
              kind="primary"
              onClick={() => pull.start(plan.pull.model)}
              busy={pull.busy}
              disabled={plan.pull.state === "unreachable"}
              testid="welcome-pull"
            >
              Pull {plan.pull.model ?? "the default model"}
            </Button>
          </div>
        )}
        {pull.pull && <ModelPullBar pull={pull.pull} />}
        <ErrorNote error={pull.error} prefix="Pull failed" />
      </Panel>

      <Panel title="4 · Run a first multi-agent task">
        <p class={plan.firstTask.ready ? "" : "muted"}>{plan.firstTask.reason}</p>
        {request ? (
          <dl class="facts">
            <dt>Asks</dt>
            <dd>{request.description}</dd>
            <dt>Needs</dt>
            <dd>
              <Chips items={request.requirements} /> · {request.coordination_pattern}, {request.constraints?.max_agents} agents
            </dd>
          </dl>
        ) : agents.error ? (
          <ErrorNote error={agents.error} prefix="Agents" />
        ) : agents.data ? (
          <p class="field-error">No running agent has a capability to ask for.</p>
        ) : (
          <Loading what="the agents" />
        )}
        <div class="button-row">
          <Button
            needs="operator"
            kind="primary"
            onClick={runFirstTask}
            busy={first.busy}
            disabled={!plan.firstTask.ready || request === null}
            testid="welcome-first-task"
          >
            Run a first multi-agent task
          </Button>
        </div>
        <ErrorNote error={first.error} prefix="Not submitted" />
      </Panel>

      <div class="button-row welcome-end">
        <Button
          onClick={() => finish(routeHash({ view: "overview" }))}
          testid="welcome-done"
          kind={allGood ? "primary" : "plain"}
        >
          {allGood ? "Done" : "Skip for now"}
        </Button>
        <span class="muted small">This page stays under “Get started” in the sidebar.</span>
      </div>
    </div>
  );
}
