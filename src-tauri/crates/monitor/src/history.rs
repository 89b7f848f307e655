//! The monitor's durable memory: one SQLite file (`<data dir>/monitoring.db`) holding the
//! time series, the alert history and the rules as people edited them.
//!
//! Time series come in three tiers with one shape (per series and bucket: count, sum, min,
//! max): 10-second buckets written by the monitor as each bucket closes, rolled up into
//! 1-minute buckets, and those into 1-hour buckets. Roll-ups run as the buckets close and
//! remember how far they got (`rollups`), so a restart continues where it stopped. Each
//! tier is kept for a bounded time — 10 s buckets for a day, 1 min for a week, 1 h for
//! `METRICS_RETENTION_DAYS` — and no tier longer than that retention. A query by range and
//! step reads the coarsest tier fine enough for the step, and fills the part that tier
//! has not rolled up yet from the finer tiers, so the latest minutes are never missing.
//!
//! Writes go through one thread, in order (a resolution is never overtaken by the firing
//! it resolves); reads open their own connection (WAL) on tokio's blocking threads.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use rusqlite_migration::{M, Migrations};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use crate::monitor::AlertRecord;
use crate::rules::{Observation, Rule};

/// Seconds per bucket of the finest tier.
pub const RAW_SECONDS: i64 = 10;
/// How long 10-second buckets are kept (at most the retention).
const KEEP_RAW: i64 = 86_400;
/// How long 1-minute buckets are kept (at most the retention).
const KEEP_MINUTES: i64 = 7 * 86_400;
/// Points one query may return per series.
pub const MAX_POINTS: i64 = 10_000;

const MIGRATIONS: &[M<'static>] = &[M::up(
    "CREATE TABLE series (
        id INTEGER PRIMARY KEY,
        metric TEXT NOT NULL,
        subject TEXT NOT NULL,
        last_at INTEGER NOT NULL,
        UNIQUE (metric, subject)
    ) STRICT;
    CREATE TABLE points_10s (
        ts INTEGER NOT NULL, series INTEGER NOT NULL,
        count INTEGER NOT NULL, sum REAL NOT NULL, min REAL NOT NULL, max REAL NOT NULL,
        PRIMARY KEY (ts, series)
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE points_1m (
        ts INTEGER NOT NULL, series INTEGER NOT NULL,
        count INTEGER NOT NULL, sum REAL NOT NULL, min REAL NOT NULL, max REAL NOT NULL,
        PRIMARY KEY (ts, series)
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE points_1h (
        ts INTEGER NOT NULL, series INTEGER NOT NULL,
        count INTEGER NOT NULL, sum REAL NOT NULL, min REAL NOT NULL, max REAL NOT NULL,
        PRIMARY KEY (ts, series)
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE rollups (tier TEXT PRIMARY KEY, done_until INTEGER NOT NULL) STRICT;
    CREATE TABLE alerts (
        id INTEGER PRIMARY KEY,
        status TEXT NOT NULL,
        record TEXT NOT NULL
    ) STRICT;
    CREATE INDEX alerts_by_status ON alerts (status, id);
    CREATE TABLE rules (id TEXT PRIMARY KEY, rule TEXT NOT NULL, updated_at TEXT NOT NULL) STRICT;",
)];

/// What went wrong with the history.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// SQLite failed.
    #[error("monitoring database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The schema could not be brought up to date.
    #[error("monitoring database migration: {0}")]
    Migration(String),
    /// A stored row does not decode.
    #[error("monitoring database holds a bad row: {0}")]
    Corrupt(String),
    /// A query's parameters are out of range (`field` names which).
    #[error("{field}: {message}")]
    Invalid {
        /// The parameter.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The writer thread is gone (the monitor stopped).
    #[error("the monitoring database writer has stopped")]
    Stopped,
}

/// Count, sum, min and max of a series over one bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Values seen.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
}

impl Bucket {
    fn of(value: f64) -> Bucket {
        Bucket {
            count: 1,
            sum: value,
            min: value,
            max: value,
        }
    }

