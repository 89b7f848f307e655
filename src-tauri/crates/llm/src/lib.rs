//! SutazAI's LLM layer: one [`Provider`] trait over the LLM runtimes people run locally.
//!
//! The orchestrator sends every model call of every step through [`Provider::chat`] and
//! never learns which wire protocol answered: [`OllamaProvider`] speaks Ollama's native
//! API, [`OpenAiProvider`] any OpenAI-compatible endpoint (llama.cpp server, vLLM, LM
//! Studio, LiteLLM, hosted APIs), and [`InstantProvider`] answers without a model for
//! benchmarks and orchestration unit tests.
//!
//! # Layout
//! - [`types`]: the provider-neutral request/response model ([`ChatRequest`],
//!   [`ChatResponse`], [`DoneReason`], ...).
//! - [`provider`]: the [`Provider`] trait and the [`ProviderOptions`] time limits.
//! - [`error`]: [`LlmError`], with a stable [`code`](LlmError::code) and a retry
//!   classification ([`is_retryable`](LlmError::is_retryable)) the orchestrator's retry
//!   and circuit-breaker policies rely on.
//! - [`ollama`], [`openai`], [`instant`]: the providers.
//! - `http`, `ndjson`, `sse` (private): time-limited HTTP plumbing and the incremental
//!   stream parsers, which accept body chunks split at any byte.
//!
//! # Behaviour every HTTP provider shares
//! - Streaming when a [`TokenSink`] is given: chunks reach the sink as they arrive and
//!   [`ChatResponse::content`] is exactly their concatenation.
//! - Structured output: [`ChatRequest::format`] is a JSON schema the server enforces
//!   (Ollama `format`, OpenAI `response_format: json_schema`).
//! - Limits: `connect_timeout`, a whole-request `request_timeout` and an `idle_timeout`
//!   between streamed chunks, each reported as its own [`TimeoutKind`].
//! - Cancellation: dropping the future of a chat closes its connection, and servers stop
//!   generating for a client that went away.
//! - Tracing: [`ChatRequest::trace`] travels as the `x-sutazai-step` header.

pub mod error;
pub mod failover;
pub mod instant;
pub mod ollama;
pub mod openai;
pub mod provider;
pub mod switchable;
pub mod types;

mod http;
mod ndjson;
mod sse;

pub use error::{LlmError, TimeoutKind};
pub use failover::{Failover, FailoverConfig};
pub use instant::InstantProvider;
pub use ollama::OllamaProvider;
pub use openai::OpenAiProvider;
pub use provider::{Provider, ProviderOptions};
pub use switchable::Switchable;
pub use types::{
    ChatMessage, ChatRequest, ChatResponse, DoneReason, ModelInfo, PullProgress, Role, TokenSink,
};
