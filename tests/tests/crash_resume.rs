//! Crash resume: `kill -9` the server process while a three-stage pipeline is in its
//! second stage; after a restart on the same data directory the task completes and the
//! LLM server's request log shows stage 1 was not called again.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sutazai_tests::{
    TestLlm, free_port, headless_binary, headless_command, wait_healthy, wait_task,
};

fn spawn_server(bin: &std::path::Path, port: u16, data: &std::path::Path, llm: &str) -> Child {
    headless_command(bin, llm, port, data)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn sutazai-headless serve")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_server_resumes_without_repeating_finished_steps() {
    let bin = headless_binary().expect("sutazai-headless");
    // Slow tokens so the second stage is surely in flight when we kill.
    let llm = TestLlm::spawn(60).expect("test LLM");
    let data = tempfile::tempdir().unwrap();
    let port = free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}");

    let mut server = spawn_server(&bin, port, data.path(), &llm.url);
    wait_healthy(&base).await.expect("server up");
    let r = reqwest::Client::new()
        .post(format!("{base}/tasks"))
        .json(&json!({
            "name": "three stages", "description": "Plan, build and ship a small service",
            "requirements": ["code_generation", "security_review", "deployment_automation"],
            "coordination_pattern": "pipeline"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let id = r.json::<Value>().await.unwrap()["task_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Wait until stage 2 (key stage/1) is in flight, then kill -9.
    let began = Instant::now();
    loop {
        let reqs = llm
            .requests_for_step(&format!("{id}/stage/1"))
            .await
            .unwrap();
        if reqs.iter().any(|r| r["ended_at_ms"].is_null()) {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(120),
            "stage 2 never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill().expect("kill -9"); // SIGKILL on Unix
    server.wait().unwrap();
    assert_eq!(
        llm.requests_for_step(&format!("{id}/stage/0"))
            .await
            .unwrap()
            .len(),
        1
    );

    let mut server = spawn_server(&bin, port, data.path(), &llm.url);
    wait_healthy(&base).await.expect("server up");
    let task = wait_task(&base, &id, Duration::from_secs(180))
        .await
        .unwrap();
    assert_eq!(task["status"], "completed", "{task}");

    let stage0 = llm
        .requests_for_step(&format!("{id}/stage/0"))
        .await
        .unwrap();
    let stage1 = llm
        .requests_for_step(&format!("{id}/stage/1"))
        .await
        .unwrap();
    let stage2 = llm
        .requests_for_step(&format!("{id}/stage/2"))
        .await
        .unwrap();
    println!(
        "LLM requests per stage after resume: stage1={} stage2={} stage3={}",
        stage0.len(),
        stage1.len(),
        stage2.len()
    );
    assert_eq!(stage0.len(), 1, "stage 1 must not be called again");
    assert_eq!(stage1.len(), 2, "stage 2 was interrupted and re-run once");
    assert_eq!(stage2.len(), 1);
    let steps = task["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    assert!(steps.iter().all(|s| s["status"] == "completed"));
    server.kill().ok();
    server.wait().ok();
}
