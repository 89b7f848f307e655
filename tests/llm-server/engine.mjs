// The inference half of the test LLM server: one real GGUF model, loaded once through
// node-llama-cpp's shipped CPU prebuilt, and a small pool of context sequences so a fixed
// number of chats run at once while the rest wait their turn (Ollama's OLLAMA_NUM_PARALLEL).
//
// Nothing here knows HTTP: `server.mjs` translates the Ollama and OpenAI wire formats into
// `Engine.chat()` calls, so both protocols share exactly the same generation path.

import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { getLlama, GgufFileType, LlamaChat, LlamaLogLevel } from "node-llama-cpp";

/** Raised for a request the engine can never serve (bad schema, bad option): the HTTP layer answers 400. */
export class BadRequestError extends Error {}

/** Raised when the caller's AbortSignal fired before or during generation. */
export class AbortedError extends Error {
  constructor() {
    super("request aborted by the client");
  }
}

/** The sha256 of a file, streamed so a large model never sits in memory twice. */
async function sha256File(path) {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk);
  return hash.digest("hex");
}

const JSON_SCHEMA_TYPES = new Set(["object", "array", "string", "number", "integer", "boolean", "null"]);

/**
 * Rejects `type` values that JSON Schema does not have. node-llama-cpp's grammar compiler
 * silently treats an unknown type as "anything", which would hide a caller's mistake.
 */
function checkSchemaTypes(schema, where) {
  if (schema === null || typeof schema !== "object") return;
  if (Array.isArray(schema)) {
    schema.forEach((s, i) => checkSchemaTypes(s, `${where}[${i}]`));
    return;
  }
  const types = Array.isArray(schema.type) ? schema.type : schema.type === undefined ? [] : [schema.type];
  for (const t of types) {
    if (!JSON_SCHEMA_TYPES.has(t)) {
      throw new BadRequestError(`invalid JSON schema in ${where}: unknown type ${JSON.stringify(t)}`);
    }
  }
  for (const [key, value] of Object.entries(schema)) {
    if (key !== "enum" && key !== "const" && key !== "default" && key !== "examples") {
      checkSchemaTypes(value, `${where}.${key}`);
    }
  }
}

/** Maps our message roles onto node-llama-cpp's chat history items. */
function toChatHistory(messages) {
  const history = [];
  for (const m of messages) {
    if (m.role === "system") history.push({ type: "system", text: m.content });
    else if (m.role === "user") history.push({ type: "user", text: m.content });
    else history.push({ type: "model", response: m.content === "" ? [] : [m.content] });
  }
  // The model answers by completing a trailing model turn; a trailing assistant message is
  // continued, as a prefill, the way llama.cpp-based servers do it.
  if (history.at(-1)?.type !== "model") history.push({ type: "model", response: [] });
  return history;
}

export class Engine {
  /**
   * @param {object} o
   * @param {string} o.modelPath   the .gguf to serve
   * @param {number} o.parallel    context sequences, i.e. chats generated at the same time
   * @param {number} o.ctxSize     context size per sequence, in tokens
   * @param {number} o.tokenDelayMs pause before every evaluation batch (one per generated token),
   *                               so tests can keep a request in flight long enough to cancel it
   */
  static async load({ modelPath, parallel, ctxSize, tokenDelayMs }) {
    const started = performance.now();
    // gpu:false + build:"never" + skipDownload: use the CPU binary that the
    // @node-llama-cpp/linux-x64 package ships; never compile or fetch anything.
    const llama = await getLlama({
      gpu: false,
      build: "never",
      skipDownload: true,
      usePrebuiltBinaries: true,
      maxThreads: 1,
      progressLogs: false,
      logLevel: LlamaLogLevel.warn,
    });
    // node-llama-cpp's memory safety checks compare against the kernel's MemFree, which
    // on a busy Linux machine (page cache full of build artefacts) can sit far below what
    // is actually available; for a ~100 MB model they only ever refuse spuriously.
    const model = await llama.loadModel({ modelPath, ignoreMemorySafetyChecks: true });
    const batching = tokenDelayMs > 0
      ? { dispatchSchedule: (dispatch) => setTimeout(dispatch, tokenDelayMs) }
      : undefined;
    const context = await model.createContext({
      sequences: parallel,
      contextSize: ctxSize,
      threads: 1,
      batching,
      ignoreMemorySafetyChecks: true,
    });
    const [digest, info] = await Promise.all([sha256File(modelPath), stat(modelPath)]);
    return new Engine({ llama, model, context, started, digest, size: info.size, modified: info.mtime });
  }

  constructor({ llama, model, context, started, digest, size, modified }) {
    this.llama = llama;
    this.model = model;
    this.context = context;
    this.loadReported = false;
    this.digest = digest;
    this.size = size;
    this.modified = modified;
    /**
     * Idle LlamaChat instances, one per context sequence. They live as long as the server:
     * resolving the chat template ("auto") costs ~200 ms, far more than a short answer, so
     * it is paid once per sequence at load instead of once per request.
     */
    this.free = [];
    for (let i = 0; i < context.totalSequences; i++) {
      this.free.push(new LlamaChat({ contextSequence: context.getSequence(), chatWrapper: "auto" }));
    }
    /** FIFO of requests waiting for a free chat: {resolve, reject, signal, onAbort}. */
    this.waiters = [];
    /**
     * Wall time from starting the runtime to a ready pool (model hash included), reported as
     * Ollama's `load_duration` on the first request, as Ollama does for a cold model.
     */
    this.loadMs = performance.now() - started;
    this.grammars = new Map();
  }

