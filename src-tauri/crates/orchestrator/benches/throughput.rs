//! End-to-end throughput and latency of the orchestrator with the journal on a real
//! SQLite file and an instant in-process provider (no model time), so the figure is the
//! orchestration overhead itself: validate, journal the task, queue, dispatch, select an
//! agent, journal the step before and after, journal completion, wake the waiter.
//!
//! Run: `cargo bench -p sutazai-orchestrator --bench throughput` (add `-- --tasks N`).
//! Two measurements:
//! - saturation: many concurrent clients each submitting single-step tasks and awaiting
//!   completion; reports tasks/s and submit→complete latency percentiles under that load;
//! - light load: one client, one task at a time; reports submit→complete percentiles.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use sutazai_agents::Registry;
use sutazai_bus::Bus;
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
        Bus::default(),
    )
    .await
    .expect("start orchestrator")
}

fn pct(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

fn main() {
    let mut tasks = 60_000usize;
    let mut clients = 256usize;
    let args: Vec<String> = std::env::args().collect();
    for pair in args.windows(2) {
        match pair[0].as_str() {
            "--tasks" => tasks = pair[1].parse().expect("--tasks N"),
            "--clients" => clients = pair[1].parse().expect("--clients N"),
            _ => {}
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let orchestrator = start(dir.path(), 100).await;

        // Warm-up.
        for i in 0..500 {
            let t = orchestrator.submit(request(i)).await.expect("submit");
            orchestrator.wait_for(&t.id).await.expect("wait");
        }

        // Saturation.
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
        let mut sat = Histogram::<u64>::new(3).expect("histogram");
        for h in handles {
            sat.add(h.await.expect("client")).expect("merge");
        }
        let elapsed = began.elapsed();
        let done = per_client * clients;
        let throughput = done as f64 / elapsed.as_secs_f64();

        // Light load.
        let mut light = Histogram::<u64>::new(3).expect("histogram");
        for i in 0..3000 {
            let t0 = Instant::now();
            let t = orchestrator.submit(request(i)).await.expect("submit");
            orchestrator.wait_for(&t.id).await.expect("wait");
            light.record(t0.elapsed().as_micros() as u64).ok();
        }
        orchestrator.shutdown().await;
        tokio::time::sleep(Duration::from_millis(50)).await;

        println!("## orchestrator throughput (instant provider, SQLite journal)");
        println!("saturation: {done} tasks, {clients} concurrent clients, {:.2}s", elapsed.as_secs_f64());
        println!("throughput: {throughput:.0} tasks/s");
        println!(
            "saturation latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}",
            pct(&sat, 0.5), pct(&sat, 0.9), pct(&sat, 0.99), sat.max() as f64 / 1000.0
        );
        println!(
            "light-load latency ms (1 client, 3000 tasks): p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}",
            pct(&light, 0.5), pct(&light, 0.9), pct(&light, 0.99), light.max() as f64 / 1000.0
        );
    });
}
