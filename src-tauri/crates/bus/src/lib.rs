//! The SutazAI message bus: the spec's message model and communication patterns over one
//! of two backends that behave the same (one conformance suite, `tests/conformance.rs`):
//!
//! - **in-process** (the default): queues in this process's memory, messages passed as
//!   `Arc<Message>` without serialisation;
//! - **Redis** (`REDIS_URL`): Redis Streams with consumer groups, so several SutazAI
//!   processes on several machines share agent work. Messages cross the wire as signed
//!   (HMAC-SHA256), optionally encrypted (AES-256-GCM) and compressed (zstd) envelopes
//!   ([`envelope`]).
//!
//! # Patterns
//! - point-to-point: to an agent's inbox; competing consumers of one agent share the work;
//! - broadcast: to every agent (each agent once, however many processes serve it);
//! - pub-sub: to every subscription whose topic pattern matches (`*` one segment, final `#`
//!   any number); durable subscriptions keep their messages while their subscriber is away;
//! - request-response: [`Bus::request`] sends to an inbox and waits for the correlated
//!   [`Bus::reply`] (and optional progress updates) up to a timeout.
//!
//! # Delivery
//! Inboxes deliver critical before high before normal before low, FIFO within a level.
//! A delivery is acknowledged only after handling ([`Delivery::ack`]); a failed or abandoned
//! delivery is retried, and one not acknowledged within the visibility timeout is taken
//! back and given to another consumer. An expired message is never delivered. Messages that
//! expire, exhaust their attempts, exceed their sender's rate limit or arrive tampered with
//! go to the dead-letter queue with the reason ([`DeadLetter`]), from where they can be
//! listed, inspected, replayed and purged.

pub mod dead;
pub mod envelope;
pub mod error;
mod header;
pub mod limit;
mod memory;
mod redis_backend;
pub mod route;
mod stats;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sutazai_core::{CommunicationPattern, Message, MessageType};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

pub use dead::{DeadLetter, DeadLetterQuery, DeadReason};
pub use envelope::{Codec, MasterKey};
pub use error::BusError;
pub use limit::{RateLimit, RateLimiter};
pub use route::{Route, TopicPattern};

use memory::{MemoryAck, MemoryBus, MemorySubscription};
use redis_backend::{RedisAck, RedisBus, RedisSubscription};

/// Metadata key holding a request's correlation id (its message id) on the reply.
pub const META_CORRELATION_ID: &str = "correlation_id";
/// Metadata key holding the node a request's reply goes to.
pub const META_REPLY_TO: &str = "reply_to";
/// Messages a consuming subscription takes ahead of handling unless told otherwise.
pub const DEFAULT_PREFETCH: usize = 128;
/// How often a node announces itself.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// A node not heard from for this long is shown as not alive.
pub const NODE_ALIVE_WINDOW: Duration = Duration::from_secs(15);

/// Bus settings shared by both backends.
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// This process's id on the bus (replies come back to it).
    pub node_id: String,
    /// Deliveries of one message before it is dead-lettered.
    pub max_attempts: u32,
    /// How long a delivered, unacknowledged message stays with its consumer.
    pub visibility_timeout: Duration,
    /// How long Redis keeps messages (`MESSAGE_RETENTION_HOURS`).
    pub retention: Duration,
    /// The per-sender limit applied by [`Bus::send`]; `None` disables it.
    pub rate_limit: Option<RateLimit>,
    /// Prefix of every Redis key (processes sharing a bus share it).
    pub namespace: String,
    /// Longest a request-response caller waits when it does not say.
    pub reply_timeout: Duration,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            node_id: default_node_id(),
            max_attempts: 5,
            visibility_timeout: Duration::from_secs(30),
            retention: Duration::from_secs(168 * 3600),
            rate_limit: Some(RateLimit {
                per_second: 100.0,
                burst: 200,
            }),
            namespace: "sutazai".to_owned(),
            reply_timeout: Duration::from_secs(30),
        }
    }
}

