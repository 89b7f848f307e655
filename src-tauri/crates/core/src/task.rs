//! Tasks as submitted and as tracked, their constraints, approvals and steps.
//!
//! A task runs as a *session* of steps. Each step has a deterministic `key` (`plan`,
//! `work/1`, `stage/0`, `swarm/r1/a2`, …) so that a restarted run can find, in the
//! journal, the steps it already finished and reuse their output instead of calling the
//! model again.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// Task and message priority. Orders `Low < Normal < High < Critical`.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Background work.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Ahead of normal work.
    High,
    /// Ahead of everything.
    Critical,
}

impl Priority {
    /// The wire name (`"high"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Critical => "critical",
        }
    }
}

/// How the selected agents work together on a task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CoordinationPattern {
    /// A coordinator plans subtasks as JSON, workers run them, the coordinator synthesises.
    Hierarchical,
    /// The agents work in parallel on the whole task, then one synthesises.
    #[default]
    Collaborative,
    /// Ordered stages: each stage's output is the next stage's input.
    Pipeline,
    /// Agents work concurrently for a bounded number of rounds, seeing each other's
    /// intermediate results over the bus; the result is chosen by vote.
    Swarm,
}

impl CoordinationPattern {
    /// The wire name (`"pipeline"`).
    pub fn as_str(self) -> &'static str {
        match self {
            CoordinationPattern::Hierarchical => "hierarchical",
            CoordinationPattern::Collaborative => "collaborative",
            CoordinationPattern::Pipeline => "pipeline",
            CoordinationPattern::Swarm => "swarm",
        }
    }
}

/// Limits a submitter puts on a task (`constraints` in the system description).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Constraints {
    /// At most this many agents work on the task (coordinator included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_agents: Option<u32>,
    /// Seconds the whole task may take once it starts running; past it the task fails with
    /// `deadline_exceeded` and its in-flight model calls are stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_duration: Option<f64>,
    /// Named approvals that must all be given (`POST /tasks/{id}/approve`) before the task
    /// starts running.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_approvals: Vec<String>,
}

/// A task as a client submits it (`POST /tasks`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskRequest {
    /// Short human name; events such as `task_completed` carry it as `task_name`.
    pub name: String,
    /// What to do, in words: the prompt the agents work from.
    #[serde(default)]
    pub description: String,
    /// Free-form task type (`code_generation`, `deployment`).
    #[serde(default, rename = "type")]
    pub task_type: String,
    /// Queue priority.
    #[serde(default)]
    pub priority: Priority,
    /// Capabilities the task needs; each must be covered by at least one agent.
    #[serde(default)]
    pub requirements: Vec<String>,
    /// How the agents coordinate.
    #[serde(default)]
    pub coordination_pattern: CoordinationPattern,
    /// Structured input handed to the agents alongside the description.
    #[serde(default)]
    pub payload: Value,
    /// Limits on the task.
    #[serde(default)]
    pub constraints: Constraints,
}

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Accepted and journaled, waiting for a free slot (`MAX_CONCURRENT_TASKS`).
    Queued,
    /// Waiting for its `required_approvals`.
    AwaitingApproval,
    /// Agents are working on it.
    Running,
    /// Finished with a result.
    Completed,
    /// Finished with an error.
    Failed,
    /// Stopped by `DELETE /tasks/{id}`.
    Cancelled,
}

impl TaskStatus {
    /// The wire name (`"awaiting_approval"`).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Queued => "queued",
            TaskStatus::AwaitingApproval => "awaiting_approval",
            TaskStatus::Running => "running",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<TaskStatus> {
        Some(match s {
            "queued" => TaskStatus::Queued,
            "awaiting_approval" => TaskStatus::AwaitingApproval,
            "running" => TaskStatus::Running,
            "completed" => TaskStatus::Completed,
            "failed" => TaskStatus::Failed,
            "cancelled" => TaskStatus::Cancelled,
            _ => return None,
        })
    }

    /// Completed, failed or cancelled: nothing more will happen to the task.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }
}

/// One approval given to a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Approval {
    /// The approval's name, one of the task's `required_approvals`.
    pub name: String,
    /// Who gave it (free text from the client).
    pub approved_by: String,
    /// When it was given.
    pub approved_at: DateTime<Utc>,
}

/// A task as the orchestrator tracks it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Task {
    /// Task id, returned by `POST /tasks` as `task_id`.
    pub id: String,
    /// Coordination session id, returned by `POST /tasks` as `session_id`.
    pub session_id: String,
    /// The request as submitted.
    #[serde(flatten)]
    pub request: TaskRequest,
    /// Where the task is.
    pub status: TaskStatus,
    /// Agents selected for the task, in the order the pattern uses them. Empty until the
    /// selection ran; fixed afterwards (a resumed task keeps its agents).
    #[serde(default)]
    pub assigned_agents: Vec<String>,
    /// Approvals given so far.
    #[serde(default)]
    pub approvals: Vec<Approval>,
    /// The final answer once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Why it failed or was cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it was accepted.
    pub created_at: DateTime<Utc>,
    /// When it first started running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached a terminal status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
}

impl Task {
    /// Approvals still missing, in the order they were required.
    pub fn pending_approvals(&self) -> Vec<String> {
        self.request
            .constraints
            .required_approvals
            .iter()
            .filter(|name| !self.approvals.iter().any(|a| &a.name == *name))
            .cloned()
            .collect()
    }
}

/// What a step does within its pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// Hierarchical: the coordinator's JSON plan.
    Plan,
    /// Work on the task or on a subtask.
    Work,
    /// A pipeline stage.
    Stage,
    /// A swarm round.
    Round,
    /// A swarm vote.
    Vote,
    /// Merging the others' results into the answer.
    Synthesize,
}

/// Where a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Journaled as started; its model call may be in flight.
    Running,
    /// Finished; its output is final and is never recomputed.
    Completed,
    /// Failed after all its attempts.
    Failed,
}

/// One unit of agent work, journaled before and after it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Step {
    /// The task it belongs to.
    pub task_id: String,
    /// Deterministic key within the task (`stage/1`); a resumed run looks steps up by it.
    pub key: String,
    /// Order in which the step was first started within its task.
    pub seq: u32,
    /// What the step does.
    pub kind: StepKind,
    /// The agent that runs it.
    pub agent_id: String,
    /// Where it is.
    pub status: StepStatus,
    /// The prompt the agent got (user part; the system prompt is the agent's).
    pub input: String,
    /// The agent's answer once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Attempts made (1 on a first-time success).
    pub attempts: u32,
    /// The model that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Prompt tokens the model reported.
    pub prompt_tokens: u32,
    /// Completion tokens the model reported.
    pub completion_tokens: u32,
    /// Seconds the successful attempt took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    /// When it was first started.
    pub started_at: DateTime<Utc>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}
