// Small building blocks every view uses. Values from the API go in as text children,
// never as HTML, so a hostile name cannot inject markup.

import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";
import { gateReason, type Role } from "../access";
import { tone, type ApiError } from "../api";
import { pretty } from "../format";
import { currentRole } from "./app-state";

export type Tone = "good" | "warn" | "bad" | "idle";

export function Pill(props: { tone?: Tone; children: ComponentChildren; testid?: string; title?: string }) {
  return (
    <span class={`pill tone-${props.tone ?? "idle"}`} data-testid={props.testid} title={props.title}>
      {props.children}
    </span>
  );
}

/** A status word in its colour; `data-status` carries the raw word for tests. */
export function StatusPill(props: { status: string | null | undefined; testid?: string; label?: string }) {
  const status = props.status ?? "unknown";
  return (
    <span class={`pill tone-${tone(status)}`} data-testid={props.testid} data-status={status}>
      {props.label ?? status.replace(/_/g, " ")}
    </span>
  );
}

export function Card(props: { label: string; value: ComponentChildren; note?: ComponentChildren; tone?: Tone; testid?: string }) {
  return (
    <div class={`card ${props.tone ? `tone-edge-${props.tone}` : ""}`} data-testid={props.testid}>
      <div class="card-label">{props.label}</div>
      <div class="card-value">{props.value}</div>
      {props.note !== undefined && props.note !== null && <div class="card-note">{props.note}</div>}
    </div>
  );
}

export function Panel(props: {
  title: ComponentChildren;
  actions?: ComponentChildren;
  children: ComponentChildren;
  class?: string;
  testid?: string;
}) {
  return (
    <section class={`panel ${props.class ?? ""}`} data-testid={props.testid}>
      <header class="panel-head">
        <h2>{props.title}</h2>
        {props.actions && <div class="panel-actions">{props.actions}</div>}
      </header>
      {props.children}
    </section>
  );
}

/** The API's message (its `{code, message}`), or what went wrong on the way. */
export function ErrorNote(props: { error: ApiError | null | undefined; prefix?: string }) {
  if (!props.error) return null;
  return (
    <div class="error-note" role="alert" data-testid="error" data-code={props.error.code}>
      <span>
        {props.prefix ? `${props.prefix}: ` : ""}
        {props.error.message}
      </span>
      <code class="error-code">{props.error.code}</code>
    </div>
  );
}

export function Empty(props: { children: ComponentChildren }) {
  return <p class="empty">{props.children}</p>;
}

export function Loading(props: { what?: string }) {
  return <p class="empty">Loading{props.what ? ` ${props.what}` : ""}…</p>;
}

/** A bar from 0 to 1; indeterminate (striped) when `fraction` is null. */
export function Progress(props: { fraction: number | null; label?: string; tone?: Tone; testid?: string }) {
  const f = props.fraction;
  return (
    <div
      class={`progress ${f === null ? "indeterminate" : ""}`}
      data-testid={props.testid}
      title={props.label}
      role="progressbar"
      aria-label={props.label}
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={f === null ? undefined : Math.round(f * 100)}
    >
      <div
        class={`progress-fill tone-bg-${props.tone ?? "good"}`}
        style={{ width: f === null ? "35%" : `${Math.round(f * 1000) / 10}%` }}
      />
    </div>
  );
}

/** A small meter for percentages in tables. */
export function Meter(props: { percent: number | null | undefined }) {
  const p = props.percent;
  if (p === null || p === undefined || !Number.isFinite(p)) return <span class="muted">—</span>;
  const t: Tone = p >= 90 ? "bad" : p >= 75 ? "warn" : "good";
  return (
    <span class="meter">
      <span class="meter-track">
        <span class={`meter-fill tone-bg-${t}`} style={{ width: `${Math.min(100, Math.max(0, p))}%` }} />
      </span>
      <span class="meter-text">{p.toFixed(0)} %</span>
    </span>
  );
}

export function Json(props: { value: unknown; testid?: string; class?: string }) {
  return (
    <pre class={`json ${props.class ?? ""}`} data-testid={props.testid}>
      {pretty(props.value)}
    </pre>
  );
}

/** A label, its control and the control's error (`errorTestid` marks the error's text). */
export function Field(props: {
  label: string;
  error?: string;
  hint?: ComponentChildren;
  children: ComponentChildren;
  wide?: boolean;
  errorTestid?: string;
}) {
  return (
    <label class={`field ${props.wide ? "wide" : ""} ${props.error ? "has-error" : ""}`}>
      <span class="field-label">{props.label}</span>
      {props.children}
      {props.error ? (
        <span class="field-error" data-testid={props.errorTestid}>
          {props.error}
        </span>
      ) : props.hint ? (
        <span class="field-hint">{props.hint}</span>
      ) : null}
    </label>
  );
}

/** Collapsible long text (a step's output, a prompt). */
export function Fold(props: { summary: ComponentChildren; children: ComponentChildren; open?: boolean }) {
  const [open, setOpen] = useState(props.open ?? false);
  return (
    <details open={open} onToggle={(e) => setOpen((e.currentTarget as HTMLDetailsElement).open)}>
      <summary>{props.summary}</summary>
      {open && props.children}
    </details>
  );
}

export function Chips(props: { items: string[] }) {
  if (props.items.length === 0) return <span class="muted">—</span>;
  return (
    <span class="chips">
      {props.items.map((c) => (
        <span class="chip" key={c}>
          {c}
        </span>
      ))}
    </span>
  );
}

/**
 * Why the signed-in role may not use a control that needs `needs` ("needs the operator
 * role"), or null when it may (and when auth is off: the server decides).
 */
export function useGate(needs: Role | undefined): string | null {
  return gateReason(currentRole.value, needs);
}

/**
 * A button that says it is working while `busy`. With `needs`, it is disabled (its tooltip
 * saying which role it needs) when the signed-in role is weaker.
 */
export function Button(props: {
  onClick?: () => void;
  busy?: boolean;
  disabled?: boolean;
  kind?: "primary" | "danger" | "plain";
  /** A compact button, for table rows. */
  small?: boolean;
  testid?: string;
  title?: string;
  type?: "button" | "submit";
  /** The role this button's request needs. */
  needs?: Role;
  children: ComponentChildren;
}) {
  const gated = useGate(props.needs);
  return (
    <button
      type={props.type ?? "button"}
      class={`btn btn-${props.kind ?? "plain"}${props.small ? " btn-small" : ""}`}
      disabled={props.disabled || props.busy || gated !== null}
      aria-busy={props.busy ? "true" : undefined}
      data-testid={props.testid}
      data-needs={gated !== null ? props.needs : undefined}
      title={gated ?? props.title}
      onClick={props.onClick}
    >
      {props.busy ? <span class="spinner" aria-hidden="true" /> : null}
      {props.children}
    </button>
  );
}
