//! The roster: every registered agent with its runtime state — enabled or stopped, steps
//! in flight, concurrency limit, measured track record (lifetime, and the recent outcomes
//! that alert rules judge by) and circuit breaker.
//!
//! Selection reads it to score agents; the step runner updates it. All state is atomics or
//! short `std` lock sections, never held across `.await`. Agents can be added, redefined
//! and removed while tasks run (user agents edited from the dashboard): the map is
//! copy-on-write behind a lock (readers take a snapshot), and a redefinition swaps the
//! slot's spec in place, so steps in flight, the track record and the breaker carry over.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use sutazai_core::{AgentSpec, AgentState};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use utoipa::ToSchema;

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

/// How far back the recent record looks: outcomes older than this no longer count.
pub const RECENT_WINDOW: Duration = Duration::from_secs(300);

/// Most outcomes the recent record keeps; beyond it the oldest go first, so under a load
/// above this many steps per [`RECENT_WINDOW`] the figures cover a shorter span.
pub const RECENT_CAPACITY: usize = 1000;

/// One finished step, as the recent record keeps it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Outcome {
    at: Instant,
    ok: bool,
    seconds: f64,
}

/// The last outcomes of an agent's steps, bounded in count ([`RECENT_CAPACITY`]) and
/// in age ([`RECENT_WINDOW`]). Time is always passed in, so it is tested without sleeping.
#[derive(Debug, Clone)]
pub struct RecentOutcomes {
    window: Duration,
    capacity: usize,
    outcomes: VecDeque<Outcome>,
}

impl Default for RecentOutcomes {
    fn default() -> Self {
        RecentOutcomes::new(RECENT_WINDOW, RECENT_CAPACITY)
    }
}

impl RecentOutcomes {
    /// An empty record that counts outcomes younger than `window`, at most `capacity`
    /// of them (at least one).
    pub fn new(window: Duration, capacity: usize) -> RecentOutcomes {
        let capacity = capacity.max(1);
        RecentOutcomes {
            window,
            capacity,
            outcomes: VecDeque::with_capacity(capacity.min(64)),
        }
    }

    /// Records a step that finished at `now`: `ok` with its `seconds`, or failed.
    pub fn push(&mut self, now: Instant, ok: bool, seconds: f64) {
        self.expire(now);
        if self.outcomes.len() == self.capacity {
            self.outcomes.pop_front();
        }
        self.outcomes.push_back(Outcome {
            at: now,
            ok,
            seconds,
        });
    }

    /// Drops what is older than the window as of `now`. Outcomes are pushed in time
    /// order, so the old ones are at the front.
    fn expire(&mut self, now: Instant) {
        while let Some(first) = self.outcomes.front() {
            if now.saturating_duration_since(first.at) > self.window {
                self.outcomes.pop_front();
            } else {
                break;
            }
        }
    }

    /// The figures as of `now`, over the outcomes no older than the window.
    pub fn summary(&self, now: Instant) -> RecentPerformance {
        let mut durations = Vec::new();
        let mut failed = 0u64;
        for o in &self.outcomes {
            if now.saturating_duration_since(o.at) > self.window {
                continue;
            }
            if o.ok {
                durations.push(o.seconds);
            } else {
                failed += 1;
            }
        }
        let summary = sutazai_store::DurationSummary::from_durations(durations);
        let completed = summary.count;
        let total = completed + failed;
        let rate = |n: u64| (total > 0).then(|| n as f64 / total as f64);
        RecentPerformance {
            window_seconds: self.window.as_secs_f64(),
            completed,
            failed,
            success_rate: rate(completed),
            error_rate: rate(failed),
            average_response_time: summary.mean_secs(),
            p95_response_time: summary.p95_secs,
        }
    }
}

/// An agent's figures over its recent steps (the last [`RECENT_WINDOW`], at most
/// [`RECENT_CAPACITY`] steps): what alert rules on success rate, error rate and response
/// time judge, rather than the lifetime record.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct RecentPerformance {
    /// How far back the figures look, in seconds.
    pub window_seconds: f64,
    /// Steps completed in the window.
    pub completed: u64,
    /// Steps failed (after all their attempts) in the window.
    pub failed: u64,
    /// Completed / (completed + failed), 0 to 1; `null` with no step in the window.
    pub success_rate: Option<f64>,
    /// Failed / (completed + failed), 0 to 1; `null` with no step in the window.
    pub error_rate: Option<f64>,
    /// Mean seconds per completed step; `null` with no completed step in the window.
    pub average_response_time: Option<f64>,
    /// Nearest-rank 95th percentile of the completed steps' seconds; `null` with none.
    pub p95_response_time: Option<f64>,
}

