// The agent editor's checks: each of the registry's rules refused before anything is
// sent, the exact body sent when the form is fine, and a definition surviving the trip
// through the form unchanged.

import { describe, expect, it } from "vitest";
import {
  emptyAgentForm,
  formOfSpec,
  MAX_SYSTEM_PROMPT_CHARS,
  parseCapabilities,
  promptLength,
  validateAgent,
  type AgentFormFields,
} from "./agentForm";
import type { AgentSpec } from "./types";

const SPEC: AgentSpec = {
  id: "senior-reviewer",
  name: "Senior Reviewer",
  category: "development",
  role: "specialist",
  capabilities: ["code_review", "security_review"],
  model: "qwen2.5-coder:7b",
  provider: "ollama",
  system_prompt: "You review code.\nAnswer concisely.",
  temperature: 0.3,
  max_concurrency: 2,
};

function form(change: Partial<AgentFormFields>): AgentFormFields {
  return {
    ...emptyAgentForm(),
    id: "e2e-reviewer",
    name: "E2E Reviewer",
    capabilities: "e2e_review",
    system_prompt: "You review.",
    ...change,
  };
}

/** The error `validateAgent` gives `field` for the form `change` makes, or null when it passes. */
function errorOf(change: Partial<AgentFormFields>, field: keyof AgentFormFields): string | null {
  const r = validateAgent(form(change));
  return r.ok ? null : (r.errors[field] ?? null);
}

describe("the spec through the form", () => {
  it("comes back unchanged", () => {
    expect(validateAgent(formOfSpec(SPEC))).toEqual({ ok: true, spec: SPEC });
    const { model: _model, provider: _provider, ...plain } = SPEC;
    const back = validateAgent(formOfSpec(plain));
    expect(back).toEqual({ ok: true, spec: plain });
    expect(back.ok && Object.keys(back.spec)).not.toContain("model");
  });

  it("shows a definition as text", () => {
    expect(formOfSpec(SPEC)).toEqual({
      id: "senior-reviewer",
      name: "Senior Reviewer",
      category: "development",
      role: "specialist",
      capabilities: "code_review, security_review",
      model: "qwen2.5-coder:7b",
      provider: "ollama",
      system_prompt: "You review code.\nAnswer concisely.",
      temperature: "0.3",
      max_concurrency: "2",
    });
  });

  it("sends only the spec's fields, trimmed, optional ones left out when empty", () => {
    const r = validateAgent(
      form({
        id: " e2e-reviewer ",
        name: "  E2E Reviewer ",
        capabilities: " e2e_review,code_review\n testing ,, ",
        model: "   ",
        provider: "",
        system_prompt: "  Keep my spaces.\n",
        temperature: " 0.7 ",
        max_concurrency: " 3 ",
      }),
    );
    expect(r).toEqual({
      ok: true,
      spec: {
        id: "e2e-reviewer",
        name: "E2E Reviewer",
        category: "development",
        role: "worker",
        capabilities: ["e2e_review", "code_review", "testing"],
        system_prompt: "  Keep my spaces.\n",
        temperature: 0.7,
        max_concurrency: 3,
      },
    });
    expect(r.ok && Object.keys(r.spec).sort()).toEqual(
      ["capabilities", "category", "id", "max_concurrency", "name", "role", "system_prompt", "temperature"].sort(),
    );
  });

  it("starts a new agent with the registry's defaults", () => {
    const blank = emptyAgentForm();
    expect([blank.temperature, blank.max_concurrency, blank.category, blank.role]).toEqual(["0.2", "4", "development", "worker"]);
    const r = validateAgent(blank);
    expect(r.ok === false && Object.keys(r.errors).sort()).toEqual(["capabilities", "id", "name", "system_prompt"]);
  });
});

describe("parseCapabilities", () => {
  it("splits on commas, spaces and line breaks and keeps duplicates", () => {
    expect(parseCapabilities("a, b c\nd,,e\t a")).toEqual(["a", "b", "c", "d", "e", "a"]);
    expect(parseCapabilities(" ,  ")).toEqual([]);
  });
});

