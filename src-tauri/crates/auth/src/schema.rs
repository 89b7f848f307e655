//! `auth.sqlite3`: opening it (0600, WAL) and its migrations.

use std::path::Path;

use rusqlite::Connection;
use rusqlite_migration::{M, Migrations};

use crate::AuthError;

const MIGRATIONS: &[M<'static>] = &[M::up(
    "CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        hash BLOB NOT NULL UNIQUE,
        prefix TEXT NOT NULL,
        created_at TEXT NOT NULL,
        last_used_at TEXT,
        revoked_at TEXT
    );
    CREATE TABLE revoked_tokens (
        jti TEXT PRIMARY KEY,
        expires_at INTEGER NOT NULL,
        revoked_at TEXT NOT NULL
    );
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        role TEXT,
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        status INTEGER NOT NULL,
        peer TEXT,
        outcome TEXT NOT NULL,
        detail TEXT,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );",
)];

/// Opens (creating it 0600 when missing) and migrates the store at `path`.
pub(crate) fn open(path: &Path) -> Result<Connection, AuthError> {
    create_private(path)?;
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Migrations::from_slice(MIGRATIONS).to_latest(&mut conn)?;
    Ok(conn)
}

/// Creates the file owner-only before SQLite opens it (SQLite gives its `-wal` and `-shm`
/// files the same mode), and tightens an existing one that others could read.
///
/// An existing file is never opened here: closing any descriptor of a database file drops
/// every POSIX lock this process holds on it, including those of open SQLite connections
/// (the server keeps two), which would let another process write under them.
fn create_private(path: &Path) -> Result<(), AuthError> {
    let io = |source| AuthError::Io {
        path: path.display().to_string(),
        source,
    };
    match std::fs::metadata(path) {
        Ok(meta) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                if meta.permissions().mode() & 0o077 != 0 {
                    tracing::warn!(path = %path.display(), "auth store was readable by others: made it 0600");
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                        .map_err(io)?;
                }
            }
            #[cfg(not(unix))]
            let _ = meta;
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(false);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            options.open(path).map(drop).map_err(io)
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn migrations_are_valid() {
        rusqlite_migration::Migrations::from_slice(super::MIGRATIONS)
            .validate()
            .unwrap();
    }
}
