//! Prompts for each kind of step. Short and explicit, so that small local models follow
//! them; the agent's own system prompt carries its expertise.

use sutazai_core::Task;

/// Longest payload excerpt put into a prompt.
const MAX_PAYLOAD_CHARS: usize = 4000;
/// Longest excerpt of another agent's output put into a prompt.
const MAX_PEER_CHARS: usize = 3000;

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut clipped: String = text.chars().take(max).collect();
        clipped.push_str(" …");
        clipped
    }
}

/// The task itself, as every step sees it.
fn brief(task: &Task) -> String {
    let r = &task.request;
    let mut text = format!("Task: {}\n", r.name);
    if !r.description.is_empty() {
        text.push_str(&format!("Description: {}\n", r.description));
    }
    if !r.task_type.is_empty() {
        text.push_str(&format!("Type: {}\n", r.task_type));
    }
    text.push_str(&format!("Requirements: {}\n", r.requirements.join(", ")));
    if !r.payload.is_null() {
        let payload = serde_json::to_string(&r.payload).unwrap_or_default();
        text.push_str(&format!("Input: {}\n", clip(&payload, MAX_PAYLOAD_CHARS)));
    }
    text
}

fn listing(items: &[(String, String)]) -> String {
    items
        .iter()
        .map(|(agent, output)| format!("### {agent}\n{}\n", clip(output, MAX_PEER_CHARS)))
        .collect()
}

/// Hierarchical: the coordinator's plan.
pub(crate) fn plan(task: &Task, workers: &[(String, Vec<String>)], max: usize) -> String {
    let mut text = brief(task);
    text.push_str("\nWorkers:\n");
    for (id, caps) in workers {
        text.push_str(&format!("- {id}: {}\n", caps.join(", ")));
    }
    text.push_str(&format!(
        "\nSplit the task into 1 to {max} subtasks and assign each to one worker by its id. \
         Answer with JSON only: {{\"subtasks\": [{{\"agent_id\": \"...\", \"instruction\": \"...\"}}]}}. \
         Keep each instruction to one sentence."
    ));
    text
}

/// Hierarchical: a worker's subtask.
pub(crate) fn subtask(task: &Task, instruction: &str) -> String {
    format!(
        "{}\nYour subtask: {instruction}\nAnswer concisely with your result only.",
        brief(task)
    )
}

/// Collaborative: one agent's contribution.
pub(crate) fn collaborate(task: &Task, capabilities: &[String]) -> String {
    format!(
        "{}\nContribute from your expertise ({}). Answer concisely.",
        brief(task),
        capabilities.join(", ")
    )
}

/// Collaborative and hierarchical: merging results.
pub(crate) fn synthesize(task: &Task, results: &[(String, String)]) -> String {
    format!(
        "{}\nContributions from the team:\n{}\nCombine them into one final answer to the task. \
         Keep what is correct, resolve conflicts, answer concisely.",
        brief(task),
        listing(results)
    )
}

/// Pipeline: one stage.
pub(crate) fn stage(
    task: &Task,
    index: usize,
    total: usize,
    focus: &[String],
    previous: Option<&(String, String)>,
) -> String {
    let mut text = brief(task);
    text.push_str(&format!("\nYou are stage {} of {total}.", index + 1));
    if !focus.is_empty() {
        text.push_str(&format!(" Your stage covers: {}.", focus.join(", ")));
    }
    if let Some((agent, output)) = previous {
        text.push_str(&format!(
            "\nOutput of the previous stage ({agent}):\n{}\n\nBuild on it.",
            clip(output, MAX_PEER_CHARS)
        ));
    }
    text.push_str(" Answer concisely with your stage's result.");
    text
}

/// Swarm: one agent's round.
pub(crate) fn swarm_round(
    task: &Task,
    round: u32,
    rounds: u32,
    peers: &[(String, String)],
) -> String {
    let mut text = brief(task);
    text.push_str(&format!("\nRound {} of {rounds}.", round + 1));
    if peers.is_empty() {
        text.push_str(" Propose your answer.");
    } else {
        text.push_str(&format!(
            " Other agents proposed:\n{}\nImprove on the best ideas and give your own answer.",
            listing(peers)
        ));
    }
    text.push_str(" Answer concisely.");
    text
}

/// Swarm: a vote among candidates.
pub(crate) fn vote(task: &Task, candidates: &[(String, String)], allowed: &[usize]) -> String {
    let mut text = brief(task);
    text.push_str("\nCandidate answers:\n");
    for (i, (agent, output)) in candidates.iter().enumerate() {
        text.push_str(&format!(
            "[{i}] ({agent}) {}\n",
            clip(output, MAX_PEER_CHARS)
        ));
    }
    let allowed: Vec<String> = allowed.iter().map(|i| i.to_string()).collect();
    text.push_str(&format!(
        "\nChoose the best candidate among [{}]. Answer with JSON only: {{\"choice\": <number>}}.",
        allowed.join(", ")
    ));
    text
}