/// `<host>-<pid>-<random>`: unique per process run.
pub fn default_node_id() -> String {
    let host = hostname();
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    let random = uuid_suffix();
    format!("{host}-{}-{random}", std::process::id())
}

fn uuid_suffix() -> String {
    let id = sutazai_core::ids::new_id();
    id.chars()
        .rev()
        .filter(char::is_ascii_hexdigit)
        .take(6)
        .collect()
}

/// The machine's host name, or `localhost`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Which messages an observer sees.
#[derive(Debug, Clone)]
pub enum Filter {
    /// What an agent receives: its inbox and broadcasts.
    Agent(String),
    /// Pub-sub messages whose topic matches a pattern.
    Topics(Vec<TopicPattern>),
    /// Everything.
    All,
}

impl Filter {
    /// Whether `message` passes.
    pub fn accepts(&self, message: &Message) -> bool {
        match self {
            Filter::All => true,
            Filter::Agent(agent) => match message.pattern {
                CommunicationPattern::Broadcast => true,
                CommunicationPattern::PointToPoint | CommunicationPattern::RequestResponse => {
                    message.recipient_id.as_deref() == Some(agent.as_str())
                }
                CommunicationPattern::PubSub => false,
            },
            Filter::Topics(patterns) => {
                message.pattern == CommunicationPattern::PubSub
                    && message
                        .topic
                        .as_deref()
                        .is_some_and(|t| route::any_match(patterns, t))
            }
        }
    }
}

/// A process on the bus (a `serve` or a `worker`), as last announced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeInfo {
    /// Its bus id.
    pub node_id: String,
    /// `serve` or `worker`.
    pub role: String,
    /// The agents it executes steps for.
    pub agents: Vec<String>,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat.
    pub last_seen: DateTime<Utc>,
    /// Messages it has handled.
    pub handled: u64,
    /// Whether it was heard from within the last 15 s (computed when listed).
    #[serde(default)]
    pub alive: bool,
}

/// Depth of one queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QueueDepth {
    /// `inbox:<agent>`, `group:<name>` or a backend-specific name.
    pub queue: String,
    /// Messages waiting to be delivered.
    pub waiting: u64,
    /// Messages delivered and not yet acknowledged.
    pub pending: u64,
}

/// Bus statistics for `/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BusStats {
    /// `in_process` or `redis`.
    pub backend: String,
    /// This process's node id.
    pub node_id: String,
    /// Messages this process published.
    pub published: u64,
    /// Messages this process received.
    pub delivered: u64,
    /// Deliveries acknowledged.
    pub acknowledged: u64,
    /// Deliveries that failed and were queued again.
    pub retried: u64,
    /// Messages this process sent to the dead-letter queue.
    pub dead_lettered: u64,
    /// Messages refused for their sender's rate limit.
    pub rate_limited: u64,
    /// Requests whose reply did not arrive in time.
    pub replies_timed_out: u64,
    /// Messages published by this process during the last minute.
    pub messages_per_minute: u64,
    /// Dead letters currently stored.
    pub dead_letters: u64,
    /// Depth of every queue.
    pub queues: Vec<QueueDepth>,
}

/// Where an accepted message went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Published {
    /// The message id.
    pub message_id: String,
    /// The queue it was appended to (`inbox:<agent>`, `broadcast`, `topic:<name>`).
    pub queue: String,
}

/// A message from a backend, before the facade's expiry check.
#[derive(Debug)]
pub(crate) struct Raw {
    pub(crate) message: Arc<Message>,
    pub(crate) attempt: u32,
    pub(crate) ack: AckHandle,
}

/// How a delivery is settled with its backend.
#[derive(Debug)]
pub(crate) enum AckHandle {
    /// Observers: nothing to settle.
    None,
    Memory(MemoryAck),
    Redis(RedisAck),
}

#[derive(Debug)]
enum Backend {
    Memory(MemoryBus),
    Redis(RedisBus),
}

