//! NVIDIA GPUs through NVML: utilisation, memory (VRAM), temperature and the memory each
//! process holds. NVML is loaded at run time (`libnvidia-ml.so`), so a machine without an
//! NVIDIA driver simply has no GPUs here: the probe reports an empty list and never an
//! error. The library is opened once, by the sampler's thread, and kept.

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use nvml_wrapper::enums::device::UsedGpuMemory;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A process holding GPU memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GpuProcessSample {
    /// Process id.
    pub pid: u32,
    /// GPU memory it holds, bytes (`None` where the driver does not say).
    pub memory_bytes: Option<u64>,
}

/// One GPU at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GpuSample {
    /// NVML's index (`gpu0` is the subject of its alerts and series).
    pub index: u32,
    /// Product name.
    pub name: String,
    /// Busy time over the driver's last sample period, percent.
    pub utilization_percent: f64,
    /// VRAM in use, bytes.
    pub memory_used_bytes: u64,
    /// VRAM in all, bytes.
    pub memory_total_bytes: u64,
    /// VRAM in use, percent.
    pub memory_percent: f64,
    /// Core temperature, degrees Celsius (`None` where not reported).
    pub temperature_celsius: Option<f64>,
    /// Processes using it (compute and graphics), by memory held.
    pub processes: Vec<GpuProcessSample>,
}

impl GpuSample {
    /// The subject name of this GPU in alerts and time series.
    pub fn subject(&self) -> String {
        format!("gpu{}", self.index)
    }
}

/// The NVML handle, when the library and a driver are present.
pub struct GpuProbe {
    nvml: Option<Nvml>,
}

impl std::fmt::Debug for GpuProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuProbe")
            .field("nvml", &self.nvml.is_some())
            .finish()
    }
}

impl GpuProbe {
    /// Opens NVML; without it (no library, no driver, no permission) the probe has no GPUs.
    pub fn new() -> GpuProbe {
        match Nvml::init() {
            Ok(nvml) => {
                tracing::info!(
                    gpus = nvml.device_count().unwrap_or(0),
                    "NVML found: GPU metrics on"
                );
                GpuProbe { nvml: Some(nvml) }
            }
            Err(e) => {
                tracing::debug!(error = %e, "NVML not available: no GPU metrics");
                GpuProbe { nvml: None }
            }
        }
    }

    /// Whether NVML was found.
    pub fn available(&self) -> bool {
        self.nvml.is_some()
    }

    /// Every GPU's figures now. A GPU that fails to answer is left out of this sample (and
    /// logged at debug level); a figure it does not support is `None` or zero.
    pub fn sample(&self) -> Vec<GpuSample> {
        let Some(nvml) = &self.nvml else {
            return Vec::new();
        };
        let count = nvml.device_count().unwrap_or(0);
        let mut out = Vec::with_capacity(count as usize);
        for index in 0..count {
            let device = match nvml.device_by_index(index) {
                Ok(d) => d,
                Err(e) => {
                    tracing::debug!(index, error = %e, "GPU not readable");
                    continue;
                }
            };
            let (used, total) = device
                .memory_info()
                .map(|m| (m.used, m.total))
                .unwrap_or((0, 0));
            let mut processes: Vec<GpuProcessSample> = device
                .running_compute_processes()
                .unwrap_or_default()
                .into_iter()
                .chain(device.running_graphics_processes().unwrap_or_default())
                .map(|p| GpuProcessSample {
                    pid: p.pid,
                    memory_bytes: match p.used_gpu_memory {
                        UsedGpuMemory::Used(bytes) => Some(bytes),
                        UsedGpuMemory::Unavailable => None,
                    },
                })
                .collect();
            // A process can be in both lists.
            processes.sort_by_key(|p| p.pid);
            processes.dedup_by_key(|p| p.pid);
            processes.sort_by_key(|p| std::cmp::Reverse(p.memory_bytes));
            out.push(GpuSample {
                index,
                name: device.name().unwrap_or_else(|_| format!("GPU {index}")),
                utilization_percent: device
                    .utilization_rates()
                    .map(|u| f64::from(u.gpu))
                    .unwrap_or(0.0),
                memory_used_bytes: used,
                memory_total_bytes: total,
                memory_percent: if total > 0 {
                    used as f64 / total as f64 * 100.0
                } else {
                    0.0
                },
                temperature_celsius: device
                    .temperature(TemperatureSensor::Gpu)
                    .ok()
                    .map(f64::from),
                processes,
            });
        }
        out
    }
}

impl Default for GpuProbe {
    fn default() -> Self {
        GpuProbe::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a machine without NVIDIA's library the probe is simply empty; with one, every
    /// GPU's figures are consistent.
    #[test]
    fn gpus_are_reported_or_absent_without_error() {
        let probe = GpuProbe::new();
        let gpus = probe.sample();
        if !probe.available() {
            assert!(gpus.is_empty());
        }
        for g in &gpus {
            assert!(g.memory_used_bytes <= g.memory_total_bytes);
            assert!((0.0..=100.0).contains(&g.memory_percent));
            assert!((0.0..=100.0).contains(&g.utilization_percent));
            assert_eq!(g.subject(), format!("gpu{}", g.index));
        }
    }
}
