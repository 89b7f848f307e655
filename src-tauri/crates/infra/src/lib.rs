//! SutazAI infrastructure: the local Docker services (Redis, Ollama, agent workers) through
//! bollard — deploy-all gated on health, lifecycle, logs, stats, pulls with progress, a
//! healer and an auto-scaler.
//!
//! # Layout
//! - [`catalogue`]: the services as data (built-in TOML, user overrides, variables).
//! - [`engine`](crate::engine): the Docker connection and what its errors mean.
//! - [`ops`](crate::ops): the operations on containers, volumes and images.
//! - [`policy`]: the healer's backoff and the auto-scaler's decisions, as pure functions.
//! - [`model`]: what is reported (status, events, log lines, stats, pull progress).
//! - [`Infra`] (here): the facade the API, the CLI and the desktop shell use; it owns the
//!   availability watcher, the healer and the auto-scaler tasks.
//!
//! # Ownership
//! Only containers and volumes carrying the label `ai.sutazai.managed=true` *and* this
//! app's project label (`ai.sutazai.project`, default `sutazai`) are ever listed, changed
//! or removed: a container started by hand is never touched, whatever its name.
//!
//! # Without Docker
//! [`Infra::new`] never fails for want of an engine: every operation then answers
//! [`InfraError::Unavailable`] (code `docker_unavailable`, with a hint), and the watcher
//! retries every few seconds and reports the engine's return as an event.

mod build;
pub mod catalogue;
mod engine;
pub mod error;
pub mod model;
mod ops;
pub mod policy;
mod pulls;
mod state;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bollard::Docker;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

pub use build::self_image_tag;
pub use catalogue::{Catalogue, ServiceKind, ServiceSpec};
pub use error::InfraError;
pub use model::{
    Action, Availability, ContainerInfo, DeployReport, InfraEvent, InfraStatus, LogLine,
    PullProgress, ServiceStatus, StatsSample,
};
pub use policy::{HealPolicy, Load, ScalePolicy};

/// Label on everything the app created.
pub const LABEL_MANAGED: &str = "ai.sutazai.managed";
/// Label naming the app installation (project) that owns it.
pub const LABEL_PROJECT: &str = "ai.sutazai.project";
/// Label naming the catalogue service.
pub const LABEL_SERVICE: &str = "ai.sutazai.service";
/// Label with the replica number.
pub const LABEL_REPLICA: &str = "ai.sutazai.replica";

/// How often the watcher checks an unavailable engine, and the healer looks at containers.
const WATCH_EVERY: Duration = Duration::from_secs(3);

/// Where the auto-scaler reads the load from (the bus's queue depth, the host's CPU and
/// memory): supplied by the app, which knows the bus and the sampler.
pub type LoadSource =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Option<Load>> + Send>> + Send + Sync>;

/// Settings of the infrastructure layer.
#[derive(Debug, Clone)]
pub struct InfraConfig {
    /// `DOCKER_HOST`, or `None` for the environment's / the default socket.
    pub docker_host: Option<String>,
    /// The project label value and container name prefix (`sutazai`).
    pub project: String,
    /// Directory of user catalogue files (`<config dir>/services`).
    pub catalogue_dir: Option<PathBuf>,
    /// Values for `${NAME}` in the catalogue (`SUTAZAI_BUS_KEY`, `SUTAZAI_MODEL`, …).
    pub vars: BTreeMap<String, String>,
    /// How the healer restarts failed containers; `None` turns it off.
    pub heal: Option<HealPolicy>,
    /// Auto-scaling of worker services (`ENABLE_AUTO_SCALING`); `None` turns it off.
    pub auto_scale: Option<ScaleConfig>,
    /// Seconds a graceful stop waits before killing.
    pub stop_timeout: Duration,
    /// Where pulls in progress are recorded, so that a restart resumes them (the data
    /// directory); `None` keeps no record.
    pub state_dir: Option<PathBuf>,
}

impl Default for InfraConfig {
    fn default() -> Self {
        InfraConfig {
            docker_host: None,
            project: "sutazai".into(),
            catalogue_dir: None,
            vars: BTreeMap::new(),
            heal: Some(HealPolicy::default()),
            auto_scale: None,
            stop_timeout: Duration::from_secs(10),
            state_dir: None,
        }
    }
}

/// Auto-scaling settings.
#[derive(Clone)]
pub struct ScaleConfig {
    /// Bounds, ratio, ceilings, cooldown (bounds are overridden by a service's own
    /// `min_replicas`/`max_replicas`).
    pub policy: ScalePolicy,
    /// How often to decide.
    pub every: Duration,
    /// The load.
    pub load: LoadSource,
}

impl std::fmt::Debug for ScaleConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScaleConfig")
            .field("policy", &self.policy)
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

