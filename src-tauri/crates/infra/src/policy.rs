//! The decisions of the healer and the auto-scaler, as plain functions of their inputs and
//! the time (so tests control the clock).
//!
//! - [`HealPolicy`]: a failed container is restarted after an exponential backoff; after
//!   `max_restarts` restarts within `window`, the healer stops trying and alerts.
//! - [`ScalePolicy`]: worker replicas follow the bus's queue depth (one replica per
//!   `queue_per_replica` waiting messages) within `[min, max]`, never growing while the host's
//!   CPU or memory is above its ceiling, and changing at most once per `cooldown`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How the healer restarts failed containers.
#[derive(Debug, Clone)]
pub struct HealPolicy {
    /// Wait before the first restart; doubles with each restart in the window.
    pub base: Duration,
    /// Longest wait between restarts.
    pub max: Duration,
    /// Restarts within `window` after which the healer gives up and alerts.
    pub max_restarts: u32,
    /// The window restarts are counted in.
    pub window: Duration,
}

impl Default for HealPolicy {
    fn default() -> Self {
        HealPolicy {
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
            max_restarts: 5,
            window: Duration::from_secs(600),
        }
    }
}

/// What to do with a failed container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealDecision {
    /// Restart it once `after` has passed since the failure was seen (attempt n in the
    /// window, 1-based).
    Restart {
        /// The backoff.
        after: Duration,
        /// The attempt number in the window.
        attempt: u32,
    },
    /// Too many restarts in the window: leave it stopped and alert.
    GiveUp {
        /// Restarts made in the window.
        restarts: u32,
    },
}

/// The restarts of one container within the window.
#[derive(Debug, Clone, Default)]
pub struct RestartHistory {
    restarts: VecDeque<Instant>,
    gave_up: bool,
}

impl RestartHistory {
    /// The decision for a failure seen at `now`; records the restart it decides on.
    pub fn on_failure(&mut self, policy: &HealPolicy, now: Instant) -> HealDecision {
        while self
            .restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > policy.window)
        {
            self.restarts.pop_front();
        }
        let made = u32::try_from(self.restarts.len()).unwrap_or(u32::MAX);
        if made >= policy.max_restarts {
            self.gave_up = true;
            return HealDecision::GiveUp { restarts: made };
        }
        let factor = 1u32.checked_shl(made).unwrap_or(u32::MAX);
        let after = policy.base.saturating_mul(factor).min(policy.max);
        self.restarts.push_back(now);
        HealDecision::Restart {
            after,
            attempt: made + 1,
        }
    }

    /// Whether the healer gave up on this container (it stays so until reset).
    pub fn gave_up(&self) -> bool {
        self.gave_up
    }

    /// Forgets everything (a person started the service again).
    pub fn reset(&mut self) {
        self.restarts.clear();
        self.gave_up = false;
    }
}

/// How the auto-scaler sizes a worker service.
#[derive(Debug, Clone)]
pub struct ScalePolicy {
    /// Fewest replicas.
    pub min: u32,
    /// Most replicas.
    pub max: u32,
    /// Waiting messages one replica is expected to absorb.
    pub queue_per_replica: u64,
    /// No growth while host CPU use is above this (percent).
    pub cpu_ceiling: f64,
    /// No growth while host memory use is above this (percent).
    pub memory_ceiling: f64,
    /// Least time between two changes.
    pub cooldown: Duration,
}

impl Default for ScalePolicy {
    fn default() -> Self {
        ScalePolicy {
            min: 1,
            max: 4,
            queue_per_replica: 10,
            cpu_ceiling: 85.0,
            memory_ceiling: 90.0,
            cooldown: Duration::from_secs(60),
        }
    }
}

/// What the auto-scaler looks at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    /// Messages waiting in the agents' inboxes.
    pub queue_depth: u64,
    /// Host CPU use, percent of all cores.
    pub cpu_percent: f64,
    /// Host memory use, percent.
    pub memory_percent: f64,
}

/// A change of replicas and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleDecision {
    /// Replicas to run.
    pub to: u32,
    /// The reason, with the figures used.
    pub reason: String,
}

