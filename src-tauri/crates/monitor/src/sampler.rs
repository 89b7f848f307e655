//! The host sampler: one long-lived thread owning the `sysinfo` state (never a fresh
//! `System` per request), refreshing only what is reported, every `interval`.
//!
//! Each sample is a [`HostSnapshot`]: CPU (total and per core), load averages, memory and
//! swap, disks (space per mount), network rates (bytes per second per interface since the
//! previous sample), temperatures where the platform reports them, the top processes
//! by CPU, and NVIDIA GPUs through NVML where present ([`crate::gpu`]). The latest is published on a `watch` channel; the last `capacity` are kept in a
//! ring for live graphs. The thread ends with the shutdown token.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sysinfo::{
    Components, CpuRefreshKind, Disks, MemoryRefreshKind, Networks, ProcessRefreshKind,
    ProcessesToUpdate, RefreshKind, System,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use crate::gpu::{GpuProbe, GpuSample};

/// Processes listed in a snapshot.
const TOP_PROCESSES: usize = 5;
/// The process table is read every this many samples (the top processes are the average
/// since the last read): reading every process's `/proc` entries is most of a sample's
/// cost on a desktop with hundreds of processes, and a top list need not move every second.
const PROCESS_EVERY: u64 = 5;

/// One disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DiskSample {
    /// Mount point.
    pub mount: String,
    /// Bytes in all.
    pub total_bytes: u64,
    /// Bytes free for unprivileged users.
    pub available_bytes: u64,
    /// Percent used.
    pub used_percent: f64,
}

/// One network interface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NetworkSample {
    /// Interface name.
    pub interface: String,
    /// Bytes received per second since the previous sample.
    pub rx_bytes_per_second: f64,
    /// Bytes sent per second since the previous sample.
    pub tx_bytes_per_second: f64,
}

/// One temperature sensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TemperatureSample {
    /// Sensor label.
    pub label: String,
    /// Degrees Celsius.
    pub celsius: f64,
}

/// One process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProcessSample {
    /// Process id.
    pub pid: u32,
    /// Its name.
    pub name: String,
    /// CPU use in percent of one core.
    pub cpu_percent: f64,
    /// Resident memory, bytes.
    pub memory_bytes: u64,
}

/// The host at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HostSnapshot {
    /// When it was taken.
    pub at: DateTime<Utc>,
    /// CPU use of all cores, percent.
    pub cpu_percent: f64,
    /// CPU use per core, percent.
    pub per_core_percent: Vec<f64>,
    /// Load averages over 1, 5 and 15 minutes.
    pub load_average: [f64; 3],
    /// Memory in use, bytes.
    pub memory_used_bytes: u64,
    /// Memory in all, bytes.
    pub memory_total_bytes: u64,
    /// Memory in use, percent.
    pub memory_percent: f64,
    /// Swap in use, bytes.
    pub swap_used_bytes: u64,
    /// Swap in all, bytes.
    pub swap_total_bytes: u64,
    /// Disks.
    pub disks: Vec<DiskSample>,
    /// Network interfaces.
    pub networks: Vec<NetworkSample>,
    /// Temperatures (empty where the platform reports none).
    pub temperatures: Vec<TemperatureSample>,
    /// The processes using the most CPU.
    pub top_processes: Vec<ProcessSample>,
    /// NVIDIA GPUs (empty without NVML).
    #[serde(default)]
    pub gpus: Vec<GpuSample>,
}

/// The sysinfo state one sampler owns.
#[derive(Debug)]
pub struct Probe {
    system: System,
    disks: Disks,
    networks: Networks,
    components: Components,
    gpu: GpuProbe,
    last: Instant,
    /// Samples taken so far.
    samples: u64,
    /// The top processes as of the last read of the process table.
    top: Vec<ProcessSample>,
}

fn percent(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        part / whole * 100.0
    } else {
        0.0
    }
}

impl Probe {
    /// The state, with the lists (disks, interfaces, sensors) read once.
    pub fn new() -> Probe {
        let system = System::new_with_specifics(
            RefreshKind::nothing()
                .with_cpu(CpuRefreshKind::nothing().with_cpu_usage())
                .with_memory(MemoryRefreshKind::everything()),
        );
        Probe {
            system,
            disks: Disks::new_with_refreshed_list(),
            networks: Networks::new_with_refreshed_list(),
            components: Components::new_with_refreshed_list(),
            gpu: GpuProbe::new(),
            last: Instant::now(),
            samples: 0,
            top: Vec::new(),
        }
    }

