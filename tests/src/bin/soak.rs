//! The soak: `SOAK_TASKS` (10,000) one-step tasks submitted to a real `sutazai-headless
//! serve` (the release build `SOAK_HEADLESS` names) much faster than they complete, with
//! `MAX_CONCURRENT_TASKS` small, on a real Redis bus, the test LLM and the machine's Docker
//! engine; and while they run, faults one at a time (`SOAK_FAULTS`, in this order):
//!
//! - `serve`: `kill -9` of the server, restarted at once on the same data directory;
//! - `redis`: `kill -9` of Redis, restarted 15 s later (AOF, `appendfsync everysec`);
//! - `llm`: the LLM endpoint stopped for 30 s, then started again on the same port;
//! - `docker`: dockerd stopped (SIGTERM) for 20 s, then started again.
//!
//! After each fault the alert it should raise (`tasks_interrupted`, `dependency_down` for
//! `message_bus`, `llm:ollama`, `docker`) must fire and then resolve. At the end, from the
//! journal itself: every accepted task completed, once; from the LLM server's request logs:
//! how many model calls each step cost. Also reported: the server's resident memory
//! (sampled every 0.5 s, peak), and the latency of `POST /tasks`, `GET /tasks/{id}` and
//! `GET /health` (p50, p99, max). The report (markdown) is printed and written to
//! `SOAK_REPORT` when set; the exit status is 1 when a check failed.
//!
//! Run it through `scripts/soak.sh`, which builds the server and starts what it needs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sutazai_core::TaskStatus;
use sutazai_store::Journal;
use sutazai_tests::redis_server::TestRedis;
use sutazai_tests::{TestLlm, free_port, headless_command, wait_healthy};
use tokio::sync::RwLock;

/// Concurrent submitters.
const SUBMITTERS: usize = 8;
/// Pause between a fault's recovery and the next fault.
const BETWEEN_FAULTS: Duration = Duration::from_secs(45);
/// How long after its fault an alert may take to fire and resolve.
const ALERT_PATIENCE: Duration = Duration::from_secs(300);

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> Result<T> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}={v:?} is not valid")),
        _ => Ok(default),
    }
}

/// Latencies in milliseconds.
#[derive(Default)]
struct Latencies(Mutex<Vec<f64>>);

impl Latencies {
    fn add(&self, since: Instant) {
        let ms = since.elapsed().as_secs_f64() * 1000.0;
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(ms);
    }

    fn summary(&self) -> String {
        let mut v = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if v.is_empty() {
            return "no samples".into();
        }
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
        format!(
            "{} requests: p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms",
            v.len(),
            at(0.50),
            at(0.99),
            v[v.len() - 1]
        )
    }
}

/// What the run shares between its tasks.
struct Shared {
    base: String,
    client: reqwest::Client,
    /// Held (read) by every submission; taken (write) to kill the server between requests,
    /// so no submission is left not knowing whether it was accepted.
    gate: RwLock<()>,
    accepted: Mutex<Vec<String>>,
    next: AtomicUsize,
    refused_full: AtomicU64,
    post: Latencies,
    get_task: Latencies,
    health: Latencies,
    /// The server's pid (0 while there is none).
    pid: AtomicU32,
    peak_rss_kib: AtomicU64,
    done: AtomicBool,
}

/// The processes the run owns.
struct World {
    bin: PathBuf,
    data: tempfile::TempDir,
    port: u16,
    llm_port: u16,
    llm: Option<TestLlm>,
    /// Requests logged by LLM servers already stopped.
    llm_log: Vec<Value>,
    redis: TestRedis,
    docker_host: Option<String>,
    serve: Option<Child>,
    log: PathBuf,
    concurrency: usize,
}

impl Drop for World {
    /// However the run ends, the server it started does not outlive it (the LLM and Redis
    /// stop with their own guards).
    fn drop(&mut self) {
        if let Some(mut child) = self.serve.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl World {
    fn llm_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.llm_port)
    }

