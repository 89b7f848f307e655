//! Orchestration logic with scripted in-process providers (fakes are fine here: these test
//! the orchestrator's own decisions; the real model runs in the workspace's `tests/`
//! crate): retries and backoff, non-retryable errors, circuit breakers, step timeouts,
//! the priority queue under `MAX_CONCURRENT_TASKS`, and journal replay on restart.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sutazai_agents::Registry;
use sutazai_bus::{Bus, BusConfig};
use sutazai_core::{
    Constraints, CoordinationPattern, Priority, StepStatus, TaskRequest, TaskStatus,
};
use sutazai_llm::{
    ChatRequest, ChatResponse, DoneReason, LlmError, ModelInfo, Provider, TokenSink,
};
use sutazai_orchestrator::backoff::Backoff;
use sutazai_orchestrator::breaker::BreakerConfig;
use sutazai_orchestrator::{
    AgentAction, Orchestrator, OrchestratorConfig, OrchestratorError, TaskFilter,
};
use sutazai_store::Journal;

/// What a scripted call does.
#[derive(Debug, Clone)]
enum Script {
    Answer,
    Fail503,
    NotFound,
    Hang,
    /// A real refused connection (the endpoint is down).
    Unreachable,
    /// Answers with the prompt it was given, streamed 3 bytes at a time.
    Echo,
}

/// A provider that follows a script, then answers; counts calls and records traces.
#[derive(Debug, Default)]
struct Scripted {
    script: Mutex<VecDeque<Script>>,
    calls: AtomicU32,
    traces: Mutex<Vec<String>>,
    delay: Option<Duration>,
}

impl Scripted {
    fn new(script: impl IntoIterator<Item = Script>) -> Arc<Scripted> {
        Arc::new(Scripted {
            script: Mutex::new(script.into_iter().collect()),
            ..Default::default()
        })
    }
}

#[async_trait]
impl Provider for Scripted {
    fn id(&self) -> &str {
        "scripted"
    }

    async fn chat(
        &self,
        req: &ChatRequest,
        on_token: Option<TokenSink<'_>>,
    ) -> Result<ChatResponse, LlmError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.traces
            .lock()
            .unwrap()
            .push(req.trace.clone().unwrap_or_default());
        let next = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Script::Answer);
        if let Some(d) = self.delay {
            tokio::time::sleep(d).await;
        }
        match next {
            Script::Answer => {
                let text = format!("answer to {}", req.trace.clone().unwrap_or_default());
                if let Some(sink) = on_token {
                    sink(&text);
                }
                Ok(ChatResponse {
                    content: text,
                    model: req.model.clone(),
                    prompt_tokens: 10,
                    completion_tokens: 3,
                    duration: Duration::from_millis(1),
                    done_reason: DoneReason::Stop,
                })
            }
            Script::Fail503 => Err(LlmError::Status {
                status: 503,
                message: "overloaded".into(),
            }),
            Script::NotFound => Err(LlmError::ModelNotFound {
                model: req.model.clone(),
            }),
            Script::Echo => {
                let text = req
                    .messages
                    .last()
                    .map(|m| m.content.clone())
                    .unwrap_or_default();
                if let Some(sink) = on_token {
                    let mut rest = text.as_str();
                    while !rest.is_empty() {
                        let cut = (3..=rest.len())
                            .find(|i| rest.is_char_boundary(*i))
                            .unwrap_or(rest.len());
                        sink(&rest[..cut]);
                        rest = &rest[cut..];
                    }
                }
                Ok(ChatResponse {
                    content: text,
                    model: req.model.clone(),
                    prompt_tokens: 10,
                    completion_tokens: 3,
                    duration: Duration::from_millis(1),
                    done_reason: DoneReason::Stop,
                })
            }
            Script::Unreachable => {
                // Nothing listens on a port just released.
                let port = std::net::TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())
                    .unwrap()
                    .port();
                let url = format!("http://127.0.0.1:{port}/api/chat");
                let source = reqwest::get(&url).await.unwrap_err();
                Err(LlmError::Connect { url, source })
            }
            Script::Hang => {
                std::future::pending::<()>().await;
                unreachable!()
            }
        }
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, LlmError> {
        Ok(Vec::new())
    }
}

