#!/usr/bin/env node
// SutazAI's test LLM server: a real model (a small GGUF run by node-llama-cpp on the CPU)
// behind the two wire protocols SutazAI speaks to LLM runtimes:
//   - Ollama's native API: /api/chat (NDJSON streaming), /api/tags, /api/show,
//     /api/version, /api/pull (streamed progress);
//   - the OpenAI-compatible API: /v1/chat/completions (SSE streaming), /v1/models.
// Plus test introspection (/_test/requests, /_test/stats) so tests can see what reached the
// server: which chat requests were aborted by their client, which step header they carried.
//
// It exists so the Rust LLM client and everything above it are tested against real
// streaming, real tokenisation, real grammar-constrained JSON and real client disconnects,
// without needing an Ollama install or network access.
//
// Usage: node server.mjs --model PATH [--model-name smollm2:135m] [--port 0]
//          [--token-delay-ms 0] [--parallel 2] [--ctx-size 2048] [--exit-on-stdin-close]
// Prints exactly one line to stdout, `listening on http://127.0.0.1:PORT`, once the model is
// loaded and the socket accepts connections; all diagnostics go to stderr.
//
// Differences from a real Ollama worth knowing: one model is served and it is always
// loaded; `options.num_ctx` is validated but the context size is fixed at startup
// (--ctx-size, per parallel slot); `/api/pull` of the served model replays Ollama's
// progress sequence over the real file's digest and size instead of downloading.

import http from "node:http";
import { parseArgs } from "node:util";
import { AbortedError, BadRequestError, Engine } from "/work/main/tests/llm-server/engine.mjs";

const OLLAMA_VERSION = "0.12.0";
const MAX_BODY_BYTES = 8 * 1024 * 1024;
const OLLAMA_DEFAULT_TEMPERATURE = 0.8;
const OPENAI_DEFAULT_TEMPERATURE = 1.0;

// ---------------------------------------------------------------------------------------
// Command line

function parseCli() {
  const { values } = parseArgs({
    options: {
      model: { type: "string" },
      "model-name": { type: "string", default: "smollm2:135m" },
      port: { type: "string", default: "0" },
      "token-delay-ms": { type: "string", default: "0" },
      parallel: { type: "string", default: "2" },
      "ctx-size": { type: "string", default: "2048" },
      "exit-on-stdin-close": { type: "boolean", default: false },
    },
    strict: true,
  });
  const int = (name, min, max) => {
    const raw = values[name];
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new Error(`--${name} must be an integer in ${min}..${max}, got ${JSON.stringify(raw)}`);
    }
    return n;
  };
  const modelPath = values.model ?? process.env.SUTAZAI_TEST_MODEL;
  if (!modelPath) throw new Error("no model: pass --model PATH or set SUTAZAI_TEST_MODEL");
  return {
    modelPath,
    modelName: values["model-name"],
    port: int("port", 0, 65535),
    tokenDelayMs: int("token-delay-ms", 0, 60_000),
    parallel: int("parallel", 1, 64),
    ctxSize: int("ctx-size", 256, 131_072),
    exitOnStdinClose: values["exit-on-stdin-close"],
  };
}

// ---------------------------------------------------------------------------------------
// Small HTTP helpers

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function sendJson(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

async function readJsonBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, "request body too large");
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  if (text.trim() === "") throw new HttpError(400, "missing request body");
  let body;
  try {
    body = JSON.parse(text);
  } catch (e) {
    throw new HttpError(400, `invalid JSON body: ${e.message}`);
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new HttpError(400, "request body must be a JSON object");
  }
  return body;
}

const nowIso = () => new Date().toISOString();

function optNumber(obj, key, where) {
  const v = obj?.[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new HttpError(400, `${where}${key} must be a number`);
  }
  return v;
}

function optInt(obj, key, where) {
  const v = optNumber(obj, key, where);
  if (v !== undefined && !Number.isInteger(v)) throw new HttpError(400, `${where}${key} must be an integer`);
  return v;
}

function optBool(obj, key, dflt) {
  const v = obj[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== "boolean") throw new HttpError(400, `${key} must be a boolean`);
  return v;
}

