#!/usr/bin/env bash
# Installs what SutazAI needs to build, run and test, on a fresh Debian 12 / Ubuntu machine
# (as root, or as a user with sudo), and builds the dashboard (ui/dist) that the app embeds.
#
# Idempotent and quick to re-run: every step first checks whether its result is already in
# place (packages installed, node_modules matching package-lock.json, ui/dist matching its
# sources) and skips itself when it is.
#
# Usage: bash scripts/setup.sh [--test]
#   --test   also prepare the tests' own parts: the test LLM server's packages and model.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

WITH_TEST=0
for arg in "$@"; do
  case "$arg" in
    --test) WITH_TEST=1 ;;
    -h | --help)
      sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "setup.sh: unknown option: $arg (try --help)" >&2
      exit 2
      ;;
  esac
done

log() { printf '[setup] %s\n' "$*"; }
die() {
  printf '[setup] error: %s\n' "$*" >&2
  exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  have sudo || die "run as root or install sudo"
  SUDO=(sudo)
fi

# --- system packages ----------------------------------------------------------------------
# Build tools, the WebKitGTK/appindicator libraries Tauri links, Redis and Docker for the
# tests' real services, and the X/D-Bus/notification tools for the desktop tests.
packages=(
  build-essential pkg-config curl ca-certificates git
  redis-server
  # The infra tests' local images (a static busybox) and local image registry.
  busybox-static docker-registry
  libwebkit2gtk-4.1-dev libayatana-appindicator3-dev librsvg2-dev libssl-dev patchelf
  xvfb xauth webkit2gtk-driver dunst dbus-x11 x11-utils xdotool imagemagick
  # An XEmbed tray host for the desktop tray test.
  trayer
)
# A Node.js or Python that is already on PATH (nodesource, nvm, pyenv) wins: Debian's
# packages would conflict with it (nodesource's nodejs ships its own npm) or shadow it.
have node || packages+=(nodejs)
have npm || packages+=(npm)
have python3 || packages+=(python3)
{ have python3 && python3 -m pip --version >/dev/null 2>&1; } || packages+=(python3-pip)
# scripts/schemathesis.sh makes a venv: Debian's python3 needs python3-venv (ensurepip) for it.
{ have python3 && python3 -c 'import ensurepip' >/dev/null 2>&1; } || packages+=(python3-venv)
# Likewise an engine from Docker's own packages (docker-ce) conflicts with docker.io.
have dockerd || packages+=(docker.io)

installed() {
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}
missing=()
for pkg in "${packages[@]}"; do
  installed "$pkg" || missing+=("$pkg")
done
if [ "${#missing[@]}" -eq 0 ]; then
  log "system packages: all present"
else
  log "system packages: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -q
  "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# Debian's docker-registry package enables a system registry on :5000 where systemd runs;
# the tests start their own on a loopback port, so the system one stays off.
if have systemctl && systemctl is-enabled docker-registry >/dev/null 2>&1; then
  "${SUDO[@]}" systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi

# --- Rust -----------------------------------------------------------------------------------
if ! have cargo && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if have cargo; then
  log "rust: $(cargo --version)"
else
  log "rust: installing the stable toolchain with rustup"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
    sh -s -- -y --profile minimal --default-toolchain stable --component rustfmt,clippy
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if have rustup; then
  # The test suite runs `cargo fmt` and `cargo clippy`: make sure both components exist.
  { cargo fmt --version >/dev/null 2>&1 && cargo clippy --version >/dev/null 2>&1; } ||
    rustup component add rustfmt clippy
fi

# --- npm packages ----------------------------------------------------------------------------
# `npm ci` only when node_modules is missing or was installed from another package-lock.json;
# the lock's hash is stamped into node_modules after a successful install.
# Extra arguments go to npm ci.
npm_ci() {
  local dir=$1 stamp="$1/node_modules/.sutazai-lock.sha256" want label=${1#"$ROOT"/}
  shift
  [ "$label" != "$dir" ] || label="(root)"
  [ -f "$dir/package-lock.json" ] || die "$dir/package-lock.json is missing"
  want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    log "npm: $label up to date"
    return
  fi
  log "npm: installing $label (npm ci)"
  (cd "$dir" && npm ci --no-audit --no-fund "$@")
  printf '%s\n' "$want" >"$stamp"
}
npm_ci "$ROOT"
npm_ci "$ROOT/ui"

# --- dashboard -------------------------------------------------------------------------------
# The app embeds ui/dist at compile time, so cargo cannot build it without one. Rebuild it
# only when its sources changed: a fresh ui/dist makes cargo recompile the app.
ui_hash=$(
  cd "$ROOT/ui" &&
    find . \( -name node_modules -o -name dist \) -prune -o -type f -print0 |
    sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
)
ui_stamp="$ROOT/ui/node_modules/.sutazai-dist.sha256"
if [ -f "$ROOT/ui/dist/index.html" ] && [ -f "$ui_stamp" ] && [ "$(cat "$ui_stamp")" = "$ui_hash" ]; then
  log "dashboard: ui/dist up to date"
else
  log "dashboard: building ui/dist"
  (cd "$ROOT/ui" && npm run --silent build)
  printf '%s\n' "$ui_hash" >"$ui_stamp"
fi

# --- test parts -------------------------------------------------------------------------------
if [ "$WITH_TEST" -eq 1 ]; then
  [ -f "$ROOT/tests/llm-server/package-lock.json" ] || die "tests/llm-server/package-lock.json is missing"
  # As scripts/test-llm.sh installs it: only the prebuilt CPU llama.cpp binary, which is a
  # direct dependency there, without optional GPU builds or install scripts.
  npm_ci "$ROOT/tests/llm-server" --omit=optional --ignore-scripts
  [ -f "$ROOT/scripts/fetch-test-model.sh" ] || die "scripts/fetch-test-model.sh is missing"
  log "test model: scripts/fetch-test-model.sh"
  bash "$ROOT/scripts/fetch-test-model.sh"
  # The spec's Python examples (tests/spec-examples) import requests and websockets; the
  # alert delivery test runs a real SMTP server (aiosmtpd).
  if ! python3 -c 'import requests, websockets, aiosmtpd' 2>/dev/null; then
    log "python packages for the tests: requests, websockets, aiosmtpd"
    # pip where the interpreter allows it; Debian's packages where it is externally managed.
    python3 -m pip install --quiet 'requests>=2.28' 'websockets>=11' 'aiosmtpd>=1.4' 2>/dev/null ||
      "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-requests python3-websockets python3-aiosmtpd ||
      die "could not install the python packages requests, websockets and aiosmtpd"
  fi
  # The dashboard's end-to-end test drives the real window through tauri-driver (with
  # WebKitWebDriver from webkit2gtk-driver) and a WebdriverIO client.
  if ! have tauri-driver && [ ! -x "$HOME/.cargo/bin/tauri-driver" ]; then
    log "tauri-driver 2.1.0 (cargo install, ~30 s)"
    CARGO_TARGET_DIR=/var/cache/sutazai/tools-target cargo install tauri-driver --locked --version 2.1.0 ||
      die "could not install tauri-driver"
  fi
  if [ -f "$ROOT/tests/ui-e2e/package-lock.json" ]; then
    npm_ci "$ROOT/tests/ui-e2e" --ignore-scripts
  fi
fi

# --- build cache -------------------------------------------------------------------------------
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/sutazai/target}
export CARGO_TARGET_DIR
if ! mkdir -p "$CARGO_TARGET_DIR" 2>/dev/null; then
  "${SUDO[@]}" mkdir -p "$CARGO_TARGET_DIR"
  "${SUDO[@]}" chown "$(id -u):$(id -g)" "$CARGO_TARGET_DIR"
fi
log "done; builds share one cache:"
printf 'export CARGO_TARGET_DIR=%q\n' "$CARGO_TARGET_DIR"