    fn add(&mut self, value: f64) {
        self.count += 1;
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }
}

/// Gathers observations into the current 10-second bucket; hands over the bucket's figures
/// once a later bucket begins.
#[derive(Debug, Default)]
pub struct Accumulator {
    bucket: Option<i64>,
    values: HashMap<(String, String), Bucket>,
}

/// One closed bucket of every series seen in it.
pub type ClosedBucket = (i64, Vec<(String, String, Bucket)>);

impl Accumulator {
    /// Adds observations taken at `now` (unix seconds). Returns the previous bucket when
    /// `now` falls in a new one. Values that are not finite are skipped.
    pub fn add(&mut self, now: i64, observations: &[Observation]) -> Option<ClosedBucket> {
        let bucket = now - now.rem_euclid(RAW_SECONDS);
        let closed = match self.bucket {
            Some(b) if b != bucket => Some(self.take(b)),
            _ => None,
        };
        self.bucket = Some(bucket);
        for o in observations.iter().filter(|o| o.value.is_finite()) {
            self.values
                .entry((o.metric.clone(), o.subject.clone()))
                .and_modify(|b| b.add(o.value))
                .or_insert_with(|| Bucket::of(o.value));
        }
        closed
    }

    fn take(&mut self, bucket: i64) -> ClosedBucket {
        let rows = self
            .values
            .drain()
            .map(|((metric, subject), b)| (metric, subject, b))
            .collect();
        (bucket, rows)
    }
}

/// One point of a series answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SeriesPoint {
    /// Start of the step, unix seconds.
    pub t: i64,
    /// Mean over the step.
    pub avg: f64,
    /// Smallest value in the step.
    pub min: f64,
    /// Largest value in the step.
    pub max: f64,
    /// Samples behind it.
    pub count: u64,
}

/// One subject's points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SeriesData {
    /// What the values are about (`host`, an agent id, a mount point, `gpu0`).
    pub subject: String,
    /// Oldest first; steps without samples are left out.
    pub points: Vec<SeriesPoint>,
}

/// A query's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SeriesAnswer {
    /// The metric.
    pub metric: String,
    /// Range start (inclusive), moved back to a multiple of the step.
    pub start: DateTime<Utc>,
    /// Range end (exclusive).
    pub end: DateTime<Utc>,
    /// Seconds per point.
    pub step: i64,
    /// The finest stored resolution that could serve the step, seconds.
    pub resolution: i64,
    /// One entry per subject with points in the range.
    pub series: Vec<SeriesData>,
}

/// A series the history knows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SeriesInfo {
    /// The metric.
    pub metric: String,
    /// The subject.
    pub subject: String,
    /// Its latest bucket.
    pub last_at: DateTime<Utc>,
}

/// A range-and-step query.
#[derive(Debug, Clone)]
pub struct SeriesQuery {
    /// The metric.
    pub metric: String,
    /// One subject, or every subject of the metric.
    pub subject: Option<String>,
    /// Range start.
    pub start: DateTime<Utc>,
    /// Range end.
    pub end: DateTime<Utc>,
    /// Seconds per point (at least [`RAW_SECONDS`]).
    pub step: i64,
}

enum Write {
    Points(ClosedBucket),
    Alert(Box<AlertRecord>),
    Rule(Box<Rule>),
    Flush(oneshot::Sender<()>),
}

struct Tier {
    table: &'static str,
    name: &'static str,
    resolution: i64,
    keep: i64,
}

