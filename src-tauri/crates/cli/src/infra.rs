//! The Docker services: starting the infrastructure layer for `serve` (with the healer and,
//! under `ENABLE_AUTO_SCALING`, the auto-scaler fed by the bus's queue depth and the host's
//! CPU and memory), and `sutazai infra status|deploy-all|start|stop|restart|scale|remove|
//! logs|pull`, which talk to Docker directly (no server needed).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use sutazai_bus::Bus;
use sutazai_infra::{
    Action, HealPolicy, Infra, InfraConfig, InfraEvent, Load, LoadSource, ScaleConfig, ScalePolicy,
};
use tokio_util::sync::CancellationToken;

use crate::cli::InfraCmd;
use crate::output::{Table, emit_line};
use crate::settings::Settings;

/// How often the auto-scaler decides.
const SCALE_EVERY: Duration = Duration::from_secs(15);

/// The values catalogue files may refer to (`${SUTAZAI_BUS_KEY}`, …).
async fn vars(settings: &Settings) -> anyhow::Result<BTreeMap<String, String>> {
    let key = crate::node::master_key(settings).await?;
    Ok([
        ("SUTAZAI_BUS_KEY", key.to_base64()),
        ("SUTAZAI_BUS_NAMESPACE", settings.bus_namespace.clone()),
        ("SUTAZAI_MODEL", settings.model.clone()),
        ("OLLAMA_API_URL", settings.ollama_api_url.clone()),
        ("SUTAZAI_WORKER_TAG", sutazai_infra::self_image_tag()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect())
}

/// The infrastructure layer of a long-running process: healer on; auto-scaler when
/// `ENABLE_AUTO_SCALING` is set and `bus` is given.
pub async fn start(
    settings: &Settings,
    bus: Option<Bus>,
    shutdown: CancellationToken,
) -> anyhow::Result<Infra> {
    let auto_scale = match (settings.enable_auto_scaling, bus) {
        (true, Some(bus)) => Some(ScaleConfig {
            policy: ScalePolicy::default(),
            every: SCALE_EVERY,
            load: load_source(bus),
        }),
        _ => None,
    };
    let config = InfraConfig {
        docker_host: settings.docker_host.clone(),
        project: settings.infra_project.clone(),
        catalogue_dir: settings.services_dir.clone(),
        vars: vars(settings).await?,
        heal: Some(HealPolicy::default()),
        auto_scale,
        state_dir: Some(settings.data_dir.join("infra")),
        ..InfraConfig::default()
    };
    Infra::new(config, shutdown)
        .await
        .context("loading the service catalogue")
}

/// Queue depth from the bus (messages waiting in every inbox), CPU and memory from one
/// long-lived `sysinfo::System` refreshed off the reactor.
fn load_source(bus: Bus) -> LoadSource {
    let system = Arc::new(Mutex::new(sysinfo::System::new()));
    Arc::new(move || {
        let bus = bus.clone();
        let system = system.clone();
        Box::pin(async move {
            let stats = bus.stats().await.ok()?;
            let queue_depth = stats.queues.iter().map(|q| q.waiting).sum();
            let (cpu_percent, memory_percent) = tokio::task::spawn_blocking(move || {
                let mut s = system
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                s.refresh_cpu_usage();
                s.refresh_memory();
                let total = s.total_memory().max(1) as f64;
                (
                    f64::from(s.global_cpu_usage()),
                    s.used_memory() as f64 / total * 100.0,
                )
            })
            .await
            .ok()?;
            Some(Load {
                queue_depth,
                cpu_percent,
                memory_percent,
            })
        })
    })
}

/// Runs an `infra` subcommand.
pub async fn run(cmd: &InfraCmd, settings: &Settings, json: bool) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let config = InfraConfig {
        docker_host: settings.docker_host.clone(),
        project: settings.infra_project.clone(),
        catalogue_dir: settings.services_dir.clone(),
        vars: vars(settings).await?,
        // A one-shot command: the healer belongs to the long-running server.
        heal: None,
        // A pull cut short here (Ctrl-C) is resumed by the next run or `serve`.
        state_dir: Some(settings.data_dir.join("infra")),
        ..InfraConfig::default()
    };
    let infra = Infra::new(config, shutdown.clone())
        .await
        .context("loading the service catalogue")?;
    let result = run_with(cmd, &infra, json).await;
    shutdown.cancel();
    result
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    emit_line(&serde_json::to_string_pretty(value)?)?;
    Ok(())
}

fn print_status(status: &sutazai_infra::InfraStatus) -> anyhow::Result<()> {
    let mut table = Table::new(&[
        "SERVICE", "STATE", "HEALTH", "REPLICAS", "IMAGE", "ENDPOINT",
    ]);
    for s in &status.services {
        table.row(vec![
            s.name.clone(),
            s.state.clone(),
            s.health.clone(),
            format!("{}/{}", s.running_replicas, s.desired_replicas),
            s.image.clone(),
            s.endpoint.clone().unwrap_or_default(),
        ]);
    }
    let mut text = format!(
        "Docker {} at {} (project {})\n",
        status.docker.version.as_deref().unwrap_or("?"),
        status.docker.docker_host,
        status.project
    );
    text.push_str(&table.render());
    let mut containers = Table::new(&[
        "CONTAINER",
        "STATE",
        "HEALTH",
        "UPTIME",
        "RESTARTS",
        "PORTS",
    ]);
    let mut any = false;
    for c in status.services.iter().flat_map(|s| &s.containers) {
        any = true;
        containers.row(vec![
            c.name.clone(),
            c.state.clone(),
            c.health.clone(),
            c.uptime_seconds
                .map(|s| crate::output::duration(s as f64))
                .unwrap_or_default(),
            c.restarts.to_string(),
            c.ports.join(", "),
        ]);
    }
    if any {
        text.push('\n');
        text.push_str(&containers.render());
    }
    crate::output::emit(&text)?;
    Ok(())
}

fn describe(event: &InfraEvent) -> Option<String> {
    Some(match event {
        InfraEvent::Step {
            step,
            service,
            status,
            message,
        } => format!("{service}: {step} {status} {message}"),
        InfraEvent::Pull(p) if p.total.is_some() => format!(
            "{} {} {}: {}/{} bytes",
            p.reference,
            p.layer,
            p.status,
            p.current.unwrap_or(0),
            p.total.unwrap_or(0)
        ),
        InfraEvent::Pull(p) => format!("{} {} {}", p.reference, p.layer, p.status),
        InfraEvent::Container {
            container, action, ..
        } => format!("{container} {action}"),
        InfraEvent::Alert {
            severity, message, ..
        } => format!("ALERT ({severity}): {message}"),
        _ => return None,
    })
}

async fn run_with(cmd: &InfraCmd, infra: &Infra, json: bool) -> anyhow::Result<()> {
    let unavailable = |infra: &Infra| {
        let a = infra.availability();
        anyhow::anyhow!(
            "Docker is unavailable: {}. {}",
            a.reason.unwrap_or_default(),
            a.hint.unwrap_or_default()
        )
    };
    if !infra.availability().available {
        return Err(unavailable(infra));
    }
    match cmd {
        InfraCmd::Status => {
            let status = infra.status().await?;
            if json {
                print_json(&status)
            } else {
                print_status(&status)
            }
        }
        InfraCmd::DeployAll => {
            let mut events = infra.subscribe();
            let print = |event: &InfraEvent| {
                if !json && let Some(line) = describe(event) {
                    let _ = emit_line(&line);
                }
            };
            let deploy = infra.deploy_all();
            tokio::pin!(deploy);
            let report = loop {
                tokio::select! {
                    biased;
                    event = events.recv() => {
                        if let Ok(event) = event {
                            print(&event);
                        }
                    }
                    report = &mut deploy => break report,
                }
            };
            while let Ok(event) = events.try_recv() {
                print(&event);
            }
            let report = report?;
            if json {
                print_json(&report)
            } else {
                emit_line(&format!(
                    "deployed {} in {:.1} s",
                    report.services.join(", "),
                    report.seconds
                ))?;
                print_status(&report.status)
            }
        }
        InfraCmd::Start { service, instances } => {
            control(infra, service, Action::Start, *instances, json).await
        }
        InfraCmd::Stop { service } => control(infra, service, Action::Stop, None, json).await,
        InfraCmd::Restart { service } => control(infra, service, Action::Restart, None, json).await,
        InfraCmd::Remove { service } => control(infra, service, Action::Remove, None, json).await,
        InfraCmd::Scale { service, instances } => {
            control(infra, service, Action::Scale, Some(*instances), json).await
        }
        InfraCmd::Logs {
            target,
            tail,
            follow,
        } => {
            let mut lines = infra.logs(target, *tail, *follow).await?;
            while let Some(line) = lines.next().await {
                let line = line?;
                if json {
                    emit_line(&serde_json::to_string(&line)?)?;
                } else {
                    emit_line(&format!("{} | {}", line.container, line.line))?;
                }
            }
            Ok(())
        }
        InfraCmd::Pull { image } => {
            let mut progress = infra.pull(image);
            while let Some(p) = progress.next().await {
                let p = p?;
                if json {
                    emit_line(&serde_json::to_string(&p)?)?;
                } else if let Some(line) = describe(&InfraEvent::Pull(p)) {
                    emit_line(&line)?;
                }
            }
            Ok(())
        }
    }
}

async fn control(
    infra: &Infra,
    service: &str,
    action: Action,
    instances: Option<u32>,
    json: bool,
) -> anyhow::Result<()> {
    if service.is_empty() {
        bail!("name a service (see `sutazai infra status`)");
    }
    let status = infra.control(service, action, instances).await?;
    if json {
        return print_json(&status);
    }
    emit_line(&format!(
        "{}: {} ({}/{} running, health {})",
        status.name, status.state, status.running_replicas, status.desired_replicas, status.health
    ))?;
    Ok(())
}
