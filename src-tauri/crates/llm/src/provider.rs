//! The [`Provider`] trait the orchestrator programs against, and the time limits every
//! HTTP provider enforces.

use std::time::Duration;

use crate::{ChatRequest, ChatResponse, LlmError, ModelInfo, TokenSink};

/// One configured LLM endpoint.
///
/// Object-safe and `Send + Sync` so the orchestrator holds providers as
/// `Arc<dyn Provider>` and calls them from any task.
///
/// Cancellation: dropping a future returned by [`Provider::chat`] aborts the HTTP request
/// (the connection is closed), so a cancelled step stops the server's generation instead
/// of letting it run to the end.
#[async_trait::async_trait]
pub trait Provider: Send + Sync + std::fmt::Debug {
    /// The provider's configuration name (e.g. `"ollama"`), used in logs, metrics and
    /// step records.
    fn id(&self) -> &str;

    /// Runs one chat completion. With `on_token` the answer is streamed and every chunk is
    /// passed to it as it arrives; without, the server answers in one piece.
    async fn chat(
        &self,
        req: &ChatRequest,
        on_token: Option<TokenSink<'_>>,
    ) -> Result<ChatResponse, LlmError>;

    /// The models the server can answer with right now.
    async fn list_models(&self) -> Result<Vec<ModelInfo>, LlmError>;
}

/// Time limits of an HTTP provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderOptions {
    /// Limit for opening the TCP (and TLS) connection; short, because a local runtime
    /// that does not accept within seconds is down, and the caller should know at once.
    pub connect_timeout: Duration,
    /// Limit for the whole request, from sending it to the last streamed byte; bounds a
    /// step's model call however the server behaves.
    pub request_timeout: Duration,
    /// Longest silence allowed between two chunks of a response body; catches a hung
    /// generation long before `request_timeout` would, without limiting long answers
    /// that keep streaming.
    pub idle_timeout: Duration,
}

impl Default for ProviderOptions {
    /// 5 s to connect, 600 s per request, 120 s of silence: generous enough for a cold
    /// model load on a CPU, tight enough that a dead server does not hang a task.
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(600),
            idle_timeout: Duration::from_secs(120),
        }
    }
}
