//! The operations behind [`Infra`]: status, deploy-all, lifecycle, logs, stats, pulls, and
//! the healer and auto-scaler loops.
//!
//! Containers are named `{project}-{service}-{replica}` and labelled (see the crate docs);
//! every listing filters on the project label, so nothing else is ever touched.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, DeviceRequest, HealthConfig, HostConfig,
    PortBinding, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, StatsOptionsBuilder,
    StopContainerOptionsBuilder,
};
use chrono::{DateTime, Utc};
use futures::stream::{BoxStream, StreamExt};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::catalogue::{GpuMode, ServiceKind, ServiceSpec};
use crate::error::InfraError;
use crate::model::{
    Action, ContainerInfo, DeployReport, InfraEvent, InfraStatus, LogLine, PullProgress,
    ServiceStatus, StatsSample,
};
use crate::policy::{HealDecision, Load, RestartHistory};
use crate::{Infra, LABEL_MANAGED, LABEL_PROJECT, LABEL_REPLICA, LABEL_SERVICE, ScaleConfig, lock};

/// Longest log line handed out; longer ones are cut.
const MAX_LINE: usize = 64 * 1024;
/// Longest wait for the next progress line of a model pull.
const MODEL_PULL_IDLE: Duration = Duration::from_secs(120);
/// Longest wait for a service to become healthy when its check does not say.
const HEALTH_WAIT_MAX: Duration = Duration::from_secs(300);

/// `{project}_{service}_{replica}`: project and service names cannot contain `_`, so two
/// projects never make the same name.
fn container_name(project: &str, service: &str, replica: u32) -> String {
    format!("{project}_{service}_{replica}")
}

fn volume_name(project: &str, volume: &str) -> String {
    format!("{project}_{volume}")
}

/// Label with a hash of the container's resolved definition: a container made from an
/// older definition is recreated.
const LABEL_CONFIG: &str = "ai.sutazai.config";

fn config_hash(spec: &ServiceSpec) -> String {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(spec).unwrap_or_default().hash(&mut h);
    format!("{:016x}", h.finish())
}

/// A managed container as listed.
#[derive(Debug, Clone)]
struct Managed {
    id: String,
    name: String,
    service: String,
    replica: u32,
    /// The definition hash it was created from.
    config: String,
}

/// The project's containers (running or not).
async fn managed(infra: &Infra, docker: &Docker) -> Result<Vec<Managed>, InfraError> {
    let filters = HashMap::from([(
        "label",
        vec![
            format!("{LABEL_MANAGED}=true"),
            format!("{LABEL_PROJECT}={}", infra.inner.config.project),
        ],
    )]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    let list = docker
        .list_containers(Some(options))
        .await
        .map_err(|e| infra.fail(e, || InfraError::Docker("listing containers".into())))?;
    let mut out = Vec::new();
    for c in list {
        let labels = c.labels.unwrap_or_default();
        let (Some(id), Some(service)) = (c.id, labels.get(LABEL_SERVICE).cloned()) else {
            continue;
        };
        let name = c
            .names
            .and_then(|n| n.into_iter().next())
            .map(|n| n.trim_start_matches('/').to_owned())
            .unwrap_or_else(|| id.clone());
        let replica = labels
            .get(LABEL_REPLICA)
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        let config = labels.get(LABEL_CONFIG).cloned().unwrap_or_default();
        out.push(Managed {
            id,
            name,
            service,
            replica,
            config,
        });
    }
    out.sort_by(|a, b| (&a.service, a.replica).cmp(&(&b.service, b.replica)));
    Ok(out)
}

fn info_from(m: &Managed, inspect: &ContainerInspectResponse) -> ContainerInfo {
    let state = inspect.state.clone().unwrap_or_default();
    let status = state
        .status
        .map(|s| s.to_string())
        .unwrap_or_else(|| "unknown".into());
    let running = state.running.unwrap_or(false);
    let health = state
        .health
        .and_then(|h| h.status)
        .map(|s| s.to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "none".into());
    let uptime_seconds = running
        .then(|| {
            state
                .started_at
                .as_deref()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|t| (Utc::now() - t.with_timezone(&Utc)).num_seconds().max(0) as u64)
        })
        .flatten();
    let mut ports = Vec::new();
    if let Some(bindings) = inspect
        .host_config
        .as_ref()
        .and_then(|h| h.port_bindings.clone())
    {
        for (container_port, hosts) in bindings {
            for b in hosts.unwrap_or_default() {
                ports.push(format!(
                    "{}:{}->{container_port}",
                    b.host_ip.unwrap_or_default(),
                    b.host_port.unwrap_or_default()
                ));
            }
        }
    }
    ports.sort();
    ContainerInfo {
        id: m.id.clone(),
        name: m.name.clone(),
        service: m.service.clone(),
        replica: m.replica,
        image: inspect
            .config
            .as_ref()
            .and_then(|c| c.image.clone())
            .unwrap_or_default(),
        state: status,
        health,
        uptime_seconds,
        restarts: inspect.restart_count.unwrap_or(0).max(0) as u64,
        ports,
        exit_code: (!running).then_some(state.exit_code).flatten(),
    }
}

async fn inspect(infra: &Infra, docker: &Docker, m: &Managed) -> Result<ContainerInfo, InfraError> {
    let i = docker
        .inspect_container(&m.id, None)
        .await
        .map_err(|e| infra.fail(e, || InfraError::UnknownContainer(m.name.clone())))?;
    Ok(info_from(m, &i))
}

