//! What the infrastructure layer must remember across processes and restarts: the replicas
//! asked for per service, the agents given worker services of their own, and the healer's
//! restarts per container.
//!
//! Kept in `<state dir>/state.json` (the data directory, shared by `serve`, the desktop app
//! and `sutazai infra`), so that a service deployed or stopped by the CLI is healed — or left
//! stopped — by the running server, and a restart forgets nothing. Without a state
//! directory it lives in memory only. Reads and writes run off the reactor; a write goes
//! to a temporary file renamed over the old one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

const FILE: &str = "state.json";

/// The remembered state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct State {
    /// Replicas asked for per service (0: stopped on purpose). Absent: never asked.
    #[serde(default)]
    pub(crate) desired: BTreeMap<String, u32>,
    /// Agents with a `worker-{agent}` service.
    #[serde(default)]
    pub(crate) agent_workers: BTreeSet<String>,
    /// Restarts made by the healer, per container name.
    #[serde(default)]
    pub(crate) heals: BTreeMap<String, u64>,
}

/// The state, on disk or in memory.
#[derive(Debug, Clone)]
pub(crate) struct StateStore {
    path: Option<PathBuf>,
    /// The state itself without a file; otherwise the last one read or written (used when
    /// the file cannot be read).
    cache: Arc<Mutex<State>>,
}

fn read(path: &PathBuf) -> Option<State> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn write(path: &PathBuf, state: &State) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
    std::fs::write(&tmp, serde_json::to_vec_pretty(state).unwrap_or_default())?;
    std::fs::rename(&tmp, path)
}

impl StateStore {
    pub(crate) fn new(dir: Option<&std::path::Path>) -> StateStore {
        StateStore {
            path: dir.map(|d| d.join(FILE)),
            cache: Arc::new(Mutex::new(State::default())),
        }
    }

    fn cached(&self) -> State {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The current state.
    pub(crate) async fn get(&self) -> State {
        let Some(path) = self.path.clone() else {
            return self.cached();
        };
        let cache = self.cache.clone();
        tokio::task::spawn_blocking(move || {
            let mut cached = cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(state) = read(&path) {
                *cached = state;
            }
            cached.clone()
        })
        .await
        .unwrap_or_else(|_| self.cached())
    }

    /// Applies `change` to the current state and stores the result.
    pub(crate) async fn update(&self, change: impl FnOnce(&mut State) + Send + 'static) {
        let path = self.path.clone();
        let cache = self.cache.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let mut cached = cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut state = path
                .as_ref()
                .and_then(read)
                .unwrap_or_else(|| cached.clone());
            change(&mut state);
            *cached = state.clone();
            match &path {
                Some(path) => write(path, &state),
                None => Ok(()),
            }
        })
        .await;
        if let Ok(Err(e)) = outcome {
            tracing::warn!(error = %e, "could not store the infrastructure state");
        }
    }

    /// Sets the replicas asked for `service`.
    pub(crate) async fn set_desired(&self, service: &str, replicas: u32) {
        let service = service.to_owned();
        self.update(move |s| {
            s.desired.insert(service, replicas);
        })
        .await;
    }
}
