//! The history's cost: writing a simulated day of 10-second buckets for as many series as
//! a running server records (host, 38 agents, app, containers: `SERIES`, 131 by default)
//! through the real writer thread, with the roll-ups and pruning it does on the way; the
//! file's size per day; and the time of the dashboard's typical queries.
//!
//! `cargo bench -p sutazai-monitor --bench history` (`SERIES=N`, `DAYS=N`). Results go to
//! BENCHMARKS.md by hand.

use std::time::{Duration, Instant};

use chrono::DateTime;
use sutazai_monitor::history::Accumulator;
use sutazai_monitor::{History, Observation, SeriesQuery};
use tokio_util::sync::CancellationToken;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let series = env("SERIES", 131);
    let days = env("DAYS", 1);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("monitoring.db");
    let stop = CancellationToken::new();
    let history =
        History::open(&path, Duration::from_secs(30 * 86_400), stop.clone()).expect("open");
    let t0: i64 = 1_800_000_000 - 1_800_000_000 % 86_400;
    let buckets = days * 8640;
    let names: Vec<(String, String)> = (0..series)
        .map(|i| (format!("metric_{}", i % 8), format!("subject_{i}")))
        .collect();
    let mut acc = Accumulator::default();
    let began = Instant::now();
    // One observation per series each second, as the monitor gives them.
    for b in 0..=buckets as i64 {
        for s in 0..10 {
            let ts = t0 + b * 10 + s;
            let observations: Vec<Observation> = names
                .iter()
                .map(|(metric, subject)| Observation {
                    metric: metric.clone(),
                    subject: subject.clone(),
                    value: (ts % 97) as f64,
                })
                .collect();
            if let Some(closed) = acc.add(ts, &observations) {
                history.record(closed);
            }
        }
    }
    let queued = began.elapsed();
    runtime.block_on(history.flush()).expect("flush");
    let written = began.elapsed();
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(path.with_extension("db-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
    println!("series: {series}; buckets: {buckets} ({days} day(s) of 10 s buckets)");
    println!(
        "writing: {:.1} s in all ({:.2} s accumulating), {:.3} ms per bucket of {series} series",
        written.as_secs_f64(),
        queued.as_secs_f64(),
        (written - queued).as_secs_f64() / buckets as f64 * 1e3
    );
    println!(
        "file: {:.1} MiB for {days} day(s) ({:.1} MiB per day with the 10 s tier kept a day)",
        size as f64 / 1048576.0,
        size as f64 / 1048576.0 / days as f64
    );
    let now = DateTime::from_timestamp(t0 + buckets as i64 * 10, 0).expect("time");
    for (label, span, step) in [
        ("last hour, 10 s steps", 3600, 10),
        ("last day, 1 min steps", 86_400, 60),
        ("last day, 15 min steps", 86_400, 900),
    ] {
        let query = SeriesQuery {
            metric: "metric_0".into(),
            subject: Some("subject_0".into()),
            start: now - chrono::TimeDelta::seconds(span),
            end: now,
            step,
        };
        let began = Instant::now();
        let rounds = 20;
        let mut points = 0;
        for _ in 0..rounds {
            let answer = runtime
                .block_on(history.query(query.clone(), now))
                .expect("query");
            points = answer.series.first().map_or(0, |s| s.points.len());
        }
        println!(
            "query {label}: {points} points, {:.2} ms",
            began.elapsed().as_secs_f64() / rounds as f64 * 1e3
        );
    }
    stop.cancel();
}
