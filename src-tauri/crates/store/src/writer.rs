//! The group-commit writer: one OS thread that owns the read-write connection.
//!
//! Every write of the process arrives here over one FIFO channel. The thread blocks for
//! the first message, drains whatever else is already queued (at most [`MAX_BATCH`]
//! writes), applies the whole batch inside ONE transaction with cached prepared
//! statements, commits, and only then completes each write's oneshot. One commit thus pays
//! for thousands of writes when the orchestrator is busy, and costs a single write's
//! latency when it is idle: nothing ever waits for a batch to fill.
//!
//! Each write is exactly one SQL statement, so SQLite's statement-level atomicity is what
//! isolates writes from one another inside a batch: a write that fails (a duplicate task
//! id, a step of an unknown task) is undone on its own, reported to its own caller, and the
//! rest of the batch still commits. Only a failure of the transaction itself (it cannot
//! begin, commit, or SQLite rolled it back) fails every write of the batch, each with
//! [`StoreError::Batch`] sharing the cause.
//!
//! Architecture invariant: a write's `Commit` resolves `Ok` only after the transaction
//! holding it committed, so a resolved write is visible to every reader and survives a
//! process crash.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};

use rusqlite::{Connection, params};
use tokio::sync::oneshot;

use crate::StoreError;
use crate::codec::{StepRow, TaskRow, TaskUpdateRow};

/// Most writes one transaction carries. Bounds the time a batch holds the write lock (and
/// so the latency of the writes queued behind it) and the memory of the outcome list.
pub(crate) const MAX_BATCH: usize = 4096;

/// What the writer thread receives.
#[derive(Debug)]
pub(crate) enum Msg {
    /// A write and where to report its outcome.
    Write(Write),
    /// Stop once everything queued so far is committed, then signal the sender.
    Close(oneshot::Sender<()>),
}

/// One write waiting for the writer thread.
#[derive(Debug)]
pub(crate) struct Write {
    /// The statement to run.
    pub op: Op,
    /// Completed after the batch commits (or fails). Its receiver may already be gone:
    /// a dropped `Commit` never cancels the write.
    pub done: oneshot::Sender<Result<(), StoreError>>,
}

/// The three statements the journal writes.
#[derive(Debug)]
pub(crate) enum Op {
    /// `INSERT` a full task row.
    InsertTask(Box<TaskRow>),
    /// `UPDATE` the mutable columns of a task row.
    UpdateTask(Box<TaskUpdateRow>),
    /// Upsert a step row by `(task_id, key)`.
    PutStep(Box<StepRow>),
}

/// Counters the writer publishes for benchmarks and diagnostics.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Transactions committed.
    pub batches: AtomicU64,
    /// Writes carried by committed transactions (including writes whose own statement
    /// failed and was undone).
    pub ops: AtomicU64,
    /// Most writes one committed transaction carried.
    pub max_batch: AtomicU64,
}

const INSERT_TASK: &str = "INSERT INTO tasks (id, session_id, name, status, priority, \
     request_json, assigned_agents_json, approvals_json, result_json, error, created_at, \
     started_at, completed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";

const UPDATE_TASK: &str = "UPDATE tasks SET status = ?2, assigned_agents_json = ?3, \
     approvals_json = ?4, result_json = ?5, error = ?6, started_at = ?7, completed_at = ?8 \
     WHERE id = ?1";

const PUT_STEP: &str = "INSERT INTO steps (task_id, key, seq, kind, agent_id, status, input, \
     output, error, attempts, model, prompt_tokens, completion_tokens, duration, started_at, \
     finished_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) \
     ON CONFLICT (task_id, key) DO UPDATE SET seq = excluded.seq, kind = excluded.kind, \
     agent_id = excluded.agent_id, status = excluded.status, input = excluded.input, \
     output = excluded.output, error = excluded.error, attempts = excluded.attempts, \
     model = excluded.model, prompt_tokens = excluded.prompt_tokens, \
     completion_tokens = excluded.completion_tokens, duration = excluded.duration, \
     started_at = excluded.started_at, finished_at = excluded.finished_at";

/// The writer thread's body. Returns when every `Journal` clone is gone (the channel
/// disconnects) or after a `Close` once the queue is empty; either way everything that was
/// queued before is committed first.
pub(crate) fn run(mut conn: Connection, rx: Receiver<Msg>, counters: Arc<Counters>) {
    let mut batch: Vec<Write> = Vec::with_capacity(MAX_BATCH);
    let mut closers: Vec<oneshot::Sender<()>> = Vec::new();
    loop {
        // While closing, only drain what is already queued; otherwise sleep until work.
        let first = if closers.is_empty() {
            rx.recv().ok()
        } else {
            rx.try_recv().ok()
        };
        let Some(first) = first else { break };
        accept(first, &mut batch, &mut closers);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(msg) => accept(msg, &mut batch, &mut closers),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        if !batch.is_empty() {
            commit_batch(&mut conn, &mut batch, &counters);
        }
    }
    // Writes racing with close() that are still queued resolve as `Closed` when their
    // senders drop with the receiver.
    drop(rx);
    if let Err((_, e)) = conn.close() {
        tracing::warn!(error = %e, "closing the journal write connection failed");
    }
    for ack in closers {
        // A closer that stopped waiting does not care.
        let _ = ack.send(());
    }
}

