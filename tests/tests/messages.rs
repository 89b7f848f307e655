//! The message-bus routes end to end over real HTTP: the spec's two examples, refusals
//! with the bus's codes, expiry and the rate limit feeding the dead-letter queue, which
//! is then inspected, replayed, deleted from and purged; `/workers`, the bus section of
//! `/status`, and `/ws/agent/{id}` observing a message sent to its agent.
//!
//! The REST test runs a real `sutazai serve` (the headless build) with a low rate limit
//! (`SUTAZAI_BUS_RATE_LIMIT`, `SUTAZAI_BUS_RATE_BURST`), since only `serve` announces
//! itself on the bus; the WebSocket test uses the in-process stack. No model call happens
//! here, so the LLM address points nowhere.

use std::process::{Child, Stdio};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use sutazai_tests::{
    Stack, free_port, headless_binary, headless_command, test_config, wait_healthy,
};

/// Nothing listens here.
const NO_LLM: &str = "http://127.0.0.1:9";
/// The serve's per-sender limit: 5 messages/s, burst 20.
const RATE_LIMIT: &str = "5";
const RATE_BURST: &str = "20";

/// The spec's "Send message" example, verbatim.
const SPEC_SEND_PATH: &str = "/messages/send?sender_id=orchestrator";
const SPEC_SEND_BODY: &str = r#"{
  "recipient_id": "senior-ai-engineer",
  "message_type": "task_request",
  "pattern": "point_to_point",
  "priority": "high",
  "payload": {"task_id": "123", "action": "analyze"}
}"#;

/// The spec's "Broadcast message" example, verbatim.
const SPEC_BROADCAST_PATH: &str = "/messages/broadcast?sender_id=orchestrator";
const SPEC_BROADCAST_BODY: &str = r#"{
  "message_type": "system_announcement",
  "priority": "normal",
  "payload": {"message": "System maintenance in 1 hour"}
}"#;

/// A `sutazai serve` process; killed on drop.
struct Serve {
    base: String,
    child: Child,
    _data: tempfile::TempDir,
}

