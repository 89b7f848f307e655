//! `sutazai-headless` as a real process: `serve` on a real port with a real journal in a
//! temporary directory, the client commands against it, start-up refusals, and `doctor`.
//!
//! Each process gets a cleared environment (only `PATH`, a temporary `HOME` and the
//! variables a test sets), so the developer's own config, Redis or Ollama never leak in.
//! The LLM endpoint points at a closed local port: the server must start and answer
//! without a model, and a task that needs one must fail cleanly.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_sutazai-headless");

/// Upper bound on waiting for a server to answer or exit (polls every 100 ms); generous
/// because a loaded CI machine may be slow, and only reached when something is broken.
const MAX_POLLS: u32 = 600;

/// A port nothing listens on right now (bound, read, released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("an ephemeral port")
}

/// A temporary directory laid out like a user's machine.
struct Sandbox {
    dir: tempfile::TempDir,
    /// Where `OLLAMA_API_URL` points: a port nothing listens on.
    llm_port: u16,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("home")).expect("mkdir home");
        std::fs::create_dir_all(dir.path().join("agents")).expect("mkdir agents");
        Sandbox {
            dir,
            llm_port: free_port(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn agents_dir(&self) -> PathBuf {
        self.path().join("agents")
    }

    /// The binary with a clean environment pointing into the sandbox.
    fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path().join("home"))
            .env("SUTAZAI_DATA_DIR", self.path().join("data"))
            .env("SUTAZAI_AGENTS_DIR", self.agents_dir())
            .env(
                "OLLAMA_API_URL",
                format!("http://127.0.0.1:{}", self.llm_port),
            )
            .env("DOCKER_HOST", format!("tcp://127.0.0.1:{}", self.llm_port))
            .env("SUTAZAI_MAX_ATTEMPTS", "1")
            // The model is unreachable on purpose: fail at once rather than wait it out.
            .env("SUTAZAI_OUTAGE_WAIT", "1")
            .env("LOG_LEVEL", "info")
            .current_dir(self.path())
            .stdin(Stdio::null());
        cmd
    }

    /// Runs the binary to completion.
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = self.command();
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("the binary runs")
    }

    /// Starts `serve` on `port` with output captured to files.
    fn serve(&self, name: &str, port: u16, env: &[(&str, &str)]) -> Server {
        let stdout = self.path().join(format!("{name}.stdout"));
        let stderr = self.path().join(format!("{name}.stderr"));
        let mut cmd = self.command();
        cmd.arg("serve")
            .env("ORCHESTRATION_API_PORT", port.to_string())
            .stdout(File::create(&stdout).expect("stdout file"))
            .stderr(File::create(&stderr).expect("stderr file"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        Server {
            child: cmd.spawn().expect("serve starts"),
            port,
            stdout,
            stderr,
        }
    }
}

/// A `serve` process; killed if a test ends without stopping it.
struct Server {
    child: Child,
    port: u16,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Server {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// Polls `GET /health` until it answers 200; panics with the server's log if the
    /// process exits first or never answers.
    fn wait_healthy(&mut self) -> String {
        for _ in 0..MAX_POLLS {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "serve exited with {status} before answering:\n{}",
                    self.stderr()
                );
            }
            if let Some(body) = http_get(self.port, "/health").filter(|answer| {
                answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200")
            }) {
                return body;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("serve never answered /health:\n{}", self.stderr());
    }

    /// Waits for the process to exit on its own.
    fn wait_exit(&mut self) -> std::process::ExitStatus {
        for _ in 0..MAX_POLLS {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the process did not exit:\n{}", self.stderr());
    }

    /// Sends SIGTERM (what `systemctl stop` sends) and waits for the exit.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM failed");
        self.wait_exit()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A raw HTTP/1.0 GET; `None` if nothing answers.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A valid user agent file.
const SQL_REVIEWER: &str = r#"
id = "sql-reviewer"
name = "SQL Reviewer"
category = "development"
role = "worker"
capabilities = ["code_review", "database_design"]
system_prompt = "You review SQL schemas and queries. Answer concisely."
"#;

/// A user agent file with a field of the wrong type.
const BAD_AGENT: &str = r#"
id = "bad-agent"
name = "Bad"
category = "development"
role = "worker"
capabilities = ["code_review"]
system_prompt = "x"
temperature = "hot"
"#;

#[test]
fn serve_runs_the_api_and_the_client_commands_drive_it() {
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.agents_dir().join("sql-reviewer.toml"), SQL_REVIEWER).expect("write");
    std::fs::write(sandbox.agents_dir().join("bad-agent.toml"), BAD_AGENT).expect("write");
    let mut server = sandbox.serve("main", free_port(), &[]);
    let health = server.wait_healthy();
    assert!(health.contains("\"system_health\""), "{health}");

    let api = server.url();
    let client = |args: &[&str]| {
        let mut full = vec!["--api", api.as_str()];
        full.extend_from_slice(args);
        sandbox.run(&full, &[])
    };

    // The bad file is reported by name; the good user agent and the built-ins still load.
    let stderr = server.stderr();
    assert!(stderr.contains("bad-agent.toml"), "{stderr}");
    assert!(
        stderr.contains("temperature"),
        "the field is named: {stderr}"
    );

    let out = client(&["agents", "list", "--capability", "database_design"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    assert!(listing.contains("sql-reviewer"), "{listing}");
    assert!(!listing.contains("bad-agent"), "{listing}");

    let out = client(&["agents", "list", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    let total = json["total"].as_u64().expect("total");
    assert_eq!(total, 39, "38 built-ins plus one user agent");

    let out = client(&["agents", "show", "sql-reviewer"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("sql-reviewer.toml"),
        "the defining file is shown: {shown}"
    );

    // A task that waits for an approval runs nothing; it can be listed, shown, cancelled.
    let out = client(&[
        "task",
        "submit",
        "--name",
        "Gated",
        "--description",
        "Wait for sign-off",
        "--requirement",
        "code_review",
        "--approval",
        "sign-off",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let submitted = text(&out.stdout);
    let id = submitted
        .split_whitespace()
        .nth(2)
        .expect("`submitted task <id> (<status>)`")
        .to_owned();
    assert!(submitted.contains("(awaiting_approval)"), "{submitted}");
    assert!(
        submitted.contains("sutazai task approve"),
        "the next step is shown: {submitted}"
    );

    let out = client(&["task", "list", "--status", "awaiting_approval"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    assert!(
        listing.contains(&id) && listing.contains("Gated"),
        "{listing}"
    );

    let out = client(&["task", "show", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains("sign-off pending"), "{shown}");

    let out = client(&["task", "approve", &id, "not-required", "--by", "alice"]);
    assert_eq!(out.status.code(), Some(1), "an unknown approval is refused");
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("error: "), "{stderr}");

    let out = client(&["task", "cancel", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), format!("task {id}: cancelled"));

    let out = client(&["task", "show", "no-such-task"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.contains("(task_not_found)"),
        "{stderr}"
    );

    // A task that needs the (unreachable) model fails; --wait follows it to the end,
    // prints it and exits non-zero.
    let out = client(&[
        "task",
        "submit",
        "--name",
        "Needs a model",
        "--description",
        "Say hello",
        "--requirement",
        "database_design",
        "--wait",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(stdout.contains("Status     failed"), "{stdout}");
    assert!(
        stderr.contains("error: task ") && stderr.contains(" failed: "),
        "{stderr}"
    );

    // --wait follows /ws: a gated task is approved from another process while a waiter
    // watches; the waiter prints the task's progress events and its failure.
    let waiter_err = sandbox.path().join("waiter.stderr");
    let mut waiter = sandbox
        .command()
        .args([
            "--api",
            api.as_str(),
            "task",
            "submit",
            "--name",
            "Watched",
            "--description",
            "Say hello",
            "--requirement",
            "database_design",
            "--approval",
            "go",
            "--wait",
        ])
        .stdout(Stdio::null())
        .stderr(File::create(&waiter_err).expect("stderr file"))
        .spawn()
        .expect("the waiter starts");
    let mut watched = None;
    for _ in 0..MAX_POLLS {
        let log = std::fs::read_to_string(&waiter_err).unwrap_or_default();
        if let Some(rest) = log.split("submitted task ").nth(1) {
            watched = rest.split_whitespace().next().map(str::to_owned);
            break;
        }
        if waiter.try_wait().expect("try_wait").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let watched = watched.unwrap_or_else(|| {
        panic!(
            "the waiter never submitted: {}",
            std::fs::read_to_string(&waiter_err).unwrap_or_default()
        )
    });
    let out = client(&["task", "approve", &watched, "go", "--by", "tester"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with(&format!("approved `go` on task {watched}")),
        "{}",
        text(&out.stdout)
    );
    let mut status = None;
    for _ in 0..MAX_POLLS {
        status = waiter.try_wait().expect("try_wait");
        if status.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(&waiter_err).unwrap_or_default();
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{log}");
    assert!(log.contains("approved: go"), "{log}");
    assert!(log.contains("started with agents: "), "{log}");
    assert!(log.contains("(llm_unreachable)"), "{log}");

    // A second server on the same data directory must not start (it would resume and
    // re-run the same journaled tasks).
    let mut second = sandbox.serve("second", free_port(), &[]);
    let status = second.wait_exit();
    assert!(!status.success());
    let stderr = second.stderr();
    assert!(
        stderr.contains("in use by another SutazAI server"),
        "{stderr}"
    );

    // Nor may one start on a port that is taken.
    let mut third = sandbox.serve(
        "third",
        server.port,
        &[(
            "SUTAZAI_DATA_DIR",
            &sandbox.path().join("data-3").to_string_lossy(),
        )],
    );
    let status = third.wait_exit();
    assert!(!status.success());
    let stderr = third.stderr();
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{}", server.port)),
        "{stderr}"
    );

    // SIGTERM stops the server cleanly.
    let status = server.terminate();
    assert!(status.success(), "exit {status}:\n{}", server.stderr());
    let stdout = server.stdout();
    assert!(
        stdout.contains(&format!(
            "SutazAI dashboard: http://127.0.0.1:{}/",
            server.port
        )),
        "{stdout}"
    );
}

#[test]
fn a_bad_port_stops_serve_with_the_variable_named() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["serve"], &[("ORCHESTRATION_API_PORT", "abc")]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("ORCHESTRATION_API_PORT=abc: invalid digit found in string"),
        "{stderr}"
    );
}

#[test]
fn enable_auth_with_a_weak_secret_is_refused_before_anything_starts() {
    let sandbox = Sandbox::new();
    let port = free_port().to_string();
    let out = sandbox.run(
        &["serve"],
        &[
            ("ENABLE_AUTH", "true"),
            ("JWT_SECRET_KEY", "your-secret-key"),
            ("ORCHESTRATION_API_PORT", &port),
        ],
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("JWT_SECRET_KEY is 15 bytes long; it must be at least 32"),
        "{stderr}"
    );
    assert!(!sandbox.path().join("data").exists(), "nothing was started");
}

#[test]
fn a_client_without_a_server_says_how_to_start_one() {
    let sandbox = Sandbox::new();
    let api = format!("http://127.0.0.1:{}", free_port());
    let out = sandbox.run(&["task", "list", "--api", &api], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "error: cannot connect to the SutazAI server at {api}"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("`sutazai serve`"), "{stderr}");
}

#[test]
fn doctor_reports_each_check_and_passes_without_the_optional_parts() {
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.agents_dir().join("bad-agent.toml"), BAD_AGENT).expect("write");
    let port = free_port().to_string();
    let out = sandbox.run(
        &["doctor"],
        &[
            ("ORCHESTRATION_API_PORT", &port),
            ("SUTAZAI_MODEL", "tiny-model"),
        ],
    );
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("✓ settings"), "{stdout}");
    assert!(stdout.contains("✓ data dir"), "{stdout}");
    assert!(
        stdout.contains("✗ LLM ollama"),
        "the LLM is unreachable: {stdout}"
    );
    assert!(stdout.contains("hint: start Ollama"), "{stdout}");
    assert!(
        stdout.contains("- Redis"),
        "Redis is not configured: {stdout}"
    );
    assert!(stdout.contains("✗ Docker"), "{stdout}");
    assert!(stdout.contains("✗ agents"), "{stdout}");
    assert!(stdout.contains("bad-agent.toml"), "{stdout}");
    assert!(
        stdout.contains("✓ API port") && stdout.contains(&port),
        "{stdout}"
    );
    assert!(stdout.contains("essential checks passed"), "{stdout}");
    assert!(
        stdout.contains("✓ disk") && stdout.contains("GiB free"),
        "{stdout}"
    );
    assert!(
        sandbox.path().join("data").join("journal.sqlite3").exists(),
        "the journal was opened"
    );

    let out = sandbox.run(&["doctor", "--json"], &[("ORCHESTRATION_API_PORT", &port)]);
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["ok"], true);
    let names: Vec<&str> = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "settings",
            "data dir",
            "disk",
            "LLM ollama",
            "Redis",
            "Docker",
            "agents",
            "API port"
        ]
    );
}

#[test]
fn doctor_fails_when_an_essential_check_fails() {
    let sandbox = Sandbox::new();
    // A data directory below a regular file can never be created.
    let blocker = sandbox.path().join("not-a-dir");
    std::fs::write(&blocker, b"x").expect("write");
    let data = blocker.join("data");
    let out = sandbox.run(
        &["doctor"],
        &[("SUTAZAI_DATA_DIR", &data.to_string_lossy())],
    );
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("✗ data dir"), "{stdout}");
    assert!(stdout.contains("hint: set SUTAZAI_DATA_DIR"), "{stdout}");
    assert!(
        stdout.contains("essential checks failed (data dir)"),
        "{stdout}"
    );

    let out = sandbox.run(&["doctor"], &[("MAX_CONCURRENT_TASKS", "0")]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("✗ settings"), "{stdout}");
    assert!(
        stdout.contains("MAX_CONCURRENT_TASKS=0: must be at least 1"),
        "{stdout}"
    );
}
