//! [`Switchable`]: a provider whose endpoint can be replaced while the app runs (the
//! dashboard's settings change an LLM endpoint's URL), without the orchestrator, the
//! executor or the health checks holding anything but the same `Arc<dyn Provider>`.
//!
//! A call takes the current client when it starts and keeps it to the end: requests in
//! flight finish against the old endpoint, new ones go to the new one. No lock is held
//! across an `.await`.

use std::sync::{Arc, RwLock};

use crate::{ChatRequest, ChatResponse, LlmError, ModelInfo, Provider, TokenSink};

/// A provider that delegates to a replaceable inner provider with the same id.
#[derive(Debug)]
pub struct Switchable {
    id: String,
    current: RwLock<Arc<dyn Provider>>,
}

impl Switchable {
    /// Wraps `inner`; the id stays `inner`'s for the wrapper's whole life.
    pub fn new(inner: Arc<dyn Provider>) -> Switchable {
        Switchable {
            id: inner.id().to_owned(),
            current: RwLock::new(inner),
        }
    }

    /// The provider calls go to now.
    pub fn current(&self) -> Arc<dyn Provider> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Sends later calls to `next` (same id, else [`LlmError::InvalidConfig`]); returns the
    /// provider it replaced.
    pub fn replace(&self, next: Arc<dyn Provider>) -> Result<Arc<dyn Provider>, LlmError> {
        if next.id() != self.id {
            return Err(LlmError::InvalidConfig {
                reason: format!(
                    "provider `{}` cannot be replaced by provider `{}`",
                    self.id,
                    next.id()
                ),
            });
        }
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        Ok(std::mem::replace(&mut *current, next))
    }
}

#[async_trait::async_trait]
impl Provider for Switchable {
    fn id(&self) -> &str {
        &self.id
    }

    async fn chat(
        &self,
        req: &ChatRequest,
        on_token: Option<TokenSink<'_>>,
    ) -> Result<ChatResponse, LlmError> {
        let provider = self.current();
        provider.chat(req, on_token).await
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, LlmError> {
        let provider = self.current();
        provider.list_models().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InstantProvider;

    #[tokio::test]
    async fn calls_follow_the_replacement_and_ids_must_match() {
        let first: Arc<dyn Provider> = Arc::new(InstantProvider::new("first").with_id("ollama"));
        let switchable = Switchable::new(first);
        let request = ChatRequest::default();
        assert_eq!(
            switchable.chat(&request, None).await.unwrap().content,
            "first"
        );
        switchable
            .replace(Arc::new(InstantProvider::new("second").with_id("ollama")))
            .unwrap();
        assert_eq!(
            switchable.chat(&request, None).await.unwrap().content,
            "second"
        );
        assert_eq!(switchable.id(), "ollama");
        let other = switchable.replace(Arc::new(InstantProvider::new("x").with_id("vllm")));
        assert!(matches!(other, Err(LlmError::InvalidConfig { .. })));
        assert_eq!(
            switchable.chat(&request, None).await.unwrap().content,
            "second"
        );
    }
}