fn config(max_concurrent: usize) -> OrchestratorConfig {
    OrchestratorConfig {
        max_concurrent_tasks: max_concurrent,
        default_provider: "scripted".into(),
        default_model: "m".into(),
        backoff: Backoff {
            base: Duration::from_millis(1),
            max: Duration::from_millis(5),
        },
        breaker: BreakerConfig {
            failure_threshold: 3,
            cooldown: Duration::from_secs(60),
        },
        step_timeout: Duration::from_millis(300),
        ..Default::default()
    }
}

/// [`config`] with one task at a time and this breaker.
fn with_breaker(failure_threshold: u32, cooldown: Duration) -> OrchestratorConfig {
    OrchestratorConfig {
        breaker: BreakerConfig {
            failure_threshold,
            cooldown,
        },
        ..config(1)
    }
}

async fn start(
    dir: &std::path::Path,
    provider: Arc<Scripted>,
    config: OrchestratorConfig,
) -> Orchestrator {
    let journal = Journal::open(&dir.join("journal.sqlite3")).unwrap();
    let mut providers: HashMap<String, Arc<dyn Provider>> = HashMap::new();
    providers.insert("scripted".into(), provider);
    Orchestrator::start(
        config,
        Registry::builtin(),
        providers,
        journal,
        Bus::in_process(BusConfig::default()),
    )
    .await
    .unwrap()
}

fn pipeline(name: &str, reqs: &[&str]) -> TaskRequest {
    TaskRequest {
        name: name.into(),
        description: String::new(),
        task_type: String::new(),
        priority: Priority::Normal,
        requirements: reqs.iter().map(|r| r.to_string()).collect(),
        coordination_pattern: CoordinationPattern::Pipeline,
        payload: serde_json::Value::Null,
        constraints: Constraints::default(),
    }
}

#[tokio::test]
async fn transient_failures_are_retried() {
    let dir = tempfile::tempdir().unwrap();
    let p = Scripted::new([Script::Fail503, Script::Fail503]);
    let o = start(dir.path(), p.clone(), config(4)).await;
    let t = o
        .submit(pipeline("retry", &["code_generation"]))
        .await
        .unwrap();
    let done = o.wait_for(&t.id).await.unwrap();
    assert_eq!(done.status, TaskStatus::Completed, "{:?}", done.error);
    assert_eq!(p.calls.load(Ordering::SeqCst), 3);
    let detail = o.task_detail(&t.id).await.unwrap();
    assert_eq!(detail.steps[0].attempts, 3);
    o.shutdown().await;
}

#[tokio::test]
async fn non_retryable_errors_fail_at_once_with_their_code() {
    let dir = tempfile::tempdir().unwrap();
    let p = Scripted::new([Script::NotFound]);
    let o = start(dir.path(), p.clone(), config(4)).await;
    let t = o
        .submit(pipeline("nf", &["code_generation"]))
        .await
        .unwrap();
    let done = o.wait_for(&t.id).await.unwrap();
    assert_eq!(done.status, TaskStatus::Failed);
    assert!(
        done.error
            .as_deref()
            .unwrap()
            .starts_with("model_not_found"),
        "{:?}",
        done.error
    );
    assert_eq!(p.calls.load(Ordering::SeqCst), 1);
    o.shutdown().await;
}

#[tokio::test]
async fn repeated_failures_open_the_breaker_and_restart_resets_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = Scripted::new([Script::Fail503, Script::Fail503, Script::Fail503]);
    let o = start(dir.path(), p.clone(), config(4)).await;
    let mut request = pipeline("b", &["code_generation"]);
    request.constraints.max_agents = Some(1);
    let t = o.submit(request.clone()).await.unwrap();
    let done = o.wait_for(&t.id).await.unwrap();
    assert_eq!(done.status, TaskStatus::Failed);
    let agent = done.assigned_agents[0].clone();
    assert_eq!(
        o.agent(&agent).unwrap().status,
        sutazai_core::AgentState::Degraded
    );
    // Selection now avoids the degraded agent.
    let t2 = o.submit(request).await.unwrap();
    let done2 = o.wait_for(&t2.id).await.unwrap();
    assert_eq!(done2.status, TaskStatus::Completed);
    assert_ne!(done2.assigned_agents[0], agent);
    o.control_agent(&agent, AgentAction::Restart).unwrap();
    assert_eq!(
        o.agent(&agent).unwrap().status,
        sutazai_core::AgentState::Healthy
    );
    o.shutdown().await;
}

