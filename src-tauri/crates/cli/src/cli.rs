//! The command line (clap derive) and the client subcommands, which talk to a running
//! server over the spec's HTTP routes: `task submit|list|show|cancel|approve` and
//! `agents list|show`. Tables by default, the server's JSON verbatim with `--json`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use futures::StreamExt as _;
use serde::Deserialize;
use serde_json::{Value, json};
use sutazai_core::{
    CoordinationPattern, Priority, Step, StepStatus, Task, TaskRequest, TaskStatus,
};
use tokio::io::AsyncReadExt as _;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::client::{ApiClient, ClientError};
use crate::output::{self, Table};

/// How often `task submit --wait` asks for the task when it cannot follow `/ws`.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long `--wait` tries to open the `/ws` event stream before falling back to polling.
const WS_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// SutazAI: the local control plane for AI agents.
#[derive(Debug, Clone, Parser)]
#[command(name = "sutazai", version)]
pub struct Cli {
    /// What to do; without one the desktop app opens (headless build: this help).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Config file (TOML). Default: $SUTAZAI_CONFIG, else <config dir>/sutazai.toml.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Server for client commands. Default: http://ORCHESTRATION_API_HOST:ORCHESTRATION_API_PORT.
    #[arg(long, global = true, env = "SUTAZAI_API_URL", value_name = "URL")]
    pub api: Option<String>,
    /// Print the server's JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Credential for a server with authentication on: an API key (`szk_…`) or an access
    /// token, sent as `Authorization: Bearer`.
    #[arg(
        long,
        global = true,
        env = "SUTAZAI_API_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
}

/// The subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the orchestration API and dashboard until Ctrl-C or SIGTERM.
    Serve,
    /// Execute agent steps from the Redis message bus (REDIS_URL) alongside `serve`
    /// processes, until Ctrl-C or SIGTERM.
    Worker {
        /// `all`, or agent ids separated by commas.
        #[arg(long, default_value = "all", value_name = "IDS|all")]
        agents: String,
    },
    /// Submit, inspect, cancel and approve tasks on a running server.
    #[command(subcommand)]
    Task(TaskCmd),
    /// Inspect the agents of a running server.
    #[command(subcommand)]
    Agents(AgentsCmd),
    /// Check settings, data directory, LLM endpoint, Redis, Docker, agents and the API port.
    Doctor,
    /// List or pull the default provider's models (Ollama's `/api/tags` and `/api/pull`).
    #[command(subcommand)]
    Models(ModelsCmd),
    /// Manage the Docker services (Redis, Ollama, agent workers) directly, no server needed.
    #[command(subcommand)]
    Infra(InfraCmd),
    /// A running server's health, tasks, agents, bus, Docker and firing alerts.
    Status,
    /// List or acknowledge a running server's alerts.
    #[command(subcommand)]
    Alerts(AlertsCmd),
    /// A running server's metrics: Prometheus' text format (`GET /metrics`), a live view
    /// (`--watch`), or a stored time series (`--series METRIC`).
    Metrics(MetricsArgs),
    /// API keys and tokens for a server with authentication on (ENABLE_AUTH), managed in
    /// the data directory's credential store: no server needed.
    #[command(subcommand)]
    Auth(crate::auth_cmd::AuthCmd),
    /// The audit log in the data directory: list entries or verify its hash chain.
    #[command(subcommand)]
    Audit(crate::auth_cmd::AuditCmd),
}

/// `sutazai metrics ...`.
#[derive(Debug, Clone, clap::Args)]
pub struct MetricsArgs {
    /// A live view (host, GPUs, tasks, busiest agents, firing alerts) redrawn every
    /// `--interval` until Ctrl-C.
    #[arg(long, conflicts_with = "series")]
    pub watch: bool,
    /// Seconds between frames of the live view.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub interval: u64,
    /// Stop the live view after this many frames.
    #[arg(long, requires = "watch")]
    pub frames: Option<u64>,
    /// A stored series (`cpu_percent`, `agent_success_rate`, `container_memory_bytes`, …).
    #[arg(long, value_name = "METRIC")]
    pub series: Option<String>,
    /// The series' subject (`host`, an agent id, a mount point, `gpu0`); all by default.
    #[arg(long, requires = "series")]
    pub subject: Option<String>,
    /// How far back (`90s`, `30m`, `6h`, `7d`).
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration, requires = "series")]
    pub since: std::time::Duration,
    /// Seconds per point (chosen from the range by default).
    #[arg(long, requires = "series")]
    pub step: Option<u64>,
}

/// `sutazai alerts ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum AlertsCmd {
    /// Alerts, newest first.
    List {
        /// Only `firing` or `resolved` ones.
        #[arg(long)]
        status: Option<String>,
        /// At most this many (1 to 1000).
        #[arg(long)]
        limit: Option<u32>,
        /// Only alerts older than this id (the next page).
        #[arg(long)]
        before: Option<u64>,
    },
    /// Acknowledge an alert.
    Ack {
        /// Alert id.
        id: u64,
    },
}

