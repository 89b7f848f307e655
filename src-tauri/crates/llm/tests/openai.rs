//! `OpenAiProvider` against the real test LLM server's OpenAI-compatible endpoint.

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use common::{Collector, MODEL, TestServer};
use sutazai_llm::{
    ChatMessage, ChatRequest, DoneReason, LlmError, OpenAiProvider, Provider, ProviderOptions,
};

static SERVER: OnceLock<TestServer> = OnceLock::new();

/// A provider configured with the `/v1` suffix, as most documentation writes it.
async fn provider() -> OpenAiProvider {
    let url = common::shared_server(&SERVER, &[]).await;
    OpenAiProvider::new(
        "llamacpp",
        &format!("{url}/v1"),
        Some("sk-test".into()),
        ProviderOptions::default(),
    )
    .expect("valid URL")
}

fn request(prompt: &str, max_tokens: u32) -> ChatRequest {
    ChatRequest {
        temperature: Some(0.0),
        max_tokens: Some(max_tokens),
        ..ChatRequest::new(MODEL, vec![ChatMessage::user(prompt)])
    }
}

fn streaming_sink(collector: &Collector) -> impl Fn(&str) + Send + Sync + '_ {
    |chunk: &str| collector.push(chunk)
}

#[tokio::test]
async fn non_streaming_chat_returns_content_and_usage() {
    let p = provider().await;
    let res = p
        .chat(&request("Name one primary color.", 16), None)
        .await
        .expect("chat succeeds");
    assert!(!res.content.is_empty());
    assert_eq!(res.model, MODEL);
    assert!(res.prompt_tokens > 0, "{res:?}");
    assert!(
        res.completion_tokens > 0 && res.completion_tokens <= 16,
        "{res:?}"
    );
    assert!(matches!(
        res.done_reason,
        DoneReason::Stop | DoneReason::Length
    ));
    assert_eq!(p.id(), "llamacpp");
}

#[tokio::test]
async fn streamed_deltas_concatenate_to_the_content_and_usage_is_read() {
    let p = provider().await;
    let collector = Collector::default();
    let sink = streaming_sink(&collector);
    let res = p
        .chat(&request("Count from one to five.", 24), Some(&sink))
        .await
        .expect("streaming chat succeeds");
    let chunks = collector.chunks();
    assert!(chunks.len() > 1, "expected several chunks, got {chunks:?}");
    assert_eq!(chunks.concat(), res.content);
    // Usage came from the stream's usage chunk, so the prompt is counted too.
    assert!(
        res.prompt_tokens > 0 && res.completion_tokens > 0,
        "{res:?}"
    );
    assert!(matches!(
        res.done_reason,
        DoneReason::Stop | DoneReason::Length
    ));
}

#[tokio::test]
async fn max_tokens_cuts_the_answer_with_length() {
    let p = provider().await;
    for streaming in [false, true] {
        let collector = Collector::default();
        let sink = streaming_sink(&collector);
        let res = p
            .chat(
                &request("Write a long story about a lighthouse keeper.", 8),
                streaming.then_some(&sink as &(dyn Fn(&str) + Send + Sync)),
            )
            .await
            .expect("chat succeeds");
        assert_eq!(res.done_reason, DoneReason::Length, "streaming={streaming}");
        assert!(res.completion_tokens <= 8, "{res:?}");
    }
}

#[tokio::test]
async fn json_schema_response_format_yields_valid_json() {
    let p = provider().await;
    for streaming in [false, true] {
        let req = ChatRequest {
            format: Some(common::small_schema()),
            ..request(
                "What is 2 + 2? Answer as JSON with answer, confident and color.",
                96,
            )
        };
        let collector = Collector::default();
        let sink = streaming_sink(&collector);
        let res = p
            .chat(
                &req,
                streaming.then_some(&sink as &(dyn Fn(&str) + Send + Sync)),
            )
            .await
            .expect("chat succeeds");
        assert_eq!(res.done_reason, DoneReason::Stop, "{res:?}");
        common::assert_matches_small_schema(&res.content);
        if streaming {
            assert_eq!(collector.chunks().concat(), res.content);
        }
    }
}

#[tokio::test]
async fn base_url_without_v1_reaches_the_same_api() {
    let url = common::shared_server(&SERVER, &[]).await;
    let p = OpenAiProvider::new("bare", &url, None, ProviderOptions::default()).expect("valid URL");
    assert_eq!(p.base_url(), format!("{url}/v1"));
    let models = p.list_models().await.expect("list models");
    assert!(models.iter().any(|m| m.name == MODEL), "{models:?}");
    assert!(models.iter().all(|m| m.size.is_none()));
}

#[tokio::test]
async fn unknown_model_is_model_not_found() {
    let p = provider().await;
    for streaming in [false, true] {
        let sink = |_: &str| {};
        let req = ChatRequest {
            model: "gpt-nonexistent".into(),
            ..request("Hi", 8)
        };
        let err = p
            .chat(
                &req,
                streaming.then_some(&sink as &(dyn Fn(&str) + Send + Sync)),
            )
            .await
            .expect_err("unknown model");
        assert!(
            matches!(&err, LlmError::ModelNotFound { model } if model == "gpt-nonexistent"),
            "{err:?}"
        );
        assert!(!err.is_retryable());
    }
}

#[tokio::test]
async fn unreachable_server_is_a_retryable_connect_error() {
    let opts = ProviderOptions {
        connect_timeout: Duration::from_secs(2),
        ..ProviderOptions::default()
    };
    let p = OpenAiProvider::new("o", &common::dead_url(), None, opts).expect("valid URL");
    let sink = |_: &str| {};
    let err = p
        .chat(&request("Hi", 8), Some(&sink))
        .await
        .expect_err("nothing listens");
    assert!(matches!(err, LlmError::Connect { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(err.code(), "llm_unreachable");
}

#[tokio::test]
async fn trace_is_sent_as_the_step_header() {
    let p = provider().await;
    let sink = |_: &str| {};
    let req = ChatRequest {
        trace: Some("task-9/step-1 openai".into()),
        ..request("Say hello.", 8)
    };
    p.chat(&req, Some(&sink)).await.expect("chat succeeds");
    let base = common::shared_server(&SERVER, &[]).await;
    let record = common::request_with_step(&base, "task-9/step-1 openai")
        .await
        .expect("the server recorded the traced request");
    assert_eq!(record["path"], "/v1/chat/completions");
    assert_eq!(record["aborted"], false);
    assert!(record["completion_tokens"].as_u64().is_some_and(|n| n > 0));
}