    /// Refreshes what is reported and returns the snapshot.
    pub fn sample(&mut self) -> HostSnapshot {
        let elapsed = self.last.elapsed().as_secs_f64().max(1e-3);
        self.last = Instant::now();
        let s = &mut self.system;
        s.refresh_cpu_usage();
        s.refresh_memory();
        let read_processes = self.samples.is_multiple_of(PROCESS_EVERY);
        self.samples += 1;
        if read_processes {
            s.refresh_processes_specifics(
                ProcessesToUpdate::All,
                true,
                ProcessRefreshKind::nothing().with_cpu().with_memory(),
            );
        }
        self.disks.refresh(false);
        self.networks.refresh(false);
        self.components.refresh(false);

        let load = System::load_average();
        if read_processes {
            let mut top: Vec<ProcessSample> = s
                .processes()
                .iter()
                .map(|(pid, p)| ProcessSample {
                    pid: pid.as_u32(),
                    name: p.name().to_string_lossy().into_owned(),
                    cpu_percent: f64::from(p.cpu_usage()),
                    memory_bytes: p.memory(),
                })
                .collect();
            top.sort_by(|a, b| b.cpu_percent.total_cmp(&a.cpu_percent));
            top.truncate(TOP_PROCESSES);
            self.top = top;
        }
        let memory_total = s.total_memory();
        HostSnapshot {
            at: Utc::now(),
            cpu_percent: f64::from(s.global_cpu_usage()),
            per_core_percent: s.cpus().iter().map(|c| f64::from(c.cpu_usage())).collect(),
            load_average: [load.one, load.five, load.fifteen],
            memory_used_bytes: s.used_memory(),
            memory_total_bytes: memory_total,
            memory_percent: percent(s.used_memory() as f64, memory_total as f64),
            swap_used_bytes: s.used_swap(),
            swap_total_bytes: s.total_swap(),
            disks: self
                .disks
                .list()
                .iter()
                .map(|d| DiskSample {
                    mount: d.mount_point().display().to_string(),
                    total_bytes: d.total_space(),
                    available_bytes: d.available_space(),
                    used_percent: percent(
                        d.total_space().saturating_sub(d.available_space()) as f64,
                        d.total_space() as f64,
                    ),
                })
                .collect(),
            networks: self
                .networks
                .iter()
                .map(|(name, n)| NetworkSample {
                    interface: name.clone(),
                    rx_bytes_per_second: n.received() as f64 / elapsed,
                    tx_bytes_per_second: n.transmitted() as f64 / elapsed,
                })
                .collect(),
            temperatures: self
                .components
                .iter()
                .filter_map(|c| {
                    c.temperature().map(|t| TemperatureSample {
                        label: c.label().to_owned(),
                        celsius: f64::from(t),
                    })
                })
                .collect(),
            top_processes: self.top.clone(),
            gpus: self.gpu.sample(),
        }
    }
}

impl Default for Probe {
    fn default() -> Self {
        Probe::new()
    }
}

/// The running sampler: the latest snapshot and the ring of recent ones.
#[derive(Debug, Clone)]
pub struct Sampler {
    latest: watch::Receiver<Option<Arc<HostSnapshot>>>,
    ring: Arc<Mutex<VecDeque<Arc<HostSnapshot>>>>,
}

impl Sampler {
    /// Starts the sampling thread: a sample every `interval`, the last `capacity` kept.
    pub fn start(interval: Duration, capacity: usize, shutdown: CancellationToken) -> Sampler {
        let (tx, latest) = watch::channel(None);
        let ring = Arc::new(Mutex::new(VecDeque::with_capacity(capacity)));
        let kept = ring.clone();
        let spawned = std::thread::Builder::new()
            .name("sutazai-sampler".into())
            .spawn(move || {
                let mut probe = Probe::new();
                // The first CPU figures need two refreshes some time apart.
                std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL);
                loop {
                    let began = Instant::now();
                    let snapshot = Arc::new(probe.sample());
                    {
                        let mut ring = kept.lock().unwrap_or_else(|p| p.into_inner());
                        if ring.len() == capacity.max(1) {
                            ring.pop_front();
                        }
                        ring.push_back(snapshot.clone());
                    }
                    if tx.send(Some(snapshot)).is_err() && shutdown.is_cancelled() {
                        return;
                    }
                    // Sleep in short steps so that shutdown is noticed quickly.
                    let next = began + interval;
                    while Instant::now() < next {
                        if shutdown.is_cancelled() {
                            return;
                        }
                        std::thread::sleep(
                            next.saturating_duration_since(Instant::now())
                                .min(Duration::from_millis(100)),
                        );
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start the host sampler thread");
        }
        Sampler { latest, ring }
    }

    /// The latest snapshot (`None` until the first one).
    pub fn latest(&self) -> Option<Arc<HostSnapshot>> {
        self.latest.borrow().clone()
    }

    /// A receiver that wakes on every new snapshot.
    pub fn watch(&self) -> watch::Receiver<Option<Arc<HostSnapshot>>> {
        self.latest.clone()
    }

    /// The snapshots kept, oldest first.
    pub fn recent(&self) -> Vec<Arc<HostSnapshot>> {
        self.ring
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_reports_this_machine() {
        let mut probe = Probe::new();
        std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL);
        let s = probe.sample();
        assert!(s.memory_total_bytes > 0 && s.memory_used_bytes <= s.memory_total_bytes);
        assert!((0.0..=100.0).contains(&s.memory_percent));
        assert_eq!(
            s.per_core_percent.len(),
            std::thread::available_parallelism().unwrap().get()
        );
        assert!(s.disks.iter().any(|d| d.mount == "/"), "{:?}", s.disks);
        assert!(
            s.networks.iter().any(|n| n.interface == "lo"),
            "{:?}",
            s.networks
        );
        assert!(!s.top_processes.is_empty() && s.top_processes.len() <= TOP_PROCESSES);
    }

    #[tokio::test]
    async fn the_ring_keeps_only_the_last_samples_and_the_thread_stops() {
        let stop = CancellationToken::new();
        let sampler = Sampler::start(Duration::from_millis(20), 3, stop.clone());
        let mut watch = sampler.watch();
        for _ in 0..6 {
            tokio::time::timeout(Duration::from_secs(5), watch.changed())
                .await
                .expect("a new snapshot")
                .unwrap();
        }
        let recent = sampler.recent();
        assert_eq!(recent.len(), 3);
        assert!(recent.windows(2).all(|w| w[0].at <= w[1].at));
        assert_eq!(recent.last().unwrap().at, sampler.latest().unwrap().at);
        stop.cancel();
        // The thread drops its sender once it has stopped.
        let ended = tokio::time::timeout(Duration::from_secs(5), async {
            while watch.changed().await.is_ok() {}
        })
        .await;
        assert!(ended.is_ok(), "the sampler thread did not stop");
    }
}
