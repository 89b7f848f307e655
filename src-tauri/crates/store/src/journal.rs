//! [`Journal`], the handle the rest of the process holds, and [`Commit`], the future a
//! write returns.
//!
//! Writes are *enqueued when the method is called*, not when the returned [`Commit`] is
//! first polled. That gives the orchestrator two ways to write with one FIFO order:
//! fire a write and move on (e.g. "step started"), or await it where durability matters
//! before acting (e.g. before telling a client a task is accepted). Either way a later
//! write never overtakes an earlier one.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use sutazai_core::{Step, Task, TaskStatus};
use tokio::sync::oneshot;

use crate::codec::{StepRow, TaskRow, TaskUpdateRow};
use crate::performance::{self, PerformanceStats};
use crate::queries::{self, AgentStats};
use crate::writer::{self, Counters, Msg, Op, Write};
use crate::{StoreError, checkpoint, schema};

/// Idle read connections kept for reuse. Reads beyond this many at once open extra
/// connections that are closed after use, so a burst never blocks on the pool.
const MAX_IDLE_READERS: usize = 4;

/// The name of the writer thread, as it shows in `top -H`, debuggers and panics.
const WRITER_THREAD: &str = "sutazai-journal-writer";
/// The name of the checkpoint thread ([`checkpoint`]).
const CHECKPOINT_THREAD: &str = "sutazai-journal-checkpoint";

/// The durable record of every task and step: what lets a killed process resume
/// unfinished tasks without re-running (and re-paying for) finished steps.
///
/// Cheap to clone (one `Arc`); all clones share one writer thread and one reader pool.
/// Writes go through the group-commit writer (see the `writer` module); reads run on
/// tokio's blocking threads over read-only connections and see every write whose
/// [`Commit`] has resolved.
///
/// Shut down with [`Journal::close`]. Dropping the last clone also stops the writer after
/// it committed everything queued, but without waiting for it.
#[derive(Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

struct Inner {
    /// The database file, for error messages and for opening read connections.
    path: PathBuf,
    /// The writer thread's queue. When the last `Inner` drops, so does this sender, and
    /// the writer drains the queue and exits.
    writes: Sender<Msg>,
    /// Set by `close`: later writes and reads fail fast with `Closed` instead of racing
    /// the writer's shutdown.
    closed: AtomicBool,
    /// Idle read-only connections. Held only to pop or push one, never across `.await`.
    readers: Mutex<Vec<Connection>>,
    /// Published by the writer thread.
    counters: Arc<Counters>,
}

/// Group-commit counters, for benchmark reports and diagnostics: `ops / batches` is how
/// many writes one transaction carried on average.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JournalStats {
    /// Transactions committed by the writer thread.
    pub batches: u64,
    /// Writes carried by those transactions (a write whose own statement failed still
    /// counts: it rode in a committed batch).
    pub ops: u64,
    /// Most writes a single transaction carried.
    pub max_batch: u64,
}

