//! `serve`: wires settings into the running system — data directory, journal, agent
//! registry, LLM providers, orchestrator, HTTP API — and takes it down again in order.
//!
//! Two entry points share the wiring: [`run_server`] for `sutazai serve` (it owns the
//! process until Ctrl-C/SIGTERM) and [`spawn_background`] for the desktop shell, which
//! runs the same server as a task on its own runtime and stops it when the app quits.
//!
//! Start-up order matters: the listening socket is bound and the data directory locked
//! *before* the journal is opened, because opening the journal resumes unfinished tasks;
//! a second server started by mistake (port taken, or same data directory) must fail
//! before it could run those tasks a second time.

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::future::Future;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::path::Path;
use std::time::Duration;

use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use anyhow::{Context as _, bail};
use sutazai_agents::Registry;
use sutazai_api::{ApiConfig, AppState};
use sutazai_llm::{OllamaProvider, OpenAiProvider, Provider, ProviderOptions};
use sutazai_orchestrator::{AgentBinding, LocalAgents, Orchestrator, OrchestratorConfig};
use sutazai_store::Journal;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::settings::{ProviderKind, ProviderSettings, Settings};

/// Name of the lock file that keeps two servers off one data directory.
pub const LOCK_FILE_NAME: &str = "sutazai.lock";

/// How long a refresh token lives (at least as long as an access token).
const REFRESH_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often the server picks up API keys and revocations the CLI wrote.
const AUTH_SYNC_EVERY: Duration = Duration::from_secs(1);

/// Runs the server until `shutdown` resolves, then stops the orchestrator (running tasks
/// stay journaled and resume at the next start) and flushes the journal.
///
/// `ready` receives the bound address once the API accepts requests; with
/// `ORCHESTRATION_API_PORT=0`-style ephemeral binds (tests, embedding) it is how the
/// caller learns the port.
pub async fn run_server(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
    ready: Option<oneshot::Sender<SocketAddr>>,
) -> anyhow::Result<()> {
    check_auth_settings(&settings)?;
    let (host, port) = (settings.host.clone(), settings.port);
    let listener = tokio::task::spawn_blocking(move || bind(&host, port))
        .await
        .context("binding the API listener")??;
    serve_bound(settings, listener, shutdown, ready, Embedding::default()).await
}

/// What the desktop shell plugs into the server it runs in its own process.
#[derive(Default)]
pub struct Embedding {
    /// Alert notifiers besides the configured email and Slack ones (native notifications).
    pub notifiers: Vec<std::sync::Arc<dyn sutazai_monitor::Notifier>>,
    /// Called once, when the core is up and before the API serves, with its parts (the
    /// shell watches their events and acts on them from the tray).
    pub on_ready: Option<Box<dyn FnOnce(Core) + Send>>,
}

impl std::fmt::Debug for Embedding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedding")
            .field("notifiers", &self.notifiers.len())
            .field("on_ready", &self.on_ready.is_some())
            .finish()
    }
}

/// The running core's parts, handed to the desktop shell.
#[derive(Debug, Clone)]
pub struct Core {
    /// The orchestrator (tasks, agents, events).
    pub orchestrator: Orchestrator,
    /// The Docker services.
    pub infra: sutazai_infra::Infra,
    /// Host samples and alerts.
    pub monitor: sutazai_monitor::Monitor,
}

/// A server running as a task on the caller's runtime (the desktop shell's).
#[derive(Debug)]
pub struct BackgroundServer {
    /// Where the API listens; known as soon as [`spawn_background`] returns.
    addr: SocketAddr,
    /// Dashboard and client URL (wildcard bind addresses mapped to loopback).
    url: String,
    /// Fires the server's shutdown; `None` once used.
    stop: Option<oneshot::Sender<()>>,
    /// The server task; its error (journal unusable, ...) surfaces through [`stop`].
    ///
    /// [`stop`]: BackgroundServer::stop
    task: JoinHandle<anyhow::Result<()>>,
}

