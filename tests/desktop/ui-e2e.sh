#!/usr/bin/env bash
# The dashboard end to end in the real desktop window: the app (`sutazai`, no subcommand)
# driven through tauri-driver and WebKitWebDriver under Xvfb on a private D-Bus session, by
# the WebdriverIO client in tests/ui-e2e/run.mjs, against the real test model: a task
# submitted from the form completes in the task view with streamed output, another is
# cancelled, a firing alert is acknowledged, an agent is defined, edited and deleted in the
# Agents view's editor; a screenshot of every view is saved.
# Needs the test LLM's exports (OLLAMA_API_URL, SUTAZAI_MODEL: scripts/test-llm.sh start).
# Usage: tests/desktop/ui-e2e.sh [path/to/sutazai]   (run by scripts/test.sh)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${1:-${CARGO_TARGET_DIR:-/var/cache/sutazai/target}/debug/sutazai}
[ -x "$BIN" ] || { echo "no desktop binary at $BIN" >&2; exit 2; }
[ -n "${OLLAMA_API_URL:-}" ] || { echo "OLLAMA_API_URL is not set: start the test LLM (scripts/test-llm.sh start)" >&2; exit 2; }
if [ -z "${INSIDE_SESSION:-}" ]; then
  export INSIDE_SESSION=1
  exec xvfb-run -a -s "-screen 0 1280x800x24" dbus-run-session -- bash "$0" "$BIN"
fi
driver=$(command -v tauri-driver || echo "$HOME/.cargo/bin/tauri-driver")
[ -x "$driver" ] || { echo "tauri-driver is not installed (scripts/setup.sh --test installs it)" >&2; exit 2; }
[ -d "$ROOT/tests/ui-e2e/node_modules" ] || npm ci --prefix "$ROOT/tests/ui-e2e" --ignore-scripts --silent

work=$(mktemp -d)
driver_pid=""
cleanup() {
  [ -n "$driver_pid" ] && kill "$driver_pid" 2>/dev/null
  # tauri-driver ends the app with the session; anything left over goes too.
  pkill -f "^$BIN\$" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
dport=$(free_port); nport=$(free_port)

# The app inherits tauri-driver's environment.
export HOME="$work/home" XDG_CONFIG_HOME="$work/home/.config"
# Port 0: the app binds a free port itself (a port picked here could be taken by another
# socket before the app binds it); run.mjs reads the address from the page.
export ORCHESTRATION_API_HOST=127.0.0.1 ORCHESTRATION_API_PORT=0
export SUTAZAI_DATA_DIR="$work/data" SUTAZAI_AGENTS_DIR="$work/data/agents"
export SUTAZAI_MODEL="${SUTAZAI_MODEL:-smollm2:135m}" SUTAZAI_MAX_TOKENS=48 LOG_LEVEL=warn
export DOCKER_HOST=unix:///nonexistent/sutazai-ui-e2e.sock
# With authentication on: the app signs its own window in, every call of the dashboard
# carries the bearer, and the script uses the window's token for its own API calls.
export ENABLE_AUTH=true
unset JWT_SECRET_KEY
unset SUTAZAI_CONFIG REDIS_URL SUTAZAI_LOCAL_AGENTS SUTAZAI_SERVICES_DIR SUTAZAI_API_URL

"$driver" --port "$dport" --native-port "$nport" >"$work/driver.log" 2>&1 &
driver_pid=$!
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$dport") 2>/dev/null && break
  sleep 0.1
done
WEBDRIVER_URL="http://127.0.0.1:$dport" SUTAZAI_APP="$BIN" SUTAZAI_API=window SUTAZAI_API_TOKEN=window \
  SHOTS_DIR="${SHOTS_DIR:-$work/shots}" node "$ROOT/tests/ui-e2e/run.mjs" || {
  status=$?
  echo "--- tauri-driver log (the app's output; panics first):" >&2
  grep -n -A2 "panicked at" "$work/driver.log" >&2 || true
  tail -40 "$work/driver.log" >&2
  exit "$status"
}
