//! Monitoring end to end on a real `sutazai-headless serve` (real model): the host sampler
//! feeds `/monitoring/host`, `/metrics` parses as Prometheus text and carries the task,
//! agent and host figures, and `/alerts` lists the rules with `{code, message}` errors for
//! bad requests.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sutazai_tests::{
    Kill, TestLlm, free_port, headless_binary, headless_command, start_serve, submit_one_step_task,
    wait_healthy, wait_task,
};

/// `GET url` as JSON.
async fn get_json(client: &reqwest::Client, url: String) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_host_samples_and_alert_routes() {
    let bin = headless_binary().expect("sutazai-headless");
    let llm = TestLlm::spawn(0).expect("test LLM");
    let data = tempfile::tempdir().unwrap();
    let port = free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let _procs = start_serve(headless_command(&bin, &llm.url, port, data.path()), &base).await;
    let client = reqwest::Client::new();

    // One finished task, so that agent and task figures are non-zero.
    let id = submit_one_step_task(&base, "metrics").await;
    let task = wait_task(&base, &id, Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(task["status"], "completed", "{task}");

    // The sampler's samples.
    let began = Instant::now();
    let host = loop {
        let host: Value = get_json(&client, format!("{base}/monitoring/host")).await;
        if host["history"].as_array().is_some_and(|h| h.len() >= 2) {
            break host;
        }
        assert!(began.elapsed() < Duration::from_secs(10), "{host}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let latest = &host["latest"];
    // `since` answers only newer samples (the dashboard's live graphs poll with it).
    let last_at = host["history"].as_array().unwrap().last().unwrap()["at"]
        .as_str()
        .unwrap()
        .to_owned();
    let newer = get_json(
        &client,
        format!(
            "{base}/monitoring/host?since={}",
            last_at.replace('+', "%2B")
        ),
    )
    .await;
    assert!(
        newer["history"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["at"].as_str().unwrap() > last_at.as_str()),
        "{newer}"
    );
    assert!(
        newer["history"].as_array().unwrap().len() < host["history"].as_array().unwrap().len() + 2
    );
    assert!(
        latest["memory_total_bytes"].as_u64().unwrap() > 0,
        "{latest}"
    );
    assert!(
        latest["per_core_percent"]
            .as_array()
            .is_some_and(|c| !c.is_empty())
    );

    // /metrics in the Prometheus text format.
    let response = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = response.text().await.unwrap();
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
    let value = |name: &str, label: Option<(&str, &str)>| {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
            .collect::<Vec<f64>>()
    };
    assert_eq!(
        value("sutazai_tasks_total", Some(("outcome", "completed"))),
        [1.0]
    );
    let steps: f64 = value("sutazai_agent_steps_completed_total", None)
        .iter()
        .sum();
    assert!(steps >= 1.0, "{text}");
    assert_eq!(value("sutazai_agent_steps_completed_total", None).len(), 38);
    assert_eq!(value("sutazai_host_cpu_percent", None).len(), 1);
    assert!(!value("sutazai_host_disk_used_percent", Some(("mount", "/"))).is_empty());
    assert_eq!(value("sutazai_alerts_firing", None), [0.0]);
    // The task's step crossed the bus: published and acknowledged at least once.
    assert!(value("sutazai_bus_messages_total", Some(("outcome", "published")))[0] >= 1.0);
    assert_eq!(value("sutazai_bus_dead_letters", None), [0.0]);
    assert!(scrape.docs.contains_key("sutazai_agent_success_rate"));
    println!(
        "/metrics: {} samples in {} families; host cpu {:?}%",
        scrape.samples.len(),
        scrape.docs.len(),
        value("sutazai_host_cpu_percent", None)
    );

    // Alert routes.
    let alerts: Value = get_json(&client, format!("{base}/alerts")).await;
    let rules: Vec<&str> = alerts["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert!(rules.contains(&"agent_success_rate_low") && rules.contains(&"host_memory_high"));
    assert!(alerts["alerts"].is_array());
    let bad = reqwest::get(format!("{base}/alerts?status=bogus"))
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let missing = client
        .post(format!("{base}/alerts/12345/acknowledge"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["code"], "alert_not_found");

    // The same through the command line.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(&bin)
            .args(["--api", &base])
            .args(args)
            .env_remove("SUTAZAI_API_URL")
            .output()
            .expect("sutazai-headless");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = cli(&["status"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("Agents   38 healthy of 38"), "{text}");
    assert!(text.contains("Alerts   0 firing"), "{text}");
    let (code, text) = cli(&["alerts", "list"]);
    assert_eq!((code, text.trim()), (Some(0), "no alerts"));
    let (code, text) = cli(&["metrics"]);
    assert_eq!(code, Some(0));
    assert!(
        text.contains("# TYPE sutazai_tasks_total counter"),
        "{text}"
    );
    let (code, _) = cli(&["alerts", "ack", "99"]);
    assert_eq!(code, Some(1));
    println!("sutazai status:\n{}", cli(&["status"]).1);

    // /status carries the monitor's part of the health.
    let status: Value = get_json(&client, format!("{base}/status")).await;
    assert_eq!(status["monitoring"]["enabled"], true, "{status}");
    assert_eq!(status["paused"], false, "{status}");
    // Pausing orchestration (the tray's menu item) holds queued tasks until resumed.
    let paused: Value = client
        .post(format!("{base}/orchestration/pause"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(paused, json!({"paused": true, "was_paused": false}));
    let waiting = submit_one_step_task(&base, "held while paused").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let task = get_json(&client, format!("{base}/tasks/{waiting}")).await;
    assert_eq!(task["status"], "queued", "{task}");
    assert_eq!(
        get_json(&client, format!("{base}/status")).await["paused"],
        true
    );
    client
        .post(format!("{base}/orchestration/resume"))
        .send()
        .await
        .unwrap();
    let task = wait_task(&base, &waiting, Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(status["monitoring"]["alerts_firing"], 0, "{status}");
    assert!(status["system_health"].as_f64().unwrap() > 0.9, "{status}");

    // The time series: the first 10-second bucket lands in the history file, with the
    // host's, the agents' and the app's metrics.
    let began = Instant::now();
    let cpu = loop {
        let cpu: Value = reqwest::get(format!(
            "{base}/monitoring/series?metric=cpu_percent&subject=host&step=10"
        ))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        if cpu["series"].as_array().is_some_and(|s| !s.is_empty()) {
            break cpu;
        }
        assert!(began.elapsed() < Duration::from_secs(30), "{cpu}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(cpu["resolution"], 10, "{cpu}");
    let point = &cpu["series"][0]["points"][0];
    let (min, avg, max) = (
        point["min"].as_f64().unwrap(),
        point["avg"].as_f64().unwrap(),
        point["max"].as_f64().unwrap(),
    );
    assert!(
        (0.0..=100.0).contains(&avg) && min <= avg && avg <= max,
        "{point}"
    );
    assert!(point["count"].as_u64().unwrap() >= 1, "{point}");
    // The history lists a series once a 10 s bucket holding it is stored: the agents' rates
    // (observed from the task that just completed) may still be in the open bucket.
    let began = std::time::Instant::now();
    let catalogue = loop {
        let catalogue: Value =
            get_json(&client, format!("{base}/monitoring/series/catalogue")).await;
        let rates = catalogue
            .as_array()
            .is_some_and(|c| c.iter().any(|s| s["metric"] == "agent_success_rate"));
        if rates || began.elapsed() > Duration::from_secs(30) {
            break catalogue;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let known = |metric: &str| {
        catalogue
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["metric"] == metric)
            .count()
    };
    assert_eq!(known("agent_health"), 38, "{catalogue}");
    assert_eq!(known("tasks_active"), 1, "{catalogue}");
    assert_eq!(known("memory_percent"), 1, "{catalogue}");
    assert!(known("disk_used_percent") >= 1, "{catalogue}");
    assert!(known("agent_success_rate") >= 1, "{catalogue}");
    println!(
        "history: {} series; cpu_percent point {point}",
        catalogue.as_array().unwrap().len()
    );
    for (query, code) in [
        ("metric=cpu_percent&step=5", "invalid_query"),
        ("metric=cpu_percent&start=yesterday", "invalid_query"),
        (
            "metric=cpu_percent&start=2026-01-01T00:00:00Z&step=10",
            "invalid_query",
        ),
        ("step=60", "invalid_query"),
    ] {
        let r = reqwest::get(format!("{base}/monitoring/series?{query}"))
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{query}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], code, "{query}: {body}");
        assert!(body["message"].is_string());
    }

    // The live view and the stored series through the command line.
    let (code, text) = cli(&["metrics", "--watch", "--frames", "1"]);
    assert_eq!(code, Some(0), "{text}");
    for expected in ["CPU", "Memory", "Tasks   0 active", "Alerts  none firing"] {
        assert!(text.contains(expected), "{expected:?} not in {text}");
    }
    let (code, text) = cli(&["metrics", "--series", "memory_percent", "--since", "5m"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("host") && text.contains("stored resolution 10 s"),
        "{text}"
    );
    println!("sutazai metrics --series memory_percent --since 5m:\n{text}");
}

/// A local HTTP endpoint standing in for Slack's incoming webhook: records each JSON body.
async fn slack_stand_in() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    use axum::routing::post;
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let store = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |axum::Json(body): axum::Json<Value>| {
            let store = store.clone();
            async move {
                store.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, received)
}

/// A real SMTP server on loopback (`aiosmtpd` from PyPI), printing each message it gets.
fn smtp_server(
    port: u16,
) -> (
    std::process::Child,
    std::sync::Arc<std::sync::Mutex<String>>,
) {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new("python3")
        .args(["-m", "aiosmtpd", "-n", "-l"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-c", "aiosmtpd.handlers.Debugging", "stdout"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 -m aiosmtpd (scripts/setup.sh --test installs aiosmtpd)");
    let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = out.clone();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    let began = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "aiosmtpd did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (child, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_agent_alerts_the_websocket_email_and_slack() {
    use futures::StreamExt as _;
    let bin = headless_binary().expect("sutazai-headless");
    let llm = TestLlm::spawn(0).expect("test LLM");
    let smtp_port = free_port().unwrap();
    let (smtp, mail) = smtp_server(smtp_port);
    let (hook, slack) = slack_stand_in().await;
    let data = tempfile::tempdir().unwrap();
    let port = free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let llm_url = llm.url.clone();
    let spawn_serve = || {
        headless_command(&bin, &llm_url, port, data.path())
            .env(
                "SUTAZAI_ALERT_SMTP_URL",
                format!("smtp://127.0.0.1:{smtp_port}"),
            )
            .env("SUTAZAI_ALERT_EMAIL_FROM", "SutazAI <sutazai@localhost>")
            .env("SUTAZAI_ALERT_EMAIL_TO", "ops@localhost")
            .env("SUTAZAI_ALERT_SLACK_WEBHOOK", &hook)
            .env("SUTAZAI_MAX_ATTEMPTS", "1")
            // The endpoint's stop below must fail steps, not be waited out.
            .env("SUTAZAI_OUTAGE_WAIT", "1")
            .stdout(Stdio::null())
            .arg("serve")
            .spawn()
            .expect("spawn serve")
    };
    let mut procs = Kill(vec![spawn_serve(), smtp]);
    wait_healthy(&base).await.expect("serve up");
    let client = reqwest::Client::new();

    // The two rules under test fire after 1 s instead of a minute.
    let alerts: Value = get_json(&client, format!("{base}/alerts")).await;
    for id in ["agent_success_rate_low", "agent_error_rate_high"] {
        let mut rule = alerts["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()
            .clone();
        rule["for_seconds"] = json!(1);
        let r = client
            .put(format!("{base}/alerts/rules/{id}"))
            .json(&rule)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{:?}", r.text().await);
    }
    let ws_url = format!("{}/ws", base.replacen("http", "ws", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url).await.expect("ws");

    // The LLM endpoint stops; the agent's steps fail.
    drop(llm);
    for i in 0..2 {
        let id = submit_one_step_task(&base, &format!("doomed {i}")).await;
        let task = wait_task(&base, &id, Duration::from_secs(120))
            .await
            .unwrap();
        assert_eq!(task["status"], "failed", "{task}");
    }

    // Both alerts reach the WebSocket client …
    let mut seen = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while seen.len() < 2 {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("alerts on /ws in time")
            .expect("stream open")
            .expect("frame");
        let Ok(v) = serde_json::from_str::<Value>(msg.to_text().unwrap_or("")) else {
            continue;
        };
        if v["type"] == "alert" && v["status"] == "firing" {
            assert!(v["severity"].is_string() && v["message"].is_string(), "{v}");
            seen.insert(v["alert"]["rule_id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["agent_error_rate_high", "agent_success_rate_low"]
    );
    // … the SMTP server and the webhook, and the alerts record the deliveries.
    let began = Instant::now();
    loop {
        let text = mail.lock().unwrap().clone();
        let hooks = slack.lock().unwrap().clone();
        let mailed = text.contains("success rate") && text.contains("error rate");
        let posted = hooks.iter().any(|h| {
            h["text"]
                .as_str()
                .is_some_and(|t| t.contains("success rate"))
        }) && hooks
            .iter()
            .any(|h| h["text"].as_str().is_some_and(|t| t.contains("error rate")));
        if mailed && posted {
            println!(
                "email: {} lines received by aiosmtpd; slack stand-in: {} posts, e.g. {}",
                text.lines().count(),
                hooks.len(),
                hooks[0]["text"]
                    .as_str()
                    .unwrap_or("")
                    .lines()
                    .next()
                    .unwrap_or("")
            );
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "alerts not delivered: mail {text:?}, hooks {hooks:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let began = Instant::now();
    loop {
        let alerts: Value = get_json(&client, format!("{base}/alerts?status=firing")).await;
        let delivered = alerts["alerts"].as_array().unwrap().iter().all(|a| {
            let d = a["deliveries"].as_array().unwrap();
            d.len() == 2 && d.iter().all(|x| x["status"] == "delivered")
        });
        if delivered && !alerts["alerts"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(began.elapsed() < Duration::from_secs(20), "{alerts}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Alert history and rule edits outlive the process: `kill -9`, start again on the
    // same data directory.
    let before: Value = get_json(&client, format!("{base}/alerts")).await;
    procs.0[0].kill().unwrap();
    procs.0[0].wait().unwrap();
    procs.0[0] = spawn_serve();
    wait_healthy(&base).await.expect("serve up again");
    let after: Value = get_json(&client, format!("{base}/alerts")).await;
    let ids = |v: &Value| {
        v["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["id"].as_u64().unwrap(),
                    a["rule_id"].as_str().unwrap().to_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert!(!ids(&before).is_empty());
    assert_eq!(ids(&after), ids(&before), "{after}");
    for a in after["alerts"].as_array().unwrap() {
        assert!(
            a["deliveries"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["change"] == "firing" && d["status"] == "delivered"),
            "{a}"
        );
    }
    for id in ["agent_success_rate_low", "agent_error_rate_high"] {
        let rule = after["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap();
        assert_eq!(rule["for_seconds"], 1, "the edit of {id} was kept: {rule}");
    }
    println!(
        "after a restart: {} alerts kept, rule edits kept",
        ids(&after).len()
    );
}
