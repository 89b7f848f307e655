// Deploy-all, shared by the Infrastructure view and the welcome flow: `POST
// /infrastructure/deploy-all` (it answers when every service is up, so no time limit) with
// its progress from `/ws` `infrastructure` events (steps since the deploy started, image
// pulls per layer), and image pull bars.

import { useRef, useState } from "preact/hooks";
import * as f from "../format";
import { describeInfra, emptyPull, foldPull, layerFraction, type PullState } from "../live";
import type { DeployReport, InfraEvent } from "../types";
import { api } from "./app-state";
import { ErrorNote, Pill, Progress } from "./components";
import { useAction, useSocket, type Action } from "./hooks";

export function PullBars(props: { pull: PullState }) {
  const p = props.pull;
  return (
    <div class="pull" data-testid="pull-progress">
      <div class="pull-head">
        <span class="mono">{p.reference}</span> <span class="muted">{p.overall}</span> {p.done && <Pill tone="good">done</Pill>}
      </div>
      {p.layers.map((l) => {
        const fraction = layerFraction(l);
        return (
          <div class="layer" key={l.id} data-testid="pull-layer">
            <span class="mono small layer-id">{l.id}</span>
            <Progress fraction={fraction} tone={fraction === 1 ? "good" : "warn"} />
            <span class="small layer-status">
              {l.status}
              {l.total ? ` ${f.bytes(l.current ?? 0)} / ${f.bytes(l.total)}` : ""}
            </span>
          </div>
        );
      })}
    </div>
  );
}

export interface DeployAll {
  action: Action<DeployReport>;
  /** Step events since the deploy started. */
  steps: InfraEvent[];
  /** Image pulls seen over `/ws`, by reference. */
  pulls: PullState[];
  /** Starts deploy-all; resolves to its report, or null when it failed (see `action.error`). */
  start: () => Promise<DeployReport | null>;
}

export function useDeployAll(): DeployAll {
  const action = useAction<DeployReport>();
  const [steps, setSteps] = useState<InfraEvent[]>([]);
  const [pulls, setPulls] = useState<Record<string, PullState>>({});
  const started = useRef(false);
  useSocket((m) => {
    if (m.type !== "infrastructure" || typeof m.data !== "object" || m.data === null) return;
    const event = m.data as InfraEvent;
    if (event.event === "pull") {
      setPulls((old) => ({ ...old, [event.reference]: foldPull(old[event.reference] ?? emptyPull(event.reference), event) }));
    } else if (event.event === "step" && started.current) {
      setSteps((old) => [...old, event].slice(-200));
    }
  });
  const start = (): Promise<DeployReport | null> => {
    started.current = true;
    setSteps([]);
    setPulls({});
    return action.run(() => api().post<DeployReport>("/infrastructure/deploy-all", undefined, { timeoutMs: 0 }));
  };
  return { action, steps, pulls: Object.values(pulls), start };
}

/** The deploy's steps, pull bars, outcome; nothing before it started. */
export function DeployProgress(props: { deploy: DeployAll }) {
  const { action, steps, pulls } = props.deploy;
  if (!(action.busy || action.result || action.error || steps.length > 0)) return null;
  return (
    <div class="deploy" data-testid="deploy-progress">
      {action.busy && <Progress fraction={null} label="deploying" />}
      <ul class="event-list">
        {steps.map((e, i) => {
          const d = describeInfra(e);
          return (
            <li key={i} class={`tone-text-${d.tone}`}>
              {d.text}
            </li>
          );
        })}
      </ul>
      {pulls.map((p) => (
        <PullBars key={p.reference} pull={p} />
      ))}
      <ErrorNote error={action.error} prefix="Deploy-all stopped" />
      {action.result && (
        <p class="ok-note" data-testid="deploy-done">
          Deployed {action.result.services.join(", ")} in {f.duration(action.result.seconds)}.
        </p>
      )}
    </div>
  );
}
