// Entry point of the dashboard page: finds the API, polls it, and re-renders.
// This is the status view only: health, task counters and the agent registry.

import "./style.css";
import { loadSnapshot, resolveApiBase } from "./api";
import { render, renderConnection } from "./view";

declare global {
  interface Window {
    /** Set by the desktop shell before the page loads: the configured API base URL. */
    SUTAZAI_API?: string;
  }
}

/** How often the page asks the API again; a poll never overlaps the previous one. */
const POLL_MS = 5000;

function element(id: string): HTMLElement {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`index.html lacks #${id}`);
  return el;
}

function start(): void {
  const base = resolveApiBase(window.SUTAZAI_API, window.location);
  const root = element("app");
  const pill = element("connection");
  const updated = element("updated");
  const refresh = element("refresh");
  element("api-base").textContent = base;

  let timer: ReturnType<typeof setTimeout> | undefined;
  let inFlight = false;

  const poll = async (): Promise<void> => {
    if (inFlight) return;
    inFlight = true;
    clearTimeout(timer);
    try {
      const snapshot = await loadSnapshot(base, window.fetch.bind(window));
      render(root, base, snapshot);
      renderConnection(pill, updated, snapshot);
    } finally {
      inFlight = false;
      timer = setTimeout(() => void poll(), POLL_MS);
    }
  };

  refresh.addEventListener("click", () => void poll());
  void poll();
}

start();
