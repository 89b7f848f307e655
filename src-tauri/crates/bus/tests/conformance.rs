//! The bus conformance suite: the same behaviour checks run against the in-process
//! backend and the Redis backend (a real `redis-server`, see `common`).

mod common;

use common::{expect, recv};

use std::collections::HashSet;
use std::future::Future;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{Map, Value, json};
use sutazai_bus::{
    Bus, BusConfig, BusError, Codec, DeadLetterQuery, DeadReason, Filter, MasterKey, NodeInfo,
    RateLimit, Subscription,
};
use sutazai_core::{CommunicationPattern, Message, MessageType, Priority, ids};

/// Makes a bus of the backend under test with the given settings; keeps what must live
/// as long as the bus (a private Redis server).
trait Backend: Send + Sync + 'static {
    fn make(&self, config: BusConfig) -> impl Future<Output = Bus> + Send;
}

fn config(test: &str) -> BusConfig {
    BusConfig {
        namespace: common::namespace(test),
        visibility_timeout: Duration::from_millis(600),
        max_attempts: 3,
        ..BusConfig::default()
    }
}

fn message(sender: &str, pattern: CommunicationPattern) -> Message {
    let mut payload = Map::new();
    payload.insert("task_id".into(), json!("123"));
    payload.insert("action".into(), json!("analyze"));
    let mut metadata = Map::new();
    metadata.insert("trace".into(), json!({"span": 7, "tags": ["a", "b"]}));
    Message {
        id: ids::new_id(),
        sender_id: sender.to_owned(),
        recipient_id: None,
        message_type: MessageType::TaskRequest,
        pattern,
        priority: Priority::Normal,
        topic: None,
        payload,
        metadata,
        created_at: Utc::now(),
        expires_at: None,
    }
}

fn to_agent(agent: &str) -> Message {
    let mut m = message("orchestrator", CommunicationPattern::PointToPoint);
    m.recipient_id = Some(agent.to_owned());
    m
}

fn on_topic(topic: &str) -> Message {
    let mut m = message("publisher", CommunicationPattern::PubSub);
    m.topic = Some(topic.to_owned());
    m
}

async fn expect_none(sub: &mut Subscription) {
    if let Some(d) = recv(sub, Duration::from_millis(300)).await {
        panic!("unexpected delivery {:?}", d.message);
    }
}

async fn point_to_point(b: &impl Backend) {
    let bus = b.make(config("p2p")).await;
    let mut a = bus.subscribe_agent("senior-ai-engineer").await.unwrap();
    let mut other = bus.subscribe_agent("testing-qa-validator").await.unwrap();
    let mut sent = to_agent("senior-ai-engineer");
    sent.priority = Priority::High;
    sent.expires_at = Some(Utc::now() + chrono::Duration::minutes(5));
    let published = bus.send(sent.clone()).await.unwrap();
    assert_eq!(published.message_id, sent.id);
    assert_eq!(published.queue, "inbox:senior-ai-engineer");
    let got = expect(&mut a).await;
    assert_eq!(*got.message, sent, "every field survives the trip");
    assert_eq!(got.attempt, 1);
    got.ack().await.unwrap();
    expect_none(&mut other).await;
    expect_none(&mut a).await;
}

async fn inbox_waits_for_its_consumer(b: &impl Backend) {
    let bus = b.make(config("late")).await;
    let sent = to_agent("late-agent");
    bus.publish(sent.clone()).await.unwrap();
    let mut sub = bus.subscribe_agent("late-agent").await.unwrap();
    let got = expect(&mut sub).await;
    assert_eq!(got.message.id, sent.id);
    got.ack().await.unwrap();
}

async fn priority_order(b: &impl Backend) {
    let bus = b.make(config("prio")).await;
    let levels = [
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Critical,
    ];
    let mut sent = Vec::new();
    for round in 0..3 {
        for level in levels {
            let mut m = to_agent("prio-agent");
            m.priority = level;
            m.payload.insert("n".into(), json!(round));
            sent.push(m.clone());
            bus.publish(m).await.unwrap();
        }
    }
    let mut sub = bus.subscribe_agent("prio-agent").await.unwrap();
    let mut got = Vec::new();
    for _ in 0..sent.len() {
        let d = expect(&mut sub).await;
        got.push((d.message.priority, d.message.payload["n"].clone()));
        d.ack().await.unwrap();
    }
    let mut want = Vec::new();
    for level in levels.iter().rev() {
        for round in 0..3 {
            want.push((*level, json!(round)));
        }
    }
    assert_eq!(
        got, want,
        "critical, high, normal, low; FIFO within a level"
    );
}

