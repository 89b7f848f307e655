//! The in-process backend: every queue lives in this process's memory.
//!
//! An agent's inbox is one [`Queue`] with four priority levels; competing consumers of the
//! same agent share it. A broadcast is appended to every inbox whose agent has subscribed
//! at least once (the in-process equivalent of a consumer group per agent). A durable topic
//! subscription is a named queue that receives every message whose topic matches one of its
//! patterns, and keeps receiving them while its subscriber is away. Observers ("taps") see
//! messages live, without consuming them.
//!
//! A delivered message stays *pending* until acknowledged. A delivery dropped without an
//! acknowledgement (its handler panicked or its subscriber went away) goes straight back to
//! its queue; one held past the visibility timeout is taken back and given to the next
//! consumer that asks. Each redelivery counts as an attempt; past the limit the message is
//! dead-lettered.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use sutazai_core::{Message, Priority};
use tokio::sync::{Notify, broadcast, mpsc};

use crate::dead::{DeadLetter, DeadLetterQuery, DeadReason};
use crate::error::BusError;
use crate::route::{Route, TopicPattern, any_match};
use crate::{Filter, NodeInfo, QueueDepth, Raw};

/// Turns an idle consumer yields before it parks (see `next_from`).
const SPIN_TURNS: usize = 16;

/// Most dead letters kept in memory; the oldest are evicted beyond it (and counted).
const DEAD_CAPACITY: usize = 100_000;

/// The in-process backend. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct MemoryBus {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    inboxes: RwLock<HashMap<String, Arc<Queue>>>,
    groups: RwLock<HashMap<String, Arc<TopicGroup>>>,
    taps: broadcast::Sender<Arc<Message>>,
    /// Observers alive: publishing skips the taps (and their lock) while there are none.
    observers: Arc<AtomicUsize>,
    replies: mpsc::UnboundedSender<Arc<Message>>,
    node_id: String,
    dead: Mutex<DeadStore>,
    handled: Mutex<Handled>,
    nodes: Mutex<HashMap<String, NodeInfo>>,
    visibility: Duration,
    max_attempts: u32,
    retention: Duration,
}

/// Ids of handled messages, oldest first, forgotten after a window.
#[derive(Debug, Default)]
struct Handled {
    ids: HashSet<String>,
    order: VecDeque<(Instant, String)>,
}

#[derive(Debug, Default)]
struct DeadStore {
    letters: VecDeque<DeadLetter>,
    evicted: u64,
}

#[derive(Debug)]
struct TopicGroup {
    patterns: Vec<TopicPattern>,
    queue: Arc<Queue>,
}

/// One queue with four priority levels and its pending (delivered, unacknowledged) entries.
#[derive(Debug)]
pub(crate) struct Queue {
    name: String,
    /// What waits to be delivered; the publisher's side.
    levels: Mutex<Levels>,
    /// What was delivered and awaits settling; the consumers' side. A separate lock, so a
    /// publisher and an acknowledging consumer do not contend.
    pending: Mutex<PendingState>,
    notify: Notify,
}

#[derive(Debug, Default)]
struct Levels {
    /// Index 0 is critical, 3 is low.
    levels: [VecDeque<Entry>; 4],
    /// Whether broadcasts are appended here (an agent inbox whose agent subscribed).
    broadcast_member: bool,
}

#[derive(Debug, Default)]
struct PendingState {
    pending: HashMap<u64, Pending, BuildHasherDefault<TagHasher>>,
    /// (deadline, tag) in delivery order; stale pairs (acked or extended) are skipped.
    deadlines: VecDeque<(Instant, u64)>,
    next_tag: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    message: Arc<Message>,
    /// Deliveries made so far.
    attempt: u32,
}

#[derive(Debug)]
struct Pending {
    entry: Entry,
    deadline: Instant,
}

/// Delivery tags are sequential numbers: they hash to themselves.
#[derive(Debug, Default)]
struct TagHasher(u64);

impl Hasher for TagHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

fn level(priority: Priority) -> usize {
    match priority {
        Priority::Critical => 0,
        Priority::High => 1,
        Priority::Normal => 2,
        Priority::Low => 3,
    }
}

impl Queue {
    fn new(name: String) -> Queue {
        Queue {
            name,
            levels: Mutex::new(Levels::default()),
            pending: Mutex::new(PendingState::default()),
            notify: Notify::new(),
        }
    }

