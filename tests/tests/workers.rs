//! Workers on other processes: one `serve` (executing no agents itself) and two
//! `sutazai worker`s on one real Redis. 200 tasks spread across both workers; one worker is
//! `kill -9`ed mid-run; every task still completes exactly once, and the dead worker's
//! pending bus entries are re-claimed by the survivor.

use std::collections::{HashMap, HashSet};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use redis::AsyncCommands as _;
use serde_json::{Value, json};
use sutazai_bus::MasterKey;
use sutazai_tests::redis_server::{TestRedis, namespace};
use sutazai_tests::{Kill, TestLlm, free_port, headless_binary, headless_command, wait_healthy};

const TASKS: usize = 200;

struct Cluster {
    redis_url: String,
    namespace: String,
    key: String,
    llm: String,
}

impl Cluster {
    /// Settings for processes sharing `redis` under a fresh namespace and bus key.
    fn new(redis: &TestRedis, llm: &TestLlm, name: &str) -> Cluster {
        Cluster {
            redis_url: redis.url.clone(),
            namespace: namespace(name),
            key: MasterKey::generate().to_base64(),
            llm: llm.url.clone(),
        }
    }

    fn command(
        &self,
        bin: &std::path::Path,
        port: u16,
        data: &std::path::Path,
    ) -> std::process::Command {
        let mut cmd = headless_command(bin, &self.llm, port, data);
        cmd.env("REDIS_URL", &self.redis_url)
            .env("SUTAZAI_BUS_NAMESPACE", &self.namespace)
            .env("SUTAZAI_BUS_KEY", &self.key)
            .env("SUTAZAI_BUS_VISIBILITY_TIMEOUT", "3")
            .env("SUTAZAI_STEP_TIMEOUT", "600")
            .env("SUTAZAI_MAX_TOKENS", "6")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        cmd
    }
}

