// Pushed messages: alert toasts, image pull progress per layer, infrastructure events,
// the registry filter, host samples as chart columns, and the reconnecting socket.

import { afterEach, describe, expect, it, vi } from "vitest";
import { capabilityCounts, filterAgents } from "./agents";
import { distinctDisks, hostColumns, mergeHistory, seriesColumns, thin, traffic } from "./host";
import { describeInfra, emptyPull, foldPull, layerFraction, toastFor } from "./live";
import type { AgentInfo, AlertRecord, HostSnapshot } from "./types";
import { EventSocket, parseFrame, reconnectDelay } from "./ws";

function record(change: Partial<AlertRecord>): AlertRecord {
  return {
    id: 7,
    rule_id: "host_cpu_high",
    subject: "host",
    severity: "warning",
    status: "firing",
    message: "CPU above 90 % for 5 min",
    value: 97,
    fired_at: "2026-11-24T12:00:00Z",
    resolved_at: null,
    acknowledged: false,
    deliveries: [],
    ...change,
  };
}

describe("toastFor", () => {
  it("toasts each alert once per status, never an acknowledged one", () => {
    const seen = new Set<string>();
    const firing = { type: "alert", severity: "warning", message: "CPU above 90 %", status: "firing", alert: record({}) };
    expect(toastFor(firing, seen, 1)).toEqual({
      key: "alert-7:firing",
      severity: "warning",
      message: "CPU above 90 %",
      status: "firing",
      alertId: 7,
    });
    // The same record again (a delivery outcome was added): no second toast.
    expect(
      toastFor(
        {
          ...firing,
          alert: record({ deliveries: [{ channel: "slack", change: "firing", status: "delivered", attempts: 1, error: null }] }),
        },
        seen,
        2,
      ),
    ).toBeNull();
    const resolved = {
      ...firing,
      status: "resolved",
      alert: record({ status: "resolved", resolved_at: "2026-11-24T12:10:00Z" }),
    };
    expect(toastFor(resolved, seen, 3)?.status).toBe("resolved");
    const acked = { ...firing, alert: record({ id: 8, acknowledged: true }) };
    expect(toastFor(acked, seen, 4)).toBeNull();
  });

  it("toasts alerts that carry no record, and nothing else", () => {
    const seen = new Set<string>();
    const degraded = { type: "alert", severity: "warning", message: "agent a is degraded", agent_id: "a" };
    expect(toastFor(degraded, seen, 1)?.key).toBe("msg-1");
    expect(toastFor(degraded, seen, 2)?.key).toBe("msg-2");
    expect(toastFor({ type: "system_status", data: {} }, seen, 3)).toBeNull();
    expect(toastFor({ type: "alert", severity: "warning" }, seen, 4)).toBeNull();
  });
});

describe("foldPull", () => {
  it("keeps one bar per layer in arrival order and finishes on done", () => {
    let p = emptyPull("redis:7-alpine");
    p = foldPull(p, { reference: "redis:7-alpine", layer: "", status: "Pulling from library/redis", current: null, total: null });
    p = foldPull(p, { reference: "redis:7-alpine", layer: "a1", status: "Pulling fs layer", current: null, total: null });
    p = foldPull(p, { reference: "redis:7-alpine", layer: "b2", status: "Downloading", current: 100, total: 400 });
    p = foldPull(p, { reference: "redis:7-alpine", layer: "a1", status: "Downloading", current: 50, total: 200 });
    p = foldPull(p, { reference: "redis:7-alpine", layer: "b2", status: "Download complete", current: null, total: null });
    expect(p.overall).toBe("Pulling from library/redis");
    expect(p.layers.map((l) => [l.id, l.status, l.current, l.total])).toEqual([
      ["a1", "Downloading", 50, 200],
      ["b2", "Download complete", 400, 400],
    ]);
    expect(p.layers.map(layerFraction)).toEqual([0.25, 1]);
    expect(p.done).toBe(false);
    p = foldPull(p, { status: "done" });
    expect(p.done).toBe(true);
  });

  it("ignores another image's progress and unknown sizes", () => {
    const p = foldPull(emptyPull("a:1"), { reference: "b:2", layer: "x", status: "Downloading", current: 1, total: 2 });
    expect(p.layers).toEqual([]);
    const q = foldPull(emptyPull("a:1"), { reference: "a:1", layer: "x", status: "Waiting", current: null, total: null });
    expect(q.layers[0] && layerFraction(q.layers[0])).toBeNull();
  });
});