impl BackgroundServer {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL the dashboard and clients use (`http://127.0.0.1:8000`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether the server task has ended (stopped, or failed after binding).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Asks the server to shut down without waiting; harmless to call twice.
    pub fn request_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Shuts the server down and waits until the orchestrator and journal are closed;
    /// returns the server's own error if it had failed.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.request_stop();
        (&mut self.task).await.context("the server task panicked")?
    }
}

/// Starts the server on the current tokio runtime and returns once it is bound.
///
/// Binding happens here, synchronously, so the shell gets the address (or the "port in
/// use" error) immediately; the journal opens and tasks resume inside the spawned task.
/// Must be called from within a tokio runtime.
pub fn spawn_background(
    settings: Settings,
    embedding: Embedding,
) -> anyhow::Result<BackgroundServer> {
    check_auth_settings(&settings)?;
    let runtime = tokio::runtime::Handle::try_current()
        .context("spawn_background must be called inside a tokio runtime")?;
    let listener = bind(&settings.host, settings.port)?;
    let addr = listener
        .local_addr()
        .context("reading the API listener's address")?;
    let url = client_url(addr, settings.tls.is_some());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = runtime.spawn(serve_bound(
        settings,
        listener,
        async move {
            // A dropped sender (the handle was dropped) also stops the server.
            let _ = stopped.await;
        },
        None,
        embedding,
    ));
    Ok(BackgroundServer {
        addr,
        url,
        stop: Some(stop),
        task,
    })
}

/// Resolves on Ctrl-C, or SIGTERM on Unix (what `systemctl stop` and `docker stop` send).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown requested");
}

/// Refuses a weak `JWT_SECRET_KEY` before anything starts.
fn check_auth_settings(settings: &Settings) -> anyhow::Result<()> {
    if settings.auth_required()
        && let Some(secret) = &settings.jwt_secret_key
        && secret.expose().len() < sutazai_auth::Tokens::MIN_SECRET_BYTES
    {
        bail!(sutazai_auth::weak_secret(secret.expose().len()));
    }
    Ok(())
}

/// A session for a local client the app itself signs in (the desktop window): admin,
/// signed with the secret the server uses; `None` when authentication is off. Blocking.
pub fn local_session(
    settings: &Settings,
    subject: &str,
) -> anyhow::Result<Option<sutazai_auth::TokenPair>> {
    if !settings.auth_required() {
        return Ok(None);
    }
    check_auth_settings(settings)?;
    Ok(Some(tokens(settings)?.issue(
        subject,
        sutazai_auth::Role::Admin,
        None,
    )?))
}

/// The token signer of `settings`: the configured secret or the data directory's. Blocking.
fn tokens(settings: &Settings) -> anyhow::Result<sutazai_auth::Tokens> {
    let secret = sutazai_auth::secret::load_or_create(
        settings.jwt_secret_key.as_ref().map(|s| s.expose()),
        &settings.data_dir,
    )
    .context("loading the JWT secret")?;
    sutazai_auth::Tokens::new(
        &secret,
        settings.session_timeout,
        REFRESH_LIFETIME.max(settings.session_timeout),
    )
    .context("setting up tokens")
}

/// The credential store and audit log in the data directory, and — when `ENABLE_AUTH` is
/// true or the API listens beyond loopback — the token signer. Blocking.
pub fn open_security(settings: &Settings) -> anyhow::Result<sutazai_api::auth::Security> {
    let path = settings.auth_path();
    let credentials = sutazai_auth::Credentials::open(&path)
        .with_context(|| format!("opening the credential store {}", path.display()))?;
    let audit = sutazai_auth::AuditLog::open(&path)
        .with_context(|| format!("opening the audit log {}", path.display()))?;
    let auth = if settings.auth_required() {
        let tokens = tokens(settings)?;
        if !settings.enable_auth {
            tracing::warn!(
                host = %settings.host,
                "the API listens beyond loopback: authentication is on although ENABLE_AUTH is not true"
            );
        }
        let active = credentials
            .list_keys()
            .map(|keys| keys.iter().filter(|k| k.revoked_at.is_none()).count())
            .unwrap_or(0);
        if active == 0 {
            tracing::warn!(
                "authentication is on and no API key exists yet: create one with \
                 `sutazai auth keys create --name admin --role admin`"
            );
        }
        tracing::info!(
            session_timeout_s = settings.session_timeout.as_secs(),
            api_keys = active,
            "authentication on"
        );
        Some(sutazai_auth::Auth::new(tokens, credentials.clone()))
    } else {
        None
    };
    let rate_limit = settings.effective_rate_limit().map(|per_second| {
        tracing::info!(per_second, "rate limit on (SUTAZAI_RATE_LIMIT)");
        Arc::new(sutazai_api::auth::RateLimit::new(per_second))
    });
    Ok(sutazai_api::auth::Security {
        auth,
        credentials,
        audit,
        rate_limit,
    })
}