fn service_status(
    spec: &ServiceSpec,
    desired: Option<u32>,
    containers: Vec<ContainerInfo>,
) -> ServiceStatus {
    let running: Vec<&ContainerInfo> = containers.iter().filter(|c| c.state == "running").collect();
    let desired_replicas = desired.unwrap_or(spec.replicas);
    let state = if containers.is_empty() {
        "absent"
    } else if running.is_empty() {
        "stopped"
    } else if running.len() as u32 >= desired_replicas {
        "running"
    } else {
        "partial"
    };
    let health = if running.is_empty() {
        "unknown"
    } else if running.iter().any(|c| c.health == "unhealthy") {
        "unhealthy"
    } else if running.iter().any(|c| c.health == "starting") {
        "starting"
    } else {
        "healthy"
    };
    ServiceStatus {
        name: spec.name.clone(),
        kind: spec.kind,
        description: spec.description.clone(),
        image: spec.image.clone(),
        state: state.into(),
        health: health.into(),
        desired_replicas,
        running_replicas: running.len() as u32,
        endpoint: spec.endpoint.clone(),
        containers,
    }
}

/// Status of every catalogue service.
pub(crate) async fn status(infra: &Infra) -> Result<InfraStatus, InfraError> {
    let docker = infra.docker()?;
    let all = managed(infra, &docker).await?;
    let catalogue = infra.catalogue();
    let state = infra.inner.state.get().await;
    let desired = &state.desired;
    let mut services = Vec::new();
    for spec in catalogue.services() {
        let resolved = catalogue
            .resolve(spec, &infra.inner.config.vars)
            .unwrap_or_else(|_| spec.clone());
        let mut containers = Vec::new();
        for m in all.iter().filter(|m| m.service == spec.name) {
            match inspect(infra, &docker, m).await {
                Ok(mut info) => {
                    info.restarts += state.heals.get(&m.name).copied().unwrap_or(0);
                    containers.push(info);
                }
                // Removed between the listing and now.
                Err(InfraError::UnknownContainer(_)) => {}
                Err(e) => return Err(e),
            }
        }
        services.push(service_status(
            &resolved,
            desired.get(&spec.name).copied(),
            containers,
        ));
    }
    Ok(InfraStatus {
        docker: infra.availability(),
        project: infra.inner.config.project.clone(),
        services,
        auto_scaling: infra.inner.config.auto_scale.is_some(),
    })
}

async fn one_status(infra: &Infra, service: &str) -> Result<ServiceStatus, InfraError> {
    status(infra)
        .await?
        .services
        .into_iter()
        .find(|s| s.name == service)
        .ok_or_else(|| InfraError::UnknownService(service.to_owned()))
}

fn step(infra: &Infra, step: &str, service: &str, status: &str, message: impl Into<String>) {
    infra.emit(InfraEvent::Step {
        step: step.into(),
        service: service.into(),
        status: status.into(),
        message: message.into(),
    });
}

/// Pulls `reference` unless the engine has it.
async fn ensure_image(
    infra: &Infra,
    docker: &Docker,
    reference: &str,
    service: &str,
) -> Result<(), InfraError> {
    if docker.inspect_image(reference).await.is_ok() {
        return Ok(());
    }
    step(
        infra,
        "image",
        service,
        "started",
        format!("pulling {reference}"),
    );
    let mut progress = pull(infra, reference);
    while let Some(p) = progress.next().await {
        if let Err(e) = p {
            step(infra, "image", service, "failed", e.to_string());
            return Err(e);
        }
    }
    step(infra, "image", service, "done", reference.to_owned());
    Ok(())
}

pub(crate) fn split_reference(reference: &str) -> (&str, &str) {
    // The tag is after the last ':' that comes after the last '/' (a registry port is not
    // a tag); a digest reference is pulled as is.
    if reference.contains('@') {
        return (reference, "");
    }
    let slash = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[slash..].rfind(':') {
        Some(i) => (&reference[..slash + i], &reference[slash + i + 1..]),
        None => (reference, "latest"),
    }
}

pub(crate) fn pull(
    infra: &Infra,
    reference: &str,
) -> BoxStream<'static, Result<PullProgress, InfraError>> {
    // Nothing to resume later when the engine is not there to begin with.
    if let Err(e) = infra.docker() {
        return futures::stream::once(async move { Err(e) }).boxed();
    }
    let progress = pull_untracked(infra, reference)
        .take_until(infra.inner.shutdown.clone().cancelled_owned())
        .boxed();
    match &infra.inner.pulls {
        Some(pending) => pending.track(reference.to_owned(), progress),
        None => progress,
    }
}

fn pull_untracked(
    infra: &Infra,
    reference: &str,
) -> BoxStream<'static, Result<PullProgress, InfraError>> {
    let docker = match infra.docker() {
        Ok(d) => d,
        Err(e) => return futures::stream::once(async move { Err(e) }).boxed(),
    };
    let infra = infra.clone();
    let reference = reference.to_owned();
    let (image, tag) = split_reference(&reference);
    let mut builder = CreateImageOptionsBuilder::new().from_image(image);
    if !tag.is_empty() {
        builder = builder.tag(tag);
    }
    let options = builder.build();
    docker
        .create_image(Some(options), None, None)
        .map(move |item| match item {
            Ok(info) => {
                if let Some(detail) = info.error_detail {
                    return Err(InfraError::Pull {
                        what: reference.clone(),
                        reason: detail.message.unwrap_or_else(|| "unknown error".into()),
                    });
                }
                let detail = info.progress_detail.unwrap_or_default();
                let progress = PullProgress {
                    reference: reference.clone(),
                    layer: info.id.unwrap_or_default(),
                    status: info.status.unwrap_or_default(),
                    current: detail.current.and_then(|c| u64::try_from(c).ok()),
                    total: detail.total.and_then(|t| u64::try_from(t).ok()),
                };
                infra.emit(InfraEvent::Pull(progress.clone()));
                Ok(progress)
            }
            Err(bollard::errors::Error::DockerStreamError { error }) => Err(InfraError::Pull {
                what: reference.clone(),
                reason: error,
            }),
            Err(e) => Err(
                match infra.fail(e, || InfraError::Pull {
                    what: reference.clone(),
                    reason: "no such image or repository".into(),
                }) {
                    InfraError::Docker(reason) => InfraError::Pull {
                        what: reference.clone(),
                        reason,
                    },
                    other => other,
                },
            ),
        })
        .boxed()
}

