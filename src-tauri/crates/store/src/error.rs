//! The one error type of the journal, [`StoreError`].
//!
//! Callers match on variants, never on messages: `Closed` means "the journal is shut down,
//! stop writing", `UnknownTask` means the caller updated a task it never inserted, and
//! `Corrupt` means a row on disk no longer decodes into the domain types (the journal
//! reports it instead of panicking so that one bad row cannot take the process down).

use std::path::PathBuf;
use std::sync::Arc;

/// Everything that can go wrong opening, writing or reading the journal.
#[non_exhaustive]
#[derive(thiserror::Error, Debug)]
pub enum StoreError {
    /// The directory that should hold the database file could not be created.
    #[error("cannot create the journal directory {path}")]
    CreateDir {
        /// The directory that could not be created.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The database file could not be opened or configured (not a SQLite file, no
    /// permission, WAL mode refused, ...).
    #[error("cannot open the journal at {path}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// The file was written by a newer build whose schema this build does not know;
    /// opening it anyway could corrupt it, so it is refused.
    #[error("the journal has schema version {found}, newer than the {supported} this build knows")]
    SchemaTooNew {
        /// The version found in the file (`PRAGMA user_version`).
        found: usize,
        /// The newest version this build can migrate to.
        supported: usize,
    },
    /// Bringing the schema up to date failed; nothing was changed (migrations are atomic).
    #[error("cannot migrate the journal schema")]
    Migration(#[from] rusqlite_migration::Error),
    /// The dedicated writer thread could not be started.
    #[error("cannot start the journal writer thread")]
    Spawn(#[source] std::io::Error),
    /// SQLite refused a statement (a duplicate task id, a step of a task that does not
    /// exist, a full disk, ...).
    #[error("journal database error")]
    Sqlite(#[from] rusqlite::Error),
    /// The transaction that carried this write could not begin or commit, so this write
    /// was rolled back together with the rest of its group-commit batch. The source is
    /// shared by every write of the batch.
    #[error("the journal batch holding this write was rolled back")]
    Batch(#[source] Arc<StoreError>),
    /// `update_task` named a task that was never inserted: a caller bug, reported rather
    /// than silently ignored so that a lost `insert_task` cannot go unnoticed.
    #[error("no task `{id}` in the journal")]
    UnknownTask {
        /// The id that was updated.
        id: String,
    },
    /// A JSON column could not be encoded.
    #[error("cannot encode {what} as JSON")]
    Encode {
        /// Which value.
        what: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A stored row does not decode into the domain types (edited by hand, written by a
    /// buggy build, damaged on disk).
    #[error("corrupt journal row: {what}")]
    Corrupt {
        /// Which row and column, and what was wrong with it.
        what: String,
    },
    /// The journal was closed (or its writer thread is gone): no more reads or writes.
    #[error("the journal is closed")]
    Closed,
    /// A blocking read task panicked or was cancelled by a runtime shutdown.
    #[error("journal read task failed")]
    Join(#[from] tokio::task::JoinError),
}