describe("describeInfra", () => {
  it("puts events in words with a tone", () => {
    expect(
      describeInfra({ event: "step", step: "health", service: "redis", status: "failed", message: "unhealthy after 60 s" }),
    ).toEqual({
      text: "redis: health failed — unhealthy after 60 s",
      tone: "bad",
    });
    expect(describeInfra({ event: "docker", available: false, reason: "no socket" }).text).toBe(
      "Docker became unavailable: no socket",
    );
    expect(describeInfra({ event: "scaled", service: "agent-worker", from: 1, to: 3, reason: "queue 40" }).text).toBe(
      "agent-worker: scaled 1 → 3 (queue 40)",
    );
  });
});

function agent(id: string, status: AgentInfo["status"], capabilities: string[]): AgentInfo {
  return {
    id,
    name: id.toUpperCase(),
    category: "development",
    role: "worker",
    capabilities,
    status,
    model: "smollm2:135m",
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
      window_seconds: 300,
      completed: 0,
      failed: 0,
      success_rate: null,
      error_rate: null,
      average_response_time: null,
      p95_response_time: null,
    },
  };
}

describe("agents", () => {
  const agents = [
    agent("coder", "healthy", ["code_generation", "testing"]),
    agent("tester", "degraded", ["testing"]),
    agent("guard", "stopped", ["security_review"]),
  ];
  it("filters by status, capability and text", () => {
    expect(filterAgents(agents, { status: "all", capability: "", text: "" }).map((a) => a.id)).toEqual([
      "coder",
      "tester",
      "guard",
    ]);
    expect(filterAgents(agents, { status: "degraded", capability: "", text: "" }).map((a) => a.id)).toEqual(["tester"]);
    expect(filterAgents(agents, { status: "all", capability: "testing", text: "" }).map((a) => a.id)).toEqual([
      "coder",
      "tester",
    ]);
    expect(filterAgents(agents, { status: "healthy", capability: "testing", text: "COD" }).map((a) => a.id)).toEqual(["coder"]);
    expect(filterAgents(agents, { status: "stopped", capability: "testing", text: "" })).toEqual([]);
  });
  it("counts capabilities", () => {
    expect(capabilityCounts(agents)).toEqual([
      { name: "code_generation", agents: 1 },
      { name: "security_review", agents: 1 },
      { name: "testing", agents: 2 },
    ]);
  });
});

function snapshot(at: string, cpu: number, change: Partial<HostSnapshot> = {}): HostSnapshot {
  return {
    at,
    cpu_percent: cpu,
    per_core_percent: [cpu, cpu],
    load_average: [1, 0.5, 0.2],
    memory_used_bytes: 1,
    memory_total_bytes: 4,
    memory_percent: 25,
    swap_used_bytes: 0,
    swap_total_bytes: 0,
    disks: [
      { mount: "/var/lib/docker", total_bytes: 100, available_bytes: 40, used_percent: 60 },
      { mount: "/", total_bytes: 100, available_bytes: 40, used_percent: 60 },
      { mount: "/data", total_bytes: 500, available_bytes: 450, used_percent: 10 },
    ],
    networks: [
      { interface: "lo", rx_bytes_per_second: 1000, tx_bytes_per_second: 1000 },
      { interface: "eth0", rx_bytes_per_second: 10, tx_bytes_per_second: 20 },
      { interface: "wlan0", rx_bytes_per_second: 5, tx_bytes_per_second: 1 },
    ],
    temperatures: [],
    top_processes: [],
    gpus: [],
    ...change,
  };
}

