#!/usr/bin/env bash
# Runs the spec's Python examples unchanged against a real `sutazai serve` (the headless
# build) on localhost:8000, backed by the test LLM, then its two message-bus examples as
# curl requests (messages.sh). Needs: scripts/setup.sh --test done,
# the test LLM running (scripts/test-llm.sh start), python3 with requests and websockets, curl.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/sutazai/target}"
eval "$(scripts/test-llm.sh start)"
cargo build -q -p sutazai-cli --bin sutazai-headless
DATA="$(mktemp -d)"
LOG="$DATA/serve.log"
ORCHESTRATION_API_HOST=127.0.0.1 ORCHESTRATION_API_PORT=8000 SUTAZAI_DATA_DIR="$DATA" \
  SUTAZAI_AGENTS_DIR="$DATA/agents" SUTAZAI_MAX_TOKENS=32 WEBSOCKET_HEARTBEAT_INTERVAL=2 \
  LOG_LEVEL=warn "$CARGO_TARGET_DIR/debug/sutazai-headless" serve >"$LOG" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 1 100); do
  if python3 -c 'import urllib.request; urllib.request.urlopen("http://localhost:8000/health", timeout=1)' 2>/dev/null; then break; fi
  if ! kill -0 $SERVER 2>/dev/null; then cat "$LOG"; echo "sutazai serve exited"; exit 1; fi
  sleep 0.2
done
python3 tests/spec-examples/run.py || { echo "--- server log:"; tail -50 "$LOG"; exit 1; }
bash tests/spec-examples/messages.sh || { echo "--- server log:"; tail -50 "$LOG"; exit 1; }
