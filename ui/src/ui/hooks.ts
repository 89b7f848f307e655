// Hooks the views share: polling that stops while the page is hidden and never overlaps
// itself, `/ws` listeners, and buttons that run one request at a time.

import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "../api";
import type { WsMessage } from "../types";
import { listen } from "./app-state";

/** Whether the page is hidden (minimised window, background tab): polls pause then. */
function hidden(): boolean {
  return typeof document !== "undefined" && document.visibilityState === "hidden";
}

export function asApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  return new ApiError("client_error", err instanceof Error ? err.message : String(err));
}

export interface Polled<T> {
  data: T | null;
  error: ApiError | null;
  loading: boolean;
  /** Asks again now (a poll in flight is not doubled). */
  refresh: () => void;
}

/**
 * Calls `load` now and then `intervalMs` after each answer, while the page is visible;
 * `intervalMs` 0 loads once (and on `refresh`). A change in `deps` starts over. The last
 * good data stays while a later poll fails, beside the error.
 */
export function usePoll<T>(load: (signal: AbortSignal) => Promise<T>, intervalMs: number, deps: unknown[]): Polled<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(true);
  const kick = useRef<() => void>(() => undefined);
  const loadRef = useRef(load);
  loadRef.current = load;

  useEffect(() => {
    let alive = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let inFlight: AbortController | null = null;
    setLoading(true);
    setData(null);
    setError(null);

    const schedule = (): void => {
      clearTimeout(timer);
      if (intervalMs > 0 && alive && !hidden()) timer = setTimeout(run, intervalMs);
    };
    const run = (): void => {
      if (!alive || inFlight !== null) return;
      clearTimeout(timer);
      const controller = new AbortController();
      inFlight = controller;
      loadRef
        .current(controller.signal)
        .then(
          (value) => {
            if (!alive) return;
            setData(value);
            setError(null);
          },
          (err: unknown) => {
            if (!alive || controller.signal.aborted) return;
            setError(asApiError(err));
          },
        )
        .finally(() => {
          if (inFlight === controller) inFlight = null;
          if (!alive) return;
          setLoading(false);
          schedule();
        });
    };
    const onVisibility = (): void => {
      if (hidden()) clearTimeout(timer);
      else if (intervalMs > 0) run();
    };
    kick.current = run;
    document.addEventListener("visibilitychange", onVisibility);
    run();
    return () => {
      alive = false;
      clearTimeout(timer);
      inFlight?.abort();
      document.removeEventListener("visibilitychange", onVisibility);
    };
  }, [intervalMs, ...deps]);

  const refresh = useCallback(() => kick.current(), []);
  return { data, error, loading, refresh };
}

/** Listens to `/ws` messages while mounted; the handler may change between renders. */
export function useSocket(handler: (message: WsMessage) => void): void {
  const ref = useRef(handler);
  ref.current = handler;
  useEffect(() => listen((m) => ref.current(m)), []);
}

/**
 * Calls `fn` at most once per `ms` after the last call (trailing), e.g. to read a list
 * again after a burst of events.
 */
export function useDebounced(fn: () => void, ms: number): () => void {
  const ref = useRef(fn);
  ref.current = fn;
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  useEffect(() => () => clearTimeout(timer.current), []);
  return useCallback(() => {
    clearTimeout(timer.current);
    timer.current = setTimeout(() => ref.current(), ms);
  }, [ms]);
}

export interface Action<T> {
  busy: boolean;
  error: ApiError | null;
  result: T | null;
  /** Runs `fn` unless one is running; resolves to its result, or null when it failed. */
  run: (fn: () => Promise<T>) => Promise<T | null>;
  reset: () => void;
}

/** A button's request: one at a time, its error and result kept for the view. */
export function useAction<T = unknown>(): Action<T> {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [result, setResult] = useState<T | null>(null);
  const running = useRef(false);
  const mounted = useRef(true);
  useEffect(
    () => () => {
      mounted.current = false;
    },
    [],
  );
  const run = useCallback(async (fn: () => Promise<T>) => {
    if (running.current) return null;
    running.current = true;
    setBusy(true);
    setError(null);
    try {
      const value = await fn();
      if (mounted.current) setResult(value);
      return value;
    } catch (err) {
      if (mounted.current) setError(asApiError(err));
      return null;
    } finally {
      running.current = false;
      if (mounted.current) setBusy(false);
    }
  }, []);
  const reset = useCallback(() => {
    setError(null);
    setResult(null);
  }, []);
  return { busy, error, result, run, reset };
}