async fn ensure_volumes(
    infra: &Infra,
    docker: &Docker,
    spec: &ServiceSpec,
) -> Result<(), InfraError> {
    for v in &spec.volumes {
        let name = volume_name(&infra.inner.config.project, &v.name);
        let request = VolumeCreateRequest {
            name: Some(name.clone()),
            labels: Some(HashMap::from([
                (LABEL_MANAGED.to_owned(), "true".to_owned()),
                (LABEL_PROJECT.to_owned(), infra.inner.config.project.clone()),
                (LABEL_SERVICE.to_owned(), spec.name.clone()),
            ])),
            ..Default::default()
        };
        // Creating an existing volume returns it as it is: one that is not ours (made by
        // hand, or by another project) is refused rather than mounted.
        if let Ok(existing) = docker.inspect_volume(&name).await {
            let labels = &existing.labels;
            let ours = labels.get(LABEL_MANAGED).is_some_and(|v| v == "true")
                && labels.get(LABEL_PROJECT) == Some(&infra.inner.config.project);
            if !ours {
                return Err(InfraError::Conflict(format!(
                    "volume {name} exists but was not created by this app (project {}); remove or rename it",
                    infra.inner.config.project
                )));
            }
            continue;
        }
        docker
            .create_volume(request)
            .await
            .map_err(|e| infra.fail(e, || InfraError::Docker(format!("creating volume {name}"))))?;
    }
    Ok(())
}

fn seconds_ns(s: f64) -> i64 {
    (s * 1e9) as i64
}

async fn has_nvidia(docker: &Docker) -> bool {
    docker
        .info()
        .await
        .ok()
        .and_then(|i| i.runtimes)
        .is_some_and(|r| r.contains_key("nvidia"))
}

async fn create(
    infra: &Infra,
    docker: &Docker,
    spec: &ServiceSpec,
    replica: u32,
    hash: &str,
) -> Result<String, InfraError> {
    let project = &infra.inner.config.project;
    let name = container_name(project, &spec.name, replica);
    let labels = HashMap::from([
        (LABEL_MANAGED.to_owned(), "true".to_owned()),
        (LABEL_PROJECT.to_owned(), project.clone()),
        (LABEL_SERVICE.to_owned(), spec.name.clone()),
        (LABEL_REPLICA.to_owned(), replica.to_string()),
        (LABEL_CONFIG.to_owned(), hash.to_owned()),
    ]);
    let host_network = spec.network_mode.as_deref() == Some("host");
    let mut host = HostConfig {
        network_mode: spec.network_mode.clone(),
        memory: spec.resources.memory_mb.map(|m| (m as i64) << 20),
        nano_cpus: spec.resources.cpus.map(|c| (c * 1e9) as i64),
        binds: Some(
            spec.volumes
                .iter()
                .map(|v| format!("{}:{}", volume_name(project, &v.name), v.path))
                .collect(),
        ),
        ..Default::default()
    };
    let mut exposed = Vec::new();
    // Only one replica can own a host port.
    if !host_network && !spec.ports.is_empty() && replica == 1 {
        let mut map = HashMap::new();
        for p in &spec.ports {
            let key = format!("{}/tcp", p.container);
            exposed.push(key.clone());
            map.insert(
                key,
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(p.host.to_string()),
                }]),
            );
        }
        host.port_bindings = Some(map);
    }
    if spec.gpu == GpuMode::Auto && has_nvidia(docker).await {
        host.device_requests = Some(vec![DeviceRequest {
            driver: Some("nvidia".into()),
            count: Some(-1),
            capabilities: Some(vec![vec!["gpu".into()]]),
            ..Default::default()
        }]);
    }
    let healthcheck = spec.health.as_ref().map(|h| {
        let mut test = vec!["CMD".to_owned()];
        test.extend(h.test.iter().cloned());
        HealthConfig {
            test: Some(test),
            interval: Some(seconds_ns(h.interval_s)),
            timeout: Some(seconds_ns(h.timeout_s)),
            retries: Some(i64::from(h.retries)),
            start_period: Some(seconds_ns(h.start_period_s)),
            ..Default::default()
        }
    });
    let body = ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: (!spec.command.is_empty()).then(|| spec.command.clone()),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(labels),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        healthcheck,
        stop_timeout: Some(infra.inner.config.stop_timeout.as_secs() as i64),
        host_config: Some(host),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::new().name(&name).build();
    let gpu = body
        .host_config
        .as_ref()
        .is_some_and(|h| h.device_requests.is_some());
    let mut created = docker
        .create_container(Some(options.clone()), body.clone())
        .await;
    if gpu && created.is_err() {
        // The NVIDIA runtime is there but no GPU can be given: run on the CPU.
        tracing::warn!(service = %spec.name, error = ?created.as_ref().err(), "could not request the GPU; creating the container without it");
        let mut body = body;
        if let Some(h) = body.host_config.as_mut() {
            h.device_requests = None;
        }
        created = docker.create_container(Some(options), body).await;
    }
    let created = created.map_err(|e| {
        infra.fail(e, || {
            InfraError::Docker(format!("image {} is missing", spec.image))
        })
    })?;
    infra.emit(InfraEvent::Container {
        service: spec.name.clone(),
        container: name,
        action: "created".into(),
    });
    Ok(created.id)
}

/// Maps the outcome of a request on container `m` and reports `action` when it succeeded.
fn settled(
    infra: &Infra,
    m: &Managed,
    outcome: Result<(), bollard::errors::Error>,
    action: &str,
) -> Result<(), InfraError> {
    outcome.map_err(|e| infra.fail(e, || InfraError::UnknownContainer(m.name.clone())))?;
    infra.emit(InfraEvent::Container {
        service: m.service.clone(),
        container: m.name.clone(),
        action: action.into(),
    });
    Ok(())
}

