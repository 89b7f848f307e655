//! The one error type of the LLM layer, with a stable code and a retry classification.
//!
//! The orchestrator decides whether to retry a step, trip a circuit breaker or dead-letter a
//! task from [`LlmError::is_retryable`], and the UI shows [`LlmError::code`]; neither ever
//! matches on message text, so messages are free to change and carry as much context as
//! helps a human.

use std::fmt;
use std::time::Duration;

/// Which of the [`ProviderOptions`](crate::ProviderOptions) limits a request ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// No TCP/TLS connection within `connect_timeout`: the server is down or unreachable.
    Connect,
    /// The whole request (headers and every streamed chunk) outlived `request_timeout`.
    Request,
    /// The server went quiet mid-stream for longer than `idle_timeout`: a hung generation.
    Idle,
}

impl fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connect => "connect",
            Self::Request => "request",
            Self::Idle => "idle",
        })
    }
}

/// Everything that can go wrong talking to an LLM runtime.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LlmError {
    /// The configured endpoint is not an absolute `http`/`https` URL; a configuration
    /// mistake that no retry can fix.
    #[error("invalid LLM endpoint URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A provider setting other than the URL is unusable (e.g. an API key that cannot be
    /// sent as an HTTP header); a configuration mistake that no retry can fix.
    #[error("invalid LLM provider configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
    /// The HTTP client could not be built (the TLS backend failed to initialise).
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// No connection could be opened: nothing listens there, DNS failed, TLS failed.
    #[error("cannot reach the LLM server at {url}: {source}")]
    Connect {
        /// The endpoint that was being called.
        url: String,
        /// The underlying connection error.
        #[source]
        source: reqwest::Error,
    },
    /// An open connection broke while the request or the answer was in transit.
    #[error("connection to the LLM server at {url} broke: {source}")]
    Transport {
        /// The endpoint that was being called.
        url: String,
        /// The underlying I/O error.
        #[source]
        source: reqwest::Error,
    },
    /// A [`ProviderOptions`](crate::ProviderOptions) time limit expired.
    #[error("LLM request to {url} timed out ({kind} limit of {after:?})")]
    Timeout {
        /// The endpoint that was being called.
        url: String,
        /// Which limit expired.
        kind: TimeoutKind,
        /// The limit that expired.
        after: Duration,
    },
    /// The server answered with an HTTP error status (other than "model not found").
    #[error("LLM server answered HTTP {status}: {message}")]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The server's error message, or the start of its body.
        message: String,
    },
    /// The server does not have the requested model (Ollama: it must be pulled first).
    #[error("model {model:?} is not available on the LLM server")]
    ModelNotFound {
        /// The model that was asked for.
        model: String,
    },
    /// The server reported a failure inside an otherwise successful (HTTP 200) stream,
    /// e.g. Ollama's `{"error": ...}` line when its runner dies mid-generation.
    #[error("LLM server failed mid-stream: {message}")]
    Server {
        /// The server's error message.
        message: String,
    },
    /// The server's answer is not what the protocol promises: bad JSON, a malformed
    /// NDJSON/SSE stream, a stream that ended before its final message.
    #[error("unexpected answer from the LLM server: {0}")]
    Protocol(String),
}

impl LlmError {
    /// Whether the same request may succeed if sent again later.
    ///
    /// True for conditions of the server or the network that pass (unreachable, broken
    /// connection, timeouts, HTTP 5xx/408/429, mid-stream server failures); false for
    /// anything the request itself or the configuration causes (bad URL, other 4xx,
    /// unknown model, protocol violations), which would fail again identically.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Transport { .. } | Self::Timeout { .. } => true,
            Self::Server { .. } => true,
            Self::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            Self::InvalidUrl { .. }
            | Self::InvalidConfig { .. }
            | Self::Client(_)
            | Self::ModelNotFound { .. }
            | Self::Protocol(_) => false,
        }
    }

    /// A stable snake_case code for APIs, the UI and metrics labels.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidUrl { .. } => "llm_invalid_url",
            Self::InvalidConfig { .. } => "llm_invalid_config",
            Self::Client(_) => "llm_client",
            Self::Connect { .. } => "llm_unreachable",
            Self::Transport { .. } => "llm_transport",
            Self::Timeout { .. } => "llm_timeout",
            Self::Status { .. } => "llm_status",
            Self::ModelNotFound { .. } => "model_not_found",
            Self::Server { .. } => "llm_server_error",
            Self::Protocol(_) => "llm_protocol",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_retry_classification_follows_http_semantics() {
        let status = |status| LlmError::Status {
            status,
            message: String::new(),
        };
        assert!(status(500).is_retryable());
        assert!(status(503).is_retryable());
        assert!(status(429).is_retryable());
        assert!(status(408).is_retryable());
        assert!(!status(400).is_retryable());
        assert!(!status(401).is_retryable());
        assert!(!status(404).is_retryable());
        assert_eq!(status(500).code(), "llm_status");
    }

    #[test]
    fn request_caused_errors_are_final() {
        assert!(!LlmError::ModelNotFound { model: "m".into() }.is_retryable());
        assert!(!LlmError::Protocol("x".into()).is_retryable());
        assert_eq!(
            LlmError::ModelNotFound { model: "m".into() }.code(),
            "model_not_found"
        );
        let timeout = LlmError::Timeout {
            url: "http://x".into(),
            kind: TimeoutKind::Idle,
            after: Duration::from_secs(1),
        };
        assert!(timeout.is_retryable());
        assert_eq!(timeout.code(), "llm_timeout");
        assert!(timeout.to_string().contains("idle"));
    }
}