#[tokio::test]
async fn a_hung_call_times_out_and_the_deadline_bounds_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let p = Scripted::new([Script::Hang]);
    let o = start(dir.path(), p.clone(), config(4)).await;
    let t = o
        .submit(pipeline("hang", &["code_generation"]))
        .await
        .unwrap();
    let done = o.wait_for(&t.id).await.unwrap();
    assert_eq!(
        done.status,
        TaskStatus::Completed,
        "the retry after the timeout answers"
    );
    assert_eq!(p.calls.load(Ordering::SeqCst), 2);

    let p = Scripted::new([Script::Hang, Script::Hang, Script::Hang]);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(4);
    cfg.step_timeout = Duration::from_secs(30);
    let o2 = start(dir.path(), p.clone(), cfg).await;
    let mut request = pipeline("deadline", &["code_generation"]);
    request.constraints.estimated_duration = Some(0.2);
    let t = o2.submit(request).await.unwrap();
    let done = o2.wait_for(&t.id).await.unwrap();
    assert_eq!(done.status, TaskStatus::Failed);
    assert!(done.error.unwrap().starts_with("deadline_exceeded"));
    o.shutdown().await;
    o2.shutdown().await;
}

#[tokio::test]
async fn the_queue_runs_by_priority_and_drops_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = Arc::new(Scripted {
        delay: Some(Duration::from_millis(20)),
        ..Default::default()
    });
    let o = start(dir.path(), p.clone(), config(1)).await;
    let mut events = o.subscribe();
    let blocker = o
        .submit(pipeline("first", &["code_generation"]))
        .await
        .unwrap();
    // The blocker holds the only slot before the others arrive.
    let mut order = Vec::new();
    while order.is_empty() {
        if let Ok(sutazai_orchestrator::Event::TaskStarted { task_name, .. }) = events.recv().await
        {
            order.push(task_name);
        }
    }
    let mut ids = Vec::new();
    for (name, priority) in [
        ("low", Priority::Low),
        ("normal", Priority::Normal),
        ("critical", Priority::Critical),
        ("high", Priority::High),
    ] {
        let mut r = pipeline(name, &["code_generation"]);
        r.priority = priority;
        ids.push(o.submit(r).await.unwrap().id);
    }
    assert!(o.stats().queued_tasks >= 3);
    for id in ids.iter().chain([&blocker.id]) {
        assert_eq!(o.wait_for(id).await.unwrap().status, TaskStatus::Completed);
    }
    while let Ok(e) = events.try_recv() {
        if let sutazai_orchestrator::Event::TaskStarted { task_name, .. } = e {
            order.push(task_name);
        }
    }
    assert_eq!(order, ["first", "critical", "high", "normal", "low"]);
    o.shutdown().await;
}

#[tokio::test]
async fn a_restart_replays_finished_steps_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    // Stage 2 hangs: shut down while it is in flight.
    let p = Scripted::new([Script::Answer, Script::Hang]);
    let mut cfg = config(4);
    cfg.step_timeout = Duration::from_secs(60);
    let o = start(dir.path(), p.clone(), cfg.clone()).await;
    let t = o
        .submit(pipeline(
            "resume",
            &[
                "code_generation",
                "security_review",
                "deployment_automation",
            ],
        ))
        .await
        .unwrap();
    while p.calls.load(Ordering::SeqCst) < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // While it runs, its detail comes from memory: stage 0 done, stage 1 in flight — the
    // same records the journal holds once its writes are flushed (at shutdown).
    let live = o.task_detail(&t.id).await.unwrap().steps;
    let statuses: Vec<_> = live.iter().map(|s| (s.key.as_str(), s.status)).collect();
    assert_eq!(
        statuses,
        [
            ("stage/0", StepStatus::Completed),
            ("stage/1", StepStatus::Running)
        ]
    );
    o.shutdown().await;
    let journal = Journal::open(&dir.path().join("journal.sqlite3")).unwrap();
    assert_eq!(journal.steps(&t.id).await.unwrap(), live);
    journal.close().await;

    let p2 = Scripted::new([]);
    let o = start(dir.path(), p2.clone(), cfg).await;
    let done = o.wait_for(&t.id).await.unwrap();
    assert_eq!(done.status, TaskStatus::Completed, "{:?}", done.error);
    let traces = p2.traces.lock().unwrap().clone();
    assert_eq!(
        traces,
        [format!("{}/stage/1", t.id), format!("{}/stage/2", t.id)]
    );
    // Ended: its detail comes from the recently-ended copy (so it is still there with
    // the journal closed), the same as the journal's.
    o.shutdown().await;
    let detail = o.task_detail(&t.id).await.unwrap();
    assert_eq!(detail.steps.len(), 3);
    let journal = Journal::open(&dir.path().join("journal.sqlite3")).unwrap();
    let (task, steps) = journal.task_with_steps(&t.id).await.unwrap().unwrap();
    assert_eq!((task, steps), (detail.task, detail.steps));
    journal.close().await;
}

