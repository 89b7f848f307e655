//! Circuit breakers, one per agent and provider pair: after repeated failures an agent's
//! model calls stop for a cool-down instead of piling retries onto a sick endpoint.

use std::time::{Duration, Instant};

/// Breaker settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// How long it stays open before one trial call is let through.
    pub cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            cooldown: Duration::from_secs(30),
        }
    }
}

/// The state of one breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls pass; counts consecutive failures.
    Closed {
        /// Failures since the last success.
        failures: u32,
    },
    /// Calls are refused until `until`.
    Open {
        /// End of the cool-down.
        until: Instant,
    },
    /// One trial call is in flight since `since`; its outcome closes or re-opens the
    /// breaker. A trial whose outcome never comes (its step was cancelled or abandoned)
    /// lets another caller try after [`TRIAL_LEASE`].
    HalfOpen {
        /// When the trial began.
        since: Instant,
    },
}

/// How long a half-open breaker waits for its trial's outcome before letting another
/// caller try.
pub const TRIAL_LEASE: Duration = Duration::from_secs(60);

/// One breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Breaker {
    state: BreakerState,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            state: BreakerState::Closed { failures: 0 },
        }
    }
}

impl Breaker {
    /// Whether a call may go now. Moves an expired `Open` to `HalfOpen` (letting exactly
    /// this caller through as the trial); while half-open, others are refused.
    pub fn try_acquire(&mut self, now: Instant) -> Result<(), Duration> {
        match self.state {
            BreakerState::Closed { .. } => Ok(()),
            BreakerState::Open { until } if now >= until => {
                self.state = BreakerState::HalfOpen { since: now };
                Ok(())
            }
            BreakerState::Open { until } => Err(until - now),
            BreakerState::HalfOpen { since } if now.duration_since(since) >= TRIAL_LEASE => {
                self.state = BreakerState::HalfOpen { since: now };
                Ok(())
            }
            BreakerState::HalfOpen { since } => Err(TRIAL_LEASE - now.duration_since(since)),
        }
    }

    /// Records a success: closes the breaker.
    pub fn on_success(&mut self) {
        self.state = BreakerState::Closed { failures: 0 };
    }

    /// Records a failure; returns true when this failure opened the breaker.
    pub fn on_failure(&mut self, now: Instant, config: &BreakerConfig) -> bool {
        match self.state {
            BreakerState::Closed { failures } if failures + 1 < config.failure_threshold => {
                self.state = BreakerState::Closed {
                    failures: failures + 1,
                };
                false
            }
            _ => {
                self.state = BreakerState::Open {
                    until: now + config.cooldown,
                };
                true
            }
        }
    }

    /// Whether calls are currently refused.
    pub fn is_open(&self, now: Instant) -> bool {
        match self.state {
            BreakerState::Closed { .. } => false,
            BreakerState::Open { until } => now < until,
            BreakerState::HalfOpen { .. } => true,
        }
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_half_opens_after_cooldown() {
        let config = BreakerConfig {
            failure_threshold: 3,
            cooldown: Duration::from_secs(10),
        };
        let t0 = Instant::now();
        let mut b = Breaker::default();
        assert!(!b.on_failure(t0, &config));
        assert!(!b.on_failure(t0, &config));
        assert!(b.try_acquire(t0).is_ok());
        assert!(b.on_failure(t0, &config));
        assert_eq!(b.try_acquire(t0), Err(Duration::from_secs(10)));
        let later = t0 + Duration::from_secs(11);
        assert!(b.try_acquire(later).is_ok());
        assert_eq!(b.state(), BreakerState::HalfOpen { since: later });
        assert!(
            b.try_acquire(later).is_err(),
            "only one trial while half-open"
        );
        // A trial whose outcome never comes (its step was abandoned) does not hold the
        // breaker half-open for good.
        let lease_over = later + TRIAL_LEASE;
        assert!(
            b.try_acquire(lease_over).is_ok(),
            "another trial after the lease"
        );
        assert!(b.try_acquire(lease_over).is_err());
        assert!(b.on_failure(later, &config), "a failed trial re-opens");
        let much_later = later + Duration::from_secs(11);
        assert!(b.try_acquire(much_later).is_ok());
        b.on_success();
        assert_eq!(b.state(), BreakerState::Closed { failures: 0 });
    }
}
