//! Settings the dashboard edits while the app runs: the LLM endpoints' URLs and the alert
//! delivery channels (email over SMTP, Slack).
//!
//! There is one source of truth, the config file (`sutazai.toml`, see [`crate::settings`]):
//! an edit rewrites the keys it changes with `toml_edit`, keeping the user's comments and
//! every other key, loads the result through the same validation as a start would, and
//! only then replaces the file (written beside it with mode 0600, since it may now hold an
//! SMTP password or a webhook URL, flushed, renamed) and applies the new values to the
//! running app: providers are [`Switchable`]s whose client is swapped, channels are
//! [`LiveChannels`]. Environment variables override the file, so a setting one of them
//! fixes is reported as locked and refused rather than written to no effect. Secrets are
//! never returned: the view says whether each is set.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use sutazai_llm::{Provider, Switchable};
use sutazai_monitor::LiveChannels;

use crate::settings::{CONFIG_FILE_NAME, EnvVars, Locations, ProviderKind, Settings};

/// Longest URL or address accepted from the dashboard.
const MAX_VALUE_CHARS: usize = 2048;
/// Most alert recipients.
const MAX_RECIPIENTS: usize = 50;

/// An edit: only what is present changes. For the alert strings an empty string removes
/// the setting (switching the channel off); an empty recipient list removes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsEdit {
    /// New base URLs by provider name.
    pub provider_urls: BTreeMap<String, String>,
    /// `alert_smtp_url`.
    pub smtp_url: Option<String>,
    /// `alert_email_from`.
    pub email_from: Option<String>,
    /// `alert_email_to`.
    pub email_to: Option<Vec<String>>,
    /// `alert_slack_webhook`.
    pub slack_webhook: Option<String>,
}

/// Why an edit was refused. Nothing was written or changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// A value is invalid (the message names the key).
    #[error("{0}")]
    Invalid(String),
    /// An environment variable sets this value and would override the file.
    #[error("{0}")]
    Locked(String),
    /// The config file could not be read or written.
    #[error("{0}")]
    Io(String),
}

impl EditError {
    /// The `{code}` clients see.
    pub fn code(&self) -> &'static str {
        match self {
            EditError::Invalid(_) => "invalid_request",
            EditError::Locked(_) => "setting_locked",
            EditError::Io(_) => "settings_io_error",
        }
    }

    /// The HTTP status clients see.
    pub fn status(&self) -> u16 {
        match self {
            EditError::Invalid(_) => 422,
            EditError::Locked(_) => 409,
            EditError::Io(_) => 500,
        }
    }
}

/// One LLM endpoint as the dashboard shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderView {
    /// Its name (`ollama`, `vllm`).
    pub name: String,
    /// `ollama` or `openai`.
    pub kind: &'static str,
    /// Where it is reached.
    pub base_url: String,
    /// Whether agents use it unless bound otherwise.
    pub default: bool,
    /// Whether an API key is configured (never the key).
    pub api_key_set: bool,
    /// The environment variable that fixes the URL, if one does.
    pub locked_by: Option<String>,
}

/// The settings the dashboard shows and edits.
#[derive(Debug, Clone, Serialize)]
pub struct SettingsView {
    /// The file edits are written to.
    pub config_file: String,
    /// Whether it exists yet (the first edit creates it).
    pub config_file_exists: bool,
    /// The default model (`SUTAZAI_MODEL`; shown, not edited here).
    pub model: String,
    /// The LLM endpoints.
    pub providers: Vec<ProviderView>,
    /// Email alerts: whether on, whether an SMTP URL is set (never the URL: it may hold a
    /// password), sender and recipients.
    pub email: EmailView,
    /// Slack alerts: whether a webhook is set (never the URL).
    pub slack: SlackView,
}

/// Email delivery as shown.
#[derive(Debug, Clone, Serialize)]
pub struct EmailView {
    /// Alerts are emailed.
    pub enabled: bool,
    /// `alert_smtp_url` is set.
    pub smtp_url_set: bool,
    /// Sender.
    pub from: Option<String>,
    /// Recipients.
    pub to: Vec<String>,
    /// Environment variables that fix some of these values.
    pub locked_by: Vec<String>,
}

