//! [`OpenAiProvider`]: any OpenAI-compatible chat endpoint (llama.cpp server, vLLM, LM
//! Studio, LiteLLM, Ollama's `/v1`, hosted APIs): `/v1/chat/completions` with SSE
//! streaming and `/v1/models`.

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::http::{
    Body, HttpClient, TRACE_HEADER, error_message, is_model_not_found, parse_base_url,
    trace_header_value,
};
use crate::sse::SseParser;
use crate::{
    ChatMessage, ChatRequest, ChatResponse, DoneReason, LlmError, ModelInfo, Provider,
    ProviderOptions, TokenSink,
};

/// Longest SSE line or event accepted.
const MAX_EVENT: usize = 16 * 1024 * 1024;
/// Largest non-streamed answer accepted.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// A client of one OpenAI-compatible endpoint.
#[derive(Debug, Clone)]
pub struct OpenAiProvider {
    /// Configuration name, returned by [`Provider::id`].
    id: String,
    /// API root ending in `/v1`, without a trailing slash.
    base: String,
    /// Pooled connections (carrying the API key, if any) and time limits.
    http: HttpClient,
}

impl OpenAiProvider {
    /// A provider for the endpoint at `base_url`, given either with its `/v1` suffix
    /// (`http://host:8080/v1`) or without it (`http://host:8080`, to which `/v1` is
    /// appended), because configuration found in the wild uses both. `api_key`, when set,
    /// is sent as `Authorization: Bearer ...` on every request.
    pub fn new(
        id: impl Into<String>,
        base_url: &str,
        api_key: Option<String>,
        opts: ProviderOptions,
    ) -> Result<Self, LlmError> {
        let mut base = parse_base_url(base_url)?;
        if !base.ends_with("/v1") {
            base.push_str("/v1");
        }
        let mut headers = HeaderMap::new();
        if let Some(key) = api_key.filter(|k| !k.is_empty()) {
            let mut value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                LlmError::InvalidConfig {
                    reason: "the API key contains characters an HTTP header cannot carry".into(),
                }
            })?;
            // Keeps the key out of reqwest's Debug output and HTTP/2 header compression.
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        Ok(Self {
            id: id.into(),
            base,
            http: HttpClient::new(opts, headers)?,
        })
    }

    /// The API root this provider talks to (ending in `/v1`).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    async fn chat_inner(
        &self,
        req: &ChatRequest,
        on_token: Option<TokenSink<'_>>,
    ) -> Result<ChatResponse, LlmError> {
        let started = std::time::Instant::now();
        let url = format!("{}/chat/completions", self.base);
        let stream = on_token.is_some();
        let wire = WireRequest {
            model: &req.model,
            messages: &req.messages,
            stream,
            max_tokens: req.max_tokens,
            temperature: req.temperature,
            seed: req.seed,
            response_format: req.format.as_ref().map(response_format),
            stream_options: stream.then_some(WireStreamOptions {
                include_usage: true,
            }),
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
                let chunk: WireChunk = serde_json::from_slice(&bytes).map_err(|e| {
                    LlmError::Protocol(format!("invalid JSON answer from {url}: {e}"))
                })?;
                if chunk.error.is_some() {
                    return Err(LlmError::Server {
                        message: error_message(&bytes, None),
                    });
                }
                let choice = chunk.choices.into_iter().next().ok_or_else(|| {
                    LlmError::Protocol(format!("the answer from {url} has no choices"))
                })?;
                let content = choice.message.and_then(|m| m.content).unwrap_or_default();
                Answer {
                    usage: chunk.usage,
                    streamed_chunks: 0,
                    model: chunk.model,
                    finish_reason: choice.finish_reason,
                    content,
                }
            }
        };
        let (prompt_tokens, completion_tokens) = match answer.usage {
            Some(usage) => (usage.prompt_tokens, usage.completion_tokens),
            None => (0, answer.streamed_chunks),
        };
        Ok(ChatResponse {
            content: answer.content,
            model: answer.model.unwrap_or_else(|| req.model.clone()),
            prompt_tokens,
            completion_tokens,
            duration: started.elapsed(),
            done_reason: answer
                .finish_reason
                .as_deref()
                .map_or(DoneReason::Stop, DoneReason::from_wire),
        })
    }
}

#[async_trait::async_trait]
impl Provider for OpenAiProvider {
    fn id(&self) -> &str {
        &self.id
    }

