//! `OllamaProvider` against the real test LLM server (a real model behind Ollama's API).
//!
//! Answers are never checked for wording, only for the protocol's promises: chunks add up
//! to the content, token counts are reported, limits and schemas are honoured, errors are
//! classified.

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use common::{Collector, MODEL, TestServer};
use sutazai_llm::{
    ChatMessage, ChatRequest, DoneReason, LlmError, OllamaProvider, Provider, ProviderOptions,
    PullProgress,
};

static SERVER: OnceLock<TestServer> = OnceLock::new();

async fn provider() -> OllamaProvider {
    let url = common::shared_server(&SERVER, &[]).await;
    OllamaProvider::new("ollama", &url, ProviderOptions::default()).expect("valid URL")
}

fn request(prompt: &str, max_tokens: u32) -> ChatRequest {
    ChatRequest {
        temperature: Some(0.0),
        max_tokens: Some(max_tokens),
        ..ChatRequest::new(
            MODEL,
            vec![
                ChatMessage::system("You are a terse assistant."),
                ChatMessage::user(prompt),
            ],
        )
    }
}

#[tokio::test]
async fn non_streaming_chat_returns_content_and_token_counts() {
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
    assert!(
        matches!(res.done_reason, DoneReason::Stop | DoneReason::Length),
        "{res:?}"
    );
    assert_eq!(p.id(), "ollama");
}

#[tokio::test]
async fn streamed_chunks_concatenate_to_the_content() {
    let p = provider().await;
    let collector = Collector::default();
    let sink = |chunk: &str| collector.push(chunk);
    let res = p
        .chat(&request("Count from one to five.", 24), Some(&sink))
        .await
        .expect("streaming chat succeeds");
    let chunks = collector.chunks();
    assert!(chunks.len() > 1, "expected several chunks, got {chunks:?}");
    assert_eq!(chunks.concat(), res.content);
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
        let sink = |_: &str| {};
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
async fn json_schema_format_yields_valid_json() {
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
        let sink = |chunk: &str| collector.push(chunk);
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
async fn a_schema_the_server_rejects_is_a_final_status_error() {
    let p = provider().await;
    let req = ChatRequest {
        format: Some(serde_json::json!({"type": "no-such-type"})),
        ..request("Hi", 8)
    };
    let err = p.chat(&req, None).await.expect_err("bad schema is refused");
    assert!(
        matches!(err, LlmError::Status { status: 400, .. }),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert_eq!(err.code(), "llm_status");
}

#[tokio::test]
async fn list_models_shows_the_served_model() {
    let p = provider().await;
    let models = p.list_models().await.expect("list models");
    let model = models
        .iter()
        .find(|m| m.name == MODEL)
        .unwrap_or_else(|| panic!("{MODEL} missing from {models:?}"));
    assert!(model.size.is_some_and(|s| s > 0), "{model:?}");
}

#[tokio::test]
async fn pull_reports_progress_until_success() {
    let p = provider().await;
    let seen = std::sync::Mutex::new(Vec::<PullProgress>::new());
    let on_progress = |progress: &PullProgress| {
        seen.lock().expect("lock").push(progress.clone());
    };
    p.pull(MODEL, &on_progress).await.expect("pull succeeds");
    let seen = seen.into_inner().expect("lock");
    assert_eq!(
        seen.first().map(|s| s.status.as_str()),
        Some("pulling manifest")
    );
    assert_eq!(seen.last().map(|s| s.status.as_str()), Some("success"));
    let downloads: Vec<_> = seen.iter().filter(|s| s.total.is_some()).collect();
    assert!(!downloads.is_empty(), "{seen:?}");
    assert!(
        downloads
            .iter()
            .all(|s| s.completed.unwrap_or(0) <= s.total.unwrap_or(0))
    );
}

#[tokio::test]
async fn pulling_an_unknown_model_fails_with_model_not_found() {
    let p = provider().await;
    let statuses = std::sync::Mutex::new(Vec::<String>::new());
    let on_progress = |progress: &PullProgress| {
        statuses.lock().expect("lock").push(progress.status.clone());
    };
    let err = p
        .pull("no-such-model:1b", &on_progress)
        .await
        .expect_err("unknown model cannot be pulled");
    assert!(
        matches!(&err, LlmError::ModelNotFound { model } if model == "no-such-model:1b"),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert!(
        !statuses
            .into_inner()
            .expect("lock")
            .contains(&"success".to_owned())
    );
}

#[tokio::test]
async fn unknown_model_is_model_not_found() {
    let p = provider().await;
    for streaming in [false, true] {
        let sink = |_: &str| {};
        let req = ChatRequest {
            model: "no-such-model:7b".into(),
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
            matches!(&err, LlmError::ModelNotFound { model } if model == "no-such-model:7b"),
            "{err:?}"
        );
        assert_eq!(err.code(), "model_not_found");
        assert!(!err.is_retryable());
    }
}

#[tokio::test]
async fn unreachable_server_is_a_retryable_connect_error() {
    let opts = ProviderOptions {
        connect_timeout: Duration::from_secs(2),
        ..ProviderOptions::default()
    };
    let p = OllamaProvider::new("ollama", &common::dead_url(), opts).expect("valid URL");
    let err = p
        .chat(&request("Hi", 8), None)
        .await
        .expect_err("nothing listens");
    assert!(matches!(err, LlmError::Connect { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(err.code(), "llm_unreachable");
    let err = p.list_models().await.expect_err("nothing listens");
    assert!(matches!(err, LlmError::Connect { .. }), "{err:?}");
}

#[tokio::test]
async fn trace_is_sent_as_the_step_header() {
    let p = provider().await;
    let req = ChatRequest {
        trace: Some("task-7/step-3 ollama".into()),
        ..request("Say hello.", 8)
    };
    p.chat(&req, None).await.expect("chat succeeds");
    let base = common::shared_server(&SERVER, &[]).await;
    let record = common::request_with_step(&base, "task-7/step-3 ollama")
        .await
        .expect("the server recorded the traced request");
    assert_eq!(record["path"], "/api/chat");
    assert_eq!(record["aborted"], false);
}

#[tokio::test]
async fn more_concurrent_chats_than_server_slots_all_complete() {
    let p = provider().await;
    // The server runs two generations at once; the rest queue, as in Ollama.
    let chats = (0..4).map(|i| {
        let p = p.clone();
        async move {
            p.chat(&request(&format!("Say the number {i}."), 8), None)
                .await
        }
    });
    for res in futures::future::join_all(chats).await {
        let res = res.expect("queued chat succeeds");
        assert!(res.completion_tokens > 0);
    }
}