    fn levels(&self) -> std::sync::MutexGuard<'_, Levels> {
        self.levels.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, PendingState> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, entry: Entry) {
        let at = level(entry.message.priority);
        self.levels().levels[at].push_back(entry);
        self.notify.notify_one();
    }
}

/// What the memory backend's subscription reads from.
#[derive(Debug)]
pub(crate) enum MemorySubscription {
    /// Consumes a queue (an agent inbox or a durable topic group), taking up to
    /// `prefetch` entries per lock into `buffer` (each pending from when it was taken).
    Queue {
        queue: Arc<Queue>,
        bus: MemoryBus,
        prefetch: usize,
        buffer: VecDeque<Raw>,
    },
    /// Watches messages live without consuming them.
    Tap {
        receiver: broadcast::Receiver<Arc<Message>>,
        filter: Filter,
        /// Counts this observer while it lives.
        _observer: ObserverCount,
    },
}

/// One observer in [`Shared::observers`], for as long as it lives.
#[derive(Debug)]
pub(crate) struct ObserverCount(Arc<AtomicUsize>);

impl ObserverCount {
    fn new(count: &Arc<AtomicUsize>) -> ObserverCount {
        count.fetch_add(1, Ordering::AcqRel);
        ObserverCount(count.clone())
    }
}

impl Drop for ObserverCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The acknowledgement handle of one memory delivery.
#[derive(Debug)]
pub(crate) struct MemoryAck {
    queue: Arc<Queue>,
    tag: u64,
    bus: MemoryBus,
    /// When the visibility timeout of this delivery ends (unless extended).
    deadline: Instant,
}

impl MemoryBus {
    pub(crate) fn new(
        node_id: String,
        visibility: Duration,
        max_attempts: u32,
        retention: Duration,
    ) -> (MemoryBus, mpsc::UnboundedReceiver<Arc<Message>>) {
        let (replies, reply_rx) = mpsc::unbounded_channel();
        let bus = MemoryBus {
            shared: Arc::new(Shared {
                inboxes: RwLock::new(HashMap::new()),
                groups: RwLock::new(HashMap::new()),
                taps: broadcast::channel(4096).0,
                observers: Arc::new(AtomicUsize::new(0)),
                replies,
                node_id,
                dead: Mutex::new(DeadStore::default()),
                handled: Mutex::new(Handled::default()),
                nodes: Mutex::new(HashMap::new()),
                visibility,
                max_attempts: max_attempts.max(1),
                retention,
            }),
        };
        (bus, reply_rx)
    }

    fn inbox(&self, agent: &str) -> Arc<Queue> {
        if let Some(q) = self
            .shared
            .inboxes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(agent)
        {
            return q.clone();
        }
        self.shared
            .inboxes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(agent.to_owned())
            .or_insert_with(|| Arc::new(Queue::new(format!("inbox:{agent}"))))
            .clone()
    }

    pub(crate) fn publish(&self, message: &Arc<Message>, route: &Route<'_>) {
        if self.shared.observers.load(Ordering::Acquire) > 0 {
            let _ = self.shared.taps.send(message.clone());
        }
        let entry = Entry {
            message: message.clone(),
            attempt: 0,
        };
        match route {
            Route::Inbox { agent, .. } => {
                {
                    let inboxes = self
                        .shared
                        .inboxes
                        .read()
                        .unwrap_or_else(|p| p.into_inner());
                    if let Some(queue) = inboxes.get(*agent) {
                        queue.push(entry);
                        return;
                    }
                }
                self.inbox(agent).push(entry);
            }
            Route::Broadcast { .. } => {
                let inboxes = self
                    .shared
                    .inboxes
                    .read()
                    .unwrap_or_else(|p| p.into_inner());
                for queue in inboxes.values() {
                    let member = queue.levels().broadcast_member;
                    if member {
                        queue.push(entry.clone());
                    }
                }
            }
            Route::Topic(topic) => {
                let groups = self.shared.groups.read().unwrap_or_else(|p| p.into_inner());
                for group in groups.values() {
                    if any_match(&group.patterns, topic) {
                        group.queue.push(entry.clone());
                    }
                }
            }
        }
    }

    pub(crate) fn consume_agent(&self, agent: &str, prefetch: usize) -> MemorySubscription {
        let queue = self.inbox(agent);
        queue.levels().broadcast_member = true;
        MemorySubscription::Queue {
            queue,
            bus: self.clone(),
            prefetch: prefetch.max(1),
            buffer: VecDeque::new(),
        }
    }

