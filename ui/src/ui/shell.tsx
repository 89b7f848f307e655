// The page around the views: sidebar navigation, the header with the connection, health and
// who is signed in, the view the hash names, and the toasts: alerts pushed over `/ws`,
// notes from views. While the server wants a sign-in, the sign-in screen instead.

import { useEffect, useState } from "preact/hooks";
import { tone } from "../api";
import * as f from "../format";
import { NAV, navOf, parseHash, routeHash, type Route } from "../router";
import { Agents } from "../views/agents";
import { Alerts } from "../views/alerts";
import { Analytics } from "../views/analytics";
import { Infrastructure } from "../views/infrastructure";
import { Messages } from "../views/messages";
import { Overview } from "../views/overview";
import { TaskView } from "../views/task";
import { Tasks } from "../views/tasks";
import { SignIn } from "../views/signin";
import { Welcome } from "../views/welcome";
import type { SystemStatus } from "../types";
import { access, api, dismissToast, signOut, socketState, systemStatus, toasts } from "./app-state";
import { Button, Pill } from "./components";
import { usePoll } from "./hooks";

function currentRoute(): Route {
  return parseHash(window.location.hash);
}

/** The route in the URL's hash, following changes (links, the desktop shell, history). */
export function useRoute(): Route {
  const [route, setRoute] = useState(currentRoute);
  useEffect(() => {
    const onChange = (): void => setRoute(currentRoute());
    window.addEventListener("hashchange", onChange);
    return () => window.removeEventListener("hashchange", onChange);
  }, []);
  return route;
}

function Page(props: { route: Route }) {
  const r = props.route;
  switch (r.view) {
    case "overview":
      return <Overview />;
    case "agents":
      return <Agents agentId={r.agentId} />;
    case "tasks":
      return <Tasks status={r.status} />;
    case "task":
      return <TaskView key={r.taskId} taskId={r.taskId} />;
    case "messages":
      return <Messages deadLetterId={r.deadLetterId} />;
    case "infrastructure":
      return <Infrastructure />;
    case "analytics":
      return <Analytics range={r.range} />;
    case "alerts":
      return <Alerts />;
    case "welcome":
      return <Welcome />;
    case "notfound":
      return (
        <div class="view">
          <h1>Nothing at {r.path}</h1>
          <p>
            <a href={routeHash({ view: "overview" })}>Go to the overview</a>
          </p>
        </div>
      );
  }
}

function Connection(props: { base: string }) {
  // Read once for the header; `/ws` then pushes a `system_status` every heartbeat.
  const initial = usePoll((signal) => api().get<SystemStatus>("/status", {}, signal), 0, []);
  const pushed = systemStatus.value;
  const state = socketState.value;
  const status = typeof pushed?.status === "string" ? pushed.status : initial.data?.status;
  const health = typeof pushed?.system_health === "number" ? pushed.system_health : initial.data?.system_health;
  return (
    <div class="conn">
      {status && (
        <span class={`pill tone-${tone(status)}`} data-testid="header-health" title="system health">
          {status} {f.ratio(health ?? null, 0)}
        </span>
      )}
      <Pill
        tone={state === "open" ? "good" : state === "connecting" ? "warn" : "bad"}
        testid="connection"
        title="live updates over /ws"
      >
        {state === "open" ? "live" : state === "connecting" ? "connecting…" : "API not reachable"}
      </Pill>
      <span class="muted small" title="API base URL">
        {props.base}
      </span>
    </div>
  );
}

/** Who is signed in, and "Sign out"; nothing when the server runs without authentication. */
function Identity() {
  const state = access.value;
  const [busy, setBusy] = useState(false);
  if (state.phase !== "signed-in") return null;
  const who = state.who;
  const expires = who.expires_at ? `, session until ${f.dateTime(who.expires_at)}` : "";
  return (
    <div class="identity">
      <span class="whoami" data-testid="whoami" data-role={who.role} title={`signed in via ${who.via}${expires}`}>
        <span class="whoami-subject">{who.subject}</span>{" "}
        <Pill tone={who.role === "admin" ? "good" : who.role === "operator" ? "warn" : "idle"}>{who.role}</Pill>
      </span>
      <Button
        small
        busy={busy}
        testid="signout"
        title="Revoke this session and sign in again"
        onClick={() => {
          setBusy(true);
          void signOut().finally(() => setBusy(false));
        }}
      >
        Sign out
      </Button>
    </div>
  );
}

function Toasts() {
  const list = toasts.value;
  if (list.length === 0) return null;
  return (
    <div class="toasts" aria-live="assertive">
      {list.map((t) => (
        <div
          key={t.key}
          class={`toast sev-${t.severity} ${t.status === "resolved" ? "resolved" : ""}`}
          data-testid={t.notice ? "notice-toast" : "alert-toast"}
          role="status"
        >
          {t.notice ? (
            <span class="toast-text">{t.message}</span>
          ) : (
            <a href={routeHash({ view: "alerts" })} onClick={() => dismissToast(t.key)}>
              <strong>{t.status === "resolved" ? "Resolved" : t.severity}</strong> {t.message}
            </a>
          )}
          <button type="button" class="toast-close" aria-label="Dismiss" onClick={() => dismissToast(t.key)}>
            ×
          </button>
        </div>
      ))}
    </div>
  );
}

export function App(props: { base: string }) {
  const route = useRoute();
  const state = access.value;
  if (state.phase === "checking") return <p class="boot">Starting…</p>;
  if (state.phase === "signed-out") return <SignIn base={props.base} reason={state.reason} />;
  return <Shell base={props.base} route={route} />;
}

function Shell(props: { base: string; route: Route }) {
  const route = props.route;
  const active = navOf(route);
  return (
    <div class="shell">
      <aside class="sidebar">
        <a class="brand" href={routeHash({ view: "overview" })}>
          <img src="./favicon.svg" alt="" width={26} height={26} />
          <span>SutazAI</span>
        </a>
        <nav>
          {NAV.map((item) => (
            <a
              key={item.view}
              href={`#/${item.view}`}
              class={item.view === active ? "active" : ""}
              aria-current={item.view === active ? "page" : undefined}
              data-testid={`nav-${item.view}`}
            >
              {item.label}
            </a>
          ))}
        </nav>
      </aside>
      <div class="main">
        <header class="topbar">
          <span class="muted">agent control plane</span>
          <div class="topbar-right">
            <Connection base={props.base} />
            <Identity />
          </div>
        </header>
        <main class="content">
          <Page route={route} />
        </main>
      </div>
      <Toasts />
    </div>
  );
}
