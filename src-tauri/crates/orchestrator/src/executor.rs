//! The executor: consumes agents' inboxes and runs the steps it finds there on an LLM
//! provider, answering each with streamed text and its outcome (see [`dispatch`]).
//!
//! `serve` runs one for its local agents (`SUTAZAI_LOCAL_AGENTS`), `sutazai worker` runs one
//! for the agents it was given. Several executors for one agent — in this process or on
//! other machines sharing a Redis bus — compete for its steps, so the work spreads.
//!
//! Guarantees: a step request is acknowledged only after its reply was sent; a redelivered
//! request whose id is marked handled is acknowledged without running the model again
//! (the requester also keeps only the first reply per request); a long model call keeps
//! extending its delivery so no other executor takes it over while it runs; a cancel
//! notice aborts the call. Each agent runs at most its `max_concurrency` steps at once here,
//! and takes no new message while at the limit, so another executor can.
//!
//! [`dispatch`]: crate::dispatch

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use sutazai_bus::{Bus, Delivery, Filter, TopicPattern};
use sutazai_core::MessageType;
use sutazai_llm::Provider;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::dispatch::{CANCEL_TOPIC, StepReply, StepRequest};

/// How often streamed text is forwarded to the requester.
const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// One agent an executor serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedAgent {
    /// Agent id.
    pub id: String,
    /// Steps it may run at once in this executor.
    pub max_concurrency: u32,
}

/// A running executor.
#[derive(Debug, Clone)]
pub struct Executor {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    bus: Bus,
    providers: HashMap<String, Arc<dyn Provider>>,
    /// Grows when an agent is defined while running ([`Executor::serve`]).
    agents: Mutex<Vec<ServedAgent>>,
    running: Mutex<HashMap<String, CancellationToken>>,
    handled: AtomicU64,
    failed: AtomicU64,
    shutdown: CancellationToken,
    /// Cancelled when running steps must stop too (after the grace period).
    abort: CancellationToken,
    tracker: TaskTracker,
}

impl Executor {
    /// Starts consuming the inboxes of `agents` until `shutdown` is cancelled.
    pub fn start(
        bus: Bus,
        agents: Vec<ServedAgent>,
        providers: HashMap<String, Arc<dyn Provider>>,
        shutdown: CancellationToken,
    ) -> Executor {
        let executor = Executor {
            shared: Arc::new(Shared {
                bus,
                providers,
                agents: Mutex::new(agents.clone()),
                running: Mutex::new(HashMap::new()),
                handled: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                shutdown,
                abort: CancellationToken::new(),
                tracker: TaskTracker::new(),
            }),
        };
        for agent in agents {
            let shared = executor.shared.clone();
            executor
                .shared
                .tracker
                .spawn(async move { consume(shared, agent).await });
        }
        let shared = executor.shared.clone();
        executor
            .shared
            .tracker
            .spawn(async move { watch_cancels(shared).await });
        executor
    }

    /// The agents served.
    pub fn agents(&self) -> Vec<String> {
        self.shared
            .agents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|a| a.id.clone())
            .collect()
    }

    /// Starts consuming `agent`'s inbox too (an agent defined while running); `false`
    /// when it is already served or the executor is stopping.
    pub fn serve(&self, agent: ServedAgent) -> bool {
        if self.shared.shutdown.is_cancelled() {
            return false;
        }
        {
            let mut agents = self.shared.agents.lock().unwrap_or_else(|p| p.into_inner());
            if agents.iter().any(|a| a.id == agent.id) {
                return false;
            }
            agents.push(agent.clone());
        }
        let shared = self.shared.clone();
        self.shared
            .tracker
            .spawn(async move { consume(shared, agent).await });
        true
    }

    /// Steps answered so far (completed or failed).
    pub fn handled(&self) -> u64 {
        self.shared.handled.load(Ordering::Relaxed)
    }

    /// Steps whose model call failed.
    pub fn failed(&self) -> u64 {
        self.shared.failed.load(Ordering::Relaxed)
    }

    /// Steps running now.
    pub fn running(&self) -> usize {
        self.shared
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Waits until every consumer stopped (after the shutdown token was cancelled) and
    /// every running step ended, or `grace` passed.
    /// Steps still running then are aborted and handed back to the bus unanswered, for
    /// another executor; returns whether everything had finished in time.
    pub async fn stopped(&self, grace: Duration) -> bool {
        self.shared.tracker.close();
        let finished = tokio::time::timeout(grace, self.shared.tracker.wait())
            .await
            .is_ok();
        if !finished {
            self.shared.abort.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(5), self.shared.tracker.wait()).await;
        }
        finished
    }
}