// ---------------------------------------------------------------------------------------
// The server

function createServer(engine, cfg) {
  /** Every chat request so far, in arrival order (GET /_test/requests). */
  const records = [];
  let active = 0;
  let completionIds = 0;

  /** Ollama resolves "name" as "name:latest"; we do the same so both spellings find the model. */
  const canonical = (name) => (name.includes(":") ? name : `${name}:latest`);
  const isServed = (name) => typeof name === "string" && canonical(name) === canonical(cfg.modelName);
  const notFound = (name) => `model "${name}" not found, try pulling it first`;

  function modelEntry() {
    return {
      name: cfg.modelName,
      model: cfg.modelName,
      modified_at: engine.modified.toISOString(),
      size: engine.size,
      digest: engine.digest,
      details: engine.details(),
    };
  }

  function validateMessages(messages, openai) {
    if (!Array.isArray(messages)) throw new HttpError(400, "messages must be an array");
    return messages.map((m, i) => {
      if (m === null || typeof m !== "object") throw new HttpError(400, `messages[${i}] must be an object`);
      const role = m.role === "developer" && openai ? "system" : m.role;
      if (!["system", "user", "assistant"].includes(role)) {
        throw new HttpError(400, `messages[${i}].role must be system, user or assistant, got ${JSON.stringify(m.role)}`);
      }
      let content = m.content ?? "";
      if (openai && Array.isArray(content)) {
        // OpenAI content parts: only text parts mean anything to a text-only model.
        content = content
          .map((part) => {
            if (part?.type !== "text" || typeof part.text !== "string") {
              throw new HttpError(400, `messages[${i}].content: only text parts are supported`);
            }
            return part.text;
          })
          .join("");
      }
      if (typeof content !== "string") throw new HttpError(400, `messages[${i}].content must be a string`);
      return { role, content };
    });
  }

  /** Opens the record of one chat request and the AbortController that a client disconnect fires. */
  function beginChat(req, res, path, model) {
    const step = req.headers["x-sutazai-step"];
    const record = {
      id: records.length + 1,
      path,
      model: typeof model === "string" ? model : null,
      step: typeof step === "string" ? step : null,
      started_at_ms: Date.now(),
      ended_at_ms: null,
      aborted: false,
      prompt_tokens: 0,
      completion_tokens: 0,
    };
    records.push(record);
    active += 1;
    const controller = new AbortController();
    // 'close' before the response finished = the client went away: stop generating now.
    res.on("close", () => {
      if (!res.writableFinished) controller.abort();
    });
    // The engine counts tokens straight into the record, so /_test/requests shows a
    // generation's progress while it runs (tests wait for it to start before cancelling).
    const meter = {
      set promptTokens(n) {
        record.prompt_tokens = n;
      },
      set completionTokens(n) {
        record.completion_tokens = n;
      },
    };
    const finish = () => {
      active -= 1;
      record.ended_at_ms = Date.now();
      record.aborted = controller.signal.aborted;
    };
    return { record, signal: controller.signal, meter, finish };
  }

  // ---- Ollama -------------------------------------------------------------------------

  async function ollamaChat(req, res, body) {
    const chat = beginChat(req, res, "/api/chat", body?.model);
    let result = null;
    try {
      const model = body.model;
      if (typeof model !== "string" || model === "") throw new HttpError(400, "model is required");
      const messages = validateMessages(body.messages ?? [], false);
      const stream = optBool(body, "stream", true);
      const options = body.options ?? {};
      if (typeof options !== "object" || Array.isArray(options)) throw new HttpError(400, "options must be an object");
      const temperature = optNumber(options, "temperature", "options.") ?? OLLAMA_DEFAULT_TEMPERATURE;
      const numPredict = optInt(options, "num_predict", "options.");
      const seed = optInt(options, "seed", "options.");
      const numCtx = optInt(options, "num_ctx", "options.");
      if (numCtx !== undefined && numCtx <= 0) throw new HttpError(400, "options.num_ctx must be positive");
      let format = body.format;
      if (format === "" || format === null) format = undefined;
      if (format !== undefined && format !== "json" && (typeof format !== "object" || Array.isArray(format))) {
        throw new HttpError(400, `invalid format: expected "json" or a JSON schema object`);
      }
      if (!isServed(model)) throw new HttpError(404, notFound(model));
      // num_predict < 0 means "until the model stops"; the context size bounds it, as in Ollama.
      const maxTokens = numPredict === undefined || numPredict < 0 ? engine.context.contextSize : numPredict;
      // Build (or fetch the cached) grammar before any header goes out, so a schema the
      // grammar compiler rejects is a clean 400 even for a streamed request.
      await engine.grammarFor(format);

      const line = (obj) => {
        if (!res.destroyed) res.write(JSON.stringify(obj) + "\n");
      };
      if (stream) res.writeHead(200, { "content-type": "application/x-ndjson" });
      try {
        result = await engine.chat({
          messages,
          temperature,
          maxTokens,
          seed,
          format,
          signal: chat.signal,
          meter: chat.meter,
          onText: (text) => {
            if (stream) {
              line({ model, created_at: nowIso(), message: { role: "assistant", content: text }, done: false });
            }
          },
        });
      } catch (e) {
        if (!stream) throw e;
        // Headers are out: Ollama reports a failure mid-stream as an error line.
        if (!(e instanceof AbortedError)) line({ error: e.message });
        res.end();
        return;
      }
      const counters = {
        done_reason: result.stop,
        done: true,
        total_duration: result.totalNs,
        load_duration: result.loadNs,
        prompt_eval_count: result.promptTokens,
        prompt_eval_duration: result.promptEvalNs,
        eval_count: result.completionTokens,
        eval_duration: result.evalNs,
      };
      if (stream) {
        line({ model, created_at: nowIso(), message: { role: "assistant", content: "" }, ...counters });
        res.end();
      } else {
        sendJson(res, 200, {
          model,
          created_at: nowIso(),
          message: { role: "assistant", content: result.content },
          ...counters,
        });
      }
    } finally {
      chat.finish();
    }
  }

  async function ollamaPull(res, body) {
    const model = body.model ?? body.name;
    if (typeof model !== "string" || model === "") throw new HttpError(400, "model is required");
    const stream = optBool(body, "stream", true);
    if (!isServed(model)) {
      const error = "pull model manifest: file does not exist";
      if (!stream) throw new HttpError(500, error);
      res.writeHead(200, { "content-type": "application/x-ndjson" });
      res.write(JSON.stringify({ status: "pulling manifest" }) + "\n");
      res.end(JSON.stringify({ error }) + "\n");
      return;
    }
    if (!stream) {
      sendJson(res, 200, { status: "success" });
      return;
    }
    // The model is already local, so "pulling" is a replay of Ollama's progress sequence
    // over the real blob digest and size.
    res.writeHead(200, { "content-type": "application/x-ndjson" });
    const line = (obj) => res.write(JSON.stringify(obj) + "\n");
    line({ status: "pulling manifest" });
    const digest = `sha256:${engine.digest}`;
    const total = engine.size;
    for (const fraction of [0, 0.25, 0.5, 0.75, 1]) {
      line({ status: `pulling ${engine.digest.slice(0, 12)}`, digest, total, completed: Math.round(total * fraction) });
    }
    line({ status: "verifying sha256 digest" });
    line({ status: "writing manifest" });
    res.end(JSON.stringify({ status: "success" }) + "\n");
  }

  function ollamaShow(res, body) {
    const model = body.model ?? body.name;
    if (typeof model !== "string" || model === "") throw new HttpError(400, "model is required");
    if (!isServed(model)) throw new HttpError(404, `model '${model}' not found`);
    const details = engine.details();
    sendJson(res, 200, {
      license: "Apache-2.0",
      modelfile: `FROM ${cfg.modelPath}\n`,
      parameters: "",
      template: engine.templateName(),
      details,
      model_info: {
        "general.architecture": details.family,
        "general.parameter_count": engine.model.fileInsights?.totalParameters ?? null,
        [`${details.family}.context_length`]: engine.model.trainContextSize,
      },
      capabilities: ["completion"],
      modified_at: engine.modified.toISOString(),
    });
  }

  // ---- OpenAI-compatible --------------------------------------------------------------

  function openAiFormat(rf) {
    if (rf === undefined || rf === null) return undefined;
    if (typeof rf !== "object" || Array.isArray(rf)) throw new HttpError(400, "response_format must be an object");
    if (rf.type === "text") return undefined;
    if (rf.type === "json_object") return "json";
    if (rf.type === "json_schema") {
      const schema = rf.json_schema?.schema;
      if (schema === null || typeof schema !== "object" || Array.isArray(schema)) {
        throw new HttpError(400, "response_format.json_schema.schema must be a JSON schema object");
      }
      return schema;
    }
    throw new HttpError(400, `response_format.type must be text, json_object or json_schema, got ${JSON.stringify(rf.type)}`);
  }

  async function openAiChat(req, res, body) {
    const chat = beginChat(req, res, "/v1/chat/completions", body?.model);
    let result = null;
    try {
      const model = body.model;
      if (typeof model !== "string" || model === "") throw new HttpError(400, "model is required");
      const messages = validateMessages(body.messages ?? [], true);
      if (messages.length === 0) throw new HttpError(400, "messages must not be empty");
      const stream = optBool(body, "stream", false);
      const temperature = optNumber(body, "temperature", "") ?? OPENAI_DEFAULT_TEMPERATURE;
      const maxTokens = optInt(body, "max_completion_tokens", "") ?? optInt(body, "max_tokens", "");
      if (maxTokens !== undefined && maxTokens < 1) throw new HttpError(400, "max_tokens must be at least 1");
      const seed = optInt(body, "seed", "");
      const n = optInt(body, "n", "");
      if (n !== undefined && n !== 1) throw new HttpError(400, "only n = 1 is supported");
      const format = openAiFormat(body.response_format);
      const includeUsage = body.stream_options?.include_usage === true;
      if (!isServed(model)) throw new HttpError(404, notFound(model));
      await engine.grammarFor(format);

      completionIds += 1;
      const id = `chatcmpl-${completionIds}`;
      const created = Math.floor(Date.now() / 1000);
      const chunk = (choices, extra = {}) => {
        if (!res.destroyed) {
          res.write(`data: ${JSON.stringify({ id, object: "chat.completion.chunk", created, model, system_fingerprint: "fp_sutazai_test", choices, ...extra })}\n\n`);
        }
      };
      if (stream) {
        res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
        // An SSE comment, as proxies and some servers send to keep idle connections open;
        // clients must skip it.
        res.write(": keep-alive\n\n");
        chunk([{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }]);
      }
      try {
        result = await engine.chat({
          messages,
          temperature,
          maxTokens: maxTokens ?? engine.context.contextSize,
          seed,
          format,
          signal: chat.signal,
          meter: chat.meter,
          onText: (text) => {
            if (stream) chunk([{ index: 0, delta: { content: text }, finish_reason: null }]);
          },
        });
      } catch (e) {
        if (!stream) throw e;
        if (!(e instanceof AbortedError)) {
          res.write(`data: ${JSON.stringify({ error: { message: e.message, type: "server_error", param: null, code: null } })}\n\n`);
        }
        res.end();
        return;
      }
      const usage = {
        prompt_tokens: result.promptTokens,
        completion_tokens: result.completionTokens,
        total_tokens: result.promptTokens + result.completionTokens,
      };
      if (stream) {
        chunk([{ index: 0, delta: {}, finish_reason: result.stop }]);
        if (includeUsage) chunk([], { usage });
        res.end("data: [DONE]\n\n");
      } else {
        sendJson(res, 200, {
          id,
          object: "chat.completion",
          created,
          model,
          system_fingerprint: "fp_sutazai_test",
          choices: [{ index: 0, message: { role: "assistant", content: result.content }, finish_reason: result.stop }],
          usage,
        });
      }
    } finally {
      chat.finish();
    }
  }

  // ---- Routing ------------------------------------------------------------------------

  const routes = {
    "GET /": (req, res) => {
      res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
      res.end("Ollama is running");
    },
    "GET /api/version": (req, res) => sendJson(res, 200, { version: OLLAMA_VERSION }),
    "GET /api/tags": (req, res) => sendJson(res, 200, { models: [modelEntry()] }),
    "POST /api/chat": async (req, res) => ollamaChat(req, res, await readJsonBody(req)),
    "POST /api/pull": async (req, res) => ollamaPull(res, await readJsonBody(req)),
    "POST /api/show": async (req, res) => ollamaShow(res, await readJsonBody(req)),
    "GET /v1/models": (req, res) =>
      sendJson(res, 200, {
        object: "list",
        data: [{ id: cfg.modelName, object: "model", created: Math.floor(engine.modified.getTime() / 1000), owned_by: "library" }],
      }),
    "POST /v1/chat/completions": async (req, res) => openAiChat(req, res, await readJsonBody(req)),
    "GET /_test/requests": (req, res) => sendJson(res, 200, records),
    "GET /_test/stats": (req, res) =>
      sendJson(res, 200, {
        chat_requests: records.length,
        active,
        aborted: records.filter((r) => r.aborted).length,
      }),
  };
  const knownPaths = new Set(Object.keys(routes).map((k) => k.split(" ")[1]));

  return http.createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://127.0.0.1").pathname;
    const method = req.method === "HEAD" ? "GET" : req.method;
    const handler = routes[`${method} ${path}`];
    const openai = path.startsWith("/v1/");
    const fail = (status, message) => {
      if (res.headersSent) {
        res.end();
      } else if (openai) {
        const type = status >= 500 ? "api_error" : "invalid_request_error";
        sendJson(res, status, { error: { message, type, param: null, code: null } });
      } else {
        sendJson(res, status, { error: message });
      }
    };
    if (!handler) {
      if (knownPaths.has(path)) fail(405, `method ${req.method} not allowed on ${path}`);
      else fail(404, `404 page not found: ${path}`);
      return;
    }
    Promise.resolve()
      .then(() => handler(req, res))
      .catch((e) => {
        if (e instanceof HttpError) fail(e.status, e.message);
        else if (e instanceof BadRequestError) fail(400, e.message);
        else if (e instanceof AbortedError) res.destroy();
        else {
          console.error(`error serving ${req.method} ${path}:`, e);
          fail(500, String(e?.message ?? e));
        }
      });
  });
}

