//! Windowed performance figures, the raw material of `GET /analytics/performance`: per
//! agent and overall step counts with response-time percentiles, and per coordination
//! pattern the outcomes and durations of the tasks that ended in the window.
//!
//! Everything is read in one read transaction ([`Journal::performance`](crate::Journal::performance)),
//! so the per-agent, overall and per-pattern figures describe the same snapshot of the
//! journal. SQLite has no percentile function: the queries fetch the durations and the
//! percentiles are computed here, by nearest rank ([`nearest_rank`]).

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use sutazai_core::{CoordinationPattern, TaskStatus};

use crate::StoreError;
use crate::codec::{column, decode_time, encode_time};
use crate::queries::{self, AgentStats};

/// The nearest-rank `percent`-th percentile of ascending `sorted` values: the smallest
/// value such that at least `percent`% of the values are less than or equal to it, i.e.
/// the value at 1-based rank `ceil(percent / 100 * n)` (rank 1 for `percent = 0`).
/// `None` for no values; `percent` above 100 counts as 100.
///
/// The rank is computed in integers, so `p95` of 20 values is exactly the 19th, not a
/// victim of `0.95 * 20` rounding up to 19.000000000000004.
pub fn nearest_rank(sorted: &[f64], percent: u32) -> Option<f64> {
    let n = sorted.len();
    let percent = usize::try_from(percent.min(100)).unwrap_or(100);
    let rank = percent.saturating_mul(n).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// Count, sum and nearest-rank median and 95th percentile of a set of durations.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DurationSummary {
    /// How many durations.
    pub count: u64,
    /// Their sum, in seconds.
    pub total_secs: f64,
    /// Nearest-rank 50th percentile, in seconds (`None` when there are none).
    pub p50_secs: Option<f64>,
    /// Nearest-rank 95th percentile, in seconds (`None` when there are none).
    pub p95_secs: Option<f64>,
}

impl DurationSummary {
    /// Summarises `durations` (any order; sorted here by `f64::total_cmp`).
    pub fn from_durations(mut durations: Vec<f64>) -> DurationSummary {
        durations.sort_by(f64::total_cmp);
        DurationSummary {
            count: u64::try_from(durations.len()).unwrap_or(u64::MAX),
            total_secs: durations.iter().sum(),
            p50_secs: nearest_rank(&durations, 50),
            p95_secs: nearest_rank(&durations, 95),
        }
    }

    /// The mean, in seconds (`None` when there are none).
    pub fn mean_secs(&self) -> Option<f64> {
        (self.count > 0).then(|| self.total_secs / self.count as f64)
    }
}

/// One agent's steps that finished in the window.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AgentPerformanceStats {
    /// Counts, completed-step durations and tokens, exactly as
    /// [`Journal::agent_stats`](crate::Journal::agent_stats) reports them.
    pub totals: AgentStats,
    /// Over the durations of the agent's completed steps.
    pub response_time: DurationSummary,
}

/// The tasks of one coordination pattern that ended (`completed_at`) in the window.
#[derive(Debug, Clone, PartialEq)]
pub struct PatternStats {
    /// The pattern (`coordination_pattern` of the task's request).
    pub pattern: CoordinationPattern,
    /// Tasks that ended `completed`.
    pub completed: u64,
    /// Tasks that ended `failed`.
    pub failed: u64,
    /// Tasks that ended `cancelled`.
    pub cancelled: u64,
    /// From `started_at` to `completed_at`, over the completed tasks (a completed task
    /// always has a start; a row without one would be left out here, not counted as 0).
    pub duration: DurationSummary,
}

impl PatternStats {
    fn new(pattern: CoordinationPattern) -> PatternStats {
        PatternStats {
            pattern,
            completed: 0,
            failed: 0,
            cancelled: 0,
            duration: DurationSummary::default(),
        }
    }

    /// Tasks that ended, whatever the outcome.
    pub fn ended(&self) -> u64 {
        self.completed + self.failed + self.cancelled
    }
}

/// Everything [`Journal::performance`](crate::Journal::performance) reports for a window.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PerformanceStats {
    /// Per agent with at least one step finished in the window, sorted by agent id.
    pub agents: Vec<AgentPerformanceStats>,
    /// Over the durations of every completed step in the window, all agents together.
    pub response_time: DurationSummary,
    /// Per pattern with at least one task ended in the window, sorted by pattern name.
    pub patterns: Vec<PatternStats>,
}

impl PerformanceStats {
    /// Tasks completed in the window, all patterns together.
    pub fn tasks_completed(&self) -> u64 {
        self.patterns.iter().map(|p| p.completed).sum()
    }
}

/// Sorts before every stored timestamp: the open lower bound of a `completed_at` range.
const TEXT_MIN: &str = "";
/// Sorts after every stored timestamp (fixed-width RFC 3339 text starting with a digit;
/// `~` is above every digit): the open upper bound of a `completed_at` range. Both bounds
/// are always bound, so the range is a plain `>= AND <` that the `tasks_by_completed`
/// index serves (an `?1 IS NULL OR ...` term would defeat it).
const TEXT_MAX: &str = "~";

