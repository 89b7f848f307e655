//! Provider fallback on a real `sutazai-headless serve`: the default provider points at an
//! endpoint where nothing listens and names the test LLM's OpenAI-compatible endpoint as its
//! `fallback`; tasks still complete (answered by the fallback, same model family), while
//! without the fallback the same set-up fails the task with `llm_unreachable`.

use std::time::Duration;

use sutazai_tests::{
    TestLlm, free_port, headless_binary, headless_command, start_serve, submit_one_step_task,
    wait_task,
};

fn config(dead: &str, llm: &str, with_fallback: bool) -> String {
    let fallback = if with_fallback {
        "fallback = \"local\"\n"
    } else {
        ""
    };
    format!(
        "[providers.ollama]\nkind = \"ollama\"\nbase_url = \"{dead}\"\n{fallback}\n\
         [providers.local]\nkind = \"openai\"\nbase_url = \"{llm}/v1\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_provider_falls_back_to_another_serving_the_same_family() {
    let bin = headless_binary().expect("sutazai-headless");
    let llm = TestLlm::spawn(0).expect("test LLM");
    let dead = format!("http://127.0.0.1:{}", free_port().unwrap());
    for with_fallback in [true, false] {
        let data = tempfile::tempdir().unwrap();
        let file = data.path().join("sutazai.toml");
        std::fs::write(&file, config(&dead, &llm.url, with_fallback)).unwrap();
        let port = free_port().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let mut cmd = headless_command(&bin, &dead, port, data.path());
        cmd.env_remove("OLLAMA_API_URL")
            .env("SUTAZAI_CONFIG", &file)
            // One attempt per step: what answers is the provider, not a retry.
            .env("SUTAZAI_MAX_ATTEMPTS", "1")
            // Without a fallback the dead endpoint fails the step after 1 s of waiting.
            .env("SUTAZAI_OUTAGE_WAIT", "1");
        let serve = start_serve(cmd, &base).await;
        let before = llm.requests().await.unwrap().len();
        let id = submit_one_step_task(&base, "fallback").await;
        let task = wait_task(&base, &id, Duration::from_secs(120))
            .await
            .unwrap();
        let served = llm.requests().await.unwrap().len() - before;
        if with_fallback {
            assert_eq!(task["status"], "completed", "{task}");
            assert!(served >= 1, "the fallback (test LLM) answered");
            println!(
                "with fallback = \"local\": task completed; the test LLM answered {served} call(s) for the dead `ollama` endpoint"
            );
        } else {
            assert_eq!(task["status"], "failed", "{task}");
            assert_eq!(served, 0);
            let error = task["error"].as_str().unwrap_or_default();
            assert!(
                error.contains("llm_unreachable") || error.contains("cannot reach"),
                "{error}"
            );
            println!("without a fallback: task failed ({error})");
        }
        drop(serve);
    }
}
