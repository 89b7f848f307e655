//! The in-process message bus the orchestrator and the API share.
//!
//! # Layout
//! Every message is routed to a *topic*:
//! - point-to-point and request-response go to `agent.<recipient_id>`;
//! - broadcast goes to [`BROADCAST_TOPIC`], which every agent subscription also receives;
//! - pub-sub goes to the message's own `topic`.
//!
//! Each topic is a `tokio::sync::broadcast` channel created on first use. This is the
//! minimal bus of the walking skeleton: delivery is to the subscribers present when the
//! message is published (the publisher learns how many), and a subscriber that falls more
//! than the channel capacity behind is told how many messages it missed rather than
//! silently losing them. Durable delivery, dead letters, encryption and the Redis Streams
//! transport belong to the full bus.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use sutazai_core::{CommunicationPattern, Message};
use tokio::sync::broadcast;

/// The topic every broadcast is published on.
pub const BROADCAST_TOPIC: &str = "broadcast";

/// Why the bus refused a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// Point-to-point and request-response messages need a `recipient_id`.
    #[error("a {0} message needs a recipient_id")]
    MissingRecipient(&'static str),
    /// Pub-sub messages need a `topic`.
    #[error("a pub_sub message needs a topic")]
    MissingTopic,
    /// A topic or id is empty, too long or has characters outside `[A-Za-z0-9._:/-]`.
    #[error("invalid {field}: {reason}")]
    InvalidName {
        /// Which field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// `expires_at` is already in the past.
    #[error("message {0} expired before it was sent")]
    Expired(String),
}

/// What happened to a published message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Subscribers that received it.
    pub delivered: usize,
}

/// Counters for `/status` and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BusStats {
    /// Messages accepted.
    pub published: u64,
    /// Deliveries made (one message to three subscribers counts three).
    pub delivered: u64,
    /// Topics with at least one channel.
    pub topics: usize,
}

/// The bus. Cheap to clone; clones share topics.
#[derive(Debug, Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Topic name → channel. A `std` mutex: held only to look up or create a channel.
    topics: Mutex<HashMap<String, broadcast::Sender<Arc<Message>>>>,
    /// Per-topic channel capacity: how far a subscriber may fall behind.
    capacity: usize,
    published: AtomicU64,
    delivered: AtomicU64,
}

/// A subscription to one or more topics.
#[derive(Debug)]
pub struct Subscription {
    receivers: Vec<broadcast::Receiver<Arc<Message>>>,
}

/// What a subscription yields.
#[derive(Debug, Clone)]
pub enum Received {
    /// A message.
    Message(Arc<Message>),
    /// The subscriber fell behind and this many messages were skipped.
    Lagged(u64),
}

impl Subscription {
    /// The next message on any of the subscribed topics; `None` once the bus is gone.
    pub async fn recv(&mut self) -> Option<Received> {
        loop {
            if self.receivers.is_empty() {
                return None;
            }
            let (result, index) = {
                let futures = self
                    .receivers
                    .iter_mut()
                    .map(|r| Box::pin(r.recv()))
                    .collect::<Vec<_>>();
                select_first(futures).await
            };
            match result {
                Ok(message) => return Some(Received::Message(message)),
                Err(broadcast::error::RecvError::Lagged(n)) => return Some(Received::Lagged(n)),
                Err(broadcast::error::RecvError::Closed) => {
                    self.receivers.swap_remove(index);
                }
            }
        }
    }

    /// A message already waiting, without blocking.
    pub fn try_recv(&mut self) -> Option<Received> {
        for receiver in &mut self.receivers {
            match receiver.try_recv() {
                Ok(message) => return Some(Received::Message(message)),
                Err(broadcast::error::TryRecvError::Lagged(n)) => return Some(Received::Lagged(n)),
                Err(_) => continue,
            }
        }
        None
    }
}

/// Polls the futures together and returns the first ready output with its index.
async fn select_first<F: std::future::Future + Unpin>(mut futures: Vec<F>) -> (F::Output, usize) {
    std::future::poll_fn(move |cx| {
        for (index, future) in futures.iter_mut().enumerate() {
            if let std::task::Poll::Ready(out) = std::pin::Pin::new(future).poll(cx) {
                return std::task::Poll::Ready((out, index));
            }
        }
        std::task::Poll::Pending
    })
    .await
}

impl Default for Bus {
    fn default() -> Self {
        Bus::new(1024)
    }
}

impl Bus {
    /// A bus whose subscribers may fall `capacity` messages behind per topic.
    pub fn new(capacity: usize) -> Bus {
        Bus {
            inner: Arc::new(Inner {
                topics: Mutex::new(HashMap::new()),
                capacity: capacity.max(1),
                published: AtomicU64::new(0),
                delivered: AtomicU64::new(0),
            }),
        }
    }

    /// The topic point-to-point messages for `agent_id` travel on.
    pub fn agent_topic(agent_id: &str) -> String {
        format!("agent.{agent_id}")
    }