/// Binds the API socket, naming the address and the settings to change when it fails.
fn bind(host: &str, port: u16) -> anyhow::Result<StdTcpListener> {
    let listener = StdTcpListener::bind((host, port)).with_context(|| {
        format!(
            "cannot listen on {host}:{port} (ORCHESTRATION_API_HOST / ORCHESTRATION_API_PORT); \
             is another server already using this port?"
        )
    })?;
    listener
        .set_nonblocking(true)
        .context("making the API listener non-blocking")?;
    Ok(listener)
}

/// The URL a local client uses for a bound address (`https` when served over TLS).
fn client_url(addr: SocketAddr, tls: bool) -> String {
    let ip = addr.ip();
    let ip = if ip.is_unspecified() {
        match ip {
            std::net::IpAddr::V4(_) => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            std::net::IpAddr::V6(_) => std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        }
    } else {
        ip
    };
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{}", SocketAddr::new(ip, addr.port()))
}

/// Everything after binding: lock the data directory, open the journal, load agents,
/// build providers, start the orchestrator, serve until `shutdown`, stop in order.
async fn serve_bound(
    settings: Settings,
    listener: StdTcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    ready: Option<oneshot::Sender<SocketAddr>>,
    embedding: Embedding,
) -> anyhow::Result<()> {
    let listener =
        tokio::net::TcpListener::from_std(listener).context("registering the API listener")?;
    let addr = listener
        .local_addr()
        .context("reading the API listener's address")?;
    let tls = match &settings.tls {
        Some(files) => {
            let files = files.clone();
            let config = tokio::task::spawn_blocking(move || {
                sutazai_api::tls::server_config(&files.cert, &files.key)
            })
            .await
            .context("loading the TLS certificate")?
            .context("SUTAZAI_TLS_CERT / SUTAZAI_TLS_KEY")?;
            Some(config)
        }
        None => {
            if !crate::settings::is_loopback_host(&settings.host) {
                tracing::warn!(
                    "the API listens beyond loopback without TLS: credentials cross the network \
                     in clear text (set SUTAZAI_TLS_CERT and SUTAZAI_TLS_KEY)"
                );
            }
            None
        }
    };

    let data_dir = settings.data_dir.clone();
    let journal_path = settings.journal_path();
    let agents_dir = settings.agents_dir.clone();
    let security_settings = settings.clone();
    let (lock, journal, registry, security) = tokio::task::spawn_blocking(move || {
        let lock = lock_data_dir(&data_dir)?;
        let security = open_security(&security_settings)?;
        let journal = Journal::open(&journal_path)
            .with_context(|| format!("opening the journal {}", journal_path.display()))?;
        let registry = load_registry(&agents_dir);
        anyhow::Ok((lock, journal, registry, security))
    })
    .await
    .context("preparing the data directory")??;

    for id in settings.agents.keys() {
        if registry.get(id).is_none() {
            tracing::warn!(
                agent = %id,
                "the config file binds agent `{id}`, but no agent has that id; the binding is ignored"
            );
        }
    }
    let providers = match build_providers(&settings) {
        Ok(providers) => providers,
        Err(e) => {
            journal.close().await;
            return Err(e);
        }
    };
    // Switchable, so the dashboard's settings can move an endpoint while the app runs.
    let (switchable_providers, mut providers) = crate::settings_admin::switchable(providers);
    with_fallbacks(&settings, &switchable_providers, &mut providers);
    let channels = match crate::observe::alert_channels(&settings)
        .and_then(|c| sutazai_monitor::LiveChannels::new(&c).context("setting up alert delivery"))
    {
        Ok(channels) => channels,
        Err(e) => {
            journal.close().await;
            return Err(e);
        }
    };
    if settings.redis_url.is_none() && settings.local_agents.trim() != "all" {
        journal.close().await;
        bail!(
            "SUTAZAI_LOCAL_AGENTS={} leaves agents to workers, but without REDIS_URL there \
             is no bus a `sutazai worker` could join: set REDIS_URL, or unset \
             SUTAZAI_LOCAL_AGENTS",
            settings.local_agents
        );
    }
    let bus = match crate::node::connect_bus(&settings).await {
        Ok(bus) => bus,
        Err(e) => {
            journal.close().await;
            return Err(e);
        }
    };
    let orchestrator = match Orchestrator::start(
        orchestrator_config(&settings),
        registry,
        providers,
        journal.clone(),
        bus.clone(),
    )
    .await
    {
        Ok(orchestrator) => orchestrator,
        Err(e) => {
            bus.shutdown();
            journal.close().await;
            return Err(e).context("starting the orchestrator");
        }
    };
    crate::node::announce(&bus, "serve", orchestrator.executor().cloned());

    let infra_stop = CancellationToken::new();
    let infra = match crate::infra::start(&settings, Some(bus.clone()), infra_stop.clone()).await {
        Ok(infra) => infra,
        Err(e) => {
            orchestrator.shutdown().await;
            bus.shutdown();
            journal.close().await;
            return Err(e);
        }
    };
    let docker = infra.availability();
    if docker.available {
        tracing::info!(host = %docker.docker_host, version = ?docker.version, "Docker available: infrastructure management on");
    } else {
        tracing::warn!(reason = ?docker.reason, hint = ?docker.hint, "Docker unavailable: infrastructure routes answer 503 until it comes back");
    }
    let monitor = match crate::observe::start_monitor(
        &settings,
        orchestrator.clone(),
        Some(infra.clone()),
        &channels,
        embedding.notifiers,
        infra_stop.clone(),
    )
    .await
    {
        Ok(monitor) => monitor,
        Err(e) => {
            infra_stop.cancel();
            orchestrator.shutdown().await;
            bus.shutdown();
            journal.close().await;
            return Err(e);
        }
    };
    if let Some(on_ready) = embedding.on_ready {
        on_ready(Core {
            orchestrator: orchestrator.clone(),
            infra: infra.clone(),
            monitor: monitor.clone(),
        });
    }
    let admin = Arc::new(crate::settings_admin::SettingsAdmin::new(
        settings.clone(),
        switchable_providers,
        channels,
    ));
    let doctor_admin = Arc::clone(&admin);
    let view_admin = Arc::clone(&admin);
    let edit_admin = Arc::clone(&admin);
    let setup = sutazai_api::setup::Setup {
        doctor: std::sync::Arc::new(move || {
            // The settings as the dashboard last saved them, not as the app started.
            let settings = doctor_admin.current();
            Box::pin(async move {
                serde_json::to_value(crate::doctor::run_for_server(&settings).await)
                    .unwrap_or_default()
            })
        }),
        view_settings: Arc::new(move || {
            serde_json::to_value(view_admin.view()).unwrap_or_default()
        }),
        edit_settings: Arc::new(move |body| {
            let admin = Arc::clone(&edit_admin);
            Box::pin(async move {
                let edit = crate::settings_admin::SettingsEdit {
                    provider_urls: body.providers,
                    smtp_url: body.alert_smtp_url,
                    email_from: body.alert_email_from,
                    email_to: body.alert_email_to,
                    slack_webhook: body.alert_slack_webhook,
                };
                let applied = tokio::task::spawn_blocking(move || admin.apply(&edit)).await;
                match applied {
                    Ok(Ok(view)) => Ok(serde_json::to_value(view).unwrap_or_default()),
                    Ok(Err(e)) => Err(sutazai_api::setup::SetupError {
                        code: e.code(),
                        message: e.to_string(),
                        status: e.status(),
                    }),
                    Err(e) => Err(sutazai_api::setup::SetupError {
                        code: "settings_io_error",
                        message: format!("saving the settings: {e}"),
                        status: 500,
                    }),
                }
            })
        }),
        pull_model: {
            let admin = Arc::clone(&admin);
            crate::models::pull_for_api(move || admin.current(), infra_stop.clone())
        },
        default_model: settings.model.clone(),
    };
    let state = AppState::new(orchestrator.clone(), api_config(&settings))
        .with_infra(infra)
        .with_monitor(monitor)
        .with_setup(setup)
        .with_security(security.clone());
    // API keys and revocations the CLI writes reach the running server within a second.
    let auth_sync = tokio::spawn(
        security
            .credentials
            .clone()
            .watch(AUTH_SYNC_EVERY, infra_stop.clone().cancelled_owned()),
    );
    if let Some(limit) = security.rate_limit.clone() {
        let stop = infra_stop.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = every.tick() => limit.forget_idle(),
                }
            }
        });
    }
    let url = client_url(addr, tls.is_some());
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!("listening on {scheme}://{addr} (dashboard: {url}/)");
    if settings.ui_dir.is_none() {
        tracing::warn!(
            "no dashboard build found (set SUTAZAI_UI_DIR to a built ui/dist); serving the API only"
        );
    }
    // Best effort: a server must not stop because nobody reads its stdout.
    let _ = crate::output::emit_line(&format!("SutazAI dashboard: {url}/"));
    if let Some(ready) = ready {
        let _ = ready.send(addr);
    }
    // The infrastructure's long operations (followed logs, pulls, deploy-all) end with the
    // shutdown signal, so that the server's graceful stop does not wait on them.
    let stop_infra = infra_stop.clone();
    let shutdown = async move {
        shutdown.await;
        stop_infra.cancel();
    };
    let served = match tls {
        Some(config) => match listener.into_std() {
            Ok(listener) => sutazai_api::serve_tls(listener, state, config, shutdown).await,
            Err(e) => Err(e),
        },
        None => sutazai_api::serve(listener, state, shutdown).await,
    };
    infra_stop.cancel();
    let _ = auth_sync.await;
    let audit = security.audit.clone();
    let _ = tokio::task::spawn_blocking(move || audit.close()).await;
    tracing::info!("stopping the orchestrator; unfinished tasks resume at the next start");
    orchestrator.shutdown().await;
    bus.shutdown();
    drop(lock);
    served.with_context(|| format!("serving the API on {addr}"))
}

