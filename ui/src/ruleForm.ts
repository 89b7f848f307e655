// An alert rule as the rules table edits it: text fields as typed, turned back into the
// whole `Rule` that `PUT /alerts/rules/{id}` takes (the handler replaces the rule).

import type { Rule, Severity } from "./types";

export interface RuleDraft {
  threshold: string;
  for_seconds: string;
  cooldown_seconds: string;
  severity: Severity;
  enabled: boolean;
}

export function draftOf(rule: Rule): RuleDraft {
  return {
    threshold: String(rule.threshold),
    for_seconds: String(rule.for_seconds),
    cooldown_seconds: String(rule.cooldown_seconds),
    severity: rule.severity,
    enabled: rule.enabled,
  };
}

/** The whole rule a draft makes, or why it cannot be sent. */
export function ruleFromDraft(rule: Rule, draft: RuleDraft): { ok: true; rule: Rule } | { ok: false; error: string } {
  const threshold = Number(draft.threshold);
  if (draft.threshold.trim() === "" || !Number.isFinite(threshold)) return { ok: false, error: "the threshold must be a number" };
  const forSeconds = Number(draft.for_seconds);
  const cooldown = Number(draft.cooldown_seconds);
  if (!Number.isInteger(forSeconds) || forSeconds < 0) return { ok: false, error: "“for” must be whole seconds, 0 or more" };
  if (!Number.isInteger(cooldown) || cooldown < 0) return { ok: false, error: "the cooldown must be whole seconds, 0 or more" };
  return {
    ok: true,
    rule: {
      ...rule,
      threshold,
      for_seconds: forSeconds,
      cooldown_seconds: cooldown,
      severity: draft.severity,
      enabled: draft.enabled,
    },
  };
}
