//! HTTP plumbing shared by the HTTP providers: endpoint URL validation, one pooled
//! `reqwest` client per provider, and the three time limits of [`ProviderOptions`]
//! enforced around every await (connect by reqwest; the whole-request deadline and the
//! idle gap between body chunks here, so each expiry reports which limit it was).

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::header::{HeaderMap, HeaderValue};
use tokio::time::{Instant, timeout_at};

use crate::{LlmError, ProviderOptions, TimeoutKind};

/// Largest error body read to extract a message: enough for any JSON error, bounded so a
/// misbehaving server cannot make us buffer a huge page.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// Validates an endpoint base URL and returns it without a trailing slash, so endpoint
/// paths can be appended with `format!`.
pub(crate) fn parse_base_url(raw: &str) -> Result<String, LlmError> {
    let invalid = |reason: &str| LlmError::InvalidUrl {
        url: raw.to_owned(),
        reason: reason.to_owned(),
    };
    let url = reqwest::Url::parse(raw.trim()).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("the URL has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            "a base URL cannot carry a query string or fragment",
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// The request header that carries [`ChatRequest::trace`](crate::ChatRequest::trace).
pub(crate) const TRACE_HEADER: &str = "x-sutazai-step";

/// `trace` as a header value. A trace is free-form text, so bytes a header cannot carry
/// (controls, non-ASCII) become `_` rather than failing the model call over a log label.
pub(crate) fn trace_header_value(trace: &str) -> HeaderValue {
    let clean: String = trace
        .chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '_'
            }
        })
        .collect();
    HeaderValue::from_str(&clean).unwrap_or_else(|_| HeaderValue::from_static("_"))
}

/// A provider's HTTP client and time limits.
#[derive(Debug, Clone)]
pub(crate) struct HttpClient {
    /// Pooled connections, reused across requests to the same server.
    client: reqwest::Client,
    /// The limits every request runs under.
    opts: ProviderOptions,
}

impl HttpClient {
    /// A client sending `headers` on every request.
    pub(crate) fn new(opts: ProviderOptions, headers: HeaderMap) -> Result<Self, LlmError> {
        let client = reqwest::Client::builder()
            .connect_timeout(opts.connect_timeout)
            // Node and uvicorn (vLLM, LiteLLM) servers close idle keep-alive connections
            // after 5 s; retiring ours sooner avoids sending a request down a connection
            // the server is closing at that moment.
            .pool_idle_timeout(Duration::from_secs(4))
            .default_headers(headers)
            .tcp_nodelay(true)
            .build()
            .map_err(LlmError::Client)?;
        Ok(Self { client, opts })
    }

    /// The underlying client, for building requests.
    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The deadline of a request that starts now, under `request_timeout`.
    pub(crate) fn deadline(&self) -> Instant {
        Instant::now() + self.opts.request_timeout
    }

    /// `GET url` within the request deadline and decodes the JSON answer (at most
    /// `limit` bytes); `what` names the document in a protocol error.
    pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        limit: usize,
        what: &str,
    ) -> Result<T, LlmError> {
        let request = self.client().get(url);
        let mut body = self.send(request, url, Some(self.deadline())).await?;
        let bytes = body.read_to_end(limit).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| LlmError::Protocol(format!("invalid {what} answer from {url}: {e}")))
    }

    /// Sends a request and waits for a success status.
    ///
    /// `deadline` bounds the wait for the headers and, through the returned [`Body`], for
    /// every chunk; `None` means only the idle limit applies (model pulls, which may
    /// download gigabytes). A non-2xx answer becomes [`LlmError::Status`] with the server's
    /// error message.
    pub(crate) async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
        deadline: Option<Instant>,
    ) -> Result<Body, LlmError> {
        let sent = request.send();
        let response = match deadline {
            Some(deadline) => timeout_at(deadline, sent)
                .await
                .map_err(|_| self.timeout(url, TimeoutKind::Request))?,
            None => sent.await,
        }
        .map_err(|e| self.map_error(url, e))?;
        let status = response.status();
        let mut body = Body {
            stream: Box::pin(response.bytes_stream()),
            url: url.to_owned(),
            deadline,
            http: self.clone(),
        };
        if status.is_success() {
            return Ok(body);
        }
        let text = body.read_to_end(ERROR_BODY_LIMIT).await.unwrap_or_default();
        Err(LlmError::Status {
            status: status.as_u16(),
            message: error_message(&text, status.canonical_reason()),
        })
    }

    fn timeout(&self, url: &str, kind: TimeoutKind) -> LlmError {
        let after = match kind {
            TimeoutKind::Connect => self.opts.connect_timeout,
            TimeoutKind::Idle => self.opts.idle_timeout,
            TimeoutKind::Request => self.opts.request_timeout,
        };
        LlmError::Timeout {
            url: url.to_owned(),
            kind,
            after,
        }
    }

    /// Classifies a reqwest error. The only limit reqwest itself enforces is the connect
    /// timeout, so a reqwest timeout is always a connect timeout.
    fn map_error(&self, url: &str, e: reqwest::Error) -> LlmError {
        if e.is_timeout() {
            self.timeout(url, TimeoutKind::Connect)
        } else if e.is_connect() {
            LlmError::Connect {
                url: url.to_owned(),
                source: e,
            }
        } else if e.is_builder() {
            LlmError::InvalidUrl {
                url: url.to_owned(),
                reason: e.to_string(),
            }
        } else {
            LlmError::Transport {
                url: url.to_owned(),
                source: e,
            }
        }
    }
}