/// Loads the built-in and user agents, logging each rejected file (the others still load).
fn load_registry(agents_dir: &Path) -> Registry {
    let (registry, errors) = Registry::load(Some(agents_dir));
    for error in &errors {
        tracing::warn!(
            file = %error.path.display(),
            field = error.field.as_deref().unwrap_or("-"),
            "skipping agent file: {error}"
        );
    }
    let user = registry
        .iter()
        .filter(|spec| {
            matches!(
                registry.source(&spec.id),
                Some(sutazai_agents::AgentSource::User(_))
            )
        })
        .count();
    tracing::info!(
        agents = registry.len(),
        user_agents = user,
        dir = %agents_dir.display(),
        "agent registry loaded"
    );
    registry
}

/// Holds an exclusive lock on `<data dir>/sutazai.lock` for the server's lifetime, so two
/// servers never resume (and run twice) the same journaled tasks. The OS drops the lock
/// when the process dies, `kill -9` included.
fn lock_data_dir(data_dir: &Path) -> anyhow::Result<File> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    let path = data_dir.join(LOCK_FILE_NAME);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening the lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let by = if holder.is_empty() {
                String::new()
            } else {
                format!(" (pid {holder})")
            };
            bail!(
                "the data directory {} is in use by another SutazAI server{by}; stop it or set \
                 SUTAZAI_DATA_DIR to another directory",
                data_dir.display()
            );
        }
        Err(TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    }
    // The pid is only a hint for the message above; failing to write it is harmless.
    let _ = file
        .set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)).map(|_| ()))
        .and_then(|()| write!(file, "{}", std::process::id()));
    Ok(file)
}

