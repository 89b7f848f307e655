//! The SutazAI HTTP API: the system description's REST routes and WebSockets over the
//! orchestrator, plus task approval and `/openapi.json`.
//!
//! # Layout
//! - [`app`] builds the `Router` (tests drive it with `oneshot`, no socket needed);
//!   [`serve`] runs it on a listener until a shutdown future resolves, [`serve_tls`] the
//!   same over TLS with the configuration [`tls`] builds from PEM files.
//! - `error`: the one error type; every failure reaches clients as `{code, message}`.
//! - `extract`: JSON and query extractors whose rejections are `{code, message}` too.
//! - `routes`: REST handlers; `messages`: the message-bus routes (send, broadcast, dead
//!   letters, `/workers`, the bus section of `/status`); `ws`: the two WebSocket
//!   endpoints; `health`: the health computation shared by `/health`, `/status` and the
//!   `system_status` event.
//! - `infra`: the Docker services' routes; `monitoring`: alerts, host samples, time
//!   series, `/metrics`; [`setup`]: the first-run routes (`/setup/doctor`,
//!   `/models/pull`) the serving process provides.
//! - [`auth`]: who may call what ([`auth::policy`]), the middleware that authenticates,
//!   authorises and audits every matched route, and the `/auth/*` and `/audit*` routes.
//! - `openapi`: the OpenAPI document.
//!
//! Only this crate knows HTTP and JSON DTOs; the orchestrator's types are serialised as
//! they are because their field names are the spec's.

pub mod auth;
mod error;
mod extract;
mod health;
mod infra;
mod messages;
mod monitoring;
mod openapi;
mod routes;
pub mod settings;
pub mod setup;
pub mod tls;
mod ws;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, header};
use axum::routing::{get, post};
use sutazai_orchestrator::Orchestrator;
use tower_http::cors::CorsLayer;
use tower_http::services::{ServeDir, ServeFile};

pub use error::ApiError;

/// Largest request body accepted (task payloads included).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// API settings.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// How often `/ws` clients get a `system_status` event (`WEBSOCKET_HEARTBEAT_INTERVAL`).
    pub heartbeat_interval: Duration,
    /// The built dashboard (`ui/dist`), served at `/` when present.
    pub ui_dir: Option<PathBuf>,
    /// Payload fields whose values answers show as `***` (`SUTAZAI_MASK_FIELDS`).
    pub sensitive_fields: sutazai_core::mask::SensitiveFields,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            heartbeat_interval: Duration::from_secs(30),
            ui_dir: None,
            sensitive_fields: sutazai_core::mask::SensitiveFields::default(),
        }
    }
}

/// What handlers share: one `Arc`, so the clone axum makes for every extractor and
/// middleware of every request is a single reference count.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

/// The fields behind [`AppState`].
#[derive(Debug, Clone)]
pub struct Shared {
    pub(crate) orchestrator: Orchestrator,
    pub(crate) config: Arc<ApiConfig>,
    pub(crate) health: Arc<health::HealthCache>,
    pub(crate) started: Instant,
    /// Docker services; `None` where this process does not manage them.
    pub(crate) infra: Option<sutazai_infra::Infra>,
    /// Host sampling and alerts; `None` where this process does not run them.
    pub(crate) monitor: Option<sutazai_monitor::Monitor>,
    /// First-run checks and model pulls; `None` where this process does not offer them.
    pub(crate) setup: Option<setup::Setup>,
    /// Authentication and the audit log; `None`: neither (tests, embedding without a
    /// data directory) — every caller is then the local admin and nothing is audited.
    pub(crate) security: Option<Arc<auth::Security>>,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// State over a running orchestrator.
    pub fn new(orchestrator: Orchestrator, config: ApiConfig) -> AppState {
        AppState(Arc::new(Shared {
            orchestrator,
            config: Arc::new(config),
            health: Arc::new(health::HealthCache::default()),
            started: Instant::now(),
            infra: None,
            monitor: None,
            setup: None,
            security: None,
        }))
    }

    /// The fields, to change while the state is being built (copied if already shared).
    fn building(&mut self) -> &mut Shared {
        Arc::make_mut(&mut self.0)
    }

    /// The same state with authentication (when `security.auth` is set) and auditing.
    pub fn with_security(mut self, security: auth::Security) -> AppState {
        self.building().security = Some(Arc::new(security));
        self
    }

    /// The same state offering the first-run routes.
    pub fn with_setup(mut self, setup: setup::Setup) -> AppState {
        self.building().setup = Some(setup);
        self
    }

    /// The same state with host monitoring and alerts.
    pub fn with_monitor(mut self, monitor: sutazai_monitor::Monitor) -> AppState {
        self.building().monitor = Some(monitor);
        self
    }

    /// The same state managing Docker services through `infra`.
    pub fn with_infra(mut self, infra: sutazai_infra::Infra) -> AppState {
        self.building().infra = Some(infra);
        self
    }
}

impl AppState {
    /// `value` as JSON with the sensitive fields masked and their values redacted from
    /// every string (prompts and answers that quote them).
    pub(crate) fn masked(
        &self,
        value: &impl serde::Serialize,
    ) -> Result<axum::Json<serde_json::Value>, ApiError> {
        let mut json = serde_json::to_value(value).map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                format!("encoding the answer: {e}"),
            )
        })?;
        self.config.sensitive_fields.mask_document(&mut json);
        Ok(axum::Json(json))
    }
}

