//! A provider with a circuit breaker and a fallback: calls go to the primary endpoint; when
//! it fails in a way that passes (unreachable, timed out, 5xx — [`LlmError::is_retryable`])
//! before any token was streamed, or while its breaker is open after repeated failures,
//! the call is answered by another configured provider with a model of the same family
//! (`smollm2:135m` on Ollama ↔ `smollm2-135m-instruct` on an OpenAI-compatible server).
//! After the cooldown one call tries the primary again (half-open); a success closes the
//! breaker.
//!
//! Family matching, without case: the requested model's name before its tag (`llama3.1` of
//! `llama3.1:8b`, the part after `/` for `org/model` names) must begin the candidate's name
//! and end there or at a separator (`-`, `_`, `:`, …), so `phi` matches `phi-2` but not
//! `phi3` or `dolphin-phi`, and `qwen2` not `qwen2.5`; a candidate whose name also has the
//! tag as a word (`8b`) is preferred. The fallback's model list is cached for a minute.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::{ChatRequest, ChatResponse, LlmError, ModelInfo, Provider, TokenSink};

/// How long the fallback's model list is trusted.
const MODELS_TTL: Duration = Duration::from_secs(60);

/// Breaker settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailoverConfig {
    /// Consecutive failures that open the breaker.
    pub threshold: u32,
    /// How long an open breaker sends everything to the fallback.
    pub cooldown: Duration,
}