/// Slack delivery as shown.
#[derive(Debug, Clone, Serialize)]
pub struct SlackView {
    /// Alerts are posted to a webhook.
    pub enabled: bool,
    /// The environment variable that fixes the webhook, if one does.
    pub locked_by: Option<String>,
}

/// The running app's editable settings.
pub struct SettingsAdmin {
    providers: HashMap<String, Arc<Switchable>>,
    channels: LiveChannels,
    current: Mutex<Settings>,
    /// One edit at a time (file read-modify-write).
    editing: Mutex<()>,
}

impl std::fmt::Debug for SettingsAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SettingsAdmin")
            .field("providers", &self.providers.keys().collect::<Vec<_>>())
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

/// Providers by name, as the orchestrator takes them.
pub type Providers = HashMap<String, Arc<dyn Provider>>;

/// Wraps every provider of `providers` in a [`Switchable`], returning the wrappers (for
/// [`SettingsAdmin`]) and the same providers as the orchestrator takes them.
pub fn switchable(providers: Providers) -> (HashMap<String, Arc<Switchable>>, Providers) {
    let wrapped: HashMap<String, Arc<Switchable>> = providers
        .into_iter()
        .map(|(name, p)| (name, Arc::new(Switchable::new(p))))
        .collect();
    let plain = wrapped
        .iter()
        .map(|(name, p)| (name.clone(), Arc::clone(p) as Arc<dyn Provider>))
        .collect();
    (wrapped, plain)
}

impl SettingsAdmin {
    /// Over the settings the app started with, its switchable providers and its live
    /// channels.
    pub fn new(
        settings: Settings,
        providers: HashMap<String, Arc<Switchable>>,
        channels: LiveChannels,
    ) -> SettingsAdmin {
        SettingsAdmin {
            providers,
            channels,
            current: Mutex::new(settings),
            editing: Mutex::new(()),
        }
    }

    /// The settings in effect now.
    pub fn current(&self) -> Settings {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// What the dashboard shows.
    pub fn view(&self) -> SettingsView {
        view(
            &self.current(),
            self.target().as_deref(),
            &EnvVars::from_process(),
        )
    }

    /// The file edits go to: the one read at start (`--config`, `SUTAZAI_CONFIG` or the
    /// platform default), else the platform default, created by the first edit; `None`
    /// without a config directory (no home directory), where a start would not read it.
    fn target(&self) -> Option<PathBuf> {
        self.current().config_file.clone().or_else(|| {
            Locations::detect()
                .config_dir
                .map(|d| d.join(CONFIG_FILE_NAME))
        })
    }

    /// Applies `edit` (see the module docs). Blocking file I/O: call from
    /// `spawn_blocking`.
    pub fn apply(&self, edit: &SettingsEdit) -> Result<SettingsView, EditError> {
        let _editing = self.editing.lock().unwrap_or_else(|p| p.into_inner());
        let env = EnvVars::from_process();
        let before = self.current();
        check_edit(edit, &before, &env)?;
        let Some(named) = self.target() else {
            return Err(EditError::Invalid(
                "no config file is in use and no config directory is known (no home \
                 directory): start the app with --config FILE or SUTAZAI_CONFIG to edit settings"
                    .into(),
            ));
        };
        // Through a symbolic link to the file itself, so the link stays a link.
        let target = fs::canonicalize(&named).unwrap_or(named);
        let text = match fs::read_to_string(&target) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(EditError::Io(format!("reading {}: {e}", target.display()))),
        };
        let updated = rewrite(&text, edit, &before)?;

        let dir = target
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        fs::create_dir_all(&dir)
            .map_err(|e| EditError::Io(format!("creating {}: {e}", dir.display())))?;
        let temporary = dir.join(format!(".{CONFIG_FILE_NAME}.{}.tmp", std::process::id()));
        let outcome = (|| {
            write_private(&temporary, &updated)?;
            let after =
                Settings::load_with(Some(&temporary), &env, &Locations::detect()).map_err(|e| {
                    EditError::Invalid(
                        e.to_string()
                            .replace(&*temporary.to_string_lossy(), &target.to_string_lossy()),
                    )
                })?;
            let channels = crate::observe::alert_channels(&after)
                .map_err(|e| EditError::Invalid(format!("{e:#}")))?;
            // Built (and so checked) now, installed only once the file is in place.
            let channels =
                LiveChannels::build(&channels).map_err(|e| EditError::Invalid(e.to_string()))?;
            let mut swaps = Vec::new();
            for (name, provider) in &after.providers {
                let changed = before.providers.get(name) != Some(provider);
                if let (true, Some(switchable)) = (changed, self.providers.get(name)) {
                    let options = crate::serve::provider_options(provider);
                    let client = crate::serve::build_provider(name, provider, options)
                        .map_err(|e| EditError::Invalid(format!("{e:#}")))?;
                    swaps.push((Arc::clone(switchable), client));
                }
            }
            fs::rename(&temporary, &target)
                .map_err(|e| EditError::Io(format!("replacing {}: {e}", target.display())))?;
            Ok((after, channels, swaps))
        })();
        let (mut after, channels, swaps) = match outcome {
            Ok(done) => done,
            Err(e) => {
                let _ = fs::remove_file(&temporary);
                return Err(e);
            }
        };
        for (switchable, client) in swaps {
            tracing::info!(
                provider = switchable.id(),
                "LLM endpoint changed in the settings"
            );
            if let Err(e) = switchable.replace(client) {
                tracing::error!(error = %e, "could not switch the LLM endpoint");
            }
        }
        self.channels.install(channels);
        after.config_file = Some(target.clone());
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = after;
        tracing::info!(file = %target.display(), "settings saved from the dashboard");
        Ok(self.view())
    }
}

