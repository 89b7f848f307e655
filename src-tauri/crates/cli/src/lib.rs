//! The SutazAI command line, shared by the desktop binary (`sutazai <command>`) and the
//! GUI-free `sutazai-headless` binary for servers and end-to-end tests.
//!
//! # Layout
//! - [`settings`]: [`Settings`] from defaults < TOML config file < environment (the
//!   system description's variables, unprefixed), validated when loaded so a bad value
//!   stops the process with a message naming the variable and the value.
//! - [`serve`]: the wiring of `sutazai serve` — data directory, journal, agent registry,
//!   LLM providers, orchestrator, HTTP API — as [`run_server`] for the command and
//!   [`spawn_background`] for the desktop shell, which shares its tokio runtime.
//! - [`cli`]: the clap definitions ([`Cli`]) and the client subcommands (`task ...`,
//!   `agents ...`), which talk to a running server over HTTP through [`client`].
//! - [`doctor`]: `sutazai doctor`, the environment check with fix hints.
//! - [`infra`]: the Docker services — the infrastructure layer of `serve` (healer,
//!   auto-scaler) and `sutazai infra …`.
//! - [`node`]: joining the message bus (in-process or Redis, key, limits, heartbeats) and
//!   `sutazai worker`, which executes agent steps from a Redis bus.
//! - [`observe`]: the monitor as `serve` runs it — its history file, alert channels and
//!   the app's own observations (agents, tasks, bus, managed containers).
//! - `live`: `sutazai metrics --watch` (the live terminal view) and `--series`.
//! - [`output`]: tables and formatting for human-readable output.
//!
//! [`main_with`] is the entry point of both binaries: it builds one multi-thread tokio
//! runtime, sets up logging from `LOG_LEVEL`, runs the command and maps failures to the
//! exit status.

mod auth_cmd;
pub mod cli;
pub mod client;
pub mod doctor;
pub mod infra;
mod live;
pub mod models;
pub mod node;
pub mod observe;
pub mod output;
pub mod serve;
pub mod settings;
pub mod settings_admin;

use std::io::IsTerminal as _;

use anyhow::Context as _;
use clap::CommandFactory as _;

pub use cli::{AgentsCmd, AlertsCmd, Cli, Command, InfraCmd, SubmitArgs, TaskCmd};
pub use client::{ApiClient, ClientError};
pub use serve::{BackgroundServer, Core, Embedding, run_server, spawn_background};
pub use settings::{EnvVars, Locations, Settings, SettingsError};

use crate::cli::Outcome;

/// Log filter of the client commands and `doctor` when `LOG_LEVEL` is not set: their
/// output is the answer, so only problems are logged (to stderr).
const CLIENT_LOG_LEVEL: &str = "warn";

