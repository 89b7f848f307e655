//! The infrastructure layer against a real Docker engine (`.ci/run` starts one): deploy-all
//! gated on health, scaling that never touches unlabelled containers, healing with backoff
//! and giving up with an alert, logs, stats, pulls with per-layer progress from a local
//! registry, and a missing engine reported as unavailable.
//!
//! Images are built locally (see `common`); services use the host network (the engine runs
//! with `--bridge=none`). Each test has its own project label, so tests run in parallel
//! without seeing each other's containers.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use sutazai_infra::{
    Action, HealPolicy, Infra, InfraConfig, InfraError, InfraEvent, LABEL_PROJECT,
};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// A project of its own, its catalogue directory, and cleanup on drop.
struct Project {
    name: String,
    dir: tempfile::TempDir,
}

impl Project {
    fn new(test: &str) -> Project {
        common::require_docker();
        let name = format!("sztest-{test}-{}", std::process::id());
        common::remove_labelled(&format!("{LABEL_PROJECT}={name}"));
        let dir = tempfile::tempdir().unwrap();
        // Only the services a test writes: the built-in ones are switched off.
        for builtin in ["redis", "ollama", "agent-worker"] {
            std::fs::write(
                dir.path().join(format!("{builtin}.toml")),
                format!("name = \"{builtin}\"\nenabled = false\n"),
            )
            .unwrap();
        }
        Project { name, dir }
    }

    fn service(&self, file: &str, toml: &str) {
        std::fs::write(self.dir.path().join(file), toml).unwrap();
    }

    async fn infra(&self, heal: Option<HealPolicy>) -> Infra {
        let config = InfraConfig {
            project: self.name.clone(),
            catalogue_dir: Some(self.dir.path().to_path_buf()),
            vars: BTreeMap::new(),
            heal,
            stop_timeout: Duration::from_secs(2),
            ..InfraConfig::default()
        };
        let infra = Infra::new(config, CancellationToken::new()).await.unwrap();
        assert!(infra.availability().available, "{:?}", infra.availability());
        infra
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        common::remove_labelled(&format!("{LABEL_PROJECT}={}", self.name));
    }
}

fn redis_service(port: u16) -> String {
    format!(
        r#"name = "redis"
kind = "redis"
image = "{image}"
network_mode = "host"
command = ["/usr/bin/redis-server", "--port", "{port}", "--bind", "127.0.0.1", "--appendonly", "yes", "--dir", "/data"]
endpoint = "redis://127.0.0.1:{port}"
volumes = [{{ name = "redis-data", path = "/data" }}]
health = {{ test = ["/usr/bin/redis-cli", "-p", "{port}", "ping"], interval_s = 0.5, timeout_s = 2, retries = 20 }}
"#,
        image = common::redis_image()
    )
}

fn busybox_service(name: &str, network: &str, script: &str, extra: &str) -> String {
    format!(
        r#"name = "{name}"
image = "{image}"
network_mode = "{network}"
command = ["/bin/sh", "-c", "{script}"]
{extra}
"#,
        image = common::busybox_image()
    )
}

fn docker_ps(filter: &str) -> Vec<String> {
    common::container_names(filter, true)
}