/// The bus. Cheap to clone; clones share everything.
#[derive(Debug, Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    backend: Backend,
    config: BusConfig,
    limiter: Option<RateLimiter>,
    counters: stats::Counters,
    waiting: Mutex<HashMap<String, mpsc::UnboundedSender<Arc<Message>>>>,
    shutdown: CancellationToken,
}

impl Bus {
    /// An in-process bus. Must be called inside a tokio runtime (it starts the reply pump).
    pub fn in_process(config: BusConfig) -> Bus {
        let (memory, mut replies) = MemoryBus::new(
            config.node_id.clone(),
            config.visibility_timeout,
            config.max_attempts,
            config.retention,
        );
        let bus = Bus::assemble(Backend::Memory(memory), config, CancellationToken::new());
        let pump = Arc::downgrade(&bus.inner);
        let shutdown = bus.inner.shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    reply = replies.recv() => match (reply, pump.upgrade()) {
                        (Some(reply), Some(inner)) => Bus { inner }.route_reply(reply),
                        _ => break,
                    },
                }
            }
        });
        bus
    }

    /// A bus on Redis Streams at `url`. Fails if Redis cannot be reached now; once
    /// connected it reconnects by itself when Redis restarts.
    pub async fn redis(url: &str, codec: Codec, config: BusConfig) -> Result<Bus, BusError> {
        let shutdown = CancellationToken::new();
        let redis = RedisBus::connect(url, codec, &config, shutdown.clone()).await?;
        let mut replies = redis.replies().await?;
        let bus = Bus::assemble(Backend::Redis(redis), config, shutdown);
        let pump = Arc::downgrade(&bus.inner);
        let shutdown = bus.inner.shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    reply = replies.next() => match reply {
                        Some(raw) => {
                            let message = raw.message.clone();
                            if let AckHandle::Redis(ack) = raw.ack {
                                let _ = ack.ack().await;
                            }
                            match pump.upgrade() {
                                Some(inner) => Bus { inner }.route_reply(message),
                                None => break,
                            }
                        }
                        None => break,
                    },
                }
            }
        });
        Ok(bus)
    }

    fn assemble(backend: Backend, config: BusConfig, shutdown: CancellationToken) -> Bus {
        let bus = Bus::build(backend, config, shutdown);
        // Holds the bus weakly (as the reply pumps do): a bus dropped without `shutdown`
        // still goes away, and its tasks end at their next turn.
        let sampler = Arc::downgrade(&bus.inner);
        let shutdown = bus.inner.shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => match sampler.upgrade() {
                        Some(inner) => inner.counters.sample(Instant::now()),
                        None => break,
                    },
                }
            }
        });
        bus
    }

    fn build(backend: Backend, config: BusConfig, shutdown: CancellationToken) -> Bus {
        Bus {
            inner: Arc::new(Inner {
                backend,
                limiter: config.rate_limit.map(RateLimiter::new),
                config,
                counters: stats::Counters::new(),
                waiting: Mutex::new(HashMap::new()),
                shutdown,
            }),
        }
    }

    /// `in_process` or `redis`.
    pub fn backend_name(&self) -> &'static str {
        match self.inner.backend {
            Backend::Memory(_) => "in_process",
            Backend::Redis(_) => "redis",
        }
    }

    /// This process's node id.
    pub fn node_id(&self) -> &str {
        &self.inner.config.node_id
    }

    /// The settings.
    pub fn config(&self) -> &BusConfig {
        &self.inner.config
    }

    /// Stops the reply pump, heartbeats and Redis readers.
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
    }

    /// A token cancelled when the bus shuts down.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }

    /// Validates, routes and appends `message` (internal senders; no rate limit). An
    /// already expired message is dead-lettered and refused with [`BusError::Expired`].
    pub async fn publish(&self, message: Message) -> Result<(), BusError> {
        let message = Arc::new(message);
        let route = match route::route(&message) {
            Ok(route) => route,
            Err(BusError::Expired(id)) => {
                self.bury(
                    DeadReason::Expired,
                    "expired before it was sent".into(),
                    "ingress",
                    0,
                    Some((*message).clone()),
                )
                .await;
                return Err(BusError::Expired(id));
            }
            Err(e) => return Err(e),
        };
        match &self.inner.backend {
            Backend::Memory(m) => m.publish(&message, &route),
            Backend::Redis(r) => r.publish(&message, &route).await?,
        }
        self.inner.counters.on_publish();
        Ok(())
    }

    /// [`Bus::publish`] for messages from outside (the API): the sender's rate limit
    /// applies, and a message over it is dead-lettered and refused with
    /// [`BusError::RateLimited`]. Says where the message went.
    pub async fn send(&self, message: Message) -> Result<Published, BusError> {
        let queue = match route::route(&message) {
            Ok(route) => route.queue_name(),
            // Expired: `publish` dead-letters it and says so.
            Err(BusError::Expired(_)) => String::new(),
            Err(e) => return Err(e),
        };
        if let Some(limiter) = &self.inner.limiter
            && let Err(wait) = limiter.check(&message.sender_id, Instant::now())
        {
            let limit = limiter.limit();
            self.inner
                .counters
                .rate_limited
                .fetch_add(1, Ordering::Relaxed);
            let error = BusError::RateLimited {
                sender: message.sender_id.clone(),
                per_second: limit.per_second,
                burst: limit.burst,
                retry_after_ms: wait.as_millis().max(1) as u64,
            };
            self.bury(
                DeadReason::RateLimited,
                error.to_string(),
                "ingress",
                0,
                Some(message),
            )
            .await;
            return Err(error);
        }
        let message_id = message.id.clone();
        self.publish(message).await?;
        Ok(Published { message_id, queue })
    }

    /// Sends a request-response message and waits up to `timeout` for its reply.
    pub async fn request(
        &self,
        message: Message,
        timeout: Duration,
    ) -> Result<Arc<Message>, BusError> {
        self.request_with(message, timeout, |_| {}).await
    }

    /// [`Bus::request`], calling `on_progress` for each `status_update` the responder sends
    /// before its reply. Dropping the future stops waiting; a late reply is discarded.
    pub async fn request_with(
        &self,
        mut message: Message,
        timeout: Duration,
        mut on_progress: impl FnMut(&Message) + Send,
    ) -> Result<Arc<Message>, BusError> {
        if message.pattern == CommunicationPattern::PointToPoint {
            message.pattern = CommunicationPattern::RequestResponse;
        }
        if message.pattern != CommunicationPattern::RequestResponse {
            return Err(BusError::MissingRecipient("request_response"));
        }
        message.metadata.insert(
            META_CORRELATION_ID.into(),
            Value::String(message.id.clone()),
        );
        message.metadata.insert(
            META_REPLY_TO.into(),
            Value::String(self.inner.config.node_id.clone()),
        );
        let id = message.id.clone();
        let recipient = message.recipient_id.clone().unwrap_or_default();
        let (tx, mut rx) = mpsc::unbounded_channel();
        {
            let mut waiting = self.inner.waiting.lock().unwrap_or_else(|p| p.into_inner());
            if waiting.contains_key(&id) {
                return Err(BusError::DuplicateRequest(id));
            }
            waiting.insert(id.clone(), tx);
        }
        let _guard = Waiting {
            bus: self,
            id: id.clone(),
        };
        self.publish(message).await?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(reply)) if reply.message_type == MessageType::StatusUpdate => {
                    on_progress(&reply);
                }
                Ok(Some(reply)) => return Ok(reply),
                Ok(None) => return Err(BusError::Closed),
                Err(_) => {
                    self.inner
                        .counters
                        .replies_timed_out
                        .fetch_add(1, Ordering::Relaxed);
                    return Err(BusError::Timeout {
                        message_id: id,
                        recipient,
                        after: timeout,
                    });
                }
            }
        }
    }

    /// Answers `request` with `payload` (a `task_response` unless `message_type` says
    /// otherwise; `status_update` is a progress update and may be sent many times).
    pub async fn reply(
        &self,
        request: &Message,
        message_type: MessageType,
        payload: Map<String, Value>,
    ) -> Result<(), BusError> {
        // The request's own id: what its requester waits on (metadata could say anything).
        let correlation = request.id.clone();
        let Some(node) = request.metadata.get(META_REPLY_TO).and_then(Value::as_str) else {
            return Err(BusError::InvalidName {
                field: "metadata.reply_to",
                reason: format!(
                    "message {} is not a request: it has no reply_to",
                    request.id
                ),
            });
        };
        let mut metadata = Map::new();
        metadata.insert(META_CORRELATION_ID.into(), Value::String(correlation));
        let reply = Message {
            id: sutazai_core::ids::new_id(),
            sender_id: request
                .recipient_id
                .clone()
                .unwrap_or_else(|| self.inner.config.node_id.clone()),
            recipient_id: Some(request.sender_id.clone()),
            message_type,
            pattern: CommunicationPattern::RequestResponse,
            priority: request.priority,
            topic: None,
            payload,
            metadata,
            created_at: Utc::now(),
            expires_at: None,
        };
        let reply = Arc::new(reply);
        match &self.inner.backend {
            Backend::Memory(m) => m.send_reply(node, reply),
            Backend::Redis(r) => r.send_reply(node, &reply).await,
        }
    }

    fn route_reply(&self, reply: Arc<Message>) {
        let Some(correlation) = reply
            .metadata
            .get(META_CORRELATION_ID)
            .and_then(Value::as_str)
        else {
            tracing::debug!(id = %reply.id, "reply without a correlation id dropped");
            return;
        };
        let progress = reply.message_type == MessageType::StatusUpdate;
        let mut waiting = self.inner.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let sender = if progress {
            waiting.get(correlation).cloned()
        } else {
            waiting.remove(correlation)
        };
        drop(waiting);
        match sender {
            Some(tx) => {
                let _ = tx.send(reply);
            }
            // A second answer to a redelivered request, or one for a caller that gave up:
            // the first reply already decided the outcome.
            None => tracing::debug!(correlation, "reply nobody waits for dropped"),
        }
    }

    /// Consumes what `agent_id` receives: its inbox and broadcasts. Processes consuming
    /// the same agent share its messages.
    pub async fn subscribe_agent(&self, agent_id: &str) -> Result<Subscription, BusError> {
        self.subscribe_agent_prefetch(agent_id, DEFAULT_PREFETCH)
            .await
    }

    /// [`Bus::subscribe_agent`] taking at most `prefetch` messages per queue ahead of
    /// handling (Redis). Everything taken is this consumer's until settled, so a consumer
    /// that handles one message at a time should prefetch 1 and leave the rest to others.
    pub async fn subscribe_agent_prefetch(
        &self,
        agent_id: &str,
        prefetch: usize,
    ) -> Result<Subscription, BusError> {
        route::validate_id("agent_id", agent_id)?;
        let inner = match &self.inner.backend {
            Backend::Memory(m) => SubscriptionInner::Memory(m.consume_agent(agent_id, prefetch)),
            Backend::Redis(r) => {
                SubscriptionInner::Redis(r.consume_agent(agent_id, prefetch).await?)
            }
        };
        Ok(self.subscription(inner))
    }

    /// A durable topic subscription named `name`: it receives every pub-sub message whose
    /// topic matches one of `patterns`, including those published while nobody consumed
    /// it, until [`Bus::unsubscribe`]. Subscriptions sharing a name share the messages.
    pub async fn subscribe_topics<S: AsRef<str>>(
        &self,
        name: &str,
        patterns: &[S],
    ) -> Result<Subscription, BusError> {
        route::validate_id("subscription", name)?;
        let patterns = route::parse_patterns(patterns)?;
        let inner = match &self.inner.backend {
            Backend::Memory(m) => SubscriptionInner::Memory(m.consume_topics(name, patterns)),
            Backend::Redis(r) => SubscriptionInner::Redis(r.consume_topics(name, patterns).await?),
        };
        Ok(self.subscription(inner))
    }

    /// Removes the durable topic subscription `name`; returns whether it existed.
    pub async fn unsubscribe(&self, name: &str) -> Result<bool, BusError> {
        route::validate_id("subscription", name)?;
        match &self.inner.backend {
            Backend::Memory(m) => Ok(m.remove_group(name)),
            Backend::Redis(r) => r.remove_group(name).await,
        }
    }

    /// Watches messages matching `filter` from now on without consuming them (dashboards,
    /// `/ws/agent`). An observer that falls far behind skips messages.
    pub async fn observe(&self, filter: Filter) -> Result<Subscription, BusError> {
        let inner = match &self.inner.backend {
            Backend::Memory(m) => SubscriptionInner::Memory(m.observe(filter)),
            Backend::Redis(r) => SubscriptionInner::Redis(r.observe(filter).await?),
        };
        Ok(self.subscription(inner))
    }

    fn subscription(&self, inner: SubscriptionInner) -> Subscription {
        Subscription {
            inner,
            bus: self.clone(),
        }
    }

    pub(crate) async fn bury(
        &self,
        reason: DeadReason,
        detail: String,
        queue: &str,
        attempts: u32,
        message: Option<Message>,
    ) {
        self.inner
            .counters
            .dead_lettered
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(reason = reason.as_str(), queue, "{detail}");
        let letter = DeadLetter::new(reason, detail, queue, attempts, message);
        match &self.inner.backend {
            Backend::Memory(m) => m.add_dead(letter),
            Backend::Redis(r) => {
                if let Err(e) = r.add_dead(&letter).await {
                    tracing::error!(error = %e, id = %letter.id, "could not store a dead letter");
                }
            }
        }
    }

    /// Dead letters, newest first.
    pub async fn dead_letters(&self, query: &DeadLetterQuery) -> Result<Vec<DeadLetter>, BusError> {
        match &self.inner.backend {
            Backend::Memory(m) => Ok(m.list_dead(query)),
            Backend::Redis(r) => r.list_dead(query).await,
        }
    }

    /// One dead letter.
    pub async fn dead_letter(&self, id: &str) -> Result<DeadLetter, BusError> {
        let found = match &self.inner.backend {
            Backend::Memory(m) => m.get_dead(id),
            Backend::Redis(r) => r.get_dead(id).await?,
        };
        found.ok_or_else(|| BusError::DeadLetterNotFound(id.to_owned()))
    }

    /// Publishes a dead letter's message again (an expired one without its expiry) and
    /// removes it from the dead-letter queue.
    pub async fn replay(&self, id: &str) -> Result<Published, BusError> {
        let letter = self.dead_letter(id).await?;
        let Some(mut message) = letter.message else {
            return Err(BusError::NotReplayable(id.to_owned()));
        };
        if message.expires_at.is_some_and(|at| at <= Utc::now()) {
            message.expires_at = None;
        }
        let published = Published {
            message_id: message.id.clone(),
            queue: route::route(&message)?.queue_name(),
        };
        self.publish(message).await?;
        self.remove_dead_letter(id).await?;
        Ok(published)
    }

    /// Deletes one dead letter.
    pub async fn remove_dead_letter(&self, id: &str) -> Result<DeadLetter, BusError> {
        let removed = match &self.inner.backend {
            Backend::Memory(m) => m.remove_dead(id),
            Backend::Redis(r) => r.remove_dead(id).await?,
        };
        removed.ok_or_else(|| BusError::DeadLetterNotFound(id.to_owned()))
    }

    /// Deletes every dead letter; returns how many there were.
    pub async fn purge_dead_letters(&self) -> Result<u64, BusError> {
        match &self.inner.backend {
            Backend::Memory(m) => Ok(m.purge_dead()),
            Backend::Redis(r) => r.purge_dead().await,
        }
    }

    /// Statistics (queue depths and the dead-letter count are read from the backend).
    pub async fn stats(&self) -> Result<BusStats, BusError> {
        let (queues, dead_letters) = match &self.inner.backend {
            Backend::Memory(m) => (m.depths(), m.count_dead()),
            Backend::Redis(r) => (r.depths().await?, r.count_dead().await?),
        };
        let c = &self.inner.counters;
        Ok(BusStats {
            backend: self.backend_name().to_owned(),
            node_id: self.inner.config.node_id.clone(),
            published: c.published.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            acknowledged: c.acknowledged.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
            dead_lettered: c.dead_lettered.load(Ordering::Relaxed),
            rate_limited: c.rate_limited.load(Ordering::Relaxed),
            replies_timed_out: c.replies_timed_out.load(Ordering::Relaxed),
            messages_per_minute: c.per_minute(),
            dead_letters,
            queues,
        })
    }

    /// Records that message `id` was handled, so a redelivery of it can be recognised.
    pub async fn mark_handled(&self, id: &str) -> Result<(), BusError> {
        match &self.inner.backend {
            Backend::Memory(m) => {
                m.mark_handled(id);
                Ok(())
            }
            Backend::Redis(r) => r.mark_handled(id).await,
        }
    }

    /// Whether message `id` was handled already (by any process on this bus).
    pub async fn was_handled(&self, id: &str) -> Result<bool, BusError> {
        match &self.inner.backend {
            Backend::Memory(m) => Ok(m.was_handled(id)),
            Backend::Redis(r) => r.was_handled(id).await,
        }
    }

    /// Announces this node now.
    pub async fn heartbeat(&self, node: NodeInfo) -> Result<(), BusError> {
        match &self.inner.backend {
            Backend::Memory(m) => {
                m.heartbeat(node);
                Ok(())
            }
            Backend::Redis(r) => r.heartbeat(&node).await,
        }
    }

    /// Announces this node every [`HEARTBEAT_INTERVAL`] until the bus shuts down, then
    /// withdraws it. `describe` gives the current announcement.
    pub fn start_heartbeat(&self, describe: impl Fn() -> NodeInfo + Send + 'static) {
        let bus = self.clone();
        let shutdown = self.inner.shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => {
                        let mut node = describe();
                        node.last_seen = Utc::now();
                        if let Err(e) = bus.heartbeat(node).await {
                            tracing::warn!(error = %e, "bus heartbeat failed");
                        }
                    }
                }
            }
            let id = bus.inner.config.node_id.clone();
            match &bus.inner.backend {
                Backend::Memory(m) => m.remove_node(&id),
                Backend::Redis(r) => {
                    let _ = r.remove_node(&id).await;
                }
            }
        });
    }

    /// The nodes on this bus, with `alive` set from their last heartbeat.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, BusError> {
        let mut nodes = match &self.inner.backend {
            Backend::Memory(m) => m.nodes(),
            Backend::Redis(r) => r.nodes().await?,
        };
        let now = Utc::now();
        for node in &mut nodes {
            node.alive = now
                .signed_duration_since(node.last_seen)
                .to_std()
                .map_or(true, |age| age <= NODE_ALIVE_WINDOW);
        }
        Ok(nodes)
    }
}

