//! Conversions between the domain types of `sutazai-core` and table rows.
//!
//! Encoding happens on the *caller's* thread, when a write is enqueued: the single writer
//! thread is the journal's throughput bottleneck, so it should only bind ready-made values
//! and step SQLite. Decoding happens on the blocking read threads and turns every value
//! that does not fit (an unknown status, bad JSON, a negative count) into
//! [`StoreError::Corrupt`] naming the row and column, never a panic.

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::Row;
use rusqlite::types::FromSql;
use sutazai_core::{Approval, Step, StepKind, StepStatus, Task, TaskRequest, TaskStatus};

use crate::StoreError;

/// Formats a timestamp the one way the journal stores time: RFC 3339, UTC (`Z`), exactly
/// nine fractional digits. The fixed width makes text order equal time order (for years
/// 0000..=9999), so SQL can compare and sort the column, and the nanoseconds round-trip.
pub(crate) fn encode_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

pub(crate) fn decode_time(
    text: &str,
    what: impl FnOnce() -> String,
) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt {
            what: format!("{}: bad timestamp `{text}`: {e}", what()),
        })
}

/// The wire name of a step kind; matches its serde name (checked by a test).
pub(crate) fn step_kind_str(kind: StepKind) -> &'static str {
    match kind {
        StepKind::Plan => "plan",
        StepKind::Work => "work",
        StepKind::Stage => "stage",
        StepKind::Round => "round",
        StepKind::Vote => "vote",
        StepKind::Synthesize => "synthesize",
    }
}

fn parse_step_kind(s: &str) -> Option<StepKind> {
    Some(match s {
        "plan" => StepKind::Plan,
        "work" => StepKind::Work,
        "stage" => StepKind::Stage,
        "round" => StepKind::Round,
        "vote" => StepKind::Vote,
        "synthesize" => StepKind::Synthesize,
        _ => return None,
    })
}

/// The wire name of a step status; matches its serde name (checked by a test).
pub(crate) fn step_status_str(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Running => "running",
        StepStatus::Completed => "completed",
        StepStatus::Failed => "failed",
    }
}

fn parse_step_status(s: &str) -> Option<StepStatus> {
    Some(match s {
        "running" => StepStatus::Running,
        "completed" => StepStatus::Completed,
        "failed" => StepStatus::Failed,
        _ => return None,
    })
}

fn to_json<T: serde::Serialize + ?Sized>(
    value: &T,
    what: &'static str,
) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|source| StoreError::Encode { what, source })
}

/// Every column of a `tasks` row, ready to bind.
#[derive(Debug)]
pub(crate) struct TaskRow {
    pub id: String,
    pub session_id: String,
    pub name: String,
    pub priority: &'static str,
    pub request_json: String,
    pub mutable: TaskUpdateRow,
    pub created_at: String,
}

/// The mutable columns of a `tasks` row (what `update_task` writes), ready to bind.
#[derive(Debug)]
pub(crate) struct TaskUpdateRow {
    pub id: String,
    pub status: &'static str,
    pub assigned_agents_json: String,
    pub approvals_json: String,
    pub result_json: Option<String>,
    pub error: Option<String>,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
}

impl TaskRow {
    pub(crate) fn encode(task: &Task) -> Result<TaskRow, StoreError> {
        Ok(TaskRow {
            id: task.id.clone(),
            session_id: task.session_id.clone(),
            name: task.request.name.clone(),
            priority: task.request.priority.as_str(),
            request_json: to_json(&task.request, "task request")?,
            mutable: TaskUpdateRow::encode(task)?,
            created_at: encode_time(&task.created_at),
        })
    }
}

impl TaskUpdateRow {
    pub(crate) fn encode(task: &Task) -> Result<TaskUpdateRow, StoreError> {
        Ok(TaskUpdateRow {
            id: task.id.clone(),
            status: task.status.as_str(),
            assigned_agents_json: to_json(&task.assigned_agents, "assigned agents")?,
            approvals_json: to_json(&task.approvals, "approvals")?,
            result_json: task
                .result
                .as_ref()
                .map(|r| to_json(r, "task result"))
                .transpose()?,
            error: task.error.clone(),
            started_at: task.started_at.as_ref().map(encode_time),
            completed_at: task.completed_at.as_ref().map(encode_time),
        })
    }
}