/// Runs the command line: `serve` until Ctrl-C/SIGTERM, a client command against the
/// server (`--api`, `SUTAZAI_API_URL`, or the configured host and port), or `doctor`.
///
/// Errors that the user must act on and that are already explained on stderr (a server's
/// `{code, message}` error, an unreachable server, a failed `--wait`ed task, failed
/// essential `doctor` checks) end the process with exit status 1 here; every other error
/// is returned for `main` to print.
pub fn main_with(cli: Cli) -> anyhow::Result<()> {
    let Some(command) = cli.command.clone() else {
        let mut help = Cli::command();
        eprintln!("{}", help.render_help());
        std::process::exit(2);
    };
    match &command {
        Command::Serve => {
            let settings = Settings::load(cli.config.as_deref()).context("loading settings")?;
            init_tracing(&settings.log_level);
            runtime()?.block_on(serve::run_server(settings, serve::shutdown_signal(), None))
        }
        Command::Worker { agents } => {
            let settings = Settings::load(cli.config.as_deref()).context("loading settings")?;
            init_tracing(&settings.log_level);
            runtime()?.block_on(node::run_worker(settings, agents, serve::shutdown_signal()))
        }
        Command::Doctor => {
            init_tracing(&client_log_level());
            let runtime = runtime()?;
            let report = runtime.block_on(doctor::run(cli.config.as_deref()));
            drop(runtime);
            let text = if cli.json {
                let mut json =
                    serde_json::to_string_pretty(&report).context("formatting the report")?;
                json.push('\n');
                json
            } else {
                report.render()
            };
            if let Err(e) = output::emit(&text)
                && e.kind() != std::io::ErrorKind::BrokenPipe
            {
                return Err(e).context("writing the report");
            }
            if !report.ok {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Models(cmd) => {
            init_tracing(&client_log_level());
            let settings = Settings::load(cli.config.as_deref()).context("loading settings")?;
            runtime()?.block_on(models::run(cmd, &settings, cli.json))
        }
        Command::Infra(cmd) => {
            init_tracing(&client_log_level());
            let settings = Settings::load(cli.config.as_deref()).context("loading settings")?;
            runtime()?.block_on(infra::run(cmd, &settings, cli.json))
        }
        Command::Auth(cmd) => {
            init_tracing(&client_log_level());
            let settings = Settings::load(cli.config.as_deref()).context("loading settings")?;
            auth_cmd::run_auth(cmd, &settings, cli.json)
        }
        Command::Audit(cmd) => {
            init_tracing(&client_log_level());
            let settings = Settings::load(cli.config.as_deref()).context("loading settings")?;
            auth_cmd::run_audit(cmd, &settings, cli.json)
        }
        Command::Task(_)
        | Command::Agents(_)
        | Command::Status
        | Command::Alerts(_)
        | Command::Metrics(_) => {
            init_tracing(&client_log_level());
            // From the settings: the server's address, and its TLS chain to trust.
            let (base, chain) = match &cli.api {
                Some(url) => (url.clone(), None),
                None => {
                    let settings = Settings::load(cli.config.as_deref())
                        .context("loading settings to find the server (or pass --api URL)")?;
                    let chain = match &settings.tls {
                        Some(files) => Some(std::fs::read(&files.cert).with_context(|| {
                            format!("reading SUTAZAI_TLS_CERT {}", files.cert.display())
                        })?),
                        None => None,
                    };
                    (settings.api_base_url(), chain)
                }
            };
            let client = match ApiClient::new(&base)
                .and_then(|c| match &chain {
                    Some(pem) => c.trusting(pem),
                    None => Ok(c),
                })
                .and_then(|c| c.with_token(cli.token.clone()))
            {
                Ok(client) => client,
                Err(e) => exit_with_client_error(&e),
            };
            let runtime = runtime()?;
            let result = runtime.block_on(cli::run_client(&command, &client, cli.json));
            drop(runtime);
            match result {
                Ok(Outcome::Success) => Ok(()),
                Ok(Outcome::Failure) => std::process::exit(1),
                // The reader went away (`| head`): nothing left to tell anyone.
                Err(e) if output::is_broken_pipe(&e) => Ok(()),
                Err(e) => match e.downcast_ref::<ClientError>() {
                    Some(client_error) => exit_with_client_error(client_error),
                    None => Err(e),
                },
            }
        }
    }
}

/// Prints a client error the way the CLI promises (`error: <message> (<code>)`, plus a
/// hint when the server is not running) and exits with status 1.
fn exit_with_client_error(error: &ClientError) -> ! {
    eprintln!("error: {error}");
    if error.is_unreachable() {
        eprintln!(
            "hint: is the server running? Start it with `sutazai serve`, or point --api / \
             SUTAZAI_API_URL at a running one"
        );
    }
    std::process::exit(1);
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sutazai")
        .build()
        .context("starting the tokio runtime")
}

/// `LOG_LEVEL` when it is set and valid, else [`CLIENT_LOG_LEVEL`]. (`serve` validates
/// `LOG_LEVEL` strictly through [`Settings`]; a client should not refuse to run over it.)
fn client_log_level() -> String {
    std::env::var("LOG_LEVEL")
        .ok()
        .filter(|l| {
            tracing_subscriber::EnvFilter::try_new(l.trim()).is_ok() && !l.trim().is_empty()
        })
        .unwrap_or_else(|| CLIENT_LOG_LEVEL.to_owned())
}

/// Logs to stderr (stdout carries command output) with `filter`, a level or a
/// `RUST_LOG`-style directive list. A no-op if the embedding binary already installed a
/// subscriber.
pub fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
