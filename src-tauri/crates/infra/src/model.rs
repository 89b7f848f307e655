//! What the infrastructure layer reports: status, events, log lines, stats samples, pull
//! progress. Serialized as the API's JSON.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::catalogue::ServiceKind;

/// Whether the Docker engine can be used, and if not why and what to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Availability {
    /// The engine answers.
    pub available: bool,
    /// Where the app looks for it (`DOCKER_HOST` or the default socket).
    pub docker_host: String,
    /// The engine's version when available.
    pub version: Option<String>,
    /// Why it is unavailable.
    pub reason: Option<String>,
    /// What to do about it.
    pub hint: Option<String>,
    /// When this was last checked.
    pub checked_at: DateTime<Utc>,
}

/// One managed container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ContainerInfo {
    /// Docker's id (full).
    pub id: String,
    /// Its name (`sutazai-redis-1`).
    pub name: String,
    /// The service it belongs to.
    pub service: String,
    /// Replica number (1-based).
    pub replica: u32,
    /// Image reference.
    pub image: String,
    /// Docker's state (`running`, `exited`, `restarting`, …).
    pub state: String,
    /// Docker's health (`healthy`, `unhealthy`, `starting`) or `none` without a check.
    pub health: String,
    /// Seconds since it started, while running.
    pub uptime_seconds: Option<u64>,
    /// Restarts: Docker's count plus the app's own heals.
    pub restarts: u64,
    /// Published ports as `host->container`.
    pub ports: Vec<String>,
    /// Exit code of the last run, when not running.
    pub exit_code: Option<i64>,
}

/// One service: its definition's essentials and its containers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ServiceStatus {
    /// Service name.
    pub name: String,
    /// Service kind.
    pub kind: ServiceKind,
    /// Description.
    pub description: String,
    /// Image reference (variables resolved where possible).
    pub image: String,
    /// `running` (all wanted replicas running), `partial`, `stopped` (containers exist,
    /// none running) or `absent` (no container).
    pub state: String,
    /// `healthy` when every running container is healthy (or has no check), `unhealthy`
    /// when one is, `starting`, or `unknown` with nothing running.
    pub health: String,
    /// Replicas asked for (the last deploy or scale; the catalogue's before that).
    pub desired_replicas: u32,
    /// Replicas running.
    pub running_replicas: u32,
    /// Where the host reaches it.
    pub endpoint: Option<String>,
    /// Its containers, by replica number.
    pub containers: Vec<ContainerInfo>,
}

/// `GET /infrastructure/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InfraStatus {
    /// The Docker engine.
    pub docker: Availability,
    /// The project label value this app manages (`sutazai`).
    pub project: String,
    /// Every catalogue service, dependencies first.
    pub services: Vec<ServiceStatus>,
    /// Whether auto-scaling is on.
    pub auto_scaling: bool,
}

/// A lifecycle action on a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Start its containers (creating them up to the desired replicas).
    Start,
    /// Stop them gracefully (SIGTERM, then SIGKILL after the timeout).
    Stop,
    /// Stop then start.
    Restart,
    /// Run exactly `instances` replicas.
    Scale,
    /// Stop and delete its containers (volumes are kept).
    Remove,
}

/// Something that happened, for `/ws`, the CLI and the alert log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum InfraEvent {
    /// A deploy-all step began or ended.
    Step {
        /// `image`, `volume`, `containers`, `health`, `models`.
        step: String,
        /// The service.
        service: String,
        /// `started`, `done` or `failed`.
        status: String,
        /// Details.
        message: String,
    },
    /// Progress pulling an image layer or a model.
    Pull(PullProgress),
    /// A container was started, stopped, created or removed by the app.
    Container {
        /// The service.
        service: String,
        /// The container name.
        container: String,
        /// `created`, `started`, `stopped`, `removed`.
        action: String,
    },
    /// The healer restarted a container.
    Healed {
        /// The service.
        service: String,
        /// The container name.
        container: String,
        /// Why (`exited with 137`, `unhealthy`).
        reason: String,
        /// Restarts by the healer within the window so far.
        attempt: u32,
    },
    /// Something needs a person: the healer gave up, a deploy failed.
    Alert {
        /// `warning` or `critical`.
        severity: String,
        /// The service.
        service: String,
        /// What happened and what to do.
        message: String,
    },
    /// The auto-scaler changed a service's replicas.
    Scaled {
        /// The service.
        service: String,
        /// Replicas before.
        from: u32,
        /// Replicas after.
        to: u32,
        /// Why, with the figures it used.
        reason: String,
    },
    /// Docker became available or unavailable.
    Docker {
        /// The new availability.
        available: bool,
        /// Why (when unavailable).
        reason: Option<String>,
    },
}

/// Progress pulling an image (per layer) or a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PullProgress {
    /// The image or model reference.
    pub reference: String,
    /// The layer id (images), empty for the pull as a whole.
    pub layer: String,
    /// Docker's or Ollama's status text (`Downloading`, `Pull complete`).
    pub status: String,
    /// Bytes done, when known.
    pub current: Option<u64>,
    /// Bytes in all, when known.
    pub total: Option<u64>,
}

/// One log line of a container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LogLine {
    /// The container name.
    pub container: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// The line, without its newline.
    pub line: String,
}

/// One stats sample of a container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StatsSample {
    /// The container name.
    pub container: String,
    /// When Docker read it.
    pub read_at: Option<DateTime<Utc>>,
    /// CPU use in percent of one core (200 = two cores busy).
    pub cpu_percent: f64,
    /// Memory in use, bytes (without the page cache).
    pub memory_bytes: u64,
    /// Memory limit, bytes.
    pub memory_limit_bytes: u64,
    /// Bytes received over every interface.
    pub network_rx_bytes: u64,
    /// Bytes sent over every interface.
    pub network_tx_bytes: u64,
    /// Bytes read from block devices.
    pub block_read_bytes: u64,
    /// Bytes written to block devices.
    pub block_write_bytes: u64,
}

/// The outcome of a deploy-all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeployReport {
    /// Services brought up, in order.
    pub services: Vec<String>,
    /// Seconds it took.
    pub seconds: f64,
    /// The status afterwards.
    pub status: InfraStatus,
}