async fn start(infra: &Infra, docker: &Docker, m: &Managed) -> Result<(), InfraError> {
    settled(
        infra,
        m,
        docker.start_container(&m.id, None).await,
        "started",
    )
}

async fn stop(infra: &Infra, docker: &Docker, m: &Managed) -> Result<(), InfraError> {
    let t = i32::try_from(infra.inner.config.stop_timeout.as_secs()).unwrap_or(10);
    let options = StopContainerOptionsBuilder::new().t(t).build();
    settled(
        infra,
        m,
        docker.stop_container(&m.id, Some(options)).await,
        "stopped",
    )
}

async fn remove(infra: &Infra, docker: &Docker, m: &Managed) -> Result<(), InfraError> {
    stop(infra, docker, m).await.or_else(|e| match e {
        InfraError::UnknownContainer(_) => Ok(()),
        other => Err(other),
    })?;
    docker
        .remove_container(
            &m.id,
            Some(RemoveContainerOptionsBuilder::new().force(true).build()),
        )
        .await
        .or_else(|e| match e {
            bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            } => Ok(()),
            e => Err(infra.fail(e, || InfraError::UnknownContainer(m.name.clone()))),
        })?;
    infra.emit(InfraEvent::Container {
        service: m.service.clone(),
        container: m.name.clone(),
        action: "removed".into(),
    });
    Ok(())
}

/// Makes exactly `replicas` containers of `spec` exist and run (1..=replicas), removing
/// higher replica numbers. Returns after starting, not waiting for health.
async fn converge(
    infra: &Infra,
    docker: &Docker,
    spec: &ServiceSpec,
    replicas: u32,
) -> Result<(), InfraError> {
    if spec.build_local && docker.inspect_image(&spec.image).await.is_err() {
        step(
            infra,
            "image",
            &spec.name,
            "started",
            format!("building {} from this app", spec.image),
        );
        crate::build::build_self_image(docker, &spec.image).await?;
        step(infra, "image", &spec.name, "done", spec.image.clone());
    }
    ensure_image(infra, docker, &spec.image, &spec.name).await?;
    ensure_volumes(infra, docker, spec).await?;
    let existing: Vec<Managed> = managed(infra, docker)
        .await?
        .into_iter()
        .filter(|m| m.service == spec.name)
        .collect();
    for m in existing
        .iter()
        .filter(|m| m.replica > replicas || m.replica == 0)
    {
        remove(infra, docker, m).await?;
    }
    let hash = config_hash(spec);
    for replica in 1..=replicas {
        let current = existing.iter().find(|m| m.replica == replica);
        if let Some(m) = current {
            let info = inspect(infra, docker, m).await?;
            // The same definition and not dead: reuse it.
            if m.config == hash && info.state != "dead" {
                match info.state.as_str() {
                    "running" => {}
                    "paused" => docker.unpause_container(&m.id).await.map_err(|e| {
                        infra.fail(e, || InfraError::UnknownContainer(m.name.clone()))
                    })?,
                    _ => start(infra, docker, m).await?,
                }
                continue;
            }
            // Made from another definition (the catalogue changed) or dead: replaced.
            remove(infra, docker, m).await?;
        }
        let id = create(infra, docker, spec, replica, &hash).await?;
        let m = Managed {
            id,
            name: container_name(&infra.inner.config.project, &spec.name, replica),
            service: spec.name.clone(),
            replica,
            config: hash.clone(),
        };
        start(infra, docker, &m).await?;
    }
    Ok(())
}

/// Our own probe of a service's endpoint (besides Docker's health check).
async fn probe(spec: &ServiceSpec) -> Result<(), String> {
    let Some(endpoint) = spec.endpoint.as_deref() else {
        return Ok(());
    };
    match spec.kind {
        ServiceKind::Redis => {
            let addr = endpoint
                .trim_start_matches("redis://")
                .split('/')
                .next()
                .unwrap_or_default()
                .rsplit('@')
                .next()
                .unwrap_or_default()
                .to_owned();
            let exchange = async {
                let mut s = tokio::net::TcpStream::connect(&addr).await?;
                s.write_all(b"PING\r\n").await?;
                let mut buf = [0u8; 64];
                let n = s.read(&mut buf).await?;
                Ok::<_, std::io::Error>(buf[..n].to_vec())
            };
            match tokio::time::timeout(Duration::from_secs(2), exchange).await {
                Ok(Ok(reply)) if reply.starts_with(b"+PONG") => Ok(()),
                Ok(Ok(reply)) => Err(format!(
                    "PING answered {:?}",
                    String::from_utf8_lossy(&reply)
                )),
                Ok(Err(e)) => Err(format!("{addr}: {e}")),
                Err(_) => Err(format!("{addr}: no answer to PING within 2 s")),
            }
        }
        ServiceKind::Ollama => {
            let url = format!("{}/api/tags", endpoint.trim_end_matches('/'));
            match reqwest::Client::new()
                .get(&url)
                .timeout(Duration::from_secs(3))
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(format!("{url} answered {}", r.status())),
                Err(e) => Err(format!("{url}: {e}")),
            }
        }
        ServiceKind::Worker | ServiceKind::Generic => Ok(()),
    }
}

fn health_wait(spec: &ServiceSpec) -> Duration {
    match &spec.health {
        Some(h) => Duration::from_secs_f64(
            h.start_period_s + (h.interval_s + h.timeout_s) * f64::from(h.retries + 1) + 30.0,
        )
        .min(HEALTH_WAIT_MAX),
        None => Duration::from_secs(60),
    }
}

