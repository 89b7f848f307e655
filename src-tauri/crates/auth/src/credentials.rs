//! API keys and revoked token ids in `auth.sqlite3`, with an in-memory view that answers
//! every request (no SQLite on the request path). Management calls are blocking: the API
//! runs them on the blocking pool, the CLI directly.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{AuthError, Role};

/// Every API key starts so; it tells a key from a JWT at a glance.
pub const KEY_PREFIX: &str = "szk_";
/// Characters of a key kept in clear (to tell keys apart in lists): `szk_` + 8.
const SHOWN_PREFIX_CHARS: usize = 12;
const MAX_NAME_CHARS: usize = 64;

/// An API key as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// The key's first characters, e.g. `szk_Ab12Cd34`.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key just created: the only time its secret is known.
#[derive(Clone, Serialize, Deserialize)]
pub struct NewApiKey {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    /// The key itself. Shown once; only its SHA-256 is stored.
    pub key: String,
}

impl std::fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret stays out of logs.
        f.debug_struct("NewApiKey")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("role", &self.role)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Whether `s` has the shape of an API key (as opposed to a JWT).
pub(crate) fn looks_like_key(s: &str) -> bool {
    s.starts_with(KEY_PREFIX)
}

/// A key name: 1–64 characters of letters, digits, `-`, `_`, `.` and spaces, trimmed.
pub fn validate_key_name(name: &str) -> Result<String, AuthError> {
    let name = name.trim();
    let invalid = |why: String| AuthError::Invalid { field: "name", why };
    if name.is_empty() {
        return Err(invalid("must not be empty".to_owned()));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(invalid(format!("at most {MAX_NAME_CHARS} characters")));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ' ')))
    {
        return Err(invalid(format!(
            "{c:?} is not allowed (ASCII letters, digits, `-`, `_`, `.` and spaces)"
        )));
    }
    Ok(name.to_owned())
}

fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

#[derive(Debug, Default)]
struct View {
    by_hash: HashMap<[u8; 32], ApiKey>,
    active: HashSet<String>,
    /// Revoked token ids and their expiry (seconds since the epoch).
    revoked: HashMap<String, i64>,
    data_version: i64,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    conn: Mutex<Connection>,
    view: RwLock<View>,
    /// Keys used since the last flush (`last_used_at` is written once a tick, not per call).
    used: Mutex<HashMap<String, DateTime<Utc>>>,
}

/// The credential store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Credentials {
    inner: Arc<Inner>,
}

