//! Settings: what `serve`, the client commands and `doctor` run with, from built-in
//! defaults, then a TOML config file, then the environment (each overriding the one
//! before), merged with `figment` and validated up front.
//!
//! # Sources
//! - **Environment.** The system description's variables keep their names, unprefixed
//!   (`ORCHESTRATION_API_PORT`, `OLLAMA_API_URL`, ...) because existing deployments and
//!   docs already set them; the settings this implementation adds are prefixed
//!   `SUTAZAI_` (`SUTAZAI_MODEL`, `SUTAZAI_DATA_DIR`, ...). An empty variable counts as
//!   unset.
//! - **Config file.** `--config PATH`, else `$SUTAZAI_CONFIG`, else
//!   `<config dir>/sutazai.toml` when it exists. Keys are the variable names in lowercase
//!   snake case, without the `SUTAZAI_` prefix (`orchestration_api_port`, `model`), plus
//!   `default_provider` and two tables only a file can express:
//!
//! ```toml
//! model = "qwen2.5:7b"
//! data_dir = "data"                  # relative paths are relative to this file
//! default_provider = "ollama"
//!
//! [providers.ollama]                 # without this table: kind ollama at OLLAMA_API_URL
//! kind = "ollama"
//! base_url = "http://gpu-box:11434"
//!
//! [providers.vllm]
//! kind = "openai"                    # any OpenAI-compatible server
//! base_url = "http://127.0.0.1:8001/v1"
//! api_key_env = "VLLM_API_KEY"       # the key itself stays out of the file
//! timeout_secs = 900
//! fallback = "ollama"                # answers (same model family) when this one fails
//!
//! [agents.senior-ai-engineer]        # per-agent provider/model binding
//! provider = "vllm"
//! model = "Qwen/Qwen2.5-Coder-32B-Instruct"
//! ```
//!
//! # Failing fast
//! Every value is parsed and checked when settings load, before anything starts, and a bad
//! one is reported with where it came from and what it was, e.g.
//! `ORCHESTRATION_API_PORT=abc: invalid digit found in string`. A file's unknown key is an
//! error too, so a misspelt setting is never silently ignored.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use figment::providers::{Format, Toml};
use figment::value::{Dict, Map, Num, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};
use reqwest::Url;
use serde::Deserialize;

/// Name of the default provider: the local Ollama most users run.
pub const DEFAULT_PROVIDER: &str = "ollama";

/// File name looked up in the platform config directory when no config file is named.
pub const CONFIG_FILE_NAME: &str = "sutazai.toml";

/// Name of the journal file inside the data directory.
pub const JOURNAL_FILE_NAME: &str = "journal.sqlite3";

/// The figment metadata name of [`EnvProvider`]; how a value is recognised as coming from
/// the environment when an error has to say where it came from.
const ENV_PROVIDER_NAME: &str = "environment variable";

/// One scalar setting: its config-file key and the environment variable that overrides it.
#[derive(Debug, Clone, Copy)]
struct Key {
    /// Key in the config file, and the key it is merged under in figment.
    key: &'static str,
    /// The environment variable.
    env: &'static str,
}

impl Key {
    const fn new(key: &'static str, env: &'static str) -> Key {
        Key { key, env }
    }
}

/// Every scalar setting. The single table both sources are mapped from, so the file key and
/// the variable of a setting can never drift apart.
const KEYS: &[Key] = &[
    Key::new("orchestration_api_host", "ORCHESTRATION_API_HOST"),
    Key::new("orchestration_api_port", "ORCHESTRATION_API_PORT"),
    Key::new("redis_url", "REDIS_URL"),
    Key::new("log_level", "LOG_LEVEL"),
    Key::new("enable_auth", "ENABLE_AUTH"),
    Key::new("jwt_secret_key", "JWT_SECRET_KEY"),
    Key::new("session_timeout", "SESSION_TIMEOUT"),
    Key::new("max_concurrent_tasks", "MAX_CONCURRENT_TASKS"),
    Key::new("max_pending_tasks", "SUTAZAI_MAX_PENDING_TASKS"),
    Key::new("rate_limit", "SUTAZAI_RATE_LIMIT"),
    Key::new("mask_fields", "SUTAZAI_MASK_FIELDS"),
    Key::new("tls_cert", "SUTAZAI_TLS_CERT"),
    Key::new("tls_key", "SUTAZAI_TLS_KEY"),
    Key::new(
        "websocket_heartbeat_interval",
        "WEBSOCKET_HEARTBEAT_INTERVAL",
    ),
    Key::new("message_retention_hours", "MESSAGE_RETENTION_HOURS"),
    Key::new("metrics_retention_days", "METRICS_RETENTION_DAYS"),
    Key::new("docker_host", "DOCKER_HOST"),
    Key::new("ollama_api_url", "OLLAMA_API_URL"),
    Key::new("enable_auto_scaling", "ENABLE_AUTO_SCALING"),
    Key::new("model", "SUTAZAI_MODEL"),
    Key::new("data_dir", "SUTAZAI_DATA_DIR"),
    Key::new("agents_dir", "SUTAZAI_AGENTS_DIR"),
    Key::new("max_tokens", "SUTAZAI_MAX_TOKENS"),
    Key::new("step_timeout", "SUTAZAI_STEP_TIMEOUT"),
    Key::new("max_attempts", "SUTAZAI_MAX_ATTEMPTS"),
    Key::new("outage_wait", "SUTAZAI_OUTAGE_WAIT"),
    Key::new("swarm_rounds", "SUTAZAI_SWARM_ROUNDS"),
    Key::new("ui_dir", "SUTAZAI_UI_DIR"),
    Key::new("bus_key", "SUTAZAI_BUS_KEY"),
    Key::new("bus_encrypt", "SUTAZAI_BUS_ENCRYPT"),
    Key::new("bus_compress_above", "SUTAZAI_BUS_COMPRESS_ABOVE"),
    Key::new("bus_rate_limit", "SUTAZAI_BUS_RATE_LIMIT"),
    Key::new("bus_rate_burst", "SUTAZAI_BUS_RATE_BURST"),
    Key::new("bus_max_attempts", "SUTAZAI_BUS_MAX_ATTEMPTS"),
    Key::new("bus_visibility_timeout", "SUTAZAI_BUS_VISIBILITY_TIMEOUT"),
    Key::new("local_agents", "SUTAZAI_LOCAL_AGENTS"),
    Key::new("bus_namespace", "SUTAZAI_BUS_NAMESPACE"),
    Key::new("services_dir", "SUTAZAI_SERVICES_DIR"),
    Key::new("infra_project", "SUTAZAI_INFRA_PROJECT"),
    Key::new("alert_smtp_url", "SUTAZAI_ALERT_SMTP_URL"),
    Key::new("alert_email_from", "SUTAZAI_ALERT_EMAIL_FROM"),
    Key::new("alert_email_to", "SUTAZAI_ALERT_EMAIL_TO"),
    Key::new("alert_slack_webhook", "SUTAZAI_ALERT_SLACK_WEBHOOK"),
];