/// The figures for steps finished and tasks ended with `since <= t < until` (open where
/// `None`), in one read transaction.
pub(crate) fn performance(
    conn: &Connection,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<PerformanceStats, StoreError> {
    // One snapshot for all three queries: in WAL mode a read transaction sees the
    // database as of its first read, whatever commits meanwhile.
    let tx = conn.unchecked_transaction()?;
    let totals = queries::agent_stats(&tx, since, until)?;
    let (mut per_agent, overall) = step_durations(&tx, since, until)?;
    let patterns = pattern_stats(&tx, since, until)?;
    tx.finish()?;

    let agents = totals
        .into_iter()
        .map(|totals| {
            let durations = per_agent.remove(&totals.agent_id).unwrap_or_default();
            AgentPerformanceStats {
                response_time: DurationSummary::from_durations(durations),
                totals,
            }
        })
        .collect();
    Ok(PerformanceStats {
        agents,
        response_time: DurationSummary::from_durations(overall),
        patterns,
    })
}

type Durations = (std::collections::HashMap<String, Vec<f64>>, Vec<f64>);

/// Durations of the completed steps finished in the window, per agent and all together.
fn step_durations(
    conn: &Connection,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<Durations, StoreError> {
    let since = since.as_ref().map(encode_time);
    let until = until.as_ref().map(encode_time);
    // The same filter as `agent_stats`, so the durations are exactly those it sums.
    let mut stmt = conn.prepare_cached(
        "SELECT agent_id, duration
         FROM steps
         WHERE status = 'completed'
           AND duration IS NOT NULL
           AND finished_at IS NOT NULL
           AND (?1 IS NULL OR finished_at >= ?1)
           AND (?2 IS NULL OR finished_at < ?2)",
    )?;
    let mut rows = stmt.query(params![since, until])?;
    let mut per_agent: std::collections::HashMap<String, Vec<f64>> = Default::default();
    let mut all = Vec::new();
    while let Some(row) = rows.next()? {
        let agent_id: String = column(row, 0, || "steps.agent_id".to_owned())?;
        let duration: f64 = column(row, 1, || format!("agent `{agent_id}` step duration"))?;
        all.push(duration);
        per_agent.entry(agent_id).or_default().push(duration);
    }
    Ok((per_agent, all))
}

/// The tasks that ended in `[?1, ?2)`, with their pattern (see [`pattern_stats`]).
///
/// The unary `+` on `status` keeps the planner off `tasks_by_status`: without `ANALYZE`
/// statistics it rates a three-value `IN` above the range, and would then visit every
/// ended task the journal ever held instead of those of the window.
const PATTERN_SQL: &str = "SELECT id,
        json_valid(request_json),
        CASE WHEN json_valid(request_json)
             THEN json_extract(request_json, '$.coordination_pattern') END,
        status,
        started_at,
        completed_at
    FROM tasks
    WHERE completed_at >= ?1 AND completed_at < ?2
      AND +status IN ('completed', 'failed', 'cancelled')";

/// Per pattern, the tasks that ended in the window.
fn pattern_stats(
    conn: &Connection,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<Vec<PatternStats>, StoreError> {
    let since = since
        .as_ref()
        .map_or_else(|| TEXT_MIN.to_owned(), encode_time);
    let until = until
        .as_ref()
        .map_or_else(|| TEXT_MAX.to_owned(), encode_time);
    // `json_extract` raises an error on malformed JSON, which would fail the whole query
    // with a bare SQLite error; `json_valid` lets a bad row be reported as corrupt, by id.
    let mut stmt = conn.prepare_cached(PATTERN_SQL)?;
    let mut rows = stmt.query(params![since, until])?;
    let mut stats: Vec<PatternStats> = Vec::new();
    let mut durations: Vec<Vec<f64>> = Vec::new();
    while let Some(row) = rows.next()? {
        let id: String = column(row, 0, || "tasks.id".to_owned())?;
        let what = |col: &str| format!("task `{id}` column {col}");
        let valid: bool = column(row, 1, || what("request_json"))?;
        if !valid {
            return Err(StoreError::Corrupt {
                what: format!("{}: not JSON", what("request_json")),
            });
        }
        let name: Option<String> = column(row, 2, || what("request_json.coordination_pattern"))?;
        let pattern =
            match name {
                // Absent means the request's serde default, as when the row is decoded.
                None => CoordinationPattern::default(),
                Some(name) => serde_json::from_value(serde_json::Value::String(name.clone()))
                    .map_err(|_| StoreError::Corrupt {
                        what: format!(
                            "{}: unknown pattern `{name}`",
                            what("request_json.coordination_pattern")
                        ),
                    })?,
            };
        let status_text: String = column(row, 3, || what("status"))?;
        let i = match stats.iter().position(|s| s.pattern == pattern) {
            Some(i) => i,
            None => {
                stats.push(PatternStats::new(pattern));
                durations.push(Vec::new());
                stats.len() - 1
            }
        };
        match TaskStatus::parse(&status_text) {
            Some(TaskStatus::Completed) => {
                stats[i].completed += 1;
                let started: Option<String> = column(row, 4, || what("started_at"))?;
                let completed: String = column(row, 5, || what("completed_at"))?;
                if let Some(started) = started {
                    let started = decode_time(&started, || what("started_at"))?;
                    let completed = decode_time(&completed, || what("completed_at"))?;
                    durations[i].push(seconds_between(started, completed));
                }
            }
            Some(TaskStatus::Failed) => stats[i].failed += 1,
            Some(TaskStatus::Cancelled) => stats[i].cancelled += 1,
            // The WHERE clause only lets terminal statuses through.
            _ => {
                return Err(StoreError::Corrupt {
                    what: format!("{}: unexpected status `{status_text}`", what("status")),
                });
            }
        }
    }
    for (s, d) in stats.iter_mut().zip(durations) {
        s.duration = DurationSummary::from_durations(d);
    }
    stats.sort_by_key(|s| s.pattern.as_str());
    Ok(stats)
}

/// Seconds from `start` to `end`, with nanosecond precision (negative if `end` is first).
fn seconds_between(start: DateTime<Utc>, end: DateTime<Utc>) -> f64 {
    let delta = end - start;
    match delta.num_nanoseconds() {
        Some(ns) => ns as f64 / 1e9,
        // Beyond ±292 years of nanoseconds: milliseconds are plenty.
        None => delta.num_milliseconds() as f64 / 1e3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_matches_the_definition() {
        assert_eq!(nearest_rank(&[], 50), None);
        assert_eq!(nearest_rank(&[7.0], 0), Some(7.0));
        assert_eq!(nearest_rank(&[7.0], 50), Some(7.0));
        assert_eq!(nearest_rank(&[7.0], 100), Some(7.0));
        let four = [1.0, 2.0, 3.0, 4.0];
        // ceil(0.5 * 4) = 2, ceil(0.95 * 4) = 4, ceil(0.25 * 4) = 1.
        assert_eq!(nearest_rank(&four, 50), Some(2.0));
        assert_eq!(nearest_rank(&four, 95), Some(4.0));
        assert_eq!(nearest_rank(&four, 25), Some(1.0));
        assert_eq!(nearest_rank(&four, 26), Some(2.0));
        assert_eq!(nearest_rank(&four, 0), Some(1.0));
        assert_eq!(nearest_rank(&four, 250), Some(4.0));
        // Exact multiples stay exact: the 95th of 1..=20 is the 19th value, the 50th the 10th.
        let twenty: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(nearest_rank(&twenty, 95), Some(19.0));
        assert_eq!(nearest_rank(&twenty, 50), Some(10.0));
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(nearest_rank(&hundred, 95), Some(95.0));
        assert_eq!(nearest_rank(&hundred, 1), Some(1.0));
    }

    #[test]
    fn summary_sorts_and_sums() {
        let s = DurationSummary::from_durations(vec![10.0, 0.5, 2.0, 1.5, 1.0]);
        assert_eq!(s.count, 5);
        assert!((s.total_secs - 15.0).abs() < 1e-12);
        assert_eq!(s.mean_secs(), Some(3.0));
        // Sorted: 0.5 1.0 1.5 2.0 10.0; ranks ceil(2.5) = 3 and ceil(4.75) = 5.
        assert_eq!(s.p50_secs, Some(1.5));
        assert_eq!(s.p95_secs, Some(10.0));
        let empty = DurationSummary::from_durations(Vec::new());
        assert_eq!(empty, DurationSummary::default());
        assert_eq!(empty.mean_secs(), None);
    }

    #[test]
    fn seconds_between_keeps_nanoseconds() {
        let a = DateTime::from_timestamp(1_700_000_000, 250_000_000).expect("valid");
        let b = DateTime::from_timestamp(1_700_000_002, 750_000_001).expect("valid");
        assert!((seconds_between(a, b) - 2.500_000_001).abs() < 1e-12);
        assert!((seconds_between(b, a) + 2.500_000_001).abs() < 1e-12);
    }

    #[test]
    fn the_pattern_query_ranges_over_the_completed_at_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = crate::schema::open_writer(&dir.path().join("j.sqlite3")).expect("open");
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {PATTERN_SQL}"))
            .expect("explain");
        let plan: Vec<String> = stmt
            .query_map(params![TEXT_MIN, TEXT_MAX], |row| row.get(3))
            .expect("plan")
            .collect::<Result<_, _>>()
            .expect("plan rows");
        assert!(
            plan.iter().any(|step| step
                .contains("USING INDEX tasks_by_completed (completed_at>? AND completed_at<?)")),
            "{plan:?}"
        );
    }

    #[test]
    fn text_bounds_enclose_every_timestamp() {
        for t in [
            DateTime::from_timestamp(0, 0).expect("valid"),
            DateTime::from_timestamp(253_402_300_799, 999_999_999).expect("year 9999"),
        ] {
            let text = encode_time(&t);
            assert!(
                TEXT_MIN < text.as_str() && text.as_str() < TEXT_MAX,
                "{text}"
            );
        }
    }
}
