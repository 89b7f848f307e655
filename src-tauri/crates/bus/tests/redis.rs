//! Redis-specific behaviour of the bus, against a real `redis-server` (see `common`):
//! refused envelopes, crashed consumers, Redis restarts, retention trimming and two nodes
//! sharing one bus.

mod common;

use common::{expect, recv};

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use redis::aio::MultiplexedConnection;
use serde_json::{Map, json};
use sutazai_bus::{
    Bus, BusConfig, Codec, DeadLetterQuery, DeadReason, Delivery, Filter, MasterKey, TopicPattern,
};
use sutazai_core::{CommunicationPattern, Message, MessageType, Priority, ids};

fn config(test: &str) -> BusConfig {
    BusConfig {
        namespace: common::namespace(test),
        visibility_timeout: Duration::from_secs(1),
        max_attempts: 5,
        rate_limit: None,
        ..BusConfig::default()
    }
}

/// A second node on the same bus as `config`.
/// Two nodes (two processes, as far as the bus can tell) on one Redis with one key.
async fn two_nodes(redis: &common::TestRedis, cfg: &BusConfig) -> (Bus, Bus) {
    let key = MasterKey::generate();
    let first = Bus::redis(&redis.url, codec(&key), cfg.clone())
        .await
        .unwrap();
    let other = BusConfig {
        node_id: sutazai_bus::default_node_id(),
        ..cfg.clone()
    };
    let second = Bus::redis(&redis.url, codec(&key), other).await.unwrap();
    (first, second)
}

fn codec(key: &MasterKey) -> Codec {
    Codec::new(key, true, 1024)
}

fn message(pattern: CommunicationPattern) -> Message {
    let mut payload = Map::new();
    payload.insert("action".into(), json!("analyze"));
    Message {
        id: ids::new_id(),
        sender_id: "orchestrator".into(),
        recipient_id: None,
        message_type: MessageType::TaskRequest,
        pattern,
        priority: Priority::Normal,
        topic: None,
        payload,
        metadata: Map::new(),
        created_at: Utc::now(),
        expires_at: None,
    }
}

fn to_agent(agent: &str) -> Message {
    let mut m = message(CommunicationPattern::PointToPoint);
    m.recipient_id = Some(agent.to_owned());
    m
}