// ---------------------------------------------------------------------------------------
// Main

async function main() {
  let cfg;
  try {
    cfg = parseCli();
  } catch (e) {
    console.error(`llm-server: ${e.message}`);
    process.exit(2);
  }
  const engine = await Engine.load(cfg);
  console.error(
    `llm-server: loaded ${cfg.modelPath} as ${cfg.modelName} in ${engine.loadMs.toFixed(0)} ms ` +
      `(parallel ${cfg.parallel}, ctx ${engine.context.contextSize}, token delay ${cfg.tokenDelayMs} ms)`,
  );
  console.error("dbg: creating server");
  const server = createServer(engine, cfg);
  console.error("dbg: created");
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(cfg.port, "127.0.0.1", resolve);
  });
  console.error("dbg: listened");
  const { port } = server.address();
  process.stdout.write(`listening on http://127.0.0.1:${port}\n`);

  let stopping = false;
  const stop = async (why) => {
    if (stopping) return;
    stopping = true;
    console.error(`llm-server: stopping (${why})`);
    server.close();
    server.closeAllConnections();
    await engine.close();
    process.exit(0);
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  if (cfg.exitOnStdinClose) {
    // A test harness holds our stdin open; when it exits (even killed), stdin hits EOF and
    // the server goes with it instead of lingering as an orphan.
    process.stdin.on("end", () => stop("stdin closed"));
    process.stdin.on("error", () => stop("stdin error"));
    process.stdin.resume();
  }
}

main().catch((e) => {
  console.error("llm-server: fatal:", e);
  process.exit(1);
});
