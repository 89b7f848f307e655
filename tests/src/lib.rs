//! Shared helpers for the end-to-end tests in `tests/tests/`.
//!
//! - [`TestLlm`]: our Ollama-API test server (`tests/llm-server`) running the real
//!   SmolLM2-135M model, one instance per test, on a free loopback port.
//! - [`Stack`]: journal + registry + orchestrator + API on `127.0.0.1:0`, in process.
//! - [`headless_binary`]: the `sutazai-headless` executable, for tests that must kill a
//!   real server process.
//!
//! - [`redis_server`]: a real `redis-server` (the one `.ci/run` started, or a private one).
//! - [`docker`]: Docker test images built here (busybox, redis, our binaries), a local
//!   registry, cleanup by label.
//! - [`Kill`]: child processes killed when a test ends.
//!
//! Nothing here fakes a part: when node, the model or the binary cannot be had, the
//! helpers fail the test with a message that says what to install.

#[path = "../../src-tauri/crates/bus/tests/common/mod.rs"]
pub mod redis_server;

/// Docker test images, a local registry and cleanup (shared with the infra crate's tests).
#[path = "../../src-tauri/crates/infra/tests/common/mod.rs"]
pub mod docker;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use sutazai_agents::Registry;
use sutazai_api::{ApiConfig, AppState};
use sutazai_bus::{Bus, BusConfig};
use sutazai_llm::{OllamaProvider, Provider, ProviderOptions};
use sutazai_orchestrator::{Orchestrator, OrchestratorConfig};
use sutazai_store::Journal;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The model name the test server serves.
pub const TEST_MODEL: &str = "smollm2:135m";

