//! The Redis backend: the bus on Redis Streams with consumer groups, so that several
//! processes (nodes) on several machines share one bus.
//!
//! # Key layout
//! Every key starts with the namespace `{ns}` ([`BusConfig::namespace`]):
//!
//! | key | type | holds |
//! |-----|------|-------|
//! | `{ns}:inbox:{agent}:{level}` | stream | agent inbox, level 0 critical, 1 high, 2 normal, 3 low |
//! | `{ns}:broadcast:{level}` | stream | broadcasts, same levels |
//! | `{ns}:topics` | stream | every pub-sub message, field `t` = topic |
//! | `{ns}:reply:{node}` | stream | request-response replies for one node |
//! | `{ns}:inboxes` | set | agents that have an inbox (for depths and observers) |
//! | `{ns}:dead` | hash | dead-letter id → JSON dead letter, its message sealed as a base64 envelope (`sealed`) |
//! | `{ns}:dead:order` | sorted set | dead-letter id, scored by when it died (ms) |
//! | `{ns}:handled:{id}` | string | "message handled" marker, expires after the retention |
//! | `{ns}:nodes` | hash | node id → JSON [`NodeInfo`] |
//!
//! A stream entry carries the envelope ([`crate::envelope`]) in field `e`, and on an entry
//! queued again after a failed delivery, the attempts made so far in field `a`.
//!
//! # Retention
//! Each process's trimmer task trims every stream of the namespace (the inboxes listed in
//! `{ns}:inboxes`, the broadcast and topics streams, the reply streams of the known nodes)
//! with `XTRIM … MINID ~ <now − retention>` at start and then every quarter of the
//! retention, at most every minute; dead letters are never trimmed. (Trimming in every
//! `XADD` instead cost the server about 7% of its throughput for a check that only matters
//! once a minute.)
//!
//! # Consumer groups
//! An agent `A` is one consumer group, `agent:{A}`, on its four inbox streams (created at
//! `0`, so that messages sent before anyone consumed are delivered) and on the four
//! broadcast streams (created at `$`), read together by one `XREADGROUP`: every process
//! serving `A` competes for its messages and each broadcast reaches `A` once. A durable
//! topic subscription `N` is the group `sub:{N}` on the topics stream (created at `$`); it
//! filters by its patterns locally and acknowledges the entries that do not match at once.
//!
//! # Delivery
//! Each consuming subscription has a reader task with its own connection (a blocking read
//! would stall every other command on a shared one). It reads only while its subscriber
//! waits in `next()` and nothing is buffered, at most [`READ_COUNT`] entries per stream at a
//! time, and hands them out most urgent first (critical before low; FIFO by stream id within
//! a level, broadcast level k ranking with inbox level k). Everything read is *pending* to
//! this consumer until it is settled:
//! - `ack`: `XACK` (acknowledgements made while one is on its way are sent together, one
//!   `XACK` per stream, by the bus's acknowledger task; `ack` does not wait for Redis'
//!   answer: a lost acknowledgement leaves the entry pending, to be re-claimed and
//!   delivered again, which consumers recognise by the message id);
//! - `fail`: past `max_attempts`, dead-lettered (`max_attempts`) and acknowledged; otherwise
//!   queued again: for an inbox entry, `XADD` of the same envelope with `a = attempt` to the
//!   same stream and `XACK` of the old id in one transaction; for a broadcast entry, the same
//!   into the agent's own inbox stream of that level (the broadcast stream is shared by
//!   every agent, which must not all see the retry); for a topic entry (the topics stream is
//!   shared by every subscription), the entry is made claimable at once (`XCLAIM … IDLE`);
//! - `extend`: `XCLAIM … JUSTID` by the same consumer, which resets its idle time;
//! - dropped unsettled: it stays pending and is re-claimed after the visibility timeout.
//!
//! The attempt of a delivery is `a` (0 when absent) plus the entry's delivery count.
//! Every `visibility/2`, and at start, a reader re-claims (`XAUTOCLAIM`) entries pending
//! longer than the visibility timeout to any consumer, and dead-letters those past
//! `max_attempts`. A subscription dropped with entries still buffered (read, never handed
//! out) makes them claimable at once; an entry buffered longer than the visibility timeout
//! is not handed out (it may have been re-claimed elsewhere). Envelopes that do not decode (tampered, unsigned,
//! garbage) are dead-lettered with the reason and acknowledged, never delivered.
//!
//! # Observers and replies
//! Observers `XREAD` (no group) from the streams' last ids at the time they start; the
//! reply reader of a node does the same on its reply stream and deletes what it read.
//!
//! # Failures
//! Commands go through one auto-reconnecting multiplexed connection. `publish` retries a
//! failed `XADD` for up to 10 s (a retry after an ambiguous failure may store a message
//! twice: consumers are idempotent by message id). A reader that fails logs once, backs off
//! (100 ms doubling to 5 s), reconnects, re-creates its groups and goes on where it was.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::Utc;
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::{
    AsyncConnectionConfig, Client, ErrorKind, RedisError, RedisResult, ServerErrorKind, Value,
};
use sutazai_core::{Message, Priority};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::dead::{DeadLetter, DeadLetterQuery, DeadReason};
use crate::envelope::{Codec, EncodeError, RejectReason, Rejected};
use crate::error::BusError;
use crate::route::{Route, TopicPattern, any_match};
use crate::{AckHandle, BusConfig, Filter, NodeInfo, QueueDepth, Raw};

/// Entries read per stream by one `XREADGROUP` (all of them become pending to the reader).
const READ_COUNT: usize = 128;
/// Entries read per stream by one observer or reply `XREAD`.
const OBSERVE_COUNT: usize = 128;
/// Entries re-claimed per stream by one `XAUTOCLAIM`.
const CLAIM_COUNT: usize = 32;
/// Longest a blocking read waits, so that readers notice demand, timers and shutdown.
const BLOCK: Duration = Duration::from_millis(1000);
/// Connecting to Redis.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A command's reply (a blocking read gets `BLOCK` on top).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `publish` keeps retrying a failed `XADD`.
const PUBLISH_RETRY: Duration = Duration::from_secs(10);
/// Most acknowledgements sent in one round trip.
const ACK_BATCH: usize = 1024;
/// How long acknowledgements keep retrying.
const SETTLE_RETRY: Duration = Duration::from_secs(2);
/// First and longest pause between reconnection attempts.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Nodes not heard from for this long are removed from the node list.
const NODE_EXPIRY: chrono::TimeDelta = chrono::TimeDelta::hours(24);
/// Longest pause between two retention trims.
const TRIM_EVERY_MAX: Duration = Duration::from_secs(60);
/// Streams trimmed per round trip.
const TRIM_BATCH: usize = 256;
/// Raw envelope bytes kept in a dead letter.
const DEAD_RAW_MAX: usize = 64 * 1024;

/// The keys of one namespace.
#[derive(Debug)]
struct Keys {
    ns: String,
}

impl Keys {
    fn inbox(&self, agent: &str, level: usize) -> String {
        format!("{}:inbox:{agent}:{level}", self.ns)
    }
    fn broadcast(&self, level: usize) -> String {
        format!("{}:broadcast:{level}", self.ns)
    }
    fn topics(&self) -> String {
        format!("{}:topics", self.ns)
    }
    fn reply(&self, node: &str) -> String {
        format!("{}:reply:{node}", self.ns)
    }
    fn inboxes(&self) -> String {
        format!("{}:inboxes", self.ns)
    }
    fn dead(&self) -> String {
        format!("{}:dead", self.ns)
    }
    fn dead_order(&self) -> String {
        format!("{}:dead:order", self.ns)
    }
    fn handled(&self, id: &str) -> String {
        format!("{}:handled:{id}", self.ns)
    }
    fn nodes(&self) -> String {
        format!("{}:nodes", self.ns)
    }
}

/// Priority levels, each its own stream (0 critical … 3 low).
const LEVELS: usize = 4;

fn level(priority: Priority) -> usize {
    match priority {
        Priority::Critical => 0,
        Priority::High => 1,
        Priority::Normal => 2,
        Priority::Low => 3,
    }
}

/// The Redis backend. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct RedisBus {
    shared: Arc<Shared>,
}

struct Shared {
    client: Client,
    /// Commands (not blocking reads): one multiplexed, auto-reconnecting connection.
    manager: ConnectionManager,
    /// The URL without its password, for messages.
    url: String,
    codec: Codec,
    keys: Keys,
    node_id: String,
    max_attempts: u32,
    visibility: Duration,
    retention: Duration,
    shutdown: CancellationToken,
    /// Agents this process already added to `{ns}:inboxes`.
    known_inboxes: Mutex<HashSet<String>>,
    next_consumer: AtomicU64,
    /// Bumped whenever entries were made claimable at once; readers then claim early.
    claim_epoch: AtomicU64,
    /// To the acknowledger task, which sends concurrent acknowledgements together.
    acks: mpsc::UnboundedSender<AckRequest>,
}

/// Trims the namespace's streams to the retention at start, then every quarter of the
/// retention (at most every [`TRIM_EVERY_MAX`]). Ends when the bus shuts down or is gone.
async fn trimmer(shared: Weak<Shared>, shutdown: CancellationToken) {
    let every = match shared.upgrade() {
        Some(shared) => (shared.retention / 4).clamp(Duration::from_millis(100), TRIM_EVERY_MAX),
        None => return,
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let Some(shared) = shared.upgrade() else {
            break;
        };
        match shared.trim().await {
            Ok(0) => {}
            Ok(removed) => tracing::debug!(removed, "streams trimmed to the retention"),
            Err(e) => {
                tracing::warn!(error = %e, "trimming streams to the retention failed; trying again later")
            }
        }
    }
}

/// One `XACK` waiting for the acknowledger task.
struct AckRequest {
    stream: Arc<str>,
    group: Arc<str>,
    id: String,
    done: oneshot::Sender<Result<(), BusError>>,
}