/// Top-level file keys that have no environment variable.
const FILE_ONLY_KEYS: &[&str] = &["default_provider", "providers", "agents"];

/// The variable naming the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "SUTAZAI_CONFIG";

/// Why settings could not be loaded. Every variant names what the user has to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// A value that does not parse or is out of range.
    #[error("{origin}{value}: {reason}")]
    Invalid {
        /// The variable or file key it came from.
        origin: Origin,
        /// The value as given (secrets are never put here).
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The named config file does not exist.
    #[error("config file {} (from {named_by}) does not exist", .path.display())]
    ConfigNotFound {
        /// The path as given.
        path: PathBuf,
        /// `--config` or `SUTAZAI_CONFIG`.
        named_by: String,
    },
    /// The config file exists but could not be read or parsed, or one of its tables is
    /// malformed.
    #[error("config file {}: {message}", .path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong, with the line or key where the parser knows it.
        message: String,
    },
    /// The config file has a top-level key no setting uses (most likely a typo).
    #[error("config file {}: unknown key `{key}` (known keys: {known})", .path.display())]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The unknown key.
        key: String,
        /// Every accepted key, to spot the typo.
        known: String,
    },
    /// A variable the settings read holds bytes that are not UTF-8.
    #[error("environment variable {var} is not valid UTF-8")]
    NotUnicode {
        /// The variable.
        var: String,
    },
    /// No platform directory could be determined (no home directory) and the setting
    /// that would replace it is not set.
    #[error("cannot determine the default {what} (no home directory); set {var}")]
    NoDefaultDir {
        /// Which directory.
        what: &'static str,
        /// The variable to set instead.
        var: &'static str,
    },
}

/// Where a value came from, for error messages that point at the thing to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// An environment variable; displays as `NAME=` so the message reads `NAME=value: ...`.
    Env(String),
    /// A key of the config file.
    File {
        /// The file.
        path: PathBuf,
        /// The dotted key path (`providers.vllm.base_url`).
        key: String,
    },
    /// A built-in default (only reachable if a default itself is unusable, e.g. a default
    /// directory that cannot be represented).
    Default(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Env(var) => write!(f, "{var}="),
            Origin::File { path, key } => write!(f, "{}: {key} = ", path.display()),
            Origin::Default(key) => write!(f, "default {key} = "),
        }
    }
}

/// A secret string (JWT key, API key) whose `Debug` does not print it, so settings can be
/// logged and shown in panics without leaking credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A snapshot of the environment variables settings may read.
///
/// Loading reads variables only through this, so tests build one from explicit pairs and
/// never mutate the process environment (which parallel tests share).
#[derive(Clone, Default)]
pub struct EnvVars {
    /// Variables with a non-empty UTF-8 value.
    vars: BTreeMap<String, String>,
    /// Variables whose value is not UTF-8; an error only if a setting needs one.
    not_unicode: Vec<String>,
}

impl fmt::Debug for EnvVars {
    // Values may be secrets (JWT_SECRET_KEY, API keys): only names are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvVars")
            .field("names", &self.vars.keys().collect::<Vec<_>>())
            .field("not_unicode", &self.not_unicode)
            .finish()
    }
}

impl EnvVars {
    /// The current process environment.
    pub fn from_process() -> EnvVars {
        let mut env = EnvVars::default();
        for (name, value) in std::env::vars_os() {
            let Some(name) = name.to_str() else { continue };
            match value.into_string() {
                Ok(value) => env.insert(name, value),
                Err(_) => env.not_unicode.push(name.to_owned()),
            }
        }
        env
    }

    /// An environment made of exactly these pairs (for tests and embedding).
    pub fn from_pairs<I, K, V>(pairs: I) -> EnvVars
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut env = EnvVars::default();
        for (name, value) in pairs {
            env.insert(name.as_ref(), value.as_ref().to_owned());
        }
        env
    }

    fn insert(&mut self, name: &str, value: String) {
        // An empty variable is how shells and compose files "unset" a value.
        if value.trim().is_empty() {
            self.vars.remove(name);
        } else {
            self.vars.insert(name.to_owned(), value);
        }
    }

    /// The variable's value; `Ok(None)` when unset or empty.
    pub fn get(&self, name: &str) -> Result<Option<&str>, SettingsError> {
        if self.not_unicode.iter().any(|n| n == name) {
            return Err(SettingsError::NotUnicode {
                var: name.to_owned(),
            });
        }
        Ok(self.vars.get(name).map(String::as_str))
    }
}

/// Where settings look when nothing names a place: the platform's config and data
/// directories and the candidate locations of the built dashboard.
///
/// Separate from loading so tests can point every default at a temporary directory.
#[derive(Debug, Clone, Default)]
pub struct Locations {
    /// `~/.config/sutazai` on Linux; holds `sutazai.toml` and `agents/`.
    pub config_dir: Option<PathBuf>,
    /// `~/.local/share/sutazai` on Linux; holds the journal.
    pub data_dir: Option<PathBuf>,
    /// Where to look for `ui/dist` when `SUTAZAI_UI_DIR` is unset, in order.
    pub ui_candidates: Vec<PathBuf>,
}