    /// Validates and routes `message`; returns how many subscribers got it.
    pub fn publish(&self, message: Message) -> Result<Delivery, BusError> {
        validate_name("sender_id", &message.sender_id)?;
        if message.expires_at.is_some_and(|at| at <= Utc::now()) {
            return Err(BusError::Expired(message.id));
        }
        let topic = match message.pattern {
            CommunicationPattern::PointToPoint | CommunicationPattern::RequestResponse => {
                let name = if message.pattern == CommunicationPattern::PointToPoint {
                    "point_to_point"
                } else {
                    "request_response"
                };
                let recipient = message
                    .recipient_id
                    .as_deref()
                    .ok_or(BusError::MissingRecipient(name))?;
                validate_name("recipient_id", recipient)?;
                Bus::agent_topic(recipient)
            }
            CommunicationPattern::Broadcast => BROADCAST_TOPIC.to_owned(),
            CommunicationPattern::PubSub => {
                let topic = message.topic.as_deref().ok_or(BusError::MissingTopic)?;
                validate_name("topic", topic)?;
                topic.to_owned()
            }
        };
        let sender = self.sender(&topic);
        let delivered = sender.send(Arc::new(message)).unwrap_or(0);
        self.inner.published.fetch_add(1, Ordering::Relaxed);
        self.inner
            .delivered
            .fetch_add(delivered as u64, Ordering::Relaxed);
        Ok(Delivery { delivered })
    }

    /// Subscribes to the given topics.
    pub fn subscribe(&self, topics: &[&str]) -> Subscription {
        Subscription {
            receivers: topics.iter().map(|t| self.sender(t).subscribe()).collect(),
        }
    }

    /// Subscribes to what an agent receives: its own topic and broadcasts.
    pub fn subscribe_agent(&self, agent_id: &str) -> Subscription {
        let own = Bus::agent_topic(agent_id);
        self.subscribe(&[own.as_str(), BROADCAST_TOPIC])
    }

    /// Counters.
    pub fn stats(&self) -> BusStats {
        let topics = self.inner.topics.lock().map(|t| t.len()).unwrap_or(0);
        BusStats {
            published: self.inner.published.load(Ordering::Relaxed),
            delivered: self.inner.delivered.load(Ordering::Relaxed),
            topics,
        }
    }

    /// Drops the channel of a topic nobody listens to any more (swarm rounds of a finished task).
    pub fn forget_topic(&self, topic: &str) {
        if let Ok(mut topics) = self.inner.topics.lock()
            && topics.get(topic).is_some_and(|s| s.receiver_count() == 0)
        {
            topics.remove(topic);
        }
    }

    fn sender(&self, topic: &str) -> broadcast::Sender<Arc<Message>> {
        let mut topics = self
            .inner
            .topics
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        topics
            .entry(topic.to_owned())
            .or_insert_with(|| broadcast::channel(self.inner.capacity).0)
            .clone()
    }
}

fn validate_name(field: &'static str, value: &str) -> Result<(), BusError> {
    let reason = if value.is_empty() {
        Some("must not be empty".to_owned())
    } else if value.len() > 256 {
        Some(format!(
            "must be at most 256 characters, got {}",
            value.len()
        ))
    } else {
        value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '/' | '-')))
            .map(|c| format!("character {c:?} is not allowed (use A-Z a-z 0-9 . _ : / -)"))
    };
    match reason {
        Some(reason) => Err(BusError::InvalidName { field, reason }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sutazai_core::{MessageType, Priority};

    fn message(pattern: CommunicationPattern) -> Message {
        Message {
            id: "m1".into(),
            sender_id: "orchestrator".into(),
            recipient_id: Some("senior-ai-engineer".into()),
            message_type: MessageType::TaskRequest,
            pattern,
            priority: Priority::High,
            topic: Some("swarm.t1".into()),
            payload: serde_json::Map::new(),
            metadata: serde_json::Map::new(),
            created_at: Utc::now(),
            expires_at: None,
        }
    }

    #[tokio::test]
    async fn routes_by_pattern() {
        let bus = Bus::default();
        let mut agent = bus.subscribe_agent("senior-ai-engineer");
        let mut other = bus.subscribe_agent("testing-qa-validator");
        let mut topic = bus.subscribe(&["swarm.t1"]);

        let d = bus
            .publish(message(CommunicationPattern::PointToPoint))
            .unwrap();
        assert_eq!(d.delivered, 1);
        assert!(matches!(agent.recv().await, Some(Received::Message(_))));
        assert!(other.try_recv().is_none());

        let d = bus
            .publish(message(CommunicationPattern::Broadcast))
            .unwrap();
        assert_eq!(d.delivered, 2);
        assert!(matches!(other.recv().await, Some(Received::Message(_))));

        let d = bus.publish(message(CommunicationPattern::PubSub)).unwrap();
        assert_eq!(d.delivered, 1);
        match topic.recv().await {
            Some(Received::Message(m)) => assert_eq!(m.pattern, CommunicationPattern::PubSub),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(bus.stats().published, 3);
        assert_eq!(bus.stats().delivered, 4);
    }

    #[test]
    fn rejects_bad_messages() {
        let bus = Bus::default();
        let mut m = message(CommunicationPattern::PointToPoint);
        m.recipient_id = None;
        assert_eq!(
            bus.publish(m),
            Err(BusError::MissingRecipient("point_to_point"))
        );
        let mut m = message(CommunicationPattern::PubSub);
        m.topic = Some("bad topic".into());
        assert!(matches!(
            bus.publish(m),
            Err(BusError::InvalidName { field: "topic", .. })
        ));
        let mut m = message(CommunicationPattern::Broadcast);
        m.expires_at = Some(Utc::now() - chrono::Duration::seconds(1));
        assert!(matches!(bus.publish(m), Err(BusError::Expired(_))));
    }

    #[tokio::test]
    async fn lagging_subscriber_is_told() {
        let bus = Bus::new(2);
        let mut sub = bus.subscribe(&["t"]);
        for _ in 0..5 {
            let mut m = message(CommunicationPattern::PubSub);
            m.topic = Some("t".into());
            bus.publish(m).unwrap();
        }
        assert!(matches!(sub.recv().await, Some(Received::Lagged(3))));
    }
}
