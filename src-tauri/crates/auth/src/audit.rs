//! The audit log: who did what, when, from where, and how it ended — every mutating call
//! and every refused one. One writer thread appends in batches; each entry's SHA-256 covers
//! its fields and the previous entry's hash, so an edited, inserted or deleted row breaks
//! the chain from there on, which [`verify_chain`] finds.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{AuthError, Role};

/// The `prev_hash` of the first entry.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Most entries one transaction appends.
const BATCH: usize = 512;
/// How long the writer waits, after an entry wakes it, for others to share the commit.
/// Entries are queued, never awaited by the request that made them; a
/// [`AuditLog::flush`] that arrives meanwhile waits at most this much longer.
const LINGER: std::time::Duration = std::time::Duration::from_millis(10);

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Answered 2xx/3xx.
    Ok,
    /// Refused by authentication or authorisation (401, 403) or the rate limiter (429).
    Denied,
    /// Any other error answer.
    Failed,
}

impl Outcome {
    pub fn of_status(status: u16) -> Outcome {
        match status {
            401 | 403 | 429 => Outcome::Denied,
            s if s < 400 => Outcome::Ok,
            _ => Outcome::Failed,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
        }
    }
}

/// One thing to record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub at: DateTime<Utc>,
    /// The principal's subject; `anonymous` when none was established.
    pub actor: String,
    pub role: Option<Role>,
    pub method: String,
    /// The request path (no query string: it may carry a token).
    pub path: String,
    pub status: u16,
    /// The client's address.
    pub peer: Option<String>,
    pub outcome: Outcome,
    /// A short note: the error code of a refusal.
    pub detail: Option<String>,
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: i64,
    #[serde(flatten)]
    pub record: AuditRecord,
    pub hash: String,
}

/// A page of entries, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `before` for the next (older) page; `None` at the start of the log.
    pub next_before: Option<i64>,
}

/// What re-computing the chain found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainReport {
    pub ok: bool,
    pub entries: u64,
    /// The first entry whose stored hash or link does not match.
    pub first_bad_seq: Option<i64>,
    /// The last entry's hash (the genesis value for an empty log).
    pub head_hash: String,
}