impl ScalePolicy {
    /// The change to make to `current` replicas under `load`, if any. `last_change` is
    /// when the previous change was made.
    pub fn decide(
        &self,
        current: u32,
        load: Load,
        last_change: Option<Instant>,
        now: Instant,
    ) -> Option<ScaleDecision> {
        let (min, max) = (self.min, self.max.max(self.min));
        let per = self.queue_per_replica.max(1);
        let wanted = u32::try_from(load.queue_depth.div_ceil(per))
            .unwrap_or(u32::MAX)
            .clamp(min, max);
        // Out of bounds (a person scaled by hand beyond them): back inside, no cooldown.
        if current < min || current > max {
            let to = current.clamp(min, max);
            return Some(ScaleDecision {
                to,
                reason: format!("{current} replicas is outside the bounds {min}–{max}"),
            });
        }
        if wanted == current {
            return None;
        }
        if let Some(at) = last_change
            && now.duration_since(at) < self.cooldown
        {
            return None;
        }
        let figures = format!(
            "queue depth {} ({} per replica), host CPU {:.0}%, memory {:.0}%",
            load.queue_depth, per, load.cpu_percent, load.memory_percent
        );
        if wanted > current {
            if load.cpu_percent > self.cpu_ceiling || load.memory_percent > self.memory_ceiling {
                return None;
            }
            return Some(ScaleDecision {
                to: wanted,
                reason: format!("scale up {current} → {wanted}: {figures}"),
            });
        }
        Some(ScaleDecision {
            to: wanted,
            reason: format!("scale down {current} → {wanted}: {figures}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_then_gives_up_and_the_window_forgets() {
        let policy = HealPolicy {
            base: Duration::from_secs(1),
            max: Duration::from_secs(5),
            max_restarts: 4,
            window: Duration::from_secs(100),
        };
        let mut h = RestartHistory::default();
        let t0 = Instant::now();
        let waits: Vec<HealDecision> = (0..5)
            .map(|i| h.on_failure(&policy, t0 + Duration::from_secs(i)))
            .collect();
        let secs = |d: &HealDecision| match d {
            HealDecision::Restart { after, .. } => after.as_secs(),
            HealDecision::GiveUp { .. } => 0,
        };
        assert_eq!(
            waits[..4].iter().map(secs).collect::<Vec<_>>(),
            [1, 2, 4, 5]
        );
        assert_eq!(waits[4], HealDecision::GiveUp { restarts: 4 });
        assert!(h.gave_up());
        // Long after, the old restarts are out of the window.
        let mut h2 = RestartHistory::default();
        h2.on_failure(&policy, t0);
        assert_eq!(
            h2.on_failure(&policy, t0 + Duration::from_secs(500)),
            HealDecision::Restart {
                after: Duration::from_secs(1),
                attempt: 1
            }
        );
        h.reset();
        assert!(!h.gave_up());
    }

    fn load(queue_depth: u64, cpu: f64) -> Load {
        Load {
            queue_depth,
            cpu_percent: cpu,
            memory_percent: 40.0,
        }
    }

    #[test]
    fn follows_the_queue_within_bounds_and_cooldown() {
        let p = ScalePolicy {
            min: 1,
            max: 4,
            queue_per_replica: 10,
            cpu_ceiling: 85.0,
            memory_ceiling: 90.0,
            cooldown: Duration::from_secs(60),
        };
        let t0 = Instant::now();
        let up = p.decide(1, load(35, 20.0), None, t0).unwrap();
        assert_eq!(up.to, 4);
        assert!(up.reason.contains("queue depth 35"), "{}", up.reason);
        // Capped at max.
        assert_eq!(p.decide(1, load(500, 20.0), None, t0).unwrap().to, 4);
        // Within the cooldown nothing changes; after it, down to the queue's need.
        let changed = t0;
        assert_eq!(
            p.decide(
                4,
                load(0, 20.0),
                Some(changed),
                t0 + Duration::from_secs(30)
            ),
            None
        );
        let down = p
            .decide(
                4,
                load(0, 20.0),
                Some(changed),
                t0 + Duration::from_secs(61),
            )
            .unwrap();
        assert_eq!(down.to, 1);
        assert!(
            down.reason.starts_with("scale down 4 → 1"),
            "{}",
            down.reason
        );
        // A busy host does not grow.
        assert_eq!(p.decide(1, load(40, 95.0), None, t0), None);
        // Steady: nothing.
        assert_eq!(p.decide(2, load(15, 20.0), None, t0), None);
        // Outside the bounds (scaled by hand): back in at once.
        assert_eq!(p.decide(9, load(0, 20.0), Some(t0), t0).unwrap().to, 4);
    }
}
