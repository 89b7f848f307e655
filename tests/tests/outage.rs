//! An LLM outage on a real `sutazai-headless serve` (issue 7): the test model's server is
//! stopped with tasks submitted; the tasks wait instead of failing (no attempt used up),
//! the `dependency_down` alert for the endpoint fires; the server is started again on the
//! same port, every task completes with one attempt per step, and the alert resolves. The
//! `tasks_interrupted` alert of a `kill -9` and the Redis and Docker faults are shown by
//! the soak (`scripts/soak.sh`).

use std::time::{Duration, Instant};

use serde_json::Value;
use sutazai_tests::{
    TestLlm, call, free_port, headless_binary, headless_command, start_serve, submit_one_step_task,
    wait_task,
};

async fn get(url: &str) -> (u16, Value) {
    call(&reqwest::Client::new(), reqwest::Method::GET, url, None).await
}

/// The `dependency_down` alert of the default provider's endpoint, once it is in `status`.
async fn endpoint_alert(base: &str, status: &str, limit: Duration) -> Value {
    let began = Instant::now();
    loop {
        let (_, alerts) = get(&format!("{base}/alerts")).await;
        if let Some(alert) = alerts["alerts"].as_array().into_iter().flatten().find(|a| {
            a["rule_id"] == "dependency_down"
                && a["subject"] == "llm:ollama"
                && a["status"] == status
        }) {
            return alert.clone();
        }
        assert!(
            began.elapsed() < limit,
            "no {status} dependency_down alert for llm:ollama within {limit:?}: {alerts}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_wait_out_an_llm_outage_and_its_alert_fires_and_resolves() {
    let bin = headless_binary().expect("sutazai-headless");
    let llm_port = free_port().unwrap();
    let llm = TestLlm::spawn_on(llm_port, 2, 0).expect("test LLM");
    let data = tempfile::tempdir().unwrap();
    let port = free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let _serve = start_serve(headless_command(&bin, &llm.url, port, data.path()), &base).await;

    // The endpoint goes away; tasks arrive meanwhile.
    drop(llm);
    let stopped = Instant::now();
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(submit_one_step_task(&base, &format!("during the outage {i}")).await);
    }
    let fired = endpoint_alert(&base, "firing", Duration::from_secs(40)).await;
    println!(
        "outage: {} ({}) fired {:.1}s after the stop",
        fired["message"],
        fired["severity"],
        stopped.elapsed().as_secs_f64()
    );
    assert_eq!(fired["severity"], "critical");
    for id in &ids {
        let (_, task) = get(&format!("{base}/tasks/{id}")).await;
        assert!(
            matches!(task["status"].as_str(), Some("running" | "queued")),
            "waiting, not failed: {task}"
        );
    }

    // Back on the same port: every task completes, with one attempt.
    let _llm = TestLlm::spawn_on(llm_port, 2, 0).expect("test LLM again");
    let back = Instant::now();
    for id in &ids {
        let task = wait_task(&base, id, Duration::from_secs(120))
            .await
            .unwrap();
        assert_eq!(task["status"], "completed", "{task}");
        for step in task["steps"].as_array().unwrap() {
            assert_eq!(step["attempts"], 1, "the outage used no attempt: {step}");
        }
    }
    println!(
        "outage: all {} tasks completed {:.1}s after the endpoint came back, one attempt each",
        ids.len(),
        back.elapsed().as_secs_f64()
    );
    let resolved = endpoint_alert(&base, "resolved", Duration::from_secs(30)).await;
    assert_eq!(resolved["id"], fired["id"], "the same alert resolved");
    println!("outage: alert #{} resolved", resolved["id"]);
}