/// The infrastructure facade. Cheap to clone.
#[derive(Clone)]
pub struct Infra {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Infra {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Infra")
            .field("project", &self.inner.config.project)
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: InfraConfig,
    host: String,
    catalogue: Mutex<Catalogue>,
    /// The engine client while available.
    docker: Mutex<Option<Docker>>,
    availability: Mutex<Availability>,
    /// Replicas asked for, agent worker services, heal counts (shared with other processes
    /// through the state directory).
    state: state::StateStore,
    events: broadcast::Sender<InfraEvent>,
    shutdown: CancellationToken,
    /// Pulls in progress, recorded for a restart.
    pulls: Option<pulls::PendingPulls>,
    /// When a person last changed a service (the auto-scaler's cooldown counts from it).
    manual_changes: Mutex<HashMap<String, Instant>>,
    /// The healer's memory, by container name.
    heal_histories: Mutex<HashMap<String, ops::HealEntry>>,
    /// Serialises lifecycle operations (deploy, scale, heal) so they do not race.
    ops: tokio::sync::Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Infra {
    /// Loads the catalogue and starts the watcher (and the healer and auto-scaler when
    /// configured). Fails only on a bad catalogue; Docker may be missing.
    pub async fn new(
        config: InfraConfig,
        shutdown: CancellationToken,
    ) -> Result<Infra, InfraError> {
        let catalogue = Catalogue::load(config.catalogue_dir.as_deref())?;
        let host = engine::describe_host(config.docker_host.as_deref());
        let (events, _) = broadcast::channel(1024);
        let infra = Infra {
            inner: Arc::new(Inner {
                availability: Mutex::new(engine::availability(
                    &host,
                    &Err(InfraError::Unavailable {
                        reason: "not checked yet".into(),
                        hint: String::new(),
                    }),
                )),
                host,
                catalogue: Mutex::new(catalogue),
                docker: Mutex::new(None),
                state: state::StateStore::new(config.state_dir.as_deref()),
                heal_histories: Mutex::new(HashMap::new()),
                manual_changes: Mutex::new(HashMap::new()),
                pulls: config.state_dir.as_deref().map(pulls::PendingPulls::new),
                events,
                shutdown,
                ops: tokio::sync::Mutex::new(()),
                config,
            }),
        };
        // Agents given worker services of their own by an earlier run keep them.
        for agent in infra.inner.state.get().await.agent_workers {
            if let Err(e) = ops::ensure_agent_worker(&infra, &agent) {
                tracing::warn!(%agent, error = %e, "could not restore the agent's worker service");
            }
        }
        infra.check().await;
        tokio::spawn(watch(infra.clone()));
        if infra.inner.config.heal.is_some() {
            tokio::spawn(ops::heal_loop(infra.clone()));
        }
        if let Some(scale) = infra.inner.config.auto_scale.clone() {
            tokio::spawn(ops::scale_loop(infra.clone(), scale));
        }
        Ok(infra)
    }

    /// Connects (again) and records the availability; reports a change as an event.
    pub async fn check(&self) -> Availability {
        let outcome = engine::connect(self.inner.config.docker_host.as_deref()).await;
        let (client, version) = match outcome {
            Ok((client, version)) => (Some(client), Ok(version)),
            Err(e) => (None, Err(e)),
        };
        let now = engine::availability(&self.inner.host, &version);
        let was = {
            let mut current = lock(&self.inner.availability);
            std::mem::replace(&mut *current, now.clone()).available
        };
        *lock(&self.inner.docker) = client;
        if was != now.available {
            if now.available {
                tracing::info!(host = %now.docker_host, version = ?now.version, "Docker engine available");
            } else {
                tracing::warn!(reason = ?now.reason, "Docker engine unavailable");
            }
            self.emit(InfraEvent::Docker {
                available: now.available,
                reason: now.reason.clone(),
            });
            if now.available {
                self.resume_pulls();
            }
        }
        now
    }

    /// Pulls again, in the background, what a previous run (or the engine's departure)
    /// left unfinished.
    fn resume_pulls(&self) {
        let Some(pending) = self.inner.pulls.clone() else {
            return;
        };
        let infra = self.clone();
        tokio::spawn(async move {
            for reference in pending.unfinished().await {
                tracing::info!(%reference, "resuming an unfinished image pull");
                let mut progress = infra.pull(&reference);
                let mut failure = None;
                while let Some(p) = progress.next().await {
                    if let Err(e) = p {
                        failure = Some(e);
                    }
                }
                match failure {
                    None => tracing::info!(%reference, "resumed pull finished"),
                    Some(e) => tracing::warn!(%reference, error = %e, "resumed pull failed"),
                }
            }
        });
    }

    /// The last known availability (no request to the engine).
    pub fn availability(&self) -> Availability {
        lock(&self.inner.availability).clone()
    }

    /// Events: deploy steps, pulls, heals, alerts, scaling, availability changes.
    pub fn subscribe(&self) -> broadcast::Receiver<InfraEvent> {
        self.inner.events.subscribe()
    }

    /// The catalogue in use.
    pub fn catalogue(&self) -> Catalogue {
        lock(&self.inner.catalogue).clone()
    }

    /// The project label value.
    pub fn project(&self) -> &str {
        &self.inner.config.project
    }

    fn emit(&self, event: InfraEvent) {
        let _ = self.inner.events.send(event);
    }

    /// The engine client, or why there is none.
    fn docker(&self) -> Result<Docker, InfraError> {
        if let Some(docker) = lock(&self.inner.docker).clone() {
            return Ok(docker);
        }
        let a = self.availability();
        Err(InfraError::Unavailable {
            reason: a
                .reason
                .unwrap_or_else(|| "the Docker engine is unavailable".into()),
            hint: a.hint.unwrap_or_default(),
        })
    }

    /// Maps an engine error; an unreachable engine also flips the availability.
    fn fail(
        &self,
        error: bollard::errors::Error,
        not_found: impl FnOnce() -> InfraError,
    ) -> InfraError {
        let mapped = engine::map_error(&self.inner.host, error, not_found);
        if let InfraError::Unavailable { reason, hint } = &mapped {
            let changed = {
                let mut a = lock(&self.inner.availability);
                let changed = a.available;
                *a = engine::availability(
                    &self.inner.host,
                    &Err(InfraError::Unavailable {
                        reason: reason.clone(),
                        hint: hint.clone(),
                    }),
                );
                changed
            };
            *lock(&self.inner.docker) = None;
            if changed {
                self.emit(InfraEvent::Docker {
                    available: false,
                    reason: Some(reason.clone()),
                });
            }
        }
        mapped
    }

    /// The resolved definition of `service`.
    fn spec(&self, service: &str) -> Result<ServiceSpec, InfraError> {
        let catalogue = self.catalogue();
        let spec = catalogue
            .get(service)
            .ok_or_else(|| InfraError::UnknownService(service.to_owned()))?;
        catalogue.resolve(spec, &self.inner.config.vars)
    }

    /// Every service's state and its containers.
    pub async fn status(&self) -> Result<InfraStatus, InfraError> {
        ops::status(self).await
    }

    /// Brings every service up in dependency order, each gated on health; for `ollama`
    /// services, their models are pulled. Progress goes out as events.
    pub async fn deploy_all(&self) -> Result<DeployReport, InfraError> {
        ops::deploy_all(self).await
    }

    /// A lifecycle action on a service; `instances` is required by `scale`.
    pub async fn control(
        &self,
        service: &str,
        action: Action,
        instances: Option<u32>,
    ) -> Result<ServiceStatus, InfraError> {
        ops::control(self, service, action, instances).await
    }

    /// Adds (or replaces) a service derived from `agent-worker` that runs only `agent`, so
    /// `/agents/{id}/control` can start, stop and scale that agent's workers.
    pub async fn ensure_agent_worker(&self, agent: &str) -> Result<String, InfraError> {
        let name = ops::ensure_agent_worker(self, agent)?;
        let agent = agent.to_owned();
        self.inner
            .state
            .update(move |s| {
                s.agent_workers.insert(agent);
            })
            .await;
        Ok(name)
    }

    /// Log lines of a container or of every container of a service: the last `tail`
    /// lines, then new ones while `follow`.
    pub async fn logs(
        &self,
        target: &str,
        tail: usize,
        follow: bool,
    ) -> Result<BoxStream<'static, Result<LogLine, InfraError>>, InfraError> {
        ops::logs(self, target, tail, follow).await
    }