describe("validateAgent", () => {
  it("takes ids the registry takes", () => {
    for (const id of ["a", "9", "e2e-reviewer", "a-", "x".repeat(64)]) expect(errorOf({ id }, "id"), id).toBeNull();
    for (const id of ["", "-a", "A", "snake_case", "dotted.id", "sp ace", "é", "x".repeat(65)]) {
      expect(errorOf({ id }, "id"), id).toMatch(/lowercase letters, digits/);
    }
  });

  it("refuses an id that exists when one is given", () => {
    const r = validateAgent(form({}), ["coder", "e2e-reviewer"]);
    expect(r.ok === false && r.errors.id).toBe("an agent “e2e-reviewer” exists already: edit it instead");
    expect(validateAgent(form({}), ["coder"]).ok).toBe(true);
  });

  it("needs a name", () => {
    expect(errorOf({ name: " \t" }, "name")).toBe("an agent needs a name");
  });

  it("takes only the known categories and roles", () => {
    expect(errorOf({ category: "security" }, "category")).toBeNull();
    expect(errorOf({ category: "marketing" }, "category")).toMatch(/^one of core_intelligence, development/);
    expect(errorOf({ role: "monitor" }, "role")).toBeNull();
    expect(errorOf({ role: "boss" }, "role")).toBe("one of coordinator, worker, specialist, monitor");
  });

  it("needs well-formed capabilities, at least one, none twice", () => {
    expect(errorOf({ capabilities: "  " }, "capabilities")).toMatch(/^list at least one capability/);
    for (const bad of ["Code_Review", "_review", "9lives", "code-review", "x".repeat(65)]) {
      expect(errorOf({ capabilities: `testing, ${bad}` }, "capabilities"), bad).toMatch(/is not a capability/);
    }
    expect(errorOf({ capabilities: "x".repeat(64) }, "capabilities")).toBeNull();
    expect(errorOf({ capabilities: "testing, e2e_review testing" }, "capabilities")).toBe("“testing” is listed more than once");
  });

  it("needs a system prompt of at most 8000 characters", () => {
    expect(errorOf({ system_prompt: " \n\t " }, "system_prompt")).toMatch(/cannot be empty/);
    expect(errorOf({ system_prompt: "x".repeat(MAX_SYSTEM_PROMPT_CHARS) }, "system_prompt")).toBeNull();
    expect(errorOf({ system_prompt: "x".repeat(MAX_SYSTEM_PROMPT_CHARS + 1) }, "system_prompt")).toBe(
      "at most 8000 characters, this has 8001",
    );
  });

  it("counts a unicode prompt in characters, as the server does", () => {
    const prompt = "Réponds en français 🇫🇷, 日本語も大丈夫 👍🏽";
    const r = validateAgent(form({ system_prompt: prompt }));
    expect(r.ok && r.spec.system_prompt).toBe(prompt);
    // Emoji take two UTF-16 units each but are one character to the server.
    expect("🙂".length).toBe(2);
    expect(promptLength("🙂".repeat(MAX_SYSTEM_PROMPT_CHARS))).toBe(MAX_SYSTEM_PROMPT_CHARS);
    expect(errorOf({ system_prompt: "🙂".repeat(MAX_SYSTEM_PROMPT_CHARS) }, "system_prompt")).toBeNull();
    expect(errorOf({ system_prompt: "🙂".repeat(MAX_SYSTEM_PROMPT_CHARS + 1) }, "system_prompt")).toMatch(/this has 8001$/);
  });

  it("parses the temperature strictly, from 0.0 to 2.0", () => {
    for (const t of ["0", "0.0", "2", "2.0", "1.25", ".5", "1."])
      expect(errorOf({ temperature: t }, "temperature"), t).toBeNull();
    for (const t of ["abc", "", " ", "-0.1", "2.01", "5", "1e0", "0x1", "Infinity", "NaN", "1,5", "0.7 degrees"]) {
      expect(errorOf({ temperature: t }, "temperature"), t).toBe("a number from 0.0 to 2.0");
    }
    const r = validateAgent(form({ temperature: "1.5" }));
    expect(r.ok && r.spec.temperature).toBe(1.5);
  });

  it("takes max_concurrency as a whole number from 1 to 256", () => {
    for (const n of ["1", "256", "007"]) expect(errorOf({ max_concurrency: n }, "max_concurrency"), n).toBeNull();
    for (const n of ["0", "257", "2.5", "-1", "+3", "", "four", "1e2"]) {
      expect(errorOf({ max_concurrency: n }, "max_concurrency"), n).toBe("a whole number from 1 to 256");
    }
    const r = validateAgent(form({ max_concurrency: "007" }));
    expect(r.ok && r.spec.max_concurrency).toBe(7);
  });

  it("names every field that is wrong at once", () => {
    const r = validateAgent({
      id: "Bad Id",
      name: "",
      category: "x",
      role: "y",
      capabilities: "",
      model: "",
      provider: "",
      system_prompt: "",
      temperature: "abc",
      max_concurrency: "0",
    });
    expect(r.ok === false && Object.keys(r.errors).sort()).toEqual([
      "capabilities",
      "category",
      "id",
      "max_concurrency",
      "name",
      "role",
      "system_prompt",
      "temperature",
    ]);
  });
});