async fn next_event(
    events: &mut broadcast::Receiver<InfraEvent>,
    within: Duration,
    mut wanted: impl FnMut(&InfraEvent) -> bool,
) -> Option<InfraEvent> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Ok(e)) if wanted(&e) => return Some(e),
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
            _ => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_all_brings_services_up_in_order_gated_on_health() {
    let project = Project::new("deploy");
    let port = common::free_port();
    project.service("redis.toml", &redis_service(port));
    // Depends on Redis: it checks at start that Redis answers, and exits otherwise.
    project.service(
        "app.toml",
        &busybox_service(
            "app",
            "host",
            &format!(
                "echo PING | nc -w 1 127.0.0.1 {port} | grep -q PONG || exit 3; echo up; while true; do sleep 1; done"
            ),
            "depends_on = [\"redis\"]",
        ),
    );
    // Limits per service.
    std::fs::write(
        project.dir.path().join("redis.toml"),
        format!(
            "{}resources = {{ cpus = 0.5, memory_mb = 128 }}\n",
            redis_service(port)
        ),
    )
    .unwrap();
    let infra = project.infra(None).await;
    let mut events = infra.subscribe();
    let report = infra.deploy_all().await.unwrap();
    assert_eq!(report.services, ["redis", "app"]);
    let mut order = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let InfraEvent::Step {
            step,
            service,
            status,
            ..
        } = e
            && status == "done"
        {
            order.push(format!("{service}:{step}"));
        }
    }
    assert_eq!(
        order,
        [
            "redis:health",
            "redis:containers",
            "app:health",
            "app:containers"
        ]
    );
    let status = infra.status().await.unwrap();
    let redis = &status.services[0];
    assert_eq!(
        (redis.state.as_str(), redis.health.as_str()),
        ("running", "healthy")
    );
    assert_eq!(
        redis.containers[0].name,
        format!("{}_redis_1", project.name)
    );
    let limits = Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}",
            &redis.containers[0].name,
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&limits.stdout).trim(),
        format!("{} 500000000", 128 << 20)
    );
    assert_eq!(status.services[1].state, "running");
    println!(
        "deploy-all: {:?} in {:.1} s; redis {} {}, app {}",
        report.services, report.seconds, redis.state, redis.health, status.services[1].state
    );
    // Logs of the app show it found Redis.
    let mut logs = infra.logs("app", 10, false).await.unwrap();
    let mut lines = Vec::new();
    while let Some(line) = logs.next().await {
        lines.push(line.unwrap().line);
    }
    assert_eq!(lines, ["up"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_touches_only_labelled_containers() {
    let project = Project::new("scale");
    project.service(
        "w.toml",
        &busybox_service("w", "none", "while true; do sleep 1; done", ""),
    );
    let infra = project.infra(None).await;
    // A container started by hand, with a name in our pattern but no labels.
    let stranger = format!("{}_w_9", project.name);
    let ran = Command::new("docker")
        .args(["run", "-d", "--network", "none", "--name", &stranger])
        .arg(common::busybox_image())
        .args(["sleep", "600"])
        .status()
        .unwrap();
    assert!(ran.success());

    let s = infra.control("w", Action::Scale, Some(3)).await.unwrap();
    assert_eq!(s.running_replicas, 3);
    let ours = docker_ps(&format!("label={LABEL_PROJECT}={}", project.name));
    assert_eq!(
        ours,
        (1..=3)
            .map(|i| format!("{}_w_{i}", project.name))
            .collect::<Vec<_>>()
    );
    let s = infra.control("w", Action::Scale, Some(1)).await.unwrap();
    assert_eq!((s.running_replicas, s.containers.len()), (1, 1));
    assert_eq!(
        docker_ps(&format!("label={LABEL_PROJECT}={}", project.name)),
        [format!("{}_w_1", project.name)]
    );
    // The stranger is still there and running, untouched.
    assert_eq!(
        docker_ps(&format!("name=^{stranger}$")),
        [stranger.as_str()]
    );
    let state = Command::new("docker")
        .args(["inspect", "-f", "{{.State.Running}}", &stranger])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&state.stdout).trim(), "true");
    // Stats of the one left.
    let mut stats = infra
        .stats(&format!("{}_w_1", project.name), false)
        .await
        .unwrap();
    let sample = stats.next().await.unwrap().unwrap();
    assert!(sample.memory_bytes > 0, "{sample:?}");
    println!("scale 3 then 1: {ours:?} then one; stats {sample:?}");
    // A changed definition replaces the container made from the old one.
    let before = infra.status().await.unwrap().services[0].containers[0]
        .id
        .clone();
    project.service(
        "w.toml",
        &busybox_service("w", "none", "while true; do sleep 2; done", ""),
    );
    let changed = project.infra(None).await;
    let s = changed.control("w", Action::Start, None).await.unwrap();
    assert_eq!(s.running_replicas, 1);
    assert_ne!(
        s.containers[0].id, before,
        "recreated from the new definition"
    );
    // Bad requests.
    assert!(matches!(
        infra.control("w", Action::Scale, None).await,
        Err(InfraError::Invalid(_))
    ));
    assert!(matches!(
        infra.control("nope", Action::Start, None).await,
        Err(InfraError::UnknownService(_))
    ));
    let _ = Command::new("docker")
        .args(["rm", "-f", &stranger])
        .status();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_containers_are_healed_and_crash_loops_raise_an_alert() {
    let project = Project::new("heal");
    project.service(
        "steady.toml",
        &busybox_service("steady", "none", "while true; do sleep 1; done", ""),
    );
    project.service(
        "crashy.toml",
        &busybox_service("crashy", "none", "sleep 0.3; exit 7", ""),
    );
    let policy = HealPolicy {
        base: Duration::from_millis(200),
        max: Duration::from_secs(1),
        max_restarts: 3,
        window: Duration::from_secs(120),
    };
    let infra = project.infra(Some(policy)).await;
    let mut events = infra.subscribe();
    infra.control("steady", Action::Start, None).await.unwrap();
    let name = format!("{}_steady_1", project.name);
    let killed = Instant::now();
    assert!(
        Command::new("docker")
            .args(["kill", &name])
            .status()
            .unwrap()
            .success()
    );
    let healed = next_event(
        &mut events,
        Duration::from_secs(20),
        |e| matches!(e, InfraEvent::Healed { container, .. } if *container == name),
    )
    .await
    .expect("a Healed event for the killed container");
    // Running again by the healer's hand alone, and counted.
    let mut running = None;
    while killed.elapsed() < Duration::from_secs(20) {
        let status = infra.status().await.unwrap();
        let steady = status.services.iter().find(|s| s.name == "steady").unwrap();
        if steady.state == "running" {
            running = Some(steady.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = killed.elapsed();
    let steady = running.expect("running again after the kill");
    assert_eq!(steady.containers[0].restarts, 1, "{steady:?}");
    println!("docker kill → running again in {took:?}: {healed:?}");

    infra.control("crashy", Action::Start, None).await.unwrap();
    let alert = next_event(
        &mut events,
        Duration::from_secs(60),
        |e| matches!(e, InfraEvent::Alert { service, .. } if service == "crashy"),
    )
    .await
    .expect("an alert after the crash loop");
    println!("crash loop: {alert:?}");
    // Given up: it stays exited.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = infra.status().await.unwrap();
    let crashy = s.services.iter().find(|s| s.name == "crashy").unwrap();
    assert_eq!(crashy.containers[0].state, "exited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_report_per_layer_progress_from_a_registry() {
    let project = Project::new("pull");
    let registry = common::TestRegistry::start();
    // A layer nobody has locally: /bin/true with bytes of its own appended (ELF ignores
    // them), so the pull must download it.
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("true");
    let mut bytes = std::fs::read("/bin/true").unwrap();
    bytes.extend_from_slice(format!("{:?}{}", Instant::now(), std::process::id()).as_bytes());
    std::fs::write(&binary, bytes).unwrap();
    let image = common::binary_image("pulltest", &binary);
    let reference = common::push(&image, &registry, "sutazai/pulltest");
    common::remove_image(&reference);
    common::remove_image(&image);
    let infra = project.infra(None).await;
    let mut progress = infra.pull(&reference);
    let mut seen = Vec::new();
    while let Some(p) = progress.next().await {
        seen.push(p.unwrap());
    }
    let layered: Vec<_> = seen.iter().filter(|p| !p.layer.is_empty()).collect();
    assert!(!layered.is_empty(), "{seen:#?}");
    assert!(
        seen.iter()
            .any(|p| p.total.is_some() && p.current.is_some()),
        "byte counts: {seen:#?}"
    );
    assert!(
        seen.iter().any(|p| p.status.contains("complete")),
        "{seen:#?}"
    );
    println!(
        "pull {reference}: {} events, e.g. {:?}",
        seen.len(),
        layered.iter().find(|p| p.total.is_some())
    );
    let missing = registry.reference("sutazai/absent", "1");
    let mut failing = infra.pull(&missing);
    let mut error = None;
    while let Some(p) = failing.next().await {
        if let Err(e) = p {
            error = Some(e);
        }
    }
    assert!(matches!(error, Some(InfraError::Pull { .. })), "{error:?}");
    common::remove_image(&reference);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_engine_is_unavailable_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let config = InfraConfig {
        docker_host: Some(format!("unix://{}/docker.sock", dir.path().display())),
        project: "sztest-missing".into(),
        heal: None,
        ..InfraConfig::default()
    };
    let infra = Infra::new(config, CancellationToken::new()).await.unwrap();
    let a = infra.availability();
    assert!(!a.available);
    assert!(a.hint.as_deref().is_some_and(|h| !h.is_empty()), "{a:?}");
    let error = infra.status().await.unwrap_err();
    assert_eq!(error.code(), "docker_unavailable");
    println!("without an engine: {error}");
    assert_eq!(
        infra
            .control("redis", Action::Start, None)
            .await
            .unwrap_err()
            .code(),
        "docker_unavailable"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_stats_stream_while_a_container_runs() {
    let project = Project::new("stream");
    project.service(
        "ticker.toml",
        &busybox_service(
            "ticker",
            "none",
            "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done",
            "",
        ),
    );
    let infra = project.infra(None).await;
    infra.control("ticker", Action::Start, None).await.unwrap();
    // Only new lines (tail 0), as they come.
    let mut follow = infra.logs("ticker", 0, true).await.unwrap();
    let mut ticks = Vec::new();
    while ticks.len() < 5 {
        let line = tokio::time::timeout(Duration::from_secs(5), follow.next())
            .await
            .expect("a new log line within 5 s")
            .expect("the stream goes on")
            .unwrap();
        assert_eq!(line.stream, "stdout");
        let n: u64 = line.line.trim_start_matches("tick ").parse().unwrap();
        ticks.push(n);
    }
    assert!(ticks.windows(2).all(|w| w[1] == w[0] + 1), "{ticks:?}");
    drop(follow);
    let name = format!("{}_ticker_1", project.name);
    let mut stats = infra.stats(&name, true).await.unwrap();
    let mut samples = Vec::new();
    while samples.len() < 3 {
        let s = tokio::time::timeout(Duration::from_secs(5), stats.next())
            .await
            .expect("a stats sample within 5 s")
            .expect("the stream goes on")
            .unwrap();
        samples.push(s);
    }
    assert!(
        samples
            .iter()
            .all(|s| s.memory_bytes > 0 && s.container == name)
    );
    assert!(samples.windows(2).all(|w| w[1].read_at > w[0].read_at));
    println!(
        "followed ticks {ticks:?}; stats cpu {:.2}% → {:.2}%, memory {} bytes",
        samples[1].cpu_percent, samples[2].cpu_percent, samples[2].memory_bytes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auto_scaler_follows_the_queue_with_reasons() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use sutazai_infra::{Load, ScaleConfig, ScalePolicy};

    let project = Project::new("autoscale");
    project.service(
        "workers.toml",
        &busybox_service(
            "workers",
            "none",
            "while true; do sleep 1; done",
            "kind = \"worker\"\nmin_replicas = 1\nmax_replicas = 3",
        ),
    );
    // The queue depth the app would read from the bus, set by the test.
    let queue = Arc::new(AtomicU64::new(0));
    let source = queue.clone();
    let scale = ScaleConfig {
        policy: ScalePolicy {
            queue_per_replica: 10,
            cooldown: Duration::from_secs(1),
            ..ScalePolicy::default()
        },
        every: Duration::from_millis(200),
        load: Arc::new(move || {
            let depth = source.load(Ordering::SeqCst);
            Box::pin(async move {
                Some(Load {
                    queue_depth: depth,
                    cpu_percent: 10.0,
                    memory_percent: 30.0,
                })
            })
        }),
    };
    let config = InfraConfig {
        project: project.name.clone(),
        catalogue_dir: Some(project.dir.path().to_path_buf()),
        heal: None,
        auto_scale: Some(scale),
        stop_timeout: Duration::from_secs(1),
        ..InfraConfig::default()
    };
    let infra = Infra::new(config, CancellationToken::new()).await.unwrap();
    let mut events = infra.subscribe();
    infra.control("workers", Action::Start, None).await.unwrap();

    queue.store(25, Ordering::SeqCst);
    let up = next_event(&mut events, Duration::from_secs(20), |e| {
        matches!(e, InfraEvent::Scaled { to: 3, .. })
    })
    .await
    .expect("scaled up to 3");
    let filter = format!("label={LABEL_PROJECT}={}", project.name);
    assert_eq!(docker_ps(&filter).len(), 3);

    queue.store(0, Ordering::SeqCst);
    let down = next_event(&mut events, Duration::from_secs(20), |e| {
        matches!(e, InfraEvent::Scaled { to: 1, .. })
    })
    .await
    .expect("scaled back down to 1");
    assert_eq!(docker_ps(&filter).len(), 1);
    let reason = |e: &InfraEvent| match e {
        InfraEvent::Scaled { reason, .. } => reason.clone(),
        _ => String::new(),
    };
    assert!(reason(&up).contains("queue depth 25"), "{up:?}");
    println!("auto-scaling: {} / {}", reason(&up), reason(&down));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_cut_short_is_resumed_at_the_next_start() {
    let project = Project::new("resume");
    let registry = common::TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("true");
    let mut bytes = std::fs::read("/bin/true").unwrap();
    bytes
        .extend_from_slice(format!("resume {:?}{}", Instant::now(), std::process::id()).as_bytes());
    std::fs::write(&binary, bytes).unwrap();
    let image = common::binary_image("resumetest", &binary);
    let reference = common::push(&image, &registry, "sutazai/resumetest");
    common::remove_image(&reference);
    common::remove_image(&image);
    let state = tempfile::tempdir().unwrap();
    let config = || InfraConfig {
        project: project.name.clone(),
        catalogue_dir: Some(project.dir.path().to_path_buf()),
        heal: None,
        state_dir: Some(state.path().to_path_buf()),
        ..InfraConfig::default()
    };
    let present = |r: &str| {
        Command::new("docker")
            .args(["image", "inspect", r])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success()
    };

    // The app starts a pull and stops listening after the first progress line (as when it
    // quits): the pull stays on record.
    let first = Infra::new(config(), CancellationToken::new())
        .await
        .unwrap();
    let mut progress = first.pull(&reference);
    progress.next().await.unwrap().unwrap();
    drop(progress);
    let record = std::fs::read_to_string(state.path().join("pulls.json")).unwrap();
    assert!(record.contains(&reference), "{record}");
    common::remove_image(&reference);
    assert!(!present(&reference));

    // The next start pulls it again by itself.
    let second = Infra::new(config(), CancellationToken::new())
        .await
        .unwrap();
    let began = Instant::now();
    while !present(&reference) {
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "the unfinished pull was not resumed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And forgets it once done.
    let began = Instant::now();
    loop {
        let record = std::fs::read_to_string(state.path().join("pulls.json")).unwrap();
        if !record.contains(&reference) {
            break;
        }
        assert!(began.elapsed() < Duration::from_secs(10), "{record}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "resumed {reference} {:?} after the restart",
        began.elapsed()
    );
    drop(second);
    common::remove_image(&reference);
}
