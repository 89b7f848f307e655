//! One task per coordination pattern on the real test model, through the HTTP API: each
//! completes, with the agents and step order its pattern implies, and every step carries
//! tokens and a duration.

use std::time::Duration;

use serde_json::{Value, json};
use sutazai_tests::{Stack, TestLlm, test_config};

const LIMIT: Duration = Duration::from_secs(240);

fn steps(task: &Value) -> Vec<Value> {
    let mut steps = task["steps"].as_array().cloned().unwrap_or_default();
    steps.sort_by_key(|s| s["seq"].as_u64());
    steps
}

fn assert_steps_measured(steps: &[Value]) {
    for s in steps {
        assert_eq!(s["status"], "completed", "step {s}");
        assert!(
            s["completion_tokens"].as_u64().unwrap_or(0) > 0,
            "tokens in {s}"
        );
        assert!(
            s["prompt_tokens"].as_u64().unwrap_or(0) > 0,
            "prompt tokens in {s}"
        );
        assert!(
            s["duration"].as_f64().unwrap_or(0.0) > 0.0,
            "duration in {s}"
        );
        assert_eq!(s["model"], "smollm2:135m");
    }
}

async fn run(stack: &Stack, body: Value) -> Value {
    let (status, submitted) = stack.post("/tasks", &body).await.expect("submit");
    assert_eq!(status, 201, "{submitted}");
    let id = submitted["task_id"].as_str().expect("task_id").to_owned();
    assert!(
        submitted["session_id"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    let task = stack.wait_task(&id, LIMIT).await.expect("finish");
    assert_eq!(task["status"], "completed", "{task}");
    assert!(
        task["result"]["output"]
            .as_str()
            .is_some_and(|o| !o.is_empty())
    );
    task
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pattern_completes_on_the_real_model() {
    let llm = TestLlm::spawn(0).expect("test LLM");
    let stack = Stack::start(&llm.url, test_config()).await.expect("stack");

    // Pipeline: one stage per requirement, in requirement order, each a different agent.
    let task = run(
        &stack,
        json!({
            "name": "pipeline", "description": "Ship a small web service",
            "requirements": ["code_generation", "security_review", "deployment_automation"],
            "coordination_pattern": "pipeline"
        }),
    )
    .await;
    let agents: Vec<String> = serde_json::from_value(task["assigned_agents"].clone()).unwrap();
    assert_eq!(agents.len(), 3, "{agents:?}");
    let s = steps(&task);
    let keys: Vec<&str> = s.iter().map(|x| x["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["stage/0", "stage/1", "stage/2"]);
    for (step, agent) in s.iter().zip(&agents) {
        assert_eq!(step["agent_id"], agent.as_str());
    }
    assert!(
        s[1]["input"]
            .as_str()
            .unwrap()
            .contains(s[0]["output"].as_str().unwrap().trim())
    );
    assert_steps_measured(&s);

    // Collaborative: every agent works, then the first synthesises, last.
    let task = run(
        &stack,
        json!({
            "name": "collab", "description": "Review a login handler",
            "requirements": ["code_analysis", "security_review"],
            "coordination_pattern": "collaborative"
        }),
    )
    .await;
    let agents: Vec<String> = serde_json::from_value(task["assigned_agents"].clone()).unwrap();
    assert_eq!(agents.len(), 2);
    let s = steps(&task);
    assert_eq!(s.len(), 3);
    let last = s.last().unwrap();
    assert_eq!(last["key"], "synthesize");
    assert_eq!(last["agent_id"], agents[0].as_str());
    let workers: Vec<&str> = s[..2]
        .iter()
        .map(|x| x["agent_id"].as_str().unwrap())
        .collect();
    for a in &agents {
        assert!(workers.contains(&a.as_str()));
    }
    assert_steps_measured(&s);

    // Hierarchical: a schema-constrained JSON plan by the coordinator, workers, synthesis.
    let task = run(
        &stack,
        json!({
            "name": "hier", "description": "Design and secure an API",
            "requirements": ["code_generation", "security_review"],
            "coordination_pattern": "hierarchical", "constraints": {"max_agents": 3}
        }),
    )
    .await;
    let agents: Vec<String> = serde_json::from_value(task["assigned_agents"].clone()).unwrap();
    assert_eq!(agents.len(), 3);
    let s = steps(&task);
    assert_eq!(s[0]["key"], "plan");
    assert_eq!(s[0]["agent_id"], agents[0].as_str());
    let plan: Value = serde_json::from_str(s[0]["output"].as_str().unwrap()).expect("plan is JSON");
    let subtasks = plan["subtasks"].as_array().expect("subtasks");
    assert!(!subtasks.is_empty());
    assert_eq!(s.len(), subtasks.len() + 2);
    for (i, sub) in subtasks.iter().enumerate() {
        let work = s
            .iter()
            .find(|x| x["key"] == format!("work/{i}"))
            .expect("work step");
        assert_eq!(work["agent_id"], sub["agent_id"]);
        assert!(agents[1..].iter().any(|a| sub["agent_id"] == a.as_str()));
    }
    assert_eq!(s.last().unwrap()["key"], "synthesize");
    assert_eq!(s.last().unwrap()["agent_id"], agents[0].as_str());
    assert_steps_measured(&s);

    // Swarm: rounds of every agent, seeing each other's results over the bus, then votes.
    let published_before = stack.orchestrator.bus().stats().await.unwrap().published;
    let task = run(
        &stack,
        json!({
            "name": "swarm", "description": "Name a caching strategy",
            "requirements": ["code_generation"],
            "coordination_pattern": "swarm", "constraints": {"max_agents": 3}
        }),
    )
    .await;
    let agents: Vec<String> = serde_json::from_value(task["assigned_agents"].clone()).unwrap();
    assert_eq!(agents.len(), 3);
    let s = steps(&task);
    let rounds = s.iter().filter(|x| x["kind"] == "round").count();
    let votes = s.iter().filter(|x| x["kind"] == "vote").count();
    assert_eq!(rounds, 2 * agents.len());
    assert_eq!(votes, agents.len());
    assert!(
        s[..rounds].iter().all(|x| x["kind"] == "round"),
        "votes come last"
    );
    // Round 2 prompts carry the peers' round-1 outputs, delivered over the bus.
    let r1 = s
        .iter()
        .find(|x| x["key"] == format!("round/0/{}", agents[1]))
        .unwrap();
    let r2 = s
        .iter()
        .find(|x| x["key"] == format!("round/1/{}", agents[0]))
        .unwrap();
    assert!(
        r2["input"]
            .as_str()
            .unwrap()
            .contains(r1["output"].as_str().unwrap().trim())
    );
    assert!(stack.orchestrator.bus().stats().await.unwrap().published >= published_before + 6);
    let winner = task["result"]["winner"].as_str().unwrap();
    assert!(agents.iter().any(|a| a == winner));
    for v in s.iter().filter(|x| x["kind"] == "vote") {
        let vote: Value = serde_json::from_str(v["output"].as_str().unwrap()).expect("vote JSON");
        assert!(
            vote["choice"]
                .as_u64()
                .is_some_and(|c| (c as usize) < agents.len())
        );
    }
    assert_steps_measured(&s);

    // The track record moved: analytics sees the steps.
    let (status, analytics) = stack.get("/analytics/performance").await.unwrap();
    assert_eq!(status, 200);
    assert!(analytics["total_steps"].as_u64().unwrap() >= 3 + 3 + 3 + 9);
    assert!(analytics["average_success_rate"].as_f64().unwrap() > 0.0);
    stack.stop().await;
}