/// Waits until every wanted replica runs, is healthy (or has no check) and the service's
/// own probe answers.
async fn wait_healthy(infra: &Infra, spec: &ServiceSpec, replicas: u32) -> Result<(), InfraError> {
    let limit = health_wait(spec);
    let began = Instant::now();
    let mut last;
    loop {
        let status = one_status(infra, &spec.name).await?;
        let running = status.running_replicas;
        let exited = status
            .containers
            .iter()
            .find(|c| c.state == "exited" || c.state == "dead");
        if let Some(c) = exited {
            last = format!("{} exited with {:?}", c.name, c.exit_code);
        } else if running >= replicas && status.health == "healthy" {
            match probe(spec).await {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
        } else {
            last = format!("{running}/{replicas} running, health {}", status.health);
        }
        if began.elapsed() >= limit {
            return Err(InfraError::Unhealthy {
                service: spec.name.clone(),
                seconds: limit.as_secs(),
                detail: last,
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Pulls an `ollama` service's missing models through its `/api/pull`, with progress.
async fn ensure_models(infra: &Infra, spec: &ServiceSpec) -> Result<(), InfraError> {
    let (Some(endpoint), false) = (spec.endpoint.as_deref(), spec.models.is_empty()) else {
        return Ok(());
    };
    let base = endpoint.trim_end_matches('/');
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| InfraError::Pull {
            what: "model list".into(),
            reason: e.to_string(),
        })?;
    let failed = |what: &str, reason: String| InfraError::Pull {
        what: what.to_owned(),
        reason,
    };
    let tags: serde_json::Value = client
        .get(format!("{base}/api/tags"))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| failed("model list", e.to_string()))?
        .json()
        .await
        .map_err(|e| failed("model list", e.to_string()))?;
    let present: Vec<String> = tags["models"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["name"].as_str().map(str::to_owned))
        .collect();
    for model in &spec.models {
        let has = present
            .iter()
            .any(|p| p == model || p.strip_suffix(":latest") == Some(model.as_str()));
        if has {
            continue;
        }
        step(
            infra,
            "models",
            &spec.name,
            "started",
            format!("pulling {model}"),
        );
        let response = client
            .post(format!("{base}/api/pull"))
            .json(&serde_json::json!({ "model": model, "stream": true }))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| failed(model, e.to_string()))?;
        let mut body = response.bytes_stream();
        let mut buffer = Vec::new();
        let mut succeeded = false;
        loop {
            let chunk = match tokio::time::timeout(MODEL_PULL_IDLE, body.next()).await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(_) => {
                    return Err(failed(
                        model,
                        format!("no progress for {} s", MODEL_PULL_IDLE.as_secs()),
                    ));
                }
            };
            buffer.extend_from_slice(&chunk.map_err(|e| failed(model, e.to_string()))?);
            while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                let Ok(v) = serde_json::from_slice::<serde_json::Value>(&line) else {
                    continue;
                };
                if let Some(error) = v["error"].as_str() {
                    return Err(failed(model, error.to_owned()));
                }
                let status = v["status"].as_str().unwrap_or_default().to_owned();
                succeeded |= status == "success";
                infra.emit(InfraEvent::Pull(PullProgress {
                    reference: model.clone(),
                    layer: v["digest"].as_str().unwrap_or_default().to_owned(),
                    status,
                    current: v["completed"].as_u64(),
                    total: v["total"].as_u64(),
                }));
            }
        }
        if !succeeded {
            return Err(failed(model, "the pull ended without success".into()));
        }
        step(infra, "models", &spec.name, "done", model.clone());
    }
    Ok(())
}

pub(crate) async fn deploy_all(infra: &Infra) -> Result<DeployReport, InfraError> {
    let began = Instant::now();
    let docker = infra.docker()?;
    let catalogue = infra.catalogue();
    let mut done = Vec::new();
    for spec in catalogue.services() {
        let spec = catalogue.resolve(spec, &infra.inner.config.vars)?;
        let replicas = infra
            .inner
            .state
            .get()
            .await
            .desired
            .get(&spec.name)
            .copied()
            .unwrap_or(spec.replicas)
            .max(1);
        step(
            infra,
            "containers",
            &spec.name,
            "started",
            format!("{replicas} replica(s)"),
        );
        let result = async {
            {
                // Only while containers change: health waits and model pulls leave the
                // healer and other operations free.
                let _guard = infra.inner.ops.lock().await;
                converge(infra, &docker, &spec, replicas).await?;
                infra.inner.state.set_desired(&spec.name, replicas).await;
                reset_heal(infra, &spec.name);
            }
            step(infra, "health", &spec.name, "started", "waiting for health");
            wait_healthy(infra, &spec, replicas).await?;
            step(infra, "health", &spec.name, "done", "healthy");
            if spec.kind == ServiceKind::Ollama {
                ensure_models(infra, &spec).await?;
            }
            Ok::<(), InfraError>(())
        };
        let result = tokio::select! {
            r = result => r,
            () = infra.inner.shutdown.cancelled() => Err(InfraError::Invalid(
                "deploy-all stopped: the app is shutting down".into(),
            )),
        };
        if let Err(e) = result {
            step(infra, "containers", &spec.name, "failed", e.to_string());
            infra.emit(InfraEvent::Alert {
                severity: "warning".into(),
                service: spec.name.clone(),
                message: format!("deploy-all stopped at {}: {e}", spec.name),
            });
            return Err(e);
        }
        step(infra, "containers", &spec.name, "done", "up");
        done.push(spec.name.clone());
    }
    Ok(DeployReport {
        services: done,
        seconds: began.elapsed().as_secs_f64(),
        status: status(infra).await?,
    })
}

pub(crate) async fn control(
    infra: &Infra,
    service: &str,
    action: Action,
    instances: Option<u32>,
) -> Result<ServiceStatus, InfraError> {
    control_if(infra, service, action, instances, None).await
}

/// `control`; with `expect`, a scale only happens while the service still has that many
/// replicas asked for (the auto-scaler's compare-and-set).
async fn control_if(
    infra: &Infra,
    service: &str,
    action: Action,
    instances: Option<u32>,
    expect: Option<u32>,
) -> Result<ServiceStatus, InfraError> {
    let spec = infra.spec(service)?;
    if action != Action::Scale && instances.is_some() && action != Action::Start {
        return Err(InfraError::Invalid(format!(
            "instances applies to scale and start, not {action:?}"
        )));
    }
    let docker = infra.docker()?;
    {
        let _guard = infra.inner.ops.lock().await;
        let mine: Vec<Managed> = managed(infra, &docker)
            .await?
            .into_iter()
            .filter(|m| m.service == spec.name)
            .collect();
        let state = &infra.inner.state;
        let desired = state.get().await.desired.get(&spec.name).copied();
        match action {
            Action::Start => {
                let replicas = instances.or(desired).unwrap_or(spec.replicas).max(1);
                check_bounds(replicas)?;
                converge(infra, &docker, &spec, replicas).await?;
                state.set_desired(&spec.name, replicas).await;
            }
            Action::Stop => {
                state.set_desired(&spec.name, 0).await;
                for m in &mine {
                    stop(infra, &docker, m).await?;
                }
            }
            Action::Restart => {
                let replicas = desired.filter(|r| *r > 0).unwrap_or(spec.replicas).max(1);
                state.set_desired(&spec.name, 0).await;
                for m in &mine {
                    stop(infra, &docker, m).await?;
                }
                converge(infra, &docker, &spec, replicas).await?;
                state.set_desired(&spec.name, replicas).await;
            }
            Action::Scale => {
                let replicas = instances.ok_or_else(|| {
                    InfraError::Invalid("scale needs instances (0 or more)".into())
                })?;
                check_bounds(replicas)?;
                if expect.is_some_and(|e| Some(e) != desired) {
                    // Someone changed the service since the auto-scaler looked.
                    return one_status(infra, &spec.name).await;
                }
                state.set_desired(&spec.name, replicas).await;
                if replicas == 0 {
                    for m in &mine {
                        remove(infra, &docker, m).await?;
                    }
                } else {
                    converge(infra, &docker, &spec, replicas).await?;
                }
            }
            Action::Remove => {
                state.set_desired(&spec.name, 0).await;
                for m in &mine {
                    remove(infra, &docker, m).await?;
                }
            }
        }
        // A person acted on the service: the healer starts over with it, and the
        // auto-scaler waits a cooldown before overriding the change.
        reset_heal(infra, &spec.name);
        if expect.is_none() {
            lock(&infra.inner.manual_changes).insert(spec.name.clone(), Instant::now());
        }
    }
    one_status(infra, &spec.name).await
}

fn check_bounds(replicas: u32) -> Result<(), InfraError> {
    let max = crate::catalogue::MAX_REPLICAS;
    if replicas > max {
        return Err(InfraError::Invalid(format!(
            "instances {replicas} is above the limit of {max}"
        )));
    }
    Ok(())
}

pub(crate) fn ensure_agent_worker(infra: &Infra, agent: &str) -> Result<String, InfraError> {
    // `worker-` + the id must fit the 48 characters of a service name.
    if agent.is_empty()
        || agent.len() > 41
        || !agent
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(InfraError::Invalid(format!(
            "agent id {agent:?} cannot name a worker service (a-z, 0-9, '-', at most 41)"
        )));
    }
    let name = format!("worker-{agent}");
    let mut catalogue = lock(&infra.inner.catalogue);
    if catalogue.get(&name).is_some() {
        return Ok(name);
    }
    let template = catalogue
        .get("agent-worker")
        .ok_or_else(|| InfraError::UnknownService("agent-worker".into()))?;
    let mut spec = template.clone();
    spec.name = name.clone();
    spec.description = format!("SutazAI worker for {agent}");
    spec.replicas = 1;
    let at = spec.command.iter().position(|a| a == "--agents");
    match at {
        Some(i) if i + 1 < spec.command.len() => spec.command[i + 1] = agent.to_owned(),
        _ => spec
            .command
            .extend(["--agents".to_owned(), agent.to_owned()]),
    }
    *catalogue = catalogue.with(spec)?;
    Ok(name)
}

