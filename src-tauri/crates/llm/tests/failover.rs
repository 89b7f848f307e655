//! `Failover` with real HTTP: a primary Ollama endpoint that breaks every connection (a
//! listener that accepts and hangs up, counting the attempts), and the real test LLM behind
//! its OpenAI-compatible API as the fallback. Calls are answered by the fallback with the
//! same model family; after three failures the breaker stops trying the primary at all,
//! after the cooldown one call tries it again; errors the request causes are not failed
//! over.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::{Collector, MODEL, TestServer};
use sutazai_llm::{
    ChatMessage, ChatRequest, Failover, FailoverConfig, LlmError, OllamaProvider, OpenAiProvider,
    Provider, ProviderOptions,
};

static SERVER: OnceLock<TestServer> = OnceLock::new();

/// A loopback endpoint that accepts connections and closes them at once; counts them.
async fn hang_up_server() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    (url, count)
}

/// The test model behind its OpenAI-compatible API, as the fallback provider `llamacpp`.
fn openai_fallback(url: &str) -> Arc<dyn Provider> {
    Arc::new(
        OpenAiProvider::new(
            "llamacpp",
            &format!("{url}/v1"),
            None,
            ProviderOptions::default(),
        )
        .unwrap(),
    )
}

fn request(model: &str) -> ChatRequest {
    ChatRequest {
        temperature: Some(0.0),
        max_tokens: Some(8),
        ..ChatRequest::new(model, vec![ChatMessage::user("Say hi.")])
    }
}

#[tokio::test]
async fn a_failing_primary_is_answered_by_the_fallback_and_its_breaker_opens_and_recovers() {
    let url = common::shared_server(&SERVER, &[]).await;
    let (broken, attempts) = hang_up_server().await;
    let primary: Arc<dyn Provider> =
        Arc::new(OllamaProvider::new("ollama", &broken, ProviderOptions::default()).unwrap());
    let fallback = openai_fallback(&url);
    let failover = Failover::new(
        primary,
        fallback,
        FailoverConfig {
            threshold: 3,
            cooldown: Duration::from_millis(800),
        },
    );
    assert_eq!(failover.id(), "ollama");

    // Three failing calls: each answered (streamed) by the fallback; the breaker opens.
    for i in 1..=3 {
        let collector = Collector::default();
        let sink = |t: &str| collector.push(t);
        let answer = failover
            .chat(&request(MODEL), Some(&sink))
            .await
            .expect("answered");
        assert!(!answer.content.is_empty());
        assert_eq!(collector.chunks().concat(), answer.content);
        assert_eq!(attempts.load(Ordering::SeqCst), i, "the primary was tried");
    }
    assert!(failover.is_open());
    // Open: answered without touching the primary.
    failover
        .chat(&request(MODEL), None)
        .await
        .expect("answered while open");
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        3,
        "no attempt on the primary while open"
    );

    // After the cooldown one call tries the primary again (and still falls back).
    tokio::time::sleep(Duration::from_millis(900)).await;
    failover
        .chat(&request(MODEL), None)
        .await
        .expect("answered after the cooldown");
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        4,
        "half-open: one trial call"
    );
    assert!(failover.is_open(), "the trial failed: open again");
}

#[tokio::test]
async fn a_request_error_is_not_failed_over_and_no_family_means_the_primary_error() {
    let url = common::shared_server(&SERVER, &[]).await;
    let primary: Arc<dyn Provider> =
        Arc::new(OllamaProvider::new("ollama", &url, ProviderOptions::default()).unwrap());
    let fallback = openai_fallback(&url);
    let failover = Failover::new(primary, fallback, FailoverConfig::default());
    // An unknown model is the request's fault: answered as is, not by the fallback.
    match failover.chat(&request("no-such-model:1b"), None).await {
        Err(LlmError::ModelNotFound { model }) => assert_eq!(model, "no-such-model:1b"),
        other => panic!("expected model_not_found, got {other:?}"),
    }
    assert!(!failover.is_open());

    // A broken primary and a fallback without the family: the primary's error.
    let (broken, _) = hang_up_server().await;
    let failover = Failover::new(
        Arc::new(OllamaProvider::new("ollama", &broken, ProviderOptions::default()).unwrap()),
        openai_fallback(&url),
        FailoverConfig::default(),
    );
    let err = failover
        .chat(&request("llama3.1:8b"), None)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(err.code(), "llm_transport", "{err}");
}
