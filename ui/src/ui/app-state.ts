// State the whole page shares: the API client, the one `/ws` socket and who listens to
// it, the socket's state, the last system status, and the toasts (alerts, and notes about
// what the page just did).

import { signal } from "@preact/signals";
import { Api, wsUrl } from "../api";
import { toastFor, type Toast } from "../live";
import type { WsMessage } from "../types";
import { EventSocket, type SocketState } from "../ws";

type Listener = (message: WsMessage) => void;

const listeners = new Set<Listener>();
let client: Api | null = null;
let socket: EventSocket | null = null;

/** The `/ws` connection's state, for the header. */
export const socketState = signal<SocketState>("connecting");
/** The last `system_status` message's data. */
export const systemStatus = signal<Record<string, unknown> | null>(null);
/** Toasts showing now, newest last. */
export const toasts = signal<Toast[]>([]);

const TOAST_MS = 10_000;
const MAX_TOASTS = 4;
const seenAlerts = new Set<string>();
let toastSequence = 0;

export function dismissToast(key: string): void {
  toasts.value = toasts.value.filter((t) => t.key !== key);
}

function show(toast: Toast): void {
  toasts.value = [...toasts.value, toast].slice(-MAX_TOASTS);
  setTimeout(() => dismissToast(toast.key), TOAST_MS);
}

/** Says in a toast that something the page asked for is done ("Agent x saved"). */
export function notify(message: string): void {
  toastSequence += 1;
  show({ key: `note-${toastSequence}`, severity: "info", message, status: "", alertId: null, notice: true });
}

function onMessage(message: WsMessage): void {
  if (message.type === "system_status" && typeof message.data === "object" && message.data !== null) {
    systemStatus.value = message.data as Record<string, unknown>;
  }
  if (message.type === "alert") {
    toastSequence += 1;
    const toast = toastFor(message, seenAlerts, toastSequence);
    if (toast) show(toast);
  }
  for (const listener of listeners) {
    try {
      listener(message);
    } catch (err) {
      console.error("a /ws listener failed", err);
    }
  }
}

/** Sets up the client and opens `/ws` (once). */
export function startApp(base: string, fetchFn: typeof fetch): Api {
  client = new Api(base, fetchFn);
  socket?.stop();
  socket = new EventSocket(wsUrl(base, "/ws"), {
    onMessage,
    onState: (state) => {
      socketState.value = state;
    },
  }).start();
  return client;
}

/** The API client; `startApp` must have run. */
export function api(): Api {
  if (client === null) throw new Error("startApp has not run");
  return client;
}

/** Listens to every `/ws` message until the returned function is called. */
export function listen(listener: Listener): () => void {
  listeners.add(listener);
  return () => {
    listeners.delete(listener);
  };
}

/** `localStorage`, or null where the page may not use it (the welcome flow's flag lives there). */
export function localStore(): Storage | null {
  try {
    return window.localStorage;
  } catch {
    return null;
  }
}
