//! SutazAI monitoring: the host sampler and the alert rules.
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
//! - [`delivery`]: email (SMTP) and Slack webhook channels, each with its own queue,
//!   retried with backoff, outcomes recorded on the alert.

pub mod delivery;
pub mod monitor;
pub mod rules;
pub mod sampler;

pub use delivery::{Channels, EmailChannel};
pub use monitor::{
    AlertError, AlertRecord, Delivery, Monitor, MonitorConfig, ObservationSource, host_observations,
};
pub use rules::{AlertChange, Comparison, Evaluator, Observation, Rule, Severity, default_rules};
pub use sampler::{HostSnapshot, Probe, Sampler};