/// The orchestrator's settings.
pub fn orchestrator_config(settings: &Settings) -> OrchestratorConfig {
    OrchestratorConfig {
        max_concurrent_tasks: settings.max_concurrent_tasks,
        max_pending_tasks: settings.max_pending_tasks,
        default_provider: settings.default_provider.clone(),
        default_model: settings.model.clone(),
        agent_bindings: settings
            .agents
            .iter()
            .map(|(id, b)| {
                (
                    id.clone(),
                    AgentBinding {
                        provider: b.provider.clone(),
                        model: b.model.clone(),
                    },
                )
            })
            .collect(),
        max_tokens: Some(settings.max_tokens),
        step_timeout: settings.step_timeout,
        outage_wait: settings.outage_wait,
        sensitive_fields: settings.mask_fields.clone(),
        max_attempts: settings.max_attempts,
        swarm_rounds: settings.swarm_rounds,
        local_agents: LocalAgents::parse(&settings.local_agents),
        user_agents_dir: Some(settings.agents_dir.clone()),
        ..OrchestratorConfig::default()
    }
}

/// The API's settings.
pub fn api_config(settings: &Settings) -> ApiConfig {
    ApiConfig {
        heartbeat_interval: settings.heartbeat_interval,
        ui_dir: settings.ui_dir.clone(),
        sensitive_fields: settings.mask_fields.clone(),
    }
}

