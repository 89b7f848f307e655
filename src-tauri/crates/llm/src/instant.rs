//! [`InstantProvider`]: a provider that answers at once with a fixed text and does no I/O.
//!
//! It exists for the two jobs where a real model would measure or test the wrong thing:
//! the orchestrator's throughput benchmark, which must time scheduling, journaling and bus
//! overhead rather than inference, and unit tests of orchestration logic (routing,
//! retries, coordination patterns) that need *a* provider but no model's judgement.
//! Everything that exercises the LLM layer itself runs against a real model server.

use std::time::Instant;

use crate::{ChatRequest, ChatResponse, DoneReason, LlmError, ModelInfo, Provider, TokenSink};

/// Answers every chat with the same text, immediately.
///
/// Token counts are whitespace-separated word counts (of the prompt messages and of the
/// answer), a stand-in for a tokenizer that keeps the arithmetic of budgets and metrics
/// meaningful. `max_tokens` is honoured in words: a longer text is cut to that many words
/// and reported as [`DoneReason::Length`], so callers' handling of truncated answers can
/// be exercised too. Streaming delivers one word (with its leading whitespace) per chunk.
#[derive(Debug, Clone)]
pub struct InstantProvider {
    /// Configuration name, returned by [`Provider::id`].
    id: String,
    /// The answer to every chat.
    text: String,
}

impl InstantProvider {
    /// A provider named `"instant"` that answers `text`.
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            id: "instant".to_owned(),
            text: text.into(),
        }
    }

    /// The same provider under another configuration name, for setups with several.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }
}

/// Splits `text` into chunks of one word each (leading whitespace attached), plus a final
/// whitespace-only chunk when the text ends in whitespace; the chunks concatenate back to
/// `text` exactly.
fn word_chunks(text: &str) -> Vec<&str> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut in_word = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if in_word {
                chunks.push(&text[start..i]);
                start = i;
                in_word = false;
            }
        } else {
            in_word = true;
        }
    }
    if start < text.len() {
        chunks.push(&text[start..]);
    }
    chunks
}

fn word_count(text: &str) -> u32 {
    u32::try_from(text.split_whitespace().count()).unwrap_or(u32::MAX)
}

#[async_trait::async_trait]
impl Provider for InstantProvider {
    fn id(&self) -> &str {
        &self.id
    }

    async fn chat(
        &self,
        req: &ChatRequest,
        on_token: Option<TokenSink<'_>>,
    ) -> Result<ChatResponse, LlmError> {
        let started = Instant::now();
        let mut chunks = word_chunks(&self.text);
        let words = word_count(&self.text);
        let mut done_reason = DoneReason::Stop;
        if let Some(max) = req.max_tokens
            && words > max
        {
            chunks.truncate(usize::try_from(max).unwrap_or(usize::MAX));
            done_reason = DoneReason::Length;
        }
        let content: String = chunks.concat();
        if let Some(sink) = on_token {
            for chunk in &chunks {
                sink(chunk);
            }
        }
        Ok(ChatResponse {
            completion_tokens: word_count(&content),
            content,
            model: req.model.clone(),
            prompt_tokens: req
                .messages
                .iter()
                .map(|m| word_count(&m.content))
                .fold(0u32, u32::saturating_add),
            duration: started.elapsed(),
            done_reason,
        })
    }

    /// One model named `"instant"`; chats accept any model name.
    async fn list_models(&self) -> Result<Vec<ModelInfo>, LlmError> {
        Ok(vec![ModelInfo {
            name: "instant".to_owned(),
            size: None,
        }])
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::ChatMessage;

    fn request(max_tokens: Option<u32>) -> ChatRequest {
        ChatRequest {
            max_tokens,
            ..ChatRequest::new(
                "any-model",
                vec![ChatMessage::user("count these four words")],
            )
        }
    }

    #[tokio::test]
    async fn answers_the_fixed_text_with_word_counts() {
        let provider = InstantProvider::new("  hello  wide world\n");
        let res = provider
            .chat(&request(None), None)
            .await
            .expect("instant chat cannot fail");
        assert_eq!(res.content, "  hello  wide world\n");
        assert_eq!(res.completion_tokens, 3);
        assert_eq!(res.prompt_tokens, 4);
        assert_eq!(res.done_reason, DoneReason::Stop);
        assert_eq!(res.model, "any-model");
        assert_eq!(provider.id(), "instant");
        assert_eq!(provider.clone().with_id("x").id(), "x");
    }

    #[tokio::test]
    async fn streams_words_that_concatenate_to_the_content() {
        let provider = InstantProvider::new("one two three");
        let seen = Mutex::new(Vec::<String>::new());
        let sink = |chunk: &str| {
            if let Ok(mut seen) = seen.lock() {
                seen.push(chunk.to_owned());
            }
        };
        let res = provider
            .chat(&request(None), Some(&sink))
            .await
            .expect("instant chat cannot fail");
        let seen = seen.into_inner().unwrap_or_default();
        assert_eq!(seen, vec!["one", " two", " three"]);
        assert_eq!(seen.concat(), res.content);
    }

    #[tokio::test]
    async fn max_tokens_cuts_in_words_and_reports_length() {
        let provider = InstantProvider::new("a b c d e");
        let res = provider
            .chat(&request(Some(2)), None)
            .await
            .expect("instant chat cannot fail");
        assert_eq!(res.content, "a b");
        assert_eq!(res.completion_tokens, 2);
        assert_eq!(res.done_reason, DoneReason::Length);
        let res = provider
            .chat(&request(Some(5)), None)
            .await
            .expect("instant chat cannot fail");
        assert_eq!(res.done_reason, DoneReason::Stop);
    }

    #[tokio::test]
    async fn lists_one_model() {
        let models = InstantProvider::new("x")
            .list_models()
            .await
            .unwrap_or_default();
        assert_eq!(models.len(), 1);
    }
}