impl Journal {
    /// Opens (creating it and its parent directories if needed) the journal at `path`,
    /// migrates its schema, and starts the writer thread.
    ///
    /// Blocking (file I/O, migrations): call it at startup or inside `spawn_blocking`.
    /// Needs no tokio runtime itself; the read methods do.
    pub fn open(path: &Path) -> Result<Journal, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let conn = schema::open_writer(path)?;
        // Open one reader now so that a file readers cannot open fails here, not on the
        // first API request.
        let reader = schema::open_reader(path)?;
        let checkpointer = checkpoint::open(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        // Never sent on: dropped with the writer thread's closure, it ends the checkpointer.
        let (writer_alive, alive) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name(CHECKPOINT_THREAD.to_owned())
            .spawn(move || checkpoint::run(checkpointer, alive))
            .map_err(StoreError::Spawn)?;
        let counters = Arc::new(Counters::default());
        let (tx, rx) = mpsc::channel();
        let thread_counters = Arc::clone(&counters);
        std::thread::Builder::new()
            .name(WRITER_THREAD.to_owned())
            .spawn(move || {
                let _alive = writer_alive;
                writer::run(conn, rx, thread_counters);
            })
            .map_err(StoreError::Spawn)?;
        Ok(Journal {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                writes: tx,
                closed: AtomicBool::new(false),
                readers: Mutex::new(vec![reader]),
                counters,
            }),
        })
    }

    /// The database file this journal writes.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Journals a new task: the full row, including the request as submitted.
    ///
    /// Enqueued before this returns; await the [`Commit`] for durability. Fails (through
    /// the `Commit`) with [`StoreError::Sqlite`] if a task with this id exists.
    pub fn insert_task(&self, task: &Task) -> Commit {
        match TaskRow::encode(task) {
            Ok(row) => self.enqueue(Op::InsertTask(Box::new(row))),
            Err(e) => Commit::failed(e),
        }
    }

    /// Rewrites the mutable columns of a journaled task: status, assigned agents,
    /// approvals, result, error, started and completed times. The request, name,
    /// session and creation time are fixed at insert and ignored here.
    ///
    /// Fails (through the `Commit`) with [`StoreError::UnknownTask`] if the task was never
    /// inserted.
    pub fn update_task(&self, task: &Task) -> Commit {
        match TaskUpdateRow::encode(task) {
            Ok(row) => self.enqueue(Op::UpdateTask(Box::new(row))),
            Err(e) => Commit::failed(e),
        }
    }

    /// Journals a step, replacing every column of an existing step with the same
    /// `(task_id, key)`: "started" and "finished" are two puts of the same step.
    ///
    /// Fails (through the `Commit`) with [`StoreError::Sqlite`] if the task does not exist.
    pub fn put_step(&self, step: &Step) -> Commit {
        self.enqueue(Op::PutStep(Box::new(StepRow::encode(step))))
    }

    fn enqueue(&self, op: Op) -> Commit {
        if self.inner.closed.load(Ordering::Acquire) {
            return Commit::failed(StoreError::Closed);
        }
        let (done, outcome) = oneshot::channel();
        match self.inner.writes.send(Msg::Write(Write { op, done })) {
            Ok(()) => Commit {
                state: CommitState::Pending(outcome),
            },
            // The writer thread is gone; the op came back in the error and is dropped.
            Err(_) => Commit::failed(StoreError::Closed),
        }
    }

    /// The task with this id, if journaled.
    pub async fn get_task(&self, id: &str) -> Result<Option<Task>, StoreError> {
        let id = id.to_owned();
        self.read(move |conn| queries::get_task(conn, &id)).await
    }

    /// The task with this id and its steps (in start order), if journaled: one read
    /// transaction, so both describe the same moment.
    pub async fn task_with_steps(&self, id: &str) -> Result<Option<(Task, Vec<Step>)>, StoreError> {
        let id = id.to_owned();
        self.read(move |conn| {
            let tx = conn.unchecked_transaction()?;
            let Some(task) = queries::get_task(&tx, &id)? else {
                return Ok(None);
            };
            let steps = queries::steps(&tx, &id)?;
            Ok(Some((task, steps)))
        })
        .await
    }

    /// Up to `limit` tasks, newest first (`created_at`, then insertion order), optionally
    /// only those with `status`.
    pub async fn list_tasks(
        &self,
        status: Option<TaskStatus>,
        limit: usize,
    ) -> Result<Vec<Task>, StoreError> {
        self.read(move |conn| queries::list_tasks(conn, status, limit))
            .await
    }

    /// The steps of a task in the order they were first started (`seq`, then key).
    pub async fn steps(&self, task_id: &str) -> Result<Vec<Step>, StoreError> {
        let task_id = task_id.to_owned();
        self.read(move |conn| queries::steps(conn, &task_id)).await
    }

    /// Tasks a restarted process must pick up again (queued, awaiting approval or
    /// running), oldest first (`created_at`, then insertion order) so they resume in
    /// submission order.
    pub async fn unfinished_tasks(&self) -> Result<Vec<Task>, StoreError> {
        self.read(queries::unfinished_tasks).await
    }

    /// How many tasks are in each status. Every status is present, with 0 where none.
    ///
    /// A `HashMap` because `TaskStatus` (in `sutazai-core`) is `Hash` but not `Ord`.
    pub async fn task_counts(&self) -> Result<HashMap<TaskStatus, u64>, StoreError> {
        self.read(queries::task_counts).await
    }

    /// Per-agent totals over the steps that finished (completed or failed) with
    /// `since <= finished_at < until`; a `None` bound is open. Sorted by agent id; agents
    /// with no finished step in the window are absent.
    pub async fn agent_stats(
        &self,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Vec<AgentStats>, StoreError> {
        self.read(move |conn| queries::agent_stats(conn, since, until))
            .await
    }

    /// Windowed performance figures: per agent (the [`AgentStats`] of
    /// [`Journal::agent_stats`] plus percentiles of the completed steps' durations) and
    /// overall over the steps that finished with `since <= finished_at < until`, and per
    /// coordination pattern over the tasks that ended (completed, failed or cancelled) with
    /// `since <= completed_at < until`. A `None` bound is open. One read transaction, so
    /// every figure describes the same snapshot.
    pub async fn performance(
        &self,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<PerformanceStats, StoreError> {
        self.read(move |conn| performance::performance(conn, since, until))
            .await
    }

    /// The writer's group-commit counters so far.
    pub fn stats(&self) -> JournalStats {
        let c = &self.inner.counters;
        JournalStats {
            batches: c.batches.load(Ordering::Relaxed),
            ops: c.ops.load(Ordering::Relaxed),
            max_batch: c.max_batch.load(Ordering::Relaxed),
        }
    }

    /// Stops the journal for every clone: writes already enqueued are committed, then the
    /// writer thread closes its connection and exits; the returned future resolves after
    /// that. Writes and reads started after this call fail with [`StoreError::Closed`].
    ///
    /// The stop is requested when this is called; awaiting only waits for it. Calling it
    /// again, from any clone, is harmless.
    pub fn close(&self) -> impl Future<Output = ()> + Send + 'static {
        self.inner.closed.store(true, Ordering::Release);
        self.inner
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        let (ack, stopped) = oneshot::channel();
        let sent = self.inner.writes.send(Msg::Close(ack)).is_ok();
        async move {
            if sent {
                // An error means the writer already exited: stopped either way.
                let _ = stopped.await;
            }
        }
    }

    /// Runs `query` on a pooled read-only connection on a blocking thread.
    async fn read<T, F>(&self, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let conn = inner.take_reader()?;
            let result = query(&conn);
            inner.return_reader(conn);
            result
        })
        .await?
    }
}