async fn competing_consumers(b: &impl Backend) {
    let bus = b.make(config("compete")).await;
    let mut first = bus.subscribe_agent("shared-agent").await.unwrap();
    let mut second = bus.subscribe_agent("shared-agent").await.unwrap();
    let n = 100;
    let mut ids = HashSet::new();
    for _ in 0..n {
        let m = to_agent("shared-agent");
        ids.insert(m.id.clone());
        bus.publish(m).await.unwrap();
    }
    let drain = |mut sub: Subscription| async move {
        let mut seen = Vec::new();
        while let Some(d) = recv(&mut sub, Duration::from_millis(1500)).await {
            seen.push(d.message.id.clone());
            d.ack().await.unwrap();
        }
        seen
    };
    let (a, b2) = tokio::join!(drain(first), drain(second));
    let total = a.len() + b2.len();
    let unique: HashSet<String> = a.into_iter().chain(b2).collect();
    assert_eq!(total, n, "each message delivered once");
    assert_eq!(unique, ids);
    first = bus.subscribe_agent("shared-agent").await.unwrap();
    expect_none(&mut first).await;
    second = bus.subscribe_agent("shared-agent").await.unwrap();
    expect_none(&mut second).await;
}

async fn broadcast_reaches_every_agent_once(b: &impl Backend) {
    let bus = b.make(config("bcast")).await;
    let mut e = bus.subscribe_agent("agent-e").await.unwrap();
    let mut f = bus.subscribe_agent("agent-f").await.unwrap();
    // agent-g subscribed once and is away when the broadcast goes out.
    drop(bus.subscribe_agent("agent-g").await.unwrap());
    let mut m = message("orchestrator", CommunicationPattern::Broadcast);
    m.message_type = MessageType::SystemAnnouncement;
    let published = bus.send(m.clone()).await.unwrap();
    assert_eq!(published.queue, "broadcast");
    for sub in [&mut e, &mut f] {
        let d = expect(sub).await;
        assert_eq!(d.message.id, m.id);
        d.ack().await.unwrap();
        expect_none(sub).await;
    }
    let mut g = bus.subscribe_agent("agent-g").await.unwrap();
    let d = expect(&mut g).await;
    assert_eq!(d.message.id, m.id, "a briefly absent agent still gets it");
    d.ack().await.unwrap();
}

async fn topics_with_wildcards(b: &impl Backend) {
    let bus = b.make(config("topics")).await;
    let mut watch = bus
        .subscribe_topics("watch", &["swarm.*", "alerts.#"])
        .await
        .unwrap();
    let topics = [
        ("swarm.t1", true),
        ("swarm.t1.votes", false),
        ("alerts", true),
        ("other.t1", false),
        ("alerts.cpu.high", true),
    ];
    for (topic, _) in topics {
        let published = bus.send(on_topic(topic)).await.unwrap();
        assert_eq!(published.queue, format!("topic:{topic}"));
    }
    for (topic, wanted) in topics {
        if wanted {
            let d = expect(&mut watch).await;
            assert_eq!(d.message.topic.as_deref(), Some(topic));
            d.ack().await.unwrap();
        }
    }
    expect_none(&mut watch).await;
}

async fn durable_topic_subscription(b: &impl Backend) {
    let bus = b.make(config("durable")).await;
    drop(bus.subscribe_topics("later", &["news.*"]).await.unwrap());
    let m = on_topic("news.a");
    bus.publish(m.clone()).await.unwrap();
    let mut later = bus.subscribe_topics("later", &["news.*"]).await.unwrap();
    let d = expect(&mut later).await;
    assert_eq!(
        d.message.id, m.id,
        "published while away, delivered on return"
    );
    d.ack().await.unwrap();
    drop(later);
    assert!(bus.unsubscribe("later").await.unwrap());
    assert!(!bus.unsubscribe("later").await.unwrap());
}

