#!/usr/bin/env bash
# HTTP load figures for BENCHMARKS.md (issue 7), on demand: `wrk` with 32 connections for
# 10 s each on GET /health, POST /tasks and GET /tasks/{id} of a `sutazai-headless serve`
# (release build) on loopback, orchestration paused (accepted tasks are journaled, durable
# before the answer, and queued; none runs), no LLM reachable, no Docker. Each mode in
# MODES (default "off on") is a fresh server: `off` without authentication, `on` with
# ENABLE_AUTH=true and every request carrying an access token (JWT from POST /auth/token
# with an admin API key) — the same figures with the verification and the audit of each
# POST included. SUTAZAI_MAX_PENDING_TASKS is raised to PENDING (default 1,000,000) so
# POST measures accepting tasks, not the backpressure refusal.
# Usage: scripts/bench-http.sh [path/to/sutazai-headless]
#        (default: $CARGO_TARGET_DIR/release/sutazai-headless; build it with
#         `cargo build --release -p sutazai-cli --bin sutazai-headless`)
set -euo pipefail
BIN=${1:-${CARGO_TARGET_DIR:-/var/cache/sutazai/target}/release/sutazai-headless}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
[ -x "$BIN" ] || { echo "no binary at $BIN" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 2; }
MODES=${MODES:-off on}
PENDING=${PENDING:-1000000}
work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
run() { # $1 = label, rest = wrk arguments
  local label=$1; shift
  local out
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@")
  local rps p50 p99 errors
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  errors=$(grep -E "Non-2xx|Socket errors" <<<"$out" || echo "none")
  printf '%-22s %10s req/s   p50 %-9s p99 %-9s errors: %s\n' "$label" "$rps" "$p50" "$p99" "$errors"
}
body='{"name":"load","description":"Name one benefit of unit tests.","requirements":["code_generation"],"coordination_pattern":"pipeline","constraints":{"max_agents":1}}'
for mode in $MODES; do
  dir="$work/$mode"
  mkdir -p "$dir"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  base="http://127.0.0.1:$port"
  auth_env=(ENABLE_AUTH=false)
  [ "$mode" = on ] && auth_env=(ENABLE_AUTH=true)
  common=(env -u SUTAZAI_CONFIG -u REDIS_URL -u JWT_SECRET_KEY HOME="$dir/home" ORCHESTRATION_API_HOST=127.0.0.1
    ORCHESTRATION_API_PORT="$port" SUTAZAI_DATA_DIR="$dir/data" SUTAZAI_AGENTS_DIR="$dir/data/agents"
    OLLAMA_API_URL=http://127.0.0.1:9 LOG_LEVEL=warn MAX_CONCURRENT_TASKS=100 SUTAZAI_MAX_PENDING_TASKS="$PENDING"
    DOCKER_HOST=unix:///nonexistent/sutazai-bench.sock "${auth_env[@]}")
  header=()
  if [ "$mode" = on ]; then
    key=$("${common[@]}" "$BIN" auth keys create --name bench --role admin --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
  fi
  "${common[@]}" "$BIN" serve >"$dir/serve.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 200); do curl -sf "$base/health" >/dev/null && break; sleep 0.1; done
  curl -sf "$base/health" >/dev/null || { cat "$dir/serve.log"; echo "serve did not come up" >&2; exit 1; }
  if [ "$mode" = on ]; then
    token=$(curl -sf -H 'content-type: application/json' -d "{\"api_key\":\"$key\"}" "$base/auth/token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
    header=(-H "Authorization: Bearer $token")
  fi
  curl -sf "${header[@]}" -X POST "$base/orchestration/pause" >/dev/null
  task=$(curl -sf "${header[@]}" -H 'content-type: application/json' -d "$body" "$base/tasks" | python3 -c 'import json,sys; print(json.load(sys.stdin)["task_id"])')
  cat >"$dir/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.body = '$body'
LUA
  echo "== auth $mode: wrk -t$THREADS -c$CONNECTIONS -d$DURATION against $base ($(nproc) cores, orchestration paused)"
  run "GET /health" "${header[@]}" "$base/health"
  run "POST /tasks" "${header[@]}" -s "$dir/post.lua" "$base/tasks"
  run "GET /tasks/{id}" "${header[@]}" "$base/tasks/$task"
  queued=$(curl -sf "${header[@]}" "$base/status" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("queued_tasks"))')
  echo "tasks queued after the run: $queued; serve RSS $(awk '/VmRSS/ {print $2/1024 " MiB"}' /proc/$pid/status)"
  if [ "$mode" = on ]; then
    audited=$(curl -sf "${header[@]}" "$base/audit/verify" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["entries"], "entries, chain ok" if d["ok"] else "CHAIN BROKEN")')
    echo "audit log after the run: $audited"
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
done
