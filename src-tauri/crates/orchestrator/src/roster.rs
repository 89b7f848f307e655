//! The roster: every registered agent with its runtime state — enabled or stopped, steps
//! in flight, concurrency limit, measured track record and circuit breaker.
//!
//! Selection reads it to score agents; the step runner updates it. All state is atomics or
//! short `std` mutex sections, never held across `.await`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sutazai_core::{AgentSpec, AgentState};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::breaker::{Breaker, BreakerConfig};

/// An agent's measured record: what selection calls its track record.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TrackRecord {
    /// Steps completed.
    pub completed: u64,
    /// Steps failed after all attempts.
    pub failed: u64,
    /// Sum of completed steps' durations, in seconds.
    pub total_latency: f64,
}

impl TrackRecord {
    /// Success rate with a uniform prior (Laplace): an agent with no history scores 0.5,
    /// so one lucky step does not outrank a long good record.
    pub fn smoothed_success_rate(&self) -> f64 {
        (self.completed as f64 + 1.0) / ((self.completed + self.failed) as f64 + 2.0)
    }

    /// Plain success rate (0 to 1) for reporting; `None` before any step.
    pub fn success_rate(&self) -> Option<f64> {
        let total = self.completed + self.failed;
        (total > 0).then(|| self.completed as f64 / total as f64)
    }

    /// Mean seconds per completed step.
    pub fn average_latency(&self) -> Option<f64> {
        (self.completed > 0).then(|| self.total_latency / self.completed as f64)
    }
}

/// One agent and its runtime state.
#[derive(Debug)]
pub struct AgentSlot {
    /// The registry entry.
    pub spec: AgentSpec,
    /// False once stopped through the control API: never selected, steps refuse to start.
    enabled: AtomicBool,
    /// Steps running now.
    inflight: AtomicU32,
    /// Current concurrency limit (`max_concurrency`, changed by `scale`).
    limit: AtomicU32,
    /// Permits = free step slots.
    slots: Arc<Semaphore>,
    record: Mutex<TrackRecord>,
    breaker: Mutex<Breaker>,
}

/// A held step slot; dropping it frees the slot.
#[derive(Debug)]
pub struct SlotGuard<'a> {
    slot: &'a AgentSlot,
    _permit: OwnedSemaphorePermit,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.slot.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AgentSlot {
    fn new(spec: AgentSpec) -> AgentSlot {
        let limit = spec.max_concurrency.max(1);
        AgentSlot {
            spec,
            enabled: AtomicBool::new(true),
            inflight: AtomicU32::new(0),
            limit: AtomicU32::new(limit),
            slots: Arc::new(Semaphore::new(limit as usize)),
            record: Mutex::new(TrackRecord::default()),
            breaker: Mutex::new(Breaker::default()),
        }
    }

    /// Waits for a free step slot.
    pub async fn acquire(&self) -> SlotGuard<'_> {
        let permit = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .expect("an agent's slot semaphore is owned by the slot and never closed");
        self.inflight.fetch_add(1, Ordering::Relaxed);
        SlotGuard {
            slot: self,
            _permit: permit,
        }
    }

    /// Whether the agent may be selected.
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Starts or stops the agent.
    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::Relaxed);
    }

    /// Steps in flight.
    pub fn inflight(&self) -> u32 {
        self.inflight.load(Ordering::Relaxed)
    }

    /// Current concurrency limit.
    pub fn limit(&self) -> u32 {
        self.limit.load(Ordering::Relaxed)
    }

    /// Changes the concurrency limit (the `scale` action). Lowering it takes effect as
    /// running steps finish.
    pub fn set_limit(&self, new: u32) {
        let new = new.max(1);
        let old = self.limit.swap(new, Ordering::Relaxed);
        if new > old {
            self.slots.add_permits((new - old) as usize);
        } else if old > new {
            let mut remaining = (old - new) as usize;
            remaining -= self.slots.forget_permits(remaining);
            if remaining > 0 {
                // Busy slots: take them back as they are released.
                let slots = Arc::clone(&self.slots);
                tokio::spawn(async move {
                    if let Ok(permits) = slots.acquire_many_owned(remaining as u32).await {
                        permits.forget();
                    }
                });
            }
        }
    }

    /// Load from 0 (idle) to 1 (every slot busy).
    pub fn load(&self) -> f64 {
        (self.inflight() as f64 / self.limit().max(1) as f64).min(1.0)
    }

    /// A copy of the track record.
    pub fn record(&self) -> TrackRecord {
        *self.record.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a finished step to the track record.
    pub fn record_outcome(&self, ok: bool, seconds: f64) {
        let mut record = self.record.lock().unwrap_or_else(|p| p.into_inner());
        if ok {
            record.completed += 1;
            record.total_latency += seconds;
        } else {
            record.failed += 1;
        }
    }

    /// Replaces the record (at start-up, from the journal).
    pub fn seed_record(&self, record: TrackRecord) {
        *self.record.lock().unwrap_or_else(|p| p.into_inner()) = record;
    }

    /// Runs `f` on the breaker.
    pub fn with_breaker<R>(&self, f: impl FnOnce(&mut Breaker) -> R) -> R {
        f(&mut self.breaker.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Resets the breaker (the `restart` action).
    pub fn reset_breaker(&self) {
        self.with_breaker(|b| *b = Breaker::default());
    }

    /// State for the API.
    pub fn state(&self) -> AgentState {
        if !self.is_enabled() {
            AgentState::Stopped
        } else if self.with_breaker(|b| b.is_open(Instant::now())) {
            AgentState::Degraded
        } else {
            AgentState::Healthy
        }
    }
}

/// All agents, keyed by id.
#[derive(Debug)]
pub struct Roster {
    agents: BTreeMap<String, AgentSlot>,
    /// Breaker settings shared by every agent.
    pub breaker: BreakerConfig,
}

impl Roster {
    /// A roster of the given agents, all enabled, no history.
    pub fn new(specs: impl IntoIterator<Item = AgentSpec>, breaker: BreakerConfig) -> Roster {
        Roster {
            agents: specs
                .into_iter()
                .map(|s| (s.id.clone(), AgentSlot::new(s)))
                .collect(),
            breaker,
        }
    }

    /// One agent.
    pub fn get(&self, id: &str) -> Option<&AgentSlot> {
        self.agents.get(id)
    }

    /// Every agent, ordered by id.
    pub fn iter(&self) -> impl Iterator<Item = &AgentSlot> {
        self.agents.values()
    }

    /// Number of agents.
    pub fn len(&self) -> usize {
        self.agents.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }
}
