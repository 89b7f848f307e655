//! `sutazai doctor`: checks everything a server depends on and says, for each failure,
//! what to do about it.
//!
//! Checks, in order: settings load; the data directory is writable and the journal opens
//! (these two are *essential*: the exit code is non-zero when either fails); each LLM
//! provider in use answers and has its models; Redis (when `REDIS_URL` is set) answers
//! `PING`; Docker answers `/_ping`; the agent directory's files parse; the API port is free
//! or already serves SutazAI. Network checks use raw TCP/Unix-socket exchanges with short
//! time limits, so a dead dependency costs seconds, not minutes.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::Path;
use std::time::Duration;

use reqwest::Url;
use serde::Serialize;
use serde_json::Value;
use sutazai_agents::{AgentSource, Registry};
use sutazai_llm::{ModelInfo, ProviderOptions};
use sutazai_store::Journal;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::serve;
use crate::settings::{ProviderKind, Settings};

/// Limit of each network exchange (connect plus answer).
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// Limit of an LLM model listing (a cold server may take a moment).
const LLM_TIMEOUT: Duration = Duration::from_secs(5);
/// Most bytes read from a Redis or Docker answer; both answers are a few bytes.
const MAX_ANSWER: usize = 4096;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Fine.
    Pass,
    /// Broken; see the hint.
    Fail,
    /// Not applicable or not checkable here (not configured, or an earlier check failed).
    Skip,
}

impl Status {
    fn mark(self) -> &'static str {
        match self {
            Status::Pass => "✓",
            Status::Fail => "✗",
            Status::Skip => "-",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Short name (`data dir`).
    pub name: String,
    /// How it went.
    pub status: Status,
    /// Whether a failure makes `doctor` exit non-zero: a server cannot start without it.
    pub essential: bool,
    /// What was found.
    pub detail: String,
    /// What to do, for failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Further lines (one per bad agent file, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Check {
    fn new(name: impl Into<String>, status: Status, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status,
            essential: false,
            detail: detail.into(),
            hint: None,
            notes: Vec::new(),
        }
    }

    fn pass(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check::new(name, Status::Pass, detail)
    }

    fn fail(name: impl Into<String>, detail: impl Into<String>, hint: impl Into<String>) -> Check {
        Check::new(name, Status::Fail, detail).hint(hint)
    }

    fn skip(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check::new(name, Status::Skip, detail)
    }

    fn hint(mut self, hint: impl Into<String>) -> Check {
        self.hint = Some(hint.into());
        self
    }

    fn essential(mut self) -> Check {
        self.essential = true;
        self
    }
}

/// All checks of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Every essential check passed.
    pub ok: bool,
    /// The checks in the order they ran.
    pub checks: Vec<Check>,
}

impl Report {
    fn new(checks: Vec<Check>) -> Report {
        let ok = checks
            .iter()
            .filter(|c| c.essential)
            .all(|c| c.status == Status::Pass);
        Report { ok, checks }
    }

    /// The report as text: one line per check with ✓/✗/-, hints and notes indented.
    pub fn render(&self) -> String {
        let width = self
            .checks
            .iter()
            .map(|c| c.name.chars().count())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for check in &self.checks {
            let pad = width - check.name.chars().count();
            out.push_str(&format!(
                "{} {}{}  {}\n",
                check.status.mark(),
                check.name,
                " ".repeat(pad),
                check.detail
            ));
            let indent = " ".repeat(width + 4);
            for note in &check.notes {
                out.push_str(&format!("{indent}{note}\n"));
            }
            if let Some(hint) = &check.hint {
                out.push_str(&format!("{indent}hint: {hint}\n"));
            }
        }
        if self.ok {
            out.push_str("\nessential checks passed: `sutazai serve` can start\n");
        } else {
            let failed: Vec<&str> = self
                .checks
                .iter()
                .filter(|c| c.essential && c.status != Status::Pass)
                .map(|c| c.name.as_str())
                .collect();
            out.push_str(&format!(
                "\nessential checks failed ({}): `sutazai serve` cannot start\n",
                failed.join(", ")
            ));
        }
        out
    }
}

