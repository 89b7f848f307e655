//! The first-run routes on a real `sutazai-headless serve` with the test LLM server:
//! `GET /setup/doctor` reports each check as the server sees it, and `POST /models/pull`
//! streams the test server's Ollama-style pull progress as NDJSON to a final success.

use serde_json::Value;
use sutazai_tests::{TestLlm, free_port, headless_binary, headless_command, start_serve};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_and_model_pull_for_the_welcome_flow() {
    let bin = headless_binary().expect("sutazai-headless");
    let llm = TestLlm::spawn(0).expect("test LLM");
    let data = tempfile::tempdir().unwrap();
    let port = free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let _procs = start_serve(headless_command(&bin, &llm.url, port, data.path()), &base).await;
    let client = reqwest::Client::new();

    let report: Value = client
        .get(format!("{base}/setup/doctor"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let status = |name: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| {
                c["name"]
                    .as_str()
                    .is_some_and(|n| n.to_lowercase().starts_with(name))
            })
            .map(|c| c["status"].as_str().unwrap_or("").to_owned())
    };
    assert_eq!(status("data dir").as_deref(), Some("pass"), "{report}");
    assert_eq!(status("disk").as_deref(), Some("pass"), "{report}");
    assert_eq!(status("llm").as_deref(), Some("pass"), "{report}");
    // The test server has no Docker engine (DOCKER_HOST points nowhere): a failure with a fix.
    let docker = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "Docker")
        .unwrap();
    assert_eq!(docker["status"], "fail", "{docker}");
    assert!(
        docker["hint"].as_str().is_some_and(|h| !h.is_empty()),
        "{docker}"
    );
    assert_eq!(report["ok"], true, "only optional checks fail: {report}");
    println!(
        "doctor: {}",
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| format!(
                "{}={}",
                c["name"].as_str().unwrap(),
                c["status"].as_str().unwrap()
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );

    // The default model, pulled with progress.
    let response = client
        .post(format!("{base}/models/pull"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let text = response.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert!(lines.len() >= 2, "{text}");
    assert!(
        lines
            .iter()
            .any(|l| l["total"].as_u64().is_some_and(|t| t > 0)),
        "byte progress: {text}"
    );
    let last = lines.last().unwrap();
    assert_eq!(last["status"], "success", "{text}");
    println!("pull: {} progress lines, last {last}", lines.len());

    // A bad name is refused before anything starts; an unknown model fails in the stream.
    let bad = client
        .post(format!("{base}/models/pull"))
        .json(&serde_json::json!({"model": "no such; model"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 422);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["code"], "invalid_request");
    let unknown = client
        .post(format!("{base}/models/pull"))
        .json(&serde_json::json!({"model": "not-served:1b"}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let last: Value = serde_json::from_str(unknown.lines().last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "pull_failed", "{unknown}");
    let unknown_field = client
        .post(format!("{base}/models/pull"))
        .json(&serde_json::json!({"modle": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_field.status().as_u16(), 422);
}