/// `sutazai infra ...`: the Docker services of the catalogue (`SUTAZAI_SERVICES_DIR`).
#[derive(Debug, Clone, Subcommand)]
pub enum InfraCmd {
    /// Docker's availability and every service's state, health, replicas and containers.
    Status,
    /// Bring every service up in dependency order, each gated on health.
    DeployAll,
    /// Start a service (creating its containers up to the desired replicas).
    Start {
        /// Service name (`redis`, `ollama`, `agent-worker`, …).
        service: String,
        /// Replicas to run (default: the last asked for, or the catalogue's).
        #[arg(long)]
        instances: Option<u32>,
    },
    /// Stop a service's containers gracefully.
    Stop {
        /// Service name.
        service: String,
    },
    /// Restart a service's containers.
    Restart {
        /// Service name.
        service: String,
    },
    /// Run exactly N replicas of a service.
    Scale {
        /// Service name.
        service: String,
        /// Replicas (0 removes them all).
        instances: u32,
    },
    /// Stop and delete a service's containers (its volumes are kept).
    Remove {
        /// Service name.
        service: String,
    },
    /// Show a service's (or one container's) log lines.
    Logs {
        /// Service or container name.
        target: String,
        /// Last lines to show.
        #[arg(long, default_value_t = 100)]
        tail: usize,
        /// Keep following new lines.
        #[arg(long, short)]
        follow: bool,
    },
    /// Pull an image, showing per-layer progress.
    Pull {
        /// Image reference.
        image: String,
    },
}

/// `sutazai models ...`: talks to the configured LLM endpoint directly, no server needed.
#[derive(Debug, Clone, Subcommand)]
pub enum ModelsCmd {
    /// List the models the default provider has.
    List,
    /// Pull a model into Ollama, showing progress (default: the configured `SUTAZAI_MODEL`).
    Pull {
        /// Model name, e.g. `llama3.2:3b`.
        model: Option<String>,
    },
}

/// `sutazai task ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum TaskCmd {
    /// Submit a task (from flags, a JSON file, or both: flags override the file).
    Submit(SubmitArgs),
    /// List tasks, newest first.
    List {
        /// Only this status: active, queued, awaiting_approval, running, completed,
        /// failed, cancelled.
        #[arg(long)]
        status: Option<String>,
        /// At most this many (server default 50).
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Show a task with its steps (agent, tokens, durations) and result.
    Show {
        /// Task id.
        id: String,
    },
    /// Cancel a task.
    Cancel {
        /// Task id.
        id: String,
    },
    /// Give one of a task's required approvals.
    Approve {
        /// Task id.
        id: String,
        /// The approval's name (one of the task's required approvals).
        approval: String,
        /// Who approves (recorded with the approval).
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
    },
}

/// `sutazai agents ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum AgentsCmd {
    /// List agents.
    List {
        /// Only this state: healthy, degraded, stopped.
        #[arg(long)]
        status: Option<String>,
        /// Only agents with this capability.
        #[arg(long)]
        capability: Option<String>,
    },
    /// Show one agent.
    Show {
        /// Agent id.
        id: String,
    },
}

/// `sutazai task submit`.
#[derive(Debug, Clone, Args)]
pub struct SubmitArgs {
    /// Short name of the task.
    #[arg(long, required_unless_present = "file")]
    pub name: Option<String>,
    /// What to do, in words: the prompt the agents work from.
    #[arg(long)]
    pub description: Option<String>,
    /// Free-form task type (code_review, deployment, ...).
    #[arg(long = "type", value_name = "TYPE")]
    pub task_type: Option<String>,
    /// low, normal, high or critical.
    #[arg(long, value_parser = parse_priority)]
    pub priority: Option<Priority>,
    /// A capability the task needs (repeat, or separate with commas).
    #[arg(long = "requirement", value_name = "CAPABILITY", value_delimiter = ',')]
    pub requirements: Vec<String>,
    /// hierarchical, collaborative, pipeline or swarm.
    #[arg(long, value_parser = parse_pattern)]
    pub pattern: Option<CoordinationPattern>,
    /// Structured input for the agents, as JSON.
    #[arg(long, value_name = "JSON", value_parser = parse_json)]
    pub payload: Option<Value>,
    /// At most this many agents.
    #[arg(long, value_name = "N")]
    pub max_agents: Option<u32>,
    /// Seconds the task may run before it fails with deadline_exceeded.
    #[arg(long, value_name = "SECONDS")]
    pub estimated_duration: Option<f64>,
    /// An approval required before the task runs (repeatable).
    #[arg(long = "approval", value_name = "NAME")]
    pub approvals: Vec<String>,
    /// A task as JSON (the POST /tasks body); `-` reads standard input.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Wait until the task finishes, showing progress, then print it.
    #[arg(long)]
    pub wait: bool,
}