/// Runs every check. `config` is the `--config` flag.
pub async fn run(config: Option<&Path>) -> Report {
    let config = config.map(Path::to_path_buf);
    let loaded = tokio::task::spawn_blocking(move || Settings::load(config.as_deref())).await;
    let settings = match loaded {
        Ok(Ok(settings)) => settings,
        Ok(Err(e)) => {
            let mut checks = vec![
                Check::fail(
                    "settings",
                    e.to_string(),
                    "fix the variable or config key named above",
                )
                .essential(),
            ];
            checks.push(Check::skip("data dir", "not checked: settings did not load").essential());
            return Report::new(checks);
        }
        Err(e) => {
            return Report::new(vec![
                Check::fail(
                    "settings",
                    format!("loading panicked: {e}"),
                    "report this bug",
                )
                .essential(),
            ]);
        }
    };
    run_with(&settings).await
}

/// Runs every check but the settings load against already loaded settings.
pub async fn run_with(settings: &Settings) -> Report {
    let mut checks = vec![settings_check(settings)];
    checks.push(data_dir_check(settings).await);
    checks.push(disk_check(settings).await);
    checks.extend(llm_checks(settings).await);
    checks.push(redis_check(settings).await);
    checks.push(docker_check(settings).await);
    checks.push(agents_check(settings).await);
    checks.push(port_check(settings).await);
    Report::new(checks)
}

/// The checks as the running server sees them (`GET /setup/doctor`, the dashboard's
/// first-run flow): its own data directory and port are in use by itself, so those two
/// are reported as such instead of probed.
pub async fn run_for_server(settings: &Settings) -> Report {
    let mut checks = vec![settings_check(settings)];
    checks.push(
        Check::pass(
            "data dir",
            format!(
                "{} is in use by this server (journal {})",
                settings.data_dir.display(),
                settings.journal_path().display()
            ),
        )
        .essential(),
    );
    checks.push(disk_check(settings).await);
    checks.extend(llm_checks(settings).await);
    checks.push(redis_check(settings).await);
    checks.push(docker_check(settings).await);
    checks.push(agents_check(settings).await);
    Report::new(checks)
}

/// Least free space on the data directory's disk before the check fails: models, the
/// journal and the monitoring history live there.
const MIN_FREE_BYTES: u64 = 2 << 30;

/// Free space on the disk holding the data directory.
async fn disk_check(settings: &Settings) -> Check {
    let dir = settings.data_dir.clone();
    let found = tokio::task::spawn_blocking(move || {
        let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
        let disks = sysinfo::Disks::new_with_refreshed_list();
        disks
            .list()
            .iter()
            .filter(|d| dir.starts_with(d.mount_point()))
            .max_by_key(|d| d.mount_point().as_os_str().len())
            .map(|d| {
                (
                    d.mount_point().display().to_string(),
                    d.available_space(),
                    d.total_space(),
                )
            })
    })
    .await
    .ok()
    .flatten();
    let gib = |b: u64| b as f64 / f64::from(1u32 << 30);
    match found {
        None => Check::skip("disk", "could not find the disk holding the data directory"),
        Some((mount, free, total)) if free < MIN_FREE_BYTES => Check::fail(
            "disk",
            format!(
                "{:.1} GiB free of {:.1} GiB on {mount}",
                gib(free),
                gib(total)
            ),
            "free some space (models take several GiB), or set SUTAZAI_DATA_DIR to a larger disk",
        ),
        Some((mount, free, total)) => Check::pass(
            "disk",
            format!(
                "{:.1} GiB free of {:.1} GiB on {mount}",
                gib(free),
                gib(total)
            ),
        ),
    }
}

