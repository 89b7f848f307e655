#!/usr/bin/env bash
# Starts, locates or stops ONE shared test LLM server (tests/llm-server) for local runs and CI.
#
#   scripts/test-llm.sh start   # (default) ensure deps + model, start if not answering, print exports
#   scripts/test-llm.sh url     # print the exports for an already running server (fails if none)
#   scripts/test-llm.sh stop    # stop the server this script started
#
# Use it as:  eval "$(scripts/test-llm.sh start)"
# It prints shell `export` lines on stdout (OLLAMA_API_URL, OPENAI_API_BASE, SUTAZAI_TEST_MODEL,
# SUTAZAI_MODEL); progress and errors go to stderr. Idempotent: a server already answering on
# the port is reused.
#
# Env: SUTAZAI_TEST_LLM_PORT (default 11500), SUTAZAI_CACHE_DIR (default /var/cache/sutazai),
#      SUTAZAI_TEST_LLM_READY_SECS (default 120): how long to wait for the model to load.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
SERVER_DIR="${ROOT}/tests/llm-server"
PORT="${SUTAZAI_TEST_LLM_PORT:-11500}"
CACHE_DIR="${SUTAZAI_CACHE_DIR:-/var/cache/sutazai}"
RUN_DIR="${CACHE_DIR}/run"
PID_FILE="${RUN_DIR}/test-llm-${PORT}.pid"
LOG_FILE="${RUN_DIR}/test-llm-${PORT}.log"
READY_SECS="${SUTAZAI_TEST_LLM_READY_SECS:-120}"
MODEL_NAME="smollm2:135m"
URL="http://127.0.0.1:${PORT}"

log() { printf 'test-llm: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

answering() {
  # bash's /dev/tcp keeps this free of a curl/wget dependency.
  local reply
  reply="$( { exec 3<>"/dev/tcp/127.0.0.1/${PORT}" \
      && printf 'GET /api/version HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 \
      && timeout 2 cat <&3; } 2>/dev/null )" || return 1
  [[ "$reply" == *'"version"'* ]]
}

print_exports() {
  local model="$1"
  printf 'export OLLAMA_API_URL=%s\n' "$URL"
  printf 'export OPENAI_API_BASE=%s/v1\n' "$URL"
  printf 'export SUTAZAI_MODEL=%s\n' "$MODEL_NAME"
  [[ -n "$model" ]] && printf 'export SUTAZAI_TEST_MODEL=%s\n' "$model"
  return 0
}

ensure_node_deps() {
  command -v node >/dev/null || die "node is not installed (Node >= 20 is required)"
  if [[ ! -d "${SERVER_DIR}/node_modules/node-llama-cpp" ]]; then
    log "installing node dependencies in ${SERVER_DIR}"
    # --ignore-scripts: the server only needs the prebuilt binary that
    # @node-llama-cpp/linux-x64 ships; node-llama-cpp's postinstall could try to build.
    (cd "$SERVER_DIR" && npm ci --omit=optional --ignore-scripts --no-audit --no-fund >&2) \
      || die "npm ci failed in ${SERVER_DIR}"
  fi
}

ensure_model() {
  local path
  path="$("${ROOT}/scripts/fetch-test-model.sh" | tail -n 1)" || die "fetch-test-model.sh failed"
  [[ -f "$path" ]] || die "fetch-test-model.sh printed ${path}, which is not a file"
  printf '%s\n' "$path"
}

cmd_start() {
  local model
  model="$(ensure_model)"
  if answering; then
    log "reusing the server already answering on ${URL}"
    print_exports "$model"
    return 0
  fi
  ensure_node_deps
  mkdir -p "$RUN_DIR"
  log "starting the test LLM server on ${URL} (log: ${LOG_FILE})"
  # setsid: the server must outlive this script and the shell that eval'ed it.
  setsid node "${SERVER_DIR}/server.mjs" --model "$model" --model-name "$MODEL_NAME" \
    --port "$PORT" </dev/null >"$LOG_FILE" 2>&1 &
  local pid=$!
  printf '%s\n' "$pid" >"$PID_FILE"
  local deadline=$((SECONDS + READY_SECS))
  until grep -q '^listening on http://127.0.0.1:' "$LOG_FILE" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PID_FILE"
      tail -n 20 "$LOG_FILE" >&2 || true
      die "the test LLM server exited before it was ready"
    fi
    if (( SECONDS >= deadline )); then
      kill "$pid" 2>/dev/null || true
      rm -f "$PID_FILE"
      die "the test LLM server was not ready within ${READY_SECS}s"
    fi
    sleep 0.2
  done
  log "ready (pid ${pid})"
  print_exports "$model"
}

cmd_url() {
  answering || die "no test LLM server answers on ${URL}; run: scripts/test-llm.sh start"
  local model=""
  model="$("${ROOT}/scripts/fetch-test-model.sh" 2>/dev/null | tail -n 1)" || model=""
  print_exports "$model"
}

cmd_stop() {
  if [[ ! -f "$PID_FILE" ]]; then
    if answering; then die "a server answers on ${URL} but was not started by this script (no ${PID_FILE})"; fi
    log "not running"
    return 0
  fi
  local pid
  pid="$(cat "$PID_FILE")"
  if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then log "pid ${pid} ignored SIGTERM; sending SIGKILL"; kill -9 "$pid" || true; fi
    log "stopped (pid ${pid})"
  else
    log "stale pid file (pid ${pid} is gone)"
  fi
  rm -f "$PID_FILE"
}

case "${1:-start}" in
  start) cmd_start ;;
  url) cmd_url ;;
  stop) cmd_stop ;;
  *) die "usage: $0 [start|stop|url]" ;;
esac