/// One client per configured provider, with the configured time limits.
pub fn build_providers(settings: &Settings) -> anyhow::Result<HashMap<String, Arc<dyn Provider>>> {
    settings
        .providers
        .iter()
        .map(|(name, p)| Ok((name.clone(), build_provider(name, p, provider_options(p))?)))
        .collect()
}

/// Puts a breaker with fallback in front of each provider that names a `fallback`. Both
/// ends are the switchable clients, so settings edits still reach them and fallbacks do
/// not chain.
fn with_fallbacks(
    settings: &Settings,
    switchable: &HashMap<String, Arc<sutazai_llm::Switchable>>,
    providers: &mut HashMap<String, Arc<dyn Provider>>,
) {
    for (name, p) in &settings.providers {
        let Some(fallback) = &p.fallback else {
            continue;
        };
        let (Some(primary), Some(backup)) = (switchable.get(name), switchable.get(fallback)) else {
            continue;
        };
        tracing::info!(provider = %name, %fallback, "provider fallback on");
        providers.insert(
            name.clone(),
            Arc::new(sutazai_llm::Failover::new(
                Arc::clone(primary) as Arc<dyn Provider>,
                Arc::clone(backup) as Arc<dyn Provider>,
                sutazai_llm::FailoverConfig::default(),
            )),
        );
    }
}

/// The time limits of a provider: the defaults, with its configured request timeout.
pub fn provider_options(p: &ProviderSettings) -> ProviderOptions {
    let mut options = ProviderOptions::default();
    if let Some(timeout) = p.timeout {
        options.request_timeout = timeout;
    }
    options
}

/// A client for one provider.
pub fn build_provider(
    name: &str,
    p: &ProviderSettings,
    options: ProviderOptions,
) -> anyhow::Result<Arc<dyn Provider>> {
    let provider: Arc<dyn Provider> = match p.kind {
        ProviderKind::Ollama => Arc::new(
            OllamaProvider::new(name, &p.base_url, options)
                .with_context(|| format!("configuring provider `{name}`"))?,
        ),
        ProviderKind::Openai => Arc::new(
            OpenAiProvider::new(
                name,
                &p.base_url,
                p.api_key.as_ref().map(|k| k.expose().to_owned()),
                options,
            )
            .with_context(|| format!("configuring provider `{name}`"))?,
        ),
    };
    Ok(provider)
}
