// What the page makes of pushed messages: alert toasts from `/ws` `alert` messages, image
// pull progress folded per layer, and infrastructure events in words.

import type { AlertRecord, InfraEvent, PullProgress, WsMessage } from "./types";

export interface Toast {
  /** Unique per toast. */
  key: string;
  severity: string;
  message: string;
  /** `firing`, `resolved`, or "" for alerts without a record (a degraded agent). */
  status: string;
  /** The stored alert's id, when the message carried one. */
  alertId: number | null;
  /** A note about something done on this page (an agent saved), not an alert. */
  notice?: boolean;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * The toast an `alert` message deserves, or null. The monitor re-sends a record on every
 * change (acknowledgement, delivery outcome), so only the first sight of each
 * (id, status) pair makes a toast, and an acknowledged alert makes none; `seen` remembers
 * the pairs. Alerts without a record (degraded agent, infrastructure) always make one.
 */
export function toastFor(message: WsMessage, seen: Set<string>, sequence: number): Toast | null {
  if (message.type !== "alert") return null;
  const text = typeof message.message === "string" ? message.message : "";
  const severity = typeof message.severity === "string" ? message.severity : "warning";
  const record = isRecord(message.alert) ? (message.alert as unknown as AlertRecord) : null;
  if (record && typeof record.id === "number") {
    const status = typeof record.status === "string" ? record.status : "";
    const pair = `${record.id}:${status}`;
    if (seen.has(pair)) return null;
    seen.add(pair);
    if (record.acknowledged) return null;
    return { key: `alert-${pair}`, severity, message: text || record.message, status, alertId: record.id };
  }
  if (text === "") return null;
  const status = typeof message.status === "string" ? message.status : "";
  return { key: `msg-${sequence}`, severity, message: text, status, alertId: null };
}

/** One layer of a pull, as shown by a progress bar. */
export interface Layer {
  id: string;
  status: string;
  current: number | null;
  total: number | null;
}

/** The layers of one pull, in the order they first appeared. */
export interface PullState {
  reference: string;
  layers: Layer[];
  /** Status lines about the pull as a whole (empty layer id). */
  overall: string;
  done: boolean;
}

export function emptyPull(reference: string): PullState {
  return { reference, layers: [], overall: "", done: false };
}

/** Folds one progress line into the pull's state. */
export function foldPull(state: PullState, p: Partial<PullProgress> & { status?: string }): PullState {
  if (p.status === "done" && p.layer === undefined && p.reference === undefined) {
    return { ...state, done: true, overall: state.overall || "done" };
  }
  if (p.reference !== undefined && p.reference !== state.reference && state.reference !== "") return state;
  const layer = typeof p.layer === "string" ? p.layer : "";
  const status = typeof p.status === "string" ? p.status : "";
  if (layer === "") return { ...state, overall: status };
  const index = state.layers.findIndex((l) => l.id === layer);
  const old = index >= 0 ? state.layers[index] : undefined;
  const complete = /complete|already exists|verifying checksum|download complete/i.test(status);
  const next: Layer = {
    id: layer,
    status,
    total: p.total ?? old?.total ?? null,
    current: complete ? (p.total ?? old?.total ?? old?.current ?? null) : (p.current ?? old?.current ?? null),
  };
  const layers = [...state.layers];
  if (index >= 0) layers[index] = next;
  else layers.push(next);
  return { ...state, layers };
}

/** A layer's progress 0..1, or null when unknown. */
export function layerFraction(layer: Layer): number | null {
  if (/complete|already exists/i.test(layer.status)) return 1;
  if (layer.total === null || layer.total <= 0 || layer.current === null) return null;
  return Math.max(0, Math.min(1, layer.current / layer.total));
}

/** An infrastructure event in words, and its tone. */
export function describeInfra(event: InfraEvent): { text: string; tone: "good" | "warn" | "bad" | "idle" } {
  switch (event.event) {
    case "step": {
      const tone = event.status === "failed" ? "bad" : event.status === "done" ? "good" : "warn";
      return { text: `${event.service}: ${event.step} ${event.status}${event.message ? ` — ${event.message}` : ""}`, tone };
    }
    case "pull": {
      const amount = event.total ? ` ${Math.round(((event.current ?? 0) / event.total) * 100)} %` : "";
      return { text: `pull ${event.reference}${event.layer ? ` ${event.layer}` : ""}: ${event.status}${amount}`, tone: "idle" };
    }
    case "container":
      return { text: `${event.service}: container ${event.container} ${event.action}`, tone: "idle" };
    case "healed":
      return {
        text: `${event.service}: healer restarted ${event.container} (${event.reason}, attempt ${event.attempt})`,
        tone: "warn",
      };
    case "alert":
      return { text: `${event.service}: ${event.message}`, tone: event.severity === "critical" ? "bad" : "warn" };
    case "scaled":
      return { text: `${event.service}: scaled ${event.from} → ${event.to} (${event.reason})`, tone: "idle" };
    case "docker":
      return {
        text: event.available ? "Docker became available" : `Docker became unavailable${event.reason ? `: ${event.reason}` : ""}`,
        tone: event.available ? "good" : "bad",
      };
    default:
      return { text: JSON.stringify(event), tone: "idle" };
  }
}
