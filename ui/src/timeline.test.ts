// The reducer that folds `/ws` events into a task's timeline, and its merge with
// `GET /tasks/{id}`.

import { describe, expect, it } from "vitest";
import { emptyTimeline, foldEvent, STREAM_LIMIT, tokenTotals, wantsReread, withDetail, type Timeline } from "./timeline";
import type { Step, TaskDetail } from "./types";

const ID = "task-1";

function detail(change: Partial<TaskDetail> = {}): TaskDetail {
  return {
    id: ID,
    session_id: "s-1",
    name: "Review",
    description: "",
    type: "",
    priority: "normal",
    requirements: ["code_generation"],
    coordination_pattern: "collaborative",
    payload: {},
    constraints: {},
    status: "queued",
    assigned_agents: [],
    approvals: [],
    created_at: "2026-11-24T12:00:00Z",
    pending_approvals: [],
    steps: [],
    ...change,
  };
}

function step(change: Partial<Step>): Step {
  return {
    task_id: ID,
    key: "work/a",
    seq: 0,
    kind: "work",
    agent_id: "a",
    status: "running",
    input: "prompt",
    attempts: 1,
    prompt_tokens: 0,
    completion_tokens: 0,
    started_at: "2026-11-24T12:00:01Z",
    ...change,
  };
}

const ev = (type: string, fields: Record<string, unknown> = {}) => ({ type, task_id: ID, ...fields });

function fold(events: { type: string; [k: string]: unknown }[], from: Timeline = emptyTimeline(ID)): Timeline {
  return events.reduce(foldEvent, from);
}

describe("foldEvent", () => {
  it("follows a collaborative run from start to result", () => {
    const t = fold([
      ev("task_started", { task_name: "Review", agents: ["a", "b"], resumed: false }),
      ev("step_started", { step: "work/a", kind: "work", agent_id: "a" }),
      ev("step_started", { step: "work/b", kind: "work", agent_id: "b" }),
      ev("step_token", { step: "work/a", agent_id: "a", text: "Hel" }),
      ev("step_token", { step: "work/b", agent_id: "b", text: "Other" }),
      ev("step_token", { step: "work/a", agent_id: "a", text: "lo" }),
      ev("step_finished", {
        step: "work/a",
        agent_id: "a",
        status: "completed",
        prompt_tokens: 30,
        completion_tokens: 5,
        duration: 1.5,
      }),
      ev("step_finished", {
        step: "work/b",
        agent_id: "b",
        status: "failed",
        prompt_tokens: 30,
        completion_tokens: 0,
        duration: 0,
      }),
      ev("step_started", { step: "synthesize", kind: "synthesize", agent_id: "a" }),
      ev("step_finished", {
        step: "synthesize",
        agent_id: "a",
        status: "completed",
        prompt_tokens: 50,
        completion_tokens: 20,
        duration: 2,
      }),
      ev("task_completed", { session_id: "s-1", task_name: "Review", result: { output: "done" }, duration: 4.2 }),
    ]);
    expect(t.status).toBe("completed");
    expect(t.agents).toEqual(["a", "b"]);
    expect(t.result).toEqual({ output: "done" });
    expect(t.duration).toBe(4.2);
    expect(t.steps.map((s) => [s.key, s.seq, s.status, s.streamed])).toEqual([
      ["work/a", 0, "completed", "Hello"],
      ["work/b", 1, "failed", "Other"],
      ["synthesize", 2, "completed", ""],
    ]);
    expect(t.steps[0]?.duration).toBe(1.5);
    expect(t.steps[1]?.duration).toBeNull();
    expect(tokenTotals(t)).toEqual({ prompt: 110, completion: 25 });
  });

  it("ignores other tasks' events and returns the same object", () => {
    const t = emptyTimeline(ID);
    expect(foldEvent(t, { type: "step_token", task_id: "other", step: "work/a", text: "x" })).toBe(t);
    expect(foldEvent(t, { type: "system_status", data: {} })).toBe(t);
    expect(foldEvent(t, ev("step_token", { step: "work/a", text: "" }))).toBe(t);
  });

  it("tracks approvals until the task is queued", () => {
    const waiting = fold([ev("awaiting_approval", { pending: ["security", "infra"] })]);
    expect([waiting.status, waiting.pendingApprovals]).toEqual(["awaiting_approval", ["security", "infra"]]);
    const half = foldEvent(waiting, ev("task_approved", { approval: "security", pending: ["infra"] }));
    expect([half.status, half.pendingApprovals]).toEqual(["awaiting_approval", ["infra"]]);
    const all = foldEvent(half, ev("task_approved", { approval: "infra", pending: [] }));
    expect([all.status, all.pendingApprovals]).toEqual(["queued", []]);
  });

  it("records failures with their code, and cancellation", () => {
    expect(fold([ev("task_failed", { code: "deadline_exceeded", message: "ran past 5 s" })]).error).toBe(
      "deadline_exceeded: ran past 5 s",
    );
    expect(fold([ev("task_cancelled", { task_name: "Review" })]).status).toBe("cancelled");
  });

  it("keeps a retried step's stream and resets its error when it starts again", () => {
    const t = fold([
      ev("step_started", { step: "plan", kind: "plan", agent_id: "c" }),
      ev("step_token", { step: "plan", agent_id: "c", text: "{bad" }),
      ev("step_started", { step: "plan", kind: "plan", agent_id: "c" }),
      ev("step_token", { step: "plan", agent_id: "c", text: "{}" }),
    ]);
    expect(t.steps).toHaveLength(1);
    expect(t.steps[0]?.streamed).toBe("{bad{}");
    expect(t.steps[0]?.status).toBe("running");
  });

  it("keeps only the end of a very long stream", () => {
    const big = "x".repeat(STREAM_LIMIT);
    const t = fold([
      ev("step_token", { step: "work/a", agent_id: "a", text: big }),
      ev("step_token", { step: "work/a", agent_id: "a", text: "END" }),
    ]);
    const s = t.steps[0];
    expect(s?.streamed.length).toBe(STREAM_LIMIT);
    expect(s?.streamed.endsWith("END")).toBe(true);
    expect(s?.dropped).toBe(3);
  });

  it("marks the timeline stale when events were lost", () => {
    expect(fold([{ type: "lagged", missed: 12 }]).stale).toBe(true);
  });
});

