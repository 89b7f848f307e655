// The first-run welcome flow's logic, free of the DOM: whether the flow opens by itself,
// which steps it offers given a doctor report (`GET /setup/doctor`) and `GET /status`,
// the model pull's progress folded from its NDJSON lines (`POST /models/pull`), and the
// first multi-agent task built from the capabilities the registry has.

import type { AgentInfo, DoctorCheck, DoctorReport, SystemStatus, TaskRequest } from "./types";

/** Set (to an ISO date) once the person finished or skipped the flow; it then never opens by itself. */
export const WELCOME_DONE_KEY = "sutazai.welcome.done";

/** The part of `Storage` the flag needs; null where storage is refused (private mode). */
export type FlagStore = Pick<Storage, "getItem" | "setItem"> | null;

export function welcomeDone(store: FlagStore): boolean {
  try {
    return store !== null && store.getItem(WELCOME_DONE_KEY) !== null;
  } catch {
    return false;
  }
}

/** Remembers that the flow is done; a store that refuses only means it may show again. */
export function markWelcomeDone(store: FlagStore, now = new Date()): void {
  try {
    store?.setItem(WELCOME_DONE_KEY, now.toISOString());
  } catch {
    // Storage full or refused: nothing else to do.
  }
}

/**
 * Where the page should go when it loads: `#/welcome` on a first launch that asked for no
 * particular view (an empty hash, `#` or `#/`), otherwise nowhere (null). A notification
 * click opens its view even on a first launch.
 */
export function firstRunHash(hash: string, done: boolean): string | null {
  if (done) return null;
  return /^#?\/?$/.test(hash) ? "#/welcome" : null;
}

// --- model pull ------------------------------------------------------------------------------

/** Bytes of one layer of the model, as the last line about it said. */
export interface PullLayer {
  digest: string;
  completed: number;
  total: number;
}

/** A model pull as the page shows it. */
export interface ModelPull {
  /** The model asked for ("" for the configured default). */
  model: string;
  /** The last status line (`pulling manifest`, `pulling 6a0746a1ec1a`, `verifying sha256 digest`). */
  status: string;
  /** The layer the bar shows (the latest with byte counts), or null before any. */
  layer: PullLayer | null;
  /** Every layer with byte counts, in the order they first came. */
  layers: PullLayer[];
  /** The last line said `success`. */
  done: boolean;
  /** The last line was `{"error": {code, message}}`. */
  error: { code: string; message: string } | null;
  /** Lines folded so far. */
  lines: number;
}