/// The history: a writer thread and the file's path for reads. Cheap to clone.
#[derive(Clone)]
pub struct History {
    path: PathBuf,
    retention: i64,
    writes: mpsc::Sender<Write>,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn tiers(retention: i64) -> [Tier; 3] {
    [
        Tier {
            table: "points_10s",
            name: "10s",
            resolution: RAW_SECONDS,
            keep: KEEP_RAW.min(retention),
        },
        Tier {
            table: "points_1m",
            name: "1m",
            resolution: 60,
            keep: KEEP_MINUTES.min(retention),
        },
        Tier {
            table: "points_1h",
            name: "1h",
            resolution: 3600,
            keep: retention,
        },
    ]
}

fn open_connection(path: &Path, read_only: bool) -> Result<Connection, HistoryError> {
    let conn = if read_only {
        Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?
    } else {
        Connection::open(path)?
    };
    conn.busy_timeout(Duration::from_secs(5))?;
    if !read_only {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
    }
    Ok(conn)
}

fn time(ts: i64) -> Result<DateTime<Utc>, HistoryError> {
    DateTime::from_timestamp(ts, 0).ok_or_else(|| HistoryError::Corrupt(format!("time {ts}")))
}

impl History {
    /// Opens (creating or migrating) the file at `path` and starts its writer thread, which
    /// drains what is queued and ends once `shutdown` fires. `retention` is
    /// `METRICS_RETENTION_DAYS`. Blocking: call it off the reactor.
    pub fn open(
        path: &Path,
        retention: Duration,
        shutdown: CancellationToken,
    ) -> Result<History, HistoryError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| HistoryError::Migration(format!("creating {}: {e}", dir.display())))?;
        }
        let mut conn = open_connection(path, false)?;
        Migrations::from_slice(MIGRATIONS)
            .to_latest(&mut conn)
            .map_err(|e| HistoryError::Migration(e.to_string()))?;
        let retention = i64::try_from(retention.as_secs())
            .unwrap_or(i64::MAX)
            .max(3600);
        let (writes, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("sutazai-history".into())
            .spawn(move || {
                let mut writer = Writer {
                    conn,
                    retention,
                    ids: HashMap::new(),
                    pruned_at: 0,
                };
                writer.run(&queue, &shutdown);
            })
            .map_err(|e| HistoryError::Migration(format!("starting the writer thread: {e}")))?;
        Ok(History {
            path: path.to_owned(),
            retention,
            writes,
        })
    }

    /// Queues a closed bucket (and the roll-ups it completes).
    pub fn record(&self, bucket: ClosedBucket) {
        let _ = self.writes.send(Write::Points(bucket));
    }

    /// Queues an alert's current state.
    pub fn save_alert(&self, record: &AlertRecord) {
        let _ = self.writes.send(Write::Alert(Box::new(record.clone())));
    }

    /// Queues a rule as edited.
    pub fn save_rule(&self, rule: &Rule) {
        let _ = self.writes.send(Write::Rule(Box::new(rule.clone())));
    }

    /// Resolves once everything queued before it is written.
    pub async fn flush(&self) -> Result<(), HistoryError> {
        let (tx, rx) = oneshot::channel();
        self.writes
            .send(Write::Flush(tx))
            .map_err(|_| HistoryError::Stopped)?;
        rx.await.map_err(|_| HistoryError::Stopped)
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, HistoryError> + Send + 'static,
    ) -> Result<T, HistoryError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || f(&open_connection(&path, true)?))
            .await
            .map_err(|_| HistoryError::Stopped)?
    }

    /// The rules people edited, as stored.
    pub async fn rules(&self) -> Result<Vec<Rule>, HistoryError> {
        self.read(|conn| {
            let mut stmt = conn.prepare("SELECT id, rule FROM rules ORDER BY id")?;
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            let mut out = Vec::new();
            for row in rows {
                let (id, text) = row?;
                match serde_json::from_str::<Rule>(&text) {
                    Ok(rule) => out.push(rule),
                    // A rule stored by another version that no longer parses is skipped
                    // (the default stands), not fatal.
                    Err(e) => tracing::warn!(rule = %id, error = %e, "stored alert rule ignored"),
                }
            }
            Ok(out)
        })
        .await
    }

    /// Alerts newest first: those with `status` (any when `None`), with ids below `before`,
    /// at most `limit`.
    pub async fn alerts(
        &self,
        status: Option<String>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AlertRecord>, HistoryError> {
        self.read(move |conn| {
            let before = before.map_or(i64::MAX, |b| i64::try_from(b).unwrap_or(i64::MAX));
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let mut stmt = conn.prepare(
                "SELECT record FROM alerts WHERE (?1 IS NULL OR status = ?1) AND id < ?2
                 ORDER BY id DESC LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![status, before, limit], |r| r.get::<_, String>(0))?;
            let mut out = Vec::new();
            for row in rows {
                let text = row?;
                out.push(
                    serde_json::from_str(&text)
                        .map_err(|e| HistoryError::Corrupt(format!("alert: {e}")))?,
                );
            }
            Ok(out)
        })
        .await
    }

    /// Every series known, by metric and subject.
    pub async fn catalogue(&self) -> Result<Vec<SeriesInfo>, HistoryError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare("SELECT metric, subject, last_at FROM series ORDER BY metric, subject")?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (metric, subject, last) = row?;
                out.push(SeriesInfo {
                    metric,
                    subject,
                    last_at: time(last)?,
                });
            }
            Ok(out)
        })
        .await
    }

    /// Points of `query`'s metric, `now` deciding which tiers still hold what.
    pub async fn query(
        &self,
        query: SeriesQuery,
        now: DateTime<Utc>,
    ) -> Result<SeriesAnswer, HistoryError> {
        let start = query.start.timestamp();
        let end = query.end.timestamp();
        if start >= end {
            return Err(HistoryError::Invalid {
                field: "start",
                message: "must be before end".into(),
            });
        }
        if query.step < RAW_SECONDS || query.step > 30 * 86_400 {
            return Err(HistoryError::Invalid {
                field: "step",
                message: format!("must be between {RAW_SECONDS} and 2592000 seconds"),
            });
        }
        if (end - start) / query.step > MAX_POINTS {
            return Err(HistoryError::Invalid {
                field: "step",
                message: format!(
                    "{} s over {} s gives more than {MAX_POINTS} points; take a larger step",
                    query.step,
                    end - start
                ),
            });
        }
        let retention = self.retention;
        let now = now.timestamp();
        self.read(move |conn| run_query(conn, &query, start, end, now, retention))
            .await
    }
}