impl Locations {
    /// The platform directories of `ai.sutazai.sutazai`, and `ui/dist` under the current
    /// directory and beside the executable.
    pub fn detect() -> Locations {
        let dirs = directories::ProjectDirs::from("ai", "sutazai", "sutazai");
        let mut ui_candidates = Vec::new();
        if let Ok(cwd) = std::env::current_dir() {
            ui_candidates.push(cwd.join("ui").join("dist"));
        }
        if let Some(exe_dir) = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf))
        {
            ui_candidates.push(exe_dir.join("ui").join("dist"));
        }
        Locations {
            config_dir: dirs.as_ref().map(|d| d.config_dir().to_path_buf()),
            data_dir: dirs.as_ref().map(|d| d.data_dir().to_path_buf()),
            ui_candidates,
        }
    }
}

/// The wire protocol of a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ProviderKind {
    /// Ollama's native API.
    Ollama,
    /// Any OpenAI-compatible `/v1/chat/completions` server.
    Openai,
}

impl ProviderKind {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Ollama => "ollama",
            ProviderKind::Openai => "openai",
        }
    }
}

/// One configured LLM endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSettings {
    /// Which protocol it speaks.
    pub kind: ProviderKind,
    /// Its root URL (checked to be absolute `http`/`https`).
    pub base_url: String,
    /// The API key, read from the variable named by `api_key_env` at load time so a
    /// missing key fails at start-up, not on the first task.
    pub api_key: Option<Secret>,
    /// The variable the key came from, for messages.
    pub api_key_env: Option<String>,
    /// Whole-request limit (`timeout_secs`); `None` keeps the provider's default.
    pub timeout: Option<Duration>,
    /// Another provider that answers, with a model of the same family, when this one fails
    /// (unreachable, timing out, 5xx) or its breaker is open (`fallback`).
    pub fallback: Option<String>,
}

/// A per-agent override of provider and model (`[agents.<id>]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentBindingSettings {
    /// Provider name; `None` = the default provider.
    pub provider: Option<String>,
    /// Model name; `None` = the agent's own or the default model.
    pub model: Option<String>,
}