    pub(crate) fn consume_topics(
        &self,
        group: &str,
        patterns: Vec<TopicPattern>,
    ) -> MemorySubscription {
        let mut groups = self
            .shared
            .groups
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let existing = groups.get(group).cloned();
        let queue = match existing {
            // Same name: the same durable queue, with the new patterns from now on.
            Some(g) => g.queue.clone(),
            None => Arc::new(Queue::new(format!("group:{group}"))),
        };
        groups.insert(
            group.to_owned(),
            Arc::new(TopicGroup {
                patterns,
                queue: queue.clone(),
            }),
        );
        MemorySubscription::Queue {
            queue,
            bus: self.clone(),
            prefetch: crate::DEFAULT_PREFETCH,
            buffer: VecDeque::new(),
        }
    }

    pub(crate) fn remove_group(&self, group: &str) -> bool {
        self.shared
            .groups
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(group)
            .is_some()
    }

    pub(crate) fn observe(&self, filter: Filter) -> MemorySubscription {
        // Counted before it subscribes: from then on every publish goes to the taps.
        let observer = ObserverCount::new(&self.shared.observers);
        MemorySubscription::Tap {
            receiver: self.shared.taps.subscribe(),
            filter,
            _observer: observer,
        }
    }

    pub(crate) fn send_reply(&self, node: &str, message: Arc<Message>) -> Result<(), BusError> {
        if node != self.shared.node_id {
            return Err(BusError::Unavailable(format!(
                "node `{node}` is not on this in-process bus"
            )));
        }
        self.shared
            .replies
            .send(message)
            .map_err(|_| BusError::Closed)
    }

    /// Requeues an entry after a failed or abandoned delivery, or dead-letters it when it
    /// has used up its attempts.
    fn retry_or_bury(&self, queue: &Queue, entry: Entry, why: &str) {
        if entry.attempt >= self.shared.max_attempts {
            self.bury(
                DeadReason::MaxAttempts,
                format!("{} delivery attempt(s) failed; last: {why}", entry.attempt),
                &queue.name,
                entry.attempt,
                Some((*entry.message).clone()),
            );
        } else {
            queue.push(entry);
        }
    }

    pub(crate) fn bury(
        &self,
        reason: DeadReason,
        detail: String,
        queue: &str,
        attempts: u32,
        message: Option<Message>,
    ) {
        let letter = DeadLetter::new(reason, detail, queue, attempts, message);
        self.add_dead(letter);
    }

    pub(crate) fn add_dead(&self, letter: DeadLetter) {
        let mut dead = self.shared.dead.lock().unwrap_or_else(|p| p.into_inner());
        dead.letters.push_back(letter);
        while dead.letters.len() > DEAD_CAPACITY {
            dead.letters.pop_front();
            dead.evicted += 1;
        }
    }

    pub(crate) fn list_dead(&self, query: &DeadLetterQuery) -> Vec<DeadLetter> {
        let dead = self.shared.dead.lock().unwrap_or_else(|p| p.into_inner());
        dead.letters
            .iter()
            .rev()
            .filter(|l| query.reason.is_none_or(|r| r == l.reason))
            .take(query.limit)
            .cloned()
            .collect()
    }

    pub(crate) fn get_dead(&self, id: &str) -> Option<DeadLetter> {
        let dead = self.shared.dead.lock().unwrap_or_else(|p| p.into_inner());
        dead.letters.iter().find(|l| l.id == id).cloned()
    }

    pub(crate) fn remove_dead(&self, id: &str) -> Option<DeadLetter> {
        let mut dead = self.shared.dead.lock().unwrap_or_else(|p| p.into_inner());
        let at = dead.letters.iter().position(|l| l.id == id)?;
        dead.letters.remove(at)
    }

    pub(crate) fn purge_dead(&self) -> u64 {
        let mut dead = self.shared.dead.lock().unwrap_or_else(|p| p.into_inner());
        let n = dead.letters.len() as u64;
        dead.letters.clear();
        n
    }

    pub(crate) fn count_dead(&self) -> u64 {
        self.shared
            .dead
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .letters
            .len() as u64
    }