async fn request_response(b: &impl Backend) {
    let bus = b.make(config("reqrep")).await;
    let mut echo = bus.subscribe_agent("echo-agent").await.unwrap();
    let responder = bus.clone();
    let server = tokio::spawn(async move {
        while let Some(d) = echo.next().await {
            let mut progress = Map::new();
            progress.insert("stage".into(), json!("working"));
            responder
                .reply(&d.message, MessageType::StatusUpdate, progress)
                .await
                .unwrap();
            let mut answer = Map::new();
            answer.insert("echo".into(), d.message.payload["action"].clone());
            responder
                .reply(&d.message, MessageType::TaskResponse, answer)
                .await
                .unwrap();
            d.ack().await.unwrap();
        }
    });
    for _ in 0..3 {
        let request = to_agent("echo-agent");
        let id = request.id.clone();
        let mut updates = 0;
        let reply = bus
            .request_with(request, Duration::from_secs(5), |m| {
                assert_eq!(m.message_type, MessageType::StatusUpdate);
                updates += 1;
            })
            .await
            .unwrap();
        assert_eq!(updates, 1);
        assert_eq!(reply.message_type, MessageType::TaskResponse);
        assert_eq!(reply.payload["echo"], json!("analyze"));
        assert_eq!(reply.metadata["correlation_id"], json!(id));
        assert_eq!(reply.sender_id, "echo-agent");
    }
    let began = Instant::now();
    let error = bus
        .request(to_agent("nobody-home"), Duration::from_millis(300))
        .await
        .unwrap_err();
    assert_eq!(error.code(), "reply_timeout");
    assert!(matches!(error, BusError::Timeout { ref recipient, .. } if recipient == "nobody-home"));
    let waited = began.elapsed();
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    server.abort();
}

async fn expired_messages_are_dead_lettered(b: &impl Backend) {
    let bus = b.make(config("expiry")).await;
    let mut m = to_agent("slow-agent");
    m.expires_at = Some(Utc::now() + chrono::Duration::milliseconds(200));
    bus.publish(m.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut sub = bus.subscribe_agent("slow-agent").await.unwrap();
    expect_none(&mut sub).await;
    let mut stale = to_agent("slow-agent");
    stale.expires_at = Some(Utc::now() - chrono::Duration::seconds(1));
    let error = bus.publish(stale.clone()).await.unwrap_err();
    assert_eq!(error.code(), "message_expired");
    let dead = bus
        .dead_letters(&DeadLetterQuery {
            reason: Some(DeadReason::Expired),
            limit: 10,
        })
        .await
        .unwrap();
    let ids: HashSet<&str> = dead
        .iter()
        .filter_map(|l| l.message.as_ref().map(|m| m.id.as_str()))
        .collect();
    assert!(
        ids.contains(m.id.as_str()),
        "expired in the queue: {dead:?}"
    );
    assert!(ids.contains(stale.id.as_str()), "expired at the door");
}

async fn failing_handler_ends_in_dead_letters(b: &impl Backend) {
    let bus = b.make(config("attempts")).await;
    let mut sub = bus.subscribe_agent("flaky-agent").await.unwrap();
    let m = to_agent("flaky-agent");
    bus.publish(m.clone()).await.unwrap();
    for attempt in 1..=3 {
        let d = expect(&mut sub).await;
        assert_eq!(d.message.id, m.id);
        assert_eq!(d.attempt, attempt);
        d.fail(&format!("boom {attempt}")).await.unwrap();
    }
    expect_none(&mut sub).await;
    let dead = bus
        .dead_letters(&DeadLetterQuery {
            reason: Some(DeadReason::MaxAttempts),
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].attempts, 3);
    assert!(dead[0].detail.contains("boom 3"), "{}", dead[0].detail);
    assert_eq!(dead[0].queue, "inbox:flaky-agent");
}

async fn unacknowledged_messages_are_reclaimed(b: &impl Backend) {
    let bus = b.make(config("visibility")).await;
    let mut stuck = bus.subscribe_agent("reclaim-agent").await.unwrap();
    let m = to_agent("reclaim-agent");
    bus.publish(m.clone()).await.unwrap();
    let held = expect(&mut stuck).await;
    assert_eq!(held.attempt, 1);
    // The holder neither acknowledges nor gives up: another consumer gets it after the
    // visibility timeout (600 ms here).
    let mut rescuer = bus.subscribe_agent("reclaim-agent").await.unwrap();
    let again = expect(&mut rescuer).await;
    assert_eq!(again.message.id, m.id);
    assert_eq!(again.attempt, 2);
    again.ack().await.unwrap();
    // A late acknowledgement from the first holder is harmless.
    held.ack().await.unwrap();
    expect_none(&mut rescuer).await;
}

async fn extended_delivery_stays(b: &impl Backend) {
    let bus = b.make(config("extend")).await;
    let mut worker = bus.subscribe_agent("long-agent").await.unwrap();
    bus.publish(to_agent("long-agent")).await.unwrap();
    let held = expect(&mut worker).await;
    let mut other = bus.subscribe_agent("long-agent").await.unwrap();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        held.extend().await.unwrap();
    }
    expect_none(&mut other).await;
    held.ack().await.unwrap();
}