/// The PEM files of the API's TLS (`SUTAZAI_TLS_CERT`, `SUTAZAI_TLS_KEY`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Everything the process runs with. Built by [`Settings::load`]; every field is already
/// validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The config file that was read, if any (shown by `doctor`).
    pub config_file: Option<PathBuf>,
    /// Address the API binds (`ORCHESTRATION_API_HOST`).
    pub host: String,
    /// Port the API binds (`ORCHESTRATION_API_PORT`, 0–65535; 0 lets the system pick a free
    /// port at start, which the log, `serve`'s dashboard line and the desktop window use —
    /// CLI commands then need `SUTAZAI_API_URL`).
    pub port: u16,
    /// `REDIS_URL`: when set, the message bus runs on Redis Streams there (shared with
    /// `sutazai worker` processes); otherwise it is in-process.
    pub redis_url: Option<String>,
    /// `SUTAZAI_BUS_KEY`: base64 of the 32-byte bus master key (signing and encryption);
    /// unset: `<data dir>/bus.key`, created with mode 0600 on first use.
    pub bus_key: Option<Secret>,
    /// `SUTAZAI_BUS_ENCRYPT` (default true): AES-256-GCM on message payloads crossing Redis.
    pub bus_encrypt: bool,
    /// `SUTAZAI_BUS_COMPRESS_ABOVE` (bytes, default 1024): zstd above this body size.
    pub bus_compress_above: usize,
    /// `SUTAZAI_BUS_RATE_LIMIT` (messages/s per sender through the API, default 100; 0 = off).
    pub bus_rate_limit: f64,
    /// `SUTAZAI_BUS_RATE_BURST` (≥ 1, default 200).
    pub bus_rate_burst: u32,
    /// `SUTAZAI_BUS_MAX_ATTEMPTS` (≥ 1, default 5): deliveries before a message is dead-lettered.
    pub bus_max_attempts: u32,
    /// `SUTAZAI_BUS_VISIBILITY_TIMEOUT` (seconds, ≥ 1, default 30): how long a delivered,
    /// unacknowledged message stays with its consumer before another may take it.
    pub bus_visibility_timeout: Duration,
    /// `SUTAZAI_LOCAL_AGENTS`: `all` (default), `none`, or agent ids separated by commas —
    /// the agents `serve` executes itself; the rest need a `sutazai worker`.
    pub local_agents: String,
    /// `SUTAZAI_BUS_NAMESPACE` (default `sutazai`): prefix of every Redis key, so separate
    /// SutazAI installations can share one Redis.
    pub bus_namespace: String,
    /// `LOG_LEVEL`: a level (`info`) or a `RUST_LOG`-style filter (`info,sutazai=debug`).
    pub log_level: String,
    /// `ENABLE_AUTH`: every route but the public ones needs a credential. Always on when
    /// the API listens beyond loopback ([`Settings::auth_required`]).
    pub enable_auth: bool,
    /// `JWT_SECRET_KEY` (≥ 32 bytes): the tokens' HS256 key; unset, one is generated into
    /// the data directory.
    pub jwt_secret_key: Option<Secret>,
    /// `SUTAZAI_TLS_CERT` and `SUTAZAI_TLS_KEY`, set together: the API is served over TLS
    /// with this PEM certificate chain and private key.
    pub tls: Option<TlsFiles>,
    /// `SESSION_TIMEOUT` (seconds).
    pub session_timeout: Duration,
    /// `MAX_CONCURRENT_TASKS` (≥ 1): tasks running at once; more wait in the queue.
    pub max_concurrent_tasks: usize,
    /// `SUTAZAI_MAX_PENDING_TASKS` (≥ 1, default 10,000): unfinished tasks held at once;
    /// more are refused with 503 `queue_full` and `Retry-After` (backpressure).
    pub max_pending_tasks: usize,
    /// `SUTAZAI_RATE_LIMIT`: requests per second per client address (bursts of twice
    /// that); `0` is off. Default: off on loopback binds, 200 beyond loopback.
    pub rate_limit: Option<u32>,
    /// `SUTAZAI_MASK_FIELDS`: payload keys whose values answers show as `***`
    /// (comma-separated; default password, passwd, secret, token, api_key, apikey,
    /// authorization, private_key, credentials, cookie; empty masks nothing).
    pub mask_fields: sutazai_core::mask::SensitiveFields,
    /// `WEBSOCKET_HEARTBEAT_INTERVAL` (seconds, ≥ 1): how often `/ws` gets `system_status`.
    pub heartbeat_interval: Duration,
    /// `MESSAGE_RETENTION_HOURS`.
    pub message_retention: Duration,
    /// `METRICS_RETENTION_DAYS`.
    pub metrics_retention: Duration,
    /// `DOCKER_HOST` (`unix:///var/run/docker.sock`, `tcp://host:2375`); `None` means the
    /// platform default socket.
    pub docker_host: Option<String>,
    /// `OLLAMA_API_URL`: where the default `ollama` provider points unless the file
    /// defines `[providers.ollama]` with its own `base_url`.
    pub ollama_api_url: String,
    /// `ENABLE_AUTO_SCALING`, recorded for the infrastructure layer.
    pub enable_auto_scaling: bool,
    /// `SUTAZAI_MODEL`: the model every agent uses unless bound otherwise, so the whole
    /// registry runs on the one model a user has pulled.
    pub model: String,
    /// `SUTAZAI_DATA_DIR`: holds the journal.
    pub data_dir: PathBuf,
    /// `SUTAZAI_AGENTS_DIR`: user agent files overlaid on the built-ins.
    pub agents_dir: PathBuf,
    /// `SUTAZAI_SERVICES_DIR` (default `<config dir>/services`): user service files
    /// overlaid on the built-in Docker service catalogue (Redis, Ollama, agent workers);
    /// `None` without a config directory.
    pub services_dir: Option<PathBuf>,
    /// `SUTAZAI_INFRA_PROJECT` (default `sutazai`): the label value (and container name
    /// prefix) of the containers this installation manages; separate installations on one
    /// Docker engine use separate projects.
    pub infra_project: String,
    /// `SUTAZAI_ALERT_SMTP_URL` (`smtp://[user:pass@]host[:port]`, `?tls=required` for
    /// STARTTLS, or `smtps://…`): alerts are emailed when set, with
    /// `SUTAZAI_ALERT_EMAIL_FROM` and `SUTAZAI_ALERT_EMAIL_TO` (addresses separated by
    /// commas).
    pub alert_smtp_url: Option<Secret>,
    /// `SUTAZAI_ALERT_EMAIL_FROM`.
    pub alert_email_from: Option<String>,
    /// `SUTAZAI_ALERT_EMAIL_TO`.
    pub alert_email_to: Vec<String>,
    /// `SUTAZAI_ALERT_SLACK_WEBHOOK`: a Slack incoming webhook URL alerts are posted to.
    pub alert_slack_webhook: Option<Secret>,
    /// `SUTAZAI_MAX_TOKENS` (≥ 1): completion-token cap of free-text steps.
    pub max_tokens: u32,
    /// `SUTAZAI_STEP_TIMEOUT` (seconds, ≥ 1): limit of one model call.
    pub step_timeout: Duration,
    /// `SUTAZAI_MAX_ATTEMPTS` (≥ 1): attempts per step.
    pub max_attempts: u32,
    /// `SUTAZAI_OUTAGE_WAIT` (seconds, ≥ 1, default 600): how long a step waits for the LLM
    /// endpoint, the bus or an open breaker to come back before it fails; such failures do
    /// not use up attempts.
    pub outage_wait: Duration,
    /// `SUTAZAI_SWARM_ROUNDS` (≥ 1).
    pub swarm_rounds: u32,
    /// `SUTAZAI_UI_DIR`, or `ui/dist` found beside the current directory or executable:
    /// the dashboard served at `/`. `None`: no dashboard, API only.
    pub ui_dir: Option<PathBuf>,
    /// The provider agents use unless bound otherwise (file key `default_provider`).
    pub default_provider: String,
    /// Every provider by name; always contains [`DEFAULT_PROVIDER`].
    pub providers: BTreeMap<String, ProviderSettings>,
    /// Per-agent bindings by agent id.
    pub agents: BTreeMap<String, AgentBindingSettings>,
}

impl Settings {
    /// Loads settings from the process environment, the config file (`config_flag`, else
    /// `SUTAZAI_CONFIG`, else the platform default if present) and the platform
    /// directories.
    pub fn load(config_flag: Option<&Path>) -> Result<Settings, SettingsError> {
        Settings::load_with(config_flag, &EnvVars::from_process(), &Locations::detect())
    }