/// Resolves a logs/stats target: a managed container name, or every container of a
/// service.
async fn targets(infra: &Infra, docker: &Docker, target: &str) -> Result<Vec<Managed>, InfraError> {
    let all = managed(infra, docker).await?;
    let by_name: Vec<Managed> = all.iter().filter(|m| m.name == target).cloned().collect();
    if !by_name.is_empty() {
        return Ok(by_name);
    }
    if infra.catalogue().get(target).is_some() {
        return Ok(all.into_iter().filter(|m| m.service == target).collect());
    }
    Err(InfraError::UnknownContainer(target.to_owned()))
}

pub(crate) async fn logs(
    infra: &Infra,
    target: &str,
    tail: usize,
    follow: bool,
) -> Result<BoxStream<'static, Result<LogLine, InfraError>>, InfraError> {
    let docker = infra.docker()?;
    let containers = targets(infra, &docker, target).await?;
    let mut streams = Vec::new();
    for m in containers {
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .follow(follow)
            .tail(&tail.to_string())
            .build();
        let infra = infra.clone();
        let name = m.name.clone();
        let tail_name = m.name.clone();
        // Partial lines per stream (stdout, stderr), cut at MAX_LINE.
        let mut pending = [String::new(), String::new()];
        let split = move |pending: &mut String, stream: &str, name: &str, end: bool| {
            let mut lines = Vec::new();
            loop {
                let cut = match pending.find('\n') {
                    Some(i) => i + 1,
                    None if pending.len() >= MAX_LINE => pending.floor_char_boundary(MAX_LINE),
                    None if end && !pending.is_empty() => pending.len(),
                    None => break,
                };
                let line: String = pending.drain(..cut).collect();
                lines.push(Ok(LogLine {
                    container: name.to_owned(),
                    stream: stream.to_owned(),
                    line: line.trim_end_matches(['\n', '\r']).to_owned(),
                }));
            }
            lines
        };
        let body = docker
            .logs(&m.id, Some(options))
            .map(Some)
            .chain(futures::stream::once(async { None }))
            .map(move |item| {
                let Some(item) = item else {
                    // The end: what is left of each stream is a last line.
                    let mut lines = split(&mut pending[0], "stdout", &tail_name, true);
                    lines.extend(split(&mut pending[1], "stderr", &tail_name, true));
                    return Ok(futures::stream::iter(lines));
                };
                let output =
                    item.map_err(|e| infra.fail(e, || InfraError::UnknownContainer(name.clone())))?;
                let (index, stream, bytes) = match output {
                    bollard::container::LogOutput::StdErr { message } => (1, "stderr", message),
                    bollard::container::LogOutput::StdOut { message }
                    | bollard::container::LogOutput::Console { message }
                    | bollard::container::LogOutput::StdIn { message } => (0, "stdout", message),
                };
                pending[index].push_str(&String::from_utf8_lossy(&bytes));
                Ok(futures::stream::iter(split(
                    &mut pending[index],
                    stream,
                    &name,
                    false,
                )))
            })
            .flat_map(|r: Result<_, InfraError>| match r {
                Ok(lines) => lines.boxed(),
                Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
            });
        streams.push(body.boxed());
    }
    // Followed logs end when the app shuts down.
    let shutdown = infra.inner.shutdown.clone();
    Ok(futures::stream::select_all(streams)
        .take_until(shutdown.cancelled_owned())
        .boxed())
}