/// Unregisters a request's reply slot when its caller stops waiting.
struct Waiting<'a> {
    bus: &'a Bus,
    id: String,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.bus
            .inner
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

#[derive(Debug)]
enum SubscriptionInner {
    Memory(MemorySubscription),
    Redis(RedisSubscription),
}

/// A consuming subscription or an observer. Yields [`Delivery`]s.
#[derive(Debug)]
pub struct Subscription {
    inner: SubscriptionInner,
    bus: Bus,
}

impl Subscription {
    /// The next delivery; `None` when the bus shut down. Expired messages are
    /// dead-lettered here and never returned.
    pub async fn next(&mut self) -> Option<Delivery> {
        loop {
            let raw = match &mut self.inner {
                SubscriptionInner::Memory(s) => s.next().await?,
                SubscriptionInner::Redis(s) => s.next().await?,
            };
            if let Some(delivery) = self.admit(raw).await {
                return Some(delivery);
            }
        }
    }

    /// A delivery that is ready now, without waiting (in-process backend; on Redis, one
    /// already fetched).
    pub async fn try_next(&mut self) -> Option<Delivery> {
        loop {
            let raw = match &mut self.inner {
                SubscriptionInner::Memory(s) => s.try_next()?,
                SubscriptionInner::Redis(s) => s.try_next()?,
            };
            if let Some(delivery) = self.admit(raw).await {
                return Some(delivery);
            }
        }
    }