fn parse_priority(s: &str) -> Result<Priority, String> {
    serde_json::from_value(Value::String(s.to_ascii_lowercase()))
        .map_err(|_| format!("`{s}` is not one of low, normal, high, critical"))
}

fn parse_pattern(s: &str) -> Result<CoordinationPattern, String> {
    serde_json::from_value(Value::String(s.to_ascii_lowercase()))
        .map_err(|_| format!("`{s}` is not one of hierarchical, collaborative, pipeline, swarm"))
}

fn parse_json(s: &str) -> Result<Value, String> {
    serde_json::from_str(s).map_err(|e| format!("not valid JSON: {e}"))
}

/// How a client command ended when it did not fail outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Everything as asked.
    Success,
    /// The command ran but reports a failure (a waited-for task failed); the reason is
    /// already printed, the process exits non-zero.
    Failure,
}

/// Runs a `task` or `agents` subcommand against `client`.
pub(crate) async fn run_client(
    command: &Command,
    client: &ApiClient,
    json_output: bool,
) -> anyhow::Result<Outcome> {
    match command {
        Command::Task(cmd) => run_task(cmd, client, json_output).await,
        Command::Agents(cmd) => run_agents(cmd, client, json_output).await,
        Command::Status => run_status(client, json_output).await,
        Command::Alerts(cmd) => run_alerts(cmd, client, json_output).await,
        Command::Metrics(args) => {
            if args.watch {
                crate::live::watch(client, Duration::from_secs(args.interval), args.frames).await?;
            } else if let Some(metric) = &args.series {
                crate::live::series(
                    client,
                    metric,
                    args.subject.clone(),
                    args.since,
                    args.step,
                    json_output,
                )
                .await?;
            } else {
                let text = client.get_text(&["metrics"]).await?;
                output::emit(&text)?;
            }
            Ok(Outcome::Success)
        }
        Command::Serve
        | Command::Auth(_)
        | Command::Audit(_)
        | Command::Worker { .. }
        | Command::Doctor
        | Command::Models(_)
        | Command::Infra(_) => {
            bail!("not a client command")
        }
    }
}

async fn run_status(client: &ApiClient, json_output: bool) -> anyhow::Result<Outcome> {
    let status = client.get(&["status"], &[]).await?;
    let alerts = client
        .get(&["alerts"], &[("status", Some("firing".to_owned()))])
        .await
        .ok();
    if json_output {
        print_json(&serde_json::json!({ "status": status, "alerts": alerts }))?;
        return Ok(Outcome::Success);
    }
    let firing = alerts
        .as_ref()
        .and_then(|a| a["alerts"].as_array().map(Vec::len));
    let rows = [
        (
            "Health",
            format!(
                "{} ({})",
                status["status"].as_str().unwrap_or("?"),
                output::percent(status["system_health"].as_f64())
            ),
        ),
        (
            "Tasks",
            format!(
                "{} active, {} queued, {} awaiting approval",
                status["active_tasks"], status["queued_tasks"], status["awaiting_approval"]
            ),
        ),
        (
            "Agents",
            format!(
                "{} healthy of {}",
                status["agents"]["healthy"], status["agents"]["total"]
            ),
        ),
        (
            "Bus",
            format!(
                "{}, {} messages/min",
                status["message_bus"]["backend"].as_str().unwrap_or("?"),
                status["message_bus"]["messages_per_minute"]
            ),
        ),
        (
            "Docker",
            if status["infrastructure"]["available"] == true {
                format!(
                    "available ({})",
                    status["infrastructure"]["version"].as_str().unwrap_or("?")
                )
            } else {
                format!(
                    "unavailable: {}",
                    status["infrastructure"]["reason"].as_str().unwrap_or("?")
                )
            },
        ),
        (
            "Alerts",
            firing.map_or_else(|| "unknown".to_owned(), |n| format!("{n} firing")),
        ),
    ];
    for (k, v) in rows {
        output::emit_line(&format!("{k:<8} {v}"))?;
    }
    Ok(Outcome::Success)
}

async fn run_alerts(
    cmd: &AlertsCmd,
    client: &ApiClient,
    json_output: bool,
) -> anyhow::Result<Outcome> {
    match cmd {
        AlertsCmd::List {
            status,
            limit,
            before,
        } => {
            let value = client
                .get(
                    &["alerts"],
                    &[
                        ("status", status.clone()),
                        ("limit", limit.map(|l| l.to_string())),
                        ("before", before.map(|b| b.to_string())),
                    ],
                )
                .await?;
            if json_output {
                print_json(&value)?;
                return Ok(Outcome::Success);
            }
            let alerts = value["alerts"].as_array().cloned().unwrap_or_default();
            if alerts.is_empty() {
                output::emit_line("no alerts")?;
                return Ok(Outcome::Success);
            }
            let mut table = Table::new(&["ID", "STATUS", "SEVERITY", "FIRED", "ACK", "MESSAGE"]);
            for a in alerts {
                table.row(vec![
                    a["id"].to_string(),
                    a["status"].as_str().unwrap_or("").to_owned(),
                    a["severity"].as_str().unwrap_or("").to_owned(),
                    a["fired_at"].as_str().unwrap_or("").to_owned(),
                    if a["acknowledged"] == true {
                        "yes"
                    } else {
                        "no"
                    }
                    .to_owned(),
                    a["message"].as_str().unwrap_or("").to_owned(),
                ]);
            }
            output::emit(&table.render())?;
            Ok(Outcome::Success)
        }
        AlertsCmd::Ack { id } => {
            let id = id.to_string();
            let value = client
                .post(&["alerts", &id, "acknowledge"], &serde_json::json!({}))
                .await?;
            if json_output {
                print_json(&value)?;
            } else {
                output::emit_line(&format!(
                    "alert {} acknowledged: {}",
                    value["id"],
                    value["message"].as_str().unwrap_or("")
                ))?;
            }
            Ok(Outcome::Success)
        }
    }
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value).context("formatting JSON")?;
    output::emit_line(&text)?;
    Ok(())
}

