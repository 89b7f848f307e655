// The agent editor's rules: the form's text turned into the `AgentSpec` that `POST /agents`
// and `PUT /agents/{id}` take, and back, checked first against the same rules the registry
// enforces (`sutazai_agents::parse::validate`). The API still has the last word; its
// `{code, message}` is shown when it refuses.

import { AGENT_CATEGORIES, AGENT_ROLES, type AgentCategory, type AgentRole, type AgentSpec } from "./types";

export const MAX_SYSTEM_PROMPT_CHARS = 8000;
export const MAX_CONCURRENCY = 256;
export const MAX_TEMPERATURE = 2;
const ID = /^[a-z0-9][a-z0-9-]{0,63}$/;
const CAPABILITY = /^[a-z][a-z0-9_]{0,63}$/;
/** A plain decimal: no exponent, hex, `Infinity` or empty text (which `Number` would take). */
const DECIMAL = /^-?(\d+(\.\d*)?|\.\d+)$/;

/** What the form holds: text as typed, keyed by the spec's field names. */
export interface AgentFormFields {
  id: string;
  name: string;
  category: string;
  role: string;
  /** Capabilities separated by commas, spaces or line breaks. */
  capabilities: string;
  /** "" for the configured default model. */
  model: string;
  /** "" for the configured default provider. */
  provider: string;
  system_prompt: string;
  temperature: string;
  max_concurrency: string;
}

export type AgentFormErrors = Partial<Record<keyof AgentFormFields, string>>;

export type ValidatedAgent = { ok: true; spec: AgentSpec } | { ok: false; errors: AgentFormErrors };

/** A new agent's form, with the registry's defaults (temperature 0.2, 4 steps at once). */
export function emptyAgentForm(): AgentFormFields {
  return {
    id: "",
    name: "",
    category: "development",
    role: "worker",
    capabilities: "",
    model: "",
    provider: "",
    system_prompt: "",
    temperature: "0.2",
    max_concurrency: "4",
  };
}

/** The form showing `spec` (an existing agent's definition, to edit). */
export function formOfSpec(spec: AgentSpec): AgentFormFields {
  return {
    id: spec.id,
    name: spec.name,
    category: spec.category,
    role: spec.role,
    capabilities: spec.capabilities.join(", "),
    model: spec.model ?? "",
    provider: spec.provider ?? "",
    system_prompt: spec.system_prompt,
    temperature: String(spec.temperature),
    max_concurrency: String(spec.max_concurrency),
  };
}

/** The capabilities typed in the form, in order, duplicates kept (the check names them). */
export function parseCapabilities(text: string): string[] {
  return text.split(/[\s,]+/).filter((c) => c !== "");
}

/** Length in characters as the server counts them (Unicode scalar values, not UTF-16 units). */
export function promptLength(text: string): number {
  return [...text].length;
}

/**
 * Checks the form; on success returns the exact body to send. `taken` are ids that exist
 * already (a new agent's id must not be one of them; pass none when editing).
 */
export function validateAgent(fields: AgentFormFields, taken: Iterable<string> = []): ValidatedAgent {
  const errors: AgentFormErrors = {};

  const id = fields.id.trim();
  if (!ID.test(id)) {
    errors.id = "use 1 to 64 lowercase letters, digits and “-”, starting with a letter or digit";
  } else if (new Set(taken).has(id)) errors.id = `an agent “${id}” exists already: edit it instead`;

  const name = fields.name.trim();
  if (name === "") errors.name = "an agent needs a name";

  if (!(AGENT_CATEGORIES as readonly string[]).includes(fields.category)) {
    errors.category = `one of ${AGENT_CATEGORIES.join(", ")}`;
  }
  if (!(AGENT_ROLES as readonly string[]).includes(fields.role)) errors.role = `one of ${AGENT_ROLES.join(", ")}`;

  const capabilities = parseCapabilities(fields.capabilities);
  const malformed = capabilities.find((c) => !CAPABILITY.test(c));
  const repeated = capabilities.find((c, i) => capabilities.indexOf(c) !== i);
  if (capabilities.length === 0) {
    errors.capabilities = "list at least one capability, or no task can ever be routed to this agent";
  } else if (malformed !== undefined) {
    errors.capabilities = `“${malformed}” is not a capability: 1 to 64 lowercase letters, digits and “_”, starting with a letter`;
  } else if (repeated !== undefined) errors.capabilities = `“${repeated}” is listed more than once`;

  const prompt = fields.system_prompt;
  const length = promptLength(prompt);
  if (prompt.trim() === "") errors.system_prompt = "the system prompt makes the model act as this agent: it cannot be empty";
  else if (length > MAX_SYSTEM_PROMPT_CHARS) {
    errors.system_prompt = `at most ${MAX_SYSTEM_PROMPT_CHARS} characters, this has ${length}`;
  }

  const temperatureText = fields.temperature.trim();
  const temperature = Number(temperatureText);
  if (!DECIMAL.test(temperatureText) || !(temperature >= 0 && temperature <= MAX_TEMPERATURE)) {
    errors.temperature = "a number from 0.0 to 2.0";
  }

  const concurrencyText = fields.max_concurrency.trim();
  const maxConcurrency = /^\d+$/.test(concurrencyText) ? Number.parseInt(concurrencyText, 10) : Number.NaN;
  if (!(maxConcurrency >= 1 && maxConcurrency <= MAX_CONCURRENCY)) {
    errors.max_concurrency = `a whole number from 1 to ${MAX_CONCURRENCY}`;
  }

  if (Object.keys(errors).length > 0) return { ok: false, errors };

  const spec: AgentSpec = {
    id,
    name,
    category: fields.category as AgentCategory,
    role: fields.role as AgentRole,
    capabilities,
    system_prompt: prompt,
    temperature,
    max_concurrency: maxConcurrency,
  };
  const model = fields.model.trim();
  if (model !== "") spec.model = model;
  const provider = fields.provider.trim();
  if (provider !== "") spec.provider = provider;
  return { ok: true, spec };
}