    /// Loads settings from explicit sources: what [`Settings::load`] does, without touching
    /// the process environment or the user's directories.
    pub fn load_with(
        config_flag: Option<&Path>,
        env: &EnvVars,
        locations: &Locations,
    ) -> Result<Settings, SettingsError> {
        let config_file = config_file(config_flag, env, locations)?;
        let mut figment = Figment::new();
        if let Some(path) = &config_file {
            check_file(path)?;
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment.merge(EnvProvider::new(env)?);
        Reader {
            figment: &figment,
            env,
            locations,
            config_file: config_file.as_deref(),
        }
        .settings(config_file.clone())
    }

    /// The credential store and audit log (`auth.sqlite3` in the data directory).
    pub fn auth_path(&self) -> PathBuf {
        self.data_dir.join(AUTH_FILE_NAME)
    }

    /// Whether the API authenticates callers: `ENABLE_AUTH=true`, or always when it
    /// listens on anything but loopback (anyone who reaches it could otherwise run agents
    /// and containers on this machine).
    pub fn auth_required(&self) -> bool {
        self.enable_auth || !is_loopback_host(&self.host)
    }

    /// Requests per second per client the API allows; `None`: unlimited.
    pub fn effective_rate_limit(&self) -> Option<std::num::NonZeroU32> {
        let default = if is_loopback_host(&self.host) { 0 } else { 200 };
        std::num::NonZeroU32::new(self.rate_limit.unwrap_or(default))
    }

    /// Where the journal lives.
    pub fn journal_path(&self) -> PathBuf {
        self.data_dir.join(JOURNAL_FILE_NAME)
    }

    /// The URL clients use to reach the API: the bind address, with a wildcard address
    /// (`0.0.0.0`, `::`) mapped to loopback because that is where a local client connects.
    pub fn api_base_url(&self) -> String {
        let host = match self.host.as_str() {
            "0.0.0.0" => "127.0.0.1",
            "::" | "[::]" => "::1",
            other => other,
        };
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        if host.contains(':') && !host.starts_with('[') {
            format!("{scheme}://[{host}]:{}", self.port)
        } else {
            format!("{scheme}://{host}:{}", self.port)
        }
    }

    /// The provider named `default_provider`.
    pub fn default_provider_settings(&self) -> Option<&ProviderSettings> {
        self.providers.get(&self.default_provider)
    }
}

/// File name of the credential store and audit log in the data directory.
pub const AUTH_FILE_NAME: &str = "auth.sqlite3";

/// `localhost`, `127.0.0.0/8` and `::1` (with or without brackets).
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim().trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Picks the config file: `--config`, else `SUTAZAI_CONFIG` (either must exist), else the
/// platform default when it exists.
fn config_file(
    flag: Option<&Path>,
    env: &EnvVars,
    locations: &Locations,
) -> Result<Option<PathBuf>, SettingsError> {
    let named = match flag {
        Some(path) => Some((path.to_path_buf(), "--config")),
        None => env.get(CONFIG_ENV)?.map(|p| (PathBuf::from(p), CONFIG_ENV)),
    };
    if let Some((path, named_by)) = named {
        if !path.exists() {
            return Err(SettingsError::ConfigNotFound {
                path,
                named_by: named_by.to_owned(),
            });
        }
        return Ok(Some(path));
    }
    Ok(locations
        .config_dir
        .as_ref()
        .map(|dir| dir.join(CONFIG_FILE_NAME))
        .filter(|path| path.is_file()))
}

/// Parses the file on its own so syntax errors and unknown top-level keys are reported
/// against the file before values are merged.
fn check_file(path: &Path) -> Result<(), SettingsError> {
    let data = Toml::file_exact(path)
        .data()
        .map_err(|e| SettingsError::File {
            path: path.to_path_buf(),
            message: figment_message(&e),
        })?;
    for dict in data.values() {
        for key in dict.keys() {
            let known = KEYS.iter().any(|k| k.key == key) || FILE_ONLY_KEYS.contains(&key.as_str());
            if !known {
                let mut all: Vec<&str> = KEYS.iter().map(|k| k.key).collect();
                all.extend_from_slice(FILE_ONLY_KEYS);
                return Err(SettingsError::UnknownKey {
                    path: path.to_path_buf(),
                    key: key.clone(),
                    known: all.join(", "),
                });
            }
        }
    }
    Ok(())
}

/// A figment error's message without figment's own location suffix, which would repeat
/// the file path our error already names.
fn figment_message(error: &figment::Error) -> String {
    let mut message = error.kind.to_string();
    if !error.path.is_empty() {
        message = format!("key `{}`: {message}", error.path.join("."));
    }
    message
}

/// The environment as a figment provider: each known variable becomes its setting's key,
/// with its value kept as the string it is (no guessing of types), so the one parser of
/// each setting sees exactly what the user wrote.
struct EnvProvider {
    dict: Dict,
}

impl EnvProvider {
    fn new(env: &EnvVars) -> Result<EnvProvider, SettingsError> {
        let mut dict = Dict::new();
        for key in KEYS {
            if let Some(value) = env.get(key.env)? {
                dict.insert(key.key.to_owned(), Value::from(value.to_owned()));
            }
        }
        Ok(EnvProvider { dict })
    }
}

impl Provider for EnvProvider {
    fn metadata(&self) -> Metadata {
        Metadata::named(ENV_PROVIDER_NAME)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut map = Map::new();
        map.insert(Profile::Default, self.dict.clone());
        Ok(map)
    }
}

/// The raw `[providers.<name>]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderFile {
    kind: ProviderKind,
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    api_key_env: Option<String>,
    #[serde(default)]
    timeout_secs: Option<u64>,
    #[serde(default)]
    fallback: Option<String>,
}

/// The raw `[agents.<id>]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentFile {
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    model: Option<String>,
}

/// Reads and validates each setting out of the merged figment.
struct Reader<'a> {
    figment: &'a Figment,
    env: &'a EnvVars,
    locations: &'a Locations,
    config_file: Option<&'a Path>,
}

/// A value found for a setting, with where it came from.
struct Found {
    text: String,
    origin: Origin,
}

impl Found {
    fn invalid(&self, reason: impl Into<String>) -> SettingsError {
        SettingsError::Invalid {
            origin: self.origin.clone(),
            value: self.text.clone(),
            reason: reason.into(),
        }
    }
}

