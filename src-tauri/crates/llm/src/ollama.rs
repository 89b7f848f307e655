//! [`OllamaProvider`]: Ollama's native API (`/api/chat`, `/api/tags`, `/api/pull`).
//!
//! Preferred over Ollama's OpenAI-compatible endpoint because the native one reports exact
//! token counts on every answer, accepts a JSON schema directly as `format`, and is the
//! only one that can pull models with progress.

use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};

use crate::http::{
    Body, HttpClient, TRACE_HEADER, is_model_not_found, parse_base_url, trace_header_value,
};
use crate::ndjson::LineBuffer;
use crate::{
    ChatMessage, ChatRequest, ChatResponse, DoneReason, LlmError, ModelInfo, Provider,
    ProviderOptions, PullProgress, TokenSink,
};

/// Longest NDJSON line accepted; a streamed line carries one token, a final line a few
/// counters, so anything near this is not Ollama.
const MAX_LINE: usize = 16 * 1024 * 1024;
/// Largest non-streamed answer accepted.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// A client of one Ollama server.
#[derive(Debug, Clone)]
pub struct OllamaProvider {
    /// Configuration name, returned by [`Provider::id`].
    id: String,
    /// Server root without a trailing slash, e.g. `http://127.0.0.1:11434`.
    base: String,
    /// Pooled connections and time limits.
    http: HttpClient,
}

impl OllamaProvider {
    /// A provider for the Ollama server at `base_url` (its root, e.g.
    /// `http://127.0.0.1:11434`; a path prefix behind a reverse proxy is kept).
    pub fn new(
        id: impl Into<String>,
        base_url: &str,
        opts: ProviderOptions,
    ) -> Result<Self, LlmError> {
        Ok(Self {
            id: id.into(),
            base: parse_base_url(base_url)?,
            http: HttpClient::new(opts, HeaderMap::new())?,
        })
    }

    /// The server root this provider talks to.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Downloads `model` onto the server, reporting each progress line as it arrives.
    ///
    /// Only the idle limit applies, not `request_timeout`: a multi-gigabyte pull may take
    /// far longer than any chat, and a pull that keeps reporting progress is healthy.
    /// A model the registry does not know is [`LlmError::ModelNotFound`].
    pub async fn pull(
        &self,
        model: &str,
        on_progress: &(dyn Fn(&PullProgress) + Send + Sync),
    ) -> Result<(), LlmError> {
        let url = format!("{}/api/pull", self.base);
        let request = self
            .http
            .client()
            .post(&url)
            .json(&serde_json::json!({ "model": model, "stream": true }));
        let mut body = self
            .http
            .send(request, &url, None)
            .await
            .map_err(|e| pull_error(e, model))?;
        let mut lines = LineBuffer::new(MAX_LINE);
        let mut succeeded = false;
        let mut handle = |line: &str| -> Result<(), LlmError> {
            let msg: WirePull = parse_json(line, &url)?;
            if let Some(message) = msg.error {
                return Err(pull_error(LlmError::Server { message }, model));
            }
            let status = msg.status.unwrap_or_default();
            succeeded |= status == "success";
            on_progress(&PullProgress {
                status,
                total: msg.total,
                completed: msg.completed,
            });
            Ok(())
        };
        while let Some(chunk) = body.next_chunk().await? {
            lines.push(&chunk);
            while let Some(line) = lines.next_line()? {
                handle(&line)?;
            }
        }
        if let Some(line) = lines.finish()? {
            handle(&line)?;
        }
        if succeeded {
            Ok(())
        } else {
            Err(LlmError::Protocol(format!(
                "the pull of {model:?} ended without a success status"
            )))
        }
    }