/// Path of the test model's GGUF file: `SUTAZAI_TEST_MODEL`, else fetched by
/// `scripts/fetch-test-model.sh` (which prints the path last).
pub fn model_path() -> Result<PathBuf> {
    if let Ok(path) = std::env::var("SUTAZAI_TEST_MODEL")
        && Path::new(&path).is_file()
    {
        return Ok(PathBuf::from(path));
    }
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/fetch-test-model.sh"))
        .stderr(Stdio::inherit())
        .output()
        .context("running scripts/fetch-test-model.sh")?;
    if !out.status.success() {
        bail!("scripts/fetch-test-model.sh failed; run `bash scripts/setup.sh --test`");
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default().trim().to_owned();
    if !Path::new(&line).is_file() {
        bail!("fetch-test-model.sh printed `{line}`, which is not a file");
    }
    Ok(PathBuf::from(line))
}

/// A running test LLM server; killed on drop.
#[derive(Debug)]
pub struct TestLlm {
    /// Its base URL (`http://127.0.0.1:PORT`).
    pub url: String,
    child: Child,
}

impl TestLlm {
    /// Starts a server; `token_delay_ms` slows generation so a test can act mid-request.
    pub fn spawn(token_delay_ms: u64) -> Result<TestLlm> {
        TestLlm::spawn_on(0, 4, token_delay_ms)
    }

    /// Starts a server on `port` (0: any free one) running `parallel` generations at once.
    pub fn spawn_on(port: u16, parallel: u32, token_delay_ms: u64) -> Result<TestLlm> {
        let server = repo_root().join("tests/llm-server/server.mjs");
        if !repo_root().join("tests/llm-server/node_modules").is_dir() {
            bail!("tests/llm-server/node_modules is missing: run `bash scripts/setup.sh --test`");
        }
        let mut child = Command::new("node")
            .arg(&server)
            .arg("--model")
            .arg(model_path()?)
            .args(["--port", &port.to_string()])
            .args(["--parallel", &parallel.to_string(), "--exit-on-stdin-close"])
            .args(["--token-delay-ms", &token_delay_ms.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting node tests/llm-server/server.mjs (is node installed?)")?;
        let stdout = child.stdout.take().context("server stdout")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .context("reading the server's ready line")?;
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .with_context(|| format!("unexpected ready line {line:?}"))?
            .to_owned();
        Ok(TestLlm { url, child })
    }

    /// Every chat request the server has seen (`/_test/requests`).
    pub async fn requests(&self) -> Result<Vec<Value>> {
        let v: Value = reqwest::get(format!("{}/_test/requests", self.url))
            .await?
            .json()
            .await?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// Requests whose `x-sutazai-step` trace ends with `suffix`.
    pub async fn requests_for_step(&self, suffix: &str) -> Result<Vec<Value>> {
        Ok(self
            .requests()
            .await?
            .into_iter()
            .filter(|r| r["step"].as_str().is_some_and(|s| s.ends_with(suffix)))
            .collect())
    }
}

impl Drop for TestLlm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Orchestrator settings for tests on the tiny model: short answers, quick retries.
pub fn test_config() -> OrchestratorConfig {
    OrchestratorConfig {
        default_provider: "ollama".into(),
        default_model: TEST_MODEL.into(),
        max_tokens: Some(24),
        structured_max_tokens: 256,
        step_timeout: Duration::from_secs(120),
        backoff: sutazai_orchestrator::backoff::Backoff {
            base: Duration::from_millis(50),
            max: Duration::from_millis(500),
        },
        ..Default::default()
    }
}

/// An in-process server: orchestrator and API over a journal in a temp dir.
#[derive(Debug)]
pub struct Stack {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The orchestrator.
    pub orchestrator: Orchestrator,
    /// Keeps the journal's directory alive.
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Stack {
    /// Starts a stack against the LLM at `llm_url`.
    pub async fn start(llm_url: &str, config: OrchestratorConfig) -> Result<Stack> {
        let dir = tempfile::tempdir()?;
        let journal = Journal::open(&dir.path().join("journal.sqlite3"))?;
        let mut providers: HashMap<String, Arc<dyn Provider>> = HashMap::new();
        providers.insert(
            "ollama".into(),
            Arc::new(OllamaProvider::new(
                "ollama",
                llm_url,
                ProviderOptions::default(),
            )?),
        );
        let orchestrator = Orchestrator::start(
            config,
            Registry::builtin(),
            providers,
            journal,
            Bus::in_process(BusConfig::default()),
        )
        .await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let state = AppState::new(
            orchestrator.clone(),
            ApiConfig {
                heartbeat_interval: Duration::from_millis(500),
                ..Default::default()
            },
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(sutazai_api::serve(listener, state, async move {
            let _ = stopped.await;
        }));
        Ok(Stack {
            base,
            orchestrator,
            dir,
            stop: Some(stop),
            server: Some(server),
        })
    }

    /// Stops the API and the orchestrator.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        self.orchestrator.shutdown().await;
    }

    /// `GET base + path` as JSON with its status.
    pub async fn get(&self, path: &str) -> Result<(u16, Value)> {
        let r = reqwest::get(format!("{}{path}", self.base)).await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await?))
    }

    /// `POST base + path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<(u16, Value)> {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await?))
    }

    /// Polls `GET /tasks/{id}` until the task is terminal or `limit` passes.
    pub async fn wait_task(&self, id: &str, limit: Duration) -> Result<Value> {
        wait_task(&self.base, id, limit).await
    }
}

/// Polls `GET {base}/tasks/{id}` until the task is terminal or `limit` passes.
pub async fn wait_task(base: &str, id: &str, limit: Duration) -> Result<Value> {
    let began = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(format!("{base}/tasks/{id}")).await
            && let Ok(v) = r.json::<Value>().await
            && matches!(
                v["status"].as_str(),
                Some("completed" | "failed" | "cancelled")
            )
        {
            return Ok(v);
        }
        if began.elapsed() > limit {
            bail!("task {id} did not finish within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `sutazai-headless` binary, built if needed (`cargo build -p sutazai-cli`).
pub fn headless_binary() -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "-q",
            "-p",
            "sutazai-cli",
            "--bin",
            "sutazai-headless",
        ])
        .current_dir(repo_root())
        .status()
        .context("building sutazai-headless")?;
    if !status.success() {
        bail!("cargo build -p sutazai-cli failed");
    }
    // The test binary lives in <target>/<profile>/deps/.
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("locating the target directory")?;
    let bin = profile_dir.join("sutazai-headless");
    if !bin.is_file() {
        bail!("{} was not built", bin.display());
    }
    Ok(bin)
}

/// A `sutazai-headless` command set up for a test: the API on `127.0.0.1:port`, the journal
/// and (empty) agent directory under `data`, the test model at `llm`, short answers, and
/// nothing inherited from the caller's configuration.
pub fn headless_command(bin: &Path, llm: &str, port: u16, data: &Path) -> Command {
    let mut command = Command::new(bin);
    command
        .env("ORCHESTRATION_API_HOST", "127.0.0.1")
        .env("ORCHESTRATION_API_PORT", port.to_string())
        .env("SUTAZAI_DATA_DIR", data)
        .env("SUTAZAI_AGENTS_DIR", data.join("agents"))
        .env("OLLAMA_API_URL", llm)
        .env("SUTAZAI_MODEL", TEST_MODEL)
        .env("SUTAZAI_MAX_TOKENS", "24")
        .env("LOG_LEVEL", "warn")
        .env_remove("SUTAZAI_CONFIG")
        .env_remove("SUTAZAI_API_URL")
        .env_remove("REDIS_URL")
        .env_remove("SUTAZAI_BUS_KEY")
        .env_remove("SUTAZAI_LOCAL_AGENTS")
        .env_remove("SUTAZAI_SERVICES_DIR")
        .env_remove("SUTAZAI_INFRA_PROJECT")
        // No Docker unless the test asks (tests/tests/infra.rs sets a real DOCKER_HOST):
        // a test server must not manage, heal or poll the machine's containers.
        .env(
            "DOCKER_HOST",
            "unix:///nonexistent/sutazai-tests-no-docker.sock",
        );
    command
}

/// Polls `GET {base}/health` until the server answers, failing after a minute.
pub async fn wait_healthy(base: &str) -> Result<()> {
    let began = Instant::now();
    while reqwest::get(format!("{base}/health")).await.is_err() {
        if began.elapsed() > Duration::from_secs(60) {
            bail!("the server at {base} did not come up within a minute");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Child processes killed (and reaped) when the test ends, however it ends.
#[derive(Debug)]
pub struct Kill(pub Vec<Child>);

impl Drop for Kill {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Submits a one-agent pipeline task that needs `code_generation` (one model call) and
/// returns its id.
pub async fn submit_one_step_task(base: &str, name: &str) -> String {
    let response = reqwest::Client::new()
        .post(format!("{base}/tasks"))
        .json(&serde_json::json!({
            "name": name,
            "description": "Name one benefit of unit tests.",
            "requirements": ["code_generation"],
            "coordination_pattern": "pipeline",
            "constraints": {"max_agents": 1}
        }))
        .send()
        .await
        .expect("POST /tasks");
    assert_eq!(response.status().as_u16(), 201);
    let body: Value = response.json().await.expect("task JSON");
    body["task_id"].as_str().expect("task_id").to_owned()
}

/// Spawns `sutazai-headless serve` from `cmd` (stdout discarded) and waits until it
/// answers at `base`; the process is killed when the returned guard drops.
pub async fn start_serve(mut cmd: Command, base: &str) -> Kill {
    let child = cmd
        .stdout(Stdio::null())
        .arg("serve")
        .spawn()
        .expect("spawn serve");
    let procs = Kill(vec![child]);
    wait_healthy(base).await.expect("serve up");
    procs
}

/// A free loopback port (bound and released; fine for a test's own server).
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// One HTTP call with an optional JSON body: the status and the body as JSON (a body that
/// is not JSON comes back as a JSON string, so an assertion can still show it).
pub async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    call_as(client, method, url, None, body).await
}

/// [`call`] with `Authorization: Bearer <bearer>` when given (a server with auth on).
pub async fn call_as(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut request = client.request(method, url);
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}