    pub(crate) fn depths(&self) -> Vec<QueueDepth> {
        let mut out = Vec::new();
        let queues: Vec<Arc<Queue>> = {
            let inboxes = self
                .shared
                .inboxes
                .read()
                .unwrap_or_else(|p| p.into_inner());
            let groups = self.shared.groups.read().unwrap_or_else(|p| p.into_inner());
            inboxes
                .values()
                .cloned()
                .chain(groups.values().map(|g| g.queue.clone()))
                .collect()
        };
        for queue in queues {
            let waiting = queue.levels().levels.iter().map(|l| l.len() as u64).sum();
            let pending = queue.pending().pending.len() as u64;
            out.push(QueueDepth {
                queue: queue.name.clone(),
                waiting,
                pending,
            });
        }
        out.sort_by(|a, b| a.queue.cmp(&b.queue));
        out
    }

    pub(crate) fn mark_handled(&self, id: &str) {
        let now = Instant::now();
        // In one process a message can only come back while it is redelivered: after its
        // last possible attempt the marker has done its job.
        let window = (self.shared.visibility * (self.shared.max_attempts + 1))
            .max(Duration::from_secs(600))
            .min(self.shared.retention);
        let mut handled = self
            .shared
            .handled
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        while let Some((at, _)) = handled.order.front() {
            if now.saturating_duration_since(*at) < window {
                break;
            }
            if let Some((_, old)) = handled.order.pop_front() {
                handled.ids.remove(&old);
            }
        }
        if handled.ids.insert(id.to_owned()) {
            handled.order.push_back((now, id.to_owned()));
        }
    }

    pub(crate) fn was_handled(&self, id: &str) -> bool {
        self.shared
            .handled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .ids
            .contains(id)
    }

    pub(crate) fn heartbeat(&self, node: NodeInfo) {
        self.shared
            .nodes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(node.node_id.clone(), node);
    }

    pub(crate) fn nodes(&self) -> Vec<NodeInfo> {
        let mut nodes: Vec<NodeInfo> = self
            .shared
            .nodes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        nodes.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        nodes
    }

    pub(crate) fn remove_node(&self, node_id: &str) {
        self.shared
            .nodes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(node_id);
    }
}

