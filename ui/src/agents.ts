// The agent registry as the Agents view filters it, and the capabilities the task form
// offers (only those some agent has, so a task is never sent with one nobody covers).

import type { AgentInfo } from "./types";

export interface AgentFilter {
  /** `all`, `healthy`, `degraded` or `stopped`. */
  status: string;
  /** A capability, or "" for any. */
  capability: string;
  /** Matched against id, name, category, role and model. */
  text: string;
}

export function filterAgents(agents: AgentInfo[], filter: AgentFilter): AgentInfo[] {
  const text = filter.text.trim().toLowerCase();
  return agents.filter((a) => {
    if (filter.status !== "" && filter.status !== "all" && a.status !== filter.status) return false;
    if (filter.capability !== "" && !a.capabilities.includes(filter.capability)) return false;
    if (text === "") return true;
    return [a.id, a.name, a.category, a.role, a.model].some((field) => field.toLowerCase().includes(text));
  });
}

/** Every capability of `agents`, sorted, with how many agents have it. */
export function capabilityCounts(agents: AgentInfo[]): { name: string; agents: number }[] {
  const counts = new Map<string, number>();
  for (const a of agents) for (const c of new Set(a.capabilities)) counts.set(c, (counts.get(c) ?? 0) + 1);
  return [...counts.entries()].map(([name, n]) => ({ name, agents: n })).sort((a, b) => a.name.localeCompare(b.name));
}