async fn consume(shared: Arc<Shared>, agent: ServedAgent) {
    let mut backoff = Duration::from_millis(100);
    let mut subscription = loop {
        // One message per free slot: what this executor cannot run now stays on the bus
        // for another executor instead of waiting here.
        match shared.bus.subscribe_agent_prefetch(&agent.id, 1).await {
            Ok(s) => break s,
            Err(e) => {
                tracing::warn!(agent_id = %agent.id, error = %e, "cannot consume the agent's inbox yet");
                tokio::select! {
                    _ = shared.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    };
    let slots = Arc::new(Semaphore::new(agent.max_concurrency.max(1) as usize));
    loop {
        let permit = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let delivery = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            delivery = subscription.next() => match delivery {
                Some(d) => d,
                None => return,
            },
        };
        let worker = shared.clone();
        shared.tracker.spawn(async move {
            handle(worker, delivery).await;
            drop(permit);
        });
    }
}

async fn handle(shared: Arc<Shared>, delivery: Delivery) {
    let message = delivery.message.clone();
    let bus = &shared.bus;
    // Only a request someone waits for is run: a step request sent through the API (no
    // `reply_to`, which the API refuses to pass through) would run the model for nobody.
    let awaited = message.metadata.contains_key(sutazai_bus::META_REPLY_TO);
    let step = match (
        message.message_type,
        StepRequest::from_payload(&message.payload),
    ) {
        (MessageType::TaskRequest, Some(step)) if awaited => step,
        _ => {
            // Announcements and free-form messages: delivered (observers on /ws/agent see
            // them); the executor itself has nothing to run.
            tracing::debug!(id = %message.id, kind = ?message.message_type, "message for an agent acknowledged");
            let _ = delivery.ack().await;
            return;
        }
    };
    match bus.was_handled(&message.id).await {
        Ok(true) => {
            tracing::info!(id = %message.id, step = %step.step, "step request redelivered after it was answered; not run again");
            let _ = delivery.ack().await;
            return;
        }
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(error = %e, "cannot check whether a step was handled; retrying later");
            let _ = delivery.fail(&e.to_string()).await;
            return;
        }
    }
    let node = bus.node_id().to_owned();
    let reply = match shared.providers.get(&step.provider).cloned() {
        None => StepReply::Failed {
            code: "provider_not_found".into(),
            message: format!(
                "node {node} has no provider named `{}` for agent `{}`",
                step.provider, step.agent_id
            ),
            retryable: false,
            node: node.clone(),
        },
        Some(provider) => match run_step(&shared, &delivery, &step, provider).await {
            Some(reply) => reply,
            None => {
                // Aborted by a stopping executor: no answer, so the request goes back to
                // the bus for another executor (or this one after a restart).
                let _ = delivery.fail("the executor stopped during the step").await;
                return;
            }
        },
    };
    if let StepReply::Failed { .. } = reply {
        shared.failed.fetch_add(1, Ordering::Relaxed);
    }
    match bus
        .reply(&message, MessageType::TaskResponse, reply.to_payload())
        .await
    {
        Ok(()) => {
            if let Err(e) = bus.mark_handled(&message.id).await {
                tracing::warn!(error = %e, "could not mark a step handled");
            }
            shared.handled.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = delivery.ack().await {
                tracing::warn!(error = %e, "could not acknowledge a step request");
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, step = %step.step, "could not send a step reply; the request will be delivered again");
            let _ = delivery.fail(&e.to_string()).await;
        }
    }
}

async fn run_step(
    shared: &Arc<Shared>,
    delivery: &Delivery,
    step: &StepRequest,
    provider: Arc<dyn Provider>,
) -> Option<StepReply> {
    let message = &delivery.message;
    let bus = &shared.bus;
    let node = bus.node_id().to_owned();
    let cancel = CancellationToken::new();
    shared
        .running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(message.id.clone(), cancel.clone());
    let buffer = Mutex::new(String::new());
    let sink = |text: &str| {
        buffer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_str(text);
    };
    let flush = || async {
        let text = std::mem::take(&mut *buffer.lock().unwrap_or_else(|p| p.into_inner()));
        if !text.is_empty() {
            let mut payload = Map::new();
            payload.insert("text".into(), Value::String(text));
            if let Err(e) = bus.reply(message, MessageType::StatusUpdate, payload).await {
                tracing::debug!(error = %e, "could not forward streamed text");
            }
        }
    };
    let extend_every = bus.config().visibility_timeout / 3;
    let mut extended = Instant::now();
    let chat = provider.chat(&step.request, Some(&sink));
    tokio::pin!(chat);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + FLUSH_EVERY, FLUSH_EVERY);
    let result = loop {
        tokio::select! {
            result = &mut chat => break Outcome::Done(result),
            // Shutdown is not here: a stopping executor takes no new steps but lets the
            // running ones finish until it is aborted (see `Executor::stopped`).
            _ = cancel.cancelled() => break Outcome::Withdrawn,
            _ = shared.abort.cancelled() => break Outcome::Aborted,
            _ = tick.tick() => {
                flush().await;
                if extended.elapsed() >= extend_every {
                    extended = Instant::now();
                    if let Err(e) = delivery.extend().await {
                        tracing::debug!(error = %e, "could not extend a step delivery");
                    }
                }
            }
        }
    };
    flush().await;
    shared
        .running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&message.id);
    match result {
        Outcome::Done(result) => Some(StepReply::from_result(result, &node)),
        Outcome::Withdrawn => Some(StepReply::Failed {
            code: "cancelled".into(),
            message: format!("step {} was withdrawn by its requester", step.step),
            retryable: false,
            node,
        }),
        Outcome::Aborted => None,
    }
}

/// How a model call ended.
enum Outcome {
    Done(Result<sutazai_llm::ChatResponse, sutazai_llm::LlmError>),
    /// Its requester withdrew it.
    Withdrawn,
    /// The executor stopped.
    Aborted,
}

/// Aborts running steps whose requester withdrew them.
async fn watch_cancels(shared: Arc<Shared>) {
    let Ok(pattern) = TopicPattern::parse(CANCEL_TOPIC) else {
        return;
    };
    let mut notices = match shared.bus.observe(Filter::Topics(vec![pattern])).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch step cancel notices");
            return;
        }
    };
    loop {
        let notice = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            notice = notices.next() => match notice {
                Some(n) => n,
                None => return,
            },
        };
        if let Some(id) = notice
            .message
            .payload
            .get("correlation_id")
            .and_then(Value::as_str)
            && let Some(token) = shared
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(id)
        {
            token.cancel();
        }
    }
}