    /// Runs a chat completion.
    ///
    /// Token counts come from the server's `usage`, requested in streams through
    /// `stream_options.include_usage`. A server that sends no usage gets
    /// `prompt_tokens = 0` and, when streaming, `completion_tokens` = the number of
    /// content chunks received, which equals the token count on servers that stream one
    /// token per chunk (llama.cpp, vLLM) and is an estimate elsewhere.
    async fn chat(
        &self,
        req: &ChatRequest,
        on_token: Option<TokenSink<'_>>,
    ) -> Result<ChatResponse, LlmError> {
        let result = self.chat_inner(req, on_token).await;
        if let Err(e) = &result {
            tracing::debug!(provider = %self.id, model = %req.model, error = %e, "openai chat failed");
        }
        result
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, LlmError> {
        let url = format!("{}/models", self.base);
        let list: WireModels = self.http.get_json(&url, MAX_BODY, "/models").await?;
        Ok(list
            .data
            .into_iter()
            .map(|m| ModelInfo {
                name: m.id,
                size: None,
            })
            .collect())
    }
}

/// What a chat produced, however it was delivered.
struct Answer {
    content: String,
    model: Option<String>,
    finish_reason: Option<String>,
    usage: Option<WireUsage>,
    /// Content-bearing chunks received: the completion-token fallback without `usage`.
    streamed_chunks: u32,
}

/// Reads an SSE completion stream to `[DONE]` (or its end), passing each content delta to
/// `sink`.
async fn read_stream(body: &mut Body, sink: TokenSink<'_>) -> Result<Answer, LlmError> {
    let url = body.url().to_owned();
    let mut parser = SseParser::new(MAX_EVENT);
    let mut answer = Answer {
        content: String::new(),
        model: None,
        finish_reason: None,
        usage: None,
        streamed_chunks: 0,
    };
    // Returns true at `[DONE]`.
    let mut handle = |data: &str| -> Result<bool, LlmError> {
        if data.trim() == "[DONE]" {
            return Ok(true);
        }
        let chunk: WireChunk = serde_json::from_str(data)
            .map_err(|e| LlmError::Protocol(format!("invalid SSE data from {url}: {e}")))?;
        if chunk.error.is_some() {
            return Err(LlmError::Server {
                message: error_message(data.as_bytes(), None),
            });
        }
        if chunk.model.is_some() {
            answer.model = chunk.model;
        }
        if chunk.usage.is_some() {
            answer.usage = chunk.usage;
        }
        if let Some(choice) = chunk.choices.into_iter().next() {
            if let Some(piece) = choice.delta.and_then(|d| d.content)
                && !piece.is_empty()
            {
                sink(&piece);
                answer.content.push_str(&piece);
                answer.streamed_chunks += 1;
            }
            if choice.finish_reason.is_some() {
                answer.finish_reason = choice.finish_reason;
            }
        }
        Ok(false)
    };
    let mut done = false;
    'read: while let Some(bytes) = body.next_chunk().await? {
        parser.push(&bytes);
        while let Some(event) = parser.next_event()? {
            if handle(&event.data)? {
                done = true;
                break 'read;
            }
        }
    }
    if !done && let Some(event) = parser.finish()? {
        done = handle(&event.data)?;
    }
    // Some servers close the stream without `[DONE]`; a finish_reason is just as final.
    if !done && answer.finish_reason.is_none() {
        return Err(LlmError::Protocol(format!(
            "the completion stream from {url} ended before a finish_reason or [DONE]"
        )));
    }
    Ok(answer)
}

/// OpenAI's structured-output request for `schema`: `strict` asks servers that support it
/// to enforce the schema with a grammar rather than merely hint at it. The bare string
/// `"json"` (Ollama's spelling for "any JSON") maps to `json_object`, so one
/// [`ChatRequest`] means the same on both protocols.
fn response_format(schema: &serde_json::Value) -> serde_json::Value {
    if schema.as_str() == Some("json") {
        return serde_json::json!({ "type": "json_object" });
    }
    serde_json::json!({
        "type": "json_schema",
        "json_schema": { "name": "output", "schema": schema, "strict": true }
    })
}

/// Turns a "no such model" 404 into [`LlmError::ModelNotFound`].
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

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: &'a [ChatMessage],
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<WireStreamOptions>,
}

#[derive(Serialize)]
struct WireStreamOptions {
    include_usage: bool,
}

/// A streamed chunk or a whole completion: the two share every field we read.
#[derive(Deserialize)]
struct WireChunk {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct WireChoice {
    #[serde(default)]
    delta: Option<WireContent>,
    #[serde(default)]
    message: Option<WireContent>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireContent {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
}

#[derive(Deserialize)]
struct WireModels {
    #[serde(default)]
    data: Vec<WireModel>,
}

#[derive(Deserialize)]
struct WireModel {
    id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_gets_v1_once() {
        let opts = ProviderOptions::default();
        let with = OpenAiProvider::new("o", "http://h:8080/v1/", None, opts);
        let without = OpenAiProvider::new("o", "http://h:8080", None, opts);
        assert_eq!(
            with.map(|p| p.base).ok().as_deref(),
            Some("http://h:8080/v1")
        );
        assert_eq!(
            without.map(|p| p.base).ok().as_deref(),
            Some("http://h:8080/v1")
        );
    }

    #[test]
    fn unusable_api_key_is_a_config_error() {
        let e = OpenAiProvider::new(
            "o",
            "http://h",
            Some("bad\nkey".into()),
            ProviderOptions::default(),
        );
        assert!(matches!(e, Err(LlmError::InvalidConfig { .. })));
    }

    #[test]
    fn schema_becomes_a_strict_json_schema_response_format() {
        let messages = vec![ChatMessage::user("hi")];
        let wire = WireRequest {
            model: "m",
            messages: &messages,
            stream: true,
            max_tokens: Some(8),
            temperature: None,
            seed: Some(7),
            response_format: Some(response_format(&serde_json::json!({"type": "object"}))),
            stream_options: Some(WireStreamOptions {
                include_usage: true,
            }),
        };
        let value = serde_json::to_value(&wire).unwrap_or_default();
        assert_eq!(value["stream_options"]["include_usage"], true);
        assert_eq!(value["max_tokens"], 8);
        assert_eq!(value["seed"], 7);
        assert!(value.get("temperature").is_none());
        assert_eq!(
            response_format(&serde_json::json!("json")),
            serde_json::json!({"type": "json_object"})
        );
        assert_eq!(
            value["response_format"],
            serde_json::json!({
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": {"type": "object"}, "strict": true}
            })
        );
    }
}