/// Every column of a `steps` row, ready to bind.
#[derive(Debug)]
pub(crate) struct StepRow {
    pub task_id: String,
    pub key: String,
    pub seq: u32,
    pub kind: &'static str,
    pub agent_id: String,
    pub status: &'static str,
    pub input: String,
    pub output: Option<String>,
    pub error: Option<String>,
    pub attempts: u32,
    pub model: Option<String>,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub duration: Option<f64>,
    pub started_at: String,
    pub finished_at: Option<String>,
}

impl StepRow {
    pub(crate) fn encode(step: &Step) -> StepRow {
        StepRow {
            task_id: step.task_id.clone(),
            key: step.key.clone(),
            seq: step.seq,
            kind: step_kind_str(step.kind),
            agent_id: step.agent_id.clone(),
            status: step_status_str(step.status),
            input: step.input.clone(),
            output: step.output.clone(),
            error: step.error.clone(),
            attempts: step.attempts,
            model: step.model.clone(),
            prompt_tokens: step.prompt_tokens,
            completion_tokens: step.completion_tokens,
            duration: step.duration,
            started_at: encode_time(&step.started_at),
            finished_at: step.finished_at.as_ref().map(encode_time),
        }
    }
}

/// Reads column `idx`, turning a value of the wrong type or range into
/// [`StoreError::Corrupt`] (it is the stored data that is wrong, not SQLite).
pub(crate) fn column<T: FromSql>(
    row: &Row<'_>,
    idx: usize,
    what: impl FnOnce() -> String,
) -> Result<T, StoreError> {
    row.get(idx).map_err(|e| match e {
        rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::Utf8Error(..) => StoreError::Corrupt {
            what: format!("{}: {e}", what()),
        },
        other => StoreError::Sqlite(other),
    })
}

fn from_json<T: serde::de::DeserializeOwned>(
    text: &str,
    what: impl FnOnce() -> String,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        what: format!("{}: {e}", what()),
    })
}

/// The column list [`decode_task`] expects, in order.
pub(crate) const TASK_COLUMNS: &str = "id, session_id, status, request_json, \
     assigned_agents_json, approvals_json, result_json, error, created_at, started_at, \
     completed_at";

/// Decodes a row selected with [`TASK_COLUMNS`].
pub(crate) fn decode_task(row: &Row<'_>) -> Result<Task, StoreError> {
    let id: String = column(row, 0, || "task id".to_owned())?;
    let what = |col: &str| format!("task `{id}` column {col}");
    let session_id: String = column(row, 1, || what("session_id"))?;
    let status_text: String = column(row, 2, || what("status"))?;
    let status = TaskStatus::parse(&status_text).ok_or_else(|| StoreError::Corrupt {
        what: format!("{}: unknown status `{status_text}`", what("status")),
    })?;
    let request_json: String = column(row, 3, || what("request_json"))?;
    let request: TaskRequest = from_json(&request_json, || what("request_json"))?;
    let agents_json: String = column(row, 4, || what("assigned_agents_json"))?;
    let assigned_agents: Vec<String> = from_json(&agents_json, || what("assigned_agents_json"))?;
    let approvals_json: String = column(row, 5, || what("approvals_json"))?;
    let approvals: Vec<Approval> = from_json(&approvals_json, || what("approvals_json"))?;
    let result_json: Option<String> = column(row, 6, || what("result_json"))?;
    let result = result_json
        .map(|text| from_json(&text, || what("result_json")))
        .transpose()?;
    let error: Option<String> = column(row, 7, || what("error"))?;
    let created_text: String = column(row, 8, || what("created_at"))?;
    let created_at = decode_time(&created_text, || what("created_at"))?;
    let started_text: Option<String> = column(row, 9, || what("started_at"))?;
    let started_at = started_text
        .map(|t| decode_time(&t, || what("started_at")))
        .transpose()?;
    let completed_text: Option<String> = column(row, 10, || what("completed_at"))?;
    let completed_at = completed_text
        .map(|t| decode_time(&t, || what("completed_at")))
        .transpose()?;
    Ok(Task {
        id,
        session_id,
        request,
        status,
        assigned_agents,
        approvals,
        result,
        error,
        created_at,
        started_at,
        completed_at,
    })
}