    /// Stats samples of a container (one, or one a second while `stream`).
    pub async fn stats(
        &self,
        container: &str,
        stream: bool,
    ) -> Result<BoxStream<'static, Result<StatsSample, InfraError>>, InfraError> {
        ops::stats(self, container, stream).await
    }

    /// Pulls an image, reporting per-layer progress (layers already present are skipped
    /// by the engine, so a pull interrupted by a restart resumes where it was).
    pub fn pull(&self, reference: &str) -> BoxStream<'static, Result<PullProgress, InfraError>> {
        ops::pull(self, reference)
    }
}

/// Re-checks the engine every few seconds while it is unavailable, and pings it while
/// available (so a stopped daemon is noticed even when nobody asks).
async fn watch(infra: Infra) {
    let shutdown = infra.inner.shutdown.clone();
    let mut last_ping = Instant::now();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(WATCH_EVERY) => {}
        }
        let client = lock(&infra.inner.docker).clone();
        match client {
            None => {
                infra.check().await;
            }
            Some(docker) => {
                if last_ping.elapsed() >= WATCH_EVERY {
                    last_ping = Instant::now();
                    if let Err(e) = docker.ping().await {
                        infra.fail(e, || InfraError::Docker("ping".into()));
                    }
                }
            }
        }
    }
}
