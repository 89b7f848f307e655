#!/usr/bin/env bash
# Desktop app figures for BENCHMARKS.md (issue 6), on demand:
#  - cold start: from launching `sutazai` to a rendered dashboard (the window's screenshot
#    shows the dashboard's dark sidebar, which only the rendered app paints: the boot
#    placeholder and a blank webview are light there), over RUNS fresh data directories;
#  - idle after IDLE_WAIT seconds with the dashboard on its Overview: memory of the app and
#    all its processes (the WebKit web and network processes included) as RSS and as PSS
#    (shared pages divided among the processes sharing them: the honest sum), and CPU % of
#    one core over IDLE_MEASURE seconds, from /proc.
# Usage: scripts/bench-desktop.sh [path/to/sutazai]  (default: the installed /usr/bin/sutazai)
set -euo pipefail
BIN=${1:-/usr/bin/sutazai}
RUNS=${RUNS:-3}
IDLE_WAIT=${IDLE_WAIT:-60}
IDLE_MEASURE=${IDLE_MEASURE:-30}
[ -x "$BIN" ] || { echo "no desktop binary at $BIN" >&2; exit 2; }
if [ -z "${INSIDE_SESSION:-}" ]; then
  export INSIDE_SESSION=1
  exec xvfb-run -a -s "-screen 0 1280x800x24" dbus-run-session -- bash "$0" "$BIN"
