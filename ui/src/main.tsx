// Entry point of the dashboard: finds the API, opens `/ws`, and renders the shell (sidebar,
// header, the view the URL's hash names, alert toasts).

// First: fixes an invalid navigator.language before uPlot's module reads it.
import "./locale";
import { render } from "preact";
import { resolveApiBase } from "./api";
import "./style.css";
import { startApp } from "./ui/app-state";
import { App } from "./ui/shell";

declare global {
  interface Window {
    /** Set by the desktop shell before the page loads: the configured API base URL. */
    SUTAZAI_API?: string;
  }
}

const base = resolveApiBase(window.SUTAZAI_API, window.location);
startApp(base, window.fetch.bind(window));
const root = document.getElementById("app");
if (root === null) throw new Error("index.html lacks #app");
render(<App base={base} />, root);
