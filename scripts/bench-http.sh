#!/usr/bin/env bash
# HTTP load figures for BENCHMARKS.md (issue 7), on demand: `oha` with 32 connections for
# 10 s each on GET /health, POST /tasks and GET /tasks/{id} of a `sutazai-headless serve`
# (release build) on loopback, orchestration paused (accepted tasks are journaled, durable
# before the answer, and queued; none runs), no LLM reachable, no Docker. GET /tasks/{id}
# is measured three times: on a queued task (held in memory), on one that ended lately (the
# recently-ended copy) and on one that ended 300 tasks ago (read from the journal). Each mode in
# MODES (default "off on") is a fresh server: `off` without authentication, `on` with
# ENABLE_AUTH=true and every request carrying an access token (JWT from POST /auth/token
# with an admin API key) — the same figures with the verification and the audit of each
# POST included. SUTAZAI_MAX_PENDING_TASKS is raised to PENDING (default 1,000,000) so
# POST measures accepting tasks, not the backpressure refusal.
#
# Why oha and not wrk: wrk 4.1.0 (Debian's) printed latencies that contradict its own
# request count here (a 10 s POST run over 32 connections with 267,559 requests — at most
# 1.2 ms per request on average by Little's law — reported an average of 21 ms and a p99
# of 474 ms); oha's figures agree with their totals. oha is installed with
# `cargo install oha --locked` (about 6 minutes, once) when missing.
# Usage: scripts/bench-http.sh [path/to/sutazai-headless]
#        (default: $CARGO_TARGET_DIR/release/sutazai-headless; build it with
#         `cargo build --release -p sutazai-cli --bin sutazai-headless`)
set -euo pipefail
BIN=${1:-${CARGO_TARGET_DIR:-/var/cache/sutazai/target}/release/sutazai-headless}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
[ -x "$BIN" ] || { echo "no binary at $BIN" >&2; exit 2; }
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v oha >/dev/null; then
  echo "installing oha (cargo install oha --locked) ..." >&2
  cargo install oha --locked --version 1.16.0 >&2
fi
MODES=${MODES:-off on}
PENDING=${PENDING:-1000000}
work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
run() { # $1 = label, rest = oha arguments; every request started is waited for (-w)
  local label=$1; shift
  oha --no-tui -w -z "$DURATION" -c "$CONNECTIONS" --output-format json "$@" | python3 -c '
import json, sys
label = sys.argv[1]
d = json.load(sys.stdin)
s, p = d["summary"], d["latencyPercentiles"]
codes = d["statusCodeDistribution"]
ok = sum(n for c, n in codes.items() if c.startswith("2"))
other = {c: n for c, n in codes.items() if not c.startswith("2")}
other.update(d["errorDistribution"])
ms = lambda v: "%.2f ms" % (v * 1000)
print("%-22s %10.0f req/s   p50 %-9s p99 %-9s p99.9 %-9s max %-9s %d answered 2xx, other: %s" % (
    label, s["requestsPerSec"], ms(p["p50"]), ms(p["p99"]), ms(p["p99.9"]), ms(s["slowest"]), ok, other or "none"))
' "$label"
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
  printf '%s' "$body" >"$dir/post.json"
  echo "== auth $mode: oha -c$CONNECTIONS -z$DURATION against $base ($(nproc) cores, orchestration paused)"
  run "GET /health" "${header[@]}" "$base/health"
  run "POST /tasks" "${header[@]}" -m POST -T application/json -D "$dir/post.json" "$base/tasks"
  run "GET /tasks/{id}" "${header[@]}" "$base/tasks/$task"
  # An ended task is read from the recently-ended copy (the last 256) or, older, from the
  # journal: cancel one, then 300 more, and read the first and the last.
  cancel_one() {
    local id
    id=$(curl -sf "${header[@]}" -H 'content-type: application/json' -d "$body" "$base/tasks" | python3 -c 'import json,sys; print(json.load(sys.stdin)["task_id"])')
    curl -sf "${header[@]}" -X DELETE "$base/tasks/$id" >/dev/null
    echo "$id"
  }
  old=$(cancel_one)
  for _ in $(seq 1 300); do recent=$(cancel_one); done
  run "GET /tasks/{id} ended" "${header[@]}" "$base/tasks/$recent"
  run "GET /tasks/{id} old" "${header[@]}" "$base/tasks/$old"
  queued=$(curl -sf "${header[@]}" "$base/status" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("queued_tasks"))')
  echo "tasks queued after the run: $queued; serve RSS $(awk '/VmRSS/ {print $2/1024 " MiB"}' /proc/$pid/status)"
  if [ "$mode" = on ]; then
    audited=$(curl -sf "${header[@]}" "$base/audit/verify" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["entries"], "entries, chain ok" if d["ok"] else "CHAIN BROKEN")')
    echo "audit log after the run: $audited"
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
done