  /** Model facts for /api/tags and /api/show, read from the GGUF header. */
  details() {
    const meta = this.model.fileInfo?.metadata ?? {};
    const arch = meta.general?.architecture ?? "llama";
    const params = this.model.fileInsights?.totalParameters ?? null;
    const fileType = GgufFileType[meta.general?.file_type] ?? "";
    return {
      parent_model: "",
      format: "gguf",
      family: arch,
      families: [arch],
      parameter_size: params == null ? "" : `${(params / 1e6).toFixed(2)}M`,
      quantization_level: fileType.replace(/^MOSTLY_/, ""),
      context_length: this.context.contextSize,
    };
  }

  /** Ollama-style chat-template text, for /api/show. */
  templateName() {
    return this.model.fileInfo?.metadata?.tokenizer?.chat_template ?? "";
  }

  /** Waits for an idle chat (FIFO); rejects with AbortedError if the client leaves first. */
  async acquire(signal) {
    if (signal.aborted) throw new AbortedError();
    const chat = this.free.pop();
    if (chat) return chat;
    return await new Promise((resolve, reject) => {
      const waiter = { resolve, reject, signal, onAbort: null };
      waiter.onAbort = () => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new AbortedError());
      };
      signal.addEventListener("abort", waiter.onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  /** Hands a chat to the longest-waiting request, or back to the idle pool. */
  release(chat) {
    const next = this.waiters.shift();
    if (next) {
      next.signal.removeEventListener("abort", next.onAbort);
      next.resolve(chat);
    } else {
      this.free.push(chat);
    }
  }

  /** The grammar for an Ollama `format` / OpenAI `response_format`: "json" or a JSON schema object. */
  async grammarFor(format) {
    if (format == null) return undefined;
    if (format !== "json") checkSchemaTypes(format, "format");
    const key = format === "json" ? "json" : JSON.stringify(format);
    let grammar = this.grammars.get(key);
    if (!grammar) {
      grammar = format === "json"
        ? this.llama.getGrammarFor("json")
        : this.llama.createGrammarForJsonSchema(format);
      this.grammars.set(key, grammar);
      // A schema node-llama-cpp cannot turn into a grammar must not poison the cache.
      grammar.catch(() => this.grammars.delete(key));
    }
    try {
      return await grammar;
    } catch (e) {
      throw new BadRequestError(`invalid JSON schema in format: ${e.message}`);
    }
  }

  /**
   * Generates one assistant answer.
   *
   * @param {object} o
   * @param {{role: string, content: string}[]} o.messages
   * @param {number} o.temperature
   * @param {number} o.maxTokens      upper bound on generated tokens (0 = generate nothing)
   * @param {number|undefined} o.seed
   * @param {unknown} o.format        "json", a JSON schema, or undefined
   * @param {AbortSignal} o.signal    aborts the generation at the next token
   * @param {(text: string) => void} o.onText called with every decoded chunk as it is generated
   * @param {{promptTokens: number, completionTokens: number}} o.meter updated as tokens are
   *   counted, so a caller still knows how far an aborted or failed generation got
   * @returns {Promise<{content: string, stop: "stop"|"length", promptTokens: number,
   *   completionTokens: number, loadNs: number, promptEvalNs: number, evalNs: number, totalNs: number}>}
   */
  async chat({ messages, temperature, maxTokens, seed, format, signal, onText, meter }) {
    const t0 = process.hrtime.bigint();
    const grammar = await this.grammarFor(format);
    const chat = await this.acquire(signal);
    let loadNs = 0;
    if (!this.loadReported) {
      this.loadReported = true;
      loadNs = Math.round(this.loadMs * 1e6);
    }
    try {
      const history = toChatHistory(messages);
      const promptTokens = chat.chatWrapper
        .generateContextState({ chatHistory: history })
        .contextText.tokenize(this.model.tokenizer).length;
      meter.promptTokens = promptTokens;
      let content = "";
      let completionTokens = 0;
      let firstTokenAt = null;
      if (maxTokens <= 0) {
        const now = process.hrtime.bigint();
        return {
          content, stop: "length", promptTokens, completionTokens: 0,
          loadNs, promptEvalNs: 0, evalNs: 0, totalNs: Number(now - t0),
        };
      }
      const res = await chat.generateResponse(history, {
        maxTokens,
        temperature,
        seed,
        grammar,
        signal,
        stopOnAbortSignal: false,
        onToken: (tokens) => {
          if (firstTokenAt == null) firstTokenAt = process.hrtime.bigint();
          completionTokens += tokens.length;
          meter.completionTokens = completionTokens;
        },
        onTextChunk: (text) => {
          content += text;
          if (text !== "") onText(text);
        },
      });
      if (signal.aborted) throw new AbortedError();
      const end = process.hrtime.bigint();
      const evalStart = firstTokenAt ?? end;
      const stop = res.metadata.stopReason === "maxTokens" ? "length" : "stop";
      // The streamed chunks are the answer: returning exactly their concatenation keeps
      // stream and non-stream answers identical (res.response may trim a JSON grammar's
      // trailing whitespace that was already streamed).
      return {
        content,
        stop,
        promptTokens,
        completionTokens,
        loadNs,
        promptEvalNs: Number(evalStart - t0),
        evalNs: Number(end - evalStart),
        totalNs: Number(end - t0),
      };
    } catch (e) {
      if (signal.aborted) throw new AbortedError();
      throw e;
    } finally {
      this.release(chat);
    }
  }

  async close() {
    for (const chat of this.free) chat.dispose({ disposeSequence: true });
    await this.context.dispose();
    await this.model.dispose();
    await this.llama.dispose();
  }
}