    async fn admit(&self, raw: Raw) -> Option<Delivery> {
        let bus = &self.bus;
        if raw.message.expires_at.is_some_and(|at| at <= Utc::now()) {
            bus.inner
                .counters
                .dead_lettered
                .fetch_add(1, Ordering::Relaxed);
            let detail = format!(
                "expired at {} before delivery",
                raw.message
                    .expires_at
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default()
            );
            match raw.ack {
                AckHandle::None => {}
                AckHandle::Memory(ack) => ack.bury(DeadReason::Expired, detail),
                AckHandle::Redis(ack) => {
                    if let Err(e) = ack.bury(DeadReason::Expired, detail, raw.attempt).await {
                        tracing::warn!(error = %e, "could not dead-letter an expired message");
                    }
                }
            }
            return None;
        }
        bus.inner.counters.delivered.fetch_add(1, Ordering::Relaxed);
        Some(Delivery {
            message: raw.message,
            attempt: raw.attempt,
            ack: raw.ack,
            bus: bus.clone(),
        })
    }
}

/// One delivered message. Settle it with [`Delivery::ack`] after handling it, or
/// [`Delivery::fail`]; dropping it unsettled gives it back (in-process at once, on Redis
/// after the visibility timeout).
#[derive(Debug)]
pub struct Delivery {
    /// The message.
    pub message: Arc<Message>,
    /// 1 for the first delivery, 2 for the first redelivery, …
    pub attempt: u32,
    ack: AckHandle,
    bus: Bus,
}