fn decode<T: for<'de> Deserialize<'de>>(
    client: &ApiClient,
    what: &str,
    value: Value,
) -> Result<T, ClientError> {
    serde_json::from_value(value).map_err(|e| ClientError::Decode {
        url: client.base_url().to_owned(),
        message: format!("{what}: {e}"),
    })
}

async fn run_task(cmd: &TaskCmd, client: &ApiClient, json_output: bool) -> anyhow::Result<Outcome> {
    match cmd {
        TaskCmd::Submit(args) => submit(args, client, json_output).await,
        TaskCmd::List { status, limit } => {
            let value = client
                .get(
                    &["tasks"],
                    &[
                        ("status", status.clone()),
                        ("limit", limit.map(|l| l.to_string())),
                    ],
                )
                .await?;
            if json_output {
                print_json(&value)?;
                return Ok(Outcome::Success);
            }
            let list: TaskList = decode(client, "task list", value)?;
            output::emit(&task_table(&list.tasks))?;
            Ok(Outcome::Success)
        }
        TaskCmd::Show { id } => {
            let value = client.get(&["tasks", id], &[]).await?;
            if json_output {
                print_json(&value)?;
            } else {
                let detail: TaskView = decode(client, "task", value)?;
                output::emit(&task_detail(&detail))?;
            }
            Ok(Outcome::Success)
        }
        TaskCmd::Cancel { id } => {
            let value = client.delete(&["tasks", id]).await?;
            if json_output {
                print_json(&value)?;
            } else {
                let status = value.get("status").and_then(Value::as_str).unwrap_or("?");
                output::emit_line(&format!("task {id}: {status}"))?;
            }
            Ok(Outcome::Success)
        }
        TaskCmd::Approve { id, approval, by } => {
            let mut body = json!({ "approval": approval });
            if let Some(by) = by {
                body["approved_by"] = json!(by);
            }
            let value = client.post(&["tasks", id, "approve"], &body).await?;
            if json_output {
                print_json(&value)?;
            } else {
                let status = value.get("status").and_then(Value::as_str).unwrap_or("?");
                let pending = string_list(value.get("pending_approvals"));
                output::emit_line(&format!(
                    "approved `{approval}` on task {id}; status: {status}"
                ))?;
                if !pending.is_empty() {
                    output::emit_line(&format!("still pending: {}", pending.join(", ")))?;
                }
            }
            Ok(Outcome::Success)
        }
    }
}