async fn raw_connection(url: &str) -> MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn xadd_raw(conn: &mut MultiplexedConnection, key: &str, envelope: &[u8]) {
    let _: String = redis::cmd("XADD")
        .arg(key)
        .arg("*")
        .arg("e")
        .arg(envelope)
        .query_async(conn)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_envelopes_are_dead_lettered_never_delivered() {
    let redis = common::TestRedis::get();
    let key = MasterKey::generate();
    let cfg = config("tamper");
    let ns = cfg.namespace.clone();
    let bus = Bus::redis(&redis.url, codec(&key), cfg).await.unwrap();
    let mut sub = bus.subscribe_agent("guarded-agent").await.unwrap();
    let inbox = format!("{ns}:inbox:guarded-agent:2");
    let mut conn = raw_connection(&redis.url).await;

    // A body byte flipped: the signature no longer matches.
    let tampered_msg = to_agent("guarded-agent");
    let mut tampered = codec(&key).encode(&tampered_msg).unwrap();
    let at = tampered.len() - 40;
    tampered[at] ^= 0x01;
    xadd_raw(&mut conn, &inbox, &tampered).await;
    // Signed with another key.
    let foreign_msg = to_agent("guarded-agent");
    let foreign = codec(&MasterKey::generate()).encode(&foreign_msg).unwrap();
    xadd_raw(&mut conn, &inbox, &foreign).await;
    // The signature stripped and the signed flag cleared.
    let unsigned_msg = to_agent("guarded-agent");
    let mut unsigned = codec(&key).encode(&unsigned_msg).unwrap();
    unsigned.truncate(unsigned.len() - 32);
    unsigned[3] &= !0b100;
    xadd_raw(&mut conn, &inbox, &unsigned).await;
    // Not an envelope at all.
    xadd_raw(&mut conn, &inbox, b"definitely not an envelope").await;
    // And one good message after them.
    let good = to_agent("guarded-agent");
    bus.publish(good.clone()).await.unwrap();

    let d = expect(&mut sub).await;
    assert_eq!(
        d.message.id, good.id,
        "only the intact message is delivered"
    );
    d.ack().await.unwrap();
    assert!(recv(&mut sub, Duration::from_millis(500)).await.is_none());

    let dead = bus
        .dead_letters(&DeadLetterQuery {
            reason: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(dead.len(), 4, "{dead:#?}");
    let by_header_id = |id: &str| {
        dead.iter()
            .find(|l| l.header.as_ref().and_then(|h| h["id"].as_str()) == Some(id))
            .unwrap_or_else(|| panic!("no dead letter with header id {id}: {dead:#?}"))
    };
    for (msg, reason) in [
        (&tampered_msg, DeadReason::BadSignature),
        (&foreign_msg, DeadReason::BadSignature),
        (&unsigned_msg, DeadReason::Unsigned),
    ] {
        let letter = by_header_id(&msg.id);
        assert_eq!(letter.reason, reason);
        assert_eq!(letter.queue, "inbox:guarded-agent");
        assert!(letter.message.is_none());
        let header = letter.header.as_ref().unwrap();
        assert_eq!(header["sender_id"], json!("orchestrator"));
        assert!(letter.raw_base64.as_deref().is_some_and(|b| !b.is_empty()));
    }
    let malformed: Vec<_> = dead
        .iter()
        .filter(|l| l.reason == DeadReason::Malformed)
        .collect();
    assert_eq!(malformed.len(), 1);
    assert!(malformed[0].header.is_none());
    let bad_signature = bus
        .dead_letters(&DeadLetterQuery {
            reason: Some(DeadReason::BadSignature),
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(bad_signature.len(), 2);
    // Refused entries are acknowledged: nothing stays pending.
    let pending: Vec<redis::Value> = redis::cmd("XPENDING")
        .arg(&inbox)
        .arg("agent:guarded-agent")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(pending.first(), Some(&redis::Value::Int(0)), "{pending:?}");
    bus.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_consumer_s_message_goes_to_another_node() {
    let redis = common::TestRedis::get();
    let cfg = config("crash");
    let (first, second) = two_nodes(&redis, &cfg).await;
    let mut doomed = first.subscribe_agent("crash-agent").await.unwrap();
    let m = to_agent("crash-agent");
    second.publish(m.clone()).await.unwrap();
    let held = expect(&mut doomed).await;
    let taken_at = Instant::now();
    assert_eq!(held.attempt, 1);
    // The process dies mid-handling: nothing is settled, its readers stop.
    drop(held);
    drop(doomed);
    first.shutdown();
    drop(first);

    let mut rescuer = second.subscribe_agent("crash-agent").await.unwrap();
    let again = expect(&mut rescuer).await;
    assert_eq!(again.message.id, m.id);
    assert_eq!(again.attempt, 2);
    assert!(
        taken_at.elapsed() >= Duration::from_millis(900),
        "re-claimed only after the visibility timeout ({:?})",
        taken_at.elapsed()
    );
    again.ack().await.unwrap();
    assert!(
        recv(&mut rescuer, Duration::from_millis(1500))
            .await
            .is_none()
    );
    second.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_but_unhanded_entries_are_released_when_a_subscription_drops() {
    let redis = common::TestRedis::get();
    let key = MasterKey::generate();
    let mut cfg = config("release");
    cfg.visibility_timeout = Duration::from_secs(30);
    let bus = Bus::redis(&redis.url, codec(&key), cfg).await.unwrap();
    let mut ids = HashSet::new();
    for _ in 0..5 {
        let m = to_agent("batch-agent");
        ids.insert(m.id.clone());
        bus.publish(m).await.unwrap();
    }
    // The first subscription reads all five in one batch but hands out only one.
    let mut first = bus.subscribe_agent("batch-agent").await.unwrap();
    let d = expect(&mut first).await;
    ids.remove(&d.message.id);
    d.ack().await.unwrap();
    drop(first);
    // The four it never handed out do not wait for the 30 s visibility timeout.
    let mut second = bus.subscribe_agent("batch-agent").await.unwrap();
    let mut got = HashSet::new();
    for _ in 0..4 {
        let d = expect(&mut second).await;
        assert_eq!(d.attempt, 1, "never handed out, so not an attempt");
        got.insert(d.message.id.clone());
        d.ack().await.unwrap();
    }
    assert_eq!(got, ids);
    bus.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_shared_deliveries_are_retried_for_that_consumer_only() {
    let redis = common::TestRedis::get();
    let key = MasterKey::generate();
    let mut cfg = config("retry");
    cfg.max_attempts = 2;
    // Retries here come from `fail`, not from the visibility timeout.
    cfg.visibility_timeout = Duration::from_secs(30);
    let bus = Bus::redis(&redis.url, codec(&key), cfg).await.unwrap();
    let mut x = bus.subscribe_agent("agent-x").await.unwrap();
    let mut y = bus.subscribe_agent("agent-y").await.unwrap();
    let mut one = bus.subscribe_topics("one", &["jobs.*"]).await.unwrap();
    let mut two = bus.subscribe_topics("two", &["jobs.#"]).await.unwrap();
    let mut everyone = message(CommunicationPattern::Broadcast);
    everyone.message_type = MessageType::SystemAnnouncement;
    bus.publish(everyone.clone()).await.unwrap();
    let mut job = message(CommunicationPattern::PubSub);
    job.topic = Some("jobs.a".into());
    bus.publish(job.clone()).await.unwrap();

    // A broadcast that agent-x fails comes back to agent-x only.
    let d = expect(&mut x).await;
    assert_eq!(
        (d.message.id.as_str(), d.attempt),
        (everyone.id.as_str(), 1)
    );
    d.fail("not now").await.unwrap();
    let d = expect(&mut x).await;
    assert_eq!(
        (d.message.id.as_str(), d.attempt),
        (everyone.id.as_str(), 2)
    );
    d.ack().await.unwrap();
    let d = expect(&mut y).await;
    assert_eq!(
        (d.message.id.as_str(), d.attempt),
        (everyone.id.as_str(), 1)
    );
    d.ack().await.unwrap();
    assert!(recv(&mut y, Duration::from_millis(500)).await.is_none());

    // A topic message that subscription "one" fails comes back to "one" only, at once,
    // and is dead-lettered when its attempts are used up.
    let d = expect(&mut one).await;
    assert_eq!((d.message.id.as_str(), d.attempt), (job.id.as_str(), 1));
    d.fail("boom 1").await.unwrap();
    let d = expect(&mut one).await;
    assert_eq!((d.message.id.as_str(), d.attempt), (job.id.as_str(), 2));
    d.fail("boom 2").await.unwrap();
    assert!(recv(&mut one, Duration::from_millis(500)).await.is_none());
    let d = expect(&mut two).await;
    assert_eq!((d.message.id.as_str(), d.attempt), (job.id.as_str(), 1));
    d.ack().await.unwrap();
    assert!(recv(&mut two, Duration::from_millis(500)).await.is_none());
    let dead = bus
        .dead_letters(&DeadLetterQuery {
            reason: Some(DeadReason::MaxAttempts),
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert_eq!(dead[0].queue, "group:one");
    assert_eq!(dead[0].attempts, 2);
    assert!(dead[0].detail.contains("boom 2"), "{}", dead[0].detail);
    let depths = bus.stats().await.unwrap().queues;
    for queue in ["group:one", "group:two", "inbox:agent-x", "inbox:agent-y"] {
        let depth = depths
            .iter()
            .find(|q| q.queue == queue)
            .unwrap_or_else(|| panic!("no {queue} in {depths:?}"));
        assert_eq!((depth.waiting, depth.pending), (0, 0), "{queue}");
    }
    bus.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_survive_a_redis_restart() {
    let redis = common::TestRedis::private();
    let url = redis.url.clone();
    let key = MasterKey::generate();
    let mut cfg = config("restart");
    cfg.visibility_timeout = Duration::from_secs(2);
    let bus = Bus::redis(&url, codec(&key), cfg).await.unwrap();
    let mut consumer = bus.subscribe_agent("durable-agent").await.unwrap();

    let received = Arc::new(Mutex::new(HashSet::new()));
    let seen = received.clone();
    let stop_consumer = tokio_util::sync::CancellationToken::new();
    let stopping = stop_consumer.clone();
    let consuming = tokio::spawn(async move {
        while !stopping.is_cancelled() {
            if let Some(d) = recv(&mut consumer, Duration::from_millis(200)).await {
                seen.lock().unwrap().insert(d.message.id.clone());
                // An acknowledgement lost to the restart only means a redelivery.
                let _ = d.ack().await;
            }
        }
    });

    let publisher = bus.clone();
    let producing = tokio::spawn(async move {
        let mut accepted = Vec::new();
        let mut refused = 0;
        for _ in 0..500 {
            let m = to_agent("durable-agent");
            let id = m.id.clone();
            match publisher.publish(m).await {
                Ok(_) => accepted.push(id),
                Err(_) => refused += 1,
            }
            tokio::time::sleep(Duration::from_millis(4)).await;
        }
        (accepted, refused)
    });

    tokio::time::sleep(Duration::from_millis(600)).await;
    let redis = tokio::task::spawn_blocking(move || {
        let mut redis = redis;
        redis.stop();
        std::thread::sleep(Duration::from_millis(300));
        redis.start();
        redis
    })
    .await
    .unwrap();

    let (accepted, refused) = producing.await.unwrap();
    assert!(
        accepted.len() >= 450,
        "{} accepted, {refused} refused",
        accepted.len()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let missing = {
            let seen = received.lock().unwrap();
            accepted.iter().filter(|id| !seen.contains(*id)).count()
        };
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} accepted messages never arrived",
            accepted.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop_consumer.cancel();
    consuming.await.unwrap();
    bus.shutdown();
    drop(redis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_trims_old_entries() {
    let redis = common::TestRedis::get();
    let key = MasterKey::generate();
    let mut cfg = config("retention");
    // The trimmer runs every quarter of the retention.
    cfg.retention = Duration::from_secs(2);
    let ns = cfg.namespace.clone();
    let bus = Bus::redis(&redis.url, codec(&key), cfg).await.unwrap();
    for _ in 0..300 {
        bus.publish(to_agent("old-agent")).await.unwrap();
    }
    let stream = format!("{ns}:inbox:old-agent:2");
    let mut conn = raw_connection(&redis.url).await;
    let len = |conn: &mut MultiplexedConnection| {
        let mut conn = conn.clone();
        let stream = stream.clone();
        async move {
            redis::cmd("XLEN")
                .arg(&stream)
                .query_async::<u64>(&mut conn)
                .await
                .unwrap()
        }
    };
    assert_eq!(len(&mut conn).await, 300);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let fresh = to_agent("old-agent");
    bus.publish(fresh.clone()).await.unwrap();
    // Trimmed by the bus's own trimmer, with no further publish needed.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut after = len(&mut conn).await;
    while after >= 50 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = len(&mut conn).await;
    }
    assert!(
        after < 50,
        "entries older than the retention are trimmed: {after} left"
    );
    let mut sub = bus.subscribe_agent("old-agent").await.unwrap();
    let mut ids = Vec::new();
    while let Some(d) = recv(&mut sub, Duration::from_millis(500)).await {
        ids.push(d.message.id.clone());
        d.ack().await.unwrap();
    }
    assert_eq!(ids.last(), Some(&fresh.id), "the fresh message is kept");
    bus.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_one_bus() {
    let redis = common::TestRedis::get();
    let mut cfg = config("nodes");
    // Longer than the waits below, so that a held delivery is not re-claimed meanwhile.
    cfg.visibility_timeout = Duration::from_secs(10);
    let (a, b) = two_nodes(&redis, &cfg).await;
    assert_ne!(a.node_id(), b.node_id());

    // Request-response across nodes: the reply finds its way back to the asking node.
    let mut service = b.subscribe_agent("remote-agent").await.unwrap();
    let responder = b.clone();
    let serving = tokio::spawn(async move {
        while let Some(d) = service.next().await {
            let mut answer = Map::new();
            answer.insert("served_by".into(), json!(responder.node_id()));
            responder
                .reply(&d.message, MessageType::TaskResponse, answer)
                .await
                .unwrap();
            d.ack().await.unwrap();
        }
    });
    for _ in 0..20 {
        let reply = a
            .request(to_agent("remote-agent"), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(reply.payload["served_by"], json!(b.node_id()));
    }
    serving.abort();

    // Broadcast: "shared" is served by both nodes, "solo" by one; each gets it once.
    let mut shared_a = a.subscribe_agent("shared").await.unwrap();
    let mut shared_b = b.subscribe_agent("shared").await.unwrap();
    let mut solo = b.subscribe_agent("solo").await.unwrap();
    let mut everyone = message(CommunicationPattern::Broadcast);
    everyone.message_type = MessageType::SystemAnnouncement;
    a.publish(everyone.clone()).await.unwrap();
    let (x, y) = tokio::join!(
        recv(&mut shared_a, Duration::from_millis(1500)),
        recv(&mut shared_b, Duration::from_millis(1500))
    );
    let got: Vec<Delivery> = x.into_iter().chain(y).collect();
    assert_eq!(
        got.len(),
        1,
        "one delivery per agent, whichever node serves it"
    );
    assert_eq!(got[0].message.id, everyone.id);
    for d in got {
        d.ack().await.unwrap();
    }
    let d = expect(&mut solo).await;
    assert_eq!(d.message.id, everyone.id);
    d.ack().await.unwrap();
    assert!(recv(&mut solo, Duration::from_millis(300)).await.is_none());
    a.shutdown();
    b.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observers_see_other_nodes_traffic() {
    let redis = common::TestRedis::get();
    let cfg = config("watch");
    let (a, b) = two_nodes(&redis, &cfg).await;
    // The inbox exists before the observer starts (`All` watches the inboxes it knows).
    let _worker = b.subscribe_agent("watched").await.unwrap();
    let mut all = a.observe(Filter::All).await.unwrap();
    let mut jobs = a
        .observe(Filter::Topics(vec![TopicPattern::parse("jobs.*").unwrap()]))
        .await
        .unwrap();
    let direct = to_agent("watched");
    let mut everyone = message(CommunicationPattern::Broadcast);
    everyone.message_type = MessageType::SystemAnnouncement;
    let mut job = message(CommunicationPattern::PubSub);
    job.topic = Some("jobs.a".into());
    let mut other = message(CommunicationPattern::PubSub);
    other.topic = Some("news.a".into());
    for m in [&direct, &everyone, &job, &other] {
        b.publish(m.clone()).await.unwrap();
    }
    let mut seen = Vec::new();
    for _ in 0..4 {
        let d = expect(&mut all).await;
        assert_eq!(d.attempt, 1);
        seen.push(d.message.id.clone());
    }
    assert_eq!(seen, [direct.id, everyone.id, job.id.clone(), other.id]);
    assert!(recv(&mut all, Duration::from_millis(300)).await.is_none());
    assert_eq!(expect(&mut jobs).await.message.id, job.id);
    assert!(recv(&mut jobs, Duration::from_millis(300)).await.is_none());
    a.shutdown();
    b.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_no_redis_fails_fast_without_the_password() {
    let port = common::free_port();
    let began = Instant::now();
    let error = Bus::redis(
        &format!("redis://:hunter2@127.0.0.1:{port}/0"),
        codec(&MasterKey::generate()),
        config("unreachable"),
    )
    .await
    .unwrap_err();
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(error.code(), "bus_unavailable");
    let text = error.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

/// A dead letter's message is stored sealed (signed and encrypted), never as clear JSON,
/// and a clear message written into Redis by someone else is not trusted for replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_keep_their_message_sealed() {
    let redis = common::TestRedis::get();
    let cfg = config("sealed-dead");
    let key = MasterKey::generate();
    let bus = Bus::redis(&redis.url, codec(&key), cfg.clone())
        .await
        .unwrap();
    let mut m = to_agent("sealed-agent");
    m.payload
        .insert("secret".into(), json!("top-secret-payload"));
    m.expires_at = Some(Utc::now() - chrono::Duration::seconds(1));
    assert!(bus.publish(m.clone()).await.is_err());

    let mut conn = raw_connection(&redis.url).await;
    let dead_key = format!("{}:dead", cfg.namespace);
    let stored: std::collections::HashMap<String, String> =
        redis::AsyncCommands::hgetall(&mut conn, &dead_key)
            .await
            .unwrap();
    assert_eq!(stored.len(), 1);
    let (id, json) = stored.into_iter().next().unwrap();
    assert!(
        !json.contains("top-secret-payload"),
        "clear payload in Redis: {json}"
    );
    assert!(json.contains("\"sealed\""), "{json}");
    let letter = bus.dead_letter(&id).await.unwrap();
    assert_eq!(
        letter.message.as_ref(),
        Some(&m),
        "read back through the codec"
    );

    // Someone with Redis access swaps in a clear message of their own.
    let mut forged: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mut evil = m.clone();
    evil.payload.insert("secret".into(), json!("forged"));
    forged["message"] = serde_json::to_value(&evil).unwrap();
    forged.as_object_mut().unwrap().remove("sealed");
    let _: () = redis::AsyncCommands::hset(&mut conn, &dead_key, &id, forged.to_string())
        .await
        .unwrap();
    let letter = bus.dead_letter(&id).await.unwrap();
    assert_eq!(letter.message, None, "a clear message in Redis is ignored");
    assert_eq!(bus.replay(&id).await.unwrap_err().code(), "not_replayable");
}
