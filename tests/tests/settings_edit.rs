//! The settings the dashboard edits, on a real `sutazai-headless serve` with the test LLM:
//! an LLM endpoint moved away and back while the server runs (tasks follow the switch), a
//! Slack webhook switched on (a real HTTP listener receives the alert) and off, bad edits
//! refused with the key named and the file untouched, secrets never answered, the config
//! file rewritten with the user's comments kept and mode 0600, the values kept across a
//! restart, and a value an environment variable fixes refused as locked.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use reqwest::{Client, Method};
use serde_json::json;
use sutazai_tests::{
    TestLlm, call, free_port, headless_binary, headless_command, start_serve, submit_one_step_task,
    wait_task,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A webhook on loopback: every request body it receives is sent on the channel.
async fn webhook() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                // Headers, then as many body bytes as Content-Length says.
                loop {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buffer).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if buffer.len() >= end + 4 + length {
                            let _ = tx.send(text[end + 4..].to_owned());
                            let _ = socket
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                                .await;
                            return;
                        }
                    }
                }
            });
        }
    });
    (url, rx)
}

async fn llm_reachable(client: &Client, base: &str, want: bool) {
    let began = Instant::now();
    loop {
        let (_, status) = call(client, Method::GET, &format!("{base}/status"), None).await;
        if status["llm"]["reachable"] == want {
            return;
        }
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "llm.reachable never became {want}: {}",
            status["llm"]
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_endpoints_and_alert_channels_are_edited_live_and_saved() {
    let bin = headless_binary().expect("sutazai-headless");
    let llm = TestLlm::spawn(0).expect("test LLM");
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("sutazai.toml");
    std::fs::write(
        &config,
        format!(
            "# my notes: keep this line\nollama_api_url = \"{}\"\n",
            llm.url
        ),
    )
    .unwrap();
    let port = free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let command = |extra: &[(&str, &str)]| {
        let mut c = headless_command(&bin, &llm.url, port, data.path());
        c.env_remove("OLLAMA_API_URL")
            .env("SUTAZAI_CONFIG", &config);
        for (k, v) in extra {
            c.env(k, v);
        }
        c
    };
    let procs = start_serve(command(&[]), &base).await;
    let client = Client::new();
    let url = |p: &str| format!("{base}{p}");

    let (status, view) = call(&client, Method::GET, &url("/settings"), None).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["config_file"], config.display().to_string());
    assert_eq!(view["providers"][0]["name"], "ollama");
    assert_eq!(view["providers"][0]["base_url"], llm.url.as_str());
    assert!(view["providers"][0]["locked_by"].is_null());
    assert_eq!(
        (
            view["email"]["enabled"].as_bool(),
            view["slack"]["enabled"].as_bool()
        ),
        (Some(false), Some(false))
    );

    // The endpoint moved to a dead port: the server sees it unreachable, at once.
    let (status, view) = call(
        &client,
        Method::PUT,
        &url("/settings"),
        Some(&json!({"providers": {"ollama": "http://127.0.0.1:9"}})),
    )
    .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["providers"][0]["base_url"], "http://127.0.0.1:9");
    llm_reachable(&client, &base, false).await;

    // Bad edits: refused, naming the key; the file keeps the last good values.
    let saved = std::fs::read_to_string(&config).unwrap();
    for (body, needle) in [
        (
            json!({"providers": {"ollama": "ftp://example.org"}}),
            "ollama_api_url",
        ),
        (
            json!({"providers": {"nope": "http://127.0.0.1:1"}}),
            "providers.nope",
        ),
        (
            json!({"alert_slack_webhook": "x".repeat(3000)}),
            "alert_slack_webhook",
        ),
        (
            json!({"alert_smtp_url": "smtp://mail.example.org"}),
            "SUTAZAI_ALERT_EMAIL_FROM",
        ),
        (json!({"colour": "blue"}), "colour"),
        (json!({"alert_email_to": "not-a-list"}), "alert_email_to"),
    ] {
        let (status, answer) = call(&client, Method::PUT, &url("/settings"), Some(&body)).await;
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(
            status == 422 && message.contains(needle),
            "{body}: {status} {answer}"
        );
        println!("refused: {status} {}: {message}", answer["code"]);
    }
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        saved,
        "refused edits leave the file alone"
    );

    // Back to the test model (under another name for the same server, so that after the
    // restart below the saved value is told apart from the one the file started with):
    // tasks run again, with no restart.
    let renamed = llm.url.replace("127.0.0.1", "localhost");
    let (status, _) = call(
        &client,
        Method::PUT,
        &url("/settings"),
        Some(&json!({"providers": {"ollama": renamed}})),
    )
    .await;
    assert_eq!(status, 200);
    llm_reachable(&client, &base, true).await;
    let task = submit_one_step_task(&base, "after the endpoint switch").await;
    let done = wait_task(&base, &task, Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(done["status"], "completed", "{done}");

    // Slack on: the webhook is saved, never answered, and receives the next alert.
    let (hook, mut received) = webhook().await;
    let (status, view) = call(
        &client,
        Method::PUT,
        &url("/settings"),
        Some(&json!({"alert_slack_webhook": hook})),
    )
    .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["slack"]["enabled"], true);
    assert!(
        !view.to_string().contains(&hook),
        "the webhook URL is a secret: {view}"
    );
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.starts_with("# my notes: keep this line\n"), "{text}");
    assert!(
        text.contains(&format!("ollama_api_url = \"{renamed}\"")),
        "{text}"
    );
    assert!(text.contains(&hook));
    let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the config file holds a secret now");
    println!(
        "config file after the edits (mode {mode:o}):\n{}",
        text.replace(&hook, "<webhook>")
    );

    let (_, alerts) = call(&client, Method::GET, &url("/alerts?limit=1"), None).await;
    let mut rule = alerts["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "host_memory_high")
        .unwrap()
        .clone();
    rule["threshold"] = json!(0);
    rule["for_seconds"] = json!(0);
    rule["enabled"] = json!(true);
    let (status, _) = call(
        &client,
        Method::PUT,
        &url("/alerts/rules/host_memory_high"),
        Some(&rule),
    )
    .await;
    assert_eq!(status, 200);
    let posted = tokio::time::timeout(Duration::from_secs(30), received.recv())
        .await
        .expect("the webhook received the alert within 30 s")
        .unwrap();
    assert!(posted.contains("memory"), "{posted}");
    println!("webhook received: {posted}");

    // Slack off again.
    let (status, view) = call(
        &client,
        Method::PUT,
        &url("/settings"),
        Some(&json!({"alert_slack_webhook": ""})),
    )
    .await;
    assert_eq!(
        (status, view["slack"]["enabled"].as_bool()),
        (200, Some(false)),
        "{view}"
    );
    assert!(
        !std::fs::read_to_string(&config)
            .unwrap()
            .contains("alert_slack_webhook")
    );

    // After a restart the saved URL is what the server uses; a value the environment
    // fixes is shown as locked and refused.
    drop(procs);
    let _procs = start_serve(
        command(&[("SUTAZAI_ALERT_EMAIL_FROM", "ops@example.org")]),
        &base,
    )
    .await;
    let (_, view) = call(&client, Method::GET, &url("/settings"), None).await;
    assert_eq!(view["providers"][0]["base_url"], renamed.as_str());
    llm_reachable(&client, &base, true).await;
    assert_eq!(
        view["email"]["locked_by"],
        json!(["SUTAZAI_ALERT_EMAIL_FROM"])
    );
    let (status, answer) = call(
        &client,
        Method::PUT,
        &url("/settings"),
        Some(&json!({"alert_email_from": "me@example.org"})),
    )
    .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (409, Some("setting_locked")),
        "{answer}"
    );
    println!("locked: {}", answer["message"]);
}
