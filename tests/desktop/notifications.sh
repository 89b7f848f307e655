#!/usr/bin/env bash
# The real desktop app (`sutazai`, no subcommand) under Xvfb on a private D-Bus session:
#  - native notifications: an agent driven to failure (LLM endpoint refusing connections)
#    fires the success-rate alert; the notification daemon (dunst, started by D-Bus on
#    demand) must receive a Notify call for it and one for the failed task, and the alert
#    must record the `desktop` delivery;
#  - the tray: with no tray host the app keeps running; with one (trayer, an XEmbed tray),
#    a tray icon window appears.
# Usage: tests/desktop/notifications.sh [path/to/sutazai]   (run by scripts/test.sh)
set -euo pipefail
BIN=${1:-${CARGO_TARGET_DIR:-/var/cache/sutazai/target}/debug/sutazai}
[ -x "$BIN" ] || { echo "no desktop binary at $BIN" >&2; exit 2; }
if [ -z "${INSIDE_SESSION:-}" ]; then
  export INSIDE_SESSION=1
  exec xvfb-run -a -s "-screen 0 1280x800x24" dbus-run-session -- bash "$0" "$BIN"
fi

work=$(mktemp -d)
app_pid=""; mon_pid=""; tray_pid=""
cleanup() {
  for p in $app_pid $mon_pid $tray_pid; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; echo "--- app log:" >&2; tail -40 "$work/app.log" >&2 || true; exit 1; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

dbus-monitor --session "interface='org.freedesktop.Notifications',member='Notify'" \
  "interface='org.freedesktop.Notifications',member='ActionInvoked'" >"$work/notify.log" 2>&1 &
mon_pid=$!

start_app() {
  env -u SUTAZAI_CONFIG -u REDIS_URL -u SUTAZAI_LOCAL_AGENTS -u SUTAZAI_SERVICES_DIR \
    HOME="$work/home" XDG_CONFIG_HOME="$work/home/.config" \
    ORCHESTRATION_API_HOST=127.0.0.1 ORCHESTRATION_API_PORT="$port" \
    SUTAZAI_DATA_DIR="$work/${DATA:-data}" SUTAZAI_AGENTS_DIR="$work/${DATA:-data}/agents" \
    OLLAMA_API_URL=http://127.0.0.1:9 SUTAZAI_MAX_ATTEMPTS=1 SUTAZAI_OUTAGE_WAIT=1 LOG_LEVEL=info \
    DOCKER_HOST=unix:///nonexistent/sutazai-desktop-test.sock \
    "$BIN" >>"$work/app.log" 2>&1 &
  app_pid=$!
  for _ in $(seq 1 300); do
    curl -sf "$base/health" >/dev/null && return 0
    kill -0 "$app_pid" 2>/dev/null || fail "the app exited during start-up"
    sleep 0.2
  done
  fail "the app's API did not come up"
}

# SIGTERM, then at most 60 s for a graceful stop (a zombie counts as stopped).
stop_app() {
  kill "$app_pid" 2>/dev/null || true
  for _ in $(seq 1 300); do
    state=$(awk '{print $3}' "/proc/$app_pid/stat" 2>/dev/null || echo gone)
    [ "$state" = Z ] || [ "$state" = gone ] && break
    sleep 0.2
  done
  [ "$state" = Z ] || [ "$state" = gone ] || fail "the app did not stop within 60 s of SIGTERM"
  wait "$app_pid" 2>/dev/null || true
  app_pid=""
}

# 1. No tray host: the app starts, serves and keeps running.
start_app
sleep 2
kill -0 "$app_pid" 2>/dev/null || fail "the app died without a tray host"
echo "ok: the app runs without a tray host (pid $app_pid)"

# Single instance: a second launch hands over to the first and ends.
began=$(date +%s.%N)
second=0
env HOME="$work/home" XDG_CONFIG_HOME="$work/home/.config" ORCHESTRATION_API_PORT="$port" \
  SUTAZAI_DATA_DIR="$work/data2" DOCKER_HOST=unix:///nonexistent/sutazai-desktop-test.sock \
  timeout 30 "$BIN" >"$work/second.log" 2>&1 || second=$?
[ "$second" = 0 ] || { cat "$work/second.log"; fail "the second launch exited with $second"; }
kill -0 "$app_pid" 2>/dev/null || fail "the first instance died when a second was launched"
grep -q "a second launch: focusing the running app" "$work/app.log" || fail "the first instance was not told of the second launch"
echo "ok: a second launch ended in $(python3 -c "import time; print(round(time.time() - $began, 2))") s and the first instance focused its window"

# 2. An alert and a failed task reach the notification daemon.
rule=$(curl -sf "$base/alerts" | json "json.dumps([r for r in d['rules'] if r['id']=='agent_success_rate_low'][0])")
rule=$(python3 -c "import json,sys; r=json.loads(sys.argv[1]); r['for_seconds']=1; print(json.dumps(r))" "$rule")
curl -sf -X PUT -H 'content-type: application/json' -d "$rule" "$base/alerts/rules/agent_success_rate_low" >/dev/null \
  || fail "could not shorten the rule"
task=$(curl -sf -H 'content-type: application/json' -d '{"name": "doomed desktop task", "description": "Name one benefit of unit tests.", "requirements": ["code_generation"], "coordination_pattern": "pipeline", "constraints": {"max_agents": 1}}' "$base/tasks" | json "d['task_id']")
for _ in $(seq 1 150); do
  status=$(curl -sf "$base/tasks/$task" | json "d['status']")
  [ "$status" = failed ] && break
  sleep 0.2
done
[ "$status" = failed ] || fail "the task did not fail (status $status)"
for _ in $(seq 1 150); do
  if grep -q "Task failed: doomed desktop task" "$work/notify.log" && grep -q "success rate is 0%" "$work/notify.log"; then
    break
  fi
  sleep 0.2
done
grep -q "Task failed: doomed desktop task" "$work/notify.log" || { cat "$work/notify.log"; fail "no Notify call for the failed task"; }
grep -q "success rate is 0%" "$work/notify.log" || { cat "$work/notify.log"; fail "no Notify call for the alert"; }
echo "ok: the notification daemon received $(grep -c 'member=Notify' "$work/notify.log") Notify calls:"
grep -A5 'member=Notify' "$work/notify.log" | grep -E '^ +string "(Task|Warning|Critical|Resolved|Info)' | sed 's/^ */    /' | head -6
urgency=$(grep -A40 'Task failed' "$work/notify.log" | grep -A1 '"urgency"' | grep -o 'byte [0-9]' | head -1)
echo "ok: urgency of the failed-task notification: $urgency (1 = normal)"
for _ in $(seq 1 50); do
  delivered=$(curl -sf "$base/alerts?status=firing" | json "sum(1 for a in d['alerts'] for x in a['deliveries'] if x['channel']=='desktop' and x['status']=='delivered')")
  [ "$delivered" -ge 1 ] && break
  sleep 0.2
done
[ "$delivered" -ge 1 ] || fail "no alert records a desktop delivery"
echo "ok: $delivered alert(s) record their desktop delivery"

# A click on a notification (dunst's default action, as a user's click would invoke it)
# opens the view it is about. The newest notification shown is the one clicked.
dunstctl action 0 || fail "dunstctl could not invoke the notification's action"
for _ in $(seq 1 50); do
  grep -q "notification clicked: opening the dashboard view" "$work/app.log" && break
  sleep 0.2
done
grep -q 'member=ActionInvoked' "$work/notify.log" || { cat "$work/notify.log"; fail "the daemon sent no ActionInvoked signal"; }
opened=$(grep -o 'notification clicked: opening the dashboard view [^ ]*' "$work/app.log" | awk '{print $NF}' | head -1)
[ -n "$opened" ] || fail "the app did not act on the notification click"
grep -q "could not open the dashboard view" "$work/app.log" && fail "the view could not be opened"
case "$opened" in \#/alerts*|\#/tasks/*) ;; *) fail "the click opened an unexpected view: $opened" ;; esac
echo "ok: clicking the notification (dunstctl action 0) sent ActionInvoked and opened the dashboard at $opened"

# 3. With a tray host the icon is docked (a window of the app inside trayer's).
stop_app
if command -v trayer >/dev/null; then
  trayer --edge top --align right --widthtype pixel --width 200 --height 32 >"$work/trayer.log" 2>&1 &
  tray_pid=$!
  sleep 1
  # A fresh data directory: no alert of the earlier steps comes back to colour the icon.
  DATA=data-tray start_app
  panel=""; icon=""
  for _ in $(seq 1 75); do
    panel=$(xwininfo -root -tree | awk '/\("panel" "trayer"\)/ {print $1; exit}')
    icon=$(xwininfo -id "$panel" -tree 2>/dev/null | awk '/"tray-icon tray app main"/ {print $1; exit}')
    [ -n "$icon" ] && break
    sleep 0.2
  done
  [ -n "$icon" ] || { xwininfo -root -tree | head -30; fail "no tray icon docked in trayer's panel"; }
  sleep 3  # the first refresh sets the health colour
  # No window manager here: move the dashboard window out of the way to see the panel.
  xwininfo -root -tree | awk '/"SutazAI": \("sutazai" "Sutazai"\)/ {print $1}' | while read -r w; do xdotool windowunmap "$w"; done
  sleep 0.5
  xwininfo -id "$icon" >"$work/icon.info"
  eval "$(awk '/Absolute upper-left X/ {print "x=" $4} /Absolute upper-left Y/ {print "y=" $4} /Width:/ {print "w=" $2} /Height:/ {print "h=" $2}' "$work/icon.info")"
  import -window root -crop "${w}x${h}+${x}+${y}" "$work/tray.png"
  colour=$(/usr/bin/convert "$work/tray.png" -format "%[pixel:p{$((w / 2)),$((h / 2))}]" info:)
  echo "ok: tray icon docked in trayer's panel (window $icon inside $panel, ${w}x${h} at $x,$y), centre pixel $colour"
  [ -n "${TRAY_SHOT:-}" ] && cp "$work/tray.png" "$TRAY_SHOT"
  case "$colour" in
    *"(34,197,94)"*) echo "ok: the icon is green (healthy)";;
    *) fail "the tray icon is not the healthy green: $colour";;
  esac
  # The menu acts: keyboard through it as a person would (GTK skips the disabled task
  # count and the separators): Open, Deploy all, Services, Pause orchestration.
  menu_pick() { # $1 = number of Down presses
    xdotool mousemove $((x + w / 2)) $((y + h / 2)) click 1
    sleep 1
    for _ in $(seq 1 "$1"); do xdotool key Down; sleep 0.2; done
    xdotool key Return
    sleep 1
  }
  menu_pick 4
  paused=$(curl -sf "$base/status" | json "d['paused']")
  [ "$paused" = True ] || fail "'Pause orchestration' in the tray menu did not pause (paused=$paused)"
  echo "ok: tray menu 'Pause orchestration' paused the orchestrator (/status paused=$paused)"
  menu_pick 5
  autostart="$work/home/.config/autostart/SutazAI.desktop"
  [ -f "$autostart" ] || { ls -la "$work/home/.config/autostart" 2>&1; fail "'Start at login' wrote no autostart entry"; }
  echo "ok: tray menu 'Start at login' wrote $(basename "$autostart"): $(grep -m1 '^Exec=' "$autostart")"
  menu_pick 6
  for _ in $(seq 1 50); do kill -0 "$app_pid" 2>/dev/null || break; sleep 0.2; done
  kill -0 "$app_pid" 2>/dev/null && fail "'Quit SutazAI' did not end the app"
  wait "$app_pid" 2>/dev/null || true
  app_pid=""
  grep -q "stopping the orchestrator" "$work/app.log" || fail "the app did not stop its orchestrator on quit"
  echo "ok: tray menu 'Quit SutazAI' ended the app after a graceful stop"
else
  echo "skip: trayer is not installed (scripts/setup.sh --test installs it)"
fi
echo "desktop notifications and tray: ok"
