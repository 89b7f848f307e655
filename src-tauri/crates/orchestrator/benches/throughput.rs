//! End-to-end throughput and latency of the orchestrator with the journal on a real
//! SQLite file and an instant in-process provider (no model time), so the figure is the
//! orchestration overhead itself: validate, journal the task, queue, dispatch, select an
//! agent, journal the step before and after, journal completion, wake the waiter.
//!
//! Run: `cargo bench -p sutazai-orchestrator --bench throughput`
//! (options: `-- --tasks 60000 --clients 16,64,256`). Prints a Markdown table:
//! - per client count: that many concurrent clients, each submitting a task and awaiting
//!   its completion in a loop; tasks/s and submit→complete latency percentiles;
//! - light load: one client, one task at a time; submit→complete percentiles.

use std::collections::HashMap;
use std::sync::Arc;

/// The allocator the app binaries use.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use sutazai_agents::Registry;
use sutazai_bus::{Bus, BusConfig};
use sutazai_core::{Constraints, CoordinationPattern, Priority, TaskRequest, TaskStatus};
use sutazai_llm::{InstantProvider, Provider};
use sutazai_orchestrator::{Orchestrator, OrchestratorConfig};
use sutazai_store::Journal;

fn request(i: usize) -> TaskRequest {
    TaskRequest {
        name: format!("noop {i}"),
        description: "no-op".into(),
        task_type: "benchmark".into(),
        priority: Priority::Normal,
        requirements: vec!["code_generation".into()],
        coordination_pattern: CoordinationPattern::Pipeline,
        payload: serde_json::Value::Null,
        constraints: Constraints {
            max_agents: Some(1),
            ..Default::default()
        },
    }
}

async fn start(dir: &std::path::Path, max_concurrent: usize) -> Orchestrator {
    let journal = Journal::open(&dir.join("journal.sqlite3")).expect("open journal");
    let mut providers: HashMap<String, Arc<dyn Provider>> = HashMap::new();
    providers.insert("instant".into(), Arc::new(InstantProvider::new("ok")));
    let config = OrchestratorConfig {
        max_concurrent_tasks: max_concurrent,
        default_provider: "instant".into(),
        default_model: "instant".into(),
        event_capacity: 1 << 16,
        ..Default::default()
    };
    Orchestrator::start(
        config,
        Registry::builtin(),
        providers,
        journal,
        Bus::in_process(BusConfig::default()),
    )
    .await
    .expect("start orchestrator")
}

fn pct(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

async fn saturation(tasks: usize, clients: usize) -> (usize, Duration, Histogram<u64>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let orchestrator = start(dir.path(), 100).await;
    for i in 0..500 {
        let t = orchestrator.submit(request(i)).await.expect("submit");
        orchestrator.wait_for(&t.id).await.expect("wait");
    }
    let per_client = tasks / clients;
    let began = Instant::now();
    let mut handles = Vec::new();
    for c in 0..clients {
        let o = orchestrator.clone();
        handles.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3).expect("histogram");
            for i in 0..per_client {
                let t0 = Instant::now();
                let t = o.submit(request(c * per_client + i)).await.expect("submit");
                let done = o.wait_for(&t.id).await.expect("wait");
                assert_eq!(done.status, TaskStatus::Completed, "{:?}", done.error);
                h.record(t0.elapsed().as_micros() as u64).ok();
            }
            h
        }));
    }
    let mut hist = Histogram::<u64>::new(3).expect("histogram");
    for h in handles {
        hist.add(h.await.expect("client")).expect("merge");
    }
    let elapsed = began.elapsed();
    orchestrator.shutdown().await;
    (per_client * clients, elapsed, hist)
}

async fn light_load(tasks: usize) -> Histogram<u64> {
    let dir = tempfile::tempdir().expect("tempdir");
    let orchestrator = start(dir.path(), 100).await;
    let mut hist = Histogram::<u64>::new(3).expect("histogram");
    for i in 0..tasks + 500 {
        let t0 = Instant::now();
        let t = orchestrator.submit(request(i)).await.expect("submit");
        orchestrator.wait_for(&t.id).await.expect("wait");
        if i >= 500 {
            hist.record(t0.elapsed().as_micros() as u64).ok();
        }
    }
    orchestrator.shutdown().await;
    hist
}

fn main() {
    let mut tasks = 60_000usize;
    let mut clients: Vec<usize> = vec![16, 64, 256];
    let args: Vec<String> = std::env::args().collect();
    for pair in args.windows(2) {
        match pair[0].as_str() {
            "--tasks" => tasks = pair[1].parse().expect("--tasks N"),
            "--clients" => {
                clients = pair[1]
                    .split(',')
                    .map(|c| c.parse().expect("--clients N[,N...]"))
                    .collect()
            }
            _ => {}
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        println!(
            "## orchestrator end-to-end: single-step no-op tasks, instant provider, SQLite journal"
        );
        println!("| clients | tasks | seconds | tasks/s | p50 ms | p90 ms | p99 ms | max ms |");
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
        for &c in &clients {
            let (done, elapsed, h) = saturation(tasks, c).await;
            println!(
                "| {c} | {done} | {:.2} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} |",
                elapsed.as_secs_f64(),
                done as f64 / elapsed.as_secs_f64(),
                pct(&h, 0.5),
                pct(&h, 0.9),
                pct(&h, 0.99),
                h.max() as f64 / 1000.0
            );
        }
        let h = light_load(3000).await;
        println!(
            "| 1 (one task at a time) | 3000 | - | - | {:.3} | {:.3} | {:.3} | {:.3} |",
            pct(&h, 0.5),
            pct(&h, 0.9),
            pct(&h, 0.99),
            h.max() as f64 / 1000.0
        );
    });
}
