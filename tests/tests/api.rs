//! The HTTP API end to end on the real test model: bad input gets `{code, message}` and
//! loses nothing, approvals gate a task, cancellation stops the model call, and the
//! WebSocket streams `system_status` and `task_completed`.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use sutazai_tests::{Stack, TestLlm, test_config};

fn assert_error(status: u16, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["code"], want_code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors_and_loses_nothing() {
    let llm = TestLlm::spawn(0).expect("test LLM");
    let stack = Stack::start(&llm.url, test_config()).await.expect("stack");
    let client = reqwest::Client::new();
    let url = format!("{}/tasks", stack.base);

    // Malformed JSON.
    let r = client
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert_error(status, &r.json().await.unwrap(), 400, "malformed_json");

    // Not JSON at all.
    let r = client.post(&url).body("name=x").send().await.unwrap();
    let status = r.status().as_u16();
    assert_error(
        status,
        &r.json().await.unwrap(),
        415,
        "unsupported_media_type",
    );

    // Unknown pattern: the message names the variants.
    let (s, b) = stack
        .post("/tasks", &json!({"name": "x", "requirements": ["code_generation"], "coordination_pattern": "telepathy"}))
        .await
        .unwrap();
    assert_error(s, &b, 422, "invalid_request");
    assert!(b["message"].as_str().unwrap().contains("telepathy"));

    // Requirements no agent has.
    let (s, b) = stack
        .post(
            "/tasks",
            &json!({"name": "x", "requirements": ["time_travel"]}),
        )
        .await
        .unwrap();
    assert_error(s, &b, 422, "no_capable_agent");
    assert!(b["message"].as_str().unwrap().contains("time_travel"));

    // Bad constraint values name the field.
    let (s, b) = stack
        .post("/tasks", &json!({"name": "x", "requirements": ["code_generation"], "constraints": {"max_agents": 0}}))
        .await
        .unwrap();
    assert_error(s, &b, 422, "invalid_request");
    assert!(b["message"].as_str().unwrap().contains("max_agents"));
    let (s, b) = stack
        .post(
            "/tasks",
            &json!({"name": "  ", "requirements": ["code_generation"]}),
        )
        .await
        .unwrap();
    assert_error(s, &b, 422, "invalid_request");

    // Oversized body.
    let huge = "x".repeat(2 * 1024 * 1024);
    let (s, b) = stack
        .post(
            "/tasks",
            &json!({"name": "big", "requirements": ["code_generation"], "payload": {"blob": huge}}),
        )
        .await
        .unwrap();
    assert_error(s, &b, 413, "payload_too_large");

    // Unknown agent, unknown task, unknown route, bad query, bad control action.
    let (s, b) = stack.get("/agents/nobody").await.unwrap();
    assert_error(s, &b, 404, "agent_not_found");
    let (s, b) = stack.get("/tasks/does-not-exist").await.unwrap();
    assert_error(s, &b, 404, "task_not_found");
    let (s, b) = stack.get("/nowhere").await.unwrap();
    assert_error(s, &b, 404, "not_found");
    let (s, b) = stack.get("/tasks?limit=banana").await.unwrap();
    assert_error(s, &b, 400, "invalid_query");
    let (s, b) = stack.get("/tasks?status=sleeping").await.unwrap();
    assert_error(s, &b, 400, "invalid_query");
    let (s, b) = stack
        .post(
            "/agents/senior-ai-engineer/control",
            &json!({"action": "explode"}),
        )
        .await
        .unwrap();
    assert_error(s, &b, 422, "invalid_request");
    let (s, b) = stack
        .post(
            "/messages/send?sender_id=orchestrator",
            &json!({"recipient_id": "nobody", "message_type": "task_request", "payload": {}}),
        )
        .await
        .unwrap();
    assert_error(s, &b, 404, "agent_not_found");
    let (s, b) = stack
        .post("/infrastructure/deploy-all", &json!({}))
        .await
        .unwrap();
    assert_error(s, &b, 503, "docker_unavailable");

    // After all that, a good task is accepted and completes; nothing else was accepted.
    let (s, b) = stack
        .post("/tasks", &json!({"name": "good", "requirements": ["code_generation"], "coordination_pattern": "pipeline"}))
        .await
        .unwrap();
    assert_eq!(s, 201, "{b}");
    let task = stack
        .wait_task(b["task_id"].as_str().unwrap(), Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(task["status"], "completed", "{task}");
    let (_, list) = stack.get("/tasks?limit=100").await.unwrap();
    assert_eq!(list["total"], 1, "{list}");

    // The spec's message examples are accepted.
    let (s, b) = stack
        .post(
            "/messages/send?sender_id=orchestrator",
            &json!({
            "recipient_id": "senior-ai-engineer", "message_type": "task_request",
            "pattern": "point_to_point", "priority": "high",
            "payload": {"task_id": "123", "action": "analyze"}}),
        )
        .await
        .unwrap();
    assert_eq!(s, 200, "{b}");
    let (s, b) = stack
        .post(
            "/messages/broadcast?sender_id=orchestrator",
            &json!({
            "message_type": "system_announcement", "priority": "normal",
            "payload": {"message": "System maintenance in 1 hour"}}),
        )
        .await
        .unwrap();
    assert_eq!(s, 200, "{b}");

    // The OpenAPI document lists the spec's routes.
    let (s, doc) = stack.get("/openapi.json").await.unwrap();
    assert_eq!(s, 200);
    for path in [
        "/tasks",
        "/tasks/{task_id}",
        "/agents",
        "/health",
        "/analytics/performance",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from openapi"
        );
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_gate_and_cancel_stops_the_model_call() {
    // 40 ms per token: a 24-token answer takes about a second, long enough to cancel.
    let llm = TestLlm::spawn(40).expect("test LLM");
    let stack = Stack::start(&llm.url, test_config()).await.expect("stack");

    // Approvals.
    let (s, b) = stack
        .post(
            "/tasks",
            &json!({
            "name": "gated", "requirements": ["deployment_automation"],
            "coordination_pattern": "pipeline",
            "constraints": {"required_approvals": ["security-review", "infrastructure-review"]}}),
        )
        .await
        .unwrap();
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["status"], "awaiting_approval");
    let id = b["task_id"].as_str().unwrap().to_owned();
    let (s, b) = stack
        .post(
            &format!("/tasks/{id}/approve"),
            &json!({"approval": "nonsense"}),
        )
        .await
        .unwrap();
    assert_error(s, &b, 422, "invalid_request");
    let (s, b) = stack
        .post(
            &format!("/tasks/{id}/approve"),
            &json!({"approval": "security-review", "approved_by": "alice"}),
        )
        .await
        .unwrap();
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], "awaiting_approval");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        llm.requests().await.unwrap().is_empty(),
        "no model call before approval"
    );
    let (s, b) = stack
        .post(
            &format!("/tasks/{id}/approve"),
            &json!({"approval": "infrastructure-review"}),
        )
        .await
        .unwrap();
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], "queued");
    let task = stack
        .wait_task(&id, Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(task["status"], "completed", "{task}");
    let (s, b) = stack
        .post(
            &format!("/tasks/{id}/approve"),
            &json!({"approval": "security-review"}),
        )
        .await
        .unwrap();
    assert_error(s, &b, 409, "invalid_state");

    // Cancel a running task: its in-flight model request ends.
    let (_, b) = stack
        .post("/tasks", &json!({"name": "long", "requirements": ["code_generation"], "coordination_pattern": "pipeline"}))
        .await
        .unwrap();
    let id = b["task_id"].as_str().unwrap().to_owned();
    let began = Instant::now();
    loop {
        let active = llm
            .requests_for_step(&format!("{id}/stage/0"))
            .await
            .unwrap();
        if active.iter().any(|r| r["ended_at_ms"].is_null()) {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "the step never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = reqwest::Client::new()
        .delete(format!("{}/tasks/{id}", stack.base))
        .send()
        .await
        .unwrap();
    let cancelled_at = now_ms();
    assert_eq!(r.status().as_u16(), 200);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["status"], "cancelled", "{b}");
    // The server records when the request ended; poll until it does.
    let began = Instant::now();
    let ended = loop {
        let reqs = llm
            .requests_for_step(&format!("{id}/stage/0"))
            .await
            .unwrap();
        if let Some(end) = reqs.iter().find_map(|r| r["ended_at_ms"].as_u64()) {
            assert!(reqs.iter().all(|r| r["aborted"] == true), "{reqs:?}");
            break end;
        }
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "the request never ended"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let lag_ms = ended as i64 - cancelled_at as i64;
    println!("model request ended {lag_ms} ms after DELETE returned");
    let (_, detail) = stack.get(&format!("/tasks/{id}")).await.unwrap();
    assert_eq!(detail["status"], "cancelled");
    assert_eq!(detail["steps"][0]["status"], "failed", "{detail}");
    stack.stop().await;
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_streams_status_and_completion() {
    let llm = TestLlm::spawn(0).expect("test LLM");
    let stack = Stack::start(&llm.url, test_config()).await.expect("stack");
    let ws_url = format!("{}/ws", stack.base.replacen("http", "ws", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url)
        .await
        .expect("ws connect");

    let (_, b) = stack
        .post("/tasks", &json!({"name": "ws task", "requirements": ["code_generation"], "coordination_pattern": "pipeline"}))
        .await
        .unwrap();
    let id = b["task_id"].as_str().unwrap().to_owned();

    let (mut status_seen, mut completed_seen) = (false, false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !(status_seen && completed_seen) {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("events in time")
            .expect("stream open")
            .expect("frame");
        let Ok(text) = msg.to_text() else { continue };
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            continue;
        };
        match v["type"].as_str() {
            Some("system_status") => {
                let h = v["data"]["system_health"].as_f64().expect("system_health");
                assert!((0.0..=1.0).contains(&h));
                assert!(v["data"]["active_tasks"].is_u64());
                status_seen = true;
            }
            Some("task_completed") if v["task_id"] == id.as_str() => {
                assert_eq!(v["task_name"], "ws task");
                completed_seen = true;
            }
            _ => {}
        }
    }
    // The agent socket refuses unknown agents.
    let bad = format!("{}/ws/agent/nobody", stack.base.replacen("http", "ws", 1));
    assert!(tokio_tungstenite::connect_async(&bad).await.is_err());
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_desktop_window_origin_may_call_cross_origin() {
    // No model call happens here, so the LLM address may point nowhere.
    let stack = Stack::start("http://127.0.0.1:9", test_config())
        .await
        .expect("stack");
    let client = reqwest::Client::new();
    for (origin, allowed) in [
        ("tauri://localhost", true),
        ("http://tauri.localhost", true),
        ("http://evil.example", false),
    ] {
        let r = client
            .request(reqwest::Method::OPTIONS, format!("{}/tasks", stack.base))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
            .await
            .unwrap();
        let got = r
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        assert_eq!(got.as_deref() == Some(origin), allowed, "{origin}: {got:?}");
    }
    // Every method the dashboard uses is allowed from the window (PUT: alert rules).
    for method in ["GET", "POST", "PUT", "DELETE"] {
        let r = client
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/alerts/rules/x", stack.base),
            )
            .header("origin", "tauri://localhost")
            .header("access-control-request-method", method)
            .header("access-control-request-headers", "content-type")
            .send()
            .await
            .unwrap();
        let allowed = r
            .headers()
            .get("access-control-allow-methods")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(allowed.contains(method), "{method} not in {allowed:?}");
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sensitive_payload_fields_are_masked_in_answers_and_prompts() {
    let llm = TestLlm::spawn(0).expect("test LLM");
    let stack = Stack::start(&llm.url, test_config()).await.expect("stack");
    let (status, submitted) = stack
        .post(
            "/tasks",
            &json!({
                "name": "uses a credential",
                "description": "Say which database this is for.",
                "requirements": ["code_generation"],
                "coordination_pattern": "pipeline",
                "constraints": {"max_agents": 1},
                "payload": {"database": "orders", "db_password": "hunter22-secret", "max_tokens": 64}
            }),
        )
        .await
        .expect("submit");
    assert_eq!(status, 201, "{submitted}");
    let id = submitted["task_id"].as_str().unwrap().to_owned();
    let task = stack
        .wait_task(&id, Duration::from_secs(120))
        .await
        .expect("finishes");
    assert_eq!(task["status"], "completed", "{task}");
    // The agent got the real value: the stored step's prompt (what was sent) carries it.
    let stored = stack.orchestrator.task_detail(&id).await.unwrap();
    assert!(
        serde_json::to_string(&stored)
            .unwrap()
            .contains("hunter22-secret"),
        "the prompt carried the payload"
    );
    // Every answer shows it masked: the payload field, and the step's prompt quoting it.
    let (_, detail) = stack.get(&format!("/tasks/{id}")).await.unwrap();
    let (_, list) = stack.get("/tasks?status=all").await.unwrap();
    for answer in [&detail, &list] {
        assert!(!answer.to_string().contains("hunter22-secret"), "{answer}");
    }
    assert_eq!(detail["payload"]["db_password"], "***", "{detail}");
    assert_eq!(detail["payload"]["max_tokens"], 64);
    let prompt = detail["steps"][0]["input"].as_str().unwrap();
    assert!(prompt.contains("***"), "{prompt}");
    println!(
        "masked: payload.db_password = {}, step prompt: …{}…",
        detail["payload"]["db_password"],
        &prompt[prompt.find("***").unwrap().saturating_sub(20)..][..30.min(prompt.len())]
    );
    stack.stop().await;
}