impl Serve {
    async fn start() -> Serve {
        let bin = headless_binary().expect("sutazai-headless");
        let data = tempfile::tempdir().expect("temp dir");
        let port = free_port().expect("free port");
        let child = headless_command(&bin, NO_LLM, port, data.path())
            .env("SUTAZAI_BUS_RATE_LIMIT", RATE_LIMIT)
            .env("SUTAZAI_BUS_RATE_BURST", RATE_BURST)
            .env_remove("REDIS_URL")
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting sutazai-headless serve");
        let base = format!("http://127.0.0.1:{port}");
        let serve = Serve {
            base,
            child,
            _data: data,
        };
        wait_healthy(&serve.base).await.expect("serve up");
        serve
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn assert_error(status: u16, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["code"], want_code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

async fn answer(request: reqwest::RequestBuilder) -> (u16, Value) {
    let r = request.send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json body"))
}

/// Posts a raw JSON text, as curl would.
async fn post_raw(base: &str, path: &str, body: &str) -> (u16, Value) {
    answer(
        reqwest::Client::new()
            .post(format!("{base}{path}"))
            .header("content-type", "application/json")
            .body(body.to_owned()),
    )
    .await
}

async fn post(base: &str, path: &str, body: &Value) -> (u16, Value) {
    answer(
        reqwest::Client::new()
            .post(format!("{base}{path}"))
            .json(body),
    )
    .await
}

async fn get(base: &str, path: &str) -> (u16, Value) {
    answer(reqwest::Client::new().get(format!("{base}{path}"))).await
}

async fn delete(base: &str, path: &str) -> (u16, Value) {
    answer(reqwest::Client::new().delete(format!("{base}{path}"))).await
}

fn letters(list: &Value) -> Vec<Value> {
    list["dead_letters"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_refuse_dead_letter_replay_and_purge() {
    let serve = Serve::start().await;
    let base = serve.base.as_str();

    // The spec's two examples.
    let (s, b) = post_raw(base, SPEC_SEND_PATH, SPEC_SEND_BODY).await;
    assert_eq!(s, 200, "{b}");
    assert!(
        b["message_id"].as_str().is_some_and(|id| !id.is_empty()),
        "{b}"
    );
    assert_eq!(b["status"], "sent");
    assert_eq!(b["pattern"], "point_to_point");
    assert_eq!(b["queue"], "inbox:senior-ai-engineer");
    assert!(b.get("delivered").is_none(), "{b}");
    let (s, b) = post_raw(base, SPEC_BROADCAST_PATH, SPEC_BROADCAST_BODY).await;
    assert_eq!(s, 200, "{b}");
    assert!(
        b["message_id"].as_str().is_some_and(|id| !id.is_empty()),
        "{b}"
    );
    assert_eq!(b["pattern"], "broadcast");
    assert_eq!(b["queue"], "broadcast");

    // Refusals, each with the bus's code.
    let (s, b) = post(
        base,
        "/messages/send?sender_id=tester",
        &json!({"message_type": "task_request", "payload": {}}),
    )
    .await;
    assert_error(s, &b, 400, "missing_recipient");
    let (s, b) = post(
        base,
        "/messages/send?sender_id=tester",
        &json!({"recipient_id": "nobody", "message_type": "task_request"}),
    )
    .await;
    assert_error(s, &b, 404, "agent_not_found");
    let (s, b) = post(
        base,
        "/messages/send?sender_id=tester",
        &json!({"message_type": "status_update", "pattern": "pub_sub", "topic": "bad topic!"}),
    )
    .await;
    assert_error(s, &b, 400, "invalid_name");
    assert!(
        b["message"].as_str().unwrap_or_default().contains("topic"),
        "{b}"
    );
    let (s, b) = post(
        base,
        "/messages/send?sender_id=tester",
        &json!({"message_type": "status_update", "pattern": "pub_sub"}),
    )
    .await;
    assert_error(s, &b, 400, "missing_topic");
    let (s, b) = post(
        base,
        "/messages/send?sender_id=bad%20sender",
        &json!({"message_type": "system_announcement"}),
    )
    .await;
    assert_error(s, &b, 400, "invalid_name");

    // ttl_seconds: an alternative to expires_at, in range.
    let (s, b) = post(
        base,
        "/messages/send?sender_id=tester",
        &json!({"recipient_id": "senior-ai-engineer", "message_type": "task_request", "ttl_seconds": 60}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    for ttl in [0, 604_801] {
        let (s, b) = post(
            base,
            "/messages/broadcast?sender_id=tester",
            &json!({"message_type": "system_announcement", "ttl_seconds": ttl}),
        )
        .await;
        assert_error(s, &b, 400, "invalid_request");
        assert!(
            b["message"]
                .as_str()
                .unwrap_or_default()
                .contains("ttl_seconds"),
            "{b}"
        );
    }
    let (s, b) = post(
        base,
        "/messages/broadcast?sender_id=tester",
        &json!({"message_type": "system_announcement", "ttl_seconds": 60, "expires_at": "2999-01-01T00:00:00Z"}),
    )
    .await;
    assert_error(s, &b, 400, "invalid_request");

    // Expired on arrival: refused and dead-lettered.
    let (s, b) = post(
        base,
        "/messages/send?sender_id=expirer",
        &json!({"recipient_id": "senior-ai-engineer", "message_type": "task_request",
                "payload": {"n": 1}, "expires_at": "2000-01-01T00:00:00Z"}),
    )
    .await;
    assert_error(s, &b, 400, "message_expired");
    let (s, list) = get(base, "/messages/dead-letters?reason=expired").await;
    assert_eq!(s, 200, "{list}");
    let expired = letters(&list);
    assert_eq!(list["count"], expired.len());
    let expired = expired
        .into_iter()
        .find(|l| l["message"]["sender_id"] == "expirer")
        .unwrap_or_else(|| panic!("the expired message is not dead-lettered: {list}"));
    assert_eq!(expired["reason"], "expired");
    assert_eq!(expired["message"]["payload"]["n"], 1);

    // Bad listing queries.
    let (s, b) = get(base, "/messages/dead-letters?reason=lost").await;
    assert_error(s, &b, 400, "invalid_reason");
    assert!(
        b["message"]
            .as_str()
            .unwrap_or_default()
            .contains("rate_limited"),
        "{b}"
    );
    for query in ["limit=0", "limit=1001", "limit=many"] {
        let (s, b) = get(base, &format!("/messages/dead-letters?{query}")).await;
        assert_error(s, &b, 400, "invalid_query");
    }

    // Flood one sender past its rate limit (5/s, burst 20): refused with 429 and
    // Retry-After, and the refused messages are dead-lettered.
    let client = reqwest::Client::new();
    let url = format!("{}/messages/send?sender_id=flooder", serve.base);
    let body =
        json!({"message_type": "status_update", "pattern": "pub_sub", "topic": "load.flood"});
    let mut refused = None;
    'flood: for _ in 0..10 {
        let batch = (0..25).map(|_| client.post(&url).json(&body).send());
        for r in futures::future::join_all(batch).await {
            let r = r.expect("request");
            match r.status().as_u16() {
                200 => {}
                429 => {
                    let retry_after = r
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok());
                    let body: Value = r.json().await.expect("json body");
                    refused = Some((retry_after, body));
                    break 'flood;
                }
                other => panic!(
                    "flood answered {other}: {}",
                    r.text().await.unwrap_or_default()
                ),
            }
        }
    }
    let (retry_after, b) = refused.expect("250 messages in bursts of 25 were never rate limited");
    assert_error(429, &b, 429, "rate_limited");
    assert!(
        retry_after.is_some_and(|s| s >= 1),
        "Retry-After: {retry_after:?}"
    );
    let (s, list) = get(
        base,
        "/messages/dead-letters?reason=rate_limited&limit=1000",
    )
    .await;
    assert_eq!(s, 200, "{list}");
    let limited = letters(&list);
    assert!(!limited.is_empty(), "{list}");
    assert!(
        limited
            .iter()
            .all(|l| l["reason"] == "rate_limited" && l["message"]["sender_id"] == "flooder"),
        "{list}"
    );

    // One dead letter, by id.
    let id = expired["id"].as_str().expect("dead letter id").to_owned();
    let (s, b) = get(base, &format!("/messages/dead-letters/{id}")).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b, expired);
    let (s, b) = get(base, "/messages/dead-letters/no-such-letter").await;
    assert_error(s, &b, 404, "dead_letter_not_found");

    // Replay the expired one: published again (without its expiry) and gone from the queue.
    let (s, b) = post(
        base,
        &format!("/messages/dead-letters/{id}/replay"),
        &json!({}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], "replayed");
    assert_eq!(b["message_id"], expired["message"]["id"]);
    assert_eq!(b["queue"], "inbox:senior-ai-engineer");
    let (s, b) = get(base, &format!("/messages/dead-letters/{id}")).await;
    assert_error(s, &b, 404, "dead_letter_not_found");
    let (s, b) = post(
        base,
        &format!("/messages/dead-letters/{id}/replay"),
        &json!({}),
    )
    .await;
    assert_error(s, &b, 404, "dead_letter_not_found");

    // Delete one rate-limited letter.
    let victim = limited[0]["id"]
        .as_str()
        .expect("dead letter id")
        .to_owned();
    let (s, b) = delete(base, &format!("/messages/dead-letters/{victim}")).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["id"], victim.as_str());
    assert_eq!(b["reason"], "rate_limited");
    let (s, b) = delete(base, &format!("/messages/dead-letters/{victim}")).await;
    assert_error(s, &b, 404, "dead_letter_not_found");

    // The bus section of /status, before the purge.
    let (s, status) = get(base, "/status").await;
    assert_eq!(s, 200, "{status}");
    let bus = &status["message_bus"];
    assert_eq!(bus["backend"], "in_process", "{bus}");
    assert_eq!(bus["available"], true, "{bus}");
    assert!(
        bus["node_id"].as_str().is_some_and(|n| !n.is_empty()),
        "{bus}"
    );
    for field in [
        "published",
        "delivered",
        "acknowledged",
        "retried",
        "dead_lettered",
        "rate_limited",
        "messages_per_minute",
        "dead_letters",
        "workers_alive",
    ] {
        assert!(bus[field].is_u64(), "{field} missing: {bus}");
    }
    assert!(bus["published"].as_u64() >= Some(20), "{bus}");
    assert!(bus["rate_limited"].as_u64() >= Some(1), "{bus}");
    assert!(bus["dead_lettered"].as_u64() >= Some(2), "{bus}");
    assert_eq!(
        bus["dead_letters"].as_u64(),
        Some(limited.len() as u64 - 1),
        "{bus}"
    );
    let depths = bus["queue_depths"].as_array().expect("queue_depths");
    assert!(
        depths
            .iter()
            .all(|d| d["queue"].is_string() && d["waiting"].is_u64() && d["pending"].is_u64()),
        "{bus}"
    );
    for gone in ["transport", "redis_url_configured", "topics"] {
        assert!(bus.get(gone).is_none(), "{gone} still reported: {bus}");
    }

    // Purge all.
    let (s, all) = get(base, "/messages/dead-letters?limit=1000").await;
    assert_eq!(s, 200, "{all}");
    let before = all["count"].as_u64().expect("count");
    assert_eq!(before, limited.len() as u64 - 1, "{all}");
    let (s, b) = delete(base, "/messages/dead-letters").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["purged"].as_u64(), Some(before), "{b}");
    let (_, all) = get(base, "/messages/dead-letters").await;
    assert_eq!(all["count"], 0, "{all}");
    assert_eq!(all["dead_letters"], json!([]), "{all}");

    // The processes on the bus: this server, alive.
    let (s, w) = get(base, "/workers").await;
    assert_eq!(s, 200, "{w}");
    let nodes = w["nodes"].as_array().expect("nodes");
    assert_eq!(w["alive"], 1, "{w}");
    let node = nodes
        .iter()
        .find(|n| n["alive"] == true)
        .unwrap_or_else(|| panic!("no alive node: {w}"));
    assert_eq!(node["node_id"], bus["node_id"], "{w}");
    assert_eq!(node["role"], "serve", "{w}");
    assert_eq!(node["pid"], serve.child.id(), "{w}");
    assert!(node["last_seen"].is_string(), "{w}");
    let (_, status) = get(base, "/status").await;
    assert_eq!(status["message_bus"]["workers_alive"], 1, "{status}");

    // The OpenAPI document lists the new routes.
    let (_, doc) = get(base, "/openapi.json").await;
    for path in [
        "/messages/send",
        "/messages/broadcast",
        "/messages/dead-letters",
        "/messages/dead-letters/{id}",
        "/messages/dead-letters/{id}/replay",
        "/workers",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from openapi"
        );
    }
    assert!(
        doc["paths"]["/messages/dead-letters"]
            .get("delete")
            .is_some()
    );
    assert!(doc["components"]["schemas"].get("DeadLetter").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_socket_observes_messages_sent_to_its_agent() {
    let stack = Stack::start(NO_LLM, test_config()).await.expect("stack");
    let base = stack.base.as_str();
    let ws_url = format!(
        "{}/ws/agent/senior-ai-engineer",
        stack.base.replacen("http", "ws", 1)
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url)
        .await
        .expect("ws connect");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut next = async || -> Value {
        loop {
            let frame = tokio::time::timeout_at(deadline, ws.next())
                .await
                .expect("frames in time")
                .expect("stream open")
                .expect("frame");
            if let Ok(text) = frame.to_text()
                && let Ok(v) = serde_json::from_str::<Value>(text)
            {
                return v;
            }
        }
    };
    // The first frame (the agent's status) comes once the socket observes the bus.
    let first = next().await;
    assert_ne!(first["type"], "error", "{first}");

    let (s, sent) = post_raw(base, SPEC_SEND_PATH, SPEC_SEND_BODY).await;
    assert_eq!(s, 200, "{sent}");
    let (s, broadcast) = post_raw(base, SPEC_BROADCAST_PATH, SPEC_BROADCAST_BODY).await;
    assert_eq!(s, 200, "{broadcast}");
    // A message to another agent is not shown.
    let (s, other) = post(
        base,
        "/messages/send?sender_id=orchestrator",
        &json!({"recipient_id": "code-generation-improver", "message_type": "task_request"}),
    )
    .await;
    assert_eq!(s, 200, "{other}");

    let mut seen = Vec::new();
    while seen.len() < 2 {
        let v = next().await;
        if v["type"] != "message" {
            continue;
        }
        let message = &v["message"];
        assert_ne!(message["id"], other["message_id"], "{v}");
        seen.push(message.clone());
    }
    assert_eq!(seen[0]["id"], sent["message_id"]);
    assert_eq!(seen[0]["sender_id"], "orchestrator");
    assert_eq!(seen[0]["recipient_id"], "senior-ai-engineer");
    assert_eq!(seen[0]["priority"], "high");
    assert_eq!(
        seen[0]["payload"],
        json!({"task_id": "123", "action": "analyze"})
    );
    assert_eq!(seen[1]["id"], broadcast["message_id"]);
    assert_eq!(seen[1]["message_type"], "system_announcement");
    stack.stop().await;
}