fn sample(container: &str, s: &bollard::models::ContainerStatsResponse) -> StatsSample {
    let cpu = s.cpu_stats.clone().unwrap_or_default();
    let pre = s.precpu_stats.clone().unwrap_or_default();
    let total = |c: &bollard::models::ContainerCpuStats| {
        c.cpu_usage
            .as_ref()
            .and_then(|u| u.total_usage)
            .unwrap_or(0)
    };
    let cpu_delta = total(&cpu).saturating_sub(total(&pre)) as f64;
    let system_delta = cpu
        .system_cpu_usage
        .unwrap_or(0)
        .saturating_sub(pre.system_cpu_usage.unwrap_or(0)) as f64;
    let cpus = f64::from(cpu.online_cpus.unwrap_or(1).max(1));
    let cpu_percent = if system_delta > 0.0 {
        cpu_delta / system_delta * cpus * 100.0
    } else {
        0.0
    };
    let memory = s.memory_stats.clone().unwrap_or_default();
    let cache = memory
        .stats
        .as_ref()
        .and_then(|m| m.get("inactive_file").or_else(|| m.get("cache")).copied())
        .unwrap_or(0);
    let (mut rx, mut tx) = (0, 0);
    for n in s.networks.clone().unwrap_or_default().values() {
        rx += n.rx_bytes.unwrap_or(0);
        tx += n.tx_bytes.unwrap_or(0);
    }
    let (mut read, mut write) = (0, 0);
    for e in s
        .blkio_stats
        .as_ref()
        .and_then(|b| b.io_service_bytes_recursive.clone())
        .unwrap_or_default()
    {
        match e.op.as_deref().map(str::to_ascii_lowercase).as_deref() {
            Some("read") => read += e.value.unwrap_or(0),
            Some("write") => write += e.value.unwrap_or(0),
            _ => {}
        }
    }
    StatsSample {
        container: container.to_owned(),
        read_at: s
            .read
            .as_ref()
            .and_then(|r| DateTime::parse_from_rfc3339(&r.to_string()).ok())
            .map(|t| t.with_timezone(&Utc)),
        cpu_percent,
        memory_bytes: memory.usage.unwrap_or(0).saturating_sub(cache),
        memory_limit_bytes: memory.limit.unwrap_or(0),
        network_rx_bytes: rx,
        network_tx_bytes: tx,
        block_read_bytes: read,
        block_write_bytes: write,
    }
}

pub(crate) async fn stats(
    infra: &Infra,
    container: &str,
    stream: bool,
) -> Result<BoxStream<'static, Result<StatsSample, InfraError>>, InfraError> {
    let docker = infra.docker()?;
    let all = managed(infra, &docker).await?;
    let m = all
        .into_iter()
        .find(|m| m.name == container || m.id == container)
        .ok_or_else(|| InfraError::UnknownContainer(container.to_owned()))?;
    let infra_stop = infra.inner.shutdown.clone();
    let infra = infra.clone();
    let name = m.name.clone();
    Ok(docker
        .stats(
            &m.id,
            Some(StatsOptionsBuilder::new().stream(stream).build()),
        )
        .map(move |item| {
            item.map(|s| sample(&name, &s))
                .map_err(|e| infra.fail(e, || InfraError::UnknownContainer(name.clone())))
        })
        .take_until(infra_stop.cancelled_owned())
        .boxed())
}

/// A person (re)started the service: the healer's histories of its containers start over.
fn reset_heal(infra: &Infra, service: &str) {
    lock(&infra.inner.heal_histories).retain(|_, entry| entry.service != service);
}

/// What the healer remembers about one container.
#[derive(Debug, Default)]
pub(crate) struct HealEntry {
    /// The service of the container.
    service: String,
    history: RestartHistory,
    /// When the current failure was first seen, and the decision taken.
    pending: Option<(Instant, Duration, u32)>,
}