impl Credentials {
    /// Opens (creating it 0600) the store at `path` and loads the view. Blocking.
    pub fn open(path: &Path) -> Result<Credentials, AuthError> {
        let conn = crate::schema::open(path)?;
        let credentials = Credentials {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                conn: Mutex::new(conn),
                view: RwLock::new(View::default()),
                used: Mutex::default(),
            }),
        };
        credentials.reload()?;
        Ok(credentials)
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.inner
            .conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates a key for `name` with `role`. Blocking.
    pub fn create_key(&self, name: &str, role: Role) -> Result<NewApiKey, AuthError> {
        let name = validate_key_name(name)?;
        let mut secret = [0u8; 32];
        rand::fill(&mut secret);
        let key = format!(
            "{KEY_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
        );
        let prefix: String = key.chars().take(SHOWN_PREFIX_CHARS).collect();
        let id = uuid::Uuid::now_v7().to_string();
        let created_at = Utc::now();
        let hash = hash_key(&key);
        {
            let conn = self.conn();
            let taken: bool = conn.query_row(
                "SELECT EXISTS(SELECT 1 FROM api_keys WHERE name = ?1 AND revoked_at IS NULL)",
                [&name],
                |r| r.get(0),
            )?;
            if taken {
                return Err(AuthError::Invalid {
                    field: "name",
                    why: format!(
                        "an active key is already named `{name}`; revoke it or pick another name"
                    ),
                });
            }
            conn.execute(
                "INSERT INTO api_keys (id, name, role, hash, prefix, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, name, role.as_str(), hash.as_slice(), prefix, created_at.to_rfc3339()],
            )?;
            let record = ApiKey {
                id: id.clone(),
                name: name.clone(),
                role,
                prefix: prefix.clone(),
                created_at,
                last_used_at: None,
                revoked_at: None,
            };
            // Under the connection lock, so a reload in progress cannot put back a view
            // from before this write (see `reload`).
            let mut view = self
                .inner
                .view
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            view.active.insert(id.clone());
            view.by_hash.insert(hash, record);
        }
        Ok(NewApiKey {
            id,
            name,
            role,
            prefix,
            created_at,
            key,
        })
    }

    /// Every key, newest first, revoked ones included. Blocking.
    pub fn list_keys(&self) -> Result<Vec<ApiKey>, AuthError> {
        self.flush_used()?;
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, name, role, prefix, created_at, last_used_at, revoked_at FROM api_keys ORDER BY created_at DESC, id DESC",
        )?;
        let rows = stmt.query_map([], key_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Revokes a key (at once, and every session opened with it). Revoking a revoked key
    /// answers it unchanged. Blocking.
    pub fn revoke_key(&self, id: &str) -> Result<ApiKey, AuthError> {
        let now = Utc::now().to_rfc3339();
        let key = {
            let conn = self.conn();
            conn.execute(
                "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, now],
            )?;
            let key = conn.query_row(
                "SELECT id, name, role, prefix, created_at, last_used_at, revoked_at FROM api_keys WHERE id = ?1",
                [id],
                key_row,
            )
            .optional()?
            .ok_or_else(|| AuthError::KeyNotFound(id.to_owned()))?;
            // Under the connection lock (see `reload`).
            let mut view = self
                .inner
                .view
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            view.active.remove(id);
            view.by_hash.retain(|_, k| k.id != id);
            key
        };
        Ok(key)
    }

    /// Records a token id as revoked until `expires_at`; `Ok(false)` when it already was.
    /// Blocking.
    pub fn revoke_token(&self, jti: &str, expires_at: i64) -> Result<bool, AuthError> {
        let conn = self.conn();
        let inserted = conn.execute(
            "INSERT OR IGNORE INTO revoked_tokens (jti, expires_at, revoked_at) VALUES (?1, ?2, ?3)",
            params![jti, expires_at, Utc::now().to_rfc3339()],
        )?;
        // Under the connection lock (see `reload`).
        self.inner
            .view
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .revoked
            .insert(jti.to_owned(), expires_at);
        drop(conn);
        Ok(inserted == 1)
    }

    /// The active key `key` is, from memory.
    pub(crate) fn lookup(&self, key: &str) -> Result<ApiKey, AuthError> {
        let found = self
            .inner
            .view
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .by_hash
            .get(&hash_key(key))
            .cloned()
            .ok_or(AuthError::BadCredentials)?;
        self.inner
            .used
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(found.id.clone(), Utc::now());
        Ok(found)
    }

    pub(crate) fn is_token_revoked(&self, jti: &str) -> bool {
        self.inner
            .view
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .revoked
            .contains_key(jti)
    }

    pub(crate) fn is_key_active(&self, id: &str) -> bool {
        self.inner
            .view
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .active
            .contains(id)
    }

    /// Reloads the view when another connection (the CLI, another process) committed since
    /// the last load; forgets revocations of tokens that have expired. Blocking.
    pub fn sync(&self) -> Result<bool, AuthError> {
        self.flush_used()?;
        let version: i64 = self
            .conn()
            .query_row("PRAGMA data_version", [], |r| r.get(0))?;
        let stale = self
            .inner
            .view
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .data_version
            != version;
        if stale {
            self.reload()?;
        }
        Ok(stale)
    }

    fn reload(&self) -> Result<(), AuthError> {
        let now = Utc::now().timestamp();
        let mut view = View::default();
        {
            let conn = self.conn();
            conn.execute("DELETE FROM revoked_tokens WHERE expires_at < ?1", [now])?;
            let mut stmt = conn.prepare(
                "SELECT id, name, role, prefix, created_at, last_used_at, revoked_at, hash FROM api_keys WHERE revoked_at IS NULL",
            )?;
            let rows = stmt.query_map([], |r| {
                let hash: Vec<u8> = r.get(7)?;
                Ok((key_row(r)?, hash))
            })?;
            for row in rows {
                let (key, hash) = row?;
                let Ok(hash) = <[u8; 32]>::try_from(hash.as_slice()) else {
                    tracing::warn!(id = %key.id, "API key with a malformed hash ignored");
                    continue;
                };
                view.active.insert(key.id.clone());
                view.by_hash.insert(hash, key);
            }
            let mut stmt = conn.prepare("SELECT jti, expires_at FROM revoked_tokens")?;
            for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
                let (jti, exp) = row?;
                view.revoked.insert(jti, exp);
            }
            view.data_version = conn.query_row("PRAGMA data_version", [], |r| r.get(0))?;
            // Swapped while the connection is still held: a write of this process (which
            // updates the view under the same lock) cannot fall between the read and the
            // swap and be undone by it.
            *self
                .inner
                .view
                .write()
                .unwrap_or_else(PoisonError::into_inner) = view;
        }
        Ok(())
    }

    fn flush_used(&self) -> Result<(), AuthError> {
        let used = std::mem::take(
            &mut *self
                .inner
                .used
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        if used.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for (id, at) in used {
            tx.execute(
                "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1",
                params![id, at.to_rfc3339()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Keeps the view in step with the file (changes by the CLI show within `every`) and
    /// writes keys' last use, until `shutdown` resolves; a last flush then.
    pub async fn watch(self, every: Duration, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let last = tokio::select! {
                () = &mut shutdown => true,
                _ = tick.tick() => false,
            };
            let this = self.clone();
            match tokio::task::spawn_blocking(move || this.sync()).await {
                Ok(Ok(true)) => tracing::debug!("auth store changed on disk: reloaded"),
                Ok(Ok(false)) => {}
                Ok(Err(e)) => tracing::warn!("auth store sync failed: {e}"),
                Err(e) => tracing::warn!("auth store sync panicked: {e}"),
            }
            if last {
                return;
            }
        }
    }
}

fn key_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKey> {
    let role: String = r.get(2)?;
    let time = |i: usize| -> rusqlite::Result<Option<DateTime<Utc>>> {
        let text: Option<String> = r.get(i)?;
        text.map(|t| {
            DateTime::parse_from_rfc3339(&t)
                .map(|d| d.with_timezone(&Utc))
                .map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        i,
                        rusqlite::types::Type::Text,
                        Box::new(e),
                    )
                })
        })
        .transpose()
    };
    Ok(ApiKey {
        id: r.get(0)?,
        name: r.get(1)?,
        role: role.parse().map_err(|e: String| {
            rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, e.into())
        })?,
        prefix: r.get(3)?,
        created_at: time(4)?.unwrap_or_default(),
        last_used_at: time(5)?,
        revoked_at: time(6)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stored_hashed_and_found_by_their_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.sqlite3");
        let store = Credentials::open(&path).unwrap();
        let new = store.create_key("ci bot", Role::Operator).unwrap();
        assert!(
            new.key.starts_with("szk_") && new.key.len() == 47,
            "{}",
            new.key
        );
        assert!(new.key.starts_with(&new.prefix) && new.prefix.len() == 12);
        assert_eq!(store.lookup(&new.key).unwrap().role, Role::Operator);
        assert!(matches!(
            store.lookup("szk_nope"),
            Err(AuthError::BadCredentials)
        ));
        // Only the hash is on disk.
        let raw = std::fs::read(&path).unwrap();
        let wal = std::fs::read(dir.path().join("auth.sqlite3-wal")).unwrap_or_default();
        let secret_part = &new.key.as_bytes()[12..];
        for bytes in [&raw, &wal] {
            assert!(!bytes.windows(secret_part.len()).any(|w| w == secret_part));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        // Names: validated, unique among active keys.
        assert!(matches!(
            store.create_key("ci bot", Role::Viewer),
            Err(AuthError::Invalid { field: "name", .. })
        ));
        assert!(matches!(
            store.create_key("a/b", Role::Viewer),
            Err(AuthError::Invalid { field: "name", .. })
        ));
        assert!(matches!(
            store.create_key(" ", Role::Viewer),
            Err(AuthError::Invalid { field: "name", .. })
        ));
        // Revocation is at once and idempotent; the name is free again.
        let revoked = store.revoke_key(&new.id).unwrap();
        assert!(revoked.revoked_at.is_some());
        assert!(matches!(
            store.lookup(&new.key),
            Err(AuthError::BadCredentials)
        ));
        assert_eq!(
            store.revoke_key(&new.id).unwrap().revoked_at,
            revoked.revoked_at
        );
        assert!(matches!(
            store.revoke_key("nope"),
            Err(AuthError::KeyNotFound(_))
        ));
        store.create_key("ci bot", Role::Viewer).unwrap();
        assert_eq!(store.list_keys().unwrap().len(), 2);
    }

    #[test]
    fn another_process_changes_show_after_sync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.sqlite3");
        let server = Credentials::open(&path).unwrap();
        let cli = Credentials::open(&path).unwrap();
        let new = cli.create_key("from cli", Role::Admin).unwrap();
        assert!(server.lookup(&new.key).is_err(), "not seen before a sync");
        assert!(server.sync().unwrap());
        assert_eq!(server.lookup(&new.key).unwrap().name, "from cli");
        assert!(!server.sync().unwrap(), "nothing changed since");
        // Last use is written by the server's sync and seen by the CLI's list.
        server.sync().unwrap();
        let listed = cli.list_keys().unwrap();
        assert!(listed[0].last_used_at.is_some());
        cli.revoke_key(&new.id).unwrap();
        cli.revoke_token("jti-1", Utc::now().timestamp() + 60)
            .unwrap();
        server.sync().unwrap();
        assert!(server.lookup(&new.key).is_err());
        assert!(!server.is_key_active(&new.id));
        assert!(server.is_token_revoked("jti-1"));
    }
}
