//! Bus benchmark: messages/s and latency for point-to-point and request-response with
//! 256-byte payloads, on the in-process backend, the Redis backend, and a raw `redis`
//! crate XADD/XREADGROUP/XACK loop on the same server for comparison.
//!
//! `cargo bench -p sutazai-bus --bench bus` (uses `SUTAZAI_TEST_REDIS_URL` when set,
//! otherwise starts a private `redis-server`). Results go to BENCHMARKS.md by hand.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use hdrhistogram::Histogram;
use serde_json::{Map, Value};
use sutazai_bus::{Bus, BusConfig, Codec, MasterKey};
use sutazai_core::{CommunicationPattern, Message, MessageType, Priority, ids};

/// The allocator the app binaries use (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PAYLOAD: usize = 256;
/// Publishes in flight at once (the multiplexed Redis connection pipelines them).
const IN_FLIGHT: usize = 64;

fn message(agent: &str) -> Message {
    let mut payload = Map::new();
    payload.insert("data".into(), Value::String("x".repeat(PAYLOAD)));
    Message {
        id: ids::new_id(),
        sender_id: "bench".into(),
        recipient_id: Some(agent.into()),
        message_type: MessageType::TaskRequest,
        pattern: CommunicationPattern::PointToPoint,
        priority: Priority::Normal,
        topic: None,
        payload,
        metadata: Map::new(),
        created_at: Utc::now(),
        expires_at: None,
    }
}

fn config(name: &str) -> BusConfig {
    BusConfig {
        namespace: common::namespace(name),
        rate_limit: None,
        ..BusConfig::default()
    }
}

struct Row {
    name: String,
    per_second: f64,
    p50_us: f64,
    p99_us: f64,
}

fn print(rows: &[Row]) {
    println!("| case | messages/s | p50 | p99 |");
    println!("|---|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {:.0} | {:.1} µs | {:.1} µs |",
            r.name, r.per_second, r.p50_us, r.p99_us
        );
    }
}

/// Throughput: one producer keeps `in_flight` publishes going, one consumer receives and
/// acknowledges (up to `in_flight` acknowledgements in flight); latency is from just
/// before the publish to receipt.
async fn point_to_point(bus: &Bus, n: usize, in_flight: usize, label: &str) -> Row {
    let agent = format!("bench-{}", ids::new_id());
    let mut sub = bus.subscribe_agent(&agent).await.expect("subscribe");
    let messages: Vec<Message> = (0..n).map(|_| message(&agent)).collect();
    let began = Instant::now();
    let producer = {
        let bus = bus.clone();
        tokio::spawn(async move {
            let mut pending = FuturesUnordered::new();
            for mut m in messages {
                m.created_at = Utc::now();
                if in_flight <= 1 {
                    bus.publish(m).await.expect("publish");
                    continue;
                }
                if pending.len() >= in_flight {
                    pending.next().await;
                }
                let bus = bus.clone();
                pending.push(async move { bus.publish(m).await.expect("publish") });
            }
            while pending.next().await.is_some() {}
        })
    };
    let mut hist = Histogram::<u64>::new(3).expect("histogram");
    let mut acks = FuturesUnordered::new();
    for _ in 0..n {
        let d = sub.next().await.expect("delivery");
        let age = (Utc::now() - d.message.created_at)
            .num_microseconds()
            .unwrap_or(0)
            .max(1) as u64;
        let _ = hist.record(age);
        if in_flight <= 1 {
            d.ack().await.expect("ack");
            continue;
        }
        acks.push(d.ack());
        if acks.len() >= in_flight {
            acks.next().await;
        }
    }
    while acks.next().await.is_some() {}
    let elapsed = began.elapsed();
    producer.await.expect("producer");
    Row {
        name: format!("{label} point-to-point"),
        per_second: n as f64 / elapsed.as_secs_f64(),
        p50_us: hist.value_at_quantile(0.5) as f64,
        p99_us: hist.value_at_quantile(0.99) as f64,
    }
}

