//! Live events the orchestrator publishes for the API's WebSockets and the desktop UI.
//!
//! Serialised with a `type` tag and the system description's field names
//! (`task_completed` carries `task_name`), so the API forwards them unchanged.

use serde::Serialize;
use serde_json::Value;
use sutazai_core::{AgentState, Priority, StepKind, StepStatus};

/// Something that happened; see each variant.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A task was accepted and journaled.
    TaskSubmitted {
        /// Task id.
        task_id: String,
        /// Session id.
        session_id: String,
        /// The task's name.
        task_name: String,
        /// Its priority.
        priority: Priority,
    },
    /// A task waits for approvals.
    AwaitingApproval {
        /// Task id.
        task_id: String,
        /// The task's name.
        task_name: String,
        /// Approvals still missing.
        pending: Vec<String>,
    },
    /// An approval was given.
    TaskApproved {
        /// Task id.
        task_id: String,
        /// The approval's name.
        approval: String,
        /// Approvals still missing.
        pending: Vec<String>,
    },
    /// A task started (or resumed) running.
    TaskStarted {
        /// Task id.
        task_id: String,
        /// The task's name.
        task_name: String,
        /// Agents working on it, in pattern order.
        agents: Vec<String>,
        /// Whether it resumed from the journal after a restart.
        resumed: bool,
    },
    /// An agent started a step.
    StepStarted {
        /// Task id.
        task_id: String,
        /// Step key.
        step: String,
        /// What the step does.
        kind: StepKind,
        /// The agent.
        agent_id: String,
    },
    /// A chunk of a step's model output, as it streams.
    StepToken {
        /// Task id.
        task_id: String,
        /// Step key.
        step: String,
        /// The agent.
        agent_id: String,
        /// The chunk.
        text: String,
    },
    /// A step finished.
    StepFinished {
        /// Task id.
        task_id: String,
        /// Step key.
        step: String,
        /// The agent.
        agent_id: String,
        /// Completed or failed.
        status: StepStatus,
        /// Prompt tokens.
        prompt_tokens: u32,
        /// Completion tokens.
        completion_tokens: u32,
        /// Seconds.
        duration: f64,
    },
    /// A task completed.
    TaskCompleted {
        /// Task id.
        task_id: String,
        /// Session id.
        session_id: String,
        /// The task's name.
        task_name: String,
        /// The result.
        result: Value,
        /// Seconds from first start to completion.
        duration: f64,
    },
    /// A task failed.
    TaskFailed {
        /// Task id.
        task_id: String,
        /// The task's name.
        task_name: String,
        /// Stable failure code.
        code: String,
        /// What happened.
        message: String,
    },
    /// A task was cancelled.
    TaskCancelled {
        /// Task id.
        task_id: String,
        /// The task's name.
        task_name: String,
    },
    /// An agent changed state (stopped, started, breaker opened or closed).
    AgentStatus {
        /// The agent.
        agent_id: String,
        /// Its new state.
        status: AgentState,
    },
}

impl Event {
    /// The task this event is about, if any.
    pub fn task_id(&self) -> Option<&str> {
        match self {
            Event::TaskSubmitted { task_id, .. }
            | Event::AwaitingApproval { task_id, .. }
            | Event::TaskApproved { task_id, .. }
            | Event::TaskStarted { task_id, .. }
            | Event::StepStarted { task_id, .. }
            | Event::StepToken { task_id, .. }
            | Event::StepFinished { task_id, .. }
            | Event::TaskCompleted { task_id, .. }
            | Event::TaskFailed { task_id, .. }
            | Event::TaskCancelled { task_id, .. } => Some(task_id),
            Event::AgentStatus { .. } => None,
        }
    }

    /// The agent this event is about, if any.
    pub fn agent_id(&self) -> Option<&str> {
        match self {
            Event::StepStarted { agent_id, .. }
            | Event::StepToken { agent_id, .. }
            | Event::StepFinished { agent_id, .. }
            | Event::AgentStatus { agent_id, .. } => Some(agent_id),
            _ => None,
        }
    }
}
