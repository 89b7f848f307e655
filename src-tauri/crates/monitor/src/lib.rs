//! SutazAI monitoring: the host sampler and the alert rules.
//!
//! # Layout
//! - [`sampler`]: one long-lived thread owning the `sysinfo` state, sampling CPU, load,
//!   memory, swap, disks, network rates, temperatures and top processes every interval into
//!   a ring and a `watch` channel.
//! - [`rules`]: alert rules (the system description's thresholds and hardware ones) and
//!   their evaluation with duration, deduplication, cooldown, resolution and
//!   acknowledgement, as a pure state machine over observations and the time.

pub mod rules;
pub mod sampler;

pub use rules::{AlertChange, Comparison, Evaluator, Observation, Rule, Severity, default_rules};
pub use sampler::{HostSnapshot, Probe, Sampler};
