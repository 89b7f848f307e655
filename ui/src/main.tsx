// Entry point of the dashboard: finds the API, takes up the session (the one the desktop
// window injected, or the one kept for this tab), asks `/auth/whoami` whether to sign in,
// opens `/ws`, opens the welcome flow on a first launch, and renders the shell (sidebar,
// header, the view the URL's hash names, alert toasts) or the sign-in screen.

// First: it makes `navigator.language` usable before uPlot reads it while loading.
import "./locale";
import { render } from "preact";
import { resolveApiBase } from "./api";
import "./style.css";
import { localStore, sessionStore, startApp } from "./ui/app-state";
import { App } from "./ui/shell";
import { firstRunHash, welcomeDone } from "./welcome";

declare global {
  interface Window {
    /** Set by the desktop shell before the page loads: the configured API base URL. */
    SUTAZAI_API?: string;
    /** Set by the desktop shell before the page loads: a session to start with, no sign-in. */
    SUTAZAI_AUTH?: { access_token: string; refresh_token?: string; expires_in?: number };
  }
}

const base = resolveApiBase(window.SUTAZAI_API, window.location);
startApp(base, window.fetch.bind(window), { store: sessionStore(), injected: window.SUTAZAI_AUTH });
const firstRun = firstRunHash(window.location.hash, welcomeDone(localStore()));
if (firstRun !== null) window.history.replaceState(null, "", firstRun);
const root = document.getElementById("app");
if (root === null) throw new Error("index.html lacks #app");
// Preact 11 renders beside what is there: the "Starting…" line has to go first.
root.replaceChildren();
render(<App base={base} />, root);