fn string_list(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The task request from `--file` (if any) with the flags applied over it.
async fn build_request(args: &SubmitArgs) -> anyhow::Result<TaskRequest> {
    let mut request = match &args.file {
        Some(path) => {
            let bytes = if path.as_os_str() == "-" {
                let mut buf = Vec::new();
                tokio::io::stdin()
                    .read_to_end(&mut buf)
                    .await
                    .context("reading the task from standard input")?;
                buf
            } else {
                tokio::fs::read(path)
                    .await
                    .with_context(|| format!("reading the task file {}", path.display()))?
            };
            serde_json::from_slice::<TaskRequest>(&bytes)
                .with_context(|| format!("parsing the task file {}", path.display()))?
        }
        None => TaskRequest {
            name: String::new(),
            description: String::new(),
            task_type: String::new(),
            priority: Priority::default(),
            requirements: Vec::new(),
            coordination_pattern: CoordinationPattern::default(),
            payload: Value::Null,
            constraints: Default::default(),
        },
    };
    if let Some(name) = &args.name {
        request.name = name.clone();
    }
    if request.name.trim().is_empty() {
        bail!("a task needs a name: pass --name, or a \"name\" in the --file JSON");
    }
    if let Some(description) = &args.description {
        request.description = description.clone();
    }
    if let Some(task_type) = &args.task_type {
        request.task_type = task_type.clone();
    }
    if let Some(priority) = args.priority {
        request.priority = priority;
    }
    if let Some(pattern) = args.pattern {
        request.coordination_pattern = pattern;
    }
    if let Some(payload) = &args.payload {
        request.payload = payload.clone();
    }
    for requirement in &args.requirements {
        let requirement = requirement.trim();
        if !requirement.is_empty() && !request.requirements.iter().any(|r| r == requirement) {
            request.requirements.push(requirement.to_owned());
        }
    }
    if let Some(max_agents) = args.max_agents {
        request.constraints.max_agents = Some(max_agents);
    }
    if let Some(secs) = args.estimated_duration {
        request.constraints.estimated_duration = Some(secs);
    }
    for approval in &args.approvals {
        if !request.constraints.required_approvals.contains(approval) {
            request
                .constraints
                .required_approvals
                .push(approval.clone());
        }
    }
    Ok(request)
}

type EventStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `/ws`, or `None` when it cannot (old server, proxy without WebSockets, TLS):
/// `--wait` then polls instead.
async fn open_events(client: &ApiClient) -> Option<EventStream> {
    let url = client.ws_url(&["ws"]);
    match tokio::time::timeout(
        WS_CONNECT_TIMEOUT,
        tokio_tungstenite::connect_async(url.as_str()),
    )
    .await
    {
        Ok(Ok((stream, _))) => Some(stream),
        Ok(Err(e)) => {
            tracing::debug!(
                "cannot follow {}: {e}; polling instead",
                without_query(&url)
            );
            None
        }
        Err(_) => {
            tracing::debug!("opening {} timed out; polling instead", without_query(&url));
            None
        }
    }
}

async fn submit(
    args: &SubmitArgs,
    client: &ApiClient,
    json_output: bool,
) -> anyhow::Result<Outcome> {
    let request = build_request(args).await?;
    // Subscribe before submitting so no event of the new task can be missed.
    let events = if args.wait {
        open_events(client).await
    } else {
        None
    };
    let body = serde_json::to_value(&request).context("encoding the task")?;
    let submitted = client.post(&["tasks"], &body).await?;
    let id = submitted
        .get("task_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ClientError::Decode {
            url: client.base_url().to_owned(),
            message: "the answer to POST /tasks has no task_id".to_owned(),
        })?;
    let status = submitted
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("?");
    let pending = string_list(submitted.get("pending_approvals"));
    if !args.wait {
        if json_output {
            print_json(&submitted)?;
        } else {
            output::emit_line(&format!("submitted task {id} ({status})"))?;
            if let Some(session) = submitted.get("session_id").and_then(Value::as_str) {
                output::emit_line(&format!("session {session}"))?;
            }
            if !pending.is_empty() {
                output::emit_line(&format!(
                    "waiting for approvals: {} (give each with `sutazai task approve {id} <NAME>`)",
                    pending.join(", ")
                ))?;
            }
        }
        return Ok(Outcome::Success);
    }

    eprintln!(
        "submitted task {id} ({status}); waiting for it to finish (Ctrl-C stops waiting, not the task)"
    );
    if !pending.is_empty() {
        eprintln!(
            "it waits for approvals first: {} (`sutazai task approve {id} <NAME>`)",
            pending.join(", ")
        );
    }
    let value = wait_for(client, &id, events).await?;
    let detail: TaskView = decode(client, "task", value.clone())?;
    if json_output {
        print_json(&value)?;
    } else {
        output::emit(&task_detail(&detail))?;
    }
    match detail.task.status {
        TaskStatus::Completed => Ok(Outcome::Success),
        status => {
            let why = detail.task.error.as_deref().unwrap_or("no reason given");
            eprintln!("error: task {id} {}: {why}", status.as_str());
            Ok(Outcome::Failure)
        }
    }
}

/// What reading the event stream produced.
enum Wake {
    /// Something happened that may have changed the task: look at it again.
    Recheck,
    /// The stream ended: poll from now on.
    Closed,
}

/// Waits until task `id` is terminal and returns its detail JSON; follows `/ws` while it
/// can (printing progress on stderr) and polls otherwise.
async fn wait_for(
    client: &ApiClient,
    id: &str,
    mut events: Option<EventStream>,
) -> Result<Value, ClientError> {
    loop {
        let value = client.get(&["tasks", id], &[]).await?;
        let status = value
            .get("status")
            .and_then(Value::as_str)
            .and_then(TaskStatus::parse);
        if status.is_some_and(TaskStatus::is_terminal) {
            if let Some(mut stream) = events.take() {
                let _ = stream.close(None).await;
            }
            return Ok(value);
        }
        match events.as_mut() {
            Some(stream) => {
                if let Wake::Closed = next_wake(stream, id).await {
                    eprintln!("(event stream closed; polling)");
                    events = None;
                }
            }
            None => tokio::time::sleep(POLL_INTERVAL).await,
        }
    }
}