fn settings_check(settings: &Settings) -> Check {
    let source = match &settings.config_file {
        Some(path) => format!("config file {}", path.display()),
        None => "no config file".to_owned(),
    };
    Check::pass(
        "settings",
        format!(
            "loaded ({source}); API {}:{}, provider {}, model {}",
            settings.host, settings.port, settings.default_provider, settings.model
        ),
    )
    .essential()
}

async fn data_dir_check(settings: &Settings) -> Check {
    let dir = settings.data_dir.clone();
    let journal_path = settings.journal_path();
    let probe = tokio::task::spawn_blocking(move || -> Result<(Journal, Option<String>), Check> {
        let fail = |what: String, e: &dyn std::fmt::Display| {
            Check::fail(
                "data dir",
                format!("{what}: {e}"),
                "set SUTAZAI_DATA_DIR to a writable directory",
            )
            .essential()
        };
        std::fs::create_dir_all(&dir)
            .map_err(|e| fail(format!("cannot create {}", dir.display()), &e))?;
        let probe = dir.join(format!(".doctor-{}", std::process::id()));
        std::fs::write(&probe, b"sutazai doctor write test")
            .map_err(|e| fail(format!("cannot write in {}", dir.display()), &e))?;
        let _ = std::fs::remove_file(&probe);
        let journal = Journal::open(&journal_path).map_err(|e| {
            fail(
                format!("the journal {} does not open", journal_path.display()),
                &error_chain(&e),
            )
        })?;
        Ok((journal, lock_holder(&dir)))
    })
    .await;
    match probe {
        Ok(Ok((journal, holder))) => {
            journal.close().await;
            let mut check = Check::pass(
                "data dir",
                format!(
                    "{} is writable; journal {} opens",
                    settings.data_dir.display(),
                    settings.journal_path().display()
                ),
            )
            .essential();
            if let Some(holder) = holder {
                check
                    .notes
                    .push(format!("in use by a running SutazAI server{holder}"));
            }
            check
        }
        Ok(Err(check)) => check,
        Err(e) => Check::fail(
            "data dir",
            format!("the check panicked: {e}"),
            "report this bug",
        )
        .essential(),
    }
}

/// `Some(" (pid N)")` when a server holds the data directory's lock.
fn lock_holder(dir: &Path) -> Option<String> {
    let path = dir.join(serve::LOCK_FILE_NAME);
    let file = std::fs::File::open(&path).ok()?;
    match file.try_lock_shared() {
        Ok(()) => None,
        Err(std::fs::TryLockError::WouldBlock) => {
            let pid = std::fs::read_to_string(&path).unwrap_or_default();
            let pid = pid.trim();
            Some(if pid.is_empty() {
                String::new()
            } else {
                format!(" (pid {pid})")
            })
        }
        Err(std::fs::TryLockError::Error(_)) => None,
    }
}

/// An error's message, followed by its root cause when the message does not already say
/// it: HTTP client errors hide "connection refused" several sources deep, while most
/// intermediate layers only repeat the message above them.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let text = e.to_string();
    let mut root = e.source();
    while let Some(next) = root.and_then(std::error::Error::source) {
        root = Some(next);
    }
    match root.map(ToString::to_string) {
        Some(cause) if !text.contains(&cause) => format!("{text} ({cause})"),
        _ => text,
    }
}

/// Whether `wanted` is among `models`; Ollama lists `llama3.2` as `llama3.2:latest`.
pub fn model_available(models: &[ModelInfo], wanted: &str) -> bool {
    models.iter().any(|m| {
        m.name == wanted || (!wanted.contains(':') && m.name == format!("{wanted}:latest"))
    })
}