/// Every few seconds: restarts managed containers of services that should run but have
/// exited or turned unhealthy, after the policy's backoff; gives up and alerts after too
/// many restarts in the window.
pub(crate) async fn heal_loop(infra: Infra) {
    let Some(policy) = infra.inner.config.heal.clone() else {
        return;
    };
    let shutdown = infra.inner.shutdown.clone();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        let Ok(docker) = infra.docker() else {
            continue;
        };
        // Not while a deploy or a lifecycle operation is changing things.
        let Ok(_guard) = infra.inner.ops.try_lock() else {
            continue;
        };
        let Ok(all) = managed(&infra, &docker).await else {
            continue;
        };
        let state = infra.inner.state.get().await;
        let desired = &state.desired;
        // Forget containers that are gone (names are reused by new replicas).
        lock(&infra.inner.heal_histories).retain(|name, _| all.iter().any(|m| &m.name == name));
        for m in all {
            let wanted = desired.get(&m.service).copied().unwrap_or(0);
            if m.replica == 0 || m.replica > wanted {
                continue;
            }
            let Ok(info) = inspect(&infra, &docker, &m).await else {
                continue;
            };
            let failed = match info.state.as_str() {
                "exited" | "dead" => Some(format!("exited with {}", info.exit_code.unwrap_or(-1))),
                "running" if info.health == "unhealthy" => Some("unhealthy".to_owned()),
                _ => None,
            };
            let Some(reason) = failed else {
                if let Some(entry) = lock(&infra.inner.heal_histories).get_mut(&m.name) {
                    entry.pending = None;
                }
                continue;
            };
            let now = Instant::now();
            let action = {
                let mut histories = lock(&infra.inner.heal_histories);
                let entry = histories
                    .entry(m.name.clone())
                    .or_insert_with(|| HealEntry {
                        service: m.service.clone(),
                        ..HealEntry::default()
                    });
                if entry.history.gave_up() {
                    None
                } else {
                    let (seen, after, attempt) = match entry.pending {
                        Some(p) => p,
                        None => match entry.history.on_failure(&policy, now) {
                            HealDecision::Restart { after, attempt } => {
                                entry.pending = Some((now, after, attempt));
                                (now, after, attempt)
                            }
                            HealDecision::GiveUp { restarts } => {
                                drop(histories);
                                tracing::error!(container = %m.name, restarts, "giving up restarting");
                                infra.emit(InfraEvent::Alert {
                                    severity: "critical".into(),
                                    service: m.service.clone(),
                                    message: format!(
                                        "{} failed again ({reason}) after {restarts} restarts within {} s; it is left stopped — look at its logs, then start the service again",
                                        m.name,
                                        policy.window.as_secs()
                                    ),
                                });
                                continue;
                            }
                        },
                    };
                    (now.duration_since(seen) >= after).then(|| {
                        entry.pending = None;
                        attempt
                    })
                }
            };
            let Some(attempt) = action else {
                continue;
            };
            let result = if info.state == "running" {
                docker.restart_container(&m.id, None).await
            } else {
                docker.start_container(&m.id, None).await
            };
            match result {
                Ok(()) => {
                    tracing::warn!(container = %m.name, %reason, attempt, "restarted a failed container");
                    let name = m.name.clone();
                    infra
                        .inner
                        .state
                        .update(move |s| *s.heals.entry(name).or_insert(0) += 1)
                        .await;
                    infra.emit(InfraEvent::Healed {
                        service: m.service.clone(),
                        container: m.name.clone(),
                        reason,
                        attempt,
                    });
                }
                Err(e) => {
                    let e = infra.fail(e, || InfraError::UnknownContainer(m.name.clone()));
                    tracing::warn!(container = %m.name, error = %e, "restart failed");
                }
            }
        }
    }
}

/// Every `every`: sizes each worker service to the load within its bounds.
pub(crate) async fn scale_loop(infra: Infra, config: ScaleConfig) {
    let shutdown = infra.inner.shutdown.clone();
    let mut last_change: HashMap<String, Instant> = HashMap::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(config.every) => {}
        }
        if infra.docker().is_err() {
            continue;
        }
        let Some(load) = (config.load)().await else {
            continue;
        };
        let workers: Vec<ServiceSpec> = infra
            .catalogue()
            .services()
            .iter()
            .filter(|s| s.kind == ServiceKind::Worker)
            .cloned()
            .collect();
        for spec in workers {
            // Only services someone brought up are scaled; a stopped one stays stopped.
            let Some(current) = infra
                .inner
                .state
                .get()
                .await
                .desired
                .get(&spec.name)
                .copied()
            else {
                continue;
            };
            if current == 0 {
                continue;
            }
            let mut policy = config.policy.clone();
            let (min, max) = spec.replica_bounds();
            policy.min = spec.min_replicas.map_or(policy.min, |_| min);
            policy.max = spec.max_replicas.map_or(policy.max, |_| max);
            let now = Instant::now();
            // A person's change counts as a change too: it is not overridden within the
            // cooldown.
            let manual = lock(&infra.inner.manual_changes).get(&spec.name).copied();
            let last = last_change.get(&spec.name).copied().max(manual);
            let Some(decision) = policy.decide(current, load, last, now) else {
                if policy
                    .decide(
                        current,
                        Load {
                            cpu_percent: 0.0,
                            memory_percent: 0.0,
                            ..load
                        },
                        last,
                        now,
                    )
                    .is_some_and(|d| d.to > current)
                {
                    tracing::info!(service = %spec.name, cpu = load.cpu_percent, memory = load.memory_percent, queue = load.queue_depth, "auto-scaling held back: the host is busy");
                }
                continue;
            };
            tracing::info!(service = %spec.name, from = current, to = decision.to, reason = %decision.reason, "auto-scaling");
            match control_if(
                &infra,
                &spec.name,
                Action::Scale,
                Some(decision.to),
                Some(current),
            )
            .await
            {
                Ok(_) => {
                    last_change.insert(spec.name.clone(), now);
                    infra.emit(InfraEvent::Scaled {
                        service: spec.name.clone(),
                        from: current,
                        to: decision.to,
                        reason: decision.reason,
                    });
                }
                Err(e) => tracing::warn!(service = %spec.name, error = %e, "auto-scaling failed"),
            }
        }
    }
}