describe("host columns", () => {
  it("sums traffic without loopback and keeps one line per filesystem", () => {
    const s = snapshot("2026-11-24T12:00:00Z", 10);
    expect(traffic(s)).toEqual({ rx: 15, tx: 21 });
    expect(distinctDisks(s)).toEqual(["/", "/data"]);
  });

  it("turns snapshots into aligned columns", () => {
    const gpu = {
      index: 0,
      name: "H100",
      utilization_percent: 50,
      memory_used_bytes: 1,
      memory_total_bytes: 2,
      memory_percent: 50,
      temperature_celsius: 60,
    };
    const c = hostColumns([snapshot("2026-11-24T12:00:00Z", 10), snapshot("2026-11-24T12:00:01Z", 30, { gpus: [gpu] })]);
    expect(c.cpu.times).toEqual([1795521600, 1795521601]);
    expect(c.cpu.lines[0]?.values).toEqual([10, 30]);
    // Load 1.0 on two cores is 50 % of the machine.
    expect(c.cpu.lines[1]?.values).toEqual([50, 50]);
    expect(c.memory.lines.map((l) => l.label)).toEqual(["Memory"]);
    expect(c.disk.lines.map((l) => [l.label, l.values])).toEqual([
      ["/", [60, 60]],
      ["/data", [10, 10]],
    ]);
    expect(c.network.lines.map((l) => l.values)).toEqual([
      [15, 15],
      [21, 21],
    ]);
    expect(c.gpus.map((g) => [g.name, g.columns.lines.map((l) => l.values)])).toEqual([
      [
        "H100",
        [
          [null, 50],
          [null, 50],
        ],
      ],
    ]);
  });

  it("keeps the graphs' samples across polls, whole answers or only new ones", () => {
    const at = (s: number) => new Date(Date.UTC(2026, 10, 24, 12, 0, s)).toISOString();
    const a = [snapshot(at(0), 1), snapshot(at(1), 2), snapshot(at(2), 3)];
    const first = mergeHistory([], a, 3600);
    expect(first.map((s) => s.cpu_percent)).toEqual([1, 2, 3]);
    // The API answered the whole ring again: only the new sample is added.
    const whole = mergeHistory(first, [...a, snapshot(at(3), 4)], 3600);
    expect(whole.map((s) => s.cpu_percent)).toEqual([1, 2, 3, 4]);
    // It answered only what is newer than `since`.
    const since = mergeHistory(whole, [snapshot(at(4), 5)], 3600);
    expect(since.map((s) => s.cpu_percent)).toEqual([1, 2, 3, 4, 5]);
    // Nothing new: the same array, so nothing redraws.
    expect(mergeHistory(since, a, 3600)).toBe(since);
    // Older than the horizon is dropped.
    expect(mergeHistory(since, [snapshot(at(6), 7)], 3).map((s) => s.cpu_percent)).toEqual([4, 5, 7]);
  });

  it("merges series subjects on one time axis, keeping the highest ones", () => {
    const answer = {
      metric: "agent_load",
      start: "",
      end: "",
      step: 60,
      resolution: 10,
      series: [
        { subject: "a", points: [{ t: 60, avg: 0.1, min: 0, max: 0.2, count: 6 }] },
        {
          subject: "b",
          points: [
            { t: 0, avg: 0.5, min: 0, max: 0.9, count: 6 },
            { t: 60, avg: 0.4, min: 0, max: 0.5, count: 6 },
          ],
        },
        { subject: "c", points: [{ t: 120, avg: 0.05, min: 0, max: 0.05, count: 6 }] },
      ],
    };
    const c = seriesColumns(answer, 2);
    expect(c.times).toEqual([0, 60]);
    expect(c.lines).toEqual([
      { label: "b", values: [0.5, 0.4] },
      { label: "a", values: [null, 0.1] },
    ]);
    expect(c.omitted).toBe(1);
  });
});

class FakeSocket {
  static made: FakeSocket[] = [];
  onopen: ((e: Event) => void) | null = null;
  onclose: ((e: CloseEvent) => void) | null = null;
  onmessage: ((e: MessageEvent) => void) | null = null;
  onerror: ((e: Event) => void) | null = null;
  closed = false;
  constructor(readonly url: string) {
    FakeSocket.made.push(this);
  }
  close(): void {
    this.closed = true;
  }
}

describe("EventSocket", () => {
  afterEach(() => {
    vi.useRealTimers();
    FakeSocket.made = [];
  });

  it("backs off from 1 s to 30 s", () => {
    expect([0, 1, 2, 3, 4, 5, 6, 50].map((n) => reconnectDelay(n))).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  });

  it("reads only JSON frames with a type", () => {
    expect(parseFrame('{"type":"alert","message":"x"}')).toEqual({ type: "alert", message: "x" });
    expect(parseFrame('{"message":"x"}')).toBeNull();
    expect(parseFrame("not json")).toBeNull();
    expect(parseFrame(new ArrayBuffer(2))).toBeNull();
  });

  it("delivers messages, reconnects after a drop, and stops for good", () => {
    vi.useFakeTimers();
    const got: string[] = [];
    const states: string[] = [];
    const socket = new EventSocket("ws://x/ws", {
      onMessage: (m) => got.push(m.type),
      onState: (s) => states.push(s),
      connect: (url) => new FakeSocket(url),
    }).start();
    const first = FakeSocket.made[0];
    first?.onopen?.(new Event("open"));
    first?.onmessage?.({ data: '{"type":"task_started"}' } as MessageEvent);
    first?.onclose?.({} as CloseEvent);
    expect(FakeSocket.made).toHaveLength(1);
    vi.advanceTimersByTime(999);
    expect(FakeSocket.made).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(FakeSocket.made).toHaveLength(2);
    // A second drop before opening waits longer.
    FakeSocket.made[1]?.onclose?.({} as CloseEvent);
    vi.advanceTimersByTime(1999);
    expect(FakeSocket.made).toHaveLength(2);
    vi.advanceTimersByTime(1);
    expect(FakeSocket.made).toHaveLength(3);
    socket.stop();
    expect(FakeSocket.made[2]?.closed).toBe(true);
    vi.advanceTimersByTime(60_000);
    expect(FakeSocket.made).toHaveLength(3);
    expect(got).toEqual(["task_started"]);
    expect(states).toEqual(["connecting", "open", "closed", "connecting", "closed", "connecting", "closed"]);
  });
});