/// Reads events, printing this task's progress, until one calls for a recheck: the task
/// ended, the periodic `system_status` heartbeat (a safety net), or lost events.
async fn next_wake(stream: &mut EventStream, id: &str) -> Wake {
    while let Some(message) = stream.next().await {
        let text = match message {
            Ok(WsMessage::Text(text)) => text,
            Ok(WsMessage::Close(_)) | Err(_) => return Wake::Closed,
            Ok(_) => continue,
        };
        let Ok(event) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        let kind = event.get("type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "system_status" | "lagged" => return Wake::Recheck,
            _ => {}
        }
        if event.get("task_id").and_then(Value::as_str) != Some(id) {
            continue;
        }
        if let Some(line) = progress_line(&event) {
            eprintln!("{line}");
        }
        if matches!(kind, "task_completed" | "task_failed" | "task_cancelled") {
            return Wake::Recheck;
        }
    }
    Wake::Closed
}

/// One line of progress for a task event, or `None` for events not worth a line.
fn progress_line(event: &Value) -> Option<String> {
    let s = |key: &str| {
        event
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned()
    };
    let n = |key: &str| event.get(key).and_then(Value::as_u64).unwrap_or(0);
    Some(match event.get("type").and_then(Value::as_str)? {
        "awaiting_approval" => format!(
            "waiting for approvals: {}",
            string_list(event.get("pending")).join(", ")
        ),
        "task_approved" => format!("approved: {}", s("approval")),
        "task_started" => {
            let resumed = event.get("resumed").and_then(Value::as_bool) == Some(true);
            format!(
                "{} with agents: {}",
                if resumed { "resumed" } else { "started" },
                string_list(event.get("agents")).join(", ")
            )
        }
        "step_started" => format!("  ▸ {} ({}) by {}", s("step"), s("kind"), s("agent_id")),
        "step_finished" => {
            let ok = s("status") == "completed";
            format!(
                "  {} {} by {}: {} in + {} out tokens, {}",
                if ok { "✓" } else { "✗" },
                s("step"),
                s("agent_id"),
                n("prompt_tokens"),
                n("completion_tokens"),
                output::duration(event.get("duration").and_then(Value::as_f64).unwrap_or(0.0)),
            )
        }
        "task_completed" => "completed".to_owned(),
        "task_failed" => format!("failed: {} ({})", s("message"), s("code")),
        "task_cancelled" => "cancelled".to_owned(),
        _ => return None,
    })
}

/// `GET /tasks` body.
#[derive(Debug, Deserialize)]
struct TaskList {
    tasks: Vec<Task>,
}

/// `GET /tasks/{id}` body: the task, its missing approvals and its steps.
#[derive(Debug, Deserialize)]
struct TaskView {
    #[serde(flatten)]
    task: Task,
    #[serde(default)]
    pending_approvals: Vec<String>,
    #[serde(default)]
    steps: Vec<Step>,
}

fn task_table(tasks: &[Task]) -> String {
    if tasks.is_empty() {
        return "no tasks\n".to_owned();
    }
    let mut table = Table::new(&[
        "ID", "STATUS", "PRIORITY", "PATTERN", "AGENTS", "CREATED", "NAME",
    ]);
    for task in tasks {
        table.row(vec![
            task.id.clone(),
            task.status.as_str().to_owned(),
            task.request.priority.as_str().to_owned(),
            task.request.coordination_pattern.as_str().to_owned(),
            task.assigned_agents.len().to_string(),
            output::local_time(&task.created_at),
            task.request.name.clone(),
        ]);
    }
    table.render()
}

