// The first-run flow: when it opens by itself, the model pull's progress from its NDJSON
// lines, which steps are offered for a doctor report and `/status`, and the first task.

import { describe, expect, it } from "vitest";
import type { AgentInfo, DoctorCheck, DoctorReport, SystemStatus } from "./types";
import {
  doctorSummary,
  emptyModelPull,
  firstRunHash,
  firstTaskRequest,
  foldModelPull,
  markWelcomeDone,
  planWelcome,
  pullBytes,
  pullFraction,
  WELCOME_DONE_KEY,
  welcomeDone,
  type ModelPull,
} from "./welcome";

function memoryStore(): Storage {
  const items = new Map<string, string>();
  return {
    get length() {
      return items.size;
    },
    clear: () => items.clear(),
    getItem: (k) => items.get(k) ?? null,
    key: (i) => [...items.keys()][i] ?? null,
    removeItem: (k) => void items.delete(k),
    setItem: (k, v) => void items.set(k, v),
  };
}

describe("the first-run flag", () => {
  it("opens the flow on a first launch that asked for no view, and only then", () => {
    for (const hash of ["", "#", "#/"]) expect(firstRunHash(hash, false), hash).toBe("#/welcome");
    expect(firstRunHash("", true)).toBeNull();
    // A notification click names its view: it wins even on a first launch.
    expect(firstRunHash("#/alerts", false)).toBeNull();
    expect(firstRunHash("#/tasks/abc", false)).toBeNull();
    expect(firstRunHash("#/overview", false)).toBeNull();
  });

  it("is kept in storage, and a refusing storage is no error", () => {
    const store = memoryStore();
    expect(welcomeDone(store)).toBe(false);
    markWelcomeDone(store, new Date("2026-11-24T12:00:00Z"));
    expect(store.getItem(WELCOME_DONE_KEY)).toBe("2026-11-24T12:00:00.000Z");
    expect(welcomeDone(store)).toBe(true);
    expect(welcomeDone(null)).toBe(false);
    const refusing = {
      getItem: (): string | null => {
        throw new Error("SecurityError");
      },
      setItem: (): void => {
        throw new Error("QuotaExceededError");
      },
    };
    expect(welcomeDone(refusing)).toBe(false);
    expect(() => markWelcomeDone(refusing)).not.toThrow();
  });
});

function fold(lines: unknown[], model = "llama3.2"): ModelPull {
  return lines.reduce<ModelPull>(foldModelPull, emptyModelPull(model));
}

describe("foldModelPull", () => {
  it("follows Ollama's progress lines to success", () => {
    const start = fold([{ status: "pulling manifest" }]);
    expect(start).toMatchObject({ status: "pulling manifest", layer: null, done: false, lines: 1 });
    expect(pullFraction(start)).toBeNull();

    const first = fold([
      { status: "pulling manifest" },
      { status: "pulling 6a0746a1ec1a", digest: "sha256:6a0746a1ec1a", total: 2_000 },
      { status: "pulling 6a0746a1ec1a", digest: "sha256:6a0746a1ec1a", total: 2_000, completed: 500 },
    ]);
    expect(first.layer).toEqual({ digest: "6a0746a1ec1a", completed: 500, total: 2_000 });
    expect(pullFraction(first)).toBe(0.25);

    const second = [
      { status: "pulling 6a0746a1ec1a", total: 2_000, completed: 2_000 },
      { status: "pulling 4fa551d4f938", total: 1_000, completed: 100 },
    ].reduce(foldModelPull, first);
    // The bar shows the newest layer's bytes; the totals add up every layer seen.
    expect(second.layer).toEqual({ digest: "4fa551d4f938", completed: 100, total: 1_000 });
    expect(pullFraction(second)).toBeCloseTo(0.1);
    expect(pullBytes(second)).toEqual({ completed: 2_100, total: 3_000 });
    expect(second.layers.map((l) => l.digest)).toEqual(["6a0746a1ec1a", "4fa551d4f938"]);

    // Lines without byte counts change the words, not the bar.
    const verifying = foldModelPull(second, { status: "verifying sha256 digest" });
    expect(verifying.status).toBe("verifying sha256 digest");
    expect(verifying.layer).toEqual(second.layer);

    const done = [{ status: "writing manifest" }, { status: "success" }].reduce(foldModelPull, verifying);
    expect(done).toMatchObject({ status: "success", done: true, error: null, lines: 8 });
    expect(pullFraction(done)).toBe(1);
    // Nothing after the end counts.
    expect(foldModelPull(done, { status: "pulling x", total: 5, completed: 1 })).toBe(done);
  });

  it("keeps a layer's bytes when a line leaves them out, and never past its total", () => {
    const p = fold([
      { status: "pulling aa", total: 100, completed: 40 },
      { status: "pulling aa", total: 100 },
      { status: "pulling bb", total: 50, completed: 80 },
    ]);
    expect(p.layers).toEqual([
      { digest: "aa", completed: 40, total: 100 },
      { digest: "bb", completed: 50, total: 50 },
    ]);
    expect(pullFraction(p)).toBe(1);
    // A digest given only in `digest`, and a zero-byte layer.
    const q = fold([{ status: "downloading", digest: "sha256:cc", total: 0, completed: 0 }]);
    expect(q.layer).toEqual({ digest: "sha256:cc", completed: 0, total: 0 });
    expect(pullFraction(q)).toBeNull();
  });

  it("ends with the API's error, and skips what is not an object", () => {
    const failed = fold([
      "noise",
      null,
      { status: "pulling aa", total: 10, completed: 5 },
      { error: { code: "pull_failed", message: "pull model manifest: file does not exist" } },
      { status: "success" },
    ]);
    expect(failed.error).toEqual({ code: "pull_failed", message: "pull model manifest: file does not exist" });
    expect(failed.done).toBe(false);
    expect(failed.lines).toBe(2);
    expect(pullFraction(failed)).toBe(0.5);
    expect(fold([{ error: "disk full" }]).error).toEqual({ code: "pull_failed", message: "disk full" });
    expect(fold([{ error: { message: "no code" } }]).error).toEqual({ code: "pull_failed", message: "no code" });
  });
});

