// The task form's checks: what is refused before anything is sent, and the exact body
// that is sent when the form is fine.

import { describe, expect, it } from "vitest";
import { messageBody, blankMessage } from "./messageForm";
import { draftOf, ruleFromDraft } from "./ruleForm";
import { emptyTaskForm, parseJsonObject, validateTaskForm, type TaskFormFields } from "./taskForm";
import type { Rule } from "./types";

const CAPS = ["code_generation", "security_review", "testing"];

function form(change: Partial<TaskFormFields>): TaskFormFields {
  return { ...emptyTaskForm(), name: "Review auth", requirements: ["code_generation"], ...change };
}

describe("parseJsonObject", () => {
  it("accepts objects and an empty field", () => {
    expect(parseJsonObject("")).toEqual({ ok: true, value: {} });
    expect(parseJsonObject(' {"language": "python", "n": [1, 2]} ')).toEqual({
      ok: true,
      value: { language: "python", n: [1, 2] },
    });
  });
  it("refuses broken JSON and non-objects", () => {
    const broken = parseJsonObject('{"language": }');
    expect(broken.ok).toBe(false);
    if (!broken.ok) expect(broken.error).toMatch(/^not valid JSON: /);
    for (const text of ["[1, 2]", '"text"', "42", "null"]) {
      const r = parseJsonObject(text);
      expect(r.ok, text).toBe(false);
      if (!r.ok) expect(r.error).toMatch(/must be a JSON object/);
    }
  });
});

describe("validateTaskForm", () => {
  it("builds the exact request body from a full form", () => {
    const r = validateTaskForm(
      form({
        name: "  Generate Authentication Module ",
        description: "Create a secure authentication system",
        type: "code_generation",
        priority: "high",
        pattern: "pipeline",
        requirements: ["code_generation", "security_review", "code_generation"],
        payload: '{"language": "python"}',
        maxAgents: "3",
        estimatedDuration: "3600",
        approvals: "security-review, infrastructure-review, security-review,",
      }),
      CAPS,
      38,
    );
    expect(r).toEqual({
      ok: true,
      request: {
        name: "Generate Authentication Module",
        description: "Create a secure authentication system",
        type: "code_generation",
        priority: "high",
        requirements: ["code_generation", "security_review"],
        coordination_pattern: "pipeline",
        payload: { language: "python" },
        constraints: {
          max_agents: 3,
          estimated_duration: 3600,
          required_approvals: ["security-review", "infrastructure-review"],
        },
      },
    });
  });

  it("leaves optional parts out of a minimal request", () => {
    const r = validateTaskForm(form({}), CAPS, 38);
    expect(r).toEqual({
      ok: true,
      request: {
        name: "Review auth",
        description: "",
        priority: "normal",
        requirements: ["code_generation"],
        coordination_pattern: "collaborative",
        payload: {},
      },
    });
  });

  it("names each field that is wrong", () => {
    const r = validateTaskForm(
      form({
        name: "  ",
        requirements: [],
        payload: "[1]",
        maxAgents: "0",
        estimatedDuration: "-5",
        priority: "urgent",
        pattern: "mesh",
      }),
      CAPS,
      38,
    );
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(Object.keys(r.errors).sort()).toEqual([
      "estimatedDuration",
      "maxAgents",
      "name",
      "pattern",
      "payload",
      "priority",
      "requirements",
    ]);
    expect(r.errors.maxAgents).toBe("a whole number from 1 to 38");
    expect(r.errors.payload).toMatch(/^payload must be a JSON object/);
  });

  it("only takes capabilities some agent has, spelled as the API wants", () => {
    const unknown = validateTaskForm(form({ requirements: ["time_travel"] }), CAPS, 38);
    expect(unknown.ok === false && unknown.errors.requirements).toBe('no agent has the capability "time_travel"');
    const malformed = validateTaskForm(form({ requirements: ["Code Generation"] }), CAPS, 38);
    expect(malformed.ok === false && malformed.errors.requirements).toMatch(/is not a capability name/);
    // Without the agent list only the spelling is checked.
    expect(validateTaskForm(form({ requirements: ["time_travel"] }), [], 0).ok).toBe(true);
  });

  it("enforces the orchestrator's limits", () => {
    expect(validateTaskForm(form({ name: "x".repeat(201) }), CAPS).ok).toBe(false);
    expect(validateTaskForm(form({ name: "x".repeat(200) }), CAPS).ok).toBe(true);
    expect(validateTaskForm(form({ maxAgents: "39" }), CAPS, 38).ok).toBe(false);
    expect(validateTaskForm(form({ maxAgents: "2.5" }), CAPS, 38).ok).toBe(false);
    expect(validateTaskForm(form({ estimatedDuration: String(7 * 24 * 3600 + 1) }), CAPS).ok).toBe(false);
    expect(validateTaskForm(form({ estimatedDuration: "0.5" }), CAPS).ok).toBe(true);
    const many = Array.from({ length: 17 }, (_, i) => `a${i}`).join(",");
    expect(validateTaskForm(form({ approvals: many }), CAPS).ok).toBe(false);
    expect(validateTaskForm(form({ approvals: "x".repeat(65) }), CAPS).ok).toBe(false);
  });
});

describe("messageBody", () => {
  it("sends point-to-point to a recipient, with a ttl", () => {
    const r = messageBody(
      { ...blankMessage(), recipient: "senior-ai-engineer", payload: '{"action": "analyze"}', ttl: "60", priority: "high" },
      false,
    );
    expect(r).toEqual({
      ok: true,
      body: {
        message_type: "task_request",
        priority: "high",
        pattern: "point_to_point",
        recipient_id: "senior-ai-engineer",
        ttl_seconds: 60,
        payload: { action: "analyze" },
      },
    });
  });
  it("needs a topic for pub-sub and a recipient otherwise; broadcasts need neither", () => {
    const pubsub = messageBody({ ...blankMessage(), pattern: "pub_sub" }, false);
    expect(pubsub.ok === false && pubsub.errors.topic).toBe("pub-sub needs a topic");
    const direct = messageBody({ ...blankMessage(), ttl: "0" }, false);
    expect(direct.ok === false && Object.keys(direct.errors).sort()).toEqual(["recipient", "ttl"]);
    expect(messageBody({ ...blankMessage(), type: "system_announcement" }, true)).toEqual({
      ok: true,
      body: { message_type: "system_announcement", priority: "normal", payload: {} },
    });
  });
});

describe("ruleFromDraft", () => {
  const rule: Rule = {
    id: "host_cpu_high",
    metric: "cpu_percent",
    comparison: "above",
    threshold: 90,
    for_seconds: 300,
    cooldown_seconds: 900,
    severity: "warning",
    enabled: true,
  };
  it("sends the whole rule with the edits", () => {
    const r = ruleFromDraft(rule, {
      ...draftOf(rule),
      threshold: "75.5",
      for_seconds: "60",
      severity: "critical",
      enabled: false,
    });
    expect(r).toEqual({ ok: true, rule: { ...rule, threshold: 75.5, for_seconds: 60, severity: "critical", enabled: false } });
  });
  it("refuses numbers that are not", () => {
    expect(ruleFromDraft(rule, { ...draftOf(rule), threshold: "" }).ok).toBe(false);
    expect(ruleFromDraft(rule, { ...draftOf(rule), threshold: "ninety" }).ok).toBe(false);
    expect(ruleFromDraft(rule, { ...draftOf(rule), for_seconds: "1.5" }).ok).toBe(false);
    expect(ruleFromDraft(rule, { ...draftOf(rule), cooldown_seconds: "-1" }).ok).toBe(false);
  });
});
