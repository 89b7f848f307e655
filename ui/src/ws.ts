// The `/ws` connection: one socket, reconnected with backoff, whose messages go to
// whoever listens. Costs nothing while idle (the server pushes; nothing polls).

import type { WsMessage } from "./types";

export type SocketState = "connecting" | "open" | "closed";

/** Delay before reconnect attempt `attempt` (0-based): 1 s doubling to 30 s. */
export function reconnectDelay(attempt: number, minMs = 1000, maxMs = 30_000): number {
  const n = Math.max(0, Math.min(attempt, 16));
  return Math.min(maxMs, minMs * 2 ** n);
}

/** A `/ws` frame as a message, or null when it is not one (not JSON, no `type`). */
export function parseFrame(data: unknown): WsMessage | null {
  if (typeof data !== "string") return null;
  try {
    const value: unknown = JSON.parse(data);
    if (
      typeof value === "object" &&
      value !== null &&
      !Array.isArray(value) &&
      typeof (value as { type?: unknown }).type === "string"
    ) {
      return value as WsMessage;
    }
  } catch {
    // Not JSON: ignored.
  }
  return null;
}

type WebSocketLike = Pick<WebSocket, "close" | "onopen" | "onclose" | "onmessage" | "onerror">;

export interface EventSocketOptions {
  onMessage: (message: WsMessage) => void;
  /**
   * Runs before each connection attempt (refreshing an access token about to expire);
   * its failure does not stop the attempt.
   */
  prepare?: () => Promise<unknown>;
  onState?: (state: SocketState) => void;
  /** For tests: makes the socket. */
  connect?: (url: string) => WebSocketLike;
}

/** A WebSocket that reconnects until `stop()`. */
export class EventSocket {
  private socket: WebSocketLike | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private attempt = 0;
  private stopped = false;
  /** Counts starts and stops, so an attempt that waited on `prepare` knows it is stale. */
  private generation = 0;
  private readonly url: string | (() => string);
  private readonly options: EventSocketOptions;

  /** `url` may be a function: it is asked on every attempt (the token in it may change). */
  constructor(url: string | (() => string), options: EventSocketOptions) {
    this.url = url;
    this.options = options;
  }

  start(): this {
    this.stopped = false;
    this.generation += 1;
    this.open();
    return this;
  }

  stop(): void {
    this.stopped = true;
    this.generation += 1;
    clearTimeout(this.timer);
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      socket.onclose = null;
      socket.onmessage = null;
      socket.onerror = null;
      socket.close();
    }
    this.options.onState?.("closed");
  }

  /** Whether it was started and not stopped since. */
  get running(): boolean {
    return !this.stopped && this.generation > 0;
  }

  private open(): void {
    if (this.stopped) return;
    this.options.onState?.("connecting");
    const prepare = this.options.prepare;
    if (prepare === undefined) {
      this.connect();
      return;
    }
    const generation = this.generation;
    void prepare()
      .catch(() => undefined)
      .then(() => {
        if (!this.stopped && generation === this.generation) this.connect();
      });
  }

  private connect(): void {
    let socket: WebSocketLike;
    try {
      const url = typeof this.url === "function" ? this.url() : this.url;
      socket = this.options.connect ? this.options.connect(url) : new WebSocket(url);
    } catch {
      this.retry();
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      this.attempt = 0;
      this.options.onState?.("open");
    };
    socket.onmessage = (event: MessageEvent) => {
      const message = parseFrame(event.data);
      if (message) this.options.onMessage(message);
    };
    socket.onerror = () => undefined;
    socket.onclose = () => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.options.onState?.("closed");
      this.retry();
    };
  }

  private retry(): void {
    if (this.stopped) return;
    const delay = reconnectDelay(this.attempt);
    this.attempt += 1;
    this.timer = setTimeout(() => this.open(), delay);
  }
}