function check(name: string, status: DoctorCheck["status"], essential = false): DoctorCheck {
  return {
    name,
    status,
    essential,
    detail: `${name} ${status}`,
    ...(status === "fail" ? { hint: `fix ${name}` } : {}),
  };
}

function report(checks: DoctorCheck[]): DoctorReport {
  return { ok: checks.filter((c) => c.essential).every((c) => c.status === "pass"), checks };
}

function status(change: {
  docker?: boolean;
  dockerReason?: string;
  model?: string;
  available?: boolean;
  reachable?: boolean;
  llmError?: string;
  healthy?: number;
}): SystemStatus {
  return {
    status: "degraded",
    system_health: 0.6,
    version: "0.1.0",
    uptime: 12,
    active_tasks: 0,
    queued_tasks: 0,
    awaiting_approval: 0,
    max_concurrent_tasks: 4,
    tasks: { submitted: 0, completed: 0, failed: 0 },
    agents: { total: 38, healthy: change.healthy ?? 38, degraded: 0, stopped: 38 - (change.healthy ?? 38) },
    llm: {
      provider: "ollama",
      model: change.model ?? "llama3.2",
      reachable: change.reachable ?? true,
      model_available: change.available ?? true,
      ...(change.llmError ? { error: change.llmError } : {}),
    },
    journal: { ok: true },
    message_bus: { backend: "memory", available: true },
    infrastructure: {
      available: change.docker ?? false,
      ...(change.dockerReason ? { reason: change.dockerReason } : {}),
    },
    monitoring: { enabled: true },
  };
}

const FRESH = report([
  check("settings", "pass", true),
  check("data dir", "pass", true),
  check("disk", "pass"),
  check("llm endpoint", "pass"),
  check("default model", "fail"),
  check("redis", "skip"),
  check("docker", "pass"),
  check("agents", "pass"),
]);

