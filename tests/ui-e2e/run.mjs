#!/usr/bin/env node
// End-to-end test of the SutazAI desktop window (issue 6, "What it must show"): drives the
// real app through tauri-driver and WebKitWebDriver (under Xvfb), against a real server and
// the real test model. It submits a task from the form and watches it complete in the task
// view with streamed tokens, cancels another, acknowledges a firing alert, defines an agent
// in the Agents view's editor (an invalid field refused first), edits and deletes it, and
// saves a screenshot of every view and of the agent editor.
//
// The harness (.ci/run → scripts/test.sh) starts the server, the test model, an X display and
// `tauri-driver`, then runs `node tests/ui-e2e/run.mjs` with:
//
//   WEBDRIVER_URL   the WebDriver server: tauri-driver (default http://127.0.0.1:4444)
//   SUTAZAI_APP     path of the app binary, sent as `tauri:options.application`
//                   (required unless E2E_CAPABILITIES replaces the capabilities)
//   SUTAZAI_API     the API base the app talks to (default http://127.0.0.1:8000); this script
//                   uses it to set up a firing alert and to cross-check what the window shows.
//                   `window`: read it from the page (`window.SUTAZAI_API`) once the window
//                   opened — for an app started with ORCHESTRATION_API_PORT=0
//   SHOTS_DIR       where the screenshots go (default /tmp/sutazai-shots): overview, agents,
//                   tasks, task, messages, infrastructure, analytics, alerts, agent-editor,
//                   welcome (.png); a failure adds failure.png
//
// Optional:
//   SUTAZAI_API_TOKEN   sent as `Authorization: Bearer …` on this script's API requests;
//                       `window`: the access token the desktop app gave its window
//                       (`window.SUTAZAI_AUTH`, when the app runs with ENABLE_AUTH=true)
//   E2E_TASK_TIMEOUT_S  how long the first task may take to complete (default 300)
//   E2E_TIMEOUT_S       how long the window may take to show anything else (default 60)
//   E2E_CAPABILITIES    JSON capabilities used instead of the tauri ones, e.g. to drive
//                       WebKitWebDriver with MiniBrowser for a dry run of this script
//   SUTAZAI_PAGE        a URL to open once the session started (with E2E_CAPABILITIES: the
//                       dashboard served by `sutazai serve` or `vite preview`)
//   WDIO_LOG_LEVEL      webdriverio's log level (default warn)
//
// Preconditions: the server has an agent with the capability `code_generation` and the
// test model answers. A firing, unacknowledged alert is used when there is one; otherwise
// this script makes the `host_memory_high` rule fire (memory above 0 %, at once) and puts
// the rule back at the end. The server writes user agents to its agent directory; the agent
// `e2e-reviewer` this script defines there is deleted at the end (and before, when an
// earlier run left it).
//
// Output: one line per step with its time; exit status 0 when every step passed, 1 with the
// failed step's reason otherwise, 2 for a configuration error.

import { mkdir } from "node:fs/promises";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { remote } from "webdriverio";

// --- configuration ---------------------------------------------------------------------------

class ConfigError extends Error {}

function config() {
  const env = process.env;
  const webdriver = new URL(env.WEBDRIVER_URL || "http://127.0.0.1:4444");
  let capabilities;
  if (env.E2E_CAPABILITIES) {
    try {
      capabilities = JSON.parse(env.E2E_CAPABILITIES);
    } catch (err) {
      throw new ConfigError(`E2E_CAPABILITIES is not JSON: ${err.message}`);
    }
  } else {
    if (!env.SUTAZAI_APP) throw new ConfigError("SUTAZAI_APP (the app binary tauri-driver starts) is not set");
    capabilities = { "tauri:options": { application: env.SUTAZAI_APP }, browserName: "wry" };
  }
  // tauri-driver and WebKitWebDriver speak WebDriver classic only: keep webdriverio v9 from
  // asking for a BiDi session (`webSocketUrl`).
  capabilities = { ...capabilities, "wdio:enforceWebDriverClassic": true };
  const seconds = (name, fallback) => {
    const n = Number(env[name] || fallback);
    if (!Number.isFinite(n) || n <= 0) throw new ConfigError(`${name} must be a number of seconds`);
    return n * 1000;
  };
  return {
    webdriver,
    capabilities,
    api: env.SUTAZAI_API === "window" ? "window" : (env.SUTAZAI_API || "http://127.0.0.1:8000").replace(/\/+$/, ""),
    token: env.SUTAZAI_API_TOKEN || "",
    shots: env.SHOTS_DIR || "/tmp/sutazai-shots",
    page: env.SUTAZAI_PAGE || "",
    taskTimeout: seconds("E2E_TASK_TIMEOUT_S", 300),
    timeout: seconds("E2E_TIMEOUT_S", 60),
    logLevel: env.WDIO_LOG_LEVEL || "warn",
  };
}