/// One agent and its runtime state.
#[derive(Debug)]
pub struct AgentSlot {
    /// The agent's id (never changes; a redefinition keeps it).
    pub id: String,
    /// The registry entry; replaced whole when the agent is redefined.
    spec: RwLock<Arc<AgentSpec>>,
    /// False once stopped through the control API: never selected, steps refuse to start.
    enabled: AtomicBool,
    /// Steps running now.
    inflight: AtomicU32,
    /// Current concurrency limit (`max_concurrency`, changed by `scale`).
    limit: AtomicU32,
    /// Permits = free step slots.
    slots: Arc<Semaphore>,
    record: Mutex<TrackRecord>,
    /// The outcomes of the last [`RECENT_WINDOW`]; not seeded from the journal (a restart
    /// starts a fresh window, as the alert rules' own state does).
    recent: Mutex<RecentOutcomes>,
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
            id: spec.id.clone(),
            spec: RwLock::new(Arc::new(spec)),
            enabled: AtomicBool::new(true),
            inflight: AtomicU32::new(0),
            limit: AtomicU32::new(limit),
            slots: Arc::new(Semaphore::new(limit as usize)),
            record: Mutex::new(TrackRecord::default()),
            recent: Mutex::new(RecentOutcomes::default()),
            breaker: Mutex::new(Breaker::default()),
        }
    }

    /// The current definition.
    pub fn spec(&self) -> Arc<AgentSpec> {
        Arc::clone(&self.spec.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Replaces the definition (same id); a new `max_concurrency` becomes the limit.
    fn redefine(&self, spec: AgentSpec) {
        let concurrency = spec.max_concurrency;
        let old = std::mem::replace(
            &mut *self.spec.write().unwrap_or_else(|p| p.into_inner()),
            Arc::new(spec),
        );
        if old.max_concurrency != concurrency {
            self.set_limit(concurrency);
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

    /// Adds a step that finished now to the track record and the recent record.
    pub fn record_outcome(&self, ok: bool, seconds: f64) {
        self.record_outcome_at(Instant::now(), ok, seconds);
    }

    /// Adds a step that finished at `now` to the track record and the recent record.
    pub fn record_outcome_at(&self, now: Instant, ok: bool, seconds: f64) {
        {
            let mut record = self.record.lock().unwrap_or_else(|p| p.into_inner());
            if ok {
                record.completed += 1;
                record.total_latency += seconds;
            } else {
                record.failed += 1;
            }
        }
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(now, ok, seconds);
    }

    /// The recent figures as of `now`.
    pub fn recent_at(&self, now: Instant) -> RecentPerformance {
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .summary(now)
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
    /// Copy-on-write: readers clone the `Arc` and never block a change for long.
    agents: RwLock<Arc<BTreeMap<String, Arc<AgentSlot>>>>,
    /// Breaker settings shared by every agent.
    pub breaker: BreakerConfig,
}

impl Roster {
    /// A roster of the given agents, all enabled, no history.
    pub fn new(specs: impl IntoIterator<Item = AgentSpec>, breaker: BreakerConfig) -> Roster {
        let agents = specs
            .into_iter()
            .map(|s| (s.id.clone(), Arc::new(AgentSlot::new(s))))
            .collect();
        Roster {
            agents: RwLock::new(Arc::new(agents)),
            breaker,
        }
    }

    /// Every agent as of now, ordered by id; later changes do not affect the snapshot.
    pub fn snapshot(&self) -> Arc<BTreeMap<String, Arc<AgentSlot>>> {
        Arc::clone(&self.agents.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// One agent.
    pub fn get(&self, id: &str) -> Option<Arc<AgentSlot>> {
        self.snapshot().get(id).cloned()
    }

    /// Number of agents.
    pub fn len(&self) -> usize {
        self.snapshot().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.snapshot().is_empty()
    }

    /// Adds `spec` as a new agent (enabled, no history), or redefines the agent with its
    /// id in place. Returns `true` when the agent is new.
    pub fn define(&self, spec: AgentSpec) -> bool {
        let mut agents = self.agents.write().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = agents.get(&spec.id) {
            slot.redefine(spec);
            return false;
        }
        let mut next = BTreeMap::clone(&agents);
        next.insert(spec.id.clone(), Arc::new(AgentSlot::new(spec)));
        *agents = Arc::new(next);
        true
    }

    /// Removes the agent `id` unless it has steps in flight (`Err(n)` with their number)
    /// and returns its slot; `Ok(None)` when there was no such agent.
    pub fn remove(&self, id: &str) -> Result<Option<Arc<AgentSlot>>, u32> {
        let mut agents = self.agents.write().unwrap_or_else(|p| p.into_inner());
        let Some(slot) = agents.get(id) else {
            return Ok(None);
        };
        let busy = slot.inflight();
        if busy > 0 {
            return Err(busy);
        }
        let mut next = BTreeMap::clone(&agents);
        let removed = next.remove(id);
        *agents = Arc::new(next);
        Ok(removed)
    }

    /// Puts back a slot [`Roster::remove`] returned, as it was (state, record, breaker).
    pub fn restore(&self, slot: Arc<AgentSlot>) {
        let mut agents = self.agents.write().unwrap_or_else(|p| p.into_inner());
        let mut next = BTreeMap::clone(&agents);
        next.insert(slot.id.clone(), slot);
        *agents = Arc::new(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn an_empty_window_has_counts_and_no_rates() {
        let t0 = Instant::now();
        let r = RecentOutcomes::default().summary(t0);
        assert_eq!(r.window_seconds, 300.0);
        assert_eq!((r.completed, r.failed), (0, 0));
        assert_eq!(r.success_rate, None);
        assert_eq!(r.error_rate, None);
        assert_eq!(r.average_response_time, None);
        assert_eq!(r.p95_response_time, None);
    }

    #[test]
    fn figures_cover_only_the_last_five_minutes() {
        let t0 = Instant::now();
        let mut r = RecentOutcomes::default();
        // Old history: 10 failures, long ago.
        for i in 0..10 {
            r.push(t0 + S(i), false, 0.0);
        }
        // Recent: 18 fast successes, 1 slow success, 1 failure, over the last minutes.
        let base = t0 + S(1000);
        for i in 0..18 {
            r.push(base + S(i), true, 1.0);
        }
        r.push(base + S(20), true, 21.0);
        r.push(base + S(30), false, 0.0);

        // At base + 100 s the old failures are 990 s and more in the past: gone.
        let s = r.summary(base + S(100));
        assert_eq!((s.completed, s.failed), (19, 1));
        assert!(close(s.success_rate, 0.95), "{s:?}");
        assert!(close(s.error_rate, 0.05), "{s:?}");
        // (18 * 1 + 21) / 19 = 39 / 19.
        assert!(close(s.average_response_time, 39.0 / 19.0), "{s:?}");
        // 19 durations, p95 at rank ceil(18.05) = 19: the slow one.
        assert_eq!(s.p95_response_time, Some(21.0));

        // Exactly 300 s after the first recent outcome it still counts; 1 s later not.
        let s = r.summary(base + S(300));
        assert_eq!((s.completed, s.failed), (19, 1));
        let s = r.summary(base + S(301));
        assert_eq!((s.completed, s.failed), (18, 1));
        // At +321 s only the failure (pushed at +30 s) is younger than 300 s.
        let s = r.summary(base + S(321));
        assert_eq!((s.completed, s.failed), (0, 1));
        assert_eq!(s.success_rate, Some(0.0));
        assert_eq!(s.error_rate, Some(1.0));
        assert_eq!(s.average_response_time, None);
        assert_eq!(s.p95_response_time, None);
        let s = r.summary(base + S(331));
        assert_eq!((s.completed, s.failed), (0, 0));
        assert_eq!(s.success_rate, None);
    }

    #[test]
    fn the_record_is_bounded_in_count() {
        let t0 = Instant::now();
        let mut r = RecentOutcomes::new(S(300), 5);
        for i in 0..3 {
            r.push(t0, false, 0.0);
            assert_eq!(r.outcomes.len(), i + 1);
        }
        for _ in 0..10 {
            r.push(t0, true, 2.0);
        }
        assert_eq!(r.outcomes.len(), 5);
        // The oldest (the failures) went first.
        let s = r.summary(t0);
        assert_eq!((s.completed, s.failed), (5, 0));
        assert_eq!(s.success_rate, Some(1.0));

        // The default bound is RECENT_CAPACITY.
        let mut r = RecentOutcomes::default();
        for _ in 0..RECENT_CAPACITY + 500 {
            r.push(t0, true, 1.0);
        }
        assert_eq!(r.outcomes.len(), RECENT_CAPACITY);
        assert_eq!(r.summary(t0).completed, RECENT_CAPACITY as u64);
    }

    #[test]
    fn pushing_expires_what_left_the_window() {
        let t0 = Instant::now();
        let mut r = RecentOutcomes::new(S(60), 100);
        for i in 0..50 {
            r.push(t0 + S(i), true, 1.0);
        }
        r.push(t0 + S(200), false, 0.0);
        assert_eq!(r.outcomes.len(), 1);
        // A clock read slightly out of order (an earlier `now`) still counts the outcome.
        let s = r.summary(t0 + S(199));
        assert_eq!((s.completed, s.failed), (0, 1));
    }

    #[test]
    fn a_slot_keeps_both_the_lifetime_and_the_recent_record() {
        let spec = AgentSpec {
            id: "a".into(),
            name: "A".into(),
            category: sutazai_core::AgentCategory::Development,
            role: sutazai_core::AgentRole::Worker,
            capabilities: vec!["code_generation".into()],
            model: None,
            provider: None,
            system_prompt: "x".into(),
            temperature: 0.2,
            max_concurrency: 2,
        };
        let roster = Roster::new([spec], BreakerConfig::default());
        let slot = roster.get("a").expect("slot");
        slot.seed_record(TrackRecord {
            completed: 100,
            failed: 0,
            total_latency: 100.0,
        });
        let t0 = Instant::now();
        slot.record_outcome_at(t0, true, 3.0);
        slot.record_outcome_at(t0 + S(1), false, 0.0);
        let lifetime = slot.record();
        assert_eq!((lifetime.completed, lifetime.failed), (101, 1));
        let recent = slot.recent_at(t0 + S(2));
        assert_eq!((recent.completed, recent.failed), (1, 1));
        assert_eq!(recent.success_rate, Some(0.5));
        assert_eq!(recent.average_response_time, Some(3.0));
        assert_eq!(recent.p95_response_time, Some(3.0));
        // Ten minutes later the lifetime record stands, the recent one is empty.
        let later = slot.recent_at(t0 + S(600));
        assert_eq!((later.completed, later.failed), (0, 0));
        assert_eq!(slot.record().completed, 101);
    }

    fn spec(id: &str, concurrency: u32, prompt: &str) -> AgentSpec {
        AgentSpec {
            id: id.into(),
            name: id.to_uppercase(),
            category: sutazai_core::AgentCategory::Development,
            role: sutazai_core::AgentRole::Worker,
            capabilities: vec!["code_generation".into()],
            model: None,
            provider: None,
            system_prompt: prompt.into(),
            temperature: 0.2,
            max_concurrency: concurrency,
        }
    }

    #[tokio::test]
    async fn agents_are_added_redefined_in_place_and_removed_when_idle() {
        let roster = Roster::new([spec("a", 1, "first")], BreakerConfig::default());
        let before = roster.snapshot();
        assert!(roster.define(spec("b", 2, "new")), "a new id is added");
        assert_eq!(roster.len(), 2);
        assert_eq!(before.len(), 1, "an earlier snapshot is unchanged");

        // A redefinition keeps the slot: its record and a step in flight carry over.
        let a = roster.get("a").unwrap();
        a.record_outcome(true, 1.0);
        let guard = a.acquire().await;
        assert!(!roster.define(spec("a", 3, "second")), "same id: redefined");
        let again = roster.get("a").unwrap();
        assert!(Arc::ptr_eq(&a, &again), "the same slot");
        assert_eq!(again.spec().system_prompt, "second");
        assert_eq!((again.limit(), again.inflight()), (3, 1));
        assert_eq!(again.record().completed, 1);

        // Busy agents are not removed; idle ones are, unknown ones are reported.
        assert_eq!(roster.remove("a").err(), Some(1));
        drop(guard);
        again.set_enabled(false);
        let removed = roster.remove("a").unwrap().expect("removed");
        assert!(roster.remove("a").unwrap().is_none());
        assert!(roster.get("a").is_none());
        assert_eq!(roster.len(), 1);
        // Put back as it was: the same slot, still stopped, record kept.
        roster.restore(removed);
        let back = roster.get("a").unwrap();
        assert!(Arc::ptr_eq(&a, &back));
        assert!(!back.is_enabled());
        assert_eq!(back.record().completed, 1);
    }
}
