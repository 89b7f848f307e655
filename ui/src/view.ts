// Turns one Snapshot of the API into DOM. Every value from the API goes in through
// textContent (never innerHTML), so a hostile agent name cannot inject markup.

import { tone, type Agent, type Health, type Part, type Snapshot, type Status } from "./api";

type Child = Node | string | null;

/** Creates an element with a class and children; strings become text nodes. */
function h(tag: string, className: string, ...children: Child[]): HTMLElement {
  const el = document.createElement(tag);
  if (className) el.className = className;
  for (const child of children) {
    if (child !== null) el.append(child);
  }
  return el;
}

function card(label: string, value: string, note: string | null, toneClass = ""): HTMLElement {
  return h(
    "div",
    `card ${toneClass}`.trim(),
    h("div", "card-label", label),
    h("div", "card-value", value),
    note === null ? null : h("div", "card-note", note),
  );
}

function percent(fraction: number | null): string {
  return fraction === null ? "—" : `${(fraction * 100).toFixed(1)} %`;
}

function number(value: number | null): string {
  return value === null ? "—" : String(value);
}

function healthCards(health: Health, status: Part<Status>, agents: Part<Agent[]>): HTMLElement {
  const statusNote = status.ok ? null : `/status: ${status.error}`;
  const counts = status.ok ? status.value : { activeTasks: null, queuedTasks: null };
  const agentCount = agents.ok ? String(agents.value.length) : "—";
  const busy = agents.ok ? agents.value.filter((a) => tone(a.status) !== "good").length : null;
  return h(
    "section",
    "cards",
    card("API status", health.status, null, `tone-${tone(health.status)}`),
    card("System health", percent(health.systemHealth), health.systemHealth === null ? "not reported" : null),
    card("Active tasks", number(counts.activeTasks), statusNote),
    card("Queued tasks", number(counts.queuedTasks), statusNote),
    card("Agents", agentCount, busy === null || busy === 0 ? null : `${busy} not ready`),
  );
}

function agentRow(agent: Agent): HTMLElement {
  const caps = h("div", "caps");
  for (const cap of agent.capabilities) caps.append(h("span", "chip", cap));
  if (agent.capabilities.length === 0) caps.append(h("span", "muted", "—"));
  return h(
    "tr",
    "",
    h("td", "", h("div", "agent-name", agent.name), agent.name === agent.id ? null : h("div", "muted mono", agent.id)),
    h("td", "", agent.category || "—"),
    h("td", "", agent.role || "—"),
    h("td", "", h("span", `pill tone-${tone(agent.status)}`, agent.status)),
    h("td", "", caps),
  );
}

function agentsSection(agents: Part<Agent[]>): HTMLElement {
  const title = h("h2", "", agents.ok ? `Agents (${agents.value.length})` : "Agents");
  if (!agents.ok) {
    return h("section", "panel", title, h("p", "error", `Could not load the agent list — ${agents.error}`));
  }
  if (agents.value.length === 0) {
    return h("section", "panel", title, h("p", "muted", "The API reports no agents."));
  }
  const head = h("tr", "", ...["Agent", "Category", "Role", "Status", "Capabilities"].map((c) => h("th", "", c)));
  const body = h("tbody", "", ...agents.value.map(agentRow));
  return h("section", "panel", title, h("table", "agents", h("thead", "", head), body));
}

function unreachable(base: string, error: string): HTMLElement {
  const start = h("p", "", "Start it with ", h("code", "", "sutazai serve"), " (or ", h("code", "", "bash scripts/app.sh"), "); this page keeps retrying.");
  return h(
    "section",
    "banner",
    h("h2", "", "API not reachable"),
    h("p", "", "The SutazAI API did not answer at ", h("code", "", base), "."),
    h("p", "muted mono", error),
    start,
  );
}

/** Replaces the contents of `root` with the view of `snapshot`. */
export function render(root: HTMLElement, base: string, snapshot: Snapshot): void {
  const content =
    snapshot.kind === "down"
      ? [unreachable(base, snapshot.error)]
      : [healthCards(snapshot.health, snapshot.status, snapshot.agents), agentsSection(snapshot.agents)];
  root.replaceChildren(...content);
}

/** Updates the connection pill and the "updated at" line in the header. */
export function renderConnection(pill: HTMLElement, updated: HTMLElement, snapshot: Snapshot): void {
  const up = snapshot.kind === "up";
  pill.textContent = up ? "Connected" : "Not reachable";
  pill.className = `pill ${up ? "tone-good" : "tone-bad"}`;
  updated.textContent = `Updated ${snapshot.at.toLocaleTimeString()}`;
}
