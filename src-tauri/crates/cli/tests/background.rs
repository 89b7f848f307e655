//! The library entry points the desktop shell uses: `spawn_background` (a server task on
//! the caller's runtime) and `run_server` with its `ready` channel and shutdown future.
//! Real sockets, a real journal in a temporary directory.

use std::net::TcpListener;
use std::time::Duration;

use serde_json::Value;
use sutazai_cli::settings::{EnvVars, Locations, Settings};
use sutazai_cli::{Embedding, run_server, spawn_background};
use tokio::sync::oneshot;

/// Settings for a sandboxed server on an ephemeral port, with the LLM endpoint on a port
/// nothing listens on.
fn settings(dir: &std::path::Path, extra: &[(&str, &str)]) -> Settings {
    let closed = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port")
        .port();
    let data = dir.join("data").to_string_lossy().into_owned();
    let agents = dir.join("agents").to_string_lossy().into_owned();
    let llm = format!("http://127.0.0.1:{closed}");
    let mut pairs: Vec<(&str, &str)> = vec![
        ("SUTAZAI_DATA_DIR", &data),
        ("SUTAZAI_AGENTS_DIR", &agents),
        ("OLLAMA_API_URL", &llm),
    ];
    pairs.extend_from_slice(extra);
    let mut settings =
        Settings::load_with(None, &EnvVars::from_pairs(pairs), &Locations::default())
            .expect("settings");
    // Port 0: any free port (how an embedding caller asks for one).
    settings.port = 0;
    settings
}

async fn health(base: &str) -> Value {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    client
        .get(format!("{base}/health"))
        .send()
        .await
        .expect("the server answers")
        .error_for_status()
        .expect("200")
        .json()
        .await
        .expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_background_serves_on_the_callers_runtime_until_stopped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = settings(dir.path(), &[]);
    let server = spawn_background(settings.clone(), Embedding::default()).expect("binds");
    assert_ne!(server.addr().port(), 0);
    assert_eq!(server.url(), format!("http://{}", server.addr()));

    let body = health(server.url()).await;
    assert!(body["system_health"].is_number(), "{body}");
    assert!(!server.is_finished());

    // A second server on the same data directory binds (another port) but its task ends
    // with the lock error instead of resuming the first one's tasks.
    let second = spawn_background(settings, Embedding::default()).expect("binds another port");
    let err = second
        .stop()
        .await
        .expect_err("the data directory is taken");
    assert!(
        format!("{err:#}").contains("in use by another SutazAI server"),
        "{err:#}"
    );

    server.stop().await.expect("a clean stop");
    assert!(dir.path().join("data").join("journal.sqlite3").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_server_reports_its_address_and_stops_on_the_shutdown_future() {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = settings(dir.path(), &[]);
    let (ready_tx, ready_rx) = oneshot::channel();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(run_server(
        settings,
        async move {
            let _ = stop_rx.await;
        },
        Some(ready_tx),
    ));
    let addr = ready_rx.await.expect("the server reports its address");
    let body = health(&format!("http://{addr}")).await;
    assert!(body["status"].is_string(), "{body}");

    stop_tx
        .send(())
        .expect("the server is listening for shutdown");
    server
        .await
        .expect("the server task does not panic")
        .expect("a clean stop");
    // The data directory is free again: a new server can take it.
    let again =
        spawn_background(self::settings(dir.path(), &[]), Embedding::default()).expect("binds");
    health(again.url()).await;
    again.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weak_secret_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = settings(
        dir.path(),
        &[
            ("ENABLE_AUTH", "true"),
            ("JWT_SECRET_KEY", "your-secret-key"),
        ],
    );
    let err = spawn_background(settings.clone(), Embedding::default()).expect_err("refused");
    assert!(
        err.to_string().contains("JWT_SECRET_KEY is 15 bytes long"),
        "{err}"
    );
    let err = run_server(settings, std::future::pending(), None)
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("at least 32"), "{err}");
    assert!(!dir.path().join("data").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auth_the_embedding_app_signs_its_own_window_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = settings(dir.path(), &[("ENABLE_AUTH", "true")]);
    // What the desktop shell does: a session first, then the server (same secret).
    let session = sutazai_cli::serve::local_session(&settings, "desktop")
        .expect("a session")
        .expect("auth is on");
    let server = spawn_background(settings, Embedding::default()).expect("binds");
    health(server.url()).await;
    let client = reqwest::Client::new();
    let agents = format!("{}/agents", server.url());
    let refused = client.get(&agents).send().await.expect("answers");
    assert_eq!(refused.status().as_u16(), 401);
    let who: Value = client
        .get(format!("{}/auth/whoami", server.url()))
        .bearer_auth(&session.access_token)
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        (who["subject"].as_str(), who["role"].as_str()),
        (Some("desktop"), Some("admin"))
    );
    server.stop().await.expect("a clean stop");
}