    async fn chat_inner(
        &self,
        req: &ChatRequest,
        on_token: Option<TokenSink<'_>>,
    ) -> Result<ChatResponse, LlmError> {
        let started = std::time::Instant::now();
        let url = format!("{}/api/chat", self.base);
        let wire = WireChatRequest {
            model: &req.model,
            messages: &req.messages,
            stream: on_token.is_some(),
            format: req.format.as_ref(),
            options: WireOptions {
                temperature: req.temperature,
                num_predict: req.max_tokens,
                seed: req.seed,
            },
        };
        let mut request = self.http.client().post(&url).json(&wire);
        if let Some(trace) = &req.trace {
            request = request.header(TRACE_HEADER, trace_header_value(trace));
        }
        let mut body = self
            .http
            .send(request, &url, Some(self.http.deadline()))
            .await
            .map_err(|e| model_error(e, &req.model))?;

        let answer = match on_token {
            Some(sink) => read_stream(&mut body, sink).await?,
            None => {
                let bytes = body.read_to_end(MAX_BODY).await?;
                let mut last: WireChatChunk = serde_json::from_slice(&bytes).map_err(|e| {
                    LlmError::Protocol(format!("invalid JSON answer from {url}: {e}"))
                })?;
                if let Some(message) = last.error.take() {
                    return Err(LlmError::Server { message });
                }
                let content = last
                    .message
                    .as_mut()
                    .map(|m| std::mem::take(&mut m.content))
                    .unwrap_or_default();
                Final { last, content }
            }
        };
        let Final { last, content } = answer;
        let completion_tokens = last.eval_count.unwrap_or(0);
        let done_reason = match last.done_reason.as_deref() {
            Some(reason) => DoneReason::from_wire(reason),
            // Ollama before 0.2 sent no done_reason: infer a cut from the token count.
            None if req.max_tokens.is_some_and(|max| completion_tokens >= max) => {
                DoneReason::Length
            }
            None => DoneReason::Stop,
        };
        Ok(ChatResponse {
            content,
            model: last.model.unwrap_or_else(|| req.model.clone()),
            prompt_tokens: last.prompt_eval_count.unwrap_or(0),
            completion_tokens,
            duration: started.elapsed(),
            done_reason,
        })
    }
}

#[async_trait::async_trait]
impl Provider for OllamaProvider {
    fn id(&self) -> &str {
        &self.id
    }

    async fn chat(
        &self,
        req: &ChatRequest,
        on_token: Option<TokenSink<'_>>,
    ) -> Result<ChatResponse, LlmError> {
        let result = self.chat_inner(req, on_token).await;
        if let Err(e) = &result {
            tracing::debug!(provider = %self.id, model = %req.model, error = %e, "ollama chat failed");
        }
        result
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, LlmError> {
        let url = format!("{}/api/tags", self.base);
        let tags: WireTags = self.http.get_json(&url, MAX_BODY, "/api/tags").await?;
        Ok(tags
            .models
            .into_iter()
            .map(|m| ModelInfo {
                name: m.name,
                size: m.size,
            })
            .collect())
    }
}

/// The final message of a chat and the full answer text.
struct Final {
    last: WireChatChunk,
    content: String,
}

/// Reads an NDJSON chat stream to its `done` line, passing each content chunk to `sink`.
async fn read_stream(body: &mut Body, sink: TokenSink<'_>) -> Result<Final, LlmError> {
    let url = body.url().to_owned();
    let mut lines = LineBuffer::new(MAX_LINE);
    let mut content = String::new();
    let mut handle = |line: &str| -> Result<Option<WireChatChunk>, LlmError> {
        let mut chunk: WireChatChunk = parse_json(line, &url)?;
        if let Some(message) = chunk.error.take() {
            return Err(LlmError::Server { message });
        }
        if let Some(piece) = chunk.message.as_ref().map(|m| m.content.as_str())
            && !piece.is_empty()
        {
            content.push_str(piece);
            sink(piece);
        }
        Ok(chunk.done.then_some(chunk))
    };
    loop {
        let Some(bytes) = body.next_chunk().await? else {
            if let Some(line) = lines.finish()?
                && let Some(last) = handle(&line)?
            {
                return Ok(Final { last, content });
            }
            return Err(LlmError::Protocol(format!(
                "the chat stream from {url} ended before its final (done) message"
            )));
        };
        lines.push(&bytes);
        while let Some(line) = lines.next_line()? {
            if let Some(last) = handle(&line)? {
                return Ok(Final { last, content });
            }
        }
    }
}

fn parse_json<'a, T: Deserialize<'a>>(line: &'a str, url: &str) -> Result<T, LlmError> {
    serde_json::from_str(line)
        .map_err(|e| LlmError::Protocol(format!("invalid NDJSON line from {url}: {e}")))
}

/// Turns Ollama's "model not found" 404 into [`LlmError::ModelNotFound`].
fn model_error(e: LlmError, model: &str) -> LlmError {
    match e {
        LlmError::Status { status, message } if is_model_not_found(status, &message) => {
            LlmError::ModelNotFound {
                model: model.to_owned(),
            }
        }
        other => other,
    }
}

/// Turns a pull's "the registry has no such model" (HTTP error or stream line) into
/// [`LlmError::ModelNotFound`].
fn pull_error(e: LlmError, model: &str) -> LlmError {
    let unknown = |m: &str| {
        let m = m.to_ascii_lowercase();
        m.contains("file does not exist") || m.contains("not found")
    };
    match e {
        LlmError::Status { ref message, .. } | LlmError::Server { ref message }
            if unknown(message) =>
        {
            LlmError::ModelNotFound {
                model: model.to_owned(),
            }
        }
        other => other,
    }
}

#[derive(Serialize)]
struct WireChatRequest<'a> {
    model: &'a str,
    messages: &'a [ChatMessage],
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<&'a serde_json::Value>,
    options: WireOptions,
}

