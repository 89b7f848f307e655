//! The database schema, its migrations, and how connections are opened and configured.
//!
//! Migrations are append-only: a released migration is never edited, a change is a new
//! `M::up` at the end of [`MIGRATIONS`]. `PRAGMA user_version` records how many have run,
//! which is what lets an older build refuse a file written by a newer one
//! ([`StoreError::SchemaTooNew`]) instead of writing rows it does not understand.
//!
//! Durability: the journal runs in WAL mode with `synchronous = NORMAL`. A committed
//! transaction survives the *process* dying at any point (`kill -9`, a panic, an OOM kill),
//! which is the promise the orchestrator's resume logic relies on. A power cut or OS crash
//! may lose the last few transactions (never corrupt the file); paying an `fsync` per
//! commit to close that window would cap the group-commit rate for no benefit to a desktop
//! control plane.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use rusqlite_migration::{M, Migrations};

use crate::StoreError;

/// How long a connection waits for a lock held by another connection before giving up
/// with `SQLITE_BUSY`. Only checkpoints and a second process opening the same file
/// contend, so this is generous rather than tight.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements kept per connection. The writer uses three, the readers fewer than
/// ten; the margin keeps every statement cached.
const STATEMENT_CACHE: usize = 32;

/// The migrations, oldest first. Version N is "the first N have run".
///
/// Timestamps are RFC 3339 text in UTC with exactly nine fractional digits (see
/// `codec::encode_time`), so text order is time order and nanoseconds round-trip.
/// `steps` is `WITHOUT ROWID`: it is only ever reached by its primary key (or the agent
/// index), so one b-tree instead of a rowid table plus a key index halves its writes.
/// `tasks.seq` aliases the rowid: it grows with every insert, giving the insertion order
/// that breaks ties between equal `created_at` values.
const MIGRATIONS: &[M<'static>] = &[
    // 1: tasks and steps.
    M::up(
        "CREATE TABLE tasks (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        session_id TEXT NOT NULL,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        priority TEXT NOT NULL,
        request_json TEXT NOT NULL,
        assigned_agents_json TEXT NOT NULL,
        approvals_json TEXT NOT NULL,
        result_json TEXT,
        error TEXT,
        created_at TEXT NOT NULL,
        started_at TEXT,
        completed_at TEXT
    ) STRICT;
    CREATE INDEX tasks_by_status ON tasks (status, created_at);
    CREATE INDEX tasks_by_created ON tasks (created_at);
    CREATE TABLE steps (
        task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        agent_id TEXT NOT NULL,
        status TEXT NOT NULL,
        input TEXT NOT NULL,
        output TEXT,
        error TEXT,
        attempts INTEGER NOT NULL,
        model TEXT,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        duration REAL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        PRIMARY KEY (task_id, key)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX steps_by_agent ON steps (agent_id, finished_at);",
    ),
    // 2: range queries on when tasks ended (`Journal::performance`'s per-pattern figures).
    // A task row is updated a handful of times in its life, so the index costs little.
    M::up("CREATE INDEX tasks_by_completed ON tasks (completed_at);"),
];

/// The schema version this build migrates to: the number of migrations.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// Opens the read-write connection the writer thread will own, configures it (WAL,
/// `synchronous = NORMAL`, foreign keys, busy timeout) and brings the schema up to date.
///
/// Runs on the caller's thread, before the writer thread exists, so that a file that cannot
/// be opened or migrated fails [`Journal::open`](crate::Journal::open) itself.
pub(crate) fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let open_err = |source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    };
    let mut conn = Connection::open(path).map_err(open_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "wal", |row| row.get(0))
        .map_err(open_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        // An in-memory or otherwise special file silently stays in another mode; the
        // reader pool and the durability promise both depend on WAL.
        return Err(open_err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(format!("journal_mode is `{mode}`, WAL is required")),
        )));
    }
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(open_err)?;
    // Checkpoints run on their own thread (`checkpoint.rs`), not inside a commit; this
    // much larger threshold is only the backstop should that thread fall behind.
    conn.pragma_update(
        None,
        "wal_autocheckpoint",
        crate::checkpoint::BACKSTOP_PAGES,
    )
    .map_err(open_err)?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(open_err)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);

    let found: usize = conn
        .pragma_query_value(None, "user_version", |row| row.get::<_, i64>(0))
        .map_err(open_err)?
        .try_into()
        .unwrap_or(usize::MAX);
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    Migrations::from_slice(MIGRATIONS).to_latest(&mut conn)?;
    Ok(conn)
}

/// Opens one read-only connection for the reader pool.
///
/// Read-only at the SQLite level, so a bug in a query can never write behind the writer
/// thread's back; `query_only` is belt and braces for the same guarantee.
pub(crate) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let open_err = |source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    };
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(open_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
    conn.pragma_update(None, "query_only", true)
        .map_err(open_err)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        Migrations::from_slice(MIGRATIONS)
            .validate()
            .expect("the migration list must apply to an empty database");
    }
}