describe("planWelcome", () => {
  it("offers deploy-all and the pull on a fresh machine with Docker, and holds the task back", () => {
    const plan = planWelcome({ report: FRESH, status: status({ docker: true, available: false }) });
    expect(plan.checks).toMatchObject({ ran: true, ok: true, essentialFailed: [] });
    expect(plan.checks.failed.map((c) => c.name)).toEqual(["default model"]);
    expect(plan.deploy.offer).toBe(true);
    expect(plan.pull).toMatchObject({ state: "offer", model: "llama3.2" });
    expect(plan.firstTask.ready).toBe(false);
    expect(plan.firstTask.reason).toMatch(/llama3\.2/);
  });

  it("offers neither where everything is in place, and the task is ready", () => {
    const plan = planWelcome({ report: report([check("settings", "pass", true)]), status: status({}) });
    expect(plan.deploy.offer).toBe(false);
    expect(plan.deploy.reason).toMatch(/^Docker is not available/);
    expect(plan.pull.state).toBe("ready");
    expect(plan.firstTask.ready).toBe(true);
  });

  it("says why Docker is missing, from /status", () => {
    const plan = planWelcome({
      report: null,
      status: status({ docker: false, dockerReason: "no socket at /var/run/docker.sock" }),
    });
    expect(plan.deploy).toEqual({
      offer: false,
      reason:
        "Docker is not available: no socket at /var/run/docker.sock. " +
        "SutazAI works without it, with the LLM endpoint it is configured for.",
    });
    expect(plan.checks).toEqual({ ran: false, ok: null, failed: [], essentialFailed: [] });
  });

  it("does not offer a pull from an endpoint that does not answer", () => {
    const plan = planWelcome({
      report: FRESH,
      status: status({ docker: true, available: false, reachable: false, llmError: "connection refused" }),
    });
    expect(plan.pull.state).toBe("unreachable");
    expect(plan.pull.reason).toBe(
      "The LLM endpoint does not answer (connection refused); start it (or deploy all services) and check again.",
    );
    expect(plan.firstTask.ready).toBe(false);
  });

  it("counts a model this page pulled as there while /status still has the old answer", () => {
    const before = status({ available: false });
    expect(planWelcome({ report: FRESH, status: before, pulled: "llama3.2" }).pull.state).toBe("ready");
    expect(planWelcome({ report: FRESH, status: before, pulled: "llama3.2" }).firstTask.ready).toBe(true);
    expect(planWelcome({ report: FRESH, status: before, pulled: "qwen2.5" }).pull.state).toBe("offer");
  });

  it("falls back on the doctor's checks when /status did not answer", () => {
    const plan = planWelcome({ report: FRESH, status: null });
    expect(plan.deploy.offer).toBe(true);
    expect(plan.pull).toMatchObject({ state: "offer", model: null });
    expect(plan.pull.reason).toBe("The default model is not on the LLM endpoint yet.");
    const down = planWelcome({
      report: report([check("llm endpoint", "fail"), check("default model", "skip"), check("docker", "fail")]),
      status: null,
    });
    expect(down.deploy.offer).toBe(false);
    expect(down.pull.state).toBe("unknown");
    // Nothing known to be missing: the task may be tried.
    expect(down.firstTask.ready).toBe(true);
    const nothing = planWelcome({ report: null, status: null });
    expect(nothing.deploy.offer).toBe(false);
    expect(nothing.pull.state).toBe("unknown");
  });

  it("reports failed essential checks, and holds the task back without running agents", () => {
    const broken = report([check("settings", "pass", true), check("data dir", "fail", true), check("redis", "fail")]);
    const plan = planWelcome({ report: broken, status: status({ healthy: 0 }) });
    expect(plan.checks.ok).toBe(false);
    expect(plan.checks.essentialFailed.map((c) => c.name)).toEqual(["data dir"]);
    expect(plan.checks.failed.map((c) => c.name)).toEqual(["data dir", "redis"]);
    expect(plan.firstTask).toEqual({ ready: false, reason: "No agent is running; start agents first." });
  });

  it("sums the report up in one line", () => {
    expect(doctorSummary(report([check("settings", "pass", true), check("disk", "skip")]))).toBe("All 2 checks passed.");
    expect(doctorSummary(FRESH)).toBe("1 of 8 checks found a problem. Each says how to fix it.");
    expect(doctorSummary(report([check("data dir", "fail", true), check("settings", "fail", true), check("redis", "fail")]))).toBe(
      "3 of 3 checks found a problem; SutazAI cannot work until the essential ones (data dir, settings) are fixed. " +
        "Each says how to fix it.",
    );
  });
});

function agent(id: string, capabilities: string[], state: AgentInfo["status"] = "healthy"): AgentInfo {
  return {
    id,
    name: id,
    category: "development",
    role: "worker",
    capabilities,
    status: state,
    model: "llama3.2",
    provider: "ollama",
    active_steps: 0,
    max_concurrency: 2,
    load: 0,
    completed_steps: 0,
    failed_steps: 0,
    success_rate: null,
    average_response_time: null,
    source: "builtin",
    recent: {
      window_seconds: 3600,
      completed: 0,
      failed: 0,
      success_rate: null,
      error_rate: null,
      average_response_time: null,
      p95_response_time: null,
    },
  };
}

describe("firstTaskRequest", () => {
  it("asks two agents, collaboratively, for capabilities the registry has", () => {
    const request = firstTaskRequest([
      agent("a", ["code_generation", "testing"]),
      agent("b", ["code_review", "security_review"]),
      agent("c", ["synthesis"]),
    ]);
    expect(request).toMatchObject({
      name: "First multi-agent task",
      priority: "normal",
      requirements: ["code_generation", "code_review"],
      coordination_pattern: "collaborative",
      payload: {},
      constraints: { max_agents: 2 },
    });
    expect(request?.description?.length).toBeGreaterThan(20);
    expect(request?.description?.length).toBeLessThan(400);
  });

  it("fills up with the most common capabilities of running agents", () => {
    const request = firstTaskRequest([
      agent("a", ["planning", "writing"]),
      agent("b", ["writing"]),
      agent("c", ["code_generation"], "stopped"),
      agent("d", ["analysis", "planning"]),
    ]);
    expect(request?.requirements).toEqual(["planning", "writing"]);
    expect(firstTaskRequest([agent("a", ["synthesis", "zebra"])])?.requirements).toEqual(["synthesis", "zebra"]);
  });

  it("is null when no running agent has a capability", () => {
    expect(firstTaskRequest([])).toBeNull();
    expect(firstTaskRequest([agent("a", ["code_generation"], "stopped")])).toBeNull();
  });
});