#[derive(Serialize)]
struct WireOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    num_predict: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
}

#[derive(Deserialize)]
struct WireChatChunk {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    message: Option<WireMessage>,
    #[serde(default)]
    done: bool,
    #[serde(default)]
    done_reason: Option<String>,
    #[serde(default)]
    prompt_eval_count: Option<u32>,
    #[serde(default)]
    eval_count: Option<u32>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: String,
}

#[derive(Deserialize)]
struct WirePull {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    total: Option<u64>,
    #[serde(default)]
    completed: Option<u64>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct WireTags {
    #[serde(default)]
    models: Vec<WireTag>,
}

#[derive(Deserialize)]
struct WireTag {
    name: String,
    #[serde(default)]
    size: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_body_matches_ollamas_shape() {
        let messages = vec![ChatMessage::user("hi")];
        let schema = serde_json::json!({"type": "object"});
        let wire = WireChatRequest {
            model: "m",
            messages: &messages,
            stream: true,
            format: Some(&schema),
            options: WireOptions {
                temperature: Some(0.0),
                num_predict: Some(8),
                seed: None,
            },
        };
        let value = serde_json::to_value(&wire).unwrap_or_default();
        assert_eq!(
            value,
            serde_json::json!({
                "model": "m",
                "messages": [{"role": "user", "content": "hi"}],
                "stream": true,
                "format": {"type": "object"},
                "options": {"temperature": 0.0, "num_predict": 8}
            })
        );
    }

    #[test]
    fn not_found_errors_are_recognised() {
        let e = model_error(
            LlmError::Status {
                status: 404,
                message: "model \"x\" not found, try pulling it first".into(),
            },
            "x",
        );
        assert!(matches!(e, LlmError::ModelNotFound { model } if model == "x"));
        let e = pull_error(
            LlmError::Server {
                message: "pull model manifest: file does not exist".into(),
            },
            "y",
        );
        assert!(matches!(e, LlmError::ModelNotFound { model } if model == "y"));
        let e = pull_error(
            LlmError::Server {
                message: "disk full".into(),
            },
            "y",
        );
        assert!(matches!(e, LlmError::Server { .. }));
    }
}
