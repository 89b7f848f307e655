// A task's session timeline: the task as `GET /tasks/{id}` returned it, kept current by
// folding the `/ws` events about it (orchestrator `event.rs`: task_* and step_*). Pure
// functions, so what the page shows for a given sequence of events is tested without a
// browser.

import type { Step, StepKind, StepStatus, TaskDetail, TaskStatus } from "./types";

/** Most streamed characters kept per step: the finished output comes from the API. */
export const STREAM_LIMIT = 64 * 1024;

export interface TimelineStep {
  key: string;
  seq: number;
  kind: StepKind | string;
  agentId: string;
  status: StepStatus | string;
  attempts: number;
  promptTokens: number;
  completionTokens: number;
  duration: number | null;
  output: string | null;
  error: string | null;
  input: string | null;
  model: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  /** Model output as it streamed over `/ws` (`step_token`), newest attempt included. */
  streamed: string;
  /** Characters dropped from the front of `streamed` to keep it under STREAM_LIMIT. */
  dropped: number;
}

export interface Timeline {
  taskId: string;
  status: TaskStatus | string;
  agents: string[];
  pendingApprovals: string[];
  steps: TimelineStep[];
  result: unknown;
  error: string | null;
  /** Seconds the task took, from `task_completed`. */
  duration: number | null;
  /** Events were missed (`lagged`): the view should read the task again. */
  stale: boolean;
  /** The detail it was built from, for the fields events do not carry. */
  detail: TaskDetail | null;
}

export function emptyTimeline(taskId: string): Timeline {
  return {
    taskId,
    status: "queued",
    agents: [],
    pendingApprovals: [],
    steps: [],
    result: undefined,
    error: null,
    duration: null,
    stale: false,
    detail: null,
  };
}

function fromStep(step: Step): TimelineStep {
  return {
    key: step.key,
    seq: step.seq,
    kind: step.kind,
    agentId: step.agent_id,
    status: step.status,
    attempts: step.attempts,
    promptTokens: step.prompt_tokens,
    completionTokens: step.completion_tokens,
    duration: step.duration ?? null,
    output: step.output ?? null,
    error: step.error ?? null,
    input: step.input,
    model: step.model ?? null,
    startedAt: step.started_at,
    finishedAt: step.finished_at ?? null,
    streamed: "",
    dropped: 0,
  };
}

function ordered(steps: TimelineStep[]): TimelineStep[] {
  return [...steps].sort((a, b) => a.seq - b.seq);
}

/**
 * The timeline after reading the task (again): the API's view wins for everything it
 * knows; what streamed for steps still running is kept, and steps only seen in events
 * (started after the read was answered) stay.
 */
export function withDetail(previous: Timeline | null, detail: TaskDetail): Timeline {
  const before = new Map((previous?.steps ?? []).map((s) => [s.key, s]));
  const steps = detail.steps.map((step) => {
    const next = fromStep(step);
    const old = before.get(step.key);
    if (old) {
      next.streamed = old.streamed;
      next.dropped = old.dropped;
      // An event may already have said more than the (slightly older) read.
      if (old.status !== "running" && next.status === "running") {
        next.status = old.status;
        next.promptTokens = old.promptTokens;
        next.completionTokens = old.completionTokens;
        next.duration = old.duration;
      }
    }
    return next;
  });
  const known = new Set(steps.map((s) => s.key));
  for (const old of previous?.steps ?? []) if (!known.has(old.key)) steps.push(old);
  const terminalBefore = previous !== null && ["completed", "failed", "cancelled"].includes(previous.status);
  const terminalNow = ["completed", "failed", "cancelled"].includes(detail.status);
  return {
    taskId: detail.id,
    // A terminal status seen in an event is not undone by an older read.
    status: terminalBefore && !terminalNow ? (previous?.status ?? detail.status) : detail.status,
    agents: detail.assigned_agents,
    pendingApprovals: detail.pending_approvals,
    steps: ordered(steps),
    result: detail.result ?? previous?.result,
    error: detail.error ?? previous?.error ?? null,
    duration: previous?.duration ?? null,
    stale: false,
    detail,
  };
}

function str(value: unknown, fallback = ""): string {
  return typeof value === "string" ? value : fallback;
}

function num(value: unknown, fallback = 0): number {
  return typeof value === "number" && Number.isFinite(value) ? value : fallback;
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}