/// `/analytics/performance` over what ran (per agent, overall and per pattern) agrees
/// with each agent's recent record; after a restart the lifetime record comes back from
/// the journal while the recent one starts empty.
#[tokio::test]
async fn analytics_and_recent_records_follow_what_ran() {
    let dir = tempfile::tempdir().unwrap();
    // Calls in order: pipeline ok, pipeline fails (not retryable), pipeline ok, then the
    // collaborative task's single step fails.
    let p = Scripted::new([
        Script::Answer,
        Script::NotFound,
        Script::Answer,
        Script::NotFound,
    ]);
    let o = start(dir.path(), p.clone(), config(4)).await;
    let began = chrono::Utc::now();
    let mut outcomes = Vec::new();
    for (name, pattern) in [
        ("p-ok-1", CoordinationPattern::Pipeline),
        ("p-fail", CoordinationPattern::Pipeline),
        ("p-ok-2", CoordinationPattern::Pipeline),
        ("c-fail", CoordinationPattern::Collaborative),
    ] {
        let request = TaskRequest {
            coordination_pattern: pattern,
            constraints: Constraints {
                max_agents: Some(1),
                ..Default::default()
            },
            ..pipeline(name, &["code_generation"])
        };
        let t = o.submit(request).await.unwrap();
        outcomes.push(o.wait_for(&t.id).await.unwrap().status);
    }
    assert_eq!(
        outcomes,
        [
            TaskStatus::Completed,
            TaskStatus::Failed,
            TaskStatus::Completed,
            TaskStatus::Failed
        ]
    );
    assert_eq!(p.calls.load(Ordering::SeqCst), 4);

    let hour = chrono::Duration::hours(1);
    let a = o
        .analytics(Some(began - hour), Some(began + hour))
        .await
        .unwrap();
    assert_eq!(
        (a.completed_steps, a.failed_steps, a.total_steps),
        (2, 2, 4)
    );
    assert_eq!(a.average_success_rate, 0.5);
    // Each completed step took at least the provider's reported 1 ms.
    let (p50, p95) = (a.p50_response_time.unwrap(), a.p95_response_time.unwrap());
    assert!(p50 >= 0.001 && p95 >= p50, "{a:?}");
    assert_eq!(a.total_tokens, 2 * (10 + 3));
    // 2 completed tasks over a 2-hour window.
    assert_eq!(a.throughput_per_hour, Some(1.0));
    let pipeline = &a.pattern_performance["pipeline"];
    assert_eq!(
        (pipeline.completed, pipeline.failed, pipeline.cancelled),
        (2, 1, 0)
    );
    assert!((pipeline.completion_rate - 2.0 / 3.0).abs() < 1e-12);
    let d50 = pipeline.p50_duration.unwrap();
    assert!(d50 > 0.0 && pipeline.p95_duration.unwrap() >= d50);
    let collaborative = &a.pattern_performance["collaborative"];
    assert_eq!((collaborative.completed, collaborative.failed), (0, 1));
    assert_eq!(collaborative.completion_rate, 0.0);
    assert_eq!(collaborative.average_duration, None);
    assert_eq!(a.pattern_performance.len(), 2);

    // Per agent: the window's figures and the agent's recent record agree (everything ran
    // within the last five minutes, in this process).
    let agents = o.agents();
    let mut steps = 0;
    for (id, perf) in &a.agent_performance {
        let info = agents.iter().find(|i| &i.id == id).unwrap();
        let total = perf.completed + perf.failed;
        steps += total;
        assert!((perf.success_rate + perf.error_rate - 1.0).abs() < 1e-12);
        assert_eq!(
            perf.total_tokens,
            perf.prompt_tokens + perf.completion_tokens
        );
        assert_eq!(
            (info.recent.completed, info.recent.failed),
            (perf.completed, perf.failed),
            "{id}"
        );
        assert_eq!(info.recent.success_rate, Some(perf.success_rate), "{id}");
        assert_eq!(info.recent.error_rate, Some(perf.error_rate), "{id}");
        assert_eq!(info.recent.window_seconds, 300.0);
        assert_eq!(
            info.recent.average_response_time.is_some(),
            perf.completed > 0
        );
        assert_eq!(info.recent.p95_response_time.is_some(), perf.completed > 0);
        assert_eq!(info.completed_steps, perf.completed);
        assert_eq!(info.failed_steps, perf.failed);
    }
    assert_eq!(steps, 4);
    // Idle agents have an empty recent record.
    let idle = agents
        .iter()
        .find(|i| !a.agent_performance.contains_key(&i.id))
        .unwrap();
    assert_eq!((idle.recent.completed, idle.recent.failed), (0, 0));
    assert_eq!(idle.recent.success_rate, None);

    // A window after everything is empty, and without both dates there is no throughput.
    let later = o
        .analytics(Some(chrono::Utc::now() + hour), None)
        .await
        .unwrap();
    assert_eq!(later.total_steps, 0);
    assert!(later.agent_performance.is_empty() && later.pattern_performance.is_empty());
    assert_eq!(later.throughput_per_hour, None);
    assert_eq!(later.p50_response_time, None);
    o.shutdown().await;

    // After a restart the lifetime record comes back from the journal; the recent one
    // starts empty.
    let o = start(dir.path(), Scripted::new([]), config(4)).await;
    let agents = o.agents();
    let lifetime: u64 = agents
        .iter()
        .map(|i| i.completed_steps + i.failed_steps)
        .sum();
    assert_eq!(lifetime, 4);
    assert!(
        agents
            .iter()
            .all(|i| i.recent.completed + i.recent.failed == 0)
    );
    let json = serde_json::to_value(&agents[0]).unwrap();
    for key in [
        "window_seconds",
        "completed",
        "failed",
        "success_rate",
        "error_rate",
        "average_response_time",
        "p95_response_time",
    ] {
        assert!(
            json["recent"].get(key).is_some(),
            "recent.{key} missing: {json}"
        );
    }
    o.shutdown().await;
}