/// The router with every route.
pub fn app(state: AppState) -> Router {
    let ui = state.config.ui_dir.clone();
    let router = Router::new()
        .route("/health", get(routes::health))
        .route("/status", get(routes::status))
        .route(
            "/agents",
            get(routes::list_agents).post(routes::create_agent),
        )
        .route(
            "/agents/{agent_id}",
            get(routes::get_agent)
                .put(routes::put_agent)
                .delete(routes::delete_agent),
        )
        .route(
            "/agents/{agent_id}/definition",
            get(routes::agent_definition),
        )
        .route("/agents/{agent_id}/control", post(routes::control_agent))
        .route("/tasks", post(routes::submit_task).get(routes::list_tasks))
        .route(
            "/tasks/{task_id}",
            get(routes::get_task).delete(routes::cancel_task),
        )
        .route("/tasks/{task_id}/approve", post(routes::approve_task))
        .route("/messages/send", post(messages::send_message))
        .route("/messages/broadcast", post(messages::broadcast_message))
        .route(
            "/messages/dead-letters",
            get(messages::list_dead_letters).delete(messages::purge_dead_letters),
        )
        .route(
            "/messages/dead-letters/{id}",
            get(messages::get_dead_letter).delete(messages::delete_dead_letter),
        )
        .route(
            "/messages/dead-letters/{id}/replay",
            post(messages::replay_dead_letter),
        )
        .route("/workers", get(messages::workers))
        .route("/infrastructure/status", get(infra::status))
        .route("/infrastructure/deploy-all", post(infra::deploy_all))
        .route(
            "/infrastructure/services/{service_name}/control",
            post(infra::control_service),
        )
        .route("/infrastructure/services/{name}/logs", get(infra::logs))
        .route("/infrastructure/containers/{name}/stats", get(infra::stats))
        .route("/infrastructure/images/pull", post(infra::pull))
        .route("/analytics/performance", get(routes::analytics))
        .route("/orchestration/pause", post(routes::pause))
        .route("/setup/doctor", get(setup::doctor))
        .route(
            "/settings",
            get(settings::get_settings).put(settings::put_settings),
        )
        .route("/models/pull", post(setup::pull_model))
        .route("/orchestration/resume", post(routes::resume))
        .route("/alerts", get(monitoring::list_alerts))
        .route(
            "/alerts/{id}/acknowledge",
            post(monitoring::acknowledge_alert),
        )
        .route(
            "/alerts/rules/{id}",
            axum::routing::put(monitoring::set_rule),
        )
        .route("/monitoring/host", get(monitoring::host))
        .route("/monitoring/series", get(monitoring::series))
        .route(
            "/monitoring/series/catalogue",
            get(monitoring::series_catalogue),
        )
        .route("/metrics", get(monitoring::metrics))
        .route("/openapi.json", get(openapi::document))
        .route("/ws", get(ws::system))
        .route("/ws/agent/{agent_id}", get(ws::agent))
        .route("/auth/token", post(auth::sign_in))
        .route("/auth/refresh", post(auth::refresh))
        .route("/auth/revoke", post(auth::revoke))
        .route("/auth/whoami", get(auth::whoami))
        .route("/auth/keys", get(auth::list_keys).post(auth::create_key))
        .route("/auth/keys/{id}", axum::routing::delete(auth::revoke_key))
        .route("/audit", get(auth::audit))
        .route("/audit/verify", get(auth::verify_audit))
        // After routing, so the guard knows the route template; unmatched requests
        // (static dashboard files, 404s) never reach a handler.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::guard,
        ))
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(desktop_cors());
    let router = match ui {
        Some(dir) if dir.join("index.html").is_file() => router.fallback_service(
            ServeDir::new(&dir).not_found_service(ServeFile::new(dir.join("index.html"))),
        ),
        _ => router.fallback(error::not_found),
    };
    router.with_state(state)
}

/// Lets the desktop window's page call the API. Its origin is the webview's own
/// (`tauri://localhost` on Linux and macOS, `http://tauri.localhost` on Windows), not the
/// API's; browsers on the served dashboard are same-origin and need nothing. No other
/// origin is allowed, so a random web page cannot drive a local orchestrator.
fn desktop_cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin([
            HeaderValue::from_static("tauri://localhost"),
            HeaderValue::from_static("http://tauri.localhost"),
            HeaderValue::from_static("https://tauri.localhost"),
        ])
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            header::HeaderName::from_static("x-api-key"),
        ])
}

/// How long a TLS server's open connections may take to finish after the shutdown signal.
const TLS_DRAIN: Duration = Duration::from_secs(10);

/// [`serve`] over TLS (see [`tls::server_config`]).
pub async fn serve_tls(
    listener: std::net::TcpListener,
    state: AppState,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stop = state.orchestrator.clone();
    let handle = axum_server::Handle::new();
    let signal = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stop.begin_shutdown();
        signal.graceful_shutdown(Some(TLS_DRAIN));
    });
    let config = axum_server::tls_rustls::RustlsConfig::from_config(tls);
    axum_server::from_tcp_rustls(listener, config)?
        .handle(handle)
        .serve(app(state).into_make_service_with_connect_info::<std::net::SocketAddr>())
        .await
}

/// Serves the API on `listener` until `shutdown` resolves; open WebSockets are closed then.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stop = state.orchestrator.clone();
    let shutdown = async move {
        shutdown.await;
        // WebSocket loops watch the orchestrator's shutdown signal.
        stop.begin_shutdown();
    };
    // The peer address goes into the audit log.
    axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