impl MemorySubscription {
    /// The next delivery; `None` only for a tap whose bus is gone.
    pub(crate) async fn next(&mut self) -> Option<Raw> {
        match self {
            MemorySubscription::Queue {
                queue,
                bus,
                prefetch,
                buffer,
            } => Some(next_from(queue, bus, *prefetch, buffer).await),
            MemorySubscription::Tap {
                receiver, filter, ..
            } => loop {
                match receiver.recv().await {
                    Ok(message) if filter.accepts(&message) => {
                        return Some(Raw {
                            message,
                            attempt: 1,
                            ack: crate::AckHandle::None,
                        });
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::debug!(skipped = n, "bus observer fell behind");
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            },
        }
    }

    /// A delivery that is ready now, without waiting.
    pub(crate) fn try_next(&mut self) -> Option<Raw> {
        match self {
            MemorySubscription::Queue {
                queue,
                bus,
                prefetch,
                buffer,
            } => {
                let now = Instant::now();
                if let Some(raw) = pop_fresh(buffer, now) {
                    return Some(raw);
                }
                take(queue, bus, now, *prefetch, buffer);
                pop_fresh(buffer, now)
            }
            MemorySubscription::Tap {
                receiver, filter, ..
            } => loop {
                match receiver.try_recv() {
                    Ok(message) if filter.accepts(&message) => {
                        return Some(Raw {
                            message,
                            attempt: 1,
                            ack: crate::AckHandle::None,
                        });
                    }
                    Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                    Err(_) => return None,
                }
            },
        }
    }
}

async fn next_from(
    queue: &Arc<Queue>,
    bus: &MemoryBus,
    prefetch: usize,
    buffer: &mut VecDeque<Raw>,
) -> Raw {
    // Fast path: something is buffered or waiting already.
    let now = Instant::now();
    if let Some(raw) = pop_fresh(buffer, now) {
        return raw;
    }
    take(queue, bus, now, prefetch, buffer);
    if let Some(raw) = pop_fresh(buffer, now) {
        return raw;
    }
    // Under load the next message is usually a fraction of a microsecond away: give the
    // publisher a few turns before parking, because a park costs the publisher a wake-up
    // (a futex call) for every message.
    for _ in 0..SPIN_TURNS {
        tokio::task::yield_now().await;
        let now = Instant::now();
        take(queue, bus, now, prefetch, buffer);
        if let Some(raw) = pop_fresh(buffer, now) {
            return raw;
        }
    }
    loop {
        let notified = queue.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let now = Instant::now();
        take(queue, bus, now, prefetch, buffer);
        if let Some(raw) = pop_fresh(buffer, now) {
            return raw;
        }
        let wake = queue.pending().deadlines.front().map(|(at, _)| *at);
        match wake {
            Some(at) => {
                tokio::select! {
                    _ = &mut notified => {}
                    _ = tokio::time::sleep_until(at.into()) => {}
                }
            }
            None => notified.await,
        }
    }
}

/// The next buffered delivery still within its visibility timeout. One past it is left
/// to the queue, which takes it back (another consumer may have it already).
fn pop_fresh(buffer: &mut VecDeque<Raw>, now: Instant) -> Option<Raw> {
    while let Some(raw) = buffer.pop_front() {
        match &raw.ack {
            crate::AckHandle::Memory(ack) if ack.deadline <= now => {}
            _ => return Some(raw),
        }
    }
    None
}

/// Takes back pending entries past their deadline, then moves up to `max` of the most
/// urgent entries into `buffer`, each pending from now.
fn take(queue: &Arc<Queue>, bus: &MemoryBus, now: Instant, max: usize, buffer: &mut VecDeque<Raw>) {
    let mut expired = Vec::new();
    let mut taken = Vec::new();
    {
        let mut levels = queue.levels();
        for _ in 0..max {
            match levels.levels.iter_mut().find_map(VecDeque::pop_front) {
                Some(entry) => taken.push(entry),
                None => break,
            }
        }
    }
    {
        let mut state = queue.pending();
        while let Some(&(at, tag)) = state.deadlines.front() {
            if at > now {
                break;
            }
            state.deadlines.pop_front();
            let stale = state.pending.get(&tag).is_none_or(|p| p.deadline > now);
            if !stale && let Some(p) = state.pending.remove(&tag) {
                expired.push(p.entry);
            }
        }
        let deadline = now + bus.shared.visibility;
        for mut entry in taken {
            entry.attempt += 1;
            let tag = state.next_tag;
            state.next_tag += 1;
            state.deadlines.push_back((deadline, tag));
            buffer.push_back(Raw {
                message: entry.message.clone(),
                attempt: entry.attempt,
                ack: crate::AckHandle::Memory(MemoryAck {
                    queue: queue.clone(),
                    tag,
                    bus: bus.clone(),
                    deadline,
                }),
            });
            state.pending.insert(tag, Pending { entry, deadline });
        }
    }
    for entry in expired {
        bus.retry_or_bury(
            queue,
            entry,
            "not acknowledged within the visibility timeout",
        );
    }
}

impl Drop for MemorySubscription {
    fn drop(&mut self) {
        // Entries taken but never handed out go back to the front of their level, as if
        // they had not been delivered.
        if let MemorySubscription::Queue { buffer, .. } = self {
            for raw in buffer.drain(..).rev() {
                if let crate::AckHandle::Memory(ack) = &raw.ack {
                    ack.release();
                }
            }
        }
    }
}

impl MemoryAck {
    fn take_pending(&self) -> Option<Entry> {
        self.queue
            .pending()
            .pending
            .remove(&self.tag)
            .map(|p| p.entry)
    }

    /// Gives back an entry that was taken but never handed out.
    fn release(&self) {
        let taken = self.queue.pending().pending.remove(&self.tag);
        if let Some(p) = taken {
            let mut entry = p.entry;
            entry.attempt = entry.attempt.saturating_sub(1);
            let at = level(entry.message.priority);
            self.queue.levels().levels[at].push_front(entry);
            self.queue.notify.notify_one();
        }
    }

    /// Removes the entry for good.
    pub(crate) fn ack(&self) {
        self.take_pending();
    }

    /// Handling failed: retry or dead-letter.
    pub(crate) fn fail(&self, why: &str) {
        if let Some(entry) = self.take_pending() {
            self.bus.retry_or_bury(&self.queue, entry, why);
        }
    }

    /// Pushes the visibility deadline out by another timeout.
    pub(crate) fn extend(&self) {
        let mut state = self.queue.pending();
        let deadline = Instant::now() + self.bus.shared.visibility;
        if let Some(p) = state.pending.get_mut(&self.tag) {
            p.deadline = deadline;
            state.deadlines.push_back((deadline, self.tag));
        }
    }

    /// Dead-letters the entry at once (used for expired messages).
    pub(crate) fn bury(&self, reason: DeadReason, detail: String) {
        if let Some(entry) = self.take_pending() {
            self.bus.bury(
                reason,
                detail,
                &self.queue.name,
                entry.attempt,
                Some((*entry.message).clone()),
            );
        }
    }
}
