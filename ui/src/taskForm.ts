// The task submission form's rules, checked before anything is sent: the same limits the
// orchestrator enforces (`Orchestrator::validate`), plus the payload parsed as JSON and
// requirements taken from the capabilities agents actually have. The API still has the
// last word; its `{code, message}` is shown when it refuses.

import { PATTERNS, PRIORITIES, type Pattern, type Priority, type TaskRequest } from "./types";

export const MAX_NAME = 200;
export const MAX_DESCRIPTION = 20_000;
export const MAX_REQUIREMENTS = 32;
export const MAX_APPROVALS = 16;
export const MAX_DURATION_SECONDS = 7 * 24 * 3600;
const CAPABILITY = /^[a-z][a-z0-9_]{0,63}$/;

/** What the form holds: text as typed. */
export interface TaskFormFields {
  name: string;
  description: string;
  type: string;
  priority: string;
  pattern: string;
  requirements: string[];
  payload: string;
  maxAgents: string;
  estimatedDuration: string;
  /** Comma-separated approval names. */
  approvals: string;
}

export type TaskFormErrors = Partial<Record<keyof TaskFormFields, string>>;

export type Validated = { ok: true; request: TaskRequest } | { ok: false; errors: TaskFormErrors };

export function emptyTaskForm(): TaskFormFields {
  return {
    name: "",
    description: "",
    type: "",
    priority: "normal",
    pattern: "collaborative",
    requirements: [],
    payload: "",
    maxAgents: "",
    estimatedDuration: "",
    approvals: "",
  };
}

/**
 * Parses a JSON object typed by a person: "" is `{}`; anything but an object is refused
 * with a message that says where the JSON broke.
 */
export function parseJsonObject(text: string): { ok: true; value: Record<string, unknown> } | { ok: false; error: string } {
  if (text.trim() === "") return { ok: true, value: {} };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    return { ok: false, error: `not valid JSON: ${why}` };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { ok: false, error: 'must be a JSON object, like {"language": "python"}' };
  }
  return { ok: true, value: value as Record<string, unknown> };
}

function whole(text: string): number | null {
  const t = text.trim();
  return /^\d+$/.test(t) ? Number.parseInt(t, 10) : null;
}

/**
 * Checks the form; on success returns the exact `POST /tasks` body. `capabilities` are
 * those of the registered agents; `agentCount` bounds `max_agents` (0 when not known).
 */
export function validateTaskForm(fields: TaskFormFields, capabilities: Iterable<string>, agentCount = 0): Validated {
  const errors: TaskFormErrors = {};
  const known = new Set(capabilities);

  const name = fields.name.trim();
  if (name === "") errors.name = "a task needs a name";
  else if ([...name].length > MAX_NAME) errors.name = `at most ${MAX_NAME} characters`;

  const description = fields.description.trim();
  if ([...description].length > MAX_DESCRIPTION) errors.description = `at most ${MAX_DESCRIPTION} characters`;

  if (!PRIORITIES.includes(fields.priority as Priority)) errors.priority = `one of ${PRIORITIES.join(", ")}`;
  if (!PATTERNS.includes(fields.pattern as Pattern)) errors.pattern = `one of ${PATTERNS.join(", ")}`;

  const requirements = [...new Set(fields.requirements.map((r) => r.trim()).filter((r) => r !== ""))];
  if (requirements.length === 0) errors.requirements = "pick at least one capability";
  else if (requirements.length > MAX_REQUIREMENTS) errors.requirements = `at most ${MAX_REQUIREMENTS} capabilities`;
  else {
    const malformed = requirements.find((r) => !CAPABILITY.test(r));
    const unknown = requirements.find((r) => known.size > 0 && !known.has(r));
    if (malformed !== undefined) errors.requirements = `"${malformed}" is not a capability name (lowercase letters, digits, _)`;
    else if (unknown !== undefined) errors.requirements = `no agent has the capability "${unknown}"`;
  }

  const payload = parseJsonObject(fields.payload);
  if (!payload.ok) errors.payload = `payload ${payload.error}`;

  let maxAgents: number | undefined;
  if (fields.maxAgents.trim() !== "") {
    const n = whole(fields.maxAgents);
    const top = agentCount > 0 ? agentCount : Number.MAX_SAFE_INTEGER;
    if (n === null || n < 1 || n > top) {
      errors.maxAgents = agentCount > 0 ? `a whole number from 1 to ${agentCount}` : "a whole number of at least 1";
    } else maxAgents = n;
  }

  let estimated: number | undefined;
  if (fields.estimatedDuration.trim() !== "") {
    const n = Number(fields.estimatedDuration.trim());
    if (!Number.isFinite(n) || n <= 0 || n > MAX_DURATION_SECONDS) {
      errors.estimatedDuration = `seconds, more than 0 and at most ${MAX_DURATION_SECONDS}`;
    } else estimated = n;
  }

  const approvals = [
    ...new Set(
      fields.approvals
        .split(",")
        .map((a) => a.trim())
        .filter((a) => a !== ""),
    ),
  ];
  if (approvals.length > MAX_APPROVALS) errors.approvals = `at most ${MAX_APPROVALS} approvals`;
  else if (approvals.some((a) => a.length > 64)) errors.approvals = "each approval name has at most 64 characters";

  if (Object.keys(errors).length > 0 || !payload.ok) return { ok: false, errors };

  const request: TaskRequest = {
    name,
    description,
    priority: fields.priority as Priority,
    requirements,
    coordination_pattern: fields.pattern as Pattern,
    payload: payload.value,
  };
  const type = fields.type.trim();
  if (type !== "") request.type = type;
  const constraints: TaskRequest["constraints"] = {};
  if (maxAgents !== undefined) constraints.max_agents = maxAgents;
  if (estimated !== undefined) constraints.estimated_duration = estimated;
  if (approvals.length > 0) constraints.required_approvals = approvals;
  if (Object.keys(constraints).length > 0) request.constraints = constraints;
  return { ok: true, request };
}
