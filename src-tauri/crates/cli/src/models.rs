//! `sutazai models list|pull`: the default provider's models, straight from the LLM
//! endpoint (Ollama's `/api/tags` and `/api/pull` with progress; an OpenAI-compatible
//! endpoint's `/v1/models`). No server is needed, so a user can pull the model the agents
//! will use before the first `serve`.

use std::io::Write;
use std::sync::Mutex;

use anyhow::{Context, bail};
use sutazai_llm::{OllamaProvider, ProviderOptions, PullProgress};

use crate::cli::ModelsCmd;
use crate::serve::build_provider;
use crate::settings::{ProviderKind, Settings};

/// Runs a `models` subcommand.
pub async fn run(cmd: &ModelsCmd, settings: &Settings, json: bool) -> anyhow::Result<()> {
    let name = settings.default_provider.clone();
    let provider_settings = settings
        .default_provider_settings()
        .with_context(|| format!("the default provider `{name}` is not configured"))?;
    match cmd {
        ModelsCmd::List => {
            let provider = build_provider(&name, provider_settings, ProviderOptions::default())?;
            let models = provider.list_models().await.with_context(|| {
                format!(
                    "listing the models of `{name}` at {}",
                    provider_settings.base_url
                )
            })?;
            if json {
                let list: Vec<_> = models
                    .iter()
                    .map(|m| serde_json::json!({"name": m.name, "size": m.size}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            if models.is_empty() {
                println!(
                    "no models; pull one with `sutazai models pull {}`",
                    settings.model
                );
            }
            for m in &models {
                let default =
                    if crate::doctor::model_available(std::slice::from_ref(m), &settings.model) {
                        "  (default)"
                    } else {
                        ""
                    };
                let size = m
                    .size
                    .map(|s| format!("{:.1} MB", s as f64 / 1e6))
                    .unwrap_or_default();
                println!("{:<40} {size:>10}{default}", m.name);
            }
            Ok(())
        }
        ModelsCmd::Pull { model } => {
            if provider_settings.kind != ProviderKind::Ollama {
                bail!(
                    "the default provider `{name}` is OpenAI-compatible; pulling models is an Ollama feature — load the model in that server instead"
                );
            }
            let model = model.clone().unwrap_or_else(|| settings.model.clone());
            let provider = OllamaProvider::new(
                &name,
                &provider_settings.base_url,
                ProviderOptions::default(),
            )
            .with_context(|| format!("configuring provider `{name}`"))?;
            let last = Mutex::new(String::new());
            let progress = |p: &PullProgress| {
                let line = match (p.completed, p.total) {
                    (Some(done), Some(total)) if total > 0 => {
                        format!("{} {:.0}%", p.status, done as f64 * 100.0 / total as f64)
                    }
                    _ => p.status.clone(),
                };
                let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
                if *last != line {
                    eprintln!("{line}");
                    *last = line;
                }
            };
            provider.pull(&model, &progress).await.with_context(|| {
                format!("pulling `{model}` from {}", provider_settings.base_url)
            })?;
            println!("pulled {model}");
            std::io::stdout().flush().ok();
            Ok(())
        }
    }
}

/// `POST /models/pull` for the API: pulls through the default provider, progress as a
/// stream of JSON values ending with `{"status": "success"}` (or an error item). Refused
/// up front (422 `not_supported`) where the default provider is OpenAI-compatible.
pub fn pull_for_api(
    settings: impl Fn() -> Settings + Send + Sync + 'static,
    shutdown: tokio_util::sync::CancellationToken,
) -> sutazai_api::setup::PullFn {
    use futures::StreamExt;
    use sutazai_api::setup::SetupError;
    std::sync::Arc::new(move |model: String| {
        // The settings as they are now: the dashboard may have moved the endpoint.
        let settings = settings();
        let name = settings.default_provider.clone();
        let provider = settings.default_provider_settings().cloned();
        let Some(provider_settings) = provider.as_ref() else {
            return Err(SetupError {
                code: "not_configured",
                message: format!("the default provider `{name}` is not configured"),
                status: 500,
            });
        };
        if provider_settings.kind != ProviderKind::Ollama {
            return Err(SetupError {
                code: "not_supported",
                message: format!(
                    "the default provider `{name}` is OpenAI-compatible; pulling models is an Ollama feature — load the model in that server instead"
                ),
                status: 422,
            });
        }
        let ollama = OllamaProvider::new(
            &name,
            &provider_settings.base_url,
            ProviderOptions::default(),
        )
        .map_err(|e| SetupError {
            code: "not_configured",
            message: format!("configuring provider `{name}`: {e}"),
            status: 500,
        })?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let base_url = provider_settings.base_url.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let progress = |p: &PullProgress| {
                let _ = tx.send(Ok(serde_json::to_value(p).unwrap_or_default()));
            };
            // The pull ends with the server (so a quit does not wait for a download) or
            // when the client went away.
            let outcome = tokio::select! {
                () = shutdown.cancelled() => return,
                () = tx.closed() => return,
                outcome = ollama.pull(&model, &progress) => outcome,
            };
            let _ = tx.send(match outcome {
                Ok(()) => Ok(serde_json::json!({"status": "success", "model": model})),
                Err(e) => Err(SetupError {
                    code: "pull_failed",
                    message: format!("pulling `{model}` from {base_url}: {e}"),
                    status: 502,
                }),
            });
        });
        Ok(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })
        .boxed())
    })
}