/// Sends the acknowledgements that arrive while the previous batch is on its way in one
/// pipeline (one `XACK` per stream and group), so that concurrent acknowledgements cost one
/// round trip and a few commands instead of one each. Ends when the bus shuts down or is
/// gone; acknowledgements then go straight to Redis.
async fn acknowledger(
    shared: Weak<Shared>,
    mut requests: mpsc::UnboundedReceiver<AckRequest>,
    shutdown: CancellationToken,
) {
    let mut batch: Vec<AckRequest> = Vec::new();
    loop {
        let first = tokio::select! {
            () = shutdown.cancelled() => {
                // Acknowledgements already promised go out before the bus stops.
                while let Ok(request) = requests.try_recv() {
                    batch.push(request);
                }
                if batch.is_empty() {
                    break;
                }
                batch.swap_remove(0)
            }
            first = requests.recv() => match first {
                Some(first) => first,
                None => break,
            },
        };
        batch.push(first);
        while batch.len() < ACK_BATCH {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let Some(shared) = shared.upgrade() else {
            break;
        };
        let mut groups: Vec<(&str, &str, Vec<&str>)> = Vec::new();
        for r in &batch {
            match groups
                .iter_mut()
                .find(|(stream, group, _)| *stream == &*r.stream && *group == &*r.group)
            {
                Some((_, _, ids)) => ids.push(&r.id),
                None => groups.push((&r.stream, &r.group, vec![r.id.as_str()])),
            }
        }
        let mut pipe = redis::pipe();
        for (stream, group, ids) in &groups {
            pipe.cmd("XACK").arg(*stream).arg(*group).arg(ids).ignore();
        }
        drop(groups);
        let result = shared
            .run::<()>("acknowledging messages", &pipe, SETTLE_RETRY)
            .await;
        drop(shared);
        if let Err(e) = &result {
            tracing::warn!(error = %e, count = batch.len(), "acknowledgements lost; the messages will be re-claimed and delivered again");
        }
        for request in batch.drain(..) {
            let _ = request.done.send(result.clone());
        }
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("url", &self.url)
            .field("namespace", &self.keys.ns)
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// `redis://user:secret@host` → `redis://user:***@host` (and no query string).
fn redact(url: &str) -> String {
    let url = url.split('?').next().unwrap_or(url);
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let (scheme, rest) = url.split_at(scheme_end + 3);
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rfind('@') {
        Some(at) => {
            let (userinfo, host) = authority.split_at(at);
            let masked = match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None => userinfo.to_owned(),
            };
            format!("{scheme}{masked}{host}{path}")
        }
        None => url.to_owned(),
    }
}

/// Whether retrying the same command later may succeed (Redis away, restarting, loading).
fn transient(error: &RedisError) -> bool {
    !matches!(
        error.kind(),
        ErrorKind::Server(
            ServerErrorKind::ResponseError
                | ServerErrorKind::ExecAbort
                | ServerErrorKind::NoScript
                | ServerErrorKind::CrossSlot
                | ServerErrorKind::NotBusy
                | ServerErrorKind::NoSub
                | ServerErrorKind::NoPerm
        ) | ErrorKind::Extension
            | ErrorKind::UnexpectedReturnType
            | ErrorKind::InvalidClientConfig
            | ErrorKind::AuthenticationFailed
            | ErrorKind::Parse
    )
}

fn is_code(error: &RedisError, code: &str) -> bool {
    error.code() == Some(code)
}

fn now_ms() -> u64 {
    u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Appends `XADD key * [t topic] e envelope [a attempts]` to `pipe`.
fn xadd(
    pipe: &mut redis::Pipeline,
    key: &str,
    envelope: &[u8],
    topic: Option<&str>,
    attempts: Option<u32>,
) {
    pipe.add_command(xadd_cmd(key, envelope, topic, attempts));
}

/// `XADD key * [t topic] e envelope [a attempts]`.
fn xadd_cmd(key: &str, envelope: &[u8], topic: Option<&str>, attempts: Option<u32>) -> redis::Cmd {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(key).arg("*");
    if let Some(topic) = topic {
        cmd.arg("t").arg(topic);
    }
    cmd.arg("e").arg(envelope);
    if let Some(a) = attempts {
        cmd.arg("a").arg(a);
    }
    cmd
}

/// What [`Shared::run`] and [`Shared::run_cmd`] send.
#[derive(Clone, Copy)]
enum Request<'a> {
    Pipe(&'a redis::Pipeline),
    Cmd(&'a redis::Cmd),
}

impl Shared {
    /// The oldest id kept by retention trimming, `None` when nothing is old enough yet.
    fn min_id(&self) -> Option<u64> {
        now_ms()
            .checked_sub(millis(self.retention))
            .filter(|min| *min > 0)
    }

    /// Trims every stream of the namespace to the retention; returns the entries removed.
    async fn trim(&self) -> Result<u64, BusError> {
        let Some(min) = self.min_id() else {
            return Ok(0);
        };
        let mut listing = redis::pipe();
        listing
            .cmd("SMEMBERS")
            .arg(self.keys.inboxes())
            .cmd("HKEYS")
            .arg(self.keys.nodes());
        let (agents, nodes): (Vec<String>, Vec<String>) = self
            .run("listing streams to trim", &listing, SETTLE_RETRY)
            .await?;
        let mut streams: Vec<String> = (0..LEVELS).map(|l| self.keys.broadcast(l)).collect();
        streams.push(self.keys.topics());
        streams.push(self.keys.reply(&self.node_id));
        streams.extend(
            nodes
                .iter()
                .filter(|n| **n != self.node_id)
                .map(|n| self.keys.reply(n)),
        );
        for agent in &agents {
            streams.extend((0..LEVELS).map(|l| self.keys.inbox(agent, l)));
        }
        let mut removed = 0;
        for chunk in streams.chunks(TRIM_BATCH) {
            let mut pipe = redis::pipe();
            for stream in chunk {
                pipe.cmd("XTRIM").arg(stream).arg("MINID").arg("~").arg(min);
            }
            let counts: Vec<u64> = self
                .run("trimming streams to the retention", &pipe, SETTLE_RETRY)
                .await?;
            removed += counts.iter().sum::<u64>();
        }
        Ok(removed)
    }

    fn conn(&self) -> ConnectionManager {
        self.manager.clone()
    }

    fn unavailable(&self, what: &str, error: &RedisError) -> BusError {
        BusError::Unavailable(format!("Redis at {}: {what} failed: {error}", self.url))
    }

    /// Runs `pipe`, retrying transient failures until `budget` has passed or the bus shuts
    /// down.
    async fn run<T: redis::FromRedisValue>(
        &self,
        what: &str,
        pipe: &redis::Pipeline,
        budget: Duration,
    ) -> Result<T, BusError> {
        self.retrying(what, budget, Request::Pipe(pipe)).await
    }

    /// `run` for a single command (cheaper to send than a pipeline of one).
    async fn run_cmd<T: redis::FromRedisValue>(
        &self,
        what: &str,
        cmd: &redis::Cmd,
        budget: Duration,
    ) -> Result<T, BusError> {
        self.retrying(what, budget, Request::Cmd(cmd)).await
    }

    async fn retrying<T: redis::FromRedisValue>(
        &self,
        what: &str,
        budget: Duration,
        request: Request<'_>,
    ) -> Result<T, BusError> {
        let deadline = Instant::now() + budget;
        let mut pause = Duration::from_millis(50);
        let mut conn = self.conn();
        loop {
            let result = match request {
                Request::Pipe(pipe) => pipe.query_async::<T>(&mut conn).await,
                Request::Cmd(cmd) => cmd.query_async::<T>(&mut conn).await,
            };
            match result {
                Ok(value) => return Ok(value),
                Err(error) => {
                    // Redis may have lost its data: add inboxes to the set again.
                    lock(&self.known_inboxes).clear();
                    let now = Instant::now();
                    if !transient(&error) || now + pause > deadline || self.shutdown.is_cancelled()
                    {
                        return Err(self.unavailable(what, &error));
                    }
                    tracing::debug!(error = %error, what, "Redis command failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// One command, no retry.
    async fn query<T: redis::FromRedisValue>(
        &self,
        what: &str,
        cmd: &redis::Cmd,
    ) -> Result<T, BusError> {
        cmd.query_async(&mut self.conn())
            .await
            .map_err(|e| self.unavailable(what, &e))
    }

    fn encode(&self, message: &Message) -> Result<Vec<u8>, BusError> {
        self.codec.encode(message).map_err(|error| match error {
            EncodeError::TooLarge { .. } => BusError::InvalidName {
                field: "payload",
                reason: error.to_string(),
            },
            other => {
                BusError::Unavailable(format!("could not encode message {}: {other}", message.id))
            }
        })
    }

    /// Stores a dead letter. Its message is kept as an envelope (signed, and encrypted when
    /// the bus encrypts), never as clear JSON: the dead-letter queue must not bypass the
    /// bus's encryption, and a replay must not sign whatever someone wrote into Redis.
    async fn add_dead(&self, letter: &DeadLetter) -> Result<(), BusError> {
        let sealed = match &letter.message {
            Some(message) => Some(BASE64.encode(self.encode(message)?)),
            None => None,
        };
        let mut stored = letter.clone();
        stored.message = None;
        let unserializable = |e: serde_json::Error| {
            BusError::Unavailable(format!(
                "could not serialize dead letter {}: {e}",
                letter.id
            ))
        };
        let mut value = serde_json::to_value(&stored).map_err(unserializable)?;
        if let (Some(sealed), serde_json::Value::Object(map)) = (sealed, &mut value) {
            map.insert(SEALED_FIELD.into(), serde_json::Value::String(sealed));
        }
        let json = serde_json::to_string(&value).map_err(unserializable)?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("HSET")
            .arg(self.keys.dead())
            .arg(&letter.id)
            .arg(json)
            .ignore()
            .cmd("ZADD")
            .arg(self.keys.dead_order())
            .arg(letter.dead_at.timestamp_millis())
            .arg(&letter.id)
            .ignore();
        self.run::<()>("storing a dead letter", &pipe, SETTLE_RETRY)
            .await
    }

    /// Makes pending entries claimable by any consumer at once: their idle time is set past
    /// the visibility timeout and their delivery count to `deliveries` (so that the claim
    /// counts the next delivery, not this one twice). Readers of this process claim early.
    async fn release(&self, entries: &[Released<'_>]) -> Result<(), BusError> {
        if entries.is_empty() {
            return Ok(());
        }
        let idle = millis(self.visibility).saturating_add(1).min(now_ms());
        let mut pipe = redis::pipe();
        for e in entries {
            pipe.cmd("XCLAIM")
                .arg(e.stream)
                .arg(e.group)
                .arg(e.consumer)
                .arg(0)
                .arg(e.id)
                .arg("IDLE")
                .arg(idle)
                .arg("RETRYCOUNT")
                .arg(e.deliveries)
                .arg("JUSTID")
                .ignore();
        }
        let done = self
            .run::<()>("releasing pending entries", &pipe, SETTLE_RETRY)
            .await;
        self.claim_epoch.fetch_add(1, Ordering::Relaxed);
        done
    }

    fn consumer_name(&self) -> String {
        let n = self.next_consumer.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.node_id)
    }

    /// A connection of its own for a blocking reader.
    async fn dedicated(&self) -> RedisResult<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(BLOCK + RESPONSE_TIMEOUT));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    fn remember_inbox(&self, agent: &str) {
        let mut known = lock(&self.known_inboxes);
        if known.len() > 100_000 {
            known.clear();
        }
        known.insert(agent.to_owned());
    }
}

/// One entry made claimable by [`Shared::release`].
/// What releasing `acks` (taken, never handed out) needs: their deliveries undone.
fn released(acks: &[RedisAck]) -> Vec<Released<'_>> {
    acks.iter()
        .filter_map(|ack| match &ack.inner {
            AckInner::Entry(e) => Some(Released {
                stream: &e.stream,
                group: &e.group,
                consumer: &e.consumer,
                id: &e.id,
                deliveries: e.deliveries.saturating_sub(1),
            }),
            AckInner::Reply => None,
        })
        .collect()
}

struct Released<'a> {
    stream: &'a str,
    group: &'a str,
    consumer: &'a str,
    id: &'a str,
    deliveries: u32,
}

impl RedisBus {
    pub(crate) async fn connect(
        url: &str,
        codec: Codec,
        config: &BusConfig,
        shutdown: CancellationToken,
    ) -> Result<RedisBus, BusError> {
        let shown = redact(url);
        let client = Client::open(url)
            .map_err(|e| BusError::Unavailable(format!("invalid Redis URL {shown}: {e}")))?;
        let unreachable =
            |e: RedisError| BusError::Unavailable(format!("cannot reach Redis at {shown}: {e}"));
        // Fail fast: one attempt, not the manager's reconnection schedule.
        let probe = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(CONNECT_TIMEOUT));
        let mut probe = client
            .get_multiplexed_async_connection_with_config(&probe)
            .await
            .map_err(unreachable)?;
        redis::cmd("PING")
            .query_async::<()>(&mut probe)
            .await
            .map_err(unreachable)?;
        drop(probe);
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(3)
            .set_max_delay(Duration::from_secs(1));
        let manager = ConnectionManager::new_with_config(client.clone(), manager_config)
            .await
            .map_err(unreachable)?;
        let (acks, ack_requests) = mpsc::unbounded_channel();
        let bus = RedisBus {
            shared: Arc::new(Shared {
                client,
                manager,
                url: shown.clone(),
                codec,
                keys: Keys {
                    ns: config.namespace.clone(),
                },
                node_id: config.node_id.clone(),
                max_attempts: config.max_attempts.max(1),
                visibility: config.visibility_timeout.max(Duration::from_millis(100)),
                retention: config.retention,
                shutdown,
                known_inboxes: Mutex::new(HashSet::new()),
                next_consumer: AtomicU64::new(1),
                claim_epoch: AtomicU64::new(0),
                acks,
            }),
        };
        tokio::spawn(acknowledger(
            Arc::downgrade(&bus.shared),
            ack_requests,
            bus.shared.shutdown.clone(),
        ));
        tokio::spawn(trimmer(
            Arc::downgrade(&bus.shared),
            bus.shared.shutdown.clone(),
        ));
        Ok(bus)
    }

    /// This node's reply reader.
    pub(crate) async fn replies(&self) -> Result<RedisSubscription, BusError> {
        let key = self.shared.keys.reply(&self.shared.node_id);
        let last = start_ids(&self.shared, std::slice::from_ref(&key)).await?;
        let last = last.into_iter().next().unwrap_or_else(|| "0-0".to_owned());
        let mode = Mode::Replies(ReplyReader {
            key,
            last,
            read: Vec::new(),
        });
        self.start_reader(mode, None).await
    }

    pub(crate) async fn publish(
        &self,
        message: &Arc<Message>,
        route: &Route<'_>,
    ) -> Result<(), BusError> {
        const WHAT: &str = "publishing a message";
        let s = &self.shared;
        let envelope = s.encode(message)?;
        let xadd = match route {
            Route::Inbox { agent, priority } => {
                let xadd = xadd_cmd(
                    &s.keys.inbox(agent, level(*priority)),
                    &envelope,
                    None,
                    None,
                );
                if !lock(&s.known_inboxes).contains(*agent) {
                    // The first message to this inbox from this process also lists it.
                    let mut pipe = redis::pipe();
                    pipe.add_command(xadd).ignore();
                    pipe.cmd("SADD").arg(s.keys.inboxes()).arg(agent).ignore();
                    s.run::<()>(WHAT, &pipe, PUBLISH_RETRY).await?;
                    s.remember_inbox(agent);
                    return Ok(());
                }
                xadd
            }
            Route::Broadcast { priority } => {
                xadd_cmd(&s.keys.broadcast(level(*priority)), &envelope, None, None)
            }
            Route::Topic(topic) => xadd_cmd(&s.keys.topics(), &envelope, Some(topic), None),
        };
        s.run_cmd::<()>(WHAT, &xadd, PUBLISH_RETRY).await
    }

    pub(crate) async fn send_reply(
        &self,
        node: &str,
        reply: &Arc<Message>,
    ) -> Result<(), BusError> {
        let s = &self.shared;
        let envelope = s.encode(reply)?;
        let mut pipe = redis::pipe();
        xadd(&mut pipe, &s.keys.reply(node), &envelope, None, None);
        pipe.ignore();
        s.run::<()>("sending a reply", &pipe, PUBLISH_RETRY).await
    }

    pub(crate) async fn consume_agent(
        &self,
        agent: &str,
        prefetch: usize,
    ) -> Result<RedisSubscription, BusError> {
        let s = &self.shared;
        let mut streams = Vec::with_capacity(8);
        for l in 0..LEVELS {
            streams.push(GroupStream::new(
                s.keys.inbox(agent, l),
                StreamKind::Inbox,
                "0",
            ));
        }
        for l in 0..LEVELS {
            let retry = s.keys.inbox(agent, l);
            streams.push(GroupStream::new(
                s.keys.broadcast(l),
                StreamKind::Broadcast(retry.into()),
                "$",
            ));
        }
        let group = format!("agent:{agent}");
        create_groups(&mut s.conn(), &group, &streams)
            .await
            .map_err(|e| s.unavailable("creating consumer groups", &e))?;
        let mut pipe = redis::pipe();
        pipe.cmd("SADD").arg(s.keys.inboxes()).arg(agent).ignore();
        s.run::<()>("registering an inbox", &pipe, Duration::ZERO)
            .await?;
        s.remember_inbox(agent);
        let mode = Mode::Group(GroupReader::new(
            s,
            group,
            format!("inbox:{agent}"),
            streams,
            None,
            prefetch,
        ));
        self.start_reader(mode, Some(s.visibility)).await
    }

    pub(crate) async fn consume_topics(
        &self,
        name: &str,
        patterns: Vec<TopicPattern>,
    ) -> Result<RedisSubscription, BusError> {
        let s = &self.shared;
        let streams = vec![GroupStream::new(s.keys.topics(), StreamKind::Topics, "$")];
        let group = format!("sub:{name}");
        create_groups(&mut s.conn(), &group, &streams)
            .await
            .map_err(|e| s.unavailable("creating a consumer group", &e))?;
        let mode = Mode::Group(GroupReader::new(
            s,
            group,
            format!("group:{name}"),
            streams,
            Some(patterns),
            READ_COUNT,
        ));
        self.start_reader(mode, Some(s.visibility)).await
    }

    pub(crate) async fn remove_group(&self, name: &str) -> Result<bool, BusError> {
        let s = &self.shared;
        let mut cmd = redis::cmd("XGROUP");
        cmd.arg("DESTROY")
            .arg(s.keys.topics())
            .arg(format!("sub:{name}"));
        match cmd.query_async::<i64>(&mut s.conn()).await {
            Ok(n) => Ok(n > 0),
            // No topics stream yet: no group either.
            Err(e) if !transient(&e) => Ok(false),
            Err(e) => Err(s.unavailable("removing a subscription", &e)),
        }
    }

    pub(crate) async fn observe(&self, filter: Filter) -> Result<RedisSubscription, BusError> {
        let s = &self.shared;
        let mut keys = Vec::new();
        let inbox_keys = |agent: &str| {
            (0..LEVELS)
                .map(|l| s.keys.inbox(agent, l))
                .collect::<Vec<_>>()
        };
        match &filter {
            Filter::Agent(agent) => {
                keys.extend(inbox_keys(agent));
                keys.extend((0..LEVELS).map(|l| s.keys.broadcast(l)));
            }
            Filter::Topics(_) => keys.push(s.keys.topics()),
            Filter::All => {
                keys.extend((0..LEVELS).map(|l| s.keys.broadcast(l)));
                keys.push(s.keys.topics());
                let mut cmd = redis::cmd("SMEMBERS");
                cmd.arg(s.keys.inboxes());
                let mut agents: Vec<String> = s.query("listing inboxes", &cmd).await?;
                agents.sort();
                for agent in &agents {
                    keys.extend(inbox_keys(agent));
                }
            }
        }
        let last = start_ids(s, &keys).await?;
        let mode = Mode::Observe(ObserveReader { keys, last, filter });
        self.start_reader(mode, None).await
    }

    async fn start_reader(
        &self,
        mode: Mode,
        stale_after: Option<Duration>,
    ) -> Result<RedisSubscription, BusError> {
        let s = &self.shared;
        let conn = s
            .dedicated()
            .await
            .map_err(|e| s.unavailable("opening a reader connection", &e))?;
        let feed = Arc::new(Feed {
            state: Mutex::new(FeedState::default()),
            to_consumer: Notify::new(),
            to_reader: Notify::new(),
            stale_after,
        });
        let stop = s.shutdown.child_token();
        let reader = Reader {
            shared: s.clone(),
            feed: feed.clone(),
            stop: stop.clone(),
            conn: Some(conn),
            mode,
        };
        tokio::spawn(reader.run());
        Ok(RedisSubscription { feed, stop })
    }

    pub(crate) async fn add_dead(&self, letter: &DeadLetter) -> Result<(), BusError> {
        self.shared.add_dead(letter).await
    }

    pub(crate) async fn list_dead(
        &self,
        query: &DeadLetterQuery,
    ) -> Result<Vec<DeadLetter>, BusError> {
        let s = &self.shared;
        let mut out = Vec::new();
        if query.limit == 0 {
            return Ok(out);
        }
        let chunk = if query.reason.is_some() {
            query.limit.saturating_mul(4).clamp(64, 1024)
        } else {
            query.limit.min(1024)
        };
        let mut start = 0usize;
        loop {
            let mut range = redis::cmd("ZREVRANGE");
            range
                .arg(s.keys.dead_order())
                .arg(start)
                .arg(start + chunk - 1);
            let ids: Vec<String> = s.query("listing dead letters", &range).await?;
            if ids.is_empty() {
                return Ok(out);
            }
            let mut get = redis::cmd("HMGET");
            get.arg(s.keys.dead()).arg(&ids);
            let letters: Vec<Option<String>> = s.query("reading dead letters", &get).await?;
            for json in letters.into_iter().flatten() {
                let Some(letter) = s.parse_dead(&json) else {
                    continue;
                };
                if query.reason.is_none_or(|r| r == letter.reason) {
                    out.push(letter);
                    if out.len() >= query.limit {
                        return Ok(out);
                    }
                }
            }
            if ids.len() < chunk {
                return Ok(out);
            }
            start += chunk;
        }
    }

    pub(crate) async fn get_dead(&self, id: &str) -> Result<Option<DeadLetter>, BusError> {
        let s = &self.shared;
        let mut cmd = redis::cmd("HGET");
        cmd.arg(s.keys.dead()).arg(id);
        let json: Option<String> = s.query("reading a dead letter", &cmd).await?;
        Ok(json.as_deref().and_then(|j| s.parse_dead(j)))
    }

    pub(crate) async fn remove_dead(&self, id: &str) -> Result<Option<DeadLetter>, BusError> {
        let s = &self.shared;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("HGET")
            .arg(s.keys.dead())
            .arg(id)
            .cmd("HDEL")
            .arg(s.keys.dead())
            .arg(id)
            .ignore()
            .cmd("ZREM")
            .arg(s.keys.dead_order())
            .arg(id)
            .ignore();
        let (json,): (Option<String>,) = s
            .run("removing a dead letter", &pipe, Duration::ZERO)
            .await?;
        Ok(json.as_deref().and_then(|j| s.parse_dead(j)))
    }

    pub(crate) async fn purge_dead(&self) -> Result<u64, BusError> {
        let s = &self.shared;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("HLEN")
            .arg(s.keys.dead())
            .cmd("DEL")
            .arg(s.keys.dead())
            .arg(s.keys.dead_order())
            .ignore();
        let (count,): (u64,) = s.run("purging dead letters", &pipe, Duration::ZERO).await?;
        Ok(count)
    }

    pub(crate) async fn count_dead(&self) -> Result<u64, BusError> {
        let s = &self.shared;
        let mut cmd = redis::cmd("HLEN");
        cmd.arg(s.keys.dead());
        s.query("counting dead letters", &cmd).await
    }

    pub(crate) async fn depths(&self) -> Result<Vec<QueueDepth>, BusError> {
        let s = &self.shared;
        let mut members = redis::cmd("SMEMBERS");
        members.arg(s.keys.inboxes());
        let mut agents: Vec<String> = s.query("listing inboxes", &members).await?;
        agents.sort();
        let mut pipe = redis::pipe();
        for agent in &agents {
            for l in 0..LEVELS {
                let key = s.keys.inbox(agent, l);
                pipe.cmd("XINFO").arg("GROUPS").arg(&key);
                pipe.cmd("XLEN").arg(&key);
            }
        }
        pipe.cmd("XINFO").arg("GROUPS").arg(s.keys.topics());
        pipe.ignore_errors();
        let results: Vec<RedisResult<Value>> = pipe
            .query_async(&mut s.conn())
            .await
            .map_err(|e| s.unavailable("reading queue depths", &e))?;
        let mut results = results.into_iter();
        let mut out = Vec::with_capacity(agents.len() + 1);
        for agent in &agents {
            let group = format!("agent:{agent}");
            let mut depth = QueueDepth {
                queue: format!("inbox:{agent}"),
                waiting: 0,
                pending: 0,
            };
            for _ in 0..LEVELS {
                let groups = results
                    .next()
                    .and_then(Result::ok)
                    .map(parse_groups)
                    .unwrap_or_default();
                let len = results
                    .next()
                    .and_then(Result::ok)
                    .and_then(|v| as_u64(&v))
                    .unwrap_or(0);
                match groups.into_iter().find(|g| g.name == group) {
                    Some(g) => {
                        depth.waiting += g.lag.unwrap_or(0);
                        depth.pending += g.pending;
                    }
                    // Nobody consumed yet: the group will start at the beginning.
                    None => depth.waiting += len,
                }
            }
            out.push(depth);
        }
        let topic_groups = results
            .next()
            .and_then(Result::ok)
            .map(parse_groups)
            .unwrap_or_default();
        for g in topic_groups {
            if let Some(name) = g.name.strip_prefix("sub:") {
                out.push(QueueDepth {
                    queue: format!("group:{name}"),
                    waiting: g.lag.unwrap_or(0),
                    pending: g.pending,
                });
            }
        }
        out.sort_by(|a, b| a.queue.cmp(&b.queue));
        Ok(out)
    }

    pub(crate) async fn mark_handled(&self, id: &str) -> Result<(), BusError> {
        let s = &self.shared;
        let seconds = s.retention.as_secs().max(1);
        let mut cmd = redis::cmd("SET");
        cmd.arg(s.keys.handled(id)).arg(1).arg("EX").arg(seconds);
        s.query::<()>("marking a message handled", &cmd).await
    }

    pub(crate) async fn was_handled(&self, id: &str) -> Result<bool, BusError> {
        let s = &self.shared;
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(s.keys.handled(id));
        let n: i64 = s.query("checking a handled marker", &cmd).await?;
        Ok(n > 0)
    }

    pub(crate) async fn heartbeat(&self, node: &NodeInfo) -> Result<(), BusError> {
        let s = &self.shared;
        let json = serde_json::to_string(node)
            .map_err(|e| BusError::Unavailable(format!("could not serialize node info: {e}")))?;
        let mut cmd = redis::cmd("HSET");
        cmd.arg(s.keys.nodes()).arg(&node.node_id).arg(json);
        s.query::<()>("announcing this node", &cmd).await
    }

    pub(crate) async fn nodes(&self) -> Result<Vec<NodeInfo>, BusError> {
        let s = &self.shared;
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(s.keys.nodes());
        let entries: Vec<(String, String)> = s.query("listing nodes", &cmd).await?;
        let oldest = Utc::now() - NODE_EXPIRY;
        let mut nodes = Vec::with_capacity(entries.len());
        let mut gone = Vec::new();
        for (id, json) in entries {
            match serde_json::from_str::<NodeInfo>(&json) {
                Ok(node) if node.last_seen < oldest => gone.push(id),
                Ok(node) => nodes.push(node),
                Err(e) => tracing::debug!(node = %id, error = %e, "unreadable node entry skipped"),
            }
        }
        if !gone.is_empty() {
            let mut del = redis::cmd("HDEL");
            del.arg(s.keys.nodes()).arg(&gone);
            s.query::<()>("removing stale nodes", &del).await?;
        }
        nodes.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        Ok(nodes)
    }

    pub(crate) async fn remove_node(&self, node_id: &str) -> Result<(), BusError> {
        let s = &self.shared;
        let mut cmd = redis::cmd("HDEL");
        cmd.arg(s.keys.nodes()).arg(node_id);
        s.query::<()>("removing a node", &cmd).await
    }
}

/// Field of a stored dead letter holding its message's envelope (base64).
const SEALED_FIELD: &str = "sealed";

impl Shared {
    /// Reads a stored dead letter; its message only from the verified envelope (a clear
    /// `message` in Redis is ignored), so what a replay publishes is what the bus sealed.
    fn parse_dead(&self, json: &str) -> Option<DeadLetter> {
        let mut value: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| tracing::debug!(error = %e, "unreadable dead letter skipped"))
            .ok()?;
        let sealed = value
            .as_object_mut()
            .and_then(|map| {
                map.remove("message");
                map.remove(SEALED_FIELD)
            })
            .and_then(|v| v.as_str().map(str::to_owned));
        let mut letter: DeadLetter = serde_json::from_value(value)
            .map_err(|e| tracing::debug!(error = %e, "unreadable dead letter skipped"))
            .ok()?;
        if let Some(sealed) = sealed {
            match BASE64
                .decode(sealed.as_bytes())
                .map_err(|e| e.to_string())
                .and_then(|bytes| self.codec.decode(&bytes).map_err(|r| r.to_string()))
            {
                Ok(message) => letter.message = Some(message),
                Err(why) => {
                    letter.detail = format!(
                        "{} (its stored message failed verification and cannot be replayed: {why})",
                        letter.detail
                    );
                }
            }
        }
        Some(letter)
    }
}

/// `XGROUP CREATE … MKSTREAM` on every stream; an existing group is fine.
async fn create_groups(
    conn: &mut (impl ConnectionLike + Send),
    group: &str,
    streams: &[GroupStream],
) -> RedisResult<()> {
    let mut pipe = redis::pipe();
    for s in streams {
        pipe.cmd("XGROUP")
            .arg("CREATE")
            .arg(&*s.key)
            .arg(group)
            .arg(s.start)
            .arg("MKSTREAM");
    }
    pipe.ignore_errors();
    let results: Vec<RedisResult<Value>> = pipe.query_async(conn).await?;
    for result in results {
        if let Err(e) = result
            && !is_code(&e, "BUSYGROUP")
        {
            return Err(e);
        }
    }
    Ok(())
}

/// The id of the last entry of each stream ("0-0" for an empty or missing one): where an
/// observer starts reading so that it sees exactly what is added from now on.
async fn start_ids(shared: &Shared, keys: &[String]) -> Result<Vec<String>, BusError> {
    let mut pipe = redis::pipe();
    for key in keys {
        pipe.cmd("XREVRANGE")
            .arg(key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1);
    }
    let replies: Vec<Value> = shared
        .run("reading stream positions", &pipe, Duration::ZERO)
        .await?;
    let mut ids: Vec<String> = replies
        .into_iter()
        .map(|reply| {
            into_items(reply)
                .into_iter()
                .find_map(parse_entry)
                .map_or_else(|| "0-0".to_owned(), |e| e.id)
        })
        .collect();
    ids.resize(keys.len(), "0-0".to_owned());
    Ok(ids)
}

// ---------------------------------------------------------------------------------------
// Reply parsing (RESP2 arrays; RESP3 maps accepted too).

fn into_bytes(value: Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        Value::VerbatimString { text, .. } => Some(text.into_bytes()),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        Value::Okay => Some(b"OK".to_vec()),
        _ => None,
    }
}

fn into_string(value: Value) -> Option<String> {
    into_bytes(value).and_then(|b| String::from_utf8(b).ok())
}

fn as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Int(i) => u64::try_from(*i).ok(),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

fn into_items(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) | Value::Set(items) => items,
        Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => Vec::new(),
    }
}

fn into_pairs(value: Value) -> Vec<(Value, Value)> {
    match value {
        Value::Map(pairs) => pairs,
        other => {
            let mut items = into_items(other).into_iter();
            let mut pairs = Vec::new();
            while let (Some(k), Some(v)) = (items.next(), items.next()) {
                pairs.push((k, v));
            }
            pairs
        }
    }
}

/// A stream id as a sortable pair.
fn id_key(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

/// One stream entry, with the fields the bus uses.
#[derive(Debug, Default)]
struct Entry {
    id: String,
    envelope: Option<Vec<u8>>,
    topic: Option<String>,
    /// Field `a`: attempts made before the entry was queued again.
    attempts: u32,
}

/// `[id, [field, value, …]]`; `None` for a deleted entry (`[id, nil]`) or garbage.
fn parse_entry(value: Value) -> Option<Entry> {
    let mut items = into_items(value).into_iter();
    let id = into_string(items.next()?)?;
    let fields = items.next()?;
    if matches!(fields, Value::Nil) {
        return None;
    }
    let mut entry = Entry {
        id,
        ..Entry::default()
    };
    for (k, v) in into_pairs(fields) {
        match into_bytes(k).as_deref() {
            Some(b"e") => entry.envelope = into_bytes(v),
            Some(b"t") => entry.topic = into_string(v),
            Some(b"a") => {
                entry.attempts = as_u64(&v).and_then(|a| u32::try_from(a).ok()).unwrap_or(0)
            }
            _ => {}
        }
    }
    Some(entry)
}

/// An `XREAD`/`XREADGROUP` reply: `(stream key, entries)` per stream.
fn parse_read(value: Value) -> Vec<(String, Vec<Entry>)> {
    let streams: Vec<(Value, Value)> = match value {
        Value::Map(pairs) => pairs,
        other => into_items(other)
            .into_iter()
            .filter_map(|s| {
                let mut parts = into_items(s).into_iter();
                Some((parts.next()?, parts.next()?))
            })
            .collect(),
    };
    streams
        .into_iter()
        .filter_map(|(key, entries)| {
            let key = into_string(key)?;
            let entries = into_items(entries)
                .into_iter()
                .filter_map(parse_entry)
                .collect();
            Some((key, entries))
        })
        .collect()
}

/// One consumer group as `XINFO GROUPS` describes it.
#[derive(Debug, Default)]
struct GroupInfo {
    name: String,
    pending: u64,
    lag: Option<u64>,
}

fn parse_groups(value: Value) -> Vec<GroupInfo> {
    into_items(value)
        .into_iter()
        .map(|group| {
            let mut info = GroupInfo::default();
            for (k, v) in into_pairs(group) {
                match into_string(k).as_deref() {
                    Some("name") => info.name = into_string(v).unwrap_or_default(),
                    Some("pending") => info.pending = as_u64(&v).unwrap_or(0),
                    Some("lag") => info.lag = as_u64(&v),
                    _ => {}
                }
            }
            info
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Subscriptions: a buffer shared by the subscriber and its reader task.

#[derive(Debug)]
struct Feed {
    state: Mutex<FeedState>,
    /// Reader → subscriber: something was buffered, or the feed closed.
    to_consumer: Notify,
    /// Subscriber → reader: it waits for a delivery.
    to_reader: Notify,
    /// Buffered group entries older than this may have been re-claimed elsewhere: skipped
    /// (they stay pending and are re-claimed).
    stale_after: Option<Duration>,
}

#[derive(Debug, Default)]
struct FeedState {
    items: VecDeque<(Instant, Raw)>,
    /// The subscriber is waiting in `next()`.
    wanted: bool,
    closed: bool,
}

impl Feed {
    fn lock(&self) -> MutexGuard<'_, FeedState> {
        lock(&self.state)
    }

    /// The reader should read: the subscriber waits and nothing is buffered. (Reading
    /// ahead was measured: no faster, and a subscriber that stops calling `next()` — busy,
    /// or stuck holding a delivery — must not go on taking or re-claiming entries another
    /// consumer could handle.)
    fn wants_more(&self) -> bool {
        let state = self.lock();
        state.wanted && state.items.is_empty() && !state.closed
    }

    fn pop(&self, state: &mut FeedState) -> Option<Raw> {
        while let Some((read_at, raw)) = state.items.pop_front() {
            match self.stale_after {
                Some(after) if read_at.elapsed() >= after => {
                    tracing::debug!(id = %raw.message.id, "buffered delivery went stale; left to re-claim");
                }
                _ => return Some(raw),
            }
        }
        None
    }

    fn push(&self, batch: Vec<Raw>) {
        if batch.is_empty() {
            return;
        }
        let now = Instant::now();
        self.lock()
            .items
            .extend(batch.into_iter().map(|raw| (now, raw)));
        self.to_consumer.notify_one();
    }

    /// Closes the feed and returns what was never handed out.
    fn close(&self) -> Vec<Raw> {
        let leftovers = {
            let mut state = self.lock();
            state.closed = true;
            state.items.drain(..).map(|(_, raw)| raw).collect()
        };
        self.to_consumer.notify_one();
        leftovers
    }
}

/// Resets the "subscriber waits" flag when `next()` returns or is dropped.
struct Wanting<'a>(&'a Feed);

impl Drop for Wanting<'_> {
    fn drop(&mut self) {
        self.0.lock().wanted = false;
    }
}

/// A consuming subscription, an observer or the reply reader. Dropping it stops its reader;
/// what it read but never handed out becomes claimable by the group's other consumers.
#[derive(Debug)]
pub(crate) struct RedisSubscription {
    feed: Arc<Feed>,
    stop: CancellationToken,
}

impl Drop for RedisSubscription {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl RedisSubscription {
    /// The next delivery; `None` once the bus shut down.
    pub(crate) async fn next(&mut self) -> Option<Raw> {
        let feed = &*self.feed;
        loop {
            let notified = feed.to_consumer.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let _wanting = {
                let mut state = feed.lock();
                if let Some(raw) = feed.pop(&mut state) {
                    return Some(raw);
                }
                if state.closed {
                    return None;
                }
                state.wanted = true;
                Wanting(feed)
            };
            feed.to_reader.notify_one();
            notified.await;
        }
    }

    /// A delivery already read, without waiting.
    pub(crate) fn try_next(&mut self) -> Option<Raw> {
        let feed = &*self.feed;
        let mut state = feed.lock();
        feed.pop(&mut state)
    }
}

// ---------------------------------------------------------------------------------------
// Reader tasks.

/// What a stream of a consumer group is, and where a failed entry of it is queued again.
#[derive(Debug, Clone)]
enum StreamKind {
    /// An agent inbox: retried in the same stream.
    Inbox,
    /// A broadcast stream: retried in the agent's inbox stream of the same level.
    Broadcast(Arc<str>),
    /// The topics stream: retried by making the entry claimable at once.
    Topics,
}

#[derive(Debug)]
struct GroupStream {
    key: Arc<str>,
    kind: StreamKind,
    /// Where the group starts when it is created.
    start: &'static str,
    /// The `XAUTOCLAIM` cursor.
    cursor: String,
}

impl GroupStream {
    fn new(key: String, kind: StreamKind, start: &'static str) -> GroupStream {
        GroupStream {
            key: key.into(),
            kind,
            start,
            cursor: "0-0".to_owned(),
        }
    }
}

#[derive(Debug)]
struct GroupReader {
    group: Arc<str>,
    consumer: Arc<str>,
    /// The queue name dead letters and logs use (`inbox:A`, `group:N`).
    queue: Arc<str>,
    streams: Vec<GroupStream>,
    /// Topic subscriptions: the patterns entries must match.
    patterns: Option<Vec<TopicPattern>>,
    /// Entries read (or claimed) per stream at a time: everything read is pending to this
    /// consumer, so a consumer that handles few at once should read few.
    prefetch: usize,
    next_claim: Instant,
    claim_epoch: u64,
    /// The groups must be created again (after a reconnection).
    recreate: bool,
    /// The topic group was destroyed (unsubscribed): do not bring it back.
    removed: bool,
}

impl GroupReader {
    fn new(
        shared: &Shared,
        group: String,
        queue: String,
        streams: Vec<GroupStream>,
        patterns: Option<Vec<TopicPattern>>,
        prefetch: usize,
    ) -> GroupReader {
        GroupReader {
            prefetch: prefetch.clamp(1, READ_COUNT),
            group: group.into(),
            consumer: shared.consumer_name().into(),
            queue: queue.into(),
            streams,
            patterns,
            next_claim: Instant::now(),
            claim_epoch: shared.claim_epoch.load(Ordering::Relaxed),
            recreate: false,
            removed: false,
        }
    }
}

#[derive(Debug)]
struct ObserveReader {
    keys: Vec<String>,
    last: Vec<String>,
    filter: Filter,
}

#[derive(Debug)]
struct ReplyReader {
    key: String,
    last: String,
    /// Ids read last time: deleted with the next read.
    read: Vec<String>,
}

#[derive(Debug)]
enum Mode {
    Group(GroupReader),
    Observe(ObserveReader),
    Replies(ReplyReader),
}

/// Exponential backoff with one warning per run of failures.
#[derive(Debug)]
struct Backoff {
    delay: Duration,
    failing: bool,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            delay: BACKOFF_MIN,
            failing: false,
        }
    }

    fn failed(&mut self, what: &str, error: &RedisError) -> Duration {
        if self.failing {
            tracing::debug!(reader = what, error = %error, "Redis reader still failing");
        } else {
            tracing::warn!(reader = what, error = %error, "Redis reader failed; reconnecting");
            self.failing = true;
        }
        let delay = self.delay;
        self.delay = (self.delay * 2).min(BACKOFF_MAX);
        delay
    }

    fn succeeded(&mut self, what: &str) {
        if self.failing {
            tracing::info!(reader = what, "Redis reader reconnected");
        }
        self.failing = false;
        self.delay = BACKOFF_MIN;
    }
}

struct Reader {
    shared: Arc<Shared>,
    feed: Arc<Feed>,
    stop: CancellationToken,
    conn: Option<MultiplexedConnection>,
    mode: Mode,
}

/// A decoded (or refused) entry on its way into the buffer.
struct Fetched {
    stream: usize,
    entry: Entry,
    /// The entry's delivery count (1 for a fresh read).
    deliveries: u32,
}

impl Reader {
    fn name(&self) -> String {
        match &self.mode {
            Mode::Group(g) => format!("{} ({})", g.queue, g.consumer),
            Mode::Observe(_) => "observer".to_owned(),
            Mode::Replies(r) => r.key.clone(),
        }
    }

    async fn run(mut self) {
        let name = self.name();
        let mut backoff = Backoff::new();
        let stop = self.stop.clone();
        'outer: loop {
            // Wait until the subscriber waits for something and nothing is buffered.
            loop {
                let notified = self.feed.to_reader.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if stop.is_cancelled() {
                    break 'outer;
                }
                if self.feed.wants_more() {
                    break;
                }
                tokio::select! {
                    () = stop.cancelled() => break 'outer,
                    () = &mut notified => {}
                }
            }
            let result = match self.mode {
                // A group read is never cut short: what Redis delivers must reach the
                // buffer, from where it is handed out or released.
                Mode::Group(_) => self.step().await,
                _ => tokio::select! {
                    () = stop.cancelled() => break 'outer,
                    result = self.step() => result,
                },
            };
            match result {
                Ok(batch) => {
                    backoff.succeeded(&name);
                    if let Mode::Group(g) = &mut self.mode {
                        // A removed topic group may have been subscribed again.
                        g.removed = false;
                    }
                    self.feed.push(batch);
                }
                Err(error) => {
                    self.conn = None;
                    let quiet = match &mut self.mode {
                        Mode::Group(g) => {
                            if g.patterns.is_some() && is_code(&error, "NOGROUP") {
                                // Unsubscribed while this subscription lived.
                                g.removed = true;
                            } else {
                                g.recreate = true;
                            }
                            g.removed
                        }
                        _ => false,
                    };
                    let delay = if quiet {
                        BACKOFF_MAX.min(Duration::from_secs(1))
                    } else {
                        backoff.failed(&name, &error)
                    };
                    tokio::select! {
                        () = stop.cancelled() => break 'outer,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        self.finish().await;
    }

    /// Closes the feed; a group reader makes what it read and never handed out claimable.
    async fn finish(self) {
        let leftovers = self.feed.close();
        let Mode::Group(g) = &self.mode else { return };
        let acks: Vec<RedisAck> = leftovers
            .into_iter()
            .filter_map(|raw| match raw.ack {
                AckHandle::Redis(ack) => Some(ack),
                _ => None,
            })
            .collect();
        if let Err(e) = self.shared.release(&released(&acks)).await {
            tracing::debug!(queue = %g.queue, error = %e, "could not release buffered entries; they are re-claimed later");
        }
    }

    /// Connects (again) if needed, re-creating the groups after a reconnection.
    async fn connection(&mut self) -> RedisResult<MultiplexedConnection> {
        if let Some(conn) = &self.conn {
            return Ok(conn.clone());
        }
        let mut conn = self.shared.dedicated().await?;
        if let Mode::Group(g) = &mut self.mode
            && g.recreate
            && !g.removed
        {
            create_groups(&mut conn, &g.group, &g.streams).await?;
            g.recreate = false;
        }
        self.conn = Some(conn.clone());
        Ok(conn)
    }

    async fn step(&mut self) -> RedisResult<Vec<Raw>> {
        let mut conn = self.connection().await?;
        match &self.mode {
            Mode::Group(_) => self.step_group(&mut conn).await,
            Mode::Observe(_) => self.step_observe(&mut conn).await,
            Mode::Replies(_) => self.step_replies(&mut conn).await,
        }
    }

    async fn step_group(&mut self, conn: &mut MultiplexedConnection) -> RedisResult<Vec<Raw>> {
        let shared = self.shared.clone();
        let Mode::Group(g) = &mut self.mode else {
            return Ok(Vec::new());
        };
        let mut fetched = Vec::new();
        let now = Instant::now();
        let epoch = shared.claim_epoch.load(Ordering::Relaxed);
        if now >= g.next_claim || epoch != g.claim_epoch {
            if epoch != g.claim_epoch {
                g.claim_epoch = epoch;
                for s in &mut g.streams {
                    s.cursor = "0-0".to_owned();
                }
            }
            g.next_claim = now + shared.visibility / 2;
            claim(&shared, g, conn, &mut fetched).await?;
        }
        // Block only when nothing was claimed, and not past the next claim.
        let block = fetched.is_empty().then(|| {
            let until_claim = g.next_claim.saturating_duration_since(Instant::now());
            millis(until_claim.min(BLOCK)).max(1)
        });
        let mut read = redis::cmd("XREADGROUP");
        read.arg("GROUP")
            .arg(&*g.group)
            .arg(&*g.consumer)
            .arg("COUNT")
            .arg(g.prefetch);
        if let Some(ms) = block {
            read.arg("BLOCK").arg(ms);
        }
        read.arg("STREAMS");
        for s in &g.streams {
            read.arg(&*s.key);
        }
        for _ in &g.streams {
            read.arg(">");
        }
        let reply: Value = read.query_async(conn).await?;
        for (key, entries) in parse_read(reply) {
            let Some(stream) = g.streams.iter().position(|s| *s.key == *key) else {
                continue;
            };
            fetched.extend(entries.into_iter().map(|entry| Fetched {
                stream,
                entry,
                deliveries: 1,
            }));
        }
        let mut batch = admit_group(&shared, g, conn, fetched).await?;
        // XREADGROUP's COUNT is per stream: more than the prefetch may have come. The
        // surplus (least urgent, as `admit_group` orders) is released at once for others.
        if batch.len() > g.prefetch {
            let surplus: Vec<RedisAck> = batch
                .split_off(g.prefetch)
                .into_iter()
                .filter_map(|raw| match raw.ack {
                    AckHandle::Redis(ack) => Some(ack),
                    _ => None,
                })
                .collect();
            if let Err(e) = shared.release(&released(&surplus)).await {
                tracing::debug!(queue = %g.queue, error = %e, "could not release surplus entries; they are re-claimed later");
            }
        }
        Ok(batch)
    }

    async fn step_observe(&mut self, conn: &mut MultiplexedConnection) -> RedisResult<Vec<Raw>> {
        let Mode::Observe(o) = &mut self.mode else {
            return Ok(Vec::new());
        };
        let mut read = redis::cmd("XREAD");
        read.arg("COUNT")
            .arg(OBSERVE_COUNT)
            .arg("BLOCK")
            .arg(millis(BLOCK))
            .arg("STREAMS")
            .arg(&o.keys)
            .arg(&o.last);
        let reply: Value = read.query_async(conn).await?;
        let mut out = Vec::new();
        for (key, entries) in parse_read(reply) {
            let Some(at) = o.keys.iter().position(|k| *k == key) else {
                continue;
            };
            for entry in entries {
                o.last[at].clone_from(&entry.id);
                if let (Filter::Topics(patterns), Some(topic)) = (&o.filter, &entry.topic)
                    && !any_match(patterns, topic)
                {
                    continue;
                }
                let Some(bytes) = &entry.envelope else {
                    continue;
                };
                match self.shared.codec.decode(bytes) {
                    Ok(message) if o.filter.accepts(&message) => {
                        out.push((id_key(&entry.id), message));
                    }
                    Ok(_) => {}
                    Err(rejected) => {
                        tracing::debug!(stream = %key, id = %entry.id, %rejected, "observer skipped an envelope");
                    }
                }
            }
        }
        // Ids of different streams tie within a millisecond: then by creation time.
        out.sort_by_key(|(id, message)| (*id, message.created_at));
        Ok(out
            .into_iter()
            .map(|(_, message)| Raw {
                message: Arc::new(message),
                attempt: 1,
                ack: AckHandle::None,
            })
            .collect())
    }

    async fn step_replies(&mut self, conn: &mut MultiplexedConnection) -> RedisResult<Vec<Raw>> {
        let Mode::Replies(r) = &mut self.mode else {
            return Ok(Vec::new());
        };
        let mut pipe = redis::pipe();
        if !r.read.is_empty() {
            pipe.cmd("XDEL").arg(&r.key).arg(&r.read).ignore();
        }
        pipe.cmd("XREAD")
            .arg("COUNT")
            .arg(OBSERVE_COUNT)
            .arg("BLOCK")
            .arg(millis(BLOCK))
            .arg("STREAMS")
            .arg(&r.key)
            .arg(&r.last);
        let (reply,): (Value,) = pipe.query_async(conn).await?;
        r.read.clear();
        let mut out = Vec::new();
        for (_, entries) in parse_read(reply) {
            for entry in entries {
                r.last.clone_from(&entry.id);
                r.read.push(entry.id.clone());
                let Some(bytes) = &entry.envelope else {
                    continue;
                };
                match self.shared.codec.decode(bytes) {
                    Ok(message) => out.push(Raw {
                        message: Arc::new(message),
                        attempt: 1,
                        ack: AckHandle::Redis(RedisAck {
                            inner: AckInner::Reply,
                        }),
                    }),
                    Err(rejected) => {
                        let queue = format!("reply:{}", self.shared.node_id);
                        let letter = rejected_letter(&rejected, &queue, 1, bytes);
                        tracing::warn!(
                            queue,
                            reason = letter.reason.as_str(),
                            "refused envelope dead-lettered"
                        );
                        if let Err(e) = self.shared.add_dead(&letter).await {
                            tracing::error!(error = %e, "could not store a dead letter");
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Re-claims entries pending longer than the visibility timeout (`XAUTOCLAIM` on every
/// stream, pipelined) and reads their delivery counts.
async fn claim(
    shared: &Shared,
    g: &mut GroupReader,
    conn: &mut MultiplexedConnection,
    fetched: &mut Vec<Fetched>,
) -> RedisResult<()> {
    let visibility = millis(shared.visibility);
    let mut pipe = redis::pipe();
    for s in &g.streams {
        pipe.cmd("XAUTOCLAIM")
            .arg(&*s.key)
            .arg(&*g.group)
            .arg(&*g.consumer)
            .arg(visibility)
            .arg(&s.cursor)
            .arg("COUNT")
            .arg(CLAIM_COUNT.min(g.prefetch));
    }
    let replies: Vec<Value> = pipe.query_async(conn).await?;
    let mut claimed = Vec::new();
    for (stream, reply) in replies.into_iter().enumerate().take(g.streams.len()) {
        let mut parts = into_items(reply).into_iter();
        let cursor = parts
            .next()
            .and_then(into_string)
            .unwrap_or_else(|| "0-0".to_owned());
        if cursor != "0-0" {
            // More to claim: go on at the next step.
            g.next_claim = Instant::now();
        }
        if let Some(s) = g.streams.get_mut(stream) {
            s.cursor = cursor;
        }
        let entries = parts.next().map(into_items).unwrap_or_default();
        claimed.extend(
            entries
                .into_iter()
                .filter_map(parse_entry)
                .map(|entry| (stream, entry)),
        );
    }
    if claimed.is_empty() {
        return Ok(());
    }
    let mut pending = redis::pipe();
    for (stream, entry) in &claimed {
        let key = g.streams.get(*stream).map(|s| &*s.key).unwrap_or_default();
        pending
            .cmd("XPENDING")
            .arg(key)
            .arg(&*g.group)
            .arg(&entry.id)
            .arg(&entry.id)
            .arg(1);
    }
    let counts: Vec<Value> = pending.query_async(conn).await?;
    for ((stream, entry), count) in claimed.into_iter().zip(counts) {
        // [[id, consumer, idle, deliveries]]
        let deliveries = into_items(count)
            .into_iter()
            .next()
            .map(into_items)
            .and_then(|fields| fields.get(3).and_then(as_u64))
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(1)
            .max(1);
        tracing::debug!(queue = %g.queue, id = %entry.id, deliveries, "re-claimed after the visibility timeout");
        fetched.push(Fetched {
            stream,
            entry,
            deliveries,
        });
    }
    Ok(())
}

/// Decodes fetched entries: matching, readable ones become deliveries (most urgent first);
/// the rest are dead-lettered or skipped, and acknowledged.
async fn admit_group(
    shared: &Arc<Shared>,
    g: &GroupReader,
    conn: &mut MultiplexedConnection,
    fetched: Vec<Fetched>,
) -> RedisResult<Vec<Raw>> {
    let mut settle: Vec<(usize, String)> = Vec::new();
    let mut out: Vec<(usize, (u64, u64), Raw)> = Vec::with_capacity(fetched.len());
    for Fetched {
        stream,
        entry,
        deliveries,
    } in fetched
    {
        if let (Some(patterns), Some(topic)) = (&g.patterns, &entry.topic)
            && !any_match(patterns, topic)
        {
            settle.push((stream, entry.id));
            continue;
        }
        let attempt = entry.attempts.saturating_add(deliveries);
        let Some(envelope) = entry.envelope else {
            let letter = DeadLetter::new(
                DeadReason::Malformed,
                format!("stream entry {} has no envelope field", entry.id),
                &g.queue,
                attempt,
                None,
            );
            bury_entry(shared, &letter, &mut settle, stream, entry.id).await;
            continue;
        };
        let message = match shared.codec.decode(&envelope) {
            Ok(message) => message,
            Err(rejected) => {
                let letter = rejected_letter(&rejected, &g.queue, attempt, &envelope);
                bury_entry(shared, &letter, &mut settle, stream, entry.id).await;
                continue;
            }
        };
        if let Some(patterns) = &g.patterns
            && entry.topic.is_none()
            && !message
                .topic
                .as_deref()
                .is_some_and(|t| any_match(patterns, t))
        {
            settle.push((stream, entry.id));
            continue;
        }
        // The stream an entry sits in is not signed, the message is: a signed message
        // moved to another agent's inbox or under another topic is refused.
        if let Some(kind) = g.streams.get(stream).map(|s| &s.kind)
            && let Some(why) = misplaced(kind, &g.queue, entry.topic.as_deref(), &message)
        {
            let letter = DeadLetter::new(
                DeadReason::Malformed,
                format!("stream entry {}: {why}", entry.id),
                &g.queue,
                attempt,
                None,
            );
            bury_entry(shared, &letter, &mut settle, stream, entry.id).await;
            continue;
        }
        if attempt > shared.max_attempts {
            let made = attempt - 1;
            let letter = DeadLetter::new(
                DeadReason::MaxAttempts,
                format!(
                    "{made} delivery attempt(s) failed; last: not acknowledged within the visibility timeout"
                ),
                &g.queue,
                made,
                Some(message),
            );
            bury_entry(shared, &letter, &mut settle, stream, entry.id).await;
            continue;
        }
        let Some(s) = g.streams.get(stream) else {
            continue;
        };
        let retry = match &s.kind {
            StreamKind::Inbox => Retry::Readd(s.key.clone()),
            StreamKind::Broadcast(inbox) => Retry::Readd(inbox.clone()),
            StreamKind::Topics => Retry::Release,
        };
        let rank = level(message.priority);
        let sort_id = id_key(&entry.id);
        let ack = EntryAck {
            shared: shared.clone(),
            stream: s.key.clone(),
            group: g.group.clone(),
            consumer: g.consumer.clone(),
            queue: g.queue.clone(),
            id: entry.id,
            envelope,
            topic: entry.topic,
            retry,
            deliveries,
        };
        out.push((
            rank,
            sort_id,
            Raw {
                message: Arc::new(message),
                attempt,
                ack: AckHandle::Redis(RedisAck {
                    inner: AckInner::Entry(Box::new(ack)),
                }),
            },
        ));
    }
    if !settle.is_empty() {
        let mut pipe = redis::pipe();
        for (stream, id) in &settle {
            if let Some(s) = g.streams.get(*stream) {
                pipe.cmd("XACK")
                    .arg(&*s.key)
                    .arg(&*g.group)
                    .arg(id)
                    .ignore();
            }
        }
        if !pipe.is_empty() {
            pipe.query_async::<()>(conn).await?;
        }
    }
    // Ids of different streams tie within a millisecond: then by creation time.
    out.sort_by_key(|(rank, id, raw)| (*rank, *id, raw.message.created_at));
    Ok(out.into_iter().map(|(_, _, raw)| raw).collect())
}

/// Why a verified message does not belong where it was found, if it does not.
fn misplaced(
    kind: &StreamKind,
    queue: &str,
    topic_field: Option<&str>,
    message: &Message,
) -> Option<String> {
    use sutazai_core::CommunicationPattern as P;
    match kind {
        StreamKind::Inbox => {
            let agent = queue.strip_prefix("inbox:").unwrap_or(queue);
            match message.pattern {
                // A failed broadcast is retried in the agent's own inbox.
                P::Broadcast => None,
                P::PointToPoint | P::RequestResponse
                    if message.recipient_id.as_deref() == Some(agent) =>
                {
                    None
                }
                _ => Some(format!(
                    "a {:?} message for {:?} found in the inbox of `{agent}`",
                    message.pattern, message.recipient_id
                )),
            }
        }
        StreamKind::Broadcast(_) if message.pattern == P::Broadcast => None,
        StreamKind::Broadcast(_) => Some(format!(
            "a {:?} message found in the broadcast stream",
            message.pattern
        )),
        StreamKind::Topics => {
            if message.pattern != P::PubSub {
                Some(format!(
                    "a {:?} message found in the topics stream",
                    message.pattern
                ))
            } else if topic_field.is_some_and(|t| message.topic.as_deref() != Some(t)) {
                Some(format!(
                    "filed under topic {topic_field:?} but signed for {:?}",
                    message.topic
                ))
            } else {
                None
            }
        }
    }
}

/// Buries an entry a reader will not hand out; it is acknowledged (queued in `settle`)
/// only once its dead letter is stored.
async fn bury_entry(
    shared: &Shared,
    letter: &DeadLetter,
    settle: &mut Vec<(usize, String)>,
    stream: usize,
    id: String,
) {
    if bury_in_reader(shared, letter).await {
        settle.push((stream, id));
    }
}

/// Stores a dead letter found by a reader; `false` when it could not be stored, in which
/// case the entry must stay pending (it is re-claimed and buried again later).
async fn bury_in_reader(shared: &Shared, letter: &DeadLetter) -> bool {
    tracing::warn!(
        queue = %letter.queue,
        reason = letter.reason.as_str(),
        "{}",
        letter.detail
    );
    match shared.add_dead(letter).await {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(error = %e, id = %letter.id, "could not store a dead letter; the entry stays pending");
            false
        }
    }
}

fn rejected_letter(rejected: &Rejected, queue: &str, attempts: u32, raw: &[u8]) -> DeadLetter {
    let reason = match rejected.reason {
        RejectReason::Malformed => DeadReason::Malformed,
        RejectReason::Unsigned => DeadReason::Unsigned,
        RejectReason::BadSignature => DeadReason::BadSignature,
        RejectReason::DecryptFailed => DeadReason::DecryptFailed,
        RejectReason::Decompress => DeadReason::DecompressFailed,
    };
    DeadLetter {
        id: sutazai_core::ids::new_id(),
        reason,
        detail: format!("envelope refused: {}", rejected.detail),
        queue: queue.to_owned(),
        attempts,
        dead_at: Utc::now(),
        message: None,
        header: rejected.header.clone(),
        raw_base64: Some(BASE64.encode(&raw[..raw.len().min(DEAD_RAW_MAX)])),
    }
}

// ---------------------------------------------------------------------------------------
// Settling deliveries.

/// Where a failed delivery goes to be delivered again.
#[derive(Debug, Clone)]
enum Retry {
    /// Appended again (with its attempts) to this stream, the old entry acknowledged.
    Readd(Arc<str>),
    /// Left pending, made claimable at once.
    Release,
}

struct EntryAck {
    shared: Arc<Shared>,
    stream: Arc<str>,
    group: Arc<str>,
    consumer: Arc<str>,
    queue: Arc<str>,
    id: String,
    envelope: Vec<u8>,
    topic: Option<String>,
    retry: Retry,
    /// The delivery count when it was read.
    deliveries: u32,
}

impl fmt::Debug for EntryAck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EntryAck")
            .field("stream", &self.stream)
            .field("group", &self.group)
            .field("consumer", &self.consumer)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
enum AckInner {
    /// A consumer-group entry.
    Entry(Box<EntryAck>),
    /// A reply: its reader deletes it.
    Reply,
}

/// The acknowledgement handle of one Redis delivery.
#[derive(Debug)]
pub(crate) struct RedisAck {
    inner: AckInner,
}

impl EntryAck {
    fn xack(&self, pipe: &mut redis::Pipeline) {
        pipe.cmd("XACK")
            .arg(&*self.stream)
            .arg(&*self.group)
            .arg(&self.id)
            .ignore();
    }

    /// Queues the `XACK` with the acknowledger and returns at once.
    async fn acknowledge_later(&self) -> Result<(), BusError> {
        let (done, _ignored) = oneshot::channel();
        let request = AckRequest {
            stream: self.stream.clone(),
            group: self.group.clone(),
            id: self.id.clone(),
            done,
        };
        if self.shared.acks.send(request).is_ok() {
            return Ok(());
        }
        self.acknowledge().await
    }

    async fn acknowledge(&self) -> Result<(), BusError> {
        let (done, result) = oneshot::channel();
        let request = AckRequest {
            stream: self.stream.clone(),
            group: self.group.clone(),
            id: self.id.clone(),
            done,
        };
        if self.shared.acks.send(request).is_ok()
            && let Ok(result) = result.await
        {
            return result;
        }
        // The acknowledger is gone (shutdown): straight to Redis.
        let mut pipe = redis::pipe();
        self.xack(&mut pipe);
        self.shared
            .run("acknowledging a message", &pipe, SETTLE_RETRY)
            .await
    }

    async fn dead_letter(
        &self,
        reason: DeadReason,
        detail: String,
        attempts: u32,
        message: &Message,
    ) -> Result<(), BusError> {
        let letter = DeadLetter::new(reason, detail, &self.queue, attempts, Some(message.clone()));
        self.shared.add_dead(&letter).await?;
        self.acknowledge().await
    }
}

impl RedisAck {
    /// Handled: `XACK` (a reply: nothing, its reader deletes it). The acknowledgement is
    /// handed to the batching acknowledger without waiting for Redis' answer: one that is
    /// lost (Redis down at that moment) leaves the entry pending, so it is re-claimed and
    /// delivered again, which consumers recognise by the message id.
    pub(crate) async fn ack(self) -> Result<(), BusError> {
        match &self.inner {
            AckInner::Entry(e) => e.acknowledge_later().await,
            AckInner::Reply => Ok(()),
        }
    }

    /// Handling failed: queued again, or dead-lettered past the attempts allowed.
    pub(crate) async fn fail(
        self,
        message: &Message,
        attempt: u32,
        why: &str,
    ) -> Result<(), BusError> {
        let AckInner::Entry(e) = &self.inner else {
            return Ok(());
        };
        let s = &e.shared;
        if attempt >= s.max_attempts {
            let detail = format!("{attempt} delivery attempt(s) failed; last: {why}");
            return e
                .dead_letter(DeadReason::MaxAttempts, detail, attempt, message)
                .await;
        }
        match &e.retry {
            Retry::Readd(key) => {
                let mut pipe = redis::pipe();
                pipe.atomic();
                xadd(
                    &mut pipe,
                    key,
                    &e.envelope,
                    e.topic.as_deref(),
                    Some(attempt),
                );
                pipe.ignore();
                e.xack(&mut pipe);
                s.run::<()>("queueing a failed message again", &pipe, SETTLE_RETRY)
                    .await
            }
            Retry::Release => {
                s.release(&[Released {
                    stream: &e.stream,
                    group: &e.group,
                    consumer: &e.consumer,
                    id: &e.id,
                    deliveries: e.deliveries,
                }])
                .await
            }
        }
    }

    /// Keeps the entry with this consumer for another visibility timeout.
    pub(crate) async fn extend(&self) -> Result<(), BusError> {
        let AckInner::Entry(e) = &self.inner else {
            return Ok(());
        };
        let mut pipe = redis::pipe();
        pipe.cmd("XCLAIM")
            .arg(&*e.stream)
            .arg(&*e.group)
            .arg(&*e.consumer)
            .arg(0)
            .arg(&e.id)
            .arg("JUSTID")
            .ignore();
        e.shared
            .run("extending a delivery", &pipe, SETTLE_RETRY)
            .await
    }

    /// Dead-letters the entry at once (expired messages) and acknowledges it.
    pub(crate) async fn bury(
        self,
        reason: DeadReason,
        detail: String,
        attempt: u32,
    ) -> Result<(), BusError> {
        let AckInner::Entry(e) = &self.inner else {
            return Ok(());
        };
        let message = match e.shared.codec.decode(&e.envelope) {
            Ok(message) => message,
            Err(rejected) => {
                // Cannot happen: it decoded when it was read.
                let letter = rejected_letter(&rejected, &e.queue, attempt, &e.envelope);
                e.shared.add_dead(&letter).await?;
                return e.acknowledge().await;
            }
        };
        e.dead_letter(reason, detail, attempt, &message).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(
            redact("redis://:hunter2@host:6379"),
            "redis://:***@host:6379"
        );
        assert_eq!(
            redact("redis://bob:hunter2@host/1"),
            "redis://bob:***@host/1"
        );
        assert_eq!(redact("rediss://host?password=x"), "rediss://host");
    }

    #[test]
    fn parses_read_replies() {
        let entry = |id: &str, fields: &[(&str, &[u8])]| {
            Value::Array(vec![
                Value::BulkString(id.as_bytes().to_vec()),
                Value::Array(
                    fields
                        .iter()
                        .flat_map(|(k, v)| {
                            [
                                Value::BulkString(k.as_bytes().to_vec()),
                                Value::BulkString(v.to_vec()),
                            ]
                        })
                        .collect(),
                ),
            ])
        };
        let reply = Value::Array(vec![Value::Array(vec![
            Value::BulkString(b"ns:topics".to_vec()),
            Value::Array(vec![
                entry("5-1", &[("t", b"a.b"), ("e", b"xyz"), ("a", b"2")]),
                Value::Array(vec![Value::BulkString(b"6-0".to_vec()), Value::Nil]),
            ]),
        ])]);
        let parsed = parse_read(reply);
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].0, "ns:topics");
        let entries = &parsed[0].1;
        assert_eq!(entries.len(), 1, "deleted entries are skipped");
        assert_eq!(entries[0].id, "5-1");
        assert_eq!(entries[0].topic.as_deref(), Some("a.b"));
        assert_eq!(entries[0].envelope.as_deref(), Some(&b"xyz"[..]));
        assert_eq!(entries[0].attempts, 2);
        assert!(parse_read(Value::Nil).is_empty());
        assert!(id_key("10-2") > id_key("9-99"));
        assert!(id_key("10-2") < id_key("10-10"));
    }
}