// --- output ----------------------------------------------------------------------------------

const started = performance.now();

function secs(ms) {
  return `${(ms / 1000).toFixed(2)}s`.padStart(8);
}

function say(mark, ms, text) {
  console.log(`[ui-e2e] ${mark.padEnd(4)} ${ms === null ? "".padStart(8) : secs(ms)}  ${text}`);
}

/** A failed expectation: its message is the whole story. */
class Failure extends Error {}

/** Runs one step and prints its line: `ok`, the time it took, and the note `fn` returned. */
async function step(name, fn) {
  const t0 = performance.now();
  try {
    const note = await fn();
    say("ok", performance.now() - t0, note ? `${name}: ${note}` : name);
  } catch (thrown) {
    const err = thrown instanceof Error ? thrown : new Failure(String(thrown));
    say("FAIL", performance.now() - t0, `${name}: ${err.message}`);
    err.step = name;
    throw err;
  }
}

// --- the API, for preconditions and cross-checks --------------------------------------------

function apiClient(cfg) {
  return async function call(method, route, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (cfg.token) headers.Authorization = `Bearer ${cfg.token}`;
    let response;
    try {
      response = await fetch(`${cfg.api}${route}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(15_000),
      });
    } catch (err) {
      throw new Failure(`${method} ${cfg.api}${route}: the API is not reachable (${err.cause?.message ?? err.message})`);
    }
    const text = await response.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      // Not JSON: reported below when it matters.
    }
    if (!response.ok) {
      const why = json && typeof json.message === "string" ? `${json.code}: ${json.message}` : text.slice(0, 200);
      const failure = new Failure(`${method} ${route} answered HTTP ${response.status} (${why})`);
      failure.status = response.status;
      throw failure;
    }
    return json;
  };
}

async function sleep(ms) {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `probe` every `every` ms until it returns something truthy; throws `message()` after `ms`. */
async function until(ms, probe, message, every = 250) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Failure(typeof message === "function" ? await message() : message);
    await sleep(every);
  }
}

// --- the window ------------------------------------------------------------------------------

const tid = (id) => `[data-testid="${id}"]`;

/** What the page shows, read in one round trip (fewer stale-element races than many `$`). */
async function pageState(browser) {
  return browser.execute(() => {
    const q = (s) => document.querySelector(s);
    const text = (el) => (el ? (el.textContent || "").trim() : "");
    const status = q('[data-testid="task-status"]');
    const streams = [...document.querySelectorAll('[data-testid="token-stream"] .stream-text')];
    // An ErrorNote is the API's message in a <span>, then its code.
    const message = (el) => (el ? `${text(el.querySelector("span") ?? el)}${el.dataset.code ? ` (${el.dataset.code})` : ""}` : "");
    const errors = [...document.querySelectorAll('[data-testid="error"], [data-testid="task-error"]')].map(message);
    return {
      hash: location.hash,
      h1: text(q("main h1")),
      loading: [...document.querySelectorAll("main .empty")].some((e) => /^Loading/.test(text(e))),
      taskId: q('[data-testid="task-view"]')?.getAttribute("data-task-id") ?? null,
      taskStatus: status ? status.getAttribute("data-status") : null,
      streamed: streams.reduce((n, e) => n + (e.textContent || "").length, 0),
      cancel: Boolean(q('[data-testid="cancel-button"]')),
      connection: text(q('[data-testid="connection"]')),
      welcome: Boolean(q('[data-testid="welcome"]')),
      doctorChecks: document.querySelectorAll('[data-testid="doctor-check"]').length,
      welcomeError: message(q('[data-testid="welcome"] [data-testid="error"]')),
      welcomeBusy: Boolean(q('[data-testid="doctor-rerun"][aria-busy="true"]')),
      agentForm: q('[data-testid="agent-form"]')?.getAttribute("data-mode") ?? null,
      agentFormError: message(q('[data-testid="agent-form-error"] [data-testid="error"]')),
      agentFieldErrors: [...document.querySelectorAll('[data-testid^="agent-error-"]')].map(
        (e) => `${e.dataset.testid.replace("agent-error-", "")}: ${text(e)}`,
      ),
      notice: text(q('[data-testid="notice-toast"] .toast-text')),
      errors,
    };
  });
}

async function shoot(browser, cfg, name) {
  const file = path.join(cfg.shots, `${name}.png`);
  await browser.saveScreenshot(file);
  return file;
}

/** Opens a view from the sidebar and waits until it stopped loading. */
async function openView(browser, cfg, view, ready) {
  await (await browser.$(tid(`nav-${view}`))).click();
  await until(cfg.timeout, async () => (await pageState(browser)).hash.startsWith(`#/${view}`), `#/${view} did not open`);
  if (ready) {
    await (await browser.$(ready)).waitForExist({ timeout: cfg.timeout, timeoutMsg: `${ready} did not appear in ${view}` });
  }
  // Lists load after the view shows; a view still "Loading…" after the limit is shot as it is.
  await until(cfg.timeout, async () => !(await pageState(browser)).loading, "still loading").catch(() => undefined);
  await sleep(500); // charts draw at most once a second
}

async function setValue(browser, id, value) {
  const el = await browser.$(tid(id));
  await el.waitForDisplayed({ timeoutMsg: `${tid(id)} is not shown` });
  await el.setValue(value);
}

/** Sets a field as a person's typing would end up, without typing each key (long text, selects). */
async function setFieldValue(browser, id, value) {
  const done = await browser.execute(
    (selector, v) => {
      const el = document.querySelector(selector);
      if (!el) return false;
      el.value = v;
      el.dispatchEvent(new Event(el.tagName === "SELECT" ? "change" : "input", { bubbles: true }));
      return el.value === v;
    },
    tid(id),
    value,
  );
  if (!done) throw new Failure(`could not set ${tid(id)} to ${JSON.stringify(value).slice(0, 40)}`);
}

/** Clicks a control after closing the toasts, which sit in the bottom-right corner and may cover it. */
async function press(browser, id) {
  await browser.execute(() => document.querySelectorAll(".toast-close").forEach((b) => b.click()));
  const el = await browser.$(tid(id));
  await el.waitForDisplayed({ timeoutMsg: `${tid(id)} is not shown` });
  await el.click();
}

/** Saves the agent editor and waits until it closed; resolves to the toast it left. */
async function saveAgent(browser, cfg) {
  await press(browser, "agent-save");
  const s = await until(
    cfg.timeout,
    async () => {
      const s = await pageState(browser);
      if (s.agentFormError) throw new Failure(`the editor shows an error: ${s.agentFormError}`);
      if (s.agentFieldErrors.length > 0) throw new Failure(`the editor refused a field: ${s.agentFieldErrors.join("; ")}`);
      return s.agentForm === null ? s : null;
    },
    async () => `the editor is still open after saving (${(await pageState(browser)).errors.join(" | ") || "no error shown"})`,
  );
  return s.notice || "no toast";
}

/** Whether `GET /agents/{id}` knows the agent; false on 404, other failures thrown. */
async function agentExists(api, id) {
  return api("GET", `/agents/${encodeURIComponent(id)}`).then(
    () => true,
    (err) => {
      if (err.status === 404) return false;
      throw err;
    },
  );
}

/** Fills the task form (the Tasks view is open) and submits it; resolves to the new task's id. */
async function submitTask(browser, cfg, fields) {
  const option = await browser.$(`${tid("task-requirement-option")}[value="${fields.requirement}"]`);
  await option.waitForExist({
    timeout: cfg.timeout,
    timeoutMsg: `the form offers no capability ${fields.requirement} (no agent has it, or /agents failed)`,
  });
  await setValue(browser, "task-name", fields.name);
  if (fields.description.length > 300) await setFieldValue(browser, "task-description", fields.description);
  else await setValue(browser, "task-description", fields.description);
  await setFieldValue(browser, "task-pattern", fields.pattern);
  await option.scrollIntoView();
  if (!(await option.isSelected())) await option.click();
  await setValue(browser, "task-max-agents", String(fields.maxAgents));
  const before = (await pageState(browser)).hash;
  await (await browser.$(tid("task-submit"))).click();
  const state = await until(
    cfg.timeout,
    async () => {
      const s = await pageState(browser);
      return s.taskId && s.hash !== before ? s : null;
    },
    async () => {
      const s = await pageState(browser);
      return `the task view did not open after submitting (${s.errors.join(" | ") || "no error shown"})`;
    },
  );
  return state.taskId;
}

// --- the run ---------------------------------------------------------------------------------

const LONG_DESCRIPTION = [
  "Write a long, detailed, step-by-step tutorial (at least 3000 words) on building a command-line",
  "todo application in Python. Cover: project layout; argument parsing with argparse; storing",
  "items in a JSON file; adding, listing, completing and deleting items; error handling for a",
  "missing or corrupt file; unit tests with unittest for every command; packaging with",
  "pyproject.toml; and a closing section on possible extensions. Give full code for every step",
  "and explain each function line by line.",
  ...Array.from(
    { length: 12 },
    (_, i) =>
      `Section ${i + 1} must end with a short summary, a list of common mistakes, and an exercise for the reader.`,
  ),
].join(" ");

/** The user agent the editor steps define, and its prompt (non-ASCII on purpose). */
const E2E_AGENT = "e2e-reviewer";
const E2E_PROMPT =
  "You review changes made by the SutazAI end-to-end test.\nAnswer in one short sentence — café, naïve, 日本語 are fine.";

async function main() {
  let cfg;
  try {
    cfg = config();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`[ui-e2e] configuration: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  const api = apiClient(cfg);
  const stamp = new Date().toISOString().replace(/[-:]/g, "").slice(0, 15);
  let browser = null;
  let restoreRule = null;
  let alertId = null;
  let agentDefined = false;

  say("", null, `WebDriver ${cfg.webdriver.href} · API ${cfg.api} · screenshots in ${cfg.shots}`);
  try {
    // The window first: the app under test runs the API, and starts with the session.
    await step("open the window", async () => {
      const port = cfg.webdriver.port ? Number(cfg.webdriver.port) : cfg.webdriver.protocol === "https:" ? 443 : 80;
      browser = await remote({
        protocol: cfg.webdriver.protocol.replace(":", ""),
        hostname: cfg.webdriver.hostname,
        port,
        path: cfg.webdriver.pathname || "/",
        capabilities: cfg.capabilities,
        logLevel: cfg.logLevel,
        connectionRetryTimeout: 120_000,
        connectionRetryCount: 1,
        waitforTimeout: cfg.timeout,
      });
      if (cfg.page) await browser.url(cfg.page);
      const caps = browser.capabilities;
      let where = "";
      if (cfg.api === "window") {
        // The app picked its own port: the page knows the address its API answers on.
        const base = await until(cfg.timeout, () => browser.execute(() => window.SUTAZAI_API ?? null), "the page has no window.SUTAZAI_API", 100);
        if (typeof base !== "string" || !/^https?:\/\//.test(base)) throw new Failure(`window.SUTAZAI_API is ${JSON.stringify(base)}`);
        cfg.api = base.replace(/\/+$/, "");
        where = `, API ${cfg.api}`;
      }
      if (cfg.token === "window") {
        const auth = await until(cfg.timeout, () => browser.execute(() => window.SUTAZAI_AUTH ?? null), "the app gave its window no session (window.SUTAZAI_AUTH)", 100);
        if (typeof auth.access_token !== "string") throw new Failure("window.SUTAZAI_AUTH has no access_token");
        cfg.token = auth.access_token;
        where += ", signed in by the app (token from the window)";
      }
      return `session ${browser.sessionId} (${caps.browserName ?? "?"} ${caps.browserVersion ?? ""})${where}`.trim();
    });

    await step("API answers", async () => {
      await mkdir(cfg.shots, { recursive: true });
      const status = await until(
        cfg.timeout,
        async () => api("GET", "/status").catch(() => null),
        `the API at ${cfg.api} did not answer within ${cfg.timeout / 1000} s`,
        250,
      );
      const agents = await api("GET", "/agents");
      const coders = (agents.agents ?? []).filter((a) => a.capabilities.includes("code_generation") && a.status !== "stopped");
      if (coders.length === 0) throw new Failure("no running agent has the capability code_generation");
      return `${status.status}, ${agents.agents.length} agents, model ${status.llm?.model} ${
        status.llm?.model_available ? "available" : "NOT available"
      }`;
    });

    await step("a firing alert to acknowledge", async () => {
      const firing = (await api("GET", "/alerts?status=firing&limit=100")).alerts ?? [];
      const open = firing.find((a) => a.status === "firing" && !a.acknowledged);
      if (open) {
        alertId = String(open.id);
        return `alert ${alertId} (${open.rule_id}) was firing already`;
      }
      const { rules } = await api("GET", "/alerts?limit=1");
      const rule = rules.find((r) => r.id === "host_memory_high") ?? rules.find((r) => r.metric === "memory_percent");
      if (!rule) throw new Failure("no alert fires and there is no memory_percent rule to make one fire");
      await api("PUT", `/alerts/rules/${encodeURIComponent(rule.id)}`, {
        ...rule,
        comparison: "above",
        threshold: 0,
        for_seconds: 0,
        enabled: true,
      });
      restoreRule = rule;
      const fired = await until(
        cfg.timeout,
        async () => {
          const list = (await api("GET", "/alerts?status=firing&limit=100")).alerts ?? [];
          return list.find((a) => a.rule_id === rule.id && !a.acknowledged);
        },
        `rule ${rule.id} (memory above 0 %) did not fire within ${cfg.timeout / 1000} s`,
        1000,
      );
      alertId = String(fired.id);
      return `made rule ${rule.id} fire: alert ${alertId}`;
    });

    await step("dashboard shows, live over /ws", async () => {
      await (await browser.$(tid("nav-overview"))).waitForExist({
        timeout: cfg.timeout,
        timeoutMsg: "no sidebar: the dashboard did not load",
      });
      const s = await until(
        cfg.timeout,
        async () => {
          const s = await pageState(browser);
          return s.connection === "live" ? s : null;
        },
        async () => `the header says "${(await pageState(browser)).connection}", not "live": the window cannot reach the API`,
      );
      return s.welcome ? "the welcome flow opened (first launch)" : `opened at ${s.hash || "#/"}`;
    });

    await step("welcome flow: checks, screenshot, dismiss", async () => {
      let s = await pageState(browser);
      const shownAtStart = s.welcome;
      if (!shownAtStart) await openView(browser, cfg, "welcome", tid("welcome"));
      s = await until(
        cfg.timeout + 10_000,
        async () => {
          const s = await pageState(browser);
          return (s.doctorChecks > 0 || s.welcomeError) && !s.welcomeBusy ? s : null;
        },
        "the doctor checks showed neither a result nor an error",
      );
      await sleep(300);
      await shoot(browser, cfg, "welcome");
      await (await browser.$(tid("welcome-done"))).click();
      await until(cfg.timeout, async () => !(await pageState(browser)).welcome, "the welcome flow did not close");
      const flag = await browser.execute(() => window.localStorage.getItem("sutazai.welcome.done"));
      if (!flag) throw new Failure('closing the welcome flow did not set localStorage["sutazai.welcome.done"]');
      const checks = s.doctorChecks > 0 ? `${s.doctorChecks} checks` : `doctor: ${s.welcomeError}`;
      return `${shownAtStart ? "shown at start" : "opened from the sidebar"}, ${checks}, dismissed`;
    });

    await step("overview", async () => {
      await openView(browser, cfg, "overview", tid("health-cards"));
      await shoot(browser, cfg, "overview");
    });

    await step("agents", async () => {
      await openView(browser, cfg, "agents", tid("agent-row"));
      const rows = (await browser.$$(tid("agent-row"))).length;
      await shoot(browser, cfg, "agents");
      return `${rows} agents listed`;
    });

    let firstTask = null;
    await step("submit a task from the form", async () => {
      await openView(browser, cfg, "tasks", tid("task-form"));
      const fields = {
        name: `e2e pipeline ${stamp}`,
        description: "Reply with one short friendly sentence that greets the SutazAI end-to-end test.",
        pattern: "pipeline",
        requirement: "code_generation",
        maxAgents: 1,
      };
      const option = await browser.$(`${tid("task-requirement-option")}[value="${fields.requirement}"]`);
      await option.waitForExist({ timeout: cfg.timeout, timeoutMsg: "the form offers no capability code_generation" });
      await shoot(browser, cfg, "tasks");
      firstTask = await submitTask(browser, cfg, fields);
      return `task ${firstTask}`;
    });

    await step("tokens stream into the task view", async () => {
      const t0 = performance.now();
      const s = await until(
        cfg.taskTimeout,
        async () => {
          const s = await pageState(browser);
          if (s.streamed > 0) return s;
          if (["completed", "failed", "cancelled"].includes(s.taskStatus)) {
            throw new Failure(`the task ended ${s.taskStatus} before any token showed in token-stream`);
          }
          return null;
        },
        "no token arrived in token-stream",
        100,
      );
      return `first tokens after ${secs(performance.now() - t0).trim()} (${s.streamed} characters so far)`;
    });

    await step("the task completes", async () => {
      const s = await until(
        cfg.taskTimeout,
        async () => {
          const s = await pageState(browser);
          if (s.taskStatus === "failed" || s.taskStatus === "cancelled") {
            throw new Failure(`the task ended ${s.taskStatus}: ${s.errors.join(" | ") || "no error shown"}`);
          }
          return s.taskStatus === "completed" ? s : null;
        },
        async () => `the task is still ${(await pageState(browser)).taskStatus} after ${cfg.taskTimeout / 1000} s`,
      );
      await (await browser.$(`${tid("task-status")}[data-status="completed"]`)).waitForExist();
      await shoot(browser, cfg, "task");
      const task = await api("GET", `/tasks/${encodeURIComponent(firstTask)}`);
      if (task.status !== "completed") throw new Failure(`the window says completed, GET /tasks/${firstTask} says ${task.status}`);
      const tokens = (task.steps ?? []).reduce((n, st) => n + (st.completion_tokens ?? 0), 0);
      return `completed; ${s.streamed} characters streamed, ${tokens} completion tokens per the API`;
    });

    await step("cancel a second task from its view", async () => {
      await openView(browser, cfg, "tasks", tid("task-form"));
      const id = await submitTask(browser, cfg, {
        name: `e2e cancel ${stamp}`,
        description: LONG_DESCRIPTION,
        pattern: "pipeline",
        requirement: "code_generation",
        maxAgents: 1,
      });
      const button = await browser.$(tid("cancel-button"));
      await button.waitForDisplayed({
        timeout: cfg.timeout,
        timeoutMsg: "no cancel button: the task ended before it could be cancelled",
      });
      await button.click();
      await until(
        cfg.timeout,
        async () => {
          const s = await pageState(browser);
          if (s.taskStatus === "completed" || s.taskStatus === "failed") {
            throw new Failure(`the task ended ${s.taskStatus} instead of cancelled`);
          }
          return s.taskStatus === "cancelled";
        },
        async () => {
          const s = await pageState(browser);
          return `the task is ${s.taskStatus}, not cancelled (${s.errors.join(" | ") || "no error shown"})`;
        },
      );
      const task = await api("GET", `/tasks/${encodeURIComponent(id)}`);
      if (task.status !== "cancelled") throw new Failure(`the window says cancelled, GET /tasks/${id} says ${task.status}`);
      return `task ${id} cancelled`;
    });

    for (const view of ["messages", "infrastructure", "analytics"]) {
      await step(view, async () => {
        await openView(browser, cfg, view);
        await shoot(browser, cfg, view);
      });
    }

    await step("acknowledge the firing alert", async () => {
      await openView(browser, cfg, "alerts", tid("alert-history"));
      const row = `${tid("alert-row")}[data-alert-id="${alertId}"]`;
      const firing = await browser.$(`${row}[data-status="firing"]`);
      await firing.waitForExist({
        timeout: cfg.timeout,
        timeoutMsg: `alert ${alertId} is not listed as firing (alert-row[data-status=firing])`,
      });
      const ack = await browser.$(`${row} ${tid("alert-ack")}`);
      await ack.waitForDisplayed({ timeoutMsg: `alert ${alertId} has no acknowledge button` });
      await ack.click();
      await (await browser.$(`${row} ${tid("alert-acknowledged")}`)).waitForExist({
        timeout: cfg.timeout,
        timeoutMsg: `alert ${alertId} does not show as acknowledged`,
      });
      await shoot(browser, cfg, "alerts");
      const { alerts } = await api("GET", "/alerts?limit=1000");
      const stored = (alerts ?? []).find((a) => String(a.id) === alertId);
      if (!stored) throw new Failure(`GET /alerts does not list alert ${alertId}`);
      if (!stored.acknowledged) throw new Failure(`the window says acknowledged, GET /alerts says alert ${alertId} is not`);
      return `alert ${alertId} acknowledged; GET /alerts agrees`;
    });

    await step("define an agent in the editor", async () => {
      if (await agentExists(api, E2E_AGENT)) await api("DELETE", `/agents/${E2E_AGENT}`);
      await openView(browser, cfg, "agents", tid("agent-row"));
      await press(browser, "agent-new");
      await (await browser.$(`${tid("agent-form")}[data-mode="new"]`)).waitForDisplayed({
        timeout: cfg.timeout,
        timeoutMsg: "New agent opened no editor (agent-form[data-mode=new])",
      });
      agentDefined = true;
      await setValue(browser, "agent-field-id", E2E_AGENT);
      await setValue(browser, "agent-field-name", "E2E Reviewer");
      await setFieldValue(browser, "agent-field-category", "development");
      await setFieldValue(browser, "agent-field-role", "specialist");
      await setValue(browser, "agent-field-capabilities", "e2e_review");
      await setFieldValue(browser, "agent-field-system_prompt", E2E_PROMPT);
      await setValue(browser, "agent-field-temperature", "5");
      await press(browser, "agent-save");
      const error = await browser.$(tid("agent-error-temperature"));
      await error.waitForDisplayed({
        timeout: cfg.timeout,
        timeoutMsg: "temperature 5 is not marked invalid (agent-error-temperature)",
      });
      const refusal = await error.getText();
      const counter = await (await browser.$(tid("agent-prompt-count"))).getText();
      await browser.execute(() => document.querySelector('[data-testid="agent-editor"]').scrollIntoView());
      await shoot(browser, cfg, "agent-editor");
      if (await agentExists(api, E2E_AGENT)) {
        throw new Failure(`the editor refused temperature 5, yet GET /agents/${E2E_AGENT} finds the agent`);
      }
      await setValue(browser, "agent-field-temperature", "0.4");
      await error.waitForExist({ reverse: true, timeoutMsg: "the temperature error stayed after the temperature was fixed" });
      const toast = await saveAgent(browser, cfg);
      const agent = await api("GET", `/agents/${E2E_AGENT}`);
      if (!String(agent.source).endsWith(`${E2E_AGENT}.toml`)) {
        throw new Failure(`GET /agents/${E2E_AGENT} says it is defined in ${agent.source}, not in a file ${E2E_AGENT}.toml`);
      }
      const { definition } = await api("GET", `/agents/${E2E_AGENT}/definition`);
      const wrong = [
        definition.name !== "E2E Reviewer" && `name ${definition.name}`,
        definition.role !== "specialist" && `role ${definition.role}`,
        JSON.stringify(definition.capabilities) !== '["e2e_review"]' && `capabilities ${definition.capabilities}`,
        definition.system_prompt !== E2E_PROMPT && "another system prompt",
        Math.abs(definition.temperature - 0.4) > 1e-6 && `temperature ${definition.temperature}`,
      ].filter(Boolean);
      if (wrong.length > 0) throw new Failure(`GET /agents/${E2E_AGENT}/definition has ${wrong.join(", ")}`);
      return `temperature 5 refused ("${refusal}", prompt ${counter}), nothing created; saved as ${agent.source} (toast: ${toast})`;
    });

    await step("edit the agent in the editor", async () => {
      await press(browser, `agent-edit-${E2E_AGENT}`);
      await (await browser.$(`${tid("agent-form")}[data-mode="edit"]`)).waitForDisplayed({
        timeout: cfg.timeout,
        timeoutMsg: `Edit opened no editor for ${E2E_AGENT} (agent-form[data-mode=edit])`,
      });
      const id = await browser.$(tid("agent-field-id"));
      if ((await id.getValue()) !== E2E_AGENT) throw new Failure(`the editor's id field says "${await id.getValue()}"`);
      if ((await id.getAttribute("readonly")) === null) throw new Failure("the id can be changed while editing");
      const before = await (await browser.$(tid("agent-field-max_concurrency"))).getValue();
      await setValue(browser, "agent-field-max_concurrency", "3");
      const toast = await saveAgent(browser, cfg);
      const agent = await api("GET", `/agents/${E2E_AGENT}`);
      if (agent.max_concurrency !== 3) {
        throw new Failure(`saved max_concurrency 3, GET /agents/${E2E_AGENT} says ${agent.max_concurrency}`);
      }
      const { definition } = await api("GET", `/agents/${E2E_AGENT}/definition`);
      if (definition.system_prompt !== E2E_PROMPT || JSON.stringify(definition.capabilities) !== '["e2e_review"]') {
        throw new Failure(`the edit changed more than max_concurrency: ${JSON.stringify(definition).slice(0, 200)}`);
      }
      return `max_concurrency ${before} → 3; GET /agents/${E2E_AGENT} agrees (toast: ${toast})`;
    });

    await step("delete the agent from the editor", async () => {
      await press(browser, `agent-edit-${E2E_AGENT}`);
      await press(browser, `agent-delete-${E2E_AGENT}`);
      await press(browser, "agent-delete-confirm");
      await until(
        cfg.timeout,
        async () => {
          const s = await pageState(browser);
          if (s.agentFormError) throw new Failure(`the editor shows an error: ${s.agentFormError}`);
          return s.agentForm === null;
        },
        "the editor is still open after deleting",
      );
      if (await agentExists(api, E2E_AGENT)) throw new Failure(`deleted in the window, yet GET /agents/${E2E_AGENT} finds it`);
      agentDefined = false;
      await (await browser.$(tid(`agent-edit-${E2E_AGENT}`))).waitForExist({
        reverse: true,
        timeout: cfg.timeout,
        timeoutMsg: `the registry still lists ${E2E_AGENT}`,
      });
      return `${E2E_AGENT} deleted; GET /agents/${E2E_AGENT} answers 404`;
    });

    await step("edit the alert delivery settings", async () => {
      await openView(browser, cfg, "alerts", tid("settings-form"));
      const before = await api("GET", "/settings");
      // A webhook the user configured cannot be put back (it is never shown): leave it be.
      if (before.slack.enabled) return "skipped: Slack is configured on this server, and its webhook cannot be restored";
      const formErrors = () =>
        browser.execute(() =>
          [...document.querySelectorAll('[data-testid="settings-form"] .field-error')].map((e) => e.textContent),
        );
      // A URL the environment fixes cannot be edited here, and says why.
      const locked = before.providers.find((p) => p.locked_by);
      if (locked) {
        const input = await browser.$(tid(`settings-url-${locked.name}`));
        if (await input.isEnabled()) throw new Failure(`${locked.name}'s URL is set by ${locked.locked_by}, yet editable`);
      }
      // A webhook that is not a URL: refused in the form, nothing saved.
      await setValue(browser, "settings-slack-webhook", "hooks.example");
      await press(browser, "settings-save");
      await until(cfg.timeout, async () => (await formErrors()).length > 0, "no field error for a webhook that is not a URL");
      if ((await api("GET", "/settings")).slack.enabled !== before.slack.enabled)
        throw new Failure("an invalid webhook changed the settings");
      // A real one: saved to the config file and applied.
      await setValue(browser, "settings-slack-webhook", "http://127.0.0.1:9/e2e-hook");
      await press(browser, "settings-save");
      await (await browser.$(tid("settings-saved"))).waitForDisplayed({
        timeout: cfg.timeout,
        timeoutMsg: `no "saved" note after saving (${(await formErrors()).join("; ") || "no field error"})`,
      });
      const on = await api("GET", "/settings");
      if (!on.slack.enabled) throw new Failure("saved in the window, yet GET /settings says Slack is off");
      if (JSON.stringify(on).includes("e2e-hook")) throw new Failure("GET /settings answers the webhook URL, a secret");
      await shoot(browser, cfg, "settings");
      // And off again.
      await press(browser, "settings-slack-off");
      await press(browser, "settings-save");
      await until(cfg.timeout, async () => !(await api("GET", "/settings")).slack.enabled, "Slack is still on after switching it off");
      return `Slack webhook refused while invalid, saved to ${on.config_file} (secret not answered), switched off again${
        locked ? `; ${locked.name}'s URL locked by ${locked.locked_by}` : ""
      }`;
    });

    await step("access: an API key made and revoked in the window, the audit chain verified", async () => {
      const whoami = await api("GET", "/auth/whoami");
      if (!whoami.auth_enabled) return "skipped: authentication is off on this server";
      const who = await browser.$(tid("whoami"));
      await who.waitForDisplayed({ timeout: cfg.timeout, timeoutMsg: "the header does not show who is signed in" });
      const subject = await browser.execute(() => document.querySelector('[data-testid="whoami"] .whoami-subject')?.textContent ?? "");
      const shown = `${subject} (${await who.getAttribute("data-role")})`;
      if (subject !== whoami.subject) throw new Failure(`the header names ${subject}, the server ${whoami.subject}`);
      await openView(browser, cfg, "alerts", tid("key-form"));
      // An old run's key of the same name would make the name taken.
      for (const k of (await api("GET", "/auth/keys")).keys)
        if (k.name === "e2e-viewer" && !k.revoked_at) await api("DELETE", `/auth/keys/${encodeURIComponent(k.id)}`);
      await setValue(browser, "key-name", "e2e-viewer");
      await setFieldValue(browser, "key-role", "viewer");
      await press(browser, "key-create");
      const secretEl = await browser.$(tid("key-secret"));
      await secretEl.waitForDisplayed({ timeout: cfg.timeout, timeoutMsg: "the new key's secret was not shown" });
      const secret = (await secretEl.getText()).trim();
      if (!/^szk_[A-Za-z0-9_-]{43}$/.test(secret)) throw new Failure(`the shown key does not look like one: ${secret.slice(0, 8)}…`);
      await shoot(browser, cfg, "access");
      // The key works, with its role: reads yes, changes no.
      const asKey = apiClient({ ...cfg, token: secret });
      const agents = await asKey("GET", "/agents");
      const refused = await asKey("POST", "/tasks", { description: "must be refused" }).then(
        () => null,
        (err) => err,
      );
      if (!refused || !String(refused.message).includes("HTTP 403")) throw new Failure(`a viewer key could submit a task: ${refused?.message ?? "201"}`);
      const listed = (await api("GET", "/auth/keys")).keys.find((k) => k.name === "e2e-viewer" && !k.revoked_at);
      if (!listed) throw new Failure("GET /auth/keys does not list the key made in the window");
      if (JSON.stringify(listed).includes(secret.slice(12))) throw new Failure("GET /auth/keys answers the key's secret");
      await press(browser, "key-created-done").catch(() => undefined);
      await press(browser, `key-revoke-${listed.id}`);
      await press(browser, "key-revoke-confirm");
      await until(cfg.timeout, async () => (await asKey("GET", "/agents").then(() => false, (err) => String(err.message).includes("HTTP 401"))), "the revoked key still works");
      await press(browser, "audit-verify");
      const verdict = await browser.$(tid("audit-verify-result"));
      await verdict.waitForDisplayed({ timeout: cfg.timeout, timeoutMsg: "no verification result shown" });
      if ((await verdict.getAttribute("data-ok")) !== "true") throw new Failure(`the audit chain is reported broken: ${await verdict.getText()}`);
      await verdict.scrollIntoView();
      await shoot(browser, cfg, "audit");
      return `signed in as ${shown}; key ${secret.slice(0, 12)}… made in the Access panel (${agents.agents.length} agents readable with it, POST /tasks 403), revoked there (then 401); "${await verdict.getText()}"`;
    });

    say("PASS", performance.now() - started, "every step passed");
    return 0;
  } catch (err) {
    if (!(err instanceof Failure) && !err.step) console.error(err);
    if (browser) {
      await browser
        .saveScreenshot(path.join(cfg.shots, "failure.png"))
        .then(() => say("", null, `screenshot of the failure: ${path.join(cfg.shots, "failure.png")}`))
        .catch(() => undefined);
    }
    say("FAIL", performance.now() - started, err.step ? `step "${err.step}" failed` : String(err));
    return 1;
  } finally {
    if (restoreRule) {
      await api("PUT", `/alerts/rules/${encodeURIComponent(restoreRule.id)}`, restoreRule).then(
        () => say("", null, `rule ${restoreRule.id} put back`),
        (err) => say("warn", null, `rule ${restoreRule.id} could not be put back: ${err.message}`),
      );
    }
    if (agentDefined) {
      await api("DELETE", `/agents/${E2E_AGENT}`).then(
        () => say("", null, `agent ${E2E_AGENT} deleted`),
        (err) => err.status === 404 || say("warn", null, `agent ${E2E_AGENT} could not be deleted: ${err.message}`),
      );
    }
    if (browser) await browser.deleteSession().catch(() => undefined);
  }
}

process.exitCode = await main();
