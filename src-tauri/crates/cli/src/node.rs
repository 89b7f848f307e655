//! The message bus a process joins, built from settings, and `sutazai worker`: a process
//! that joins a Redis bus and executes steps for the agents it is given.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use chrono::Utc;
use sutazai_bus::{Bus, BusConfig, Codec, MasterKey, NodeInfo, RateLimit};
use sutazai_orchestrator::executor::{Executor, ServedAgent};
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;

/// Name of the bus key file inside the data directory.
pub const BUS_KEY_FILE_NAME: &str = "bus.key";
/// How long a stopping worker lets running steps finish.
const WORKER_GRACE: Duration = Duration::from_secs(30);

/// The bus settings.
pub fn bus_config(settings: &Settings) -> BusConfig {
    BusConfig {
        max_attempts: settings.bus_max_attempts,
        visibility_timeout: settings.bus_visibility_timeout,
        retention: settings.message_retention,
        rate_limit: (settings.bus_rate_limit > 0.0).then_some(RateLimit {
            per_second: settings.bus_rate_limit,
            burst: settings.bus_rate_burst,
        }),
        namespace: settings.bus_namespace.clone(),
        ..BusConfig::default()
    }
}

/// `REDIS_URL` without its password, for messages.
pub fn redacted_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => crate::doctor::redact(&parsed),
        Err(_) => "<unparsable REDIS_URL>".to_owned(),
    }
}

/// The bus master key: `SUTAZAI_BUS_KEY`, else `<data dir>/bus.key` (created, mode 0600).
pub async fn master_key(settings: &Settings) -> anyhow::Result<MasterKey> {
    if let Some(key) = &settings.bus_key {
        // The value is a secret: the error names the variable, never the value.
        return MasterKey::from_base64(key.expose()).map_err(|_| {
            anyhow::anyhow!(
                "SUTAZAI_BUS_KEY must be the standard base64 encoding of exactly 32 bytes \
                 (e.g. `openssl rand -base64 32`)"
            )
        });
    }
    let path = settings.data_dir.join(BUS_KEY_FILE_NAME);
    let shown = path.display().to_string();
    tokio::task::spawn_blocking(move || MasterKey::load_or_create(&path))
        .await
        .context("reading the bus key")?
        .with_context(|| format!("bus key file {shown}"))
}

/// Joins the bus the settings name: Redis Streams at `REDIS_URL`, else in-process.
pub async fn connect_bus(settings: &Settings) -> anyhow::Result<Bus> {
    let config = bus_config(settings);
    match &settings.redis_url {
        None => Ok(Bus::in_process(config)),
        Some(url) => {
            let key = master_key(settings).await?;
            let codec = Codec::new(&key, settings.bus_encrypt, settings.bus_compress_above);
            let bus = Bus::redis(url, codec, config).await.with_context(|| {
                format!(
                    "joining the message bus on Redis at {} (REDIS_URL)",
                    redacted_url(url)
                )
            })?;
            tracing::info!(
                redis = %redacted_url(url),
                node = bus.node_id(),
                encrypt = settings.bus_encrypt,
                "message bus on Redis Streams"
            );
            Ok(bus)
        }
    }
}

/// Announces this process on the bus every few seconds until the bus shuts down.
pub fn announce(bus: &Bus, role: &'static str, executor: Option<Executor>) {
    let node_id = bus.node_id().to_owned();
    let started_at = Utc::now();
    let host = sutazai_bus::hostname();
    bus.start_heartbeat(move || NodeInfo {
        node_id: node_id.clone(),
        role: role.to_owned(),
        agents: executor.as_ref().map(Executor::agents).unwrap_or_default(),
        host: host.clone(),
        pid: std::process::id(),
        started_at,
        last_seen: Utc::now(),
        handled: executor.as_ref().map_or(0, Executor::handled),
        alive: true,
    });
}

/// `sutazai worker --agents <ids|all>`: executes steps for those agents from the Redis bus
/// until `shutdown` resolves, then lets running steps finish (up to 30 s; steps still
/// running then are handed back to the bus unanswered, for another worker).
pub async fn run_worker(
    settings: Settings,
    agents: &str,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let Some(url) = settings.redis_url.clone() else {
        bail!(
            "sutazai worker needs REDIS_URL: workers share agent work with `sutazai serve` \
             through Redis (e.g. REDIS_URL=redis://127.0.0.1:6379 on both)"
        );
    };
    let agents_dir = settings.agents_dir.clone();
    let registry = tokio::task::spawn_blocking(move || load_quietly(&agents_dir))
        .await
        .context("loading agents")?;
    let served = select_agents(&registry, agents)?;
    let providers = crate::serve::build_providers(&settings)?;
    let bus = connect_bus(&settings).await?;
    let stop = CancellationToken::new();
    let executor = Executor::start(bus.clone(), served.clone(), providers, stop.clone());
    announce(&bus, "worker", Some(executor.clone()));
    let line = format!(
        "SutazAI worker {} serving {} agent(s) on {}",
        bus.node_id(),
        served.len(),
        redacted_url(&url)
    );
    let _ = crate::output::emit_line(&line);
    shutdown.await;
    tracing::info!("worker stopping: no new steps; letting running ones finish");
    stop.cancel();
    if !executor.stopped(WORKER_GRACE).await {
        tracing::warn!(
            running = executor.running(),
            "steps still running after 30 s were stopped and handed back to the bus for another worker"
        );
    }
    bus.shutdown();
    Ok(())
}

fn load_quietly(agents_dir: &Path) -> sutazai_agents::Registry {
    let (registry, errors) = sutazai_agents::Registry::load(Some(agents_dir));
    for error in &errors {
        tracing::warn!(file = %error.path.display(), "skipping agent file: {error}");
    }
    registry
}

/// `all` or comma-separated agent ids → the agents to serve.
fn select_agents(
    registry: &sutazai_agents::Registry,
    agents: &str,
) -> anyhow::Result<Vec<ServedAgent>> {
    let serve = |spec: &sutazai_core::AgentSpec| ServedAgent {
        id: spec.id.clone(),
        max_concurrency: spec.max_concurrency,
    };
    let wanted = agents.trim();
    if wanted == "all" {
        return Ok(registry.iter().map(serve).collect());
    }
    let mut served = Vec::new();
    for id in wanted.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match registry.get(id) {
            Some(spec) => served.push(serve(spec)),
            None => bail!("--agents: `{id}` is not a registered agent (see `sutazai agents list`)"),
        }
    }
    if served.is_empty() {
        bail!("--agents needs `all` or at least one agent id");
    }
    Ok(served)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden() {
        let shown = redacted_url("redis://user:secret@host:6379/0");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("host:6379"), "{shown}");
        assert_eq!(redacted_url("redis://host:6379"), "redis://host:6379");
    }

    #[test]
    fn agent_selection() {
        let registry = sutazai_agents::Registry::builtin();
        assert_eq!(
            select_agents(&registry, "all").unwrap().len(),
            registry.len()
        );
        let two = select_agents(&registry, "senior-ai-engineer, testing-qa-validator").unwrap();
        assert_eq!(two.len(), 2);
        let error = select_agents(&registry, "nope").unwrap_err().to_string();
        assert!(error.contains("`nope`"), "{error}");
        assert!(select_agents(&registry, " , ").is_err());
    }
}