fi
work=$(mktemp -d)
app_pid=""
cleanup() { [ -n "$app_pid" ] && kill "$app_pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

launch() { # $1 = data dir
  env -u SUTAZAI_CONFIG -u REDIS_URL HOME="$work/home" ORCHESTRATION_API_HOST=127.0.0.1 \
    ORCHESTRATION_API_PORT="$port" SUTAZAI_DATA_DIR="$1" SUTAZAI_AGENTS_DIR="$1/agents" \
    OLLAMA_API_URL="${OLLAMA_API_URL:-http://127.0.0.1:9}" LOG_LEVEL=warn \
    DOCKER_HOST="${DOCKER_HOST:-unix:///nonexistent/sutazai-bench.sock}" \
    ${BENCH_ENV:-} "$BIN" >>"$work/app.log" 2>&1 &
  app_pid=$!
}

# The app and every process below it.
tree() {
  local pids=("$1") i=0
  while [ $i -lt ${#pids[@]} ]; do
    for c in $(cat /proc/"${pids[$i]}"/task/*/children 2>/dev/null); do pids+=("$c"); done
    i=$((i + 1))
  done
  echo "${pids[@]}"
}

starts=()
for run in $(seq 1 "$RUNS"); do
  began=$(date +%s.%N)
  launch "$work/data$run"
  rendered=""
  for _ in $(seq 1 300); do
    win=$(xwininfo -root -tree 2>/dev/null | awk '/"SutazAI": \("sutazai" "Sutazai"\)/ {print $1; exit}')
    if [ -n "$win" ] && import -window "$win" "$work/shot.png" 2>/dev/null; then
      # Sums of the red, green and blue levels (0-255 each): inside the sidebar (dark
      # slate once rendered) and in the content area (light); an unpainted window is black.
      read -r level content < <(/usr/bin/convert "$work/shot.png" -format '%[fx:int(255*(p{100,600}.r+p{100,600}.g+p{100,600}.b))] %[fx:int(255*(p{700,700}.r+p{700,700}.g+p{700,700}.b))]\n' info: 2>/dev/null || echo "765 0")
      if [ "$level" -gt 40 ] && [ "$level" -lt 250 ] && [ "$content" -gt 500 ]; then rendered=$(date +%s.%N); break; fi
    fi
    sleep 0.05
  done
  [ -n "$rendered" ] || { tail -20 "$work/app.log"; echo "run $run: the dashboard did not render" >&2; exit 1; }
  starts+=("$(python3 -c "print(f'{$rendered - $began:.2f}')")")
  echo "run $run: rendered dashboard after ${starts[-1]} s (sidebar level $level)"
  if [ "$run" -lt "$RUNS" ]; then kill "$app_pid"; wait "$app_pid" 2>/dev/null || true; app_pid=""; fi
done
cp "$work/shot.png" "${SHOT:=/tmp/sutazai-bench-window.png}"
echo "cold start to a rendered dashboard: ${starts[*]} s (median $(printf '%s\n' "${starts[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p") s)"

# The first launch opens the welcome flow; the Overview (live graphs) is what stays open.
xdotool mousemove 60 70 click 1
sleep 2
import -window root "$work/overview.png" && cp "$work/overview.png" "${SHOT%.png}-overview.png" 2>/dev/null || true
echo "idle: waiting ${IDLE_WAIT} s with the dashboard's Overview open"
sleep "$IDLE_WAIT"
pids=$(tree "$app_pid")
rss=0; pss=0; files=0; names=""
for p in $pids; do
  r=$(awk '/^Rss:/ {print $2}' /proc/"$p"/smaps_rollup 2>/dev/null || echo 0)
  q=$(awk '/^Pss:/ {print $2}' /proc/"$p"/smaps_rollup 2>/dev/null || echo 0)
  pf=$(awk '/^Pss_File:/ {print $2}' /proc/"$p"/smaps_rollup 2>/dev/null || echo 0)
  rss=$((rss + r)); pss=$((pss + q)); files=$((files + pf))
  a=$(awk '/^Anonymous:/ {print $2}' /proc/"$p"/smaps_rollup 2>/dev/null || echo 0)
  names="$names $(cat /proc/"$p"/comm 2>/dev/null)(RSS $((r / 1024)), PSS $((q / 1024)), anon $((a / 1024)) MiB)"
done
echo "processes:$names"
echo "memory after ${IDLE_WAIT} s idle: RSS $((rss / 1024)) MiB, PSS $((pss / 1024)) MiB (all processes; of the PSS, $((files / 1024)) MiB is mapped files: the program and its libraries)"
ticks() { local t=0; for p in $pids; do t=$((t + $(awk '{print $14 + $15}' /proc/"$p"/stat 2>/dev/null || echo 0))); done; echo $t; }
declare -A before
for p in $pids; do before[$p]=$(awk '{print $14 + $15}' /proc/"$p"/stat 2>/dev/null || echo 0); done
t0=$(ticks); sleep "$IDLE_MEASURE"; t1=$(ticks)
hz=$(getconf CLK_TCK)
for p in $pids; do
  now=$(awk '{print $14 + $15}' /proc/"$p"/stat 2>/dev/null || echo 0)
  echo "  $(cat /proc/"$p"/comm 2>/dev/null): $(python3 -c "print(f'{($now - ${before[$p]}) / $hz / $IDLE_MEASURE * 100:.2f}')") %"
done
for x in $(pgrep -x Xvfb); do echo "  (Xvfb, not counted: $(awk '{print $14 + $15}' /proc/$x/stat) ticks total)"; done
echo "CPU while idle: $(python3 -c "print(f'{($t1 - $t0) / $hz / $IDLE_MEASURE * 100:.2f}')") % of one core over ${IDLE_MEASURE} s"

# The window hidden, as when it is closed to the tray (the dashboard's polls stop while
# the page is hidden): the app's resting state. Unmapping the window is what hiding does.
win=$(xwininfo -root -tree 2>/dev/null | awk '/"SutazAI": \("sutazai" "Sutazai"\)/ {print $1; exit}')
if [ -n "$win" ]; then
  xdotool windowunmap "$win"
  sleep 10
  t0=$(ticks); sleep "$IDLE_MEASURE"; t1=$(ticks)
  echo "CPU with the window hidden: $(python3 -c "print(f'{($t1 - $t0) / $hz / $IDLE_MEASURE * 100:.2f}')") % of one core over ${IDLE_MEASURE} s"
fi