export function emptyModelPull(model: string): ModelPull {
  return { model, status: "", layer: null, layers: [], done: false, error: null, lines: 0 };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function byteCount(value: unknown): number | null {
  return typeof value === "number" && Number.isFinite(value) && value >= 0 ? value : null;
}

/**
 * Folds one NDJSON line of `POST /models/pull` into the pull. A line with `total` is a
 * layer's progress (its digest is the rest of `pulling <digest>`, or `digest`); a line
 * without is a status (`pulling manifest`, `writing manifest`) that leaves the bar where
 * it was; `success` ends the pull; `{"error": {code, message}}` fails it. Nothing changes
 * once the pull ended, and lines that are not objects are skipped.
 */
export function foldModelPull(state: ModelPull, line: unknown): ModelPull {
  if (state.done || state.error !== null || !isRecord(line)) return state;
  const lines = state.lines + 1;
  if ("error" in line) {
    const e = line.error;
    const error =
      isRecord(e) && typeof e.message === "string"
        ? { code: typeof e.code === "string" ? e.code : "pull_failed", message: e.message }
        : { code: "pull_failed", message: typeof e === "string" ? e : "the pull failed" };
    return { ...state, error, lines };
  }
  const status = typeof line.status === "string" ? line.status : state.status;
  if (status === "success") return { ...state, status, done: true, lines };
  const total = byteCount(line.total);
  if (total === null) return { ...state, status, lines };
  const named = /^pulling (.+)$/.exec(status)?.[1]?.trim();
  const digest = named ?? (typeof line.digest === "string" ? line.digest : status);
  const index = state.layers.findIndex((l) => l.digest === digest);
  const before = index >= 0 ? state.layers[index] : undefined;
  const completed = byteCount(line.completed) ?? before?.completed ?? 0;
  const layer: PullLayer = { digest, total, completed: Math.min(completed, total) };
  const layers = [...state.layers];
  if (index >= 0) layers[index] = layer;
  else layers.push(layer);
  return { ...state, status, layer, layers, lines };
}

/** The bar's fill from 0 to 1: the current layer's bytes; 1 once done; null (striped) when unknown. */
export function pullFraction(pull: ModelPull): number | null {
  if (pull.done) return 1;
  const l = pull.layer;
  if (l === null || l.total <= 0) return null;
  return Math.max(0, Math.min(1, l.completed / l.total));
}

/** Bytes over every layer seen so far (the total grows as layers appear). */
export function pullBytes(pull: ModelPull): { completed: number; total: number } {
  let completed = 0;
  let total = 0;
  for (const l of pull.layers) {
    completed += l.completed;
    total += l.total;
  }
  return { completed, total };
}

// --- which steps ------------------------------------------------------------------------------

/** What the flow offers, worked out from what the server reported. */
export interface WelcomePlan {
  checks: {
    /** A report came. */
    ran: boolean;
    /** Every essential check passed (null before a report). */
    ok: boolean | null;
    failed: DoctorCheck[];
    /** Failed essential checks: the server cannot work as configured until they are fixed. */
    essentialFailed: DoctorCheck[];
  };
  deploy: {
    /** Docker is there: offer "Deploy all services". */
    offer: boolean;
    /** Why not, or what it would do. */
    reason: string;
  };
  pull: {
    /**
     * `ready`: the default model is there; `offer`: pull it; `unreachable`: the endpoint
     * does not answer; `unknown`: nothing said either way.
     */
    state: "ready" | "offer" | "unreachable" | "unknown";
    /** The configured default model, when known. */
    model: string | null;
    reason: string;
  };
  firstTask: {
    /** Nothing it needs is known to be missing (the model on a reachable endpoint, a running agent). */
    ready: boolean;
    reason: string;
  };
}

export interface PlanInput {
  report: DoctorReport | null;
  status: SystemStatus | null;
  /** A model this page pulled to the end (`/status` caches its LLM probe for a few seconds). */
  pulled?: string | null;
}

/** One line over the checks: all fine, or how many failed and which essential ones. */
export function doctorSummary(report: DoctorReport): string {
  const failed = report.checks.filter((c) => c.status === "fail");
  const n = report.checks.length;
  if (failed.length === 0) return `All ${n} checks passed.`;
  const essential = failed.filter((c) => c.essential).map((c) => c.name);
  const blocking =
    essential.length > 0 ? `; SutazAI cannot work until the essential ones (${essential.join(", ")}) are fixed` : "";
  return `${failed.length} of ${n} checks found a problem${blocking}. Each says how to fix it.`;
}

/**
 * A check picked by what its name mentions. Only a fallback for when `/status` did not
 * answer: the report's names are display text, and the view lists every check as it came.
 */
function checkAbout(report: DoctorReport | null, word: RegExp): DoctorCheck | undefined {
  return report?.checks.find((c) => word.test(c.name));
}

export function planWelcome(input: PlanInput): WelcomePlan {
  const { report, status } = input;
  const failed = report?.checks.filter((c) => c.status === "fail") ?? [];
  const checks = {
    ran: report !== null,
    ok: report === null ? null : report.ok,
    failed,
    essentialFailed: failed.filter((c) => c.essential),
  };

  // Docker: `/status` says; the doctor's docker check stands in when `/status` did not answer.
  const infra = status?.infrastructure;
  const dockerCheck = checkAbout(report, /docker/i);
  const docker: boolean | null =
    infra && typeof infra.available === "boolean"
      ? infra.available
      : dockerCheck && dockerCheck.status !== "skip"
        ? dockerCheck.status === "pass"
        : null;
  const why = infra?.reason ?? dockerCheck?.detail;
  const deploy =
    docker === true
      ? {
          offer: true,
          reason:
            "Starts Redis, Ollama with the default model, and the agent workers as containers, " +
            "each once the one before is healthy.",
        }
      : docker === false
        ? {
            offer: false,
            reason:
              `Docker is not available${why ? `: ${why}` : ""}. ` +
              "SutazAI works without it, with the LLM endpoint it is configured for.",
          }
        : { offer: false, reason: "Whether Docker is available is not known yet." };

  // The default model.
  const llm = status?.llm;
  const model = llm && typeof llm.model === "string" && llm.model !== "" ? llm.model : null;
  const modelCheck = checkAbout(report, /model/i);
  let available: boolean | null;
  let reachable: boolean | null;
  if (model !== null && input.pulled === model) {
    available = true;
    reachable = true;
  } else if (llm) {
    available = llm.model_available;
    reachable = llm.reachable;
  } else {
    available = modelCheck && modelCheck.status !== "skip" ? modelCheck.status === "pass" : null;
    const endpoint = checkAbout(report, /llm|endpoint/i);
    reachable = endpoint && endpoint.status !== "skip" ? endpoint.status === "pass" : null;
  }
  const named = model ?? "the default model";
  const Named = model ?? "The default model";
  let pull: WelcomePlan["pull"];
  if (available === true) pull = { state: "ready", model, reason: `${Named} is available.` };
  else if (available === false && reachable === false)
    pull = {
      state: "unreachable",
      model,
      reason:
        `The LLM endpoint does not answer${llm?.error ? ` (${llm.error})` : ""}; ` +
        `start it${docker === true ? " (or deploy all services)" : ""} and check again.`,
    };
  else if (available === false) pull = { state: "offer", model, reason: `${Named} is not on the LLM endpoint yet.` };
  else pull = { state: "unknown", model, reason: "Whether the default model is there is not known yet." };

  // The first task needs the model and at least one agent that is up; it is held back only
  // when either is known to be missing.
  const agentsUp = status ? status.agents.healthy + status.agents.degraded : null;
  let firstTask: WelcomePlan["firstTask"];
  if (pull.state === "offer" || pull.state === "unreachable")
    firstTask = { ready: false, reason: `It needs ${named} on a reachable LLM endpoint first.` };
  else if (agentsUp === 0) firstTask = { ready: false, reason: "No agent is running; start agents first." };
  else
    firstTask = {
      ready: true,
      reason:
        pull.state === "ready"
          ? "Two agents answer a short request in parallel, and the better-ranked one combines their answers."
          : "Whether the default model is there is not known; the task fails if it is not.",
    };

  return { checks, deploy, pull, firstTask };
}

// --- the first task ---------------------------------------------------------------------------

/** Capabilities the first task asks for when the registry has them: a small, harmless coding job. */
export const FIRST_TASK_CAPABILITIES = ["code_generation", "code_review", "documentation", "synthesis"];

export const FIRST_TASK_NAME = "First multi-agent task";
export const FIRST_TASK_DESCRIPTION =
  "Write a Python function is_palindrome(text) that ignores case, spaces and punctuation, " +
  "with a one-line docstring and two example calls. Keep the whole answer under 120 words.";

/**
 * The first task's `POST /tasks` body: collaborative, two agents, two requirements the
 * registry's running agents cover (the preferred ones first, then the most common), or
 * null when no running agent has any capability.
 */
export function firstTaskRequest(agents: AgentInfo[]): TaskRequest | null {
  const up = agents.filter((a) => a.status !== "stopped");
  const counts = new Map<string, number>();
  for (const a of up) for (const c of new Set(a.capabilities)) counts.set(c, (counts.get(c) ?? 0) + 1);
  const requirements = FIRST_TASK_CAPABILITIES.filter((c) => counts.has(c)).slice(0, 2);
  const common = [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([c]) => c);
  for (const c of common) {
    if (requirements.length >= 2) break;
    if (!requirements.includes(c)) requirements.push(c);
  }
  if (requirements.length === 0) return null;
  return {
    name: FIRST_TASK_NAME,
    description: FIRST_TASK_DESCRIPTION,
    priority: "normal",
    requirements,
    coordination_pattern: "collaborative",
    payload: {},
    constraints: { max_agents: 2 },
  };
}