/// One check per provider in use, with the models agents are bound to on it.
async fn llm_checks(settings: &Settings) -> Vec<Check> {
    let mut wanted: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    wanted
        .entry(settings.default_provider.as_str())
        .or_default()
        .push(settings.model.as_str());
    for binding in settings.agents.values() {
        let provider = binding
            .provider
            .as_deref()
            .unwrap_or(settings.default_provider.as_str());
        let model = binding.model.as_deref().unwrap_or(settings.model.as_str());
        let models = wanted.entry(provider).or_default();
        if !models.contains(&model) {
            models.push(model);
        }
    }
    let mut checks = Vec::new();
    for (name, models) in wanted {
        let Some(p) = settings.providers.get(name) else {
            continue;
        };
        let label = format!("LLM {name}");
        let options = ProviderOptions {
            connect_timeout: PROBE_TIMEOUT,
            request_timeout: LLM_TIMEOUT,
            idle_timeout: LLM_TIMEOUT,
        };
        let provider = match serve::build_provider(name, p, options) {
            Ok(provider) => provider,
            Err(e) => {
                checks.push(Check::fail(
                    label,
                    format!("{e:#}"),
                    "fix the provider's base_url",
                ));
                continue;
            }
        };
        let listed = tokio::time::timeout(LLM_TIMEOUT, provider.list_models()).await;
        let listed = match listed {
            Ok(Ok(listed)) => listed,
            Ok(Err(e)) => {
                let hint = match p.kind {
                    ProviderKind::Ollama if name == crate::settings::DEFAULT_PROVIDER => {
                        "start Ollama (`ollama serve`) or point OLLAMA_API_URL at a running one"
                    }
                    _ => "start the server or fix the provider's base_url",
                };
                checks.push(Check::fail(
                    label,
                    format!("{} does not answer: {}", p.base_url, error_chain(&e)),
                    hint,
                ));
                continue;
            }
            Err(_) => {
                checks.push(Check::fail(
                    label,
                    format!(
                        "{} did not list its models within {LLM_TIMEOUT:?}",
                        p.base_url
                    ),
                    "check that the server is up and not overloaded",
                ));
                continue;
            }
        };
        let missing: Vec<&str> = models
            .iter()
            .copied()
            .filter(|m| !model_available(&listed, m))
            .collect();
        let detail = format!(
            "{} server at {} answers ({} model{}); needs {}",
            p.kind.as_str(),
            p.base_url,
            listed.len(),
            if listed.len() == 1 { "" } else { "s" },
            models.join(", ")
        );
        if missing.is_empty() {
            checks.push(Check::pass(label, detail));
        } else {
            let hint = match p.kind {
                ProviderKind::Ollama => missing
                    .iter()
                    .map(|m| format!("ollama pull {m}"))
                    .collect::<Vec<_>>()
                    .join("; "),
                _ => format!(
                    "load {} on the server, or set SUTAZAI_MODEL to one it serves",
                    missing.join(", ")
                ),
            };
            let mut check = Check::fail(label, detail, hint);
            check.notes.push(format!("missing: {}", missing.join(", ")));
            if !listed.is_empty() {
                let names: Vec<&str> = listed.iter().take(10).map(|m| m.name.as_str()).collect();
                check.notes.push(format!("available: {}", names.join(", ")));
            }
            checks.push(check);
        }
    }
    checks
}

