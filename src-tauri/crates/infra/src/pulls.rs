//! Image pulls that survive a restart of the app.
//!
//! Every pull is recorded in `<state dir>/pulls.json` when it starts and forgotten when it
//! ends: finished, or refused for good (no such image, no access). A pull cut short — the
//! app quit or crashed, the engine went away — stays recorded, and the next start (or the
//! engine's return) pulls it again. The engine keeps the layers it already completed, so
//! the pull resumes layer by layer rather than from nothing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::stream::{BoxStream, StreamExt};

use crate::error::InfraError;
use crate::model::PullProgress;

const FILE: &str = "pulls.json";

/// The record of pulls in progress.
#[derive(Debug, Clone)]
pub(crate) struct PendingPulls {
    path: PathBuf,
    /// Serialises read-modify-write of the file (held only inside blocking closures).
    lock: Arc<Mutex<()>>,
}

fn read(path: &Path) -> BTreeSet<String> {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

fn write(path: &Path, set: &BTreeSet<String>) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(set).unwrap_or_default())?;
    std::fs::rename(&tmp, path)
}

impl PendingPulls {
    pub(crate) fn new(dir: &Path) -> PendingPulls {
        PendingPulls {
            path: dir.join(FILE),
            lock: Arc::new(Mutex::new(())),
        }
    }

    async fn change(&self, reference: String, add: bool) {
        let (path, lock) = (self.path.clone(), self.lock.clone());
        let outcome = tokio::task::spawn_blocking(move || {
            let _guard = lock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut set = read(&path);
            let changed = if add {
                set.insert(reference)
            } else {
                set.remove(&reference)
            };
            if changed { write(&path, &set) } else { Ok(()) }
        })
        .await;
        if let Ok(Err(e)) = outcome {
            tracing::warn!(file = %self.path.display(), error = %e, "could not record pulls in progress");
        }
    }

    /// The pulls a previous run left unfinished.
    pub(crate) async fn unfinished(&self) -> Vec<String> {
        let (path, lock) = (self.path.clone(), self.lock.clone());
        tokio::task::spawn_blocking(move || {
            let _guard = lock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            read(&path).into_iter().collect()
        })
        .await
        .unwrap_or_default()
    }

    /// `progress` with the pull of `reference` recorded while it runs: forgotten when it
    /// finishes or fails for good, kept when the engine became unreachable.
    pub(crate) fn track(
        &self,
        reference: String,
        progress: BoxStream<'static, Result<PullProgress, InfraError>>,
    ) -> BoxStream<'static, Result<PullProgress, InfraError>> {
        enum Phase {
            Start,
            Running { keep: bool },
        }
        let pending = self.clone();
        futures::stream::unfold(
            (Phase::Start, progress, pending, reference),
            |(phase, mut progress, pending, reference)| async move {
                let keep = match phase {
                    Phase::Start => {
                        pending.change(reference.clone(), true).await;
                        false
                    }
                    Phase::Running { keep } => keep,
                };
                match progress.next().await {
                    Some(Ok(p)) => Some((
                        Ok(p),
                        (Phase::Running { keep }, progress, pending, reference),
                    )),
                    Some(Err(e)) => {
                        let keep = keep || matches!(e, InfraError::Unavailable { .. });
                        Some((
                            Err(e),
                            (Phase::Running { keep }, progress, pending, reference),
                        ))
                    }
                    None => {
                        if !keep {
                            pending.change(reference.clone(), false).await;
                        }
                        None
                    }
                }
            },
        )
        .boxed()
    }
}