/// Refuses edits of values an environment variable fixes, unknown providers, and values
/// too long or of the wrong shape to be worth loading.
fn check_edit(edit: &SettingsEdit, settings: &Settings, env: &EnvVars) -> Result<(), EditError> {
    let set = |var: &str| env.get(var).ok().flatten().is_some_and(|v| !v.is_empty());
    let locked = |var: &str, what: &str| {
        EditError::Locked(format!(
            "{what} is set by the environment variable {var}, which overrides the config file; \
             unset {var} to change it here"
        ))
    };
    for (name, url) in &edit.provider_urls {
        let Some(provider) = settings.providers.get(name) else {
            return Err(EditError::Invalid(format!(
                "invalid `providers.{name}`: no provider `{name}` is configured (configured: {})",
                settings
                    .providers
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        if url.trim().is_empty() || url.chars().count() > MAX_VALUE_CHARS {
            return Err(EditError::Invalid(format!(
                "invalid `providers.{name}.base_url`: give an http(s) URL of at most {MAX_VALUE_CHARS} characters"
            )));
        }
        if implicit_ollama(name, provider.kind, settings) && set("OLLAMA_API_URL") {
            return Err(locked("OLLAMA_API_URL", &format!("the URL of `{name}`")));
        }
    }
    let strings = [
        (&edit.smtp_url, "alert_smtp_url", "SUTAZAI_ALERT_SMTP_URL"),
        (
            &edit.email_from,
            "alert_email_from",
            "SUTAZAI_ALERT_EMAIL_FROM",
        ),
        (
            &edit.slack_webhook,
            "alert_slack_webhook",
            "SUTAZAI_ALERT_SLACK_WEBHOOK",
        ),
    ];
    for (value, key, var) in strings {
        if let Some(value) = value {
            if value.chars().count() > MAX_VALUE_CHARS {
                return Err(EditError::Invalid(format!(
                    "invalid `{key}`: at most {MAX_VALUE_CHARS} characters"
                )));
            }
            if set(var) {
                return Err(locked(var, &format!("`{key}`")));
            }
        }
    }
    if let Some(to) = &edit.email_to {
        if to.len() > MAX_RECIPIENTS
            || to
                .iter()
                .any(|a| a.trim().is_empty() || a.chars().count() > 320)
        {
            return Err(EditError::Invalid(format!(
                "invalid `alert_email_to`: 1 to {MAX_RECIPIENTS} non-empty addresses"
            )));
        }
        if set("SUTAZAI_ALERT_EMAIL_TO") {
            return Err(locked("SUTAZAI_ALERT_EMAIL_TO", "`alert_email_to`"));
        }
    }
    Ok(())
}

/// Whether `name` is the built-in Ollama provider configured by `ollama_api_url` (no
/// `[providers.ollama]` table of its own).
fn implicit_ollama(name: &str, kind: ProviderKind, settings: &Settings) -> bool {
    name == crate::settings::DEFAULT_PROVIDER
        && kind == ProviderKind::Ollama
        && settings
            .providers
            .get(name)
            .is_some_and(|p| p.base_url == settings.ollama_api_url)
}

/// The config file's text with the edited keys replaced, everything else as it was.
fn rewrite(text: &str, edit: &SettingsEdit, settings: &Settings) -> Result<String, EditError> {
    // The parser's own message quotes the offending line, which may hold a secret.
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].lines().count().max(1));
        EditError::Invalid(format!(
            "the config file does not parse{}: {}; fix it by hand first",
            line.map(|l| format!(" (line {l})")).unwrap_or_default(),
            e.message()
        ))
    })?;
    for (name, url) in &edit.provider_urls {
        let has_table = doc
            .get("providers")
            .and_then(|p| p.get(name))
            .is_some_and(|t| t.is_table_like());
        let kind = settings
            .providers
            .get(name)
            .map(|p| p.kind)
            .unwrap_or(ProviderKind::Ollama);
        if !has_table && implicit_ollama(name, kind, settings) {
            doc["ollama_api_url"] = toml_edit::value(url.as_str());
        } else if has_table {
            doc["providers"][name.as_str()]["base_url"] = toml_edit::value(url.as_str());
        } else {
            return Err(EditError::Invalid(format!(
                "invalid `providers.{name}`: it is not defined in the config file"
            )));
        }
    }
    let mut set_string = |key: &str, value: &Option<String>| match value.as_deref() {
        None => {}
        Some("") => {
            doc.remove(key);
        }
        Some(v) => doc[key] = toml_edit::value(v),
    };
    set_string("alert_smtp_url", &edit.smtp_url);
    set_string("alert_email_from", &edit.email_from);
    set_string("alert_slack_webhook", &edit.slack_webhook);
    if let Some(to) = &edit.email_to {
        if to.is_empty() {
            doc.remove("alert_email_to");
        } else {
            // The setting is one comma-separated string, like its variable.
            doc["alert_email_to"] = toml_edit::value(to.join(","));
        }
    }
    Ok(doc.to_string())
}

