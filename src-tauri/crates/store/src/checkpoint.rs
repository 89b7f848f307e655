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
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use rusqlite::Connection;

/// Between checkpoints.
pub(crate) const EVERY: Duration = Duration::from_millis(200);
/// WAL pages (4 KiB) past which a commit checkpoints itself anyway.
pub(crate) const BACKSTOP_PAGES: u32 = 16_384;

/// Opens the checkpointer's connection (read-write, so it may checkpoint).
pub(crate) fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

/// The thread's body: checkpoints every [`EVERY`] until the sender of `writer_alive` is
/// dropped (the writer thread holds it, so its end — close, drop or panic — is seen at
/// once), then once more with `TRUNCATE`.
pub(crate) fn run(conn: Connection, writer_alive: Receiver<()>) {
    while let Err(RecvTimeoutError::Timeout) = writer_alive.recv_timeout(EVERY) {
        if let Err(e) = checkpoint(&conn, "PASSIVE") {
            tracing::debug!(error = %e, "journal checkpoint failed; trying again");
        }
    }
    if let Err(e) = checkpoint(&conn, "TRUNCATE") {
        tracing::debug!(error = %e, "final journal checkpoint failed");
    }
}

/// `PRAGMA wal_checkpoint(mode)` (it answers with a row of counts, not needed here).
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<()> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(()))
}