/// The column list [`decode_step`] expects, in order.
pub(crate) const STEP_COLUMNS: &str = "task_id, key, seq, kind, agent_id, status, input, \
     output, error, attempts, model, prompt_tokens, completion_tokens, duration, started_at, \
     finished_at";

/// Decodes a row selected with [`STEP_COLUMNS`].
pub(crate) fn decode_step(row: &Row<'_>) -> Result<Step, StoreError> {
    let task_id: String = column(row, 0, || "step task_id".to_owned())?;
    let key: String = column(row, 1, || format!("step of task `{task_id}`: key"))?;
    let what = |col: &str| format!("step `{key}` of task `{task_id}` column {col}");
    let seq: u32 = column(row, 2, || what("seq"))?;
    let kind_text: String = column(row, 3, || what("kind"))?;
    let kind = parse_step_kind(&kind_text).ok_or_else(|| StoreError::Corrupt {
        what: format!("{}: unknown kind `{kind_text}`", what("kind")),
    })?;
    let agent_id: String = column(row, 4, || what("agent_id"))?;
    let status_text: String = column(row, 5, || what("status"))?;
    let status = parse_step_status(&status_text).ok_or_else(|| StoreError::Corrupt {
        what: format!("{}: unknown status `{status_text}`", what("status")),
    })?;
    let input: String = column(row, 6, || what("input"))?;
    let output: Option<String> = column(row, 7, || what("output"))?;
    let error: Option<String> = column(row, 8, || what("error"))?;
    let attempts: u32 = column(row, 9, || what("attempts"))?;
    let model: Option<String> = column(row, 10, || what("model"))?;
    let prompt_tokens: u32 = column(row, 11, || what("prompt_tokens"))?;
    let completion_tokens: u32 = column(row, 12, || what("completion_tokens"))?;
    let duration: Option<f64> = column(row, 13, || what("duration"))?;
    let started_text: String = column(row, 14, || what("started_at"))?;
    let started_at = decode_time(&started_text, || what("started_at"))?;
    let finished_text: Option<String> = column(row, 15, || what("finished_at"))?;
    let finished_at = finished_text
        .map(|t| decode_time(&t, || what("finished_at")))
        .transpose()?;
    Ok(Step {
        task_id,
        key,
        seq,
        kind,
        agent_id,
        status,
        input,
        output,
        error,
        attempts,
        model,
        prompt_tokens,
        completion_tokens,
        duration,
        started_at,
        finished_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde_name<T: serde::Serialize>(value: T) -> String {
        match serde_json::to_value(value) {
            Ok(serde_json::Value::String(s)) => s,
            other => panic!("enum did not serialise to a string: {other:?}"),
        }
    }

    #[test]
    fn step_kind_names_match_serde_and_parse_back() {
        for kind in [
            StepKind::Plan,
            StepKind::Work,
            StepKind::Stage,
            StepKind::Round,
            StepKind::Vote,
            StepKind::Synthesize,
        ] {
            assert_eq!(step_kind_str(kind), serde_name(kind));
            assert_eq!(parse_step_kind(step_kind_str(kind)), Some(kind));
        }
        assert_eq!(parse_step_kind("Plan"), None);
    }

    #[test]
    fn step_status_names_match_serde_and_parse_back() {
        for status in [
            StepStatus::Running,
            StepStatus::Completed,
            StepStatus::Failed,
        ] {
            assert_eq!(step_status_str(status), serde_name(status));
            assert_eq!(parse_step_status(step_status_str(status)), Some(status));
        }
        assert_eq!(parse_step_status(""), None);
    }

    #[test]
    fn time_text_round_trips_and_sorts_like_time() {
        let early = DateTime::from_timestamp(1_700_000_000, 5).expect("valid timestamp");
        let late = DateTime::from_timestamp(1_700_000_000, 123_456_789).expect("valid");
        let later = DateTime::from_timestamp(1_700_000_001, 0).expect("valid timestamp");
        for t in [early, late, later] {
            let text = encode_time(&t);
            assert_eq!(text.len(), "2023-11-14T22:13:20.000000005Z".len());
            assert_eq!(decode_time(&text, String::new).expect("decodes"), t);
        }
        assert!(encode_time(&early) < encode_time(&late));
        assert!(encode_time(&late) < encode_time(&later));
    }

    #[test]
    fn bad_time_is_corrupt() {
        let err = decode_time("yesterday", || "x".to_owned()).expect_err("must fail");
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    }
}