describe("EventSocket with a session", () => {
  afterEach(() => {
    vi.useRealTimers();
    FakeSocket.made = [];
  });

  it("asks for its URL on every attempt, after `prepare` (a token refreshed meanwhile is used)", async () => {
    vi.useFakeTimers();
    let token = "t1";
    const prepared: string[] = [];
    const socket = new EventSocket(() => `ws://x/ws?access_token=${token}`, {
      onMessage: () => undefined,
      prepare: async () => {
        prepared.push(token);
      },
      connect: (url) => new FakeSocket(url),
    }).start();
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeSocket.made.map((s) => s.url)).toEqual(["ws://x/ws?access_token=t1"]);
    token = "t2";
    FakeSocket.made[0]?.onclose?.({} as CloseEvent);
    await vi.advanceTimersByTimeAsync(1000);
    expect(FakeSocket.made.map((s) => s.url)).toEqual(["ws://x/ws?access_token=t1", "ws://x/ws?access_token=t2"]);
    expect(prepared).toEqual(["t1", "t2"]);
    socket.stop();
    expect(socket.running).toBe(false);
  });

  it("connects even when `prepare` fails, and not at all when stopped while it ran", async () => {
    vi.useFakeTimers();
    const failing = new EventSocket("ws://x/ws", {
      onMessage: () => undefined,
      prepare: () => Promise.reject(new Error("refresh failed")),
      connect: (url) => new FakeSocket(url),
    }).start();
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeSocket.made).toHaveLength(1);
    failing.stop();
    const stopped = new EventSocket("ws://x/ws", {
      onMessage: () => undefined,
      prepare: () => new Promise((r) => setTimeout(r, 100)),
      connect: (url) => new FakeSocket(url),
    }).start();
    stopped.stop();
    await vi.advanceTimersByTimeAsync(200);
    expect(FakeSocket.made).toHaveLength(1);
  });
});

describe("thin", () => {
  const columns = (n: number) => ({
    times: Array.from({ length: n }, (_, i) => i),
    lines: [{ label: "x", values: Array.from({ length: n }, (_, i) => (i % 10 === 3 ? null : i)) as (number | null)[] }],
  });

  it("leaves short series alone", () => {
    const c = columns(100);
    expect(thin(c, 100)).toBe(c);
  });

  it("averages equal runs ending at the newest point", () => {
    const t = thin(columns(3600), 360);
    expect(t.times.length).toBe(360);
    expect(t.times[t.times.length - 1]).toBe(3599);
    expect(t.times[0]).toBe(9);
    // The run 0..9 without its null at 3: (0+1+2+4+5+6+7+8+9) / 9.
    expect(t.lines[0]?.values[0]).toBeCloseTo(42 / 9, 10);
    expect(t.lines[0]?.values[359]).toBeCloseTo((3590 + 3591 + 3592 + 3594 + 3595 + 3596 + 3597 + 3598 + 3599) / 9, 10);
  });

  it("an uneven count leaves the oldest run short; all-null runs stay gaps", () => {
    const c = { times: [0, 1, 2, 3, 4], lines: [{ label: "x", values: [null, null, 1, 2, 3] as (number | null)[] }] };
    const t = thin(c, 2);
    // Runs of 3 ending at the newest point: [0, 1] (short, all null: a gap), [2, 3, 4].
    expect(t.times).toEqual([1, 4]);
    expect(t.lines[0]?.values).toEqual([null, 2]);
  });
});