#[derive(Debug)]
enum Msg {
    Append(AuditRecord),
    /// Answered once everything sent before it is committed.
    Flush(tokio::sync::oneshot::Sender<()>),
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    tx: Mutex<Option<mpsc::Sender<Msg>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// The appending side. Cheap to clone; [`AuditLog::close`] drains and stops the writer.
#[derive(Debug, Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

impl AuditLog {
    /// Opens the log in the store at `path` and starts its writer thread. Blocking.
    pub fn open(path: &Path) -> Result<AuditLog, AuthError> {
        let conn = crate::schema::open(path)?;
        let head: String = conn
            .query_row(
                "SELECT hash FROM audit ORDER BY seq DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(GENESIS.to_owned()),
                e => Err(e),
            })?;
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("sutazai-audit".to_owned())
            .spawn(move || writer(conn, head, rx))
            .map_err(|source| AuthError::Io {
                path: path.display().to_string(),
                source,
            })?;
        Ok(AuditLog {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                tx: Mutex::new(Some(tx)),
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// Queues a record; never blocks. After [`AuditLog::close`] the record is logged as
    /// lost instead.
    pub fn record(&self, record: AuditRecord) {
        let tx = self.inner.tx.lock().unwrap_or_else(PoisonError::into_inner);
        let refused = match tx.as_ref() {
            Some(tx) => tx.send(Msg::Append(record)).err().map(|e| e.0),
            None => Some(Msg::Append(record)),
        };
        if let Some(msg) = refused {
            tracing::error!(?msg, "audit log closed: entry not recorded");
        }
    }

    /// Waits until everything recorded so far is committed.
    pub async fn flush(&self) -> Result<(), AuthError> {
        let (done, wait) = tokio::sync::oneshot::channel();
        {
            let tx = self.inner.tx.lock().unwrap_or_else(PoisonError::into_inner);
            tx.as_ref()
                .ok_or(AuthError::AuditClosed)?
                .send(Msg::Flush(done))
                .map_err(|_| AuthError::AuditClosed)?;
        }
        wait.await.map_err(|_| AuthError::AuditClosed)
    }

    /// Commits what is queued and stops the writer. Blocking; later records are refused.
    pub fn close(&self) {
        drop(
            self.inner
                .tx
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        if let Some(thread) = self
            .inner
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            && thread.join().is_err()
        {
            tracing::error!("the audit writer panicked");
        }
    }

    /// Entries newest first: at most `limit` (1–1000) with `seq < before`. Blocking.
    pub fn page(&self, before: Option<i64>, limit: u32) -> Result<AuditPage, AuthError> {
        let conn = reader(&self.inner.path)?;
        let limit = limit.clamp(1, 1000);
        let mut stmt = conn.prepare(
            "SELECT seq, at, actor, role, method, path, status, peer, outcome, detail, hash
             FROM audit WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2",
        )?;
        let entries = stmt
            .query_map(params![before.unwrap_or(i64::MAX), limit], entry_row)?
            .collect::<Result<Vec<_>, _>>()?;
        let next_before = match entries.last() {
            Some(last) if entries.len() == limit as usize && last.seq > 1 => Some(last.seq),
            _ => None,
        };
        Ok(AuditPage {
            entries,
            next_before,
        })
    }

    /// Re-computes the whole chain. Blocking.
    pub fn verify(&self) -> Result<ChainReport, AuthError> {
        verify_chain(&self.inner.path)
    }
}

/// A connection for reading. Not `SQLITE_OPEN_READ_ONLY`: a read-only connection to a WAL
/// database fails when it would have to rebuild the shared-memory index.
fn reader(path: &Path) -> Result<Connection, AuthError> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

/// Re-computes the chain of the store at `path` (the server need not run). Blocking.
pub fn verify_chain(path: &Path) -> Result<ChainReport, AuthError> {
    let conn = reader(path)?;
    let mut stmt = conn.prepare(
        "SELECT seq, at, actor, role, method, path, status, peer, outcome, detail, hash, prev_hash
         FROM audit ORDER BY seq",
    )?;
    let mut rows = stmt.query([])?;
    let mut prev = GENESIS.to_owned();
    let mut entries = 0u64;
    while let Some(row) = rows.next()? {
        entries += 1;
        let stored_prev: String = row.get(11)?;
        let entry = match entry_row(row) {
            Ok(entry) => entry,
            Err(_) => return Ok(broken(row.get(0)?, entries, prev)),
        };
        if stored_prev != prev || chain_hash(entry.seq, &entry.record, &prev) != entry.hash {
            return Ok(broken(entry.seq, entries, prev));
        }
        prev = entry.hash;
    }
    Ok(ChainReport {
        ok: true,
        entries,
        first_bad_seq: None,
        head_hash: prev,
    })
}

fn broken(seq: i64, entries: u64, head: String) -> ChainReport {
    ChainReport {
        ok: false,
        entries,
        first_bad_seq: Some(seq),
        head_hash: head,
    }
}

/// SHA-256 over the JSON array of the entry's fields and its predecessor's hash: JSON
/// keeps field boundaries unambiguous whatever the fields contain.
fn chain_hash(seq: i64, r: &AuditRecord, prev: &str) -> String {
    let canonical = serde_json::json!([
        seq,
        r.at.to_rfc3339_opts(SecondsFormat::Nanos, true),
        r.actor,
        r.role.map(Role::as_str),
        r.method,
        r.path,
        r.status,
        r.peer,
        r.outcome.as_str(),
        r.detail,
        prev,
    ]);
    let digest = Sha256::digest(canonical.to_string().as_bytes());
    let mut hex = String::with_capacity(2 * digest.len());
    for b in digest {
        use std::fmt::Write as _;
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

fn entry_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditEntry> {
    let conversion = |i: usize, e: Box<dyn std::error::Error + Send + Sync>| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e)
    };
    let at: String = r.get(1)?;
    let role: Option<String> = r.get(3)?;
    let outcome: String = r.get(8)?;
    Ok(AuditEntry {
        seq: r.get(0)?,
        record: AuditRecord {
            at: DateTime::parse_from_rfc3339(&at)
                .map_err(|e| conversion(1, e.into()))?
                .with_timezone(&Utc),
            actor: r.get(2)?,
            role: role
                .map(|s| s.parse::<Role>())
                .transpose()
                .map_err(|e| conversion(3, e.into()))?,
            method: r.get(4)?,
            path: r.get(5)?,
            status: r.get(6)?,
            peer: r.get(7)?,
            outcome: match outcome.as_str() {
                "ok" => Outcome::Ok,
                "denied" => Outcome::Denied,
                "failed" => Outcome::Failed,
                other => return Err(conversion(8, format!("outcome {other:?}").into())),
            },
            detail: r.get(9)?,
        },
        hash: r.get(10)?,
    })
}

fn writer(mut conn: Connection, mut head: String, rx: mpsc::Receiver<Msg>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut waiting = Vec::new();
    // The last batch was cut at BATCH: more is queued, so the next one needs no linger.
    let mut backlog = false;
    while let Ok(first) = rx.recv() {
        // Nobody waits for an append, so the batch lingers for LINGER before it is
        // drained: under load one commit — and one wake-up of this thread, rather than one
        // per request — carries many requests' entries. A flush is served without it.
        if matches!(first, Msg::Append(_)) && !backlog {
            std::thread::sleep(LINGER);
        }
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Append(r) => batch.push(r),
                Msg::Flush(done) => waiting.push(done),
            }
            if batch.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        backlog = batch.len() >= BATCH;
        if !batch.is_empty() {
            let mut appended = append(&mut conn, &head, &batch);
            for wait_ms in [50, 200, 1000] {
                if appended.is_ok() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(wait_ms));
                appended = append(&mut conn, &head, &batch);
            }
            match appended {
                Ok(new_head) => head = new_head,
                Err(e) => {
                    // The chain in the file is intact (the transaction rolled back); the
                    // records go to the log so nothing vanishes silently.
                    tracing::error!(error = %e, lost = batch.len(), "audit entries could not be written");
                    for record in &batch {
                        tracing::error!(?record, "audit entry not written");
                    }
                }
            }
            batch.clear();
        }
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
}

fn append(conn: &mut Connection, head: &str, batch: &[AuditRecord]) -> Result<String, AuthError> {
    // IMMEDIATE: the write lock is taken at BEGIN (waiting out other writers of the file,
    // such as the credential store's), not at the first insert, where a deferred
    // transaction that read a now-stale snapshot would fail without waiting.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut seq: i64 = tx
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM audit")?
        .query_row([], |r| r.get(0))?;
    let mut prev = head.to_owned();
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO audit (seq, at, actor, role, method, path, status, peer, outcome, detail, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?;
        for r in batch {
            seq += 1;
            let hash = chain_hash(seq, r, &prev);
            insert.execute(params![
                seq,
                r.at.to_rfc3339_opts(SecondsFormat::Nanos, true),
                r.actor,
                r.role.map(Role::as_str),
                r.method,
                r.path,
                r.status,
                r.peer,
                r.outcome.as_str(),
                r.detail,
                prev,
                hash,
            ])?;
            prev = hash;
        }
    }
    tx.commit()?;
    Ok(prev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: u16) -> AuditRecord {
        AuditRecord {
            at: Utc::now(),
            actor: format!("key:user {i}"),
            role: Some(Role::Operator),
            method: "POST".to_owned(),
            path: "/tasks".to_owned(),
            status: 200 + i,
            peer: Some("127.0.0.1:5000".to_owned()),
            outcome: Outcome::Ok,
            detail: i.is_multiple_of(2).then(|| "a \"quoted\" note".to_owned()),
        }
    }

    #[tokio::test]
    async fn the_chain_survives_restarts_and_catches_edits_and_deletions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.sqlite3");
        let log = AuditLog::open(&path).unwrap();
        for i in 0..20 {
            log.record(record(i));
        }
        log.flush().await.unwrap();
        log.close();
        // Reopened: the chain continues from the stored head.
        let log = AuditLog::open(&path).unwrap();
        for i in 20..30 {
            log.record(record(i));
        }
        log.flush().await.unwrap();
        let report = log.verify().unwrap();
        assert!(report.ok, "{report:?}");
        assert_eq!(report.entries, 30);
        let page = log.page(None, 25).unwrap();
        assert_eq!(page.entries.len(), 25);
        assert_eq!(page.entries[0].seq, 30);
        assert_eq!(page.entries[0].record.status, 229);
        let older = log.page(page.next_before, 25).unwrap();
        assert_eq!(older.entries.len(), 5);
        assert_eq!(older.next_before, None);

        // An edit breaks the chain at that entry.
        let raw = Connection::open(&path).unwrap();
        raw.execute("UPDATE audit SET status = 200 WHERE seq = 17", [])
            .unwrap();
        let report = verify_chain(&path).unwrap();
        assert_eq!((report.ok, report.first_bad_seq), (false, Some(17)));
        raw.execute("UPDATE audit SET status = 216 WHERE seq = 17", [])
            .unwrap();
        assert!(verify_chain(&path).unwrap().ok);
        // A deletion breaks it at the next entry (its link no longer matches).
        raw.execute("DELETE FROM audit WHERE seq = 9", []).unwrap();
        let report = verify_chain(&path).unwrap();
        assert_eq!((report.ok, report.first_bad_seq), (false, Some(10)));
        log.close();
    }
}
