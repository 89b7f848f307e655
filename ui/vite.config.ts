// Vite build of the dashboard. The output in ui/dist is embedded into the desktop binary
// by tauri (build.frontendDist) and served at `/` by `sutazai serve`, so asset URLs are
// relative and nothing is loaded from a CDN. JSX is Preact's (tsconfig `jsxImportSource`).
import { defineConfig } from "vite";

// `npm run dev` serves the page from Vite; proxying the API paths (and `/ws`) keeps the
// page same-origin there too, exactly as when `sutazai serve` hosts it.
const api = process.env.SUTAZAI_API ?? "http://127.0.0.1:8000";
const paths = [
  "/health",
  "/status",
  "/agents",
  "/tasks",
  "/messages",
  "/workers",
  "/infrastructure",
  "/analytics",
  "/alerts",
  "/monitoring",
  "/metrics",
  "/setup",
  "/models",
  "/settings",
  "/auth",
  "/audit",
];

export default defineConfig({
  base: "./",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
  },
  server: {
    proxy: {
      ...Object.fromEntries(paths.map((p) => [p, api])),
      "/ws": { target: api.replace(/^http/, "ws"), ws: true },
    },
  },
});
