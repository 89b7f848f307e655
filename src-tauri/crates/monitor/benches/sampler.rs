//! The sampler's own cost: CPU time per sample and resident memory over 10,000 samples of
//! one long-lived probe, plus the ring's memory at a given capacity.
//!
//! `cargo bench -p sutazai-monitor --bench sampler` (`SAMPLES=N` to change the count).
//! Results go to BENCHMARKS.md by hand.

use std::time::{Duration, Instant};

use sutazai_monitor::Probe;

/// This process's CPU time (user + system) from /proc/self/stat, and resident bytes.
fn cpu_and_rss() -> (Duration, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = 100.0; // USER_HZ on Linux
    let utime: f64 = fields[11].parse().expect("utime");
    let stime: f64 = fields[12].parse().expect("stime");
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("statm");
    (
        Duration::from_secs_f64((utime + stime) / ticks),
        pages * 4096,
    )
}

fn main() {
    let samples: usize = std::env::var("SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let mut probe = Probe::new();
    std::thread::sleep(Duration::from_millis(250));
    // Warm-up: the first samples allocate the lists.
    for _ in 0..100 {
        std::hint::black_box(probe.sample());
    }
    let (cpu0, rss0) = cpu_and_rss();
    let wall = Instant::now();
    let mut rss_mid = 0;
    for i in 0..samples {
        std::hint::black_box(probe.sample());
        if i == samples / 2 {
            rss_mid = cpu_and_rss().1;
        }
    }
    let elapsed = wall.elapsed();
    let (cpu1, rss1) = cpu_and_rss();
    let per_sample = (cpu1 - cpu0).as_secs_f64() / samples as f64;
    println!("samples: {samples}");
    println!(
        "CPU time per sample: {:.3} ms (wall {:.3} ms); at a 1 s interval: {:.3}% of one core",
        per_sample * 1e3,
        elapsed.as_secs_f64() / samples as f64 * 1e3,
        per_sample * 100.0
    );
    println!(
        "resident memory: {:.1} MiB after warm-up, {:.1} MiB halfway, {:.1} MiB at the end (growth {:+.1} KiB)",
        rss0 as f64 / 1048576.0,
        rss_mid as f64 / 1048576.0,
        rss1 as f64 / 1048576.0,
        (rss1 as f64 - rss0 as f64) / 1024.0
    );
    let one = probe.sample();
    let json = serde_json::to_vec(&one).expect("json");
    println!(
        "one snapshot: {} bytes as JSON; a ring of 3,600 (an hour at 1 s) ≈ {:.1} MiB",
        json.len(),
        json.len() as f64 * 3600.0 / 1048576.0
    );
}