fn accept(msg: Msg, batch: &mut Vec<Write>, closers: &mut Vec<oneshot::Sender<()>>) {
    match msg {
        Msg::Write(write) => batch.push(write),
        Msg::Close(ack) => closers.push(ack),
    }
}

/// Applies `batch` in one transaction, commits, and completes every write's oneshot.
/// Leaves `batch` empty (its allocation is reused).
fn commit_batch(conn: &mut Connection, batch: &mut Vec<Write>, counters: &Counters) {
    let size = batch.len();
    // One entry per write that was attempted: `None` = its statement succeeded.
    let mut own_errors: Vec<Option<StoreError>> = Vec::with_capacity(size);
    let mut fatal: Option<Arc<StoreError>> = None;

    match conn.execute_batch("BEGIN IMMEDIATE") {
        Err(e) => fatal = Some(Arc::new(StoreError::Sqlite(e))),
        Ok(()) => {
            for write in batch.iter() {
                match apply(conn, &write.op) {
                    Ok(()) => own_errors.push(None),
                    Err(e) if conn.is_autocommit() => {
                        // SQLite rolled the whole transaction back (disk full, I/O
                        // error): every write of the batch is lost, this one included.
                        fatal = Some(Arc::new(e));
                        break;
                    }
                    Err(e) => own_errors.push(Some(e)),
                }
            }
            if fatal.is_none()
                && let Err(e) = conn.execute_batch("COMMIT")
            {
                fatal = Some(Arc::new(StoreError::Sqlite(e)));
            }
            if fatal.is_some()
                && !conn.is_autocommit()
                && let Err(e) = conn.execute_batch("ROLLBACK")
            {
                tracing::error!(error = %e, "rolling back a failed journal batch failed");
            }
        }
    }

    if fatal.is_none() {
        counters.batches.fetch_add(1, Ordering::Relaxed);
        counters.ops.fetch_add(size as u64, Ordering::Relaxed);
        counters.max_batch.fetch_max(size as u64, Ordering::Relaxed);
    }

    let mut own_errors = own_errors.into_iter();
    for write in batch.drain(..) {
        let own = own_errors.next().flatten();
        let outcome = match (own, &fatal) {
            (Some(e), _) => Err(e),
            (None, Some(cause)) => Err(StoreError::Batch(Arc::clone(cause))),
            (None, None) => Ok(()),
        };
        if let Err(Err(e)) = write.done.send(outcome) {
            // Fire-and-forget writes have nobody to tell; do not let the failure vanish.
            tracing::error!(
                error = %e,
                op = %write.op.describe(),
                "journal write failed and was not awaited"
            );
        }
    }
}

fn apply(conn: &Connection, op: &Op) -> Result<(), StoreError> {
    match op {
        Op::InsertTask(row) => {
            let m = &row.mutable;
            conn.prepare_cached(INSERT_TASK)?.execute(params![
                row.id,
                row.session_id,
                row.name,
                m.status,
                row.priority,
                row.request_json,
                m.assigned_agents_json,
                m.approvals_json,
                m.result_json,
                m.error,
                row.created_at,
                m.started_at,
                m.completed_at,
            ])?;
        }
        Op::UpdateTask(m) => {
            let changed = conn.prepare_cached(UPDATE_TASK)?.execute(params![
                m.id,
                m.status,
                m.assigned_agents_json,
                m.approvals_json,
                m.result_json,
                m.error,
                m.started_at,
                m.completed_at,
            ])?;
            if changed == 0 {
                return Err(StoreError::UnknownTask { id: m.id.clone() });
            }
        }
        Op::PutStep(s) => {
            conn.prepare_cached(PUT_STEP)?.execute(params![
                s.task_id,
                s.key,
                s.seq,
                s.kind,
                s.agent_id,
                s.status,
                s.input,
                s.output,
                s.error,
                s.attempts,
                s.model,
                s.prompt_tokens,
                s.completion_tokens,
                s.duration,
                s.started_at,
                s.finished_at,
            ])?;
        }
    }
    Ok(())
}

impl Op {
    /// A short description for logs: which statement, on which row.
    fn describe(&self) -> String {
        match self {
            Op::InsertTask(row) => format!("insert task `{}`", row.id),
            Op::UpdateTask(row) => format!("update task `{}`", row.id),
            Op::PutStep(row) => format!("put step `{}` of task `{}`", row.key, row.task_id),
        }
    }
}
