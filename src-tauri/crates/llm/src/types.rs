//! The provider-neutral request and response model every [`Provider`](crate::Provider)
//! speaks, so the orchestrator never knows which wire protocol answers a step.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Who wrote a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions that frame the conversation (an agent's system prompt).
    System,
    /// Input the model should answer.
    User,
    /// An earlier answer of the model, kept for context.
    Assistant,
}

impl Role {
    /// The lowercase wire name, identical in Ollama's and OpenAI's protocols.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::User => "user",
            Self::Assistant => "assistant",
        }
    }
}

/// One message of a chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who wrote it; decides how the model's chat template frames it.
    pub role: Role,
    /// The text.
    pub content: String,
}

impl ChatMessage {
    /// A system message, e.g. an agent's system prompt.
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: Role::System,
            content: content.into(),
        }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
        }
    }

    /// An earlier assistant answer.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// One chat completion to run.
///
/// Serialisable so a step's exact request can be journaled and replayed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The model name as the server knows it (`smollm2:135m`, `llama3.2:3b`, ...).
    pub model: String,
    /// The conversation, oldest first.
    pub messages: Vec<ChatMessage>,
    /// Sampling temperature; `None` keeps the server's default. Use `0.0` for
    /// reproducible answers.
    pub temperature: Option<f32>,
    /// Upper bound on generated tokens (Ollama `options.num_predict`, OpenAI
    /// `max_tokens`); `None` lets the model stop on its own.
    pub max_tokens: Option<u32>,
    /// A JSON schema the answer must conform to. Servers enforce it with a grammar, so
    /// steps that need structured output (plans, votes) get parseable JSON from even a
    /// small model. The string `"json"` asks for any JSON value instead.
    pub format: Option<serde_json::Value>,
    /// Sampling seed, for reproducible answers at a non-zero temperature.
    pub seed: Option<u64>,
    /// Free-form tracing label sent as the `x-sutazai-step` HTTP header, so a server-side
    /// log or proxy can tie a model call to the task step that made it. Servers ignore it.
    pub trace: Option<String>,
}

impl ChatRequest {
    /// A request with every optional knob left to the server.
    pub fn new(model: impl Into<String>, messages: Vec<ChatMessage>) -> Self {
        Self {
            model: model.into(),
            messages,
            ..Self::default()
        }
    }
}

/// Why the model stopped generating.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DoneReason {
    /// The model ended its answer (end-of-generation token, stop sequence, or the
    /// completed JSON of a `format` schema).
    Stop,
    /// `max_tokens` (or the context window) cut the answer short: it may be incomplete,
    /// and JSON output may not parse.
    Length,
    /// Any other reason a server reported (e.g. OpenAI's `content_filter`), verbatim.
    Other(String),
}

impl DoneReason {
    /// The wire spelling (`stop`, `length`, or the server's own word).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::Other(s) => s,
        }
    }

    /// Parses a server's spelling; anything unknown is kept as [`DoneReason::Other`].
    pub fn from_wire(s: &str) -> Self {
        match s {
            "stop" => Self::Stop,
            "length" => Self::Length,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for DoneReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for DoneReason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for DoneReason {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Ok(Self::from_wire(&s))
    }
}

/// A finished chat completion.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    /// The whole answer; when streaming, exactly the concatenation of the streamed chunks.
    pub content: String,
    /// The model that answered, as the server names it.
    pub model: String,
    /// Tokens the prompt took, as the server counted them (0 when it did not say).
    pub prompt_tokens: u32,
    /// Tokens generated, as the server counted them (see each provider for fallbacks).
    pub completion_tokens: u32,
    /// Wall time from sending the request to the last byte, measured by the client, so
    /// it includes queueing on a busy server: what the step actually waited.
    pub duration: Duration,
    /// Why generation stopped.
    pub done_reason: DoneReason,
}

/// A model a server offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The name to put in [`ChatRequest::model`].
    pub name: String,
    /// Size on disk in bytes, where the server tells (Ollama does, OpenAI-compatible
    /// servers do not).
    pub size: Option<u64>,
}

/// One progress report of an Ollama model pull.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullProgress {
    /// What the server is doing (`pulling manifest`, `pulling <digest>`, `success`...).
    pub status: String,
    /// Bytes of the current layer, while downloading one.
    pub total: Option<u64>,
    /// Bytes of the current layer downloaded so far.
    pub completed: Option<u64>,
}

/// Receives each generated text chunk as it arrives, for live output.
///
/// A plain `Fn` reference rather than a channel, so the caller decides how to forward
/// chunks (bus event, WebSocket, buffer) and pays nothing when it does not stream.
pub type TokenSink<'a> = &'a (dyn Fn(&str) + Send + Sync);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_done_reasons_use_wire_spellings() {
        let json = serde_json::to_string(&ChatMessage::system("hi")).ok();
        assert_eq!(json.as_deref(), Some(r#"{"role":"system","content":"hi"}"#));
        assert_eq!(DoneReason::from_wire("stop"), DoneReason::Stop);
        assert_eq!(DoneReason::from_wire("length"), DoneReason::Length);
        assert_eq!(
            DoneReason::from_wire("content_filter"),
            DoneReason::Other("content_filter".into())
        );
        let back: Result<DoneReason, _> = serde_json::from_str("\"length\"");
        assert_eq!(back.ok(), Some(DoneReason::Length));
    }
}