/// Writes `request` and reads the answer until `done` says it is complete, the peer
/// closes, or [`MAX_ANSWER`] bytes arrived.
async fn exchange<S>(
    stream: &mut S,
    request: &[u8],
    done: impl Fn(&[u8]) -> bool,
) -> std::io::Result<String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    stream.write_all(request).await?;
    stream.flush().await?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 512];
    while answer.len() < MAX_ANSWER && !done(&answer) {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

fn has_line(answer: &[u8]) -> bool {
    answer.windows(2).any(|w| w == b"\r\n")
}

/// A RESP command array.
fn resp(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Decodes `%XX` escapes of a URL's user or password.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `AUTH` (when the URL has a password) then `PING` over an open connection.
async fn redis_ping<S>(stream: &mut S, url: &Url) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if let Some(password) = url.password() {
        let password = percent_decode(password);
        let user = percent_decode(url.username());
        let auth = if user.is_empty() {
            resp(&["AUTH", &password])
        } else {
            resp(&["AUTH", &user, &password])
        };
        let answer = exchange(stream, &auth, has_line)
            .await
            .map_err(|e| format!("AUTH failed: {e}"))?;
        if !answer.starts_with("+OK") {
            return Err(format!("AUTH refused: {}", answer.trim()));
        }
    }
    let answer = exchange(stream, &resp(&["PING"]), has_line)
        .await
        .map_err(|e| format!("PING failed: {e}"))?;
    if answer.starts_with("+PONG") {
        Ok(())
    } else {
        Err(format!("PING answered {:?}, not +PONG", answer.trim()))
    }
}

async fn redis_check(settings: &Settings) -> Check {
    const NAME: &str = "Redis";
    let Some(raw) = &settings.redis_url else {
        return Check::skip(
            NAME,
            "REDIS_URL not set: the in-process message bus is used",
        );
    };
    // Settings validated the URL; a failure here would be a bug worth showing.
    let url = match Url::parse(raw) {
        Ok(url) => url,
        Err(e) => {
            return Check::fail(
                NAME,
                format!("REDIS_URL does not parse: {e}"),
                "fix REDIS_URL",
            );
        }
    };
    let shown = redact(&url);
    let note = "the message bus runs on Redis Streams here; `sutazai worker` processes join \
                the same REDIS_URL and SUTAZAI_BUS_KEY (or share the data directory's bus.key)";
    let result = tokio::time::timeout(PROBE_TIMEOUT, async {
        match url.scheme() {
            "redis" => {
                let host = url.host_str().unwrap_or("127.0.0.1");
                let port = url.port().unwrap_or(6379);
                let mut stream = TcpStream::connect((host, port))
                    .await
                    .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
                redis_ping(&mut stream, &url).await.map(|()| "answers PING")
            }
            "rediss" => {
                let host = url.host_str().unwrap_or("127.0.0.1");
                let port = url.port().unwrap_or(6379);
                TcpStream::connect((host, port))
                    .await
                    .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
                Ok("accepts connections (TLS: PING not checked)")
            }
            #[cfg(unix)]
            _ => {
                let path = url.path().to_owned();
                let mut stream = tokio::net::UnixStream::connect(&path)
                    .await
                    .map_err(|e| format!("cannot connect to {path}: {e}"))?;
                redis_ping(&mut stream, &url).await.map(|()| "answers PING")
            }
            #[cfg(not(unix))]
            _ => Err("Unix-socket Redis URLs cannot be checked on this platform".to_owned()),
        }
    })
    .await;
    let mut check = match result {
        Ok(Ok(what)) => Check::pass(NAME, format!("{shown} {what}")),
        Ok(Err(e)) => Check::fail(
            NAME,
            format!("{shown}: {e}"),
            "start Redis (`redis-server`) or fix/unset REDIS_URL",
        ),
        Err(_) => Check::fail(
            NAME,
            format!("{shown} did not answer within {PROBE_TIMEOUT:?}"),
            "check that Redis is up and reachable, or unset REDIS_URL",
        ),
    };
    check.notes.push(note.to_owned());
    check
}

/// A URL with its password replaced, for display.
pub(crate) fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    shown.to_string()
}

fn docker_answered_ok(answer: &str) -> bool {
    let status_ok = answer.lines().next().is_some_and(|line| {
        line.starts_with("HTTP/") && line.split_whitespace().nth(1) == Some("200")
    });
    status_ok
        && answer
            .split("\r\n\r\n")
            .nth(1)
            .is_some_and(|b| b.trim() == "OK")
}