/// Publish `n` messages, then drain them: each side's cost without the other running.
async fn phases(bus: &Bus, n: usize) {
    let agent = format!("phase-{}", ids::new_id());
    let mut sub = bus.subscribe_agent(&agent).await.expect("subscribe");
    let messages: Vec<Message> = (0..n).map(|_| message(&agent)).collect();
    let t = Instant::now();
    for m in messages {
        bus.publish(m).await.expect("publish");
    }
    let publish = t.elapsed();
    let t = Instant::now();
    for _ in 0..n {
        sub.next()
            .await
            .expect("delivery")
            .ack()
            .await
            .expect("ack");
    }
    let drain = t.elapsed();
    eprintln!(
        "phases: publish {:.0}/s, drain {:.0}/s",
        n as f64 / publish.as_secs_f64(),
        n as f64 / drain.as_secs_f64()
    );
}

/// `phases` on Redis: publishing with IN_FLIGHT in flight, then draining.
async fn phases_redis(bus: &Bus, n: usize) {
    let agent = format!("phase-{}", ids::new_id());
    let mut sub = bus.subscribe_agent(&agent).await.expect("subscribe");
    let messages: Vec<Message> = (0..n).map(|_| message(&agent)).collect();
    let t = Instant::now();
    let mut pending = FuturesUnordered::new();
    for m in messages {
        if pending.len() >= IN_FLIGHT {
            pending.next().await;
        }
        pending.push(bus.publish(m));
    }
    while pending.next().await.is_some() {}
    let publish = t.elapsed();
    let t = Instant::now();
    let mut acks = FuturesUnordered::new();
    for _ in 0..n {
        let d = sub.next().await.expect("delivery");
        acks.push(d.ack());
        if acks.len() >= IN_FLIGHT {
            acks.next().await;
        }
    }
    while acks.next().await.is_some() {}
    let drain = t.elapsed();
    eprintln!(
        "redis phases: publish {:.0}/s, drain {:.0}/s",
        n as f64 / publish.as_secs_f64(),
        n as f64 / drain.as_secs_f64()
    );
}

/// Sequential request-response round trips to an echo responder.
async fn request_response(bus: &Bus, n: usize, label: &str) -> Row {
    let agent = format!("echo-{}", ids::new_id());
    let mut sub = bus.subscribe_agent(&agent).await.expect("subscribe");
    let responder = bus.clone();
    let server = tokio::spawn(async move {
        while let Some(d) = sub.next().await {
            let mut answer = Map::new();
            answer.insert("ok".into(), Value::Bool(true));
            let _ = responder
                .reply(&d.message, MessageType::TaskResponse, answer)
                .await;
            let _ = d.ack().await;
        }
    });
    // Warm-up.
    for _ in 0..100 {
        bus.request(message(&agent), Duration::from_secs(5))
            .await
            .expect("warm-up request");
    }
    let mut hist = Histogram::<u64>::new(3).expect("histogram");
    let began = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        bus.request(message(&agent), Duration::from_secs(5))
            .await
            .expect("request");
        let _ = hist.record(t.elapsed().as_micros().max(1) as u64);
    }
    let elapsed = began.elapsed();
    server.abort();
    Row {
        name: format!("{label} request-response"),
        per_second: n as f64 / elapsed.as_secs_f64(),
        p50_us: hist.value_at_quantile(0.5) as f64,
        p99_us: hist.value_at_quantile(0.99) as f64,
    }
}

