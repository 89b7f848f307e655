#!/usr/bin/env bash
# Runs the spec's two message-bus examples ("Send message", "Broadcast message") as curl
# requests, with the spec's paths and bodies unchanged, against the server on
# localhost:8000 (run.sh starts one). Fails unless each answers 200 with a message_id.
set -euo pipefail
BASE="http://localhost:8000"

check() {
  local name="$1" response="$2"
  local status="${response##*$'\n'}" body="${response%$'\n'*}"
  echo "--- $name answered $status: $body"
  if [ "$status" != 200 ]; then
    echo "$name: expected HTTP 200, got $status" >&2
    return 1
  fi
  python3 -c '
import json, sys
body = json.loads(sys.argv[1])
if not isinstance(body.get("message_id"), str) or not body["message_id"]:
    sys.exit(f"{sys.argv[2]}: no message_id in {body}")
' "$body" "$name"
}

# Send message
send=$(curl -sS -w '\n%{http_code}' -X POST "$BASE/messages/send?sender_id=orchestrator" \
  -H 'Content-Type: application/json' -d '{
  "recipient_id": "senior-ai-engineer",
  "message_type": "task_request",
  "pattern": "point_to_point",
  "priority": "high",
  "payload": {"task_id": "123", "action": "analyze"}
}')
check "send message" "$send"

# Broadcast message
broadcast=$(curl -sS -w '\n%{http_code}' -X POST "$BASE/messages/broadcast?sender_id=orchestrator" \
  -H 'Content-Type: application/json' -d '{
  "message_type": "system_announcement",
  "priority": "normal",
  "payload": {"message": "System maintenance in 1 hour"}
}')
check "broadcast message" "$broadcast"
echo "message examples: ok"