fn task_detail(view: &TaskView) -> String {
    let task = &view.task;
    let request = &task.request;
    let mut out = String::new();
    let mut field = |name: &str, value: String| {
        out.push_str(&format!("{name:<11}{value}\n"));
    };
    field("Task", task.id.clone());
    field("Name", request.name.clone());
    field("Status", task.status.as_str().to_owned());
    let mut kind = format!(
        "{} priority, {} pattern",
        request.priority.as_str(),
        request.coordination_pattern.as_str()
    );
    if !request.task_type.is_empty() {
        kind.push_str(&format!(", type {}", request.task_type));
    }
    field("Kind", kind);
    if !request.requirements.is_empty() {
        field("Requires", request.requirements.join(", "));
    }
    if !task.assigned_agents.is_empty() {
        field("Agents", task.assigned_agents.join(", "));
    }
    field("Created", output::local_time(&task.created_at));
    if let Some(started) = &task.started_at {
        field("Started", output::local_time(started));
    }
    if let Some(done) = &task.completed_at {
        let took = task
            .started_at
            .map(|s| {
                let ms = (*done - s).num_milliseconds();
                format!(" (ran {})", output::duration(ms as f64 / 1000.0))
            })
            .unwrap_or_default();
        field("Finished", format!("{}{took}", output::local_time(done)));
    }
    let mut approvals: Vec<String> = task
        .approvals
        .iter()
        .map(|a| format!("{} ✓ by {}", a.name, a.approved_by))
        .collect();
    approvals.extend(
        view.pending_approvals
            .iter()
            .map(|p| format!("{p} pending")),
    );
    if !approvals.is_empty() {
        field("Approvals", approvals.join("; "));
    }
    if let Some(error) = &task.error {
        field("Error", error.clone());
    }
    if let Some(result) = &task.result {
        out.push_str("\nResult\n");
        let text = match result.get("output").or(Some(result)) {
            Some(Value::String(s)) => s.clone(),
            _ => serde_json::to_string_pretty(result).unwrap_or_default(),
        };
        out.push_str(text.trim_end());
        out.push('\n');
    }
    if !view.steps.is_empty() {
        out.push_str("\nSteps\n");
        let mut table = Table::new(&[
            "#",
            "STEP",
            "KIND",
            "AGENT",
            "STATUS",
            "TRIES",
            "TOKENS IN/OUT",
            "TIME",
            "MODEL",
        ]);
        for step in &view.steps {
            table.row(vec![
                step.seq.to_string(),
                step.key.clone(),
                serde_json::to_value(step.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                step.agent_id.clone(),
                match step.status {
                    StepStatus::Running => "running",
                    StepStatus::Completed => "completed",
                    StepStatus::Failed => "failed",
                }
                .to_owned(),
                step.attempts.to_string(),
                format!("{}/{}", step.prompt_tokens, step.completion_tokens),
                step.duration
                    .map(output::duration)
                    .unwrap_or_else(|| "-".to_owned()),
                step.model.clone().unwrap_or_default(),
            ]);
        }
        out.push_str(&table.render());
        let tokens: u64 = view
            .steps
            .iter()
            .map(|s| u64::from(s.prompt_tokens) + u64::from(s.completion_tokens))
            .sum();
        let n = view.steps.len();
        let plural = if n == 1 { "" } else { "s" };
        out.push_str(&format!("{n} step{plural}, {tokens} tokens\n"));
    }
    out
}

/// An agent as `GET /agents` shows it; every field defaults so an older or newer server's
/// answer still prints.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AgentView {
    id: String,
    name: String,
    category: String,
    role: String,
    capabilities: Vec<String>,
    status: String,
    model: String,
    provider: String,
    active_steps: u32,
    max_concurrency: u32,
    load: f64,
    completed_steps: u64,
    failed_steps: u64,
    success_rate: Option<f64>,
    average_response_time: Option<f64>,
    source: String,
}

/// `GET /agents` body.
#[derive(Debug, Deserialize)]
struct AgentList {
    agents: Vec<AgentView>,
}

async fn run_agents(
    cmd: &AgentsCmd,
    client: &ApiClient,
    json_output: bool,
) -> anyhow::Result<Outcome> {
    match cmd {
        AgentsCmd::List { status, capability } => {
            let value = client
                .get(
                    &["agents"],
                    &[
                        ("status", status.clone()),
                        ("capability", capability.clone()),
                    ],
                )
                .await?;
            if json_output {
                print_json(&value)?;
                return Ok(Outcome::Success);
            }
            let list: AgentList = decode(client, "agent list", value)?;
            if list.agents.is_empty() {
                output::emit_line("no agents match")?;
                return Ok(Outcome::Success);
            }
            let mut table = Table::new(&[
                "ID",
                "STATUS",
                "ROLE",
                "CATEGORY",
                "MODEL",
                "SLOTS",
                "SUCCESS",
                "CAPABILITIES",
            ]);
            for a in &list.agents {
                table.row(vec![
                    a.id.clone(),
                    a.status.clone(),
                    a.role.clone(),
                    a.category.clone(),
                    format!("{}/{}", a.provider, a.model),
                    format!("{}/{}", a.active_steps, a.max_concurrency),
                    output::percent(a.success_rate),
                    a.capabilities.join(","),
                ]);
            }
            output::emit(&table.render())?;
            output::emit_line(&format!("{} agents", list.agents.len()))?;
            Ok(Outcome::Success)
        }
        AgentsCmd::Show { id } => {
            let value = client.get(&["agents", id], &[]).await?;
            if json_output {
                print_json(&value)?;
                return Ok(Outcome::Success);
            }
            let a: AgentView = decode(client, "agent", value)?;
            let rows = [
                ("Agent", a.id.clone()),
                ("Name", a.name.clone()),
                ("Status", a.status.clone()),
                ("Role", format!("{} ({})", a.role, a.category)),
                ("Model", format!("{} via {}", a.model, a.provider)),
                (
                    "Load",
                    format!(
                        "{}/{} steps ({})",
                        a.active_steps,
                        a.max_concurrency,
                        output::percent(Some(a.load))
                    ),
                ),
                (
                    "Record",
                    format!(
                        "{} completed, {} failed, success {}, mean {}",
                        a.completed_steps,
                        a.failed_steps,
                        output::percent(a.success_rate),
                        a.average_response_time
                            .map(output::duration)
                            .unwrap_or_else(|| "-".to_owned())
                    ),
                ),
                ("Defined", a.source.clone()),
                ("Can do", a.capabilities.join(", ")),
            ];
            for (name, value) in rows {
                output::emit_line(&format!("{name:<9}{value}"))?;
            }
            Ok(Outcome::Success)
        }
    }
}

