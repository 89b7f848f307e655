#!/usr/bin/env bash
# Builds and starts SutazAI.
#
# With a display ($DISPLAY or $WAYLAND_DISPLAY set) it opens the desktop window; without one
# it runs the same binary headless (`sutazai serve`) and the dashboard is served at the
# printed URL for a browser.
#
# Usage: bash scripts/app.sh [--release]
#   --release   build with the release profile (optimised, slower to build)
#
# The default is a debug build: it shares the compiled dependencies with scripts/test.sh
# (clippy and the tests build the debug profile too), so after a test run starting the app
# costs a link rather than a second full optimised build of the Tauri/WebKit stack, and the
# app's own work is waiting on LLMs and the network, not on CPU. Dependencies are still
# compiled with optimisations (see [profile.dev.package."*"] in Cargo.toml).
#
# The API address comes from ORCHESTRATION_API_HOST / ORCHESTRATION_API_PORT
# (default 127.0.0.1:8000), the same variables the server binds to.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

PROFILE=debug
CARGO_PROFILE=()
for arg in "$@"; do
  case "$arg" in
    --release)
      PROFILE=release
      CARGO_PROFILE=(--release)
      ;;
    -h | --help)
      sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "app.sh: unknown option: $arg (try --help)" >&2
      exit 2
      ;;
  esac
done

log() { printf '[app] %s\n' "$*"; }

# Packages, node modules and a current ui/dist (the binary embeds it).
bash "$ROOT/scripts/setup.sh"
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/sutazai/target}

log "building the app ($PROFILE)"
cargo build "${CARGO_PROFILE[@]}" -p sutazai
BIN="$CARGO_TARGET_DIR/$PROFILE/sutazai"

if [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ]; then
  log "opening the desktop window"
  exec "$BIN"
fi

host=${ORCHESTRATION_API_HOST:-127.0.0.1}
port=${ORCHESTRATION_API_PORT:-8000}
case "$host" in
  0.0.0.0 | "") host=127.0.0.1 ;;
  :: | "[::]") host="[::1]" ;;
  *:*) [[ "$host" == \[* ]] || host="[$host]" ;;
esac
log "no display: running headless"
log "dashboard: http://$host:$port/"
exec "$BIN" serve