/// While paused, submitted tasks are journaled and wait in the queue; resuming runs them.
#[tokio::test]
async fn a_paused_orchestrator_queues_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let p = Scripted::new([]);
    let o = start(dir.path(), p.clone(), config(4)).await;
    assert!(!o.set_paused(true));
    assert!(o.is_paused() && o.stats().paused);
    let t = o
        .submit(pipeline("waits", &["code_generation"]))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(o.task(&t.id).await.unwrap().status, TaskStatus::Queued);
    assert_eq!(o.stats().queued_tasks, 1);
    assert_eq!(p.calls.load(Ordering::SeqCst), 0);
    assert!(o.set_paused(false));
    assert_eq!(
        o.wait_for(&t.id).await.unwrap().status,
        TaskStatus::Completed
    );
    assert_eq!(p.calls.load(Ordering::SeqCst), 1);
    o.shutdown().await;
}

#[tokio::test]
async fn beyond_max_pending_tasks_submissions_are_refused_not_queued() {
    let dir = tempfile::tempdir().unwrap();
    let p = Scripted::new([]);
    let o = start(
        dir.path(),
        p.clone(),
        OrchestratorConfig {
            max_pending_tasks: 3,
            ..config(1)
        },
    )
    .await;
    o.set_paused(true);
    let mut held = Vec::new();
    for i in 0..3 {
        held.push(
            o.submit(pipeline(&format!("t{i}"), &["code_generation"]))
                .await
                .unwrap(),
        );
    }
    // Many at once: none slips past the limit.
    let refused = futures::future::join_all(
        (0..20).map(|i| o.submit(pipeline(&format!("over{i}"), &["code_generation"]))),
    )
    .await;
    for answer in refused {
        match answer {
            Err(
                e @ OrchestratorError::Overloaded {
                    pending: 3,
                    limit: 3,
                },
            ) => {
                assert_eq!(e.code(), "queue_full");
                assert!(e.to_string().contains("SUTAZAI_MAX_PENDING_TASKS"), "{e}");
            }
            other => panic!("expected Overloaded, got {other:?}"),
        }
    }
    assert_eq!(o.stats().queued_tasks, 3);
    assert_eq!(
        o.tasks(TaskFilter::All, 100).await.unwrap().len(),
        3,
        "nothing refused was journaled"
    );
    // Room again once one finishes.
    o.cancel(&held[0].id).await.unwrap();
    o.submit(pipeline("after", &["code_generation"]))
        .await
        .unwrap();
    o.set_paused(false);
    for t in &held[1..] {
        assert_eq!(
            o.wait_for(&t.id).await.unwrap().status,
            TaskStatus::Completed
        );
    }
    o.shutdown().await;
}