/// The same shape as `point_to_point`, straight on the `redis` crate: XADD with
/// IN_FLIGHT in flight; one consumer doing XREADGROUP COUNT 128 and one XACK per batch.
async fn raw_redis(url: &str, n: usize) -> Row {
    use redis::AsyncCommands as _;
    use redis::streams::{StreamReadOptions, StreamReadReply};
    let client = redis::Client::open(url).expect("client");
    let conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let mut reader = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let key = format!("raw:{}", ids::new_id());
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&key)
        .arg("g")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut reader.clone())
        .await
        .expect("group");
    let body = "x".repeat(PAYLOAD);
    let began = Instant::now();
    let producer = {
        let conn = conn.clone();
        let key = key.clone();
        tokio::spawn(async move {
            let mut pending = FuturesUnordered::new();
            for _ in 0..n {
                if pending.len() >= IN_FLIGHT {
                    pending.next().await;
                }
                let mut conn = conn.clone();
                let key = key.clone();
                let sent = Utc::now().timestamp_micros().to_string();
                let body = body.clone();
                pending.push(async move {
                    let _: String = conn
                        .xadd(&key, "*", &[("t", sent.as_str()), ("e", body.as_str())])
                        .await
                        .expect("xadd");
                });
            }
            while pending.next().await.is_some() {}
        })
    };
    let mut hist = Histogram::<u64>::new(3).expect("histogram");
    let mut received = 0;
    let options = StreamReadOptions::default()
        .group("g", "c")
        .count(128)
        .block(1000);
    let mut acker = conn.clone();
    while received < n {
        let reply: StreamReadReply = reader
            .xread_options(&[&key], &[">"], &options)
            .await
            .expect("xreadgroup");
        let mut ids = Vec::new();
        for stream in reply.keys {
            for entry in stream.ids {
                if let Some(redis::Value::BulkString(t)) = entry.map.get("t") {
                    let sent: i64 = String::from_utf8_lossy(t).parse().unwrap_or(0);
                    let age = (Utc::now().timestamp_micros() - sent).max(1) as u64;
                    let _ = hist.record(age);
                }
                ids.push(entry.id);
            }
        }
        received += ids.len();
        if !ids.is_empty() {
            let _: i64 = acker.xack(&key, "g", &ids).await.expect("xack");
        }
    }
    let elapsed = began.elapsed();
    producer.await.expect("producer");
    let _: () = acker.del(&key).await.expect("del");
    Row {
        name: "raw redis XADD/XREADGROUP/XACK".into(),
        per_second: n as f64 / elapsed.as_secs_f64(),
        p50_us: hist.value_at_quantile(0.5) as f64,
        p99_us: hist.value_at_quantile(0.99) as f64,
    }
}