/// A URL for the log: without its query, which may carry `access_token`.
fn without_query(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    fn submit_args(argv: &[&str]) -> SubmitArgs {
        let mut full = vec!["sutazai", "task", "submit"];
        full.extend_from_slice(argv);
        match Cli::try_parse_from(full).expect("valid arguments").command {
            Some(Command::Task(TaskCmd::Submit(args))) => args,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[tokio::test]
    async fn flags_build_the_spec_request() {
        let args = submit_args(&[
            "--name",
            "Review",
            "--description",
            "Review the auth module",
            "--type",
            "code_review",
            "--priority",
            "HIGH",
            "--requirement",
            "code_analysis,security_review",
            "--requirement",
            "code_analysis",
            "--pattern",
            "pipeline",
            "--payload",
            r#"{"language":"rust"}"#,
            "--max-agents",
            "3",
            "--estimated-duration",
            "600",
            "--approval",
            "security-review",
        ]);
        let request = build_request(&args).await.expect("request");
        let value = serde_json::to_value(&request).expect("serialises");
        assert_eq!(
            value,
            json!({
                "name": "Review",
                "description": "Review the auth module",
                "type": "code_review",
                "priority": "high",
                "requirements": ["code_analysis", "security_review"],
                "coordination_pattern": "pipeline",
                "payload": {"language": "rust"},
                "constraints": {
                    "max_agents": 3,
                    "estimated_duration": 600.0,
                    "required_approvals": ["security-review"]
                }
            })
        );
    }

    #[tokio::test]
    async fn flags_override_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("task.json");
        std::fs::write(
            &file,
            r#"{"name":"From file","description":"d","priority":"low",
                "requirements":["a"],"constraints":{"required_approvals":["x"]}}"#,
        )
        .expect("write");
        let path = file.to_string_lossy().into_owned();
        let args = submit_args(&[
            "--file",
            &path,
            "--priority",
            "critical",
            "--requirement",
            "b",
        ]);
        let request = build_request(&args).await.expect("request");
        assert_eq!(request.name, "From file");
        assert_eq!(request.priority, Priority::Critical);
        assert_eq!(request.requirements, vec!["a", "b"]);
        assert_eq!(request.constraints.required_approvals, vec!["x"]);
    }

    #[test]
    fn name_is_required_without_a_file_and_bad_values_are_named() {
        let err = Cli::try_parse_from(["sutazai", "task", "submit"]).expect_err("no name");
        assert!(err.to_string().contains("--name"), "{err}");
        let err = Cli::try_parse_from([
            "sutazai",
            "task",
            "submit",
            "--name",
            "x",
            "--priority",
            "urgent",
        ])
        .expect_err("bad priority");
        assert!(
            err.to_string()
                .contains("`urgent` is not one of low, normal, high, critical"),
            "{err}"
        );
        let err =
            Cli::try_parse_from(["sutazai", "task", "submit", "--name", "x", "--payload", "{"])
                .expect_err("bad JSON");
        assert!(err.to_string().contains("not valid JSON"), "{err}");
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "sutazai",
            "agents",
            "list",
            "--json",
            "--api",
            "http://h:1",
            "--config",
            "/c.toml",
        ])
        .expect("valid");
        assert!(cli.json);
        assert_eq!(cli.api.as_deref(), Some("http://h:1"));
        assert_eq!(cli.config.as_deref(), Some(std::path::Path::new("/c.toml")));
    }

    #[test]
    fn task_detail_shows_steps_tokens_and_result() {
        let view: TaskView = serde_json::from_value(json!({
            "id": "t1", "session_id": "s1", "name": "Review", "description": "",
            "type": "", "priority": "normal", "requirements": [],
            "coordination_pattern": "collaborative", "payload": null, "constraints": {},
            "status": "completed", "assigned_agents": ["a1"], "approvals": [],
            "result": {"output": "All good.", "pattern": "collaborative"},
            "created_at": "2025-01-01T00:00:00Z",
            "started_at": "2025-01-01T00:00:01Z",
            "completed_at": "2025-01-01T00:00:05Z",
            "pending_approvals": [],
            "steps": [{
                "task_id": "t1", "key": "work/a1", "seq": 0, "kind": "work", "agent_id": "a1",
                "status": "completed", "input": "p", "output": "o", "attempts": 1,
                "model": "m", "prompt_tokens": 12, "completion_tokens": 30, "duration": 1.5,
                "started_at": "2025-01-01T00:00:01Z"
            }]
        }))
        .expect("a task detail");
        let text = task_detail(&view);
        assert!(text.contains("Status     completed"), "{text}");
        assert!(text.contains("All good."), "{text}");
        assert!(text.contains("work/a1"), "{text}");
        assert!(text.contains("12/30"), "{text}");
        assert!(text.contains("1 step, 42 tokens"), "{text}");
        assert!(text.contains("(ran 4.00s)"), "{text}");
    }
}
