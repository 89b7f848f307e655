//! Bus counters: totals since start and messages published over the last minute.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A counter on a cache line of its own: publishers and consumers run on different
/// threads, and counters sharing a line would make every message bounce it between cores.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Padded(AtomicU64);

impl std::ops::Deref for Padded {
    type Target = AtomicU64;

    fn deref(&self) -> &AtomicU64 {
        &self.0
    }
}

/// Lock-free counters shared by every clone of a bus.
#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) published: Padded,
    pub(crate) delivered: Padded,
    pub(crate) acknowledged: Padded,
    pub(crate) retried: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) rate_limited: AtomicU64,
    pub(crate) replies_timed_out: AtomicU64,
    /// `published` once a second over the last minute (see [`Counters::sample`]); kept
    /// off the publish path, which only bumps `published`.
    samples: Mutex<VecDeque<(Instant, u64)>>,
}

impl Counters {
    pub(crate) fn new() -> Counters {
        Counters {
            published: Padded::default(),
            delivered: Padded::default(),
            acknowledged: Padded::default(),
            retried: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            replies_timed_out: AtomicU64::new(0),
            samples: Mutex::new(VecDeque::with_capacity(SAMPLES + 1)),
        }
    }

    pub(crate) fn on_publish(&self) {
        self.published.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the publish count now; called once a second by the bus's sampler.
    pub(crate) fn sample(&self, now: Instant) {
        let count = self.published.load(Ordering::Relaxed);
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        samples.push_back((now, count));
        while samples.len() > SAMPLES {
            samples.pop_front();
        }
    }

    /// Messages published during the last minute (since start, for a younger bus).
    pub(crate) fn per_minute(&self) -> u64 {
        let now = self.published.load(Ordering::Relaxed);
        let samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let (Some(&(oldest, _)), Some(&(newest, _))) = (samples.front(), samples.back()) else {
            return now;
        };
        if newest.duration_since(oldest) < Duration::from_secs(60) {
            return now;
        }
        let minute_ago = newest - Duration::from_secs(60);
        let base = samples
            .iter()
            .find(|(at, _)| *at >= minute_ago)
            .map_or(0, |(_, count)| *count);
        now.saturating_sub(base)
    }
}

/// Samples kept: one a second for a minute, plus the current one.
const SAMPLES: usize = 61;