    async fn start_serve(&mut self, shared: &Shared) -> Result<Duration> {
        let began = Instant::now();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut cmd = headless_command(&self.bin, &self.llm_url(), self.port, self.data.path());
        cmd.env("REDIS_URL", &self.redis.url)
            .env("MAX_CONCURRENT_TASKS", self.concurrency.to_string())
            .env("SUTAZAI_MAX_TOKENS", "8")
            .env("SUTAZAI_STEP_TIMEOUT", "60")
            .env("SUTAZAI_INFRA_PROJECT", "sutazai-soak")
            .env("LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .arg("serve");
        if let Some(host) = &self.docker_host {
            cmd.env("DOCKER_HOST", host);
        }
        let child = cmd.spawn().context("spawning sutazai-headless serve")?;
        shared.pid.store(child.id(), Ordering::Relaxed);
        self.serve = Some(child);
        wait_healthy(&shared.base).await?;
        Ok(began.elapsed())
    }

    fn kill_serve(&mut self, shared: &Shared) {
        shared.pid.store(0, Ordering::Relaxed);
        if let Some(mut child) = self.serve.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
    }

    async fn stop_llm(&mut self) -> Result<()> {
        if let Some(llm) = self.llm.take() {
            self.llm_log.extend(llm.requests().await?);
        }
        Ok(())
    }

    fn start_llm(&mut self) -> Result<()> {
        self.llm = Some(TestLlm::spawn_on(self.llm_port, 2, 0)?);
        Ok(())
    }
}

/// Submits tasks until `SOAK_TASKS` are accepted; waits out 503s and a server that is down.
async fn submitter(shared: Arc<Shared>, total: usize) {
    loop {
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        if i >= total {
            return;
        }
        let body = json!({
            "name": format!("soak-{i}"),
            "description": "Name one benefit of unit tests.",
            "requirements": ["code_generation"],
            "coordination_pattern": "pipeline",
            "constraints": {"max_agents": 1}
        });
        loop {
            let guard = shared.gate.read().await;
            let began = Instant::now();
            let answer = shared
                .client
                .post(format!("{}/tasks", shared.base))
                .json(&body)
                .send()
                .await;
            match answer {
                Ok(r) if r.status().as_u16() == 201 => {
                    shared.post.add(began);
                    let v: Value = r.json().await.unwrap_or_default();
                    if let Some(id) = v["task_id"].as_str() {
                        shared
                            .accepted
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(id.to_owned());
                    }
                    break;
                }
                Ok(r) if r.status().as_u16() == 503 => {
                    shared.post.add(began);
                    shared.refused_full.fetch_add(1, Ordering::Relaxed);
                    drop(guard);
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                Ok(r) => {
                    eprintln!("soak: POST /tasks answered {}", r.status());
                    drop(guard);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(_) => {
                    drop(guard);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

/// Every 200 ms: `GET /health` and `GET /tasks/{id}` of a recently accepted task, timed.
async fn prober(shared: Arc<Shared>) {
    let mut n = 0usize;
    while !shared.done.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Ok(_guard) = shared.gate.try_read() else {
            continue;
        };
        let began = Instant::now();
        if let Ok(r) = shared
            .client
            .get(format!("{}/health", shared.base))
            .send()
            .await
            && r.status().is_success()
        {
            shared.health.add(began);
        }
        let id = {
            let accepted = shared.accepted.lock().unwrap_or_else(|p| p.into_inner());
            n = n.wrapping_add(7919);
            (!accepted.is_empty()).then(|| accepted[n % accepted.len()].clone())
        };
        if let Some(id) = id {
            let began = Instant::now();
            if let Ok(r) = shared
                .client
                .get(format!("{}/tasks/{id}", shared.base))
                .send()
                .await
                && r.status().is_success()
            {
                shared.get_task.add(began);
            }
        }
    }
}

/// Every 0.5 s, the server's resident memory (peak kept).
async fn rss_sampler(shared: Arc<Shared>) {
    while !shared.done.load(Ordering::Relaxed) {
        let pid = shared.pid.load(Ordering::Relaxed);
        if pid != 0
            && let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(kib) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            shared.peak_rss_kib.fetch_max(kib, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The server's unfinished tasks (queued, running, awaiting approval), from `/status`.
async fn unfinished(shared: &Shared) -> Option<u64> {
    let v: Value = shared
        .client
        .get(format!("{}/status", shared.base))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let n = |p: &str| v.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    Some(n("/queued_tasks") + n("/active_tasks") + n("/awaiting_approval"))
}

/// Waits until alert `rule`/`subject` fired at or after `since` and resolved; returns
/// (fired_at, resolved_at).
async fn alert_cycle(
    shared: &Shared,
    rule: &str,
    subject: &str,
    since: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>)> {
    let began = Instant::now();
    let mut fired = None;
    loop {
        if let Ok(r) = shared
            .client
            .get(format!("{}/alerts?limit=1000", shared.base))
            .send()
            .await
            && let Ok(v) = r.json::<Value>().await
        {
            for a in v["alerts"].as_array().into_iter().flatten() {
                if a["rule_id"] != rule || a["subject"] != subject {
                    continue;
                }
                let at = |k: &str| {
                    a[k].as_str()
                        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                        .map(|t| t.with_timezone(&Utc))
                };
                let Some(fired_at) = at("fired_at").filter(|t| *t >= since) else {
                    continue;
                };
                fired = Some(fired_at);
                if let Some(resolved_at) = at("resolved_at") {
                    return Ok((fired_at, resolved_at));
                }
            }
        }
        if began.elapsed() > ALERT_PATIENCE {
            bail!(
                "alert {rule}/{subject}: {} within {ALERT_PATIENCE:?}",
                if fired.is_some() {
                    "fired but did not resolve"
                } else {
                    "did not fire"
                }
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn docker_up() -> bool {
    Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn dockerd_pid() -> Option<u32> {
    std::fs::read_to_string("/var/run/docker.pid")
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// Whether process `pid` exists and has not exited (a zombie has).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // `pid (comm) S …`: the state follows the last `)`.
            let rest = &stat[stat.rfind(')')? + 1..];
            rest.split_whitespace().next().map(|state| state != "Z")
        })
        .unwrap_or(false)
}

async fn wait_until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) -> Result<()> {
    let began = Instant::now();
    while !check() {
        if began.elapsed() > limit {
            bail!("{what} within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}

/// One fault: what was done, the downtime, and the alert cycle.
struct FaultReport {
    name: String,
    action: String,
    alert: String,
}

async fn inject(
    fault: &str,
    world: &mut World,
    shared: &Shared,
    report: &mut Vec<FaultReport>,
    failures: &mut Vec<String>,
) -> Result<()> {
    let since = Utc::now() - chrono::TimeDelta::seconds(1);
    eprintln!("soak: fault `{fault}` at {since}");
    let (action, rule, subject) = match fault {
        "serve" => {
            let gate = shared.gate.write().await;
            world.kill_serve(shared);
            let up = world.start_serve(shared).await?;
            drop(gate);
            let resumed = unfinished(shared).await.unwrap_or(0);
            (
                format!(
                    "`kill -9` of serve; the new process answered after {:.1} s with {resumed} unfinished tasks",
                    up.as_secs_f64()
                ),
                "tasks_interrupted",
                "app",
            )
        }
        "redis" => {
            world.redis.kill();
            tokio::time::sleep(Duration::from_secs(15)).await;
            world.redis.start();
            (
                "`kill -9` of redis-server, restarted 15 s later".into(),
                "dependency_down",
                "message_bus",
            )
        }
        "llm" => {
            world.stop_llm().await?;
            tokio::time::sleep(Duration::from_secs(30)).await;
            world.start_llm()?;
            (
                "the LLM server stopped for 30 s, then started on the same port".into(),
                "dependency_down",
                "llm:ollama",
            )
        }
        "docker" => {
            let Some(pid) = dockerd_pid() else {
                bail!("no /var/run/docker.pid: is dockerd running?");
            };
            Command::new("kill").arg(pid.to_string()).status()?;
            wait_until(Duration::from_secs(120), "dockerd did not stop", || {
                !running(pid)
            })
            .await?;
            tokio::time::sleep(Duration::from_secs(20)).await;
            let log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(world.log.with_file_name("dockerd.log"))?;
            Command::new("setsid")
                .args([
                    "dockerd",
                    "--storage-driver=vfs",
                    "--iptables=false",
                    "--bridge=none",
                ])
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .context("starting dockerd")?;
            wait_until(
                Duration::from_secs(60),
                "dockerd did not come back",
                docker_up,
            )
            .await?;
            (
                "dockerd stopped (SIGTERM) for 20 s, then started again".into(),
                "dependency_down",
                "docker",
            )
        }
        other => bail!("unknown fault {other:?} (serve, redis, llm, docker)"),
    };
    let alert = match alert_cycle(shared, rule, subject, since).await {
        Ok((fired, resolved)) => format!(
            "`{rule}` / `{subject}` fired {:.1} s after the fault began, resolved {:.1} s after that",
            (fired - since).as_seconds_f64() - 1.0,
            (resolved - fired).as_seconds_f64()
        ),
        Err(e) => {
            failures.push(e.to_string());
            format!("**{e}**")
        }
    };
    eprintln!("soak: fault `{fault}`: {action}; {alert}");
    report.push(FaultReport {
        name: fault.into(),
        action,
        alert,
    });
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let total: usize = env_or("SOAK_TASKS", 10_000)?;
    let concurrency: usize = env_or("SOAK_CONCURRENCY", 4)?;
    let faults: String = env_or("SOAK_FAULTS", "serve,redis,llm,docker".to_owned())?;
    let faults: Vec<String> = faults
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty() && *f != "none")
        .map(str::to_owned)
        .collect();
    let bin = PathBuf::from(
        std::env::var("SOAK_HEADLESS").context("SOAK_HEADLESS: the sutazai-headless to soak")?,
    );
    if faults.iter().any(|f| f == "docker") && !docker_up() {
        bail!("the docker fault needs a running dockerd (`docker info` fails)");
    }
    let data = tempfile::Builder::new().prefix("sutazai-soak").tempdir()?;
    let log = data.path().join("serve.log");
    eprintln!("soak: data and logs in {}", data.path().display());
    let mut world = World {
        bin,
        port: free_port()?,
        llm_port: free_port()?,
        llm: None,
        llm_log: Vec::new(),
        redis: TestRedis::private(),
        docker_host: faults.iter().any(|f| f == "docker").then(|| {
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
        }),
        serve: None,
        log,
        concurrency,
        data,
    };
    world.start_llm()?;
    let shared = Arc::new(Shared {
        base: format!("http://127.0.0.1:{}", world.port),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?,
        gate: RwLock::new(()),
        accepted: Mutex::new(Vec::new()),
        next: AtomicUsize::new(0),
        refused_full: AtomicU64::new(0),
        post: Latencies::default(),
        get_task: Latencies::default(),
        health: Latencies::default(),
        pid: AtomicU32::new(0),
        peak_rss_kib: AtomicU64::new(0),
        done: AtomicBool::new(false),
    });
    world.start_serve(&shared).await?;
    let started = Instant::now();
    let submitters: Vec<_> = (0..SUBMITTERS)
        .map(|_| tokio::spawn(submitter(shared.clone(), total)))
        .collect();
    tokio::spawn(prober(shared.clone()));
    tokio::spawn(rss_sampler(shared.clone()));

    let mut failures = Vec::new();
    let mut fault_reports = Vec::new();
    let mut submitted_in = None;
    let mut faults_left = faults.iter();
    let mut next_fault_at = started + BETWEEN_FAULTS;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let accepted = shared
            .accepted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len();
        if submitted_in.is_none() && accepted >= total {
            submitted_in = Some(started.elapsed());
            eprintln!(
                "soak: all {total} accepted after {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        if Instant::now() >= next_fault_at {
            match faults_left.next() {
                Some(fault) => {
                    inject(
                        fault,
                        &mut world,
                        &shared,
                        &mut fault_reports,
                        &mut failures,
                    )
                    .await?;
                    next_fault_at = Instant::now() + BETWEEN_FAULTS;
                }
                None => next_fault_at = Instant::now() + Duration::from_secs(86_400),
            }
        }
        let Some(unfinished) = unfinished(&shared).await else {
            continue;
        };
        if started.elapsed().as_secs().is_multiple_of(30) {
            eprintln!(
                "soak: {:.0} s: {accepted} accepted, {unfinished} unfinished, peak RSS {} MiB",
                started.elapsed().as_secs_f64(),
                shared.peak_rss_kib.load(Ordering::Relaxed) / 1024
            );
        }
        if accepted >= total && unfinished == 0 && next_fault_at > Instant::now() + BETWEEN_FAULTS {
            break;
        }
    }
    let elapsed = started.elapsed();
    shared.done.store(true, Ordering::Relaxed);
    for s in submitters {
        s.await?;
    }
    world.stop_llm().await?;
    world.kill_serve(&shared);

    // The journal is the truth: every accepted task, once, completed.
    let journal = Journal::open(&world.data.path().join("journal.sqlite3"))?;
    let tasks = journal.list_tasks(None, usize::MAX >> 1).await?;
    let accepted = shared
        .accepted
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let accepted_set: HashSet<&str> = accepted.iter().map(String::as_str).collect();
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    let mut names: HashMap<&str, usize> = HashMap::new();
    for t in &tasks {
        *by_status.entry(t.status.as_str().to_owned()).or_default() += 1;
        *names.entry(t.request.name.as_str()).or_default() += 1;
    }
    let journaled: HashSet<&str> = tasks.iter().map(|t| t.id.as_str()).collect();
    let lost = accepted_set.difference(&journaled).count();
    let unknown = journaled.difference(&accepted_set).count();
    let duplicate_names = names.values().filter(|n| **n > 1).count();
    let not_completed = tasks
        .iter()
        .filter(|t| t.status != TaskStatus::Completed)
        .count();
    if accepted.len() != total {
        failures.push(format!("{} of {total} accepted", accepted.len()));
    }
    if lost > 0 {
        failures.push(format!("{lost} accepted tasks are not in the journal"));
    }
    if unknown > 0 {
        failures.push(format!("{unknown} journaled tasks were never accepted"));
    }
    if duplicate_names > 0 {
        failures.push(format!("{duplicate_names} submissions journaled twice"));
    }
    if not_completed > 0 {
        failures.push(format!("{not_completed} tasks did not complete"));
    }
    // Steps: how many attempts the journal records, and how many model calls the LLM saw.
    let mut attempts: BTreeMap<u32, usize> = BTreeMap::new();
    let mut steps = 0usize;
    for t in &tasks {
        for s in journal.steps(&t.id).await? {
            steps += 1;
            *attempts.entry(s.attempts).or_default() += 1;
        }
    }
    let mut calls: HashMap<&str, (usize, usize)> = HashMap::new();
    for r in &world.llm_log {
        if let Some(step) = r["step"].as_str() {
            let e = calls.entry(step).or_default();
            e.0 += 1;
            if r["aborted"] == true || r["ended_at_ms"].is_null() {
                e.1 += 1;
            }
        }
    }
    let mut per_step: BTreeMap<usize, usize> = BTreeMap::new();
    let mut repeated_unexplained = 0;
    for (n, cut) in calls.values() {
        *per_step.entry(*n).or_default() += 1;
        // A step called again must have had its earlier call cut off by a fault.
        if *n > 1 && *cut == 0 {
            repeated_unexplained += 1;
        }
    }
    // Without a cut-off call, a step runs again only when Redis lost the record that it was
    // handled (AOF `everysec` may lose the last second): expected with the redis fault,
    // a failure without it.
    let redis_fault = faults.iter().any(|f| f == "redis");
    if repeated_unexplained > 0 && !redis_fault {
        failures.push(format!(
            "{repeated_unexplained} steps called again without a cut-off call"
        ));
    }
    let tasks_called = calls
        .keys()
        .filter_map(|k| k.split('/').next())
        .collect::<HashSet<_>>()
        .len();

    let mut out = String::new();
    let _ = writeln!(out, "## Soak: {total} tasks, faults: {}", faults.join(", "));
    let _ = writeln!(
        out,
        "\n- `MAX_CONCURRENT_TASKS={concurrency}`, Redis bus, the test LLM (2 parallel slots, `SUTAZAI_MAX_TOKENS=8`), {SUBMITTERS} submitters"
    );
    let _ = writeln!(
        out,
        "- all {} accepted after {:.1} s ({} refusals `503 queue_full` waited out); all finished after {:.1} s ({:.1} tasks/s)",
        accepted.len(),
        submitted_in.unwrap_or(elapsed).as_secs_f64(),
        shared.refused_full.load(Ordering::Relaxed),
        elapsed.as_secs_f64(),
        accepted.len() as f64 / elapsed.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "- journal: {} tasks {:?}; accepted but missing: {lost}; journaled but never accepted: {unknown}; submissions journaled twice: {duplicate_names}",
        tasks.len(),
        by_status
    );
    let _ = writeln!(
        out,
        "- steps: {steps}, by attempts {attempts:?}; the LLM saw calls for {tasks_called} tasks, calls per step {per_step:?}; steps called again without a cut-off call before: {repeated_unexplained}{}",
        if repeated_unexplained > 0 && redis_fault {
            " (allowed with the redis fault: AOF `everysec` may lose the mark that a request was handled, and it is delivered again)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "- peak resident memory of serve: {} MiB",
        shared.peak_rss_kib.load(Ordering::Relaxed) / 1024
    );
    let _ = writeln!(out, "- `POST /tasks`: {}", shared.post.summary());
    let _ = writeln!(out, "- `GET /tasks/{{id}}`: {}", shared.get_task.summary());
    let _ = writeln!(out, "- `GET /health`: {}", shared.health.summary());
    for f in &fault_reports {
        let _ = writeln!(out, "- fault `{}`: {}; alert {}", f.name, f.action, f.alert);
    }
    if failures.is_empty() {
        let _ = writeln!(out, "- result: **every check passed**");
    } else {
        let _ = writeln!(out, "- result: **FAILED**: {}", failures.join("; "));
    }
    println!("{out}");
    if let Ok(path) = std::env::var("SOAK_REPORT") {
        std::fs::write(&path, &out).with_context(|| format!("writing {path}"))?;
    }
    if !failures.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}