#[tokio::test]
async fn an_outage_is_waited_out_without_using_up_attempts() {
    let dir = tempfile::tempdir().unwrap();
    // Six refused connections: the breaker (3 failures) opens, and re-opens after each
    // refused trial.
    let p = Scripted::new(std::iter::repeat_n(Script::Unreachable, 6));
    let o = start(
        dir.path(),
        p.clone(),
        OrchestratorConfig {
            max_attempts: 1,
            ..with_breaker(3, Duration::from_millis(100))
        },
    )
    .await;
    let mut request = pipeline("outage", &["code_generation"]);
    request.constraints.max_agents = Some(1);
    let t = o.submit(request).await.unwrap();
    let done = o.wait_for(&t.id).await.unwrap();
    assert_eq!(done.status, TaskStatus::Completed, "{:?}", done.error);
    assert_eq!(
        p.calls.load(Ordering::SeqCst),
        7,
        "6 refused, then answered"
    );
    let detail = o.task_detail(&t.id).await.unwrap();
    assert_eq!(detail.steps[0].attempts, 1, "the outage used no attempt");
    o.shutdown().await;
}

#[tokio::test]
async fn an_outage_longer_than_the_wait_fails_the_step_with_its_cause() {
    let dir = tempfile::tempdir().unwrap();
    let p = Scripted::new(std::iter::repeat_n(Script::Unreachable, 10_000));
    let o = start(
        dir.path(),
        p.clone(),
        OrchestratorConfig {
            outage_wait: Duration::from_millis(400),
            ..with_breaker(2, Duration::from_secs(60))
        },
    )
    .await;
    let t = o
        .submit(pipeline("long outage", &["code_generation"]))
        .await
        .unwrap();
    let done = o.wait_for(&t.id).await.unwrap();
    assert_eq!(done.status, TaskStatus::Failed);
    let error = done.error.unwrap_or_default();
    assert!(
        error.starts_with("llm_unreachable"),
        "the cause, not the open breaker: {error}"
    );
    // The breaker opened after 2 refusals; the wait then made no more calls.
    assert_eq!(p.calls.load(Ordering::SeqCst), 2);
    o.shutdown().await;
}

#[tokio::test]
async fn events_carry_no_payload_secrets_while_the_journal_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let p = Scripted::new([Script::Echo]);
    let o = start(dir.path(), p.clone(), config(1)).await;
    let mut events = o.subscribe();
    let mut request = pipeline("secretive", &["code_generation"]);
    request.constraints.max_agents = Some(1);
    request.payload = serde_json::json!({"db_password": "hunter22-secret", "rows": 3});
    let t = o.submit(request).await.unwrap();
    let done = o.wait_for(&t.id).await.unwrap();
    assert_eq!(done.status, TaskStatus::Completed, "{:?}", done.error);
    // The model got the secret and echoed it: the journal keeps the real answer.
    assert!(done.result.unwrap().to_string().contains("hunter22-secret"));
    let (mut tokens, mut completed) = (String::new(), None);
    while completed.is_none() {
        match events.recv().await.unwrap() {
            sutazai_orchestrator::Event::StepToken { text, .. } => tokens.push_str(&text),
            sutazai_orchestrator::Event::TaskCompleted { result, .. } => completed = Some(result),
            _ => {}
        }
    }
    let completed = completed.unwrap().to_string();
    assert!(
        tokens.contains("***") && !tokens.contains("hunter22-secret"),
        "{tokens}"
    );
    assert!(
        completed.contains("***") && !completed.contains("hunter22-secret"),
        "{completed}"
    );
    o.shutdown().await;
}
