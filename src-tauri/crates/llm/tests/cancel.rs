//! Cancellation and time limits against a deliberately slow real server
//! (`--token-delay-ms 50`: every generated token takes at least 50 ms), so a 200-token
//! answer stays in flight for seconds and can be cut off mid-generation.
//!
//! The checks are functional: that the *server* saw the client go away and stopped
//! generating, and that each limit is reported as its own [`TimeoutKind`]. Polling bounds
//! only keep a broken server from hanging the test.

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use common::{MODEL, TestServer};
use sutazai_llm::{
    ChatMessage, ChatRequest, LlmError, OllamaProvider, OpenAiProvider, Provider, ProviderOptions,
    TimeoutKind,
};
use tokio::sync::Notify;

static SERVER: OnceLock<TestServer> = OnceLock::new();
const SLOW: &[&str] = &["--token-delay-ms", "50"];
const MAX_TOKENS: u32 = 200;

async fn base() -> String {
    common::shared_server(&SERVER, SLOW).await
}

fn long_request(trace: &str) -> ChatRequest {
    ChatRequest {
        temperature: Some(0.0),
        max_tokens: Some(MAX_TOKENS),
        trace: Some(trace.to_owned()),
        ..ChatRequest::new(
            MODEL,
            vec![ChatMessage::user(
                "Write a very long essay about the history of bread.",
            )],
        )
    }
}

/// Starts a streaming chat, drops its future as soon as the first chunk arrives, and
/// checks that the server recorded the request as aborted before it finished.
async fn drop_mid_stream(provider: &dyn Provider, trace: &str) {
    let first_chunk = Notify::new();
    let sink = |_: &str| first_chunk.notify_one();
    let req = long_request(trace);
    tokio::select! {
        res = provider.chat(&req, Some(&sink)) => {
            panic!("the slow chat finished before it could be cancelled: {res:?}")
        }
        () = first_chunk.notified() => {}
    }
    // The chat future is dropped here, closing the connection mid-stream.
    let record = common::wait_for_end(&base().await, trace, Duration::from_secs(20))
        .await
        .expect("the server recorded the request");
    assert!(!record["ended_at_ms"].is_null(), "never ended: {record}");
    assert_eq!(record["aborted"], true, "{record}");
    let generated = record["completion_tokens"].as_u64().unwrap_or(0);
    assert!(
        generated < u64::from(MAX_TOKENS),
        "generation ran to the end: {record}"
    );
}

#[tokio::test]
async fn dropping_an_ollama_stream_aborts_the_generation() {
    let p = OllamaProvider::new("ollama", &base().await, ProviderOptions::default())
        .expect("valid URL");
    drop_mid_stream(&p, "cancel-ollama-stream").await;
}

#[tokio::test]
async fn dropping_an_openai_stream_aborts_the_generation() {
    let p = OpenAiProvider::new("openai", &base().await, None, ProviderOptions::default())
        .expect("valid URL");
    drop_mid_stream(&p, "cancel-openai-stream").await;
}

#[tokio::test]
async fn dropping_a_non_streaming_chat_aborts_the_generation() {
    let base = base().await;
    let p = OllamaProvider::new("ollama", &base, ProviderOptions::default()).expect("valid URL");
    let trace = "cancel-ollama-whole";
    let req = long_request(trace);
    let generating = async {
        // Wait until the server is generating for this request.
        loop {
            let record = common::request_with_step(&base, trace).await;
            if record.is_some_and(|r| r["completion_tokens"].as_u64().unwrap_or(0) > 0) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        res = p.chat(&req, None) => panic!("the slow chat finished before it could be cancelled: {res:?}"),
        () = generating => {}
    }
    let record = common::wait_for_end(&base, trace, Duration::from_secs(20))
        .await
        .expect("the server recorded the request");
    assert_eq!(record["aborted"], true, "{record}");
    assert!(record["completion_tokens"].as_u64().unwrap_or(0) < u64::from(MAX_TOKENS));
}

#[tokio::test]
async fn a_silent_stream_hits_the_idle_limit() {
    let opts = ProviderOptions {
        // Far below the server's 50 ms per token: the first gap already exceeds it.
        idle_timeout: Duration::from_millis(10),
        ..ProviderOptions::default()
    };
    let p = OllamaProvider::new("ollama", &base().await, opts).expect("valid URL");
    let sink = |_: &str| {};
    let err = p
        .chat(&long_request("idle-limit"), Some(&sink))
        .await
        .expect_err("the idle limit expires");
    assert!(
        matches!(
            err,
            LlmError::Timeout {
                kind: TimeoutKind::Idle,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(err.code(), "llm_timeout");
}

#[tokio::test]
async fn a_long_request_hits_the_request_limit() {
    let opts = ProviderOptions {
        // 200 tokens at >= 50 ms each take >= 10 s; the limit is far below that.
        request_timeout: Duration::from_millis(500),
        ..ProviderOptions::default()
    };
    let p = OpenAiProvider::new("openai", &base().await, None, opts).expect("valid URL");
    for (streaming, trace) in [
        (false, "request-limit-whole"),
        (true, "request-limit-stream"),
    ] {
        let sink = |_: &str| {};
        let err = p
            .chat(
                &long_request(trace),
                streaming.then_some(&sink as &(dyn Fn(&str) + Send + Sync)),
            )
            .await
            .expect_err("the request limit expires");
        assert!(
            matches!(
                err,
                LlmError::Timeout {
                    kind: TimeoutKind::Request,
                    ..
                }
            ),
            "streaming={streaming}: {err:?}"
        );
        // Giving up also stops the server's work.
        let record = common::wait_for_end(&base().await, trace, Duration::from_secs(20))
            .await
            .expect("the server recorded the request");
        assert_eq!(record["aborted"], true, "{record}");
    }
}
