//! Docker services end to end, against real engines: `sutazai infra deploy-all` brings up a
//! Redis and a worker container (our own `sutazai-headless` in an image built here), and
//! `serve` on that Redis has a task executed by the `sutazai worker` inside the container;
//! the API reports status, logs and scales an agent's worker containers. With a private
//! `dockerd` stopped, the infrastructure routes answer 503 while tasks keep running on host
//! services, and the engine's return is noticed without a restart.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sutazai_bus::MasterKey;
use sutazai_infra::{LABEL_PROJECT, LABEL_SERVICE};
use sutazai_tests::docker;
use sutazai_tests::{
    TestLlm, free_port, headless_binary, headless_command, start_serve, submit_one_step_task,
    wait_task,
};

/// Removes the project's containers and volumes when the test ends.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        docker::remove_labelled(&format!("{LABEL_PROJECT}={}", self.0));
    }
}

/// Running containers matching a `docker ps` filter.
fn docker_names(filter: &str) -> Vec<String> {
    docker::container_names(filter, false)
}

async fn get(base: &str, path: &str) -> (u16, Value) {
    let r = reqwest::get(format!("{base}{path}")).await.expect("GET");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn post(base: &str, path: &str, body: &Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .json(body)
        .send()
        .await
        .expect("POST");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The catalogue of the test: Redis on `port` and workers from `worker_image`, both on the
/// host network (the engine runs without a bridge); Ollama off (the test LLM runs on the
/// host).
fn write_catalogue(dir: &Path, port: u16, worker_image: &str) {
    // The worker image is built by the app itself from its own binary (`build_local`).
    std::fs::write(
        dir.join("ollama.toml"),
        "name = \"ollama\"\nenabled = false\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("redis.toml"),
        format!(
            r#"name = "redis"
image = "{image}"
network_mode = "host"
command = ["/usr/bin/redis-server", "--port", "{port}", "--bind", "127.0.0.1", "--appendonly", "yes", "--dir", "/data"]
endpoint = "redis://127.0.0.1:{port}"
health = {{ test = ["/usr/bin/redis-cli", "-p", "{port}", "ping"], interval_s = 0.5, timeout_s = 2, retries = 20 }}
resources = {{ cpus = 1.0, memory_mb = 256 }}
"#,
            image = docker::redis_image()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("agent-worker.toml"),
        format!(
            r#"name = "agent-worker"
image = "{worker_image}"
build_local = true
command = ["/usr/local/bin/sutazai-headless", "worker", "--agents", "all"]
resources = {{ cpus = 1.0, memory_mb = 512 }}
[env]
HOME = "/tmp"
REDIS_URL = "${{endpoint:redis}}"
OLLAMA_API_URL = "${{OLLAMA_API_URL}}"
SUTAZAI_BUS_KEY = "${{SUTAZAI_BUS_KEY}}"
SUTAZAI_BUS_NAMESPACE = "${{SUTAZAI_BUS_NAMESPACE}}"
SUTAZAI_MODEL = "${{SUTAZAI_MODEL}}"
SUTAZAI_DATA_DIR = "/tmp/data"
SUTAZAI_AGENTS_DIR = "/tmp/agents"
SUTAZAI_MAX_TOKENS = "8"
LOG_LEVEL = "info"
"#
        ),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_all_runs_a_worker_container_that_executes_tasks() {
    docker::require_docker();
    let bin = headless_binary().expect("sutazai-headless");
    let worker_image = format!("sutazai-test/selfbuilt:{}", std::process::id());
    docker::remove_image(&worker_image);
    let llm = TestLlm::spawn(0).expect("test LLM");
    let project = format!("sztest-e2e-{}", std::process::id());
    let _cleanup = Cleanup(project.clone());
    let services = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let redis_port = free_port().unwrap();
    write_catalogue(services.path(), redis_port, &worker_image);
    let key = MasterKey::generate().to_base64();
    let namespace = format!("e2e{}", std::process::id());
    let configure = |cmd: &mut Command| {
        cmd.env_remove("DOCKER_HOST")
            .env("SUTAZAI_SERVICES_DIR", services.path())
            .env("SUTAZAI_INFRA_PROJECT", &project)
            .env("SUTAZAI_BUS_KEY", &key)
            .env("SUTAZAI_BUS_NAMESPACE", &namespace);
    };

    // 1. The CLI deploys: Redis healthy first, then the worker.
    let mut deploy = headless_command(&bin, &llm.url, free_port().unwrap(), data.path());
    configure(&mut deploy);
    let began = Instant::now();
    let out = deploy
        .args(["infra", "deploy-all"])
        .output()
        .expect("infra deploy-all");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("agent-worker: image done {worker_image}")),
        "the worker image was built from the app: {text}"
    );
    let redis_healthy = text.find("redis: health done").expect(&text);
    let worker_started = text.find("agent-worker: containers started").expect(&text);
    assert!(redis_healthy < worker_started, "{text}");
    println!("deploy-all took {:?}:\n{text}", began.elapsed());

    let mut status = headless_command(&bin, &llm.url, free_port().unwrap(), data.path());
    configure(&mut status);
    let out = status
        .args(["infra", "status"])
        .output()
        .expect("infra status");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    let redis_row = table
        .lines()
        .find(|l| l.starts_with("redis "))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        redis_row.contains("running") && redis_row.contains("healthy"),
        "{table}"
    );
    println!("sutazai infra status:\n{table}");

    // 2. serve on the managed Redis, executing no agent itself.
    let port = free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let mut serve = headless_command(&bin, &llm.url, port, data.path());
    configure(&mut serve);
    serve
        .env("REDIS_URL", format!("redis://127.0.0.1:{redis_port}"))
        .env("SUTAZAI_LOCAL_AGENTS", "none");
    let _procs = start_serve(serve, &base).await;

    let (status, infra) = get(&base, "/infrastructure/status").await;
    assert_eq!(status, 200, "{infra}");
    let services_json = infra["services"].as_array().unwrap();
    let names: Vec<&str> = services_json
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["redis", "agent-worker"]);
    assert_eq!(services_json[0]["health"], "healthy");
    assert_eq!(services_json[1]["state"], "running");

    // 3. The worker in the container announces itself and executes a task.
    let began = Instant::now();
    loop {
        let (_, workers) = get(&base, "/workers").await;
        let alive = workers["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|n| n["role"] == "worker" && n["alive"] == true);
        if alive {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "the containerized worker never announced itself: {workers}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let id = submit_one_step_task(&base, "in a container").await;
    let task = wait_task(&base, &id, Duration::from_secs(120))
        .await
        .expect("task finished");
    assert_eq!(task["status"], "completed", "{task}");
    // Counted in the worker's next heartbeat.
    let began = Instant::now();
    let handled = loop {
        let (_, workers) = get(&base, "/workers").await;
        let handled: u64 = workers["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["role"] == "worker")
            .filter_map(|n| n["handled"].as_u64())
            .sum();
        if handled >= 1 {
            break handled;
        }
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "the container's worker never reported the step it handled: {workers}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };

    // The server heals what the CLI deployed: the wanted replicas are shared through the
    // data directory.
    let worker = format!("{project}_agent-worker_1");
    assert!(
        Command::new("docker")
            .args(["kill", &worker])
            .status()
            .unwrap()
            .success()
    );
    let killed = Instant::now();
    loop {
        let (_, infra) = get(&base, "/infrastructure/status").await;
        let w = &infra["services"][1];
        if w["state"] == "running" && w["containers"][0]["restarts"] == 1 {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "serve did not heal the worker the CLI deployed: {infra}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "worker container killed; serve's healer had it running again in {:?}",
        killed.elapsed()
    );

    // 4. Its logs through the API.
    let (status, logs) = get(&base, "/infrastructure/services/agent-worker/logs?tail=50").await;
    assert_eq!(status, 200, "{logs}");
    let lines: Vec<&str> = logs["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["line"].as_str())
        .collect();
    assert!(
        lines.iter().any(|l| l.contains("SutazAI worker")),
        "{lines:#?}"
    );

    // Live stats, streamed.
    let worker = format!("{project}_agent-worker_1");
    let mut response = reqwest::get(format!(
        "{base}/infrastructure/containers/{worker}/stats?stream=true"
    ))
    .await
    .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let mut text = String::new();
    while text.lines().count() < 2 {
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .expect("a stats line within 10 s")
            .unwrap()
            .expect("the stream goes on");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    for line in text.lines().take(2) {
        let sample: Value = serde_json::from_str(line).unwrap();
        assert!(sample["memory_bytes"].as_u64().unwrap() > 0, "{sample}");
    }
    drop(response);

    // 5. An agent's own worker containers, through /agents/{id}/control.
    let agent = task["assigned_agents"][0]
        .as_str()
        .unwrap_or("senior-ai-engineer")
        .to_owned();
    let (status, answer) = post(
        &base,
        &format!("/agents/{agent}/control"),
        &json!({"action": "scale", "instances": 2}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["workers"]["running_replicas"], 2, "{answer}");
    let filter = format!("label={LABEL_SERVICE}=worker-{agent}");
    assert_eq!(docker_names(&filter).len(), 2);
    let (status, answer) = post(
        &base,
        &format!("/agents/{agent}/control"),
        &json!({"action": "stop"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(docker_names(&filter).is_empty(), "{answer}");

    // 6. Bad requests get {code, message}.
    for (service, action, expected) in [
        ("nope", json!({"action": "start"}), (404, "unknown_service")),
        (
            "redis",
            json!({"action": "explode"}),
            (422, "invalid_request"),
        ),
        (
            "redis",
            json!({"action": "scale"}),
            (422, "invalid_request"),
        ),
    ] {
        let path = format!("/infrastructure/services/{service}/control");
        let (status, body) = post(&base, &path, &action).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (expected.0, Some(expected.1)),
            "{path} {action}: {body}"
        );
    }
    docker::remove_image(&worker_image);
    println!(
        "task {id} completed by the container's worker ({handled} step(s) handled); agent {agent} scaled to 2 worker containers then stopped"
    );
}

/// A `dockerd` of the test's own (socket, data and exec roots in a temp dir), so stopping
/// it disturbs nobody else.
struct PrivateDocker {
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl PrivateDocker {
    fn start() -> PrivateDocker {
        let mut d = PrivateDocker {
            dir: tempfile::Builder::new()
                .prefix("szd")
                .tempdir_in("/tmp")
                .unwrap(),
            child: None,
        };
        d.launch();
        d
    }

    fn socket(&self) -> String {
        format!("unix://{}/docker.sock", self.dir.path().display())
    }

    fn launch(&mut self) {
        let p = self.dir.path();
        let child = Command::new("dockerd")
            .arg("--host")
            .arg(self.socket())
            .arg("--data-root")
            .arg(p.join("data"))
            .arg("--exec-root")
            .arg(p.join("exec"))
            .arg("--pidfile")
            .arg(p.join("docker.pid"))
            .args(["--storage-driver=vfs", "--iptables=false", "--bridge=none"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(p.join("dockerd.log")).unwrap())
            .spawn()
            .expect("dockerd (apt-get install docker.io)");
        self.child = Some(child);
        let began = Instant::now();
        while !self.answers() {
            assert!(
                began.elapsed() < Duration::from_secs(60),
                "private dockerd did not start; see {}",
                p.join("dockerd.log").display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn answers(&self) -> bool {
        Command::new("docker")
            .args(["-H", &self.socket(), "info"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateDocker {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_going_away_is_a_clear_503_and_its_return_is_noticed() {
    docker::require_docker();
    let bin = headless_binary().expect("sutazai-headless");
    let llm = TestLlm::spawn(0).expect("test LLM");
    let mut engine = PrivateDocker::start();
    let data = tempfile::tempdir().unwrap();
    let port = free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let mut serve = headless_command(&bin, &llm.url, port, data.path());
    serve
        .env("DOCKER_HOST", engine.socket())
        .env("SUTAZAI_INFRA_PROJECT", "sztest-gone");
    let _procs = start_serve(serve, &base).await;
    let (status, body) = get(&base, "/infrastructure/status").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["docker"]["available"], true);

    engine.stop();
    let (status, body) = get(&base, "/infrastructure/status").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "docker_unavailable");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("Docker"), "{message}");
    for (path, request) in [
        ("/infrastructure/deploy-all", json!({})),
        (
            "/infrastructure/services/redis/control",
            json!({"action": "restart"}),
        ),
    ] {
        let (status, body) = post(&base, path, &request).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (503, Some("docker_unavailable")),
            "{path}: {body}"
        );
    }
    // The rest of the app works: a task on host services completes.
    let id = submit_one_step_task(&base, "without docker").await;
    let task = wait_task(&base, &id, Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(task["status"], "completed", "{task}");
    let (_, status_body) = get(&base, "/status").await;
    assert_eq!(
        status_body["infrastructure"]["available"], false,
        "{status_body}"
    );
    println!("with dockerd stopped: 503 {message:?}; task {id} completed");

    // The engine comes back: noticed without restarting the app.
    engine.launch();
    let began = Instant::now();
    loop {
        let (status, _) = get(&base, "/infrastructure/status").await;
        if status == 200 {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "dockerd's return was not noticed within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("dockerd back: noticed after {:?}", began.elapsed());
}

/// An `ollama` service's models step against a real Ollama-API server (our test LLM on the
/// host; the service's container is a stand-in that only has to run): a model it has is
/// not pulled again; a model it does not have fails deploy-all with Ollama's own message
/// and an alert, and nothing after it is started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_all_checks_and_pulls_ollama_models() {
    use sutazai_infra::{Infra, InfraConfig, InfraEvent};
    docker::require_docker();
    let llm = TestLlm::spawn(0).expect("test LLM");
    let project = format!("sztest-models-{}", std::process::id());
    let _cleanup = Cleanup(project.clone());
    let services = tempfile::tempdir().unwrap();
    let write = |models: &str| {
        std::fs::write(
            services.path().join("redis.toml"),
            "name = \"redis\"\nenabled = false\n",
        )
        .unwrap();
        std::fs::write(
            services.path().join("ollama.toml"),
            format!(
                r#"name = "ollama"
image = "{image}"
network_mode = "none"
command = ["/bin/sh", "-c", "while true; do sleep 1; done"]
endpoint = "{url}"
models = [{models}]
health = {{ test = ["/bin/true"], interval_s = 0.5, timeout_s = 2, retries = 5 }}
"#,
                image = docker::busybox_image(),
                url = llm.url,
            ),
        )
        .unwrap();
        std::fs::write(
            services.path().join("agent-worker.toml"),
            format!(
                "name = \"agent-worker\"\nimage = \"{}\"\nnetwork_mode = \"none\"\ncommand = [\"/bin/sh\", \"-c\", \"while true; do sleep 1; done\"]\nenv = {{}}\n",
                docker::busybox_image()
            ),
        )
        .unwrap();
    };
    let infra = |project: &str| {
        let config = InfraConfig {
            project: project.to_owned(),
            catalogue_dir: Some(services.path().to_path_buf()),
            heal: None,
            ..InfraConfig::default()
        };
        Infra::new(config, tokio_util::sync::CancellationToken::new())
    };

    write("\"${SUTAZAI_MODEL}\"");
    let mut config_vars = std::collections::BTreeMap::new();
    config_vars.insert(
        "SUTAZAI_MODEL".to_owned(),
        sutazai_tests::TEST_MODEL.to_owned(),
    );
    let present = Infra::new(
        InfraConfig {
            project: project.clone(),
            catalogue_dir: Some(services.path().to_path_buf()),
            vars: config_vars,
            heal: None,
            ..InfraConfig::default()
        },
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .unwrap();
    let mut events = present.subscribe();
    let report = present
        .deploy_all()
        .await
        .expect("deploy with the model present");
    assert_eq!(report.services, ["ollama", "agent-worker"]);
    let mut pulled = false;
    while let Ok(e) = events.try_recv() {
        pulled |= matches!(e, InfraEvent::Pull(_));
    }
    assert!(!pulled, "a model the server has is not pulled again");

    present
        .control("agent-worker", sutazai_infra::Action::Remove, None)
        .await
        .unwrap();
    write("\"no-such-model:1b\"");
    let missing = infra(&project).await.unwrap();
    let mut events = missing.subscribe();
    let error = missing.deploy_all().await.unwrap_err();
    assert_eq!(error.code(), "pull_failed");
    assert!(error.to_string().contains("no-such-model:1b"), "{error}");
    assert!(error.to_string().contains("does not exist"), "{error}");
    let mut alerted = false;
    while let Ok(e) = events.try_recv() {
        alerted |= matches!(e, InfraEvent::Alert { ref service, .. } if service == "ollama");
    }
    assert!(alerted);
    let status = missing.status().await.unwrap();
    let worker = status
        .services
        .iter()
        .find(|s| s.name == "agent-worker")
        .unwrap();
    assert_eq!(
        worker.state, "absent",
        "nothing after the failed step starts"
    );
    println!("models: present → no pull; missing → {error}");
}