/// Brings the server back to the same state before each Redis case: the keys under
/// `pattern` deleted and the AOF rewritten (and no rewrite running), so that no case pays
/// for the data or the background rewrite another case left behind.
async fn settle(url: &str, pattern: &str) {
    let client = redis::Client::open(url).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let keys: Vec<String> = {
        let mut iter: redis::AsyncIter<String> = redis::cmd("SCAN")
            .cursor_arg(0)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .clone()
            .iter_async(&mut conn)
            .await
            .expect("scan");
        let mut keys = Vec::new();
        while let Some(key) = iter.next_item().await {
            keys.push(key.expect("key"));
        }
        keys
    };
    for chunk in keys.chunks(500) {
        let _: () = redis::cmd("DEL")
            .arg(chunk)
            .query_async(&mut conn)
            .await
            .expect("del");
    }
    let _: Result<(), _> = redis::cmd("BGREWRITEAOF").query_async(&mut conn).await;
    loop {
        let info: String = redis::cmd("INFO")
            .arg("persistence")
            .query_async(&mut conn)
            .await
            .expect("info");
        let busy = info
            .lines()
            .any(|l| l == "aof_rewrite_in_progress:1" || l == "aof_rewrite_scheduled:1");
        if !busy {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // BENCH_ONLY=in-process or BENCH_ONLY=redis runs one side (for profiling).
    let only_memory = std::env::var("BENCH_ONLY").is_ok_and(|v| v == "in-process");
    let quick = std::env::var("BENCH_QUICK").is_ok();
    let (mem_n, redis_n, rr_n) = if quick {
        (200_000, 20_000, 2_000)
    } else {
        (2_000_000, 200_000, 10_000)
    };
    // Rounds of the raw loop against our encrypted point-to-point, alternating which runs
    // first; the comparison is the median of the rounds' ratios.
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let (rows, ratios) = runtime.block_on(async {
        let mut rows = Vec::new();
        let mut ratios = Vec::new();
        let only_redis = std::env::var("BENCH_ONLY").is_ok_and(|v| v.starts_with("redis"));
        let memory = Bus::in_process(config("bench-mem"));
        if std::env::var("BENCH_PHASES").is_ok() {
            phases(&memory, mem_n).await;
        }
        if !only_redis {
            rows.push(point_to_point(&memory, mem_n, 1, "in-process").await);
            rows.push(request_response(&memory, rr_n * 5, "in-process").await);
        }
        memory.shutdown();
        if only_memory {
            return (rows, ratios);
        }
        let redis = common::TestRedis::get();

        let codec = Codec::new(&MasterKey::generate(), true, 1024);
        let encrypted = config("bench-redis");
        let pattern = format!("{}:*", encrypted.namespace);
        let on_redis = Bus::redis(&redis.url, codec, encrypted)
            .await
            .expect("redis bus");
        if std::env::var("BENCH_PHASES").is_ok() {
            settle(&redis.url, &pattern).await;
            phases_redis(&on_redis, redis_n).await;
        }
        // BENCH_ONLY=redis-p2p: only our encrypted point-to-point (for profiling).
        if std::env::var("BENCH_ONLY").is_ok_and(|v| v == "redis-p2p") {
            settle(&redis.url, &pattern).await;
            rows.push(
                point_to_point(&on_redis, redis_n, IN_FLIGHT, "redis (signed+encrypted)").await,
            );
            return (rows, ratios);
        }
        for round in 0..rounds {
            let mut raw = None;
            let mut ours = None;
            for turn in 0..2 {
                if (round + turn) % 2 == 0 {
                    settle(&redis.url, "raw:*").await;
                    raw = Some(raw_redis(&redis.url, redis_n).await);
                } else {
                    settle(&redis.url, &pattern).await;
                    ours = Some(
                        point_to_point(&on_redis, redis_n, IN_FLIGHT, "redis (signed+encrypted)")
                            .await,
                    );
                }
            }
            let (raw, ours) = (raw.expect("raw round"), ours.expect("our round"));
            ratios.push(ours.per_second / raw.per_second);
            eprintln!(
                "round {}: raw {:.0}/s, ours {:.0}/s: {:.0}%",
                round + 1,
                raw.per_second,
                ours.per_second,
                100.0 * ours.per_second / raw.per_second
            );
            rows.push(raw);
            rows.push(ours);
        }
        settle(&redis.url, &pattern).await;
        rows.push(request_response(&on_redis, rr_n, "redis (signed+encrypted)").await);
        on_redis.shutdown();

        let plain = Codec::new(&MasterKey::generate(), false, usize::MAX);
        let signed = config("bench-redis-plain");
        settle(&redis.url, &format!("{}:*", signed.namespace)).await;
        let on_redis = Bus::redis(&redis.url, plain, signed)
            .await
            .expect("redis bus");
        rows.push(point_to_point(&on_redis, redis_n, IN_FLIGHT, "redis (signed only)").await);
        on_redis.shutdown();
        (rows, ratios)
    });
    print(&rows);
    if !ratios.is_empty() {
        let mut sorted = ratios.clone();
        sorted.sort_by(f64::total_cmp);
        let shown: Vec<String> = ratios
            .iter()
            .map(|r| format!("{:.0}%", 100.0 * r))
            .collect();
        println!(
            "redis (signed+encrypted) point-to-point against the raw loop, by round: {}; median {:.0}%",
            shown.join(", "),
            100.0 * sorted[sorted.len() / 2]
        );
    }
}