impl Reader<'_> {
    fn settings(&self, config_file: Option<PathBuf>) -> Result<Settings, SettingsError> {
        let host = self
            .string("orchestration_api_host")?
            .unwrap_or_else(|| "127.0.0.1".to_owned());
        let port = self.parse_with("orchestration_api_port", |s| {
            s.parse::<u16>()
                .map_err(|e: std::num::ParseIntError| e.to_string())
        })?;
        let log_level = match self.found("log_level")? {
            Some(found) => {
                tracing_subscriber::EnvFilter::try_new(found.text.trim())
                    .map_err(|e| found.invalid(format!("not a log level or filter: {e}")))?;
                found.text.trim().to_owned()
            }
            None => "info".to_owned(),
        };
        let redis_url = self.url("redis_url", &["redis", "rediss", "unix", "redis+unix"])?;
        let docker_host = self.url("docker_host", &["unix", "tcp", "http", "https", "npipe"])?;
        let ollama_api_url = self
            .url("ollama_api_url", &["http", "https"])?
            .unwrap_or_else(|| "http://127.0.0.1:11434".to_owned());
        let model = self
            .string("model")?
            .unwrap_or_else(|| "llama3.2".to_owned());
        let data_dir = match self.path("data_dir")? {
            Some(dir) => dir,
            None => self
                .locations
                .data_dir
                .clone()
                .ok_or(SettingsError::NoDefaultDir {
                    what: "data directory",
                    var: "SUTAZAI_DATA_DIR",
                })?,
        };
        let agents_dir = match self.path("agents_dir")? {
            Some(dir) => dir,
            None => self
                .locations
                .config_dir
                .as_ref()
                .map(|d| d.join("agents"))
                .ok_or(SettingsError::NoDefaultDir {
                    what: "agents directory",
                    var: "SUTAZAI_AGENTS_DIR",
                })?,
        };
        // No default location (no home directory, as in a container): the built-in
        // catalogue alone.
        let services_dir = match self.path("services_dir")? {
            Some(dir) => Some(dir),
            None => self
                .locations
                .config_dir
                .as_ref()
                .map(|d| d.join("services")),
        };
        let ui_dir = match self.found("ui_dir")? {
            Some(found) => {
                let dir = self.resolve_path(&found);
                if !dir.is_dir() {
                    return Err(found.invalid("no such directory"));
                }
                Some(dir)
            }
            None => self
                .locations
                .ui_candidates
                .iter()
                .find(|d| d.is_dir())
                .cloned(),
        };
        let tls = match (self.found("tls_cert")?, self.found("tls_key")?) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: self.resolve_path(&cert),
                key: self.resolve_path(&key),
            }),
            (Some(cert), None) => {
                return Err(cert.invalid("SUTAZAI_TLS_KEY (its private key) must be set too"));
            }
            (None, Some(key)) => {
                return Err(key.invalid("SUTAZAI_TLS_CERT (the certificate) must be set too"));
            }
        };
        let providers = self.providers(&ollama_api_url)?;
        let default_provider = self
            .string("default_provider")?
            .unwrap_or_else(|| DEFAULT_PROVIDER.to_owned());
        if !providers.contains_key(&default_provider) {
            let found = self.found("default_provider")?;
            let reason = format!(
                "no provider with this name is configured (configured: {})",
                providers.keys().cloned().collect::<Vec<_>>().join(", ")
            );
            return Err(match found {
                Some(found) => found.invalid(reason),
                None => SettingsError::Invalid {
                    origin: Origin::Default("default_provider".to_owned()),
                    value: default_provider,
                    reason,
                },
            });
        }
        let agents = self.agents(&providers)?;

        Ok(Settings {
            config_file,
            host,
            port: port.unwrap_or(8000),
            redis_url,
            log_level,
            enable_auth: self.bool("enable_auth")?.unwrap_or(false),
            jwt_secret_key: self.string("jwt_secret_key")?.map(Secret::new),
            session_timeout: Duration::from_secs(self.positive("session_timeout")?.unwrap_or(3600)),
            max_concurrent_tasks: self.positive("max_concurrent_tasks")?.unwrap_or(100),
            max_pending_tasks: self.positive("max_pending_tasks")?.unwrap_or(10_000),
            tls,
            mask_fields: self
                .string("mask_fields")?
                .map(|list| sutazai_core::mask::SensitiveFields::parse(&list))
                .unwrap_or_default(),
            rate_limit: self.parse_with("rate_limit", |s| {
                s.parse::<u32>()
                    .map_err(|e: std::num::ParseIntError| e.to_string())
            })?,
            heartbeat_interval: Duration::from_secs(
                self.positive("websocket_heartbeat_interval")?.unwrap_or(30),
            ),
            message_retention: Duration::from_secs(
                self.positive::<u64>("message_retention_hours")?
                    .unwrap_or(168)
                    .saturating_mul(3600),
            ),
            metrics_retention: Duration::from_secs(
                self.positive::<u64>("metrics_retention_days")?
                    .unwrap_or(30)
                    .saturating_mul(86_400),
            ),
            docker_host,
            ollama_api_url,
            enable_auto_scaling: self.bool("enable_auto_scaling")?.unwrap_or(false),
            model,
            data_dir,
            agents_dir,
            services_dir,
            infra_project: self
                .parse_with("infra_project", |s| {
                    if s.is_empty()
                        || s.len() > 32
                        || !s
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    {
                        return Err("use 1 to 32 of a-z 0-9 -".to_owned());
                    }
                    Ok(s.to_owned())
                })?
                .unwrap_or_else(|| "sutazai".to_owned()),
            alert_smtp_url: self.string("alert_smtp_url")?.map(Secret::new),
            alert_email_from: self.string("alert_email_from")?,
            alert_email_to: self
                .string("alert_email_to")?
                .map(|s| {
                    s.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            alert_slack_webhook: self.string("alert_slack_webhook")?.map(Secret::new),
            max_tokens: self.positive("max_tokens")?.unwrap_or(512),
            step_timeout: Duration::from_secs(self.positive("step_timeout")?.unwrap_or(300)),
            max_attempts: self.positive("max_attempts")?.unwrap_or(3),
            outage_wait: Duration::from_secs(self.positive("outage_wait")?.unwrap_or(600)),
            swarm_rounds: self.positive("swarm_rounds")?.unwrap_or(2),
            bus_key: self.string("bus_key")?.map(Secret::new),
            bus_encrypt: self.bool("bus_encrypt")?.unwrap_or(true),
            bus_compress_above: self
                .parse_with("bus_compress_above", |s| {
                    s.parse::<usize>().map_err(|e| e.to_string())
                })?
                .unwrap_or(1024),
            bus_rate_limit: self
                .parse_with("bus_rate_limit", |s| {
                    let rate: f64 = s
                        .parse()
                        .map_err(|e: std::num::ParseFloatError| e.to_string())?;
                    if !rate.is_finite() || rate < 0.0 {
                        return Err(
                            "must be a number of messages per second, 0 or more (0 = no limit)"
                                .to_owned(),
                        );
                    }
                    Ok(rate)
                })?
                .unwrap_or(100.0),
            bus_rate_burst: self.positive("bus_rate_burst")?.unwrap_or(200),
            bus_max_attempts: self.positive("bus_max_attempts")?.unwrap_or(5),
            bus_visibility_timeout: Duration::from_secs(
                self.positive("bus_visibility_timeout")?.unwrap_or(30),
            ),
            local_agents: self
                .string("local_agents")?
                .unwrap_or_else(|| "all".to_owned()),
            bus_namespace: self
                .parse_with("bus_namespace", |s| {
                    if s.is_empty()
                        || s.len() > 64
                        || !s
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
                    {
                        return Err("use 1 to 64 of A-Z a-z 0-9 - _ . :".to_owned());
                    }
                    Ok(s.to_owned())
                })?
                .unwrap_or_else(|| "sutazai".to_owned()),
            ui_dir,
            default_provider,
            providers,
            agents,
        })
    }

    /// Where the value of `key` came from: the environment or the config file.
    fn origin(&self, key: &str) -> Origin {
        let from_env = self
            .figment
            .find_metadata(key)
            .is_some_and(|m| m.name == ENV_PROVIDER_NAME);
        if from_env && let Some(k) = KEYS.iter().find(|k| k.key == key) {
            return Origin::Env(k.env.to_owned());
        }
        let path = match self
            .figment
            .find_metadata(key)
            .and_then(|m| m.source.as_ref())
        {
            Some(Source::File(path)) => path.clone(),
            _ => self.config_file.map(Path::to_path_buf).unwrap_or_default(),
        };
        Origin::File {
            path,
            key: key.to_owned(),
        }
    }

    /// The value of `key` as text, if any source sets it.
    fn found(&self, key: &str) -> Result<Option<Found>, SettingsError> {
        let Ok(value) = self.figment.find_value(key) else {
            return Ok(None);
        };
        let origin = self.origin(key);
        let text = match value {
            Value::String(_, s) => s,
            Value::Char(_, c) => c.to_string(),
            Value::Bool(_, b) => b.to_string(),
            Value::Num(_, n) => num_text(n),
            Value::Empty(..) => return Ok(None),
            Value::Dict(..) => {
                return Err(SettingsError::Invalid {
                    origin,
                    value: "{ ... }".to_owned(),
                    reason: "expected a single value, found a table".to_owned(),
                });
            }
            Value::Array(..) => {
                return Err(SettingsError::Invalid {
                    origin,
                    value: "[ ... ]".to_owned(),
                    reason: "expected a single value, found an array".to_owned(),
                });
            }
        };
        if text.trim().is_empty() {
            // An empty variable means "unset" (EnvVars drops those); an empty value
            // written into the file is a mistake worth pointing at.
            if let Origin::File { .. } = origin {
                return Err(SettingsError::Invalid {
                    origin,
                    value: text,
                    reason: "must not be empty".to_owned(),
                });
            }
            return Ok(None);
        }
        Ok(Some(Found { text, origin }))
    }

    fn parse_with<T>(
        &self,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, SettingsError> {
        match self.found(key)? {
            Some(found) => parse(found.text.trim())
                .map(Some)
                .map_err(|r| found.invalid(r)),
            None => Ok(None),
        }
    }

    fn string(&self, key: &str) -> Result<Option<String>, SettingsError> {
        self.parse_with(key, |s| Ok(s.to_owned()))
    }

    /// A whole number of at least 1.
    fn positive<T>(&self, key: &str) -> Result<Option<T>, SettingsError>
    where
        T: FromStr + PartialOrd + From<u8>,
        T::Err: fmt::Display,
    {
        self.parse_with(key, |s| {
            let n: T = s.parse().map_err(|e: T::Err| e.to_string())?;
            if n < T::from(1) {
                return Err("must be at least 1".to_owned());
            }
            Ok(n)
        })
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, SettingsError> {
        self.parse_with(key, |s| match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err("expected true or false (or 1/0, yes/no, on/off)".to_owned()),
        })
    }

    fn url(&self, key: &str, schemes: &[&str]) -> Result<Option<String>, SettingsError> {
        self.parse_with(key, |s| check_url(s, schemes))
    }

    fn path(&self, key: &str) -> Result<Option<PathBuf>, SettingsError> {
        Ok(self.found(key)?.map(|found| self.resolve_path(&found)))
    }

    /// A path from the file is relative to the file's directory, so a config file and the
    /// directories it names can move together; one from the environment is used as given.
    fn resolve_path(&self, found: &Found) -> PathBuf {
        let path = PathBuf::from(found.text.trim());
        match &found.origin {
            Origin::File { path: file, .. } if path.is_relative() => {
                file.parent().map(|dir| dir.join(&path)).unwrap_or(path)
            }
            _ => path,
        }
    }

    fn file_error(&self, message: String) -> SettingsError {
        SettingsError::File {
            path: self.config_file.map(Path::to_path_buf).unwrap_or_default(),
            message,
        }
    }

    /// The entries of the file table `name` (`[providers.*]`, `[agents.*]`), each
    /// deserialised on its own so an error names the full key (`providers.x.kind`).
    fn table<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<BTreeMap<String, T>, SettingsError> {
        let dict = match self.figment.find_value(name) {
            Err(_) => return Ok(BTreeMap::new()),
            Ok(Value::Dict(_, dict)) => dict,
            Ok(_) => return Err(self.file_error(format!("`{name}` must be a table"))),
        };
        let mut entries = BTreeMap::new();
        for (entry, value) in dict {
            if entry.trim().is_empty() {
                return Err(self.file_error(format!("`{name}` has an entry with an empty name")));
            }
            let parsed = value.deserialize::<T>().map_err(|e| {
                let mut key = format!("{name}.{entry}");
                for part in &e.path {
                    key.push('.');
                    key.push_str(part);
                }
                self.file_error(format!("key `{key}`: {}", e.kind))
            })?;
            entries.insert(entry, parsed);
        }
        Ok(entries)
    }

    fn providers(
        &self,
        ollama_api_url: &str,
    ) -> Result<BTreeMap<String, ProviderSettings>, SettingsError> {
        let raw: BTreeMap<String, ProviderFile> = self.table("providers")?;
        let mut providers = BTreeMap::new();
        for (name, p) in raw {
            let key = |field: &str| format!("providers.{name}.{field}");
            let origin = |field: &str| Origin::File {
                path: self.config_file.map(Path::to_path_buf).unwrap_or_default(),
                key: key(field),
            };
            let base_url = match (p.base_url, p.kind) {
                (Some(url), _) => check_url(url.trim(), &["http", "https"]).map_err(|reason| {
                    SettingsError::Invalid {
                        origin: origin("base_url"),
                        value: url.clone(),
                        reason,
                    }
                })?,
                (None, ProviderKind::Ollama) => ollama_api_url.to_owned(),
                (None, ProviderKind::Openai) => {
                    return Err(SettingsError::Invalid {
                        origin: origin("base_url"),
                        value: String::new(),
                        reason: "is required for kind = \"openai\"".to_owned(),
                    });
                }
            };
            let api_key = match &p.api_key_env {
                Some(var) => match self.env.get(var)? {
                    Some(key) => Some(Secret::new(key)),
                    None => {
                        return Err(SettingsError::Invalid {
                            origin: origin("api_key_env"),
                            value: var.clone(),
                            reason: format!("environment variable {var} is not set"),
                        });
                    }
                },
                None => None,
            };
            if p.timeout_secs == Some(0) {
                return Err(SettingsError::Invalid {
                    origin: origin("timeout_secs"),
                    value: "0".to_owned(),
                    reason: "must be at least 1".to_owned(),
                });
            }
            providers.insert(
                name,
                ProviderSettings {
                    kind: p.kind,
                    base_url,
                    api_key,
                    api_key_env: p.api_key_env,
                    timeout: p.timeout_secs.map(Duration::from_secs),
                    fallback: p.fallback.map(|f| f.trim().to_owned()),
                },
            );
        }
        providers
            .entry(DEFAULT_PROVIDER.to_owned())
            .or_insert_with(|| ProviderSettings {
                kind: ProviderKind::Ollama,
                base_url: ollama_api_url.to_owned(),
                api_key: None,
                api_key_env: None,
                timeout: None,
                fallback: None,
            });
        for (name, p) in &providers {
            if let Some(fallback) = &p.fallback
                && (fallback == name || !providers.contains_key(fallback))
            {
                return Err(SettingsError::Invalid {
                    origin: Origin::File {
                        path: self.config_file.map(Path::to_path_buf).unwrap_or_default(),
                        key: format!("providers.{name}.fallback"),
                    },
                    value: fallback.clone(),
                    reason: if fallback == name {
                        "a provider cannot be its own fallback".to_owned()
                    } else {
                        format!(
                            "no provider with this name is configured (configured: {})",
                            providers.keys().cloned().collect::<Vec<_>>().join(", ")
                        )
                    },
                });
            }
        }
        Ok(providers)
    }

    fn agents(
        &self,
        providers: &BTreeMap<String, ProviderSettings>,
    ) -> Result<BTreeMap<String, AgentBindingSettings>, SettingsError> {
        let raw: BTreeMap<String, AgentFile> = self.table("agents")?;
        let mut agents = BTreeMap::new();
        for (id, a) in raw {
            let origin = |field: &str| Origin::File {
                path: self.config_file.map(Path::to_path_buf).unwrap_or_default(),
                key: format!("agents.{id}.{field}"),
            };
            let provider = a.provider.map(|p| p.trim().to_owned());
            if let Some(p) = &provider
                && !providers.contains_key(p)
            {
                return Err(SettingsError::Invalid {
                    origin: origin("provider"),
                    value: p.clone(),
                    reason: format!(
                        "no provider with this name is configured (configured: {})",
                        providers.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                });
            }
            let model = a.model.map(|m| m.trim().to_owned());
            if model.as_deref() == Some("") {
                return Err(SettingsError::Invalid {
                    origin: origin("model"),
                    value: String::new(),
                    reason: "must not be empty".to_owned(),
                });
            }
            agents.insert(id, AgentBindingSettings { provider, model });
        }
        Ok(agents)
    }
}

/// Checks that `s` is an absolute URL with one of `schemes` and a host (except for
/// socket-path schemes), returning it trimmed of a trailing slash.
fn check_url(s: &str, schemes: &[&str]) -> Result<String, String> {
    let url = Url::parse(s).map_err(|e| format!("not a URL: {e}"))?;
    if !schemes.contains(&url.scheme()) {
        return Err(format!(
            "unsupported scheme `{}` (expected {})",
            url.scheme(),
            schemes.join(", ")
        ));
    }
    let socket_path = matches!(url.scheme(), "unix" | "redis+unix" | "npipe");
    if !socket_path && url.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host".to_owned());
    }
    Ok(s.trim_end_matches('/').to_owned())
}

fn num_text(n: Num) -> String {
    match n {
        Num::U8(v) => v.to_string(),
        Num::U16(v) => v.to_string(),
        Num::U32(v) => v.to_string(),
        Num::U64(v) => v.to_string(),
        Num::U128(v) => v.to_string(),
        Num::USize(v) => v.to_string(),
        Num::I8(v) => v.to_string(),
        Num::I16(v) => v.to_string(),
        Num::I32(v) => v.to_string(),
        Num::I64(v) => v.to_string(),
        Num::I128(v) => v.to_string(),
        Num::ISize(v) => v.to_string(),
        Num::F32(v) => v.to_string(),
        Num::F64(v) => v.to_string(),
    }
}