fn done_until(conn: &Connection, tier: &str) -> Result<Option<i64>, HistoryError> {
    Ok(conn
        .query_row(
            "SELECT done_until FROM rollups WHERE tier = ?1",
            params![tier],
            |r| r.get(0),
        )
        .optional()?)
}

fn run_query(
    conn: &Connection,
    query: &SeriesQuery,
    start: i64,
    end: i64,
    now: i64,
    retention: i64,
) -> Result<SeriesAnswer, HistoryError> {
    let tiers = tiers(retention);
    // Up to where each tier is complete: the finest is written as buckets close; a roll-up
    // tier only up to where its roll-up got.
    let done = [
        i64::MAX,
        done_until(conn, tiers[1].name)?.unwrap_or(i64::MIN),
        done_until(conn, tiers[2].name)?.unwrap_or(i64::MIN),
    ];
    let chosen = tiers
        .iter()
        .rposition(|t| t.resolution <= query.step)
        .unwrap_or(0);
    // Points start on multiples of the step, whatever the range's start.
    let start = start - start.rem_euclid(query.step);
    let up = |t: i64, to: i64| t + (to - t.rem_euclid(to)) % to;
    // Tier i keeps what is newer than `now - keep_i`; below that tier i + 1 takes over, at
    // a boundary on its own bucket edges so that no coarse bucket overlaps finer data.
    let oldest = |i: usize| match tiers.get(i + 1) {
        Some(next) => up(now - tiers[i].keep, next.resolution),
        None => now - tiers[i].keep,
    };
    // (tier, from, until): the chosen tier where it is complete and kept, finer tiers for
    // what it has not rolled up yet, coarser ones for what it no longer keeps.
    let mut segments: Vec<(usize, i64, i64)> = Vec::new();
    segments.push((chosen, start.max(oldest(chosen)), end.min(done[chosen])));
    for j in (0..chosen).rev() {
        segments.push((j, start.max(done[j + 1]).max(oldest(j)), end.min(done[j])));
    }
    for (k, &done_k) in done.iter().enumerate().skip(chosen + 1) {
        segments.push((k, start.max(oldest(k)), end.min(done_k).min(oldest(k - 1))));
    }
    segments.retain(|(_, lo, hi)| lo < hi);

    let mut ids = conn.prepare(
        "SELECT id, subject FROM series WHERE metric = ?1 AND (?2 IS NULL OR subject = ?2)
         ORDER BY subject",
    )?;
    let subjects: Vec<(i64, String)> = ids
        .query_map(params![query.metric, query.subject], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut series = Vec::new();
    if !segments.is_empty() {
        let union = segments
            .iter()
            .map(|(tier, lo, hi)| {
                format!(
                    "SELECT ts, count, sum, min, max FROM {} WHERE series = ?1 AND ts >= {lo} AND ts < {hi}",
                    tiers[*tier].table
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let sql = format!(
            "SELECT ?2 + ((ts - ?2) / ?3) * ?3 AS b, SUM(count), SUM(sum), MIN(min), MAX(max)
             FROM ({union}) GROUP BY b ORDER BY b"
        );
        let mut stmt = conn.prepare(&sql)?;
        for (id, subject) in subjects {
            let points: Vec<SeriesPoint> = stmt
                .query_map(params![id, start, query.step], |r| {
                    let count: i64 = r.get(1)?;
                    let sum: f64 = r.get(2)?;
                    Ok(SeriesPoint {
                        t: r.get(0)?,
                        avg: if count > 0 { sum / count as f64 } else { 0.0 },
                        min: r.get(3)?,
                        max: r.get(4)?,
                        count: u64::try_from(count).unwrap_or(0),
                    })
                })?
                .collect::<Result<_, _>>()?;
            if !points.is_empty() {
                series.push(SeriesData { subject, points });
            }
        }
    }
    Ok(SeriesAnswer {
        metric: query.metric.clone(),
        start: time(start)?,
        end: query.end,
        step: query.step,
        resolution: tiers[chosen].resolution,
        series,
    })
}

struct Writer {
    conn: Connection,
    retention: i64,
    ids: HashMap<(String, String), i64>,
    pruned_at: i64,
}

impl Writer {
    fn run(&mut self, queue: &mpsc::Receiver<Write>, shutdown: &CancellationToken) {
        loop {
            match queue.recv_timeout(Duration::from_millis(250)) {
                Ok(write) => self.apply(write),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if shutdown.is_cancelled() {
                        // Drain what is already queued, then stop.
                        while let Ok(write) = queue.try_recv() {
                            self.apply(write);
                        }
                        return;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn apply(&mut self, write: Write) {
        let outcome = match write {
            Write::Points(bucket) => self.points(bucket),
            Write::Alert(record) => self.alert(&record),
            Write::Rule(rule) => self.rule(&rule),
            Write::Flush(done) => {
                let _ = done.send(());
                Ok(())
            }
        };
        if let Err(e) = outcome {
            tracing::error!(error = %e, "monitoring database write failed");
        }
    }

    fn series_id(
        tx: &rusqlite::Transaction<'_>,
        ids: &mut HashMap<(String, String), i64>,
        metric: &str,
        subject: &str,
    ) -> Result<i64, HistoryError> {
        if let Some(id) = ids.get(&(metric.to_owned(), subject.to_owned())) {
            return Ok(*id);
        }
        tx.execute(
            "INSERT OR IGNORE INTO series (metric, subject, last_at) VALUES (?1, ?2, 0)",
            params![metric, subject],
        )?;
        let id: i64 = tx.query_row(
            "SELECT id FROM series WHERE metric = ?1 AND subject = ?2",
            params![metric, subject],
            |r| r.get(0),
        )?;
        ids.insert((metric.to_owned(), subject.to_owned()), id);
        Ok(id)
    }

    fn points(&mut self, (bucket, rows): ClosedBucket) -> Result<(), HistoryError> {
        let tiers = tiers(self.retention);
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR REPLACE INTO points_10s (ts, series, count, sum, min, max)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            let mut seen = tx.prepare_cached("UPDATE series SET last_at = ?2 WHERE id = ?1")?;
            for (metric, subject, b) in &rows {
                let id = Self::series_id(&tx, &mut self.ids, metric, subject)?;
                insert.execute(params![
                    bucket,
                    id,
                    i64::try_from(b.count).unwrap_or(i64::MAX),
                    b.sum,
                    b.min,
                    b.max
                ])?;
                seen.execute(params![id, bucket])?;
            }
        }
        // Everything before the bucket after this one is written: roll up the closed
        // minutes, then the closed hours.
        let written_until = bucket + RAW_SECONDS;
        rollup(
            &tx,
            &tiers[0],
            &tiers[1],
            written_until - written_until.rem_euclid(60),
        )?;
        if let Some(minutes_done) = done_until(&tx, tiers[1].name)? {
            let hour = minutes_done - minutes_done.rem_euclid(3600);
            rollup(&tx, &tiers[1], &tiers[2], hour)?;
        }
        // Old buckets go once an hour.
        if bucket - self.pruned_at >= 3600 {
            for t in &tiers {
                tx.execute(
                    &format!("DELETE FROM {} WHERE ts < ?1", t.table),
                    params![bucket - t.keep],
                )?;
            }
            tx.execute(
                "DELETE FROM alerts WHERE status = 'resolved' AND id IN (
                    SELECT id FROM alerts WHERE json_extract(record, '$.fired_at') < ?1)",
                params![
                    time(bucket - self.retention)?
                        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                ],
            )?;
            self.pruned_at = bucket;
        }
        tx.commit()?;
        Ok(())
    }

    fn alert(&mut self, record: &AlertRecord) -> Result<(), HistoryError> {
        let text =
            serde_json::to_string(record).map_err(|e| HistoryError::Corrupt(e.to_string()))?;
        self.conn.execute(
            "INSERT OR REPLACE INTO alerts (id, status, record) VALUES (?1, ?2, ?3)",
            params![
                i64::try_from(record.id).unwrap_or(i64::MAX),
                record.status,
                text
            ],
        )?;
        Ok(())
    }

    fn rule(&mut self, rule: &Rule) -> Result<(), HistoryError> {
        let text = serde_json::to_string(rule).map_err(|e| HistoryError::Corrupt(e.to_string()))?;
        self.conn.execute(
            "INSERT OR REPLACE INTO rules (id, rule, updated_at) VALUES (?1, ?2, ?3)",
            params![rule.id, text, Utc::now().to_rfc3339()],
        )?;
        Ok(())
    }
}

/// Rolls `from`'s buckets before `until` that are not rolled up yet into `to`.
fn rollup(
    tx: &rusqlite::Transaction<'_>,
    from: &Tier,
    to: &Tier,
    until: i64,
) -> Result<(), HistoryError> {
    let since = match done_until(tx, to.name)? {
        Some(done) => done,
        // First roll-up: from the oldest bucket there is.
        None => match tx.query_row(&format!("SELECT MIN(ts) FROM {}", from.table), [], |r| {
            r.get::<_, Option<i64>>(0)
        })? {
            Some(oldest) => oldest - oldest.rem_euclid(to.resolution),
            None => return Ok(()),
        },
    };
    if until <= since {
        return Ok(());
    }
    tx.execute(
        &format!(
            "INSERT OR REPLACE INTO {to} (ts, series, count, sum, min, max)
             SELECT ts - (ts % ?3), series, SUM(count), SUM(sum), MIN(min), MAX(max)
             FROM {from} WHERE ts >= ?1 AND ts < ?2
             GROUP BY ts - (ts % ?3), series",
            to = to.table,
            from = from.table
        ),
        params![since, until, to.resolution],
    )?;
    tx.execute(
        "INSERT OR REPLACE INTO rollups (tier, done_until) VALUES (?1, ?2)",
        params![to.name, until],
    )?;
    Ok(())
}

/// The stored alert with the highest id, and the alerts to keep in memory: the last
/// `recent` and every one still firing. Blocking.
pub(crate) fn load_alerts(
    path: &Path,
    recent: usize,
) -> Result<(u64, Vec<AlertRecord>), HistoryError> {
    let conn = open_connection(path, true)?;
    let max: Option<i64> = conn.query_row("SELECT MAX(id) FROM alerts", [], |r| r.get(0))?;
    let mut stmt = conn.prepare(
        "SELECT record FROM alerts WHERE status = 'firing' OR id IN (
             SELECT id FROM alerts ORDER BY id DESC LIMIT ?1)
         ORDER BY id",
    )?;
    let rows = stmt.query_map(params![i64::try_from(recent).unwrap_or(i64::MAX)], |r| {
        r.get::<_, String>(0)
    })?;
    let mut out = Vec::new();
    for row in rows {
        out.push(
            serde_json::from_str(&row?)
                .map_err(|e| HistoryError::Corrupt(format!("alert: {e}")))?,
        );
    }
    Ok((max.map_or(0, |m| u64::try_from(m).unwrap_or(0)), out))
}

impl History {
    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(metric: &str, subject: &str, value: f64) -> Observation {
        Observation {
            metric: metric.into(),
            subject: subject.into(),
            value,
        }
    }

    fn at(ts: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(ts, 0).unwrap()
    }

    #[test]
    fn the_accumulator_closes_a_bucket_when_the_next_begins() {
        let mut acc = Accumulator::default();
        assert!(acc.add(100, &[obs("cpu", "host", 1.0)]).is_none());
        assert!(
            acc.add(105, &[obs("cpu", "host", 3.0), obs("x", "y", f64::NAN)])
                .is_none()
        );
        let (bucket, rows) = acc.add(110, &[obs("cpu", "host", 7.0)]).unwrap();
        assert_eq!(bucket, 100);
        assert_eq!(rows.len(), 1, "NaN is not recorded");
        let b = rows[0].2;
        assert_eq!((b.count, b.sum, b.min, b.max), (2, 4.0, 1.0, 3.0));
        let (bucket, rows) = acc.add(125, &[]).unwrap();
        assert_eq!((bucket, rows[0].2.sum), (110, 7.0));
    }

    /// Three hours of a value that is the minute of the hour, written bucket by bucket as
    /// the monitor would: queries at every tier agree with the arithmetic, the latest
    /// minutes come from the finer tier, and old buckets are pruned by their tier's keep.
    #[tokio::test]
    async fn buckets_roll_up_and_queries_pick_the_tier() {
        let dir = tempfile::tempdir().unwrap();
        let stop = CancellationToken::new();
        let path = dir.path().join("monitoring.db");
        let history = History::open(&path, Duration::from_secs(30 * 86_400), stop.clone()).unwrap();
        let t0: i64 = 1_800_000_000; // an hour boundary (500,000 h)
        let mut acc = Accumulator::default();
        let seconds = 3 * 3600 + 25 * 60;
        for s in (0..seconds).step_by(5) {
            let ts = t0 + s;
            let minute = ((s / 60) % 60) as f64;
            if let Some(closed) = acc.add(ts, &[obs("m", "a", minute), obs("m", "b", 1.0)]) {
                history.record(closed);
            }
        }
        history.flush().await.unwrap();
        let now = at(t0 + seconds);
        let q = |start: i64, end: i64, step: i64, subject: Option<&str>| SeriesQuery {
            metric: "m".into(),
            subject: subject.map(str::to_owned),
            start: at(start),
            end: at(end),
            step,
        };
        // Hourly: the mean of 0..59 is 29.5 for each full hour.
        let hourly = history
            .query(q(t0, t0 + 3 * 3600, 3600, Some("a")), now)
            .await
            .unwrap();
        assert_eq!(hourly.resolution, 3600);
        let points = &hourly.series[0].points;
        assert_eq!(points.len(), 3);
        for (i, p) in points.iter().enumerate() {
            assert_eq!(p.t, t0 + i as i64 * 3600);
            assert!((p.avg - 29.5).abs() < 1e-9, "{p:?}");
            assert_eq!((p.min, p.max, p.count), (0.0, 59.0, 720));
        }
        // Minutes of the last, unfinished hour: not in the hourly tier yet, served by the
        // 1-minute tier (and its last minutes by the 10 s tier).
        let last = history
            .query(q(t0 + 3 * 3600, t0 + seconds, 60, Some("a")), now)
            .await
            .unwrap();
        assert_eq!(last.resolution, 60);
        let points = &last.series[0].points;
        assert_eq!(points.len(), 25, "{points:?}");
        for (i, p) in points.iter().enumerate() {
            assert_eq!(p.avg, i as f64);
            // The last minute's last bucket is still open (not written).
            assert_eq!(p.count, if i == 24 { 10 } else { 12 }, "{p:?}");
        }
        // A start inside an hour is moved back to the hour: whole hours, none shifted.
        let shifted = history
            .query(q(t0 + 1800, t0 + 3 * 3600, 3600, Some("a")), now)
            .await
            .unwrap();
        assert_eq!(shifted.start, at(t0));
        let points = &shifted.series[0].points;
        assert_eq!(
            points
                .iter()
                .map(|p| (p.t - t0, p.count))
                .collect::<Vec<_>>(),
            [(0, 720), (3600, 720), (7200, 720)]
        );
        // Across the tiers (1 min where rolled up, 10 s after): every sample counted once.
        // 12,300 s at one sample per 5 s, less the 2 of the bucket still open.
        let all = history
            .query(q(t0, t0 + seconds, 300, Some("a")), now)
            .await
            .unwrap();
        let total: u64 = all.series[0].points.iter().map(|p| p.count).sum();
        assert_eq!(total, 12_300 / 5 - 2);
        // Every subject when none is named.
        let both = history
            .query(q(t0, t0 + 600, 300, None), now)
            .await
            .unwrap();
        let subjects: Vec<_> = both.series.iter().map(|s| s.subject.as_str()).collect();
        assert_eq!(subjects, ["a", "b"]);
        assert_eq!(both.series[1].points[0].avg, 1.0);
        // Bad ranges are refused with the field named.
        let err = history.query(q(t0, t0, 60, None), now).await.unwrap_err();
        assert!(matches!(err, HistoryError::Invalid { field: "start", .. }));
        let err = history
            .query(q(t0, t0 + 86_400 * 30, 10, None), now)
            .await
            .unwrap_err();
        assert!(matches!(err, HistoryError::Invalid { field: "step", .. }));
        let catalogue = history.catalogue().await.unwrap();
        assert_eq!(catalogue.len(), 2);
        stop.cancel();
    }

    #[tokio::test]
    async fn old_buckets_are_pruned_by_retention() {
        let dir = tempfile::tempdir().unwrap();
        let stop = CancellationToken::new();
        let path = dir.path().join("monitoring.db");
        // One hour of retention (the least accepted).
        let history = History::open(&path, Duration::from_secs(3600), stop.clone()).unwrap();
        let t0: i64 = 1_800_000_000; // an hour boundary
        let mut acc = Accumulator::default();
        for s in (0..3 * 3600).step_by(10) {
            if let Some(closed) = acc.add(t0 + s, &[obs("m", "a", 1.0)]) {
                history.record(closed);
            }
        }
        history.flush().await.unwrap();
        let conn = open_connection(&path, true).unwrap();
        let oldest: i64 = conn
            .query_row("SELECT MIN(ts) FROM points_10s", [], |r| r.get(0))
            .unwrap();
        assert!(
            oldest >= t0 + 3600,
            "10 s buckets older than the retention remain"
        );
        stop.cancel();
    }
}
