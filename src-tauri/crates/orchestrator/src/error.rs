//! Errors the orchestrator reports to its callers (API, CLI, desktop shell).
//!
//! Each variant has a stable snake_case [`OrchestratorError::code`] so clients match on
//! codes, never on message strings.

use sutazai_store::StoreError;

/// Why an orchestrator call was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OrchestratorError {
    /// A field of the request is invalid; the message names the field.
    #[error("invalid `{field}`: {message}")]
    InvalidRequest {
        /// The offending field, as the client spelled it.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A requirement names a capability no registered agent has.
    #[error("no agent has the capability `{0}`")]
    NoCapableAgent(String),
    /// Agents with the capability exist but all of them are stopped.
    #[error("every agent with the capability `{0}` is stopped")]
    AgentsUnavailable(String),
    /// No agent has this id.
    #[error("agent `{0}` not found")]
    AgentNotFound(String),
    /// The agent cannot be created or deleted as asked (it exists, is built in, is busy).
    #[error("agent `{id}`: {message}")]
    AgentConflict {
        /// The agent.
        id: String,
        /// Why, and what to do instead.
        message: String,
    },
    /// An agent file could not be written or deleted; nothing changed.
    #[error("agent file: {0}")]
    AgentFile(String),
    /// No task has this id.
    #[error("task `{0}` not found")]
    TaskNotFound(String),
    /// The task is not in a state that allows the call (approving a running task, …).
    #[error("task `{id}` is {status}: {message}")]
    InvalidState {
        /// The task.
        id: String,
        /// Its status's wire name.
        status: &'static str,
        /// What the call needed.
        message: String,
    },
    /// The journal failed; nothing was accepted.
    #[error("journal: {0}")]
    Journal(#[from] StoreError),
    /// The orchestrator is shutting down and accepts no new work.
    #[error("the orchestrator is shutting down")]
    ShuttingDown,
    /// `max_pending_tasks` unfinished tasks are held: nothing was accepted; try later.
    #[error(
        "{pending} tasks are already waiting or running (the limit is {limit}, \
         SUTAZAI_MAX_PENDING_TASKS): nothing was accepted; retry once some have finished"
    )]
    Overloaded { pending: usize, limit: usize },
}

impl OrchestratorError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            OrchestratorError::InvalidRequest { .. } => "invalid_request",
            OrchestratorError::NoCapableAgent(_) => "no_capable_agent",
            OrchestratorError::AgentsUnavailable(_) => "agents_unavailable",
            OrchestratorError::AgentNotFound(_) => "agent_not_found",
            OrchestratorError::TaskNotFound(_) => "task_not_found",
            OrchestratorError::Overloaded { .. } => "queue_full",
            OrchestratorError::AgentConflict { .. } => "agent_conflict",
            OrchestratorError::AgentFile(_) => "agent_file_error",
            OrchestratorError::InvalidState { .. } => "invalid_state",
            OrchestratorError::Journal(_) => "journal_error",
            OrchestratorError::ShuttingDown => "shutting_down",
        }
    }

    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Self {
        OrchestratorError::InvalidRequest {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// Why a running task stopped without a result. Kept as `code: message` in the task's
/// `error` field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct TaskFailure {
    /// Stable code (`llm_timeout`, `deadline_exceeded`, `invalid_plan`, …).
    pub code: String,
    /// What happened, naming the step and agent where there is one.
    pub message: String,
}

impl TaskFailure {
    pub(crate) fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        TaskFailure {
            code: code.into(),
            message: message.into(),
        }
    }
}