/// Writes `text` to `path` readable by its owner only, flushed to disk.
fn write_private(path: &Path, text: &str) -> Result<(), EditError> {
    let io = |e: std::io::Error| EditError::Io(format!("writing {}: {e}", path.display()));
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

fn view(settings: &Settings, target: Option<&Path>, env: &EnvVars) -> SettingsView {
    let set = |var: &str| env.get(var).ok().flatten().is_some_and(|v| !v.is_empty());
    let providers = settings
        .providers
        .iter()
        .map(|(name, p)| ProviderView {
            name: name.clone(),
            kind: p.kind.as_str(),
            base_url: p.base_url.clone(),
            default: *name == settings.default_provider,
            api_key_set: p.api_key.is_some(),
            locked_by: (implicit_ollama(name, p.kind, settings) && set("OLLAMA_API_URL"))
                .then(|| "OLLAMA_API_URL".to_owned()),
        })
        .collect();
    let email_vars = [
        "SUTAZAI_ALERT_SMTP_URL",
        "SUTAZAI_ALERT_EMAIL_FROM",
        "SUTAZAI_ALERT_EMAIL_TO",
    ];
    SettingsView {
        config_file: target.map(|t| t.display().to_string()).unwrap_or_default(),
        config_file_exists: target.is_some_and(Path::is_file),
        model: settings.model.clone(),
        providers,
        email: EmailView {
            enabled: settings.alert_smtp_url.is_some()
                && settings.alert_email_from.is_some()
                && !settings.alert_email_to.is_empty(),
            smtp_url_set: settings.alert_smtp_url.is_some(),
            from: settings.alert_email_from.clone(),
            to: settings.alert_email_to.clone(),
            locked_by: email_vars
                .iter()
                .filter(|v| set(v))
                .map(|v| (*v).to_owned())
                .collect(),
        },
        slack: SlackView {
            enabled: settings.alert_slack_webhook.is_some(),
            locked_by: set("SUTAZAI_ALERT_SLACK_WEBHOOK")
                .then(|| "SUTAZAI_ALERT_SLACK_WEBHOOK".to_owned()),
        },
    }
}