impl Inner {
    fn take_reader(&self) -> Result<Connection, StoreError> {
        let pooled = self
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match pooled {
            Some(conn) => Ok(conn),
            None => schema::open_reader(&self.path),
        }
    }

    fn return_reader(&self, conn: Connection) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let mut idle = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
    }
}

impl fmt::Debug for Journal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.inner.path)
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .field("stats", &self.stats())
            .finish()
    }
}

/// The outcome of one journal write: resolves once the transaction carrying the write
/// committed (`Ok`: the write is durable and visible to reads) or failed.
///
/// The write was already enqueued when the method returned this, so dropping it without
/// awaiting does not cancel the write; it only gives up hearing how it went (a failure is
/// then logged by the writer).
pub struct Commit {
    state: CommitState,
}

enum CommitState {
    /// Waiting for the writer thread.
    Pending(oneshot::Receiver<Result<(), StoreError>>),
    /// Failed before reaching the writer; `None` once reported.
    Failed(Option<StoreError>),
}

impl Commit {
    fn failed(error: StoreError) -> Commit {
        Commit {
            state: CommitState::Failed(Some(error)),
        }
    }
}

impl Future for Commit {
    type Output = Result<(), StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().state {
            CommitState::Pending(outcome) => match Pin::new(outcome).poll(cx) {
                Poll::Ready(Ok(result)) => Poll::Ready(result),
                // The writer dropped the write unprocessed: it stopped first.
                Poll::Ready(Err(_)) => Poll::Ready(Err(StoreError::Closed)),
                Poll::Pending => Poll::Pending,
            },
            // Polling again after completion is a caller bug; answer `Closed` rather
            // than panic.
            CommitState::Failed(error) => {
                Poll::Ready(Err(error.take().unwrap_or(StoreError::Closed)))
            }
        }
    }
}

impl fmt::Debug for Commit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            CommitState::Pending(_) => "pending",
            CommitState::Failed(_) => "failed",
        };
        f.debug_struct("Commit").field("state", &state).finish()
    }
}