async fn docker_check(settings: &Settings) -> Check {
    const NAME: &str = "Docker";
    const PING: &[u8] = b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n";
    let hint_missing =
        "install and start Docker, or set DOCKER_HOST (only needed for container management)";
    let target = settings
        .docker_host
        .clone()
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned());
    let url = match Url::parse(&target) {
        Ok(url) => url,
        Err(e) => {
            return Check::fail(
                NAME,
                format!("DOCKER_HOST does not parse: {e}"),
                "fix DOCKER_HOST",
            );
        }
    };
    let result = tokio::time::timeout(PROBE_TIMEOUT, async {
        match url.scheme() {
            "tcp" | "http" => {
                let host = url.host_str().unwrap_or("127.0.0.1");
                let port = url.port().unwrap_or(2375);
                let mut stream = TcpStream::connect((host, port)).await?;
                exchange(&mut stream, PING, |_| false).await
            }
            #[cfg(unix)]
            "unix" => {
                let mut stream = tokio::net::UnixStream::connect(url.path()).await?;
                exchange(&mut stream, PING, |_| false).await
            }
            other => Err(std::io::Error::new(
                ErrorKind::Unsupported,
                format!("`{other}` endpoints cannot be checked by doctor"),
            )),
        }
    })
    .await;
    match result {
        Ok(Ok(answer)) if docker_answered_ok(&answer) => {
            Check::pass(NAME, format!("{target} answers /_ping"))
        }
        Ok(Ok(answer)) => Check::fail(
            NAME,
            format!(
                "{target} answered /_ping with {:?}",
                answer.lines().next().unwrap_or("nothing")
            ),
            "check that DOCKER_HOST points at a Docker daemon",
        ),
        Ok(Err(e)) if e.kind() == ErrorKind::Unsupported => Check::skip(NAME, e.to_string()),
        Ok(Err(e)) if e.kind() == ErrorKind::PermissionDenied => Check::fail(
            NAME,
            format!("{target}: {e}"),
            "add your user to the `docker` group (then log in again)",
        ),
        Ok(Err(e)) => Check::fail(NAME, format!("{target}: {e}"), hint_missing),
        Err(_) => Check::fail(
            NAME,
            format!("{target} did not answer within {PROBE_TIMEOUT:?}"),
            hint_missing,
        ),
    }
}

async fn agents_check(settings: &Settings) -> Check {
    const NAME: &str = "agents";
    let dir = settings.agents_dir.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        let exists = dir.is_dir();
        let (registry, errors) = Registry::load(Some(&dir));
        (exists, registry, errors)
    })
    .await;
    let (exists, registry, errors) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => return Check::fail(NAME, format!("loading panicked: {e}"), "report this bug"),
    };
    let user = registry
        .iter()
        .filter(|a| matches!(registry.source(&a.id), Some(AgentSource::User(_))))
        .count();
    let dir = settings.agents_dir.display();
    let detail = if exists {
        format!("{} agents ({user} from {dir})", registry.len())
    } else {
        format!(
            "{} built-in agents; {dir} does not exist (create it to add agent files)",
            registry.len()
        )
    };
    let unknown: Vec<&String> = settings
        .agents
        .keys()
        .filter(|id| registry.get(id).is_none())
        .collect();
    if errors.is_empty() && unknown.is_empty() {
        return Check::pass(NAME, detail);
    }
    let mut check = Check::fail(
        NAME,
        detail,
        "fix or remove the files and bindings above; the other agents load without them",
    );
    check.notes.extend(errors.iter().map(ToString::to_string));
    check.notes.extend(
        unknown
            .iter()
            .map(|id| format!("the config file binds `{id}`, but no agent has that id")),
    );
    check
}

