//! The read queries, as plain functions over a read-only connection.
//!
//! They run on tokio's blocking threads (see `Journal::read`), each on a pooled read-only
//! connection. In WAL mode a read sees the last transaction committed before it started,
//! which is why a write whose `Commit` resolved is always visible here.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use sutazai_core::{Step, Task, TaskStatus};

use crate::StoreError;
use crate::codec::{STEP_COLUMNS, TASK_COLUMNS, column, decode_step, decode_task, encode_time};

/// Per-agent totals over the steps that finished in a time window, the raw material of
/// the API's performance analytics and of capability-plus-track-record agent selection.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AgentStats {
    /// The agent (`AgentSpec::id`).
    pub agent_id: String,
    /// Steps that finished `completed` in the window.
    pub completed: u64,
    /// Steps that finished `failed` in the window (after all their attempts).
    pub failed: u64,
    /// Sum of `duration` over the completed steps, in seconds; failed steps have no
    /// meaningful duration and are left out so the mean of completed work stays honest.
    pub total_duration_secs: f64,
    /// Prompt tokens over all finished steps (failed ones consumed tokens too).
    pub prompt_tokens: u64,
    /// Completion tokens over all finished steps.
    pub completion_tokens: u64,
}

/// Every status, so that `task_counts` reports zeros instead of leaving keys out.
const ALL_STATUSES: [TaskStatus; 6] = [
    TaskStatus::Queued,
    TaskStatus::AwaitingApproval,
    TaskStatus::Running,
    TaskStatus::Completed,
    TaskStatus::Failed,
    TaskStatus::Cancelled,
];

fn collect_tasks(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Task>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    let mut tasks = Vec::new();
    while let Some(row) = rows.next()? {
        tasks.push(decode_task(row)?);
    }
    Ok(tasks)
}

pub(crate) fn get_task(conn: &Connection, id: &str) -> Result<Option<Task>, StoreError> {
    let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1");
    Ok(collect_tasks(conn, &sql, params![id])?.pop())
}

pub(crate) fn list_tasks(
    conn: &Connection,
    status: Option<TaskStatus>,
    limit: usize,
) -> Result<Vec<Task>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    match status {
        Some(status) => {
            let sql = format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE status = ?1 \
                 ORDER BY created_at DESC, seq DESC LIMIT ?2"
            );
            collect_tasks(conn, &sql, params![status.as_str(), limit])
        }
        None => {
            let sql = format!(
                "SELECT {TASK_COLUMNS} FROM tasks ORDER BY created_at DESC, seq DESC LIMIT ?1"
            );
            collect_tasks(conn, &sql, params![limit])
        }
    }
}

pub(crate) fn unfinished_tasks(conn: &Connection) -> Result<Vec<Task>, StoreError> {
    let sql = format!(
        "SELECT {TASK_COLUMNS} FROM tasks \
         WHERE status IN ('queued', 'awaiting_approval', 'running') \
         ORDER BY created_at ASC, seq ASC"
    );
    collect_tasks(conn, &sql, [])
}

pub(crate) fn steps(conn: &Connection, task_id: &str) -> Result<Vec<Step>, StoreError> {
    let sql = format!("SELECT {STEP_COLUMNS} FROM steps WHERE task_id = ?1 ORDER BY seq, key");
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params![task_id])?;
    let mut steps = Vec::new();
    while let Some(row) = rows.next()? {
        steps.push(decode_step(row)?);
    }
    Ok(steps)
}

fn count(value: i64, what: impl FnOnce() -> String) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt {
        what: format!("{}: negative total {value}", what()),
    })
}

pub(crate) fn task_counts(conn: &Connection) -> Result<HashMap<TaskStatus, u64>, StoreError> {
    let mut counts: HashMap<TaskStatus, u64> = ALL_STATUSES.iter().map(|s| (*s, 0)).collect();
    let mut stmt = conn.prepare_cached("SELECT status, COUNT(*) FROM tasks GROUP BY status")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let text: String = column(row, 0, || "tasks.status".to_owned())?;
        let status = TaskStatus::parse(&text).ok_or_else(|| StoreError::Corrupt {
            what: format!("tasks.status: unknown status `{text}`"),
        })?;
        let n: i64 = column(row, 1, || "task count".to_owned())?;
        counts.insert(status, count(n, || "task count".to_owned())?);
    }
    Ok(counts)
}

pub(crate) fn agent_stats(
    conn: &Connection,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<Vec<AgentStats>, StoreError> {
    let since = since.as_ref().map(encode_time);
    let until = until.as_ref().map(encode_time);
    let mut stmt = conn.prepare_cached(
        "SELECT agent_id,
                SUM(status = 'completed'),
                SUM(status = 'failed'),
                TOTAL(CASE WHEN status = 'completed' THEN duration END),
                SUM(prompt_tokens),
                SUM(completion_tokens)
         FROM steps
         WHERE status IN ('completed', 'failed')
           AND finished_at IS NOT NULL
           AND (?1 IS NULL OR finished_at >= ?1)
           AND (?2 IS NULL OR finished_at < ?2)
         GROUP BY agent_id
         ORDER BY agent_id",
    )?;
    let mut rows = stmt.query(params![since, until])?;
    let mut stats = Vec::new();
    while let Some(row) = rows.next()? {
        let agent_id: String = column(row, 0, || "steps.agent_id".to_owned())?;
        let what = |col: &str| format!("agent `{agent_id}` {col}");
        let completed: i64 = column(row, 1, || what("completed"))?;
        let failed: i64 = column(row, 2, || what("failed"))?;
        let total_duration_secs: f64 = column(row, 3, || what("duration"))?;
        let prompt: i64 = column(row, 4, || what("prompt_tokens"))?;
        let completion: i64 = column(row, 5, || what("completion_tokens"))?;
        stats.push(AgentStats {
            completed: count(completed, || what("completed"))?,
            failed: count(failed, || what("failed"))?,
            total_duration_secs,
            prompt_tokens: count(prompt, || what("prompt_tokens"))?,
            completion_tokens: count(completion, || what("completion_tokens"))?,
            agent_id,
        });
    }
    Ok(stats)
}
