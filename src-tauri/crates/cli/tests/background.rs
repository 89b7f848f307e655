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
    // Port 0 is refused in configuration but is how an embedding caller asks for any port.
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
async fn auth_requested_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = settings(dir.path(), &[("ENABLE_AUTH", "true")]);
    let err = spawn_background(settings.clone(), Embedding::default()).expect_err("refused");
    assert!(
        err.to_string()
            .contains("authentication is not implemented in this version yet"),
        "{err}"
    );
    let err = run_server(settings, std::future::pending(), None)
        .await
        .expect_err("refused");
    assert!(err.to_string().starts_with("ENABLE_AUTH=true"), "{err}");
    assert!(!dir.path().join("data").exists());
}