async fn workers(base: &str) -> Vec<Value> {
    let v: Value = reqwest::get(format!("{base}/workers"))
        .await
        .expect("GET /workers")
        .json()
        .await
        .expect("workers JSON");
    v["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n["role"] == "worker")
        .collect()
}

/// Pending entries (delivered, unacknowledged) per consumer-name prefix, over every agent
/// inbox stream of the namespace.
async fn pending_of(redis: &mut redis::aio::MultiplexedConnection, ns: &str, node: &str) -> u64 {
    let keys: Vec<String> = redis.keys(format!("{ns}:inbox:*")).await.expect("KEYS");
    let mut total = 0;
    for key in keys {
        let agent = key
            .strip_prefix(&format!("{ns}:inbox:"))
            .and_then(|rest| rest.rsplit_once(':'))
            .map(|(agent, _)| agent.to_owned())
            .expect("inbox key layout");
        let consumers: redis::RedisResult<Vec<HashMap<String, redis::Value>>> = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(&key)
            .arg(format!("agent:{agent}"))
            .query_async(redis)
            .await;
        for consumer in consumers.unwrap_or_default() {
            let name = match consumer.get("name") {
                Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                Some(redis::Value::SimpleString(s)) => s.clone(),
                _ => continue,
            };
            if name.starts_with(node)
                && let Some(redis::Value::Int(n)) = consumer.get("pending")
            {
                total += *n as u64;
            }
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_the_work_and_survive_a_kill() {
    let bin = headless_binary().expect("sutazai-headless");
    let redis = TestRedis::get();
    let llm = TestLlm::spawn(10).expect("test LLM");
    let cluster = Cluster::new(&redis, &llm, "workers");
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let port = free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}");

    let serve: Child = cluster
        .command(&bin, port, dirs[0].path())
        .env("SUTAZAI_LOCAL_AGENTS", "none")
        .arg("serve")
        .spawn()
        .expect("spawn serve");
    let spawned: Vec<Child> = (1..3)
        .map(|i| {
            cluster
                .command(&bin, free_port().unwrap(), dirs[i].path())
                .args(["worker", "--agents", "all"])
                .spawn()
                .expect("spawn worker")
        })
        .collect();
    let pids: Vec<u32> = spawned.iter().map(Child::id).collect();
    // [victim worker, surviving worker, serve]
    let mut procs = Kill(spawned.into_iter().chain(std::iter::once(serve)).collect());
    wait_healthy(&base).await.expect("serve up");
    let began = Instant::now();
    while workers(&base)
        .await
        .iter()
        .filter(|n| n["alive"] == true)
        .count()
        < 2
    {
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "two workers never announced themselves"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let nodes = workers(&base).await;
    let node_of = |pid: u32| {
        nodes
            .iter()
            .find(|n| n["pid"] == pid)
            .and_then(|n| n["node_id"].as_str())
            .expect("worker node listed")
            .to_owned()
    };
    let (victim_node, survivor_node) = (node_of(pids[0]), node_of(pids[1]));

    let client = reqwest::Client::new();
    let mut ids = Vec::with_capacity(TASKS);
    for i in 0..TASKS {
        let r = client
            .post(format!("{base}/tasks"))
            .json(&json!({
                "name": format!("spread {i}"),
                "description": "Name one benefit of unit tests.",
                "requirements": ["code_generation"],
                "coordination_pattern": "pipeline",
                "constraints": {"max_agents": 1}
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        ids.push(
            r.json::<Value>().await.unwrap()["task_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }

    // Kill one worker once it has done some of the work and is busy.
    let handled = |nodes: &[Value], node: &str| {
        nodes
            .iter()
            .find(|n| n["node_id"] == node)
            .and_then(|n| n["handled"].as_u64())
            .unwrap_or(0)
    };
    let mut conn = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    let began = Instant::now();
    let (victim_handled, survivor_handled, pending_at_kill) = loop {
        let nodes = workers(&base).await;
        let (v, s) = (
            handled(&nodes, &victim_node),
            handled(&nodes, &survivor_node),
        );
        let pending = pending_of(&mut conn, &cluster.namespace, &victim_node).await;
        // Counts come from heartbeats (every 5 s): kill only once both have reported
        // work, so "both workers did work" below is not a race with the survivor's
        // first heartbeat.
        if v >= 10 && s > 0 && pending > 0 {
            procs.0[0].kill().expect("kill -9 the worker");
            procs.0[0].wait().unwrap();
            break (
                v,
                s,
                pending_of(&mut conn, &cluster.namespace, &victim_node).await,
            );
        }
        assert!(
            began.elapsed() < Duration::from_secs(300),
            "the victim never got busy"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!(
        "killed worker {victim_node} after it answered {victim_handled} steps with {pending_at_kill} pending; survivor had answered {survivor_handled}"
    );
    assert!(
        pending_at_kill > 0,
        "the killed worker held pending entries"
    );

    // Every task completes, exactly once.
    let began = Instant::now();
    let mut done: HashMap<String, Value> = HashMap::new();
    while done.len() < TASKS {
        for id in &ids {
            if done.contains_key(id) {
                continue;
            }
            let t: Value = client
                .get(format!("{base}/tasks/{id}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            match t["status"].as_str() {
                Some("completed") => {
                    done.insert(id.clone(), t);
                }
                Some("failed") | Some("cancelled") => panic!("task {id} ended {t}"),
                _ => {}
            }
        }
        assert!(
            began.elapsed() < Duration::from_secs(600),
            "{} of {TASKS} tasks completed",
            done.len()
        );
        eprintln!("{} of {TASKS} tasks completed", done.len());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let elapsed = began.elapsed();
    for (id, task) in &done {
        let steps = task["steps"].as_array().expect("steps");
        assert_eq!(steps.len(), 1, "task {id} has one step: {task}");
        assert_eq!(steps[0]["status"], "completed");
        assert_eq!(
            steps[0]["attempts"], 1,
            "no orchestrator retry was needed: {task}"
        );
        assert!(task["result"]["output"].is_string());
    }
    // The killed worker's pending entries were re-claimed by the survivor and handled.
    assert_eq!(
        pending_of(&mut conn, &cluster.namespace, &victim_node).await,
        0,
        "the dead worker's pending entries were re-claimed"
    );
    // Heartbeats come every 5 s: wait for one taken after the last step.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let nodes = workers(&base).await;
    let survivor_final = handled(&nodes, &survivor_node);
    assert!(
        victim_handled > 0 && survivor_handled > 0,
        "both workers did work"
    );
    assert!(
        survivor_final - survivor_handled >= pending_at_kill,
        "the survivor answered the {pending_at_kill} re-claimed steps too \
         ({survivor_handled} before the kill, {survivor_final} at the end)"
    );
    // The model saw each task's step at least once; the re-claimed ones twice.
    let traces: HashSet<String> = llm
        .requests()
        .await
        .unwrap()
        .iter()
        .filter_map(|r| r["step"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(traces.len(), TASKS);
    eprintln!(
        "{TASKS} tasks completed in {:.1} s after the kill; victim answered {victim_handled}, survivor {survivor_final}",
        elapsed.as_secs_f64()
    );
}

/// A tampered envelope and a garbage entry written straight into an agent's inbox stream on
/// Redis are never delivered: `serve` dead-letters them, and the API's dead-letter listing
/// shows each with its reason (and the tampered one's clear-text header).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_messages_are_listed_as_dead_letters() {
    let bin = headless_binary().expect("sutazai-headless");
    let redis = TestRedis::get();
    let llm = TestLlm::spawn(0).expect("test LLM");
    let cluster = Cluster::new(&redis, &llm, "tamper");
    let data = tempfile::tempdir().unwrap();
    let port = free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    // Only this agent is served, so the forged entries are read by nobody else.
    let serve = cluster
        .command(&bin, port, data.path())
        .env("SUTAZAI_LOCAL_AGENTS", "testing-qa-validator")
        .arg("serve")
        .spawn()
        .expect("spawn serve");
    let _procs = Kill(vec![serve]);
    wait_healthy(&base).await.expect("serve up");

    // A genuine envelope to tamper with: one the server itself wrote, for an agent that
    // nobody consumes here, read back from its stream.
    let client = reqwest::Client::new();
    let sent: Value = client
        .post(format!("{base}/messages/send?sender_id=orchestrator"))
        .json(&json!({
            "recipient_id": "senior-ai-engineer",
            "message_type": "task_request",
            "pattern": "point_to_point",
            "priority": "high",
            "payload": {"task_id": "123", "action": "analyze"}
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sent["status"], "sent", "{sent}");
    let mut conn = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    let source = format!("{}:inbox:senior-ai-engineer:1", cluster.namespace);
    let entries: redis::streams::StreamRangeReply = conn.xrange_all(&source).await.unwrap();
    let Some(redis::Value::BulkString(envelope)) = entries.ids[0].map.get("e").cloned() else {
        panic!("no envelope in {source}");
    };
    let mut tampered = envelope.clone();
    let last_body_byte = tampered.len() - 33;
    tampered[last_body_byte] ^= 0x01;

    let target = format!("{}:inbox:testing-qa-validator:1", cluster.namespace);
    let _: String = conn.xadd(&target, "*", &[("e", tampered)]).await.unwrap();
    let _: String = conn
        .xadd(&target, "*", &[("e", b"not an envelope".to_vec())])
        .await
        .unwrap();

    let began = Instant::now();
    let listing = loop {
        let v: Value = client
            .get(format!("{base}/messages/dead-letters"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let reasons: HashSet<String> = v["dead_letters"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|l| l["reason"].as_str().map(str::to_owned))
            .collect();
        if reasons.contains("bad_signature") && reasons.contains("malformed") {
            break v;
        }
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "dead letters: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let letters = listing["dead_letters"].as_array().unwrap();
    let bad = letters
        .iter()
        .find(|l| l["reason"] == "bad_signature")
        .unwrap();
    assert_eq!(bad["queue"], "inbox:testing-qa-validator");
    assert_eq!(bad["header"]["sender_id"], "orchestrator", "{bad}");
    assert_eq!(bad["header"]["recipient_id"], "senior-ai-engineer");
    assert!(
        bad.get("message").is_none(),
        "a tampered message is never read: {bad}"
    );
    let garbage = letters.iter().find(|l| l["reason"] == "malformed").unwrap();
    assert!(garbage["raw_base64"].is_string(), "{garbage}");
    // Neither can be replayed: there is no trustworthy message in them.
    let id = bad["id"].as_str().unwrap();
    let r = client
        .post(format!("{base}/messages/dead-letters/{id}/replay"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 409);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "not_replayable");
}

/// A worker told to stop (SIGTERM) mid-step finishes the step before it exits: the task
/// completes on its first attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_worker_finishes_its_running_step() {
    let bin = headless_binary().expect("sutazai-headless");
    let redis = TestRedis::get();
    // Slow tokens: the step is surely running when the worker is told to stop.
    let llm = TestLlm::spawn(150).expect("test LLM");
    let cluster = Cluster::new(&redis, &llm, "graceful");
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let port = free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let serve = cluster
        .command(&bin, port, dirs[0].path())
        .env("SUTAZAI_LOCAL_AGENTS", "none")
        .arg("serve")
        .spawn()
        .expect("spawn serve");
    let worker = cluster
        .command(&bin, free_port().unwrap(), dirs[1].path())
        .args(["worker", "--agents", "all"])
        .spawn()
        .expect("spawn worker");
    let worker_pid = worker.id();
    let mut procs = Kill(vec![worker, serve]);
    wait_healthy(&base).await.expect("serve up");
    let began = Instant::now();
    while workers(&base).await.is_empty() {
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "the worker never announced itself"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let client = reqwest::Client::new();
    let task: Value = client
        .post(format!("{base}/tasks"))
        .json(&json!({
            "name": "graceful", "description": "Name one benefit of unit tests.",
            "requirements": ["code_generation"], "coordination_pattern": "pipeline",
            "constraints": {"max_agents": 1}
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = task["task_id"].as_str().unwrap().to_owned();
    let began = Instant::now();
    while !llm
        .requests_for_step(&format!("{id}/stage/0"))
        .await
        .unwrap()
        .iter()
        .any(|r| r["ended_at_ms"].is_null())
    {
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "the step never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &worker_pid.to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let exited = tokio::task::spawn_blocking(move || {
        let status = procs.0[0].wait();
        (procs, status)
    });
    let done = sutazai_tests::wait_task(&base, &id, Duration::from_secs(120))
        .await
        .expect("the task ends");
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["steps"][0]["attempts"], 1, "{done}");
    let (_procs, status) = exited.await.unwrap();
    assert!(
        status.unwrap().success(),
        "the worker exits cleanly after its step"
    );
}