impl Delivery {
    /// Handling succeeded: the message is removed from its queue.
    pub async fn ack(mut self) -> Result<(), BusError> {
        let ack = std::mem::replace(&mut self.ack, AckHandle::None);
        let counters = &self.bus.inner.counters;
        match ack {
            AckHandle::None => Ok(()),
            AckHandle::Memory(a) => {
                a.ack();
                counters.acknowledged.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            AckHandle::Redis(a) => {
                a.ack().await?;
                counters.acknowledged.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        }
    }

    /// Handling failed: the message is delivered again, or dead-lettered once it has
    /// used up its attempts.
    pub async fn fail(mut self, why: &str) -> Result<(), BusError> {
        let ack = std::mem::replace(&mut self.ack, AckHandle::None);
        let counters = &self.bus.inner.counters;
        let max = self.bus.inner.config.max_attempts;
        if self.attempt >= max {
            counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
        } else {
            counters.retried.fetch_add(1, Ordering::Relaxed);
        }
        match ack {
            AckHandle::None => Ok(()),
            AckHandle::Memory(a) => {
                a.fail(why);
                Ok(())
            }
            AckHandle::Redis(a) => a.fail(&self.message, self.attempt, why).await,
        }
    }

    /// Keeps the message with this consumer for another visibility timeout (call it
    /// periodically during long handling).
    pub async fn extend(&self) -> Result<(), BusError> {
        match &self.ack {
            AckHandle::None => Ok(()),
            AckHandle::Memory(a) => {
                a.extend();
                Ok(())
            }
            AckHandle::Redis(a) => a.extend().await,
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if let AckHandle::Memory(a) = &self.ack {
            a.fail("dropped without acknowledgement");
        }
        // Redis: the entry stays pending and is re-claimed after the visibility timeout.
    }
}
