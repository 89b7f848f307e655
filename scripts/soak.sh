#!/usr/bin/env bash
# The soak of issue 7, on demand (about 30 minutes for 10,000 tasks on 2 cores): builds the
# release `sutazai-headless` and the driver (tests/src/bin/soak.rs), makes sure Redis, the
# Docker engine, node and the test model are there, and runs the driver, which starts its
# own Redis, test LLM and server, submits SOAK_TASKS tasks faster than they complete, injects
# the faults in SOAK_FAULTS one at a time (serve, redis, llm, docker) and checks every
# accepted task completed once. The report goes to stdout and to SOAK_REPORT
# (default: $CARGO_TARGET_DIR/soak-report.md).
#
#   SOAK_TASKS=10000 SOAK_CONCURRENCY=4 SOAK_FAULTS=serve,redis,llm,docker bash scripts/soak.sh
#
# The docker fault stops and restarts the machine's dockerd (root needed); leave it out of
# SOAK_FAULTS on a machine where that is not wanted.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/sutazai/target}
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
export SOAK_REPORT=${SOAK_REPORT:-$CARGO_TARGET_DIR/soak-report.md}
log() { printf '[soak] %s\n' "$*" >&2; }

bash scripts/setup.sh --test >&2
if [[ ",${SOAK_FAULTS:-serve,redis,llm,docker}," == *,docker,* ]] && ! docker info >/dev/null 2>&1; then
  log "starting dockerd"
  mkdir -p /var/cache/sutazai/run
  # In a subshell, so the engine is not a child of the driver this script becomes.
  (setsid dockerd --storage-driver=vfs --iptables=false --bridge=none \
    >>/var/cache/sutazai/run/dockerd.log 2>&1 </dev/null &)
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { log "dockerd did not come up"; exit 1; }
fi
SUTAZAI_TEST_MODEL=$(bash scripts/fetch-test-model.sh | tail -n 1)
export SUTAZAI_TEST_MODEL
log "building the release server and the driver"
cargo build --release -q -p sutazai-cli --bin sutazai-headless
cargo build -q -p sutazai-tests --bin soak
export SOAK_HEADLESS="$CARGO_TARGET_DIR/release/sutazai-headless"
exec "$CARGO_TARGET_DIR/debug/soak"
