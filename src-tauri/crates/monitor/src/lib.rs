//! SutazAI monitoring: the host sampler, time series, alert rules and their delivery.
//!
//! # Layout
//! - [`sampler`]: one long-lived thread owning the `sysinfo` state, sampling CPU, load,
//!   memory, swap, disks, network rates, temperatures and top processes every interval into
//!   a ring and a `watch` channel.
//! - [`rules`]: alert rules (the system description's thresholds and hardware ones) and
//!   their evaluation with duration, deduplication, cooldown, resolution and
//!   acknowledgement, as a pure state machine over observations and the time.
//! - [`monitor`]: [`Monitor`], the sampler and the rules put together: every sample is
//!   evaluated with the app's own observations; alerts firing, resolved and acknowledged
//!   are kept (bounded) and broadcast.
//! - [`gpu`]: NVIDIA GPUs through NVML, loaded at run time (absent without error).
//! - [`history`]: the SQLite file of time series (10 s buckets rolled up to 1 min and 1 h,
//!   kept by tier and `METRICS_RETENTION_DAYS`, queried by range and step), alert history
//!   and edited rules.
//! - [`delivery`]: the [`Notifier`] interface and its email (SMTP) and Slack webhook
//!   implementations (the desktop shell adds native notifications), each with its own
//!   queue, retried with backoff, outcomes recorded on the alert.

pub mod delivery;
pub mod gpu;
pub mod history;
pub mod monitor;
pub mod rules;
pub mod sampler;

pub use delivery::{ChannelSet, Channels, Delivering, EmailChannel, LiveChannels, Notifier};
pub use gpu::{GpuProbe, GpuSample};
pub use history::{History, HistoryError, SeriesAnswer, SeriesInfo, SeriesPoint, SeriesQuery};
pub use monitor::{
    AlertError, AlertRecord, Delivery, Monitor, MonitorConfig, ObservationSource, host_observations,
};
pub use rules::{AlertChange, Comparison, Evaluator, Observation, Rule, Severity, default_rules};
pub use sampler::{HostSnapshot, Probe, Sampler};
