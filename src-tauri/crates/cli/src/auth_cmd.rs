//! `sutazai auth …` and `sutazai audit …`: API keys, tokens and the audit log, worked on
//! directly in the data directory's `auth.sqlite3` (whoever can read the data directory
//! owns the server anyway), so the first admin key can be made before any server runs and
//! a running server picks changes up within a second.

use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use sutazai_auth::{AuditLog, Credentials, Role, TokenKind, Tokens};

use crate::output::{self, Table};
use crate::settings::Settings;

/// `sutazai auth ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum AuthCmd {
    /// API keys: create, list, revoke.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Print an access token signed with the server's JWT secret (for scripts and the
    /// spec's `curl -H "Authorization: Bearer …"`).
    Token {
        /// admin, operator or viewer.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Who the token names (shown in the audit log).
        #[arg(long, default_value = "cli")]
        subject: String,
        /// Lifetime (`15m`, `1h`, `7d`); default SESSION_TIMEOUT.
        #[arg(long, value_parser = humantime::parse_duration)]
        ttl: Option<Duration>,
    },
}

/// `sutazai auth keys ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum KeysCmd {
    /// Create a key; it is printed once and only its hash is stored.
    Create {
        /// 1–64 letters, digits, `-`, `_`, `.` or spaces; unique among active keys.
        #[arg(long)]
        name: String,
        /// admin, operator or viewer.
        #[arg(long, value_parser = parse_role)]
        role: Role,
    },
    /// Every key (never its secret), newest first.
    List,
    /// Revoke a key: it and every session opened with it stop working.
    Revoke {
        /// The key's id (from `list`).
        id: String,
    },
}

/// `sutazai audit ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum AuditCmd {
    /// The newest entries.
    List {
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
    /// Re-compute the hash chain; exit status 1 when it is broken.
    Verify,
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

fn emit(text: &str) -> anyhow::Result<()> {
    match output::emit(text) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("writing the answer")
        }
        _ => Ok(()),
    }
}

fn json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value).context("formatting JSON")?;
    text.push('\n');
    emit(&text)
}

/// Runs `sutazai auth ...`.
pub fn run_auth(cmd: &AuthCmd, settings: &Settings, as_json: bool) -> anyhow::Result<()> {
    let path = settings.auth_path();
    match cmd {
        AuthCmd::Keys(KeysCmd::Create { name, role }) => {
            let store = Credentials::open(&path)
                .with_context(|| format!("opening the credential store {}", path.display()))?;
            let key = store.create_key(name, *role)?;
            if as_json {
                return json(&key);
            }
            let mut text = format!(
                "Created API key `{}` ({} role, id {}).\n\n    {}\n\nThis is the only time the key is shown; only its hash is stored in {}.\n",
                key.name,
                key.role,
                key.id,
                key.key,
                path.display()
            );
            if !settings.auth_required() {
                text.push_str("Authentication is off on this server: set ENABLE_AUTH=true for keys to be required.\n");
            }
            emit(&text)
        }
        AuthCmd::Keys(KeysCmd::List) => {
            let store = Credentials::open(&path)
                .with_context(|| format!("opening the credential store {}", path.display()))?;
            let keys = store.list_keys()?;
            if as_json {
                return json(&serde_json::json!({ "keys": keys }));
            }
            let mut table = Table::new(&[
                "ID",
                "NAME",
                "ROLE",
                "PREFIX",
                "CREATED",
                "LAST USED",
                "REVOKED",
            ]);
            let when = |t: Option<chrono::DateTime<chrono::Utc>>| {
                t.map_or("-".to_owned(), |t| {
                    t.format("%Y-%m-%d %H:%M:%S").to_string()
                })
            };
            for k in &keys {
                table.row(vec![
                    k.id.clone(),
                    k.name.clone(),
                    k.role.to_string(),
                    k.prefix.clone(),
                    when(Some(k.created_at)),
                    when(k.last_used_at),
                    when(k.revoked_at),
                ]);
            }
            emit(&table.render())
        }
        AuthCmd::Keys(KeysCmd::Revoke { id }) => {
            let store = Credentials::open(&path)
                .with_context(|| format!("opening the credential store {}", path.display()))?;
            let key = store.revoke_key(id)?;
            if as_json {
                return json(&key);
            }
            emit(&format!(
                "Revoked API key `{}` ({}); sessions opened with it end too.\n",
                key.name, key.id
            ))
        }
        AuthCmd::Token { role, subject, ttl } => {
            if !settings.auth_required() {
                bail!(
                    "authentication is off (ENABLE_AUTH is not true and the API listens on loopback): the server needs no token"
                );
            }
            let secret = sutazai_auth::secret::load_or_create(
                settings.jwt_secret_key.as_ref().map(|s| s.expose()),
                &settings.data_dir,
            )?;
            let lifetime = ttl.unwrap_or(settings.session_timeout);
            if lifetime.is_zero() {
                bail!("--ttl must be positive");
            }
            let tokens = Tokens::new(&secret, lifetime, lifetime)?;
            let token = tokens.mint(
                subject.trim(),
                *role,
                None,
                TokenKind::Access,
                chrono::Utc::now().timestamp(),
                lifetime,
            )?;
            if as_json {
                return json(&serde_json::json!({
                    "access_token": token,
                    "token_type": "Bearer",
                    "expires_in": lifetime.as_secs(),
                    "role": role,
                    "subject": subject.trim(),
                }));
            }
            emit(&format!("{token}\n"))
        }
    }
}

/// Runs `sutazai audit ...`.
pub fn run_audit(cmd: &AuditCmd, settings: &Settings, as_json: bool) -> anyhow::Result<()> {
    let path = settings.auth_path();
    if !path.exists() {
        bail!(
            "no audit log at {} yet: it is created when a server starts",
            path.display()
        );
    }
    match cmd {
        AuditCmd::List { limit } => {
            let log = AuditLog::open(&path)
                .with_context(|| format!("opening the audit log {}", path.display()))?;
            let page = log.page(None, *limit);
            log.close();
            let page = page?;
            if as_json {
                return json(&page);
            }
            let mut table = Table::new(&[
                "SEQ", "TIME", "ACTOR", "ROLE", "CALL", "STATUS", "OUTCOME", "FROM",
            ]);
            for e in &page.entries {
                let r = &e.record;
                table.row(vec![
                    e.seq.to_string(),
                    r.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                    r.actor.clone(),
                    r.role.map_or("-".to_owned(), |r| r.to_string()),
                    format!("{} {}", r.method, r.path),
                    r.status.to_string(),
                    format!("{:?}", r.outcome).to_lowercase(),
                    r.peer.clone().unwrap_or_else(|| "-".to_owned()),
                ]);
            }
            emit(&table.render())
        }
        AuditCmd::Verify => {
            let report = sutazai_auth::verify_chain(&path)?;
            if as_json {
                json(&report)?;
            } else if report.ok {
                emit(&format!(
                    "audit chain intact: {} entries, head {}\n",
                    report.entries, report.head_hash
                ))?;
            } else {
                emit(&format!(
                    "audit chain BROKEN at entry #{}: it or an earlier entry was edited or deleted\n",
                    report.first_bad_seq.unwrap_or_default()
                ))?;
            }
            if !report.ok {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}
