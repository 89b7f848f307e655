//! User agents defined through the API on a real `sutazai-headless serve`: created,
//! validated, selected for a task that runs on the test model, redefined while the server
//! runs, an overridden built-in restored, and the definitions kept across a restart
//! because they are ordinary files in the user agent directory.

use std::time::Duration;

use reqwest::{Client, Method};
use serde_json::{Value, json};
use sutazai_tests::{
    TestLlm, call, free_port, headless_binary, headless_command, start_serve, wait_task,
};

fn reviewer(prompt: &str, concurrency: u32) -> Value {
    json!({
        "id": "sql-reviewer",
        "name": "SQL Reviewer",
        "category": "development",
        "role": "specialist",
        "capabilities": ["sql_review", "code_review"],
        "system_prompt": prompt,
        "temperature": 0.0,
        "max_concurrency": concurrency
    })
}

/// Runs a one-stage task needing `sql_review` to completion and returns its detail.
async fn review_task(client: &Client, base: &str) -> Value {
    let (status, task) = call(
        client,
        Method::POST,
        &format!("{base}/tasks"),
        Some(&json!({
            "name": "review a query",
            "description": "Review: SELECT * FROM users;",
            "requirements": ["sql_review"],
            "coordination_pattern": "pipeline",
            "constraints": {"max_agents": 1}
        })),
    )
    .await;
    assert_eq!(status, 201, "{task}");
    let id = task["task_id"].as_str().unwrap();
    let done = wait_task(base, id, Duration::from_secs(120)).await.unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_agents_are_defined_used_edited_and_kept() {
    let bin = headless_binary().expect("sutazai-headless");
    let llm = TestLlm::spawn(0).expect("test LLM");
    let data = tempfile::tempdir().unwrap();
    let agents_dir = data.path().join("agents");
    let port = free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let procs = start_serve(headless_command(&bin, &llm.url, port, data.path()), &base).await;
    let client = Client::new();
    let url = |path: &str| format!("{base}{path}");

    // A new agent: 201, listed at once, written as a file the loader reads.
    let prompt = "You review SQL: \"quotes\", back\\slashes,\nnew lines and ünïcödé survive.";
    let (status, created) = call(
        &client,
        Method::POST,
        &url("/agents"),
        Some(&reviewer(prompt, 2)),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["id"], "sql-reviewer");
    assert_eq!(created["max_concurrency"], 2);
    let file = agents_dir.join("sql-reviewer.toml");
    assert_eq!(created["source"], file.display().to_string());
    let text = std::fs::read_to_string(&file).expect("agent file written");
    println!("agent file:\n{text}");
    let (_, list) = call(&client, Method::GET, &url("/agents"), None).await;
    assert_eq!(list["total"], 39, "38 built-ins and the new one");
    let (status, definition) = call(
        &client,
        Method::GET,
        &url("/agents/sql-reviewer/definition"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        definition["definition"]["system_prompt"], prompt,
        "the prompt round-trips exactly"
    );
    assert_eq!(definition["builtin"], false);

    // The same id again: 409 with a code; nothing changed.
    let (status, body) = call(
        &client,
        Method::POST,
        &url("/agents"),
        Some(&reviewer("other", 3)),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("agent_conflict")),
        "{body}"
    );

    // Bad definitions: 422 naming the field, or the JSON problem; no file appears.
    let bad = [
        (json!({"temperature": 7.5}), "temperature"),
        (json!({"capabilities": []}), "capabilities"),
        (json!({"capabilities": ["Bad Tag"]}), "capabilities"),
        (json!({"system_prompt": "   "}), "system_prompt"),
        (json!({"max_concurrency": 0}), "max_concurrency"),
        (json!({"provider": "nowhere"}), "provider"),
        (json!({"id": "Not An Id"}), "`Not An Id` is not a valid id"),
        (json!({"colour": "blue"}), "colour"),
        (json!({"temperature": "warm"}), "temperature"),
    ];
    for (change, field) in bad {
        let mut body = reviewer("x", 1);
        body["id"] = json!("bad-agent");
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, answer) = call(&client, Method::POST, &url("/agents"), Some(&body)).await;
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(
            status == 422 && answer["code"] == "invalid_request" && message.contains(field),
            "{field}: {status} {answer}"
        );
        println!("bad {field}: {status} {}: {message}", answer["code"]);
    }
    assert!(!agents_dir.join("bad-agent.toml").exists());
    assert_eq!(
        std::fs::read_dir(&agents_dir).unwrap().count(),
        1,
        "only the good agent's file, no temporary left"
    );
    let (status, body) = call(
        &client,
        Method::PUT,
        &url("/agents/other-id"),
        Some(&reviewer("x", 1)),
    )
    .await;
    assert_eq!(status, 422, "an id that disagrees with the path: {body}");

    // A task needing the new capability goes to the new agent and runs on the model.
    let first = review_task(&client, &base).await;
    assert_eq!(first["assigned_agents"], json!(["sql-reviewer"]));
    let traced = llm.requests_for_step("/stage/0").await.unwrap();
    assert!(
        traced.iter().any(|r| r["step"]
            .as_str()
            .unwrap_or("")
            .starts_with(first["id"].as_str().unwrap())),
        "the test model served the new agent's step"
    );
    let short_prompt = first["steps"][0]["prompt_tokens"].as_u64().unwrap();

    // Redefined in place: 200, new limit; the finished step's record kept; the next step
    // runs with the new prompt (a much longer one: many more prompt tokens).
    let long_prompt = format!(
        "You review SQL. {}",
        "Check every join condition, every index and every implicit type conversion. ".repeat(8)
    );
    let (status, edited) = call(
        &client,
        Method::PUT,
        &url("/agents/sql-reviewer"),
        Some(&reviewer(&long_prompt, 5)),
    )
    .await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["max_concurrency"], 5);
    assert_eq!(edited["completed_steps"], 1, "{edited}");
    let second = review_task(&client, &base).await;
    let long_tokens = second["steps"][0]["prompt_tokens"].as_u64().unwrap();
    println!(
        "prompt tokens with the first prompt {short_prompt}, with the edited one {long_tokens}"
    );
    assert!(
        long_tokens > short_prompt + 60,
        "{short_prompt} -> {long_tokens}"
    );

    // A built-in overridden by PUT, then restored by DELETE.
    let (_, original) = call(
        &client,
        Method::GET,
        &url("/agents/senior-ai-engineer/definition"),
        None,
    )
    .await;
    let mut changed = original["definition"].clone();
    changed["name"] = json!("Senior AI Engineer (mine)");
    let (status, overridden) = call(
        &client,
        Method::PUT,
        &url("/agents/senior-ai-engineer"),
        Some(&changed),
    )
    .await;
    assert_eq!(status, 200, "{overridden}");
    assert_eq!(overridden["name"], "Senior AI Engineer (mine)");
    assert!(
        overridden["source"]
            .as_str()
            .unwrap()
            .ends_with("senior-ai-engineer.toml")
    );
    let (status, removed) = call(
        &client,
        Method::DELETE,
        &url("/agents/senior-ai-engineer"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{removed}");
    assert_eq!(removed["restored"]["name"], original["definition"]["name"]);
    assert_eq!(removed["restored"]["source"], "builtin");
    // Built-ins themselves cannot be deleted; unknown ids are 404.
    let (status, body) = call(
        &client,
        Method::DELETE,
        &url("/agents/senior-ai-engineer"),
        None,
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("agent_conflict")),
        "{body}"
    );
    let (status, _) = call(&client, Method::DELETE, &url("/agents/no-such-agent"), None).await;
    assert_eq!(status, 404);

    // A second user agent, deleted again: gone from the list and the directory.
    let mut temp = reviewer("temporary", 1);
    temp["id"] = json!("temp-agent");
    let (status, _) = call(
        &client,
        Method::PUT,
        &url("/agents/temp-agent"),
        Some(&temp),
    )
    .await;
    assert_eq!(status, 201, "PUT of a new id creates it");
    let (status, removed) = call(&client, Method::DELETE, &url("/agents/temp-agent"), None).await;
    assert_eq!(status, 200, "{removed}");
    assert!(removed["restored"].is_null());
    let (status, _) = call(&client, Method::GET, &url("/agents/temp-agent"), None).await;
    assert_eq!(status, 404);
    assert!(!agents_dir.join("temp-agent.toml").exists());

    // After a restart the edited user agent is back, as last defined.
    drop(procs);
    let _procs = start_serve(headless_command(&bin, &llm.url, port, data.path()), &base).await;
    let (status, agent) = call(&client, Method::GET, &url("/agents/sql-reviewer"), None).await;
    assert_eq!(status, 200, "{agent}");
    assert_eq!(agent["max_concurrency"], 5);
    let (_, definition) = call(
        &client,
        Method::GET,
        &url("/agents/sql-reviewer/definition"),
        None,
    )
    .await;
    assert!(
        definition["definition"]["system_prompt"]
            .as_str()
            .is_some_and(|p| p.starts_with("You review SQL. Check every join"))
    );
    let (_, builtin) = call(
        &client,
        Method::GET,
        &url("/agents/senior-ai-engineer"),
        None,
    )
    .await;
    assert_eq!(builtin["source"], "builtin");
    let (_, list) = call(&client, Method::GET, &url("/agents"), None).await;
    assert_eq!(list["total"], 39);
    println!(
        "after a restart: sql-reviewer max_concurrency 5, 39 agents, senior-ai-engineer built-in"
    );
}