async fn port_check(settings: &Settings) -> Check {
    const NAME: &str = "API port";
    let (host, port) = (settings.host.clone(), settings.port);
    let bound = tokio::task::spawn_blocking(move || {
        std::net::TcpListener::bind((host.as_str(), port)).map(drop)
    })
    .await;
    let addr = format!("{}:{}", settings.host, settings.port);
    match bound {
        Ok(Ok(())) => Check::pass(NAME, format!("{addr} is free for `sutazai serve`")),
        Ok(Err(e)) if e.kind() == ErrorKind::AddrInUse => {
            let url = format!("{}/health", settings.api_base_url());
            match sutazai_health(&url).await {
                Some(status) => Check::pass(
                    NAME,
                    format!(
                        "a SutazAI server already answers at {} ({status})",
                        settings.api_base_url()
                    ),
                ),
                None => Check::fail(
                    NAME,
                    format!("{addr} is in use by another program"),
                    "stop it or set ORCHESTRATION_API_PORT to a free port",
                ),
            }
        }
        Ok(Err(e)) => Check::fail(
            NAME,
            format!("cannot listen on {addr}: {e}"),
            "check ORCHESTRATION_API_HOST (an address of this machine) and ORCHESTRATION_API_PORT",
        ),
        Err(e) => Check::fail(NAME, format!("the check panicked: {e}"), "report this bug"),
    }
}

/// The `status` of a SutazAI `/health` answer at `url`, or `None` if something else (or
/// nothing) answers there.
async fn sutazai_health(url: &str) -> Option<String> {
    let client = reqwest::Client::builder()
        .timeout(PROBE_TIMEOUT)
        .build()
        .ok()?;
    let value: Value = client.get(url).send().await.ok()?.json().await.ok()?;
    let status = value.get("status")?.as_str()?.to_owned();
    let health = value.get("system_health")?.as_f64()?;
    Some(format!("status {status}, health {:.0}%", health * 100.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(name: &str) -> ModelInfo {
        ModelInfo {
            name: name.to_owned(),
            size: None,
        }
    }

    #[test]
    fn untagged_models_match_their_latest_tag() {
        let models = [model("llama3.2:latest"), model("qwen2.5:7b")];
        assert!(model_available(&models, "llama3.2"));
        assert!(model_available(&models, "llama3.2:latest"));
        assert!(model_available(&models, "qwen2.5:7b"));
        assert!(!model_available(&models, "qwen2.5"));
        assert!(!model_available(&models, "llama3.2:1b"));
    }

    #[test]
    fn resp_commands_are_length_prefixed() {
        assert_eq!(resp(&["PING"]), b"*1\r\n$4\r\nPING\r\n");
        assert_eq!(resp(&["AUTH", "pw"]), b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n");
    }

    #[test]
    fn url_credentials_are_decoded_and_redacted() {
        assert_eq!(percent_decode("p%40ss%2Fw0rd"), "p@ss/w0rd");
        assert_eq!(percent_decode("100%"), "100%");
        let url = Url::parse("redis://user:secret@host:6379/0").expect("url");
        assert_eq!(redact(&url), "redis://user:***@host:6379/0");
    }

    #[test]
    fn docker_ping_answers_are_recognised() {
        assert!(docker_answered_ok(
            "HTTP/1.0 200 OK\r\nApi-Version: 1.45\r\nContent-Length: 2\r\n\r\nOK"
        ));
        assert!(!docker_answered_ok(
            "HTTP/1.0 404 Not Found\r\n\r\nnot found"
        ));
        assert!(!docker_answered_ok("SSH-2.0-OpenSSH"));
    }

    #[test]
    fn the_exit_status_follows_the_essential_checks() {
        let report = Report::new(vec![
            Check::pass("settings", "ok").essential(),
            Check::fail("LLM ollama", "down", "start it"),
        ]);
        assert!(report.ok);
        assert!(report.render().contains("✗ LLM ollama  down"));
        let report = Report::new(vec![
            Check::pass("settings", "ok").essential(),
            Check::fail("data dir", "read-only", "fix it").essential(),
        ]);
        assert!(!report.ok);
        assert!(
            report
                .render()
                .contains("essential checks failed (data dir)")
        );
    }
}
