//! Fuzzes the task request parser as clients reach it: `POST /tasks` of the real router
//! (`sutazai_api::app`) over a real orchestrator (the 38 built-in agents, a journal in a
//! temporary directory, the in-process bus), called in process with the input as the body.
//!
//! Whatever the body, the answer must be 201 with a task id, or a 4xx whose body is
//! `{code, message}`; never a 5xx, never a panic. The orchestrator is paused, so accepted
//! tasks are journaled and queued but never run (no model is called); each is cancelled
//! at once (and that must succeed). Every 20,000 accepted tasks the orchestrator and its
//! journal start afresh, so a long run does not fill the disk.

#![no_main]

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sutazai_api::{ApiConfig, AppState};
use sutazai_bus::{Bus, BusConfig};
use sutazai_llm::{InstantProvider, Provider};
use sutazai_orchestrator::{Orchestrator, OrchestratorConfig};
use sutazai_store::Journal;
use tower::ServiceExt;

/// Accepted tasks after which the orchestrator and its journal are replaced by fresh ones:
/// every accepted task stays in the journal, which would otherwise grow by gigabytes over
/// a long run (about 6 KB per task).
const ROTATE_AFTER: u32 = 20_000;

struct World {
    orchestrator: Orchestrator,
    router: axum::Router,
    accepted: u32,
    _dir: tempfile::TempDir,
}

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
});

static WORLD: LazyLock<Mutex<World>> = LazyLock::new(|| Mutex::new(RUNTIME.block_on(fresh_world())));

async fn fresh_world() -> World {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let journal = Journal::open(&dir.path().join("journal.sqlite3")).expect("a journal");
    let mut providers: HashMap<String, Arc<dyn Provider>> = HashMap::new();
    providers.insert(
        "ollama".into(),
        Arc::new(InstantProvider::new("ok").with_id("ollama")),
    );
    let orchestrator = Orchestrator::start(
        OrchestratorConfig::default(),
        sutazai_agents::Registry::builtin(),
        providers,
        journal,
        Bus::in_process(BusConfig::default()),
    )
    .await
    .expect("an orchestrator");
    orchestrator.set_paused(true);
    let router = sutazai_api::app(AppState::new(orchestrator.clone(), ApiConfig::default()));
    World {
        orchestrator,
        router,
        accepted: 0,
        _dir: dir,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut world = WORLD.lock().unwrap_or_else(|p| p.into_inner());
    if world.accepted >= ROTATE_AFTER {
        let old = std::mem::replace(&mut *world, RUNTIME.block_on(fresh_world()));
        RUNTIME.block_on(old.orchestrator.shutdown());
    }
    let request = Request::post("/tasks")
        .header("content-type", "application/json")
        .body(Body::from(data.to_vec()))
        .expect("a request");
    let (status, body) = RUNTIME.block_on(async {
        let response = world
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router answers");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("a body");
        (status, body)
    });
    let json: Value = serde_json::from_slice(&body).expect("every answer is JSON");
    if status == StatusCode::CREATED {
        let id = json["task_id"].as_str().expect("201 with a task id");
        world.accepted += 1;
        // Cancelled at once: a paused orchestrator keeps every accepted task in memory,
        // which over millions of inputs would be the harness's leak, not the parser's.
        let cancel = Request::delete(format!("/tasks/{id}"))
            .body(Body::empty())
            .expect("a request");
        let cancelled = RUNTIME.block_on(async {
            world
                .router
                .clone()
                .oneshot(cancel)
                .await
                .expect("the router answers")
                .status()
        });
        assert_eq!(cancelled, StatusCode::OK, "cancelling the accepted task {id}");
    } else {
        assert!(
            status.is_client_error(),
            "{status} for {:?}: {json}",
            String::from_utf8_lossy(data)
        );
        assert!(
            json["code"].is_string() && json["message"].is_string(),
            "{status} without {{code, message}}: {json}"
        );
    }
});
