//! The checkpointer: one OS thread with its own connection that copies the WAL back into
//! the database file, so the writer thread never does.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses the WAL's size
//! threshold: that commit then copies pages and, with `synchronous=NORMAL`, waits for
//! the database file's `fsync` — on a slow disk, hundreds of milliseconds during which
//! every write queued behind it waits (the `POST /tasks` tail of BENCHMARKS.md). This
//! thread runs a `PASSIVE` checkpoint every [`EVERY`]: it works beside the writer (never
//! taking the write lock, never waiting on readers) and the writer restarts the WAL from
//! the top once a checkpoint finished. The writer's own automatic checkpoint is kept only
//! as a backstop, at [`BACKSTOP_PAGES`] instead of SQLite's 1,000, should this thread fall
//! behind. When the writer thread ends (the journal closed or dropped, or a panic) this
//! thread makes a last `TRUNCATE` checkpoint and ends too; `close()` does not wait for it.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rusqlite::Connection;

/// Between checkpoints.
pub(crate) const EVERY: Duration = Duration::from_millis(200);
/// WAL pages (4 KiB) past which a commit checkpoints itself anyway.
pub(crate) const BACKSTOP_PAGES: u32 = 16_384;

/// Set to stop the checkpointer, which then checkpoints a last time and ends.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stop(Arc<AtomicBool>);

impl Stop {
    pub(crate) fn stop(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// A guard that stops the checkpointer when dropped, however its holder ends.
    pub(crate) fn on_drop(self) -> StopOnDrop {
        StopOnDrop(self)
    }

    fn stopped(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Stops the checkpointer when dropped (held by the writer thread, panics included).
pub(crate) struct StopOnDrop(Stop);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// Opens the checkpointer's connection (read-write, so it may checkpoint).
pub(crate) fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

/// The thread's body: checkpoints until `stop`, then once more with `TRUNCATE`.
pub(crate) fn run(conn: Connection, stop: Stop) {
    while !stop.stopped() {
        std::thread::sleep(EVERY);
        if let Err(e) = checkpoint(&conn, "PASSIVE") {
            tracing::debug!(error = %e, "journal checkpoint failed; trying again");
        }
    }
    if let Err(e) = checkpoint(&conn, "TRUNCATE") {
        tracing::debug!(error = %e, "final journal checkpoint failed");
    }
}

/// `PRAGMA wal_checkpoint(mode)`; returns the WAL's frames and how many were copied.
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<(i64, i64)> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        Ok((row.get(1)?, row.get(2)?))
    })
}