impl Default for FailoverConfig {
    fn default() -> Self {
        FailoverConfig {
            threshold: 3,
            cooldown: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Default)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
    /// A call is trying the primary after the cooldown (half-open): the others go to the
    /// fallback meanwhile, so a hung primary costs one call its timeout, not every call.
    probing: bool,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Failover {
    primary: Arc<dyn Provider>,
    fallback: Arc<dyn Provider>,
    config: FailoverConfig,
    breaker: Mutex<Breaker>,
    models: Mutex<Option<(Instant, Vec<ModelInfo>)>>,
}

impl Failover {
    pub fn new(
        primary: Arc<dyn Provider>,
        fallback: Arc<dyn Provider>,
        config: FailoverConfig,
    ) -> Failover {
        Failover {
            primary,
            fallback,
            config,
            breaker: Mutex::default(),
            models: Mutex::default(),
        }
    }

    /// Whether the primary's breaker is open now.
    pub fn is_open(&self) -> bool {
        let breaker = self.breaker.lock().unwrap_or_else(PoisonError::into_inner);
        breaker
            .open_until
            .is_some_and(|until| Instant::now() < until)
    }

    /// Whether this call goes to the fallback without trying the primary: the breaker is
    /// open, or past its cooldown while another call is trying the primary.
    fn skip_primary(&self) -> bool {
        let mut b = self.breaker.lock().unwrap_or_else(PoisonError::into_inner);
        match b.open_until {
            None => false,
            Some(until) if Instant::now() < until => true,
            Some(_) if b.probing => true,
            Some(_) => {
                b.probing = true;
                false
            }
        }
    }

    fn record(&self, ok: bool) {
        let mut b = self.breaker.lock().unwrap_or_else(PoisonError::into_inner);
        b.probing = false;
        if ok {
            if b.failures >= self.config.threshold {
                tracing::info!(
                    provider = self.primary.id(),
                    "LLM provider answers again: breaker closed"
                );
            }
            *b = Breaker::default();
            return;
        }
        b.failures = b.failures.saturating_add(1);
        if b.failures >= self.config.threshold {
            if b.open_until.is_none_or(|until| Instant::now() >= until) {
                tracing::warn!(
                    provider = self.primary.id(),
                    fallback = self.fallback.id(),
                    failures = b.failures,
                    cooldown_s = self.config.cooldown.as_secs(),
                    "LLM provider failing: breaker open, calls go to the fallback"
                );
            }
            b.open_until = Some(Instant::now() + self.config.cooldown);
        }
    }

    async fn fallback_models(&self) -> Result<Vec<ModelInfo>, LlmError> {
        if let Some((at, models)) = &*self.models.lock().unwrap_or_else(PoisonError::into_inner)
            && at.elapsed() < MODELS_TTL
        {
            return Ok(models.clone());
        }
        let models = self.fallback.list_models().await?;
        *self.models.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((Instant::now(), models.clone()));
        Ok(models)
    }

    /// The call on the fallback, with its model of the requested family; `primary_error`
    /// is answered when there is none.
    async fn on_fallback(
        &self,
        req: &ChatRequest,
        on_token: Option<TokenSink<'_>>,
        primary_error: LlmError,
    ) -> Result<ChatResponse, LlmError> {
        let models = match self.fallback_models().await {
            Ok(models) => models,
            Err(e) => {
                tracing::warn!(fallback = self.fallback.id(), error = %e, "fallback provider unavailable too");
                return Err(primary_error);
            }
        };
        let Some(model) = same_family(&req.model, &models) else {
            tracing::warn!(
                fallback = self.fallback.id(),
                model = %req.model,
                "the fallback provider has no model of this family"
            );
            return Err(primary_error);
        };
        tracing::info!(
            provider = self.primary.id(),
            fallback = self.fallback.id(),
            model = %model,
            reason = %primary_error,
            "answering from the fallback provider"
        );
        let mut request = req.clone();
        request.model = model;
        self.fallback.chat(&request, on_token).await
    }
}

#[async_trait::async_trait]
impl Provider for Failover {
    fn id(&self) -> &str {
        self.primary.id()
    }

    async fn chat(
        &self,
        req: &ChatRequest,
        on_token: Option<TokenSink<'_>>,
    ) -> Result<ChatResponse, LlmError> {
        if self.skip_primary() {
            let reason = LlmError::Server {
                message: format!("provider `{}` is failing (breaker open)", self.primary.id()),
            };
            return self.on_fallback(req, on_token, reason).await;
        }
        let streamed = AtomicBool::new(false);
        let answer = match on_token {
            Some(sink) => {
                let watch = |text: &str| {
                    streamed.store(true, Ordering::Relaxed);
                    sink(text);
                };
                self.primary.chat(req, Some(&watch)).await
            }
            None => self.primary.chat(req, None).await,
        };
        match answer {
            Ok(response) => {
                self.record(true);
                Ok(response)
            }
            // Half an answer cannot be continued elsewhere: the caller's retry decides.
            Err(e) if e.is_retryable() && !streamed.load(Ordering::Relaxed) => {
                self.record(false);
                self.on_fallback(req, on_token, e).await
            }
            Err(e) => {
                // A request-caused error (unknown model, bad schema) means the endpoint
                // answers: it counts as healthy, and ends a half-open trial either way.
                self.record(!e.is_retryable());
                Err(e)
            }
        }
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, LlmError> {
        self.primary.list_models().await
    }
}

/// The model part of a name: after the last `/` (Hugging Face `org/model`), lowercase.
fn model_part(name: &str) -> String {
    name.rsplit('/').next().unwrap_or(name).to_ascii_lowercase()
}

/// The candidate of `wanted`'s family (see the module documentation), if any.
pub fn same_family(wanted: &str, candidates: &[ModelInfo]) -> Option<String> {
    let (name, tag) = wanted.split_once(':').unwrap_or((wanted, ""));
    let family = model_part(name);
    if !family.chars().any(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let tag = tag.to_ascii_lowercase();
    let mut best: Option<(bool, &str)> = None;
    for candidate in candidates {
        let lower = model_part(&candidate.name);
        let Some(rest) = lower.strip_prefix(&family) else {
            continue;
        };
        // The family must end where the candidate's name does or at a separator: `phi` is
        // neither `phi3` nor `qwen2` `qwen2.5` (and `dolphin-phi` does not start with it).
        let mut next = rest.chars();
        let continues = match (next.next(), next.next()) {
            (Some(c), _) if c.is_ascii_alphanumeric() => true,
            (Some('.'), Some(d)) => d.is_ascii_digit(),
            _ => false,
        };
        if continues {
            continue;
        }
        // A one-word tag (`8b`) must be a word of the rest; a compound one
        // (`8b-instruct-q4_k_m`) must appear in it as written.
        let compound = tag.contains(|c: char| !c.is_ascii_alphanumeric() && c != '.');
        let tagged = !tag.is_empty()
            && if compound {
                rest.contains(&tag)
            } else {
                rest.split(|c: char| !c.is_ascii_alphanumeric() && c != '.')
                    .any(|token| token == tag)
            };
        if best.is_none_or(|(b, _)| tagged && !b) {
            best = Some((tagged, &candidate.name));
        }
    }
    best.map(|(_, name)| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn models(names: &[&str]) -> Vec<ModelInfo> {
        names
            .iter()
            .map(|n| ModelInfo {
                name: (*n).to_owned(),
                size: None,
            })
            .collect()
    }

    #[test]
    fn families_match_across_naming_styles() {
        let served = models(&[
            "qwen2.5-7b-instruct",
            "smollm2-360m-instruct",
            "smollm2-135m-instruct",
        ]);
        assert_eq!(
            same_family("smollm2:135m", &served).as_deref(),
            Some("smollm2-135m-instruct")
        );
        assert_eq!(
            same_family("smollm2", &served).as_deref(),
            Some("smollm2-360m-instruct")
        );
        assert_eq!(
            same_family("qwen2.5:7b", &served).as_deref(),
            Some("qwen2.5-7b-instruct")
        );
        assert_eq!(
            same_family("Qwen/Qwen2.5-7B-Instruct", &models(&["qwen2.5:7b"])).as_deref(),
            None,
            "the tag-less name is longer than the candidate"
        );
        assert_eq!(same_family("llama3.1:8b", &served), None);
        // Whole names only: a family is neither inside another name nor a prefix of it.
        let phis = models(&["dolphin-phi:2.7b", "phi3-mini", "qwen2.5-7b"]);
        assert_eq!(same_family("phi", &phis), None);
        assert_eq!(same_family("qwen2:7b", &phis), None);
        assert_eq!(
            same_family("phi:2.7b", &models(&["phi3-mini", "phi-2.7b", "phi"])).as_deref(),
            Some("phi-2.7b"),
            "the tagged one of the family"
        );
        assert_eq!(
            same_family(
                "llama3.1:8b-instruct-q4_K_M",
                &models(&["llama3.1-70b", "llama3.1-8b-instruct-q4_K_M.gguf"])
            )
            .as_deref(),
            Some("llama3.1-8b-instruct-q4_K_M.gguf"),
            "a compound tag as written"
        );
        assert_eq!(
            same_family(
                "SmolLM2:135M",
                &models(&["HuggingFaceTB/SmolLM2-135M-Instruct"])
            )
            .as_deref(),
            Some("HuggingFaceTB/SmolLM2-135M-Instruct")
        );
        assert_eq!(same_family(":", &served), None);
    }
}