async fn dead_letter_operations(b: &impl Backend) {
    let bus = b.make(config("dlq")).await;
    let mut first = to_agent("dlq-agent");
    first.expires_at = Some(Utc::now() - chrono::Duration::seconds(1));
    let mut second = first.clone();
    second.id = ids::new_id();
    assert!(bus.publish(first.clone()).await.is_err());
    assert!(bus.publish(second.clone()).await.is_err());
    let all = bus
        .dead_letters(&DeadLetterQuery {
            reason: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(
        all[0].message.as_ref().map(|m| m.id.clone()),
        Some(second.id.clone()),
        "newest first"
    );
    let one = bus.dead_letter(&all[1].id).await.unwrap();
    assert_eq!(one, all[1]);
    assert_eq!(one.reason, DeadReason::Expired);

    let replayed = bus.replay(&all[1].id).await.unwrap();
    assert_eq!(replayed.message_id, first.id);
    let mut sub = bus.subscribe_agent("dlq-agent").await.unwrap();
    let d = expect(&mut sub).await;
    assert_eq!(d.message.id, first.id);
    assert_eq!(d.message.expires_at, None, "replay drops a past expiry");
    d.ack().await.unwrap();
    assert_eq!(
        bus.dead_letter(&all[1].id).await.unwrap_err().code(),
        "dead_letter_not_found"
    );
    assert_eq!(bus.stats().await.unwrap().dead_letters, 1);
    assert_eq!(bus.purge_dead_letters().await.unwrap(), 1);
    assert!(
        bus.dead_letters(&DeadLetterQuery {
            reason: None,
            limit: 10
        })
        .await
        .unwrap()
        .is_empty()
    );
    assert_eq!(
        bus.replay("no-such-letter").await.unwrap_err().code(),
        "dead_letter_not_found"
    );
}

async fn rate_limit(b: &impl Backend) {
    let mut cfg = config("rate");
    cfg.rate_limit = Some(RateLimit {
        per_second: 2.0,
        burst: 3,
    });
    let bus = b.make(cfg).await;
    let mut flooder = to_agent("rate-agent");
    flooder.sender_id = "flooder".into();
    for _ in 0..3 {
        let mut m = flooder.clone();
        m.id = ids::new_id();
        bus.send(m).await.unwrap();
    }
    let mut over = flooder.clone();
    over.id = ids::new_id();
    let error = bus.send(over.clone()).await.unwrap_err();
    assert_eq!(error.code(), "rate_limited");
    assert!(error.to_string().contains("flooder"), "{error}");
    // Another sender is unaffected; internal publishing is not limited.
    let mut calm = to_agent("rate-agent");
    calm.sender_id = "calm".into();
    bus.send(calm).await.unwrap();
    let mut internal = flooder.clone();
    internal.id = ids::new_id();
    bus.publish(internal).await.unwrap();
    let dead = bus
        .dead_letters(&DeadLetterQuery {
            reason: Some(DeadReason::RateLimited),
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].message.as_ref().map(|m| m.id.clone()),
        Some(over.id)
    );
    assert_eq!(bus.stats().await.unwrap().rate_limited, 1);
}

async fn invalid_messages_are_refused(b: &impl Backend) {
    let bus = b.make(config("invalid")).await;
    let mut m = to_agent("x");
    m.recipient_id = None;
    assert_eq!(
        bus.publish(m).await.unwrap_err().code(),
        "missing_recipient"
    );
    let mut m = on_topic("t");
    m.topic = None;
    assert_eq!(bus.publish(m).await.unwrap_err().code(), "missing_topic");
    assert_eq!(
        bus.publish(on_topic("bad topic")).await.unwrap_err().code(),
        "invalid_name"
    );
    assert_eq!(
        bus.publish(on_topic("swarm.*")).await.unwrap_err().code(),
        "invalid_name"
    );
    let mut m = to_agent("x");
    m.sender_id = String::new();
    assert_eq!(bus.publish(m).await.unwrap_err().code(), "invalid_name");
    assert_eq!(
        bus.subscribe_topics("s", &["a.#.b"])
            .await
            .unwrap_err()
            .code(),
        "invalid_name"
    );
    let none: [&str; 0] = [];
    assert!(bus.subscribe_topics("s", &none).await.is_err());
}

async fn large_payload(b: &impl Backend) {
    let bus = b.make(config("large")).await;
    let mut sub = bus.subscribe_agent("big-agent").await.unwrap();
    let mut m = to_agent("big-agent");
    let text: String = (0..1_000_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    m.payload.insert("document".into(), Value::String(text));
    bus.publish(m.clone()).await.unwrap();
    let d = expect(&mut sub).await;
    assert_eq!(*d.message, m);
    d.ack().await.unwrap();
}

async fn stats_and_markers(b: &impl Backend) {
    let bus = b.make(config("stats")).await;
    for _ in 0..5 {
        bus.publish(to_agent("counted-agent")).await.unwrap();
    }
    let stats = bus.stats().await.unwrap();
    assert!(stats.published >= 5);
    assert!(stats.messages_per_minute >= 5);
    let depth = stats
        .queues
        .iter()
        .find(|q| q.queue == "inbox:counted-agent")
        .unwrap_or_else(|| panic!("no depth for the inbox: {:?}", stats.queues));
    assert_eq!(depth.waiting + depth.pending, 5);

    assert!(!bus.was_handled("m-1").await.unwrap());
    bus.mark_handled("m-1").await.unwrap();
    assert!(bus.was_handled("m-1").await.unwrap());

    let now = Utc::now();
    bus.heartbeat(NodeInfo {
        node_id: bus.node_id().to_owned(),
        role: "worker".into(),
        agents: vec!["counted-agent".into()],
        host: "here".into(),
        pid: std::process::id(),
        started_at: now,
        last_seen: now,
        handled: 0,
        alive: false,
    })
    .await
    .unwrap();
    let nodes = bus.nodes().await.unwrap();
    let me = nodes
        .iter()
        .find(|n| n.node_id == bus.node_id())
        .expect("this node is listed");
    assert!(me.alive);
    assert_eq!(me.agents, vec!["counted-agent".to_owned()]);
}

async fn observers_do_not_consume(b: &impl Backend) {
    let bus = b.make(config("observe")).await;
    let mut consumer = bus.subscribe_agent("watched-agent").await.unwrap();
    let mut watcher = bus
        .observe(Filter::Agent("watched-agent".into()))
        .await
        .unwrap();
    let mine = to_agent("watched-agent");
    bus.publish(to_agent("someone-else")).await.unwrap();
    bus.publish(mine.clone()).await.unwrap();
    let mut everyone = message("orchestrator", CommunicationPattern::Broadcast);
    everyone.message_type = MessageType::SystemAnnouncement;
    bus.publish(everyone.clone()).await.unwrap();
    let seen = [expect(&mut watcher).await, expect(&mut watcher).await];
    assert_eq!(seen[0].message.id, mine.id);
    assert_eq!(seen[1].message.id, everyone.id);
    expect_none(&mut watcher).await;
    let mut consumed = HashSet::new();
    for _ in 0..2 {
        let d = expect(&mut consumer).await;
        consumed.insert(d.message.id.clone());
        d.ack().await.unwrap();
    }
    assert_eq!(consumed, HashSet::from([mine.id, everyone.id]));
}

macro_rules! conformance {
    ($backend:expr) => {
        conformance!(@tests $backend;
            point_to_point,
            inbox_waits_for_its_consumer,
            priority_order,
            competing_consumers,
            broadcast_reaches_every_agent_once,
            topics_with_wildcards,
            durable_topic_subscription,
            request_response,
            expired_messages_are_dead_lettered,
            failing_handler_ends_in_dead_letters,
            unacknowledged_messages_are_reclaimed,
            extended_delivery_stays,
            dead_letter_operations,
            rate_limit,
            invalid_messages_are_refused,
            large_payload,
            stats_and_markers,
            observers_do_not_consume,
        );
    };
    (@tests $backend:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let backend = $backend;
                super::$name(&backend).await;
            }
        )*
    };
}

struct InProcess;

impl Backend for InProcess {
    async fn make(&self, config: BusConfig) -> Bus {
        Bus::in_process(config)
    }
}

struct OnRedis {
    redis: common::TestRedis,
}

impl Backend for OnRedis {
    async fn make(&self, config: BusConfig) -> Bus {
        let codec = Codec::new(&MasterKey::generate(), true, 1024);
        Bus::redis(&self.redis.url, codec, config)
            .await
            .expect("connect to the test redis-server")
    }
}

mod in_process {
    use super::*;
    conformance!(InProcess);
}

mod redis {
    use super::*;
    conformance!(OnRedis {
        redis: common::TestRedis::get()
    });
}