describe("withDetail", () => {
  it("takes the API's steps and keeps what streamed for them", () => {
    const live = fold([
      ev("task_started", { agents: ["a"] }),
      ev("step_started", { step: "work/a", kind: "work", agent_id: "a" }),
      ev("step_token", { step: "work/a", text: "partial" }),
    ]);
    const t = withDetail(
      live,
      detail({ status: "running", assigned_agents: ["a"], steps: [step({ key: "work/a", status: "running" })] }),
    );
    expect(t.steps).toHaveLength(1);
    expect(t.steps[0]?.streamed).toBe("partial");
    expect(t.steps[0]?.input).toBe("prompt");
    expect(t.detail?.name).toBe("Review");
    expect(t.stale).toBe(false);
  });

  it("does not let an older read undo what events already said", () => {
    const live = fold([
      ev("step_started", { step: "work/a", kind: "work", agent_id: "a" }),
      ev("step_finished", {
        step: "work/a",
        agent_id: "a",
        status: "completed",
        prompt_tokens: 3,
        completion_tokens: 4,
        duration: 1,
      }),
      ev("step_started", { step: "work/b", kind: "work", agent_id: "b" }),
      ev("task_completed", { result: "ok", duration: 2 }),
    ]);
    const t = withDetail(live, detail({ status: "running", steps: [step({ key: "work/a", status: "running" })] }));
    expect(t.status).toBe("completed");
    expect(t.steps.map((s) => [s.key, s.status])).toEqual([
      ["work/a", "completed"],
      ["work/b", "running"],
    ]);
    expect(t.steps[0]?.completionTokens).toBe(4);
  });

  it("takes outputs and errors from a newer read", () => {
    const t = withDetail(
      null,
      detail({
        status: "failed",
        error: "step work/a failed",
        steps: [
          step({ key: "work/a", seq: 1, status: "failed", error: "timeout: no answer", attempts: 3 }),
          step({ key: "plan", seq: 0, status: "completed", output: "{}", duration: 0.4 }),
        ],
      }),
    );
    expect(t.steps.map((s) => s.key)).toEqual(["plan", "work/a"]);
    expect(t.steps[1]?.attempts).toBe(3);
    expect(t.steps[0]?.output).toBe("{}");
    expect(t.error).toBe("step work/a failed");
  });
});

describe("wantsReread", () => {
  it("asks for the task again when events end a step or the task", () => {
    expect(wantsReread({ type: "step_finished", task_id: ID }, ID)).toBe(true);
    expect(wantsReread({ type: "task_completed", task_id: ID }, ID)).toBe(true);
    expect(wantsReread({ type: "lagged" }, ID)).toBe(true);
    expect(wantsReread({ type: "step_token", task_id: ID }, ID)).toBe(false);
    expect(wantsReread({ type: "step_finished", task_id: "other" }, ID)).toBe(false);
  });
});