function upsertStep(t: Timeline, key: string, change: (step: TimelineStep) => TimelineStep, agentId: string): Timeline {
  const index = t.steps.findIndex((s) => s.key === key);
  if (index >= 0) {
    const steps = [...t.steps];
    const current = steps[index];
    if (current) steps[index] = change(current);
    return { ...t, steps };
  }
  const seq = t.steps.reduce((max, s) => Math.max(max, s.seq), -1) + 1;
  const fresh: TimelineStep = {
    key,
    seq,
    kind: key.split("/")[0] ?? key,
    agentId,
    status: "running",
    attempts: 1,
    promptTokens: 0,
    completionTokens: 0,
    duration: null,
    output: null,
    error: null,
    input: null,
    model: null,
    startedAt: null,
    finishedAt: null,
    streamed: "",
    dropped: 0,
  };
  return { ...t, steps: [...t.steps, change(fresh)] };
}

function appendStream(step: TimelineStep, text: string): TimelineStep {
  let streamed = step.streamed + text;
  let dropped = step.dropped;
  if (streamed.length > STREAM_LIMIT) {
    const cut = streamed.length - STREAM_LIMIT;
    streamed = streamed.slice(cut);
    dropped += cut;
  }
  return { ...step, streamed, dropped };
}

/**
 * Folds one `/ws` message into the timeline. Messages about other tasks, and types this
 * view does not use, return `t` itself (so callers can skip a render).
 */
export function foldEvent(t: Timeline, event: { type: string; [k: string]: unknown }): Timeline {
  if (event.type === "lagged") return { ...t, stale: true };
  if (event.task_id !== t.taskId) return t;
  switch (event.type) {
    case "task_submitted":
      return t;
    case "awaiting_approval":
      return { ...t, status: "awaiting_approval", pendingApprovals: strings(event.pending) };
    case "task_approved": {
      const pending = strings(event.pending);
      return {
        ...t,
        pendingApprovals: pending,
        status: pending.length === 0 && t.status === "awaiting_approval" ? "queued" : t.status,
      };
    }
    case "task_started":
      return { ...t, status: "running", agents: strings(event.agents).length > 0 ? strings(event.agents) : t.agents };
    case "step_started": {
      const key = str(event.step);
      const agentId = str(event.agent_id);
      return upsertStep(
        t,
        key,
        (s) => ({
          ...s,
          kind: str(event.kind, s.kind),
          agentId: agentId || s.agentId,
          status: "running",
          error: null,
        }),
        agentId,
      );
    }
    case "step_token": {
      const text = str(event.text);
      if (text === "") return t;
      return upsertStep(t, str(event.step), (s) => appendStream(s, text), str(event.agent_id));
    }
    case "step_finished": {
      const status = str(event.status, "completed");
      return upsertStep(
        t,
        str(event.step),
        (s) => ({
          ...s,
          status,
          promptTokens: num(event.prompt_tokens, s.promptTokens),
          completionTokens: num(event.completion_tokens, s.completionTokens),
          duration: status === "completed" ? num(event.duration, s.duration ?? 0) : s.duration,
        }),
        str(event.agent_id),
      );
    }
    case "task_completed":
      return {
        ...t,
        status: "completed",
        result: event.result,
        duration: num(event.duration, t.duration ?? 0),
        pendingApprovals: [],
      };
    case "task_failed": {
      const code = str(event.code);
      const message = str(event.message);
      return { ...t, status: "failed", error: code ? `${code}: ${message}` : message };
    }
    case "task_cancelled":
      return { ...t, status: "cancelled" };
    default:
      return t;
  }
}

/** Events that mean the API now knows more than the events said (outputs, errors). */
export function wantsReread(event: { type: string; task_id?: unknown }, taskId: string): boolean {
  if (event.type === "lagged") return true;
  return (
    event.task_id === taskId &&
    ["step_finished", "task_completed", "task_failed", "task_cancelled", "task_started", "task_approved"].includes(event.type)
  );
}

/** Token totals over the steps. */
export function tokenTotals(t: Timeline): { prompt: number; completion: number } {
  return t.steps.reduce((acc, s) => ({ prompt: acc.prompt + s.promptTokens, completion: acc.completion + s.completionTokens }), {
    prompt: 0,
    completion: 0,
  });
}