/// A response body read chunk by chunk under the request deadline and the idle limit.
/// Dropping it closes the connection mid-body, which is how cancellation reaches the
/// server.
pub(crate) struct Body {
    stream: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    url: String,
    deadline: Option<Instant>,
    http: HttpClient,
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body")
            .field("url", &self.url)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl Body {
    /// The next chunk of the body; `None` at its end.
    pub(crate) async fn next_chunk(&mut self) -> Result<Option<Bytes>, LlmError> {
        let idle_until = Instant::now() + self.http.opts.idle_timeout;
        let (until, kind) = match self.deadline {
            Some(deadline) if deadline <= idle_until => (deadline, TimeoutKind::Request),
            _ => (idle_until, TimeoutKind::Idle),
        };
        match timeout_at(until, self.stream.next()).await {
            Err(_) => Err(self.http.timeout(&self.url, kind)),
            Ok(None) => Ok(None),
            Ok(Some(Ok(chunk))) => Ok(Some(chunk)),
            Ok(Some(Err(e))) => Err(self.http.map_error(&self.url, e)),
        }
    }

    /// The whole body, refusing more than `limit` bytes.
    pub(crate) async fn read_to_end(&mut self, limit: usize) -> Result<Vec<u8>, LlmError> {
        let mut out = Vec::new();
        while let Some(chunk) = self.next_chunk().await? {
            if out.len() + chunk.len() > limit {
                return Err(LlmError::Protocol(format!(
                    "response body from {} is larger than {limit} bytes",
                    self.url
                )));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// The endpoint this body comes from, for error messages.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }
}

/// The human-readable message of an error body: Ollama's `{"error": "..."}`, OpenAI's
/// `{"error": {"message": "..."}}`, a bare `{"message": "..."}`, else the start of the text.
pub(crate) fn error_message(body: &[u8], fallback: Option<&str>) -> String {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        let found = match value.get("error") {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(obj @ serde_json::Value::Object(_)) => obj
                .get("message")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned),
            _ => value
                .get("message")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned),
        };
        if let Some(message) = found {
            return message;
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return fallback.unwrap_or("no error message").to_owned();
    }
    text.chars().take(500).collect()
}

/// Whether an HTTP error means "this server has no such model", across Ollama's
/// (`model "x" not found, try pulling it first`), OpenAI's (`The model `x` does not
/// exist`) and vLLM's/llama.cpp's wordings.
pub(crate) fn is_model_not_found(status: u16, message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    status == 404 && (m.contains("not found") || m.contains("does not exist"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_validated_and_normalised() {
        assert_eq!(
            parse_base_url("http://127.0.0.1:11434/").ok().as_deref(),
            Some("http://127.0.0.1:11434")
        );
        assert_eq!(
            parse_base_url("https://proxy.example/ollama/")
                .ok()
                .as_deref(),
            Some("https://proxy.example/ollama")
        );
        for bad in ["", "localhost:11434", "ftp://x", "http://", "http://h/?q=1"] {
            assert!(
                matches!(parse_base_url(bad), Err(LlmError::InvalidUrl { .. })),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn error_messages_are_extracted_from_each_dialect() {
        assert_eq!(error_message(br#"{"error":"boom"}"#, None), "boom");
        assert_eq!(
            error_message(br#"{"error":{"message":"bad","type":"x"}}"#, None),
            "bad"
        );
        assert_eq!(error_message(br#"{"message":"m"}"#, None), "m");
        assert_eq!(error_message(b"plain text\n", None), "plain text");
        assert_eq!(error_message(b"", Some("Not Found")), "Not Found");
        assert!(is_model_not_found(
            404,
            "model \"x\" not found, try pulling it first"
        ));
        assert!(is_model_not_found(404, "The model `x` does not exist."));
        assert!(!is_model_not_found(400, "model not found"));
    }

    #[test]
    fn trace_values_are_made_header_safe() {
        assert_eq!(
            trace_header_value("task-1/step 2").to_str().ok(),
            Some("task-1/step 2")
        );
        assert_eq!(trace_header_value("a\nb\u{e9}").to_str().ok(), Some("a_b_"));
    }
}
