//! The monitor as `serve` (and the desktop app) runs it: its history file, its alert
//! channels, and what it observes of the app itself besides the host — each agent's
//! health, recent success and error rates, response time and load; the tasks running and
//! waiting, and those interrupted by the last stop; the bus's traffic and dead letters; the
//! CPU and memory of every managed container; whether each dependency answers
//! (`dependency_up`: the message bus, the default LLM endpoint and every other one once it
//! has answered, and the Docker engine once it has been seen in this process, so a machine
//! without Docker gets no alert). Every
//! observation feeds both the alert rules and the time series.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use futures::StreamExt;
use sutazai_infra::Infra;
use sutazai_monitor::{
    Channels, EmailChannel, History, LiveChannels, Monitor, MonitorConfig, Notifier, Observation,
    ObservationSource,
};
use sutazai_orchestrator::Orchestrator;
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;

/// The monitor's SQLite file in the data directory.
pub const HISTORY_FILE_NAME: &str = "monitoring.db";
/// Between samples of the managed containers' CPU and memory.
const CONTAINER_INTERVAL: Duration = Duration::from_secs(15);
/// The longest the bus's figures may take before the bus counts as unreachable.
const BUS_STATS_TIMEOUT: Duration = Duration::from_millis(500);
/// Between probes of the LLM endpoints.
const LLM_PROBE_INTERVAL: Duration = Duration::from_secs(5);
/// The longest an LLM endpoint may take to list its models before it counts as down.
const LLM_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Starts the monitor (1 s host samples, a ring of an hour, the default rules, the app's
/// observations, the history in `<data dir>/monitoring.db`) and delivery to `channels`
/// (email and Slack, as the settings set them now and later) plus `notifiers` (the
/// desktop's). Everything ends with `shutdown`.
pub async fn start_monitor(
    settings: &Settings,
    orchestrator: Orchestrator,
    infra: Option<Infra>,
    channels: &LiveChannels,
    notifiers: Vec<Arc<dyn Notifier>>,
    shutdown: CancellationToken,
) -> anyhow::Result<Monitor> {
    let mut all = channels.notifiers();
    all.extend(notifiers);
    let path = settings.data_dir.join(HISTORY_FILE_NAME);
    let retention = settings.metrics_retention;
    let stop = shutdown.clone();
    let history = tokio::task::spawn_blocking({
        let path = path.clone();
        move || History::open(&path, retention, stop)
    })
    .await
    .context("opening the monitoring database")?
    .with_context(|| format!("opening the monitoring database {}", path.display()))?;
    let containers = Arc::new(Mutex::new(Vec::new()));
    if let Some(infra) = infra.clone() {
        tokio::spawn(container_loop(infra, containers.clone(), shutdown.clone()));
    }
    let endpoints = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(llm_probe_loop(
        orchestrator.clone(),
        endpoints.clone(),
        shutdown.clone(),
    ));
    let monitor = Monitor::start(
        MonitorConfig {
            interval: Duration::from_secs(1),
            ring: 3600,
            rules: sutazai_monitor::default_rules(),
            source: Some(app_observations(
                orchestrator,
                infra,
                Cached {
                    containers,
                    endpoints,
                },
            )),
            history: Some(history),
        },
        shutdown.clone(),
    )
    .await
    .context("starting the monitor")?;
    sutazai_monitor::delivery::start(&monitor, all, shutdown);
    Ok(monitor)
}

/// Where alerts go besides `/ws` (`SUTAZAI_ALERT_*`).
pub(crate) fn alert_channels(settings: &Settings) -> anyhow::Result<Channels> {
    let email = match &settings.alert_smtp_url {
        None => None,
        Some(url) => {
            let Some(from) = settings.alert_email_from.clone() else {
                bail!("SUTAZAI_ALERT_SMTP_URL is set but SUTAZAI_ALERT_EMAIL_FROM is not");
            };
            if settings.alert_email_to.is_empty() {
                bail!("SUTAZAI_ALERT_SMTP_URL is set but SUTAZAI_ALERT_EMAIL_TO is not");
            }
            Some(EmailChannel {
                url: url.expose().to_owned(),
                from,
                to: settings.alert_email_to.clone(),
            })
        }
    };
    Ok(Channels {
        email,
        slack_webhook: settings
            .alert_slack_webhook
            .as_ref()
            .map(|s| s.expose().to_owned()),
    })
}

/// Observations that take too long for every sample, refreshed by their own loops.
#[derive(Clone)]
struct Cached {
    /// [`container_loop`]'s.
    containers: Arc<Mutex<Vec<Observation>>>,
    /// [`llm_probe_loop`]'s.
    endpoints: Arc<Mutex<Vec<Observation>>>,
}

fn read(cache: &Mutex<Vec<Observation>>) -> Vec<Observation> {
    cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

fn dependency(subject: &str, up: bool) -> Observation {
    Observation {
        metric: "dependency_up".into(),
        subject: subject.into(),
        value: if up { 1.0 } else { 0.0 },
    }
}

/// The app's observations, taken at every sample.
fn app_observations(
    orchestrator: Orchestrator,
    infra: Option<Infra>,
    cached: Cached,
) -> ObservationSource {
    // Docker is watched once it has been seen: set for good at the first success.
    let docker_seen = Arc::new(std::sync::atomic::AtomicBool::new(false));
    Arc::new(move || {
        let orchestrator = orchestrator.clone();
        let infra = infra.clone();
        let cached = cached.clone();
        let docker_seen = docker_seen.clone();
        Box::pin(async move {
            let mut out = agent_observations(&orchestrator);
            let stats = orchestrator.stats();
            let app = |metric: &str, value: f64| Observation {
                metric: metric.into(),
                subject: "app".into(),
                value,
            };
            out.push(app("tasks_active", stats.active_tasks as f64));
            out.push(app("tasks_queued", stats.queued_tasks as f64));
            out.push(app(
                "tasks_awaiting_approval",
                stats.awaiting_approval as f64,
            ));
            out.push(app("tasks_interrupted", stats.tasks_interrupted as f64));
            let bus = tokio::time::timeout(BUS_STATS_TIMEOUT, orchestrator.bus().stats()).await;
            // Away: no answer in time, or the bus says it cannot reach its server.
            let away = matches!(bus, Err(_) | Ok(Err(sutazai_bus::BusError::Unavailable(_))));
            out.push(dependency("message_bus", !away));
            if let Ok(Ok(bus)) = bus {
                out.push(app(
                    "bus_messages_per_minute",
                    bus.messages_per_minute as f64,
                ));
                out.push(app("bus_dead_letters", bus.dead_letters as f64));
            }
            if let Some(infra) = &infra {
                use std::sync::atomic::Ordering;
                let available = infra.availability().available;
                if available {
                    docker_seen.store(true, Ordering::Relaxed);
                }
                if docker_seen.load(Ordering::Relaxed) {
                    out.push(dependency("docker", available));
                }
            }
            out.extend(read(&cached.containers));
            out.extend(read(&cached.endpoints));
            out
        })
    })
}

/// Each agent's health (1 healthy, 0 degraded), its load, and its figures over the recent
/// window (`AgentInfo::recent`: success and error rates, mean and p95 response time) —
/// what the agent rules watch, so a failure an hour ago does not keep an alert firing and
/// an agent without recent steps reports no rates (its rate alerts resolve).
fn agent_observations(orchestrator: &Orchestrator) -> Vec<Observation> {
    use sutazai_core::AgentState;
    let mut out = Vec::new();
    for a in orchestrator.agents() {
        let mut add = |metric: &str, value: f64| {
            out.push(Observation {
                metric: metric.into(),
                subject: a.id.clone(),
                value,
            });
        };
        match a.status {
            AgentState::Healthy => add("agent_health", 1.0),
            AgentState::Degraded => add("agent_health", 0.0),
            _ => {}
        }
        add("agent_load", a.load);
        add("agent_active_steps", f64::from(a.active_steps));
        let recent = &a.recent;
        if let Some(rate) = recent.success_rate {
            add("agent_success_rate", rate);
        }
        if let Some(rate) = recent.error_rate {
            add("agent_error_rate", rate);
        }
        if let Some(seconds) = recent.average_response_time {
            add("agent_response_time_seconds", seconds);
        }
        if let Some(seconds) = recent.p95_response_time {
            add("agent_response_time_p95_seconds", seconds);
        }
    }
    out
}

/// Every [`LLM_PROBE_INTERVAL`], whether each configured LLM provider answers (lists its
/// models within [`LLM_PROBE_TIMEOUT`]; an answer that is an error — a refused key — is
/// still an answer), probed together, as `dependency_up` with subject `llm:<provider>`.
/// The default provider is watched from the start; another only once it has answered, so
/// a provider configured but never run (the built-in `ollama` of an OpenAI-only setup)
/// raises nothing.
async fn llm_probe_loop(
    orchestrator: Orchestrator,
    cache: Arc<Mutex<Vec<Observation>>>,
    shutdown: CancellationToken,
) {
    let mut seen: std::collections::HashSet<String> =
        std::iter::once(orchestrator.default_model().0.to_owned()).collect();
    loop {
        let probes = orchestrator.providers().iter().map(|(name, provider)| {
            let (name, provider) = (name.clone(), provider.clone());
            async move {
                use sutazai_llm::LlmError;
                let up = match tokio::time::timeout(LLM_PROBE_TIMEOUT, provider.list_models()).await
                {
                    Err(_) => false,
                    Ok(Ok(_)) => true,
                    Ok(Err(e)) => !matches!(
                        e,
                        LlmError::Connect { .. }
                            | LlmError::Transport { .. }
                            | LlmError::Timeout { .. }
                    ),
                };
                (name, up)
            }
        });
        let answers = tokio::select! {
            () = shutdown.cancelled() => return,
            answers = futures::future::join_all(probes) => answers,
        };
        let mut fresh = Vec::new();
        for (name, up) in answers {
            if up {
                seen.insert(name.clone());
            }
            if seen.contains(&name) {
                fresh.push(dependency(&format!("llm:{name}"), up));
            }
        }
        *cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(LLM_PROBE_INTERVAL) => {}
        }
    }
}

/// Every [`CONTAINER_INTERVAL`], one stats sample of each running managed container,
/// kept for the next evaluations (`container_cpu_percent`, `container_memory_bytes`).
async fn container_loop(
    infra: Infra,
    cache: Arc<Mutex<Vec<Observation>>>,
    shutdown: CancellationToken,
) {
    loop {
        let fresh = tokio::select! {
            () = shutdown.cancelled() => return,
            fresh = container_observations(&infra) => fresh,
        };
        *cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(CONTAINER_INTERVAL) => {}
        }
    }
}

async fn container_observations(infra: &Infra) -> Vec<Observation> {
    let mut fresh = Vec::new();
    if !infra.availability().available {
        return fresh;
    }
    let Ok(status) = infra.status().await else {
        return fresh;
    };
    for c in status
        .services
        .iter()
        .flat_map(|s| &s.containers)
        .filter(|c| c.state == "running")
    {
        let sample = match infra.stats(&c.name, false).await {
            Ok(mut stream) => stream.next().await,
            Err(_) => None,
        };
        if let Some(Ok(s)) = sample {
            fresh.push(Observation {
                metric: "container_cpu_percent".into(),
                subject: c.name.clone(),
                value: s.cpu_percent,
            });
            fresh.push(Observation {
                metric: "container_memory_bytes".into(),
                subject: c.name.clone(),
                value: s.memory_bytes as f64,
            });
        }
    }
    fresh
}
