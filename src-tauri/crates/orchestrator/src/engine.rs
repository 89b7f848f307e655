//! The orchestrator facade and task lifecycle: submission, the dispatcher that feeds the
//! priority queue into `MAX_CONCURRENT_TASKS` slots, approvals, cancellation, restart
//! recovery, agent control, statistics and analytics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sutazai_agents::Registry;
use sutazai_bus::Bus;
use sutazai_core::{
    AgentCategory, AgentRole, AgentSpec, AgentState, Approval, Step, Task, TaskRequest, TaskStatus,
    ids,
};
use sutazai_llm::Provider;
use sutazai_store::Journal;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use utoipa::ToSchema;

use crate::backoff::Backoff;
use crate::breaker::BreakerConfig;
use crate::error::{OrchestratorError, TaskFailure};
use crate::event::Event;
use crate::executor::{Executor, ServedAgent};
use crate::live::{Ended, Live, LiveSet};
use crate::queue::RunQueue;
use crate::roster::{RecentPerformance, Roster, TrackRecord};

/// Which provider and model an agent uses, overriding its registry entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentBinding {
    /// Provider name.
    pub provider: Option<String>,
    /// Model name.
    pub model: Option<String>,
}

/// Orchestrator settings (the CLI fills them from environment and config file).
#[derive(Debug, Clone)]
pub struct OrchestratorConfig {
    /// Tasks running at once (`MAX_CONCURRENT_TASKS`); more wait in the priority queue.
    pub max_concurrent_tasks: usize,
    /// Unfinished tasks (queued, awaiting approval, running) held at once
    /// (`SUTAZAI_MAX_PENDING_TASKS`): beyond it a submission is refused with
    /// [`OrchestratorError::Overloaded`], so a flood costs bounded memory and clients are
    /// told to come back rather than left waiting on an ever-longer queue.
    pub max_pending_tasks: usize,
    /// Provider agents use unless bound otherwise.
    pub default_provider: String,
    /// Model agents use unless bound otherwise (`SUTAZAI_MODEL`).
    pub default_model: String,
    /// Per-agent provider/model overrides, by agent id.
    pub agent_bindings: HashMap<String, AgentBinding>,
    /// Completion-token cap for free-text steps (`None` = the model's own limit).
    pub max_tokens: Option<u32>,
    /// Completion-token cap for JSON steps (plans, votes), which must not be cut short.
    pub structured_max_tokens: u32,
    /// Time one model call may take before the attempt counts as failed.
    pub step_timeout: Duration,
    /// Attempts per step (1 = no retry).
    pub max_attempts: u32,
    /// Delay between attempts.
    pub backoff: Backoff,
    /// How long a step waits for an outage to end (the LLM endpoint refusing connections,
    /// the bus unreachable, the agent's breaker open) before it fails. Failures of that
    /// kind do not use up attempts: the step is retried every few seconds meanwhile.
    pub outage_wait: Duration,
    /// Circuit breaker settings.
    pub breaker: BreakerConfig,
    /// Payload keys whose values are redacted from the text events carry (streamed step
    /// text, a task's result and failure message), as the API masks its answers.
    pub sensitive_fields: sutazai_core::mask::SensitiveFields,
    /// Agents per task when `constraints.max_agents` is not given.
    pub default_max_agents: u32,
    /// Rounds a swarm runs before voting.
    pub swarm_rounds: u32,
    /// Live events buffered per subscriber before it is told it lagged.
    pub event_capacity: usize,
    /// Agents whose steps this process executes itself (`SUTAZAI_LOCAL_AGENTS`); the
    /// others need a `sutazai worker` on the same bus.
    pub local_agents: LocalAgents,
    /// The user's agent directory (`SUTAZAI_AGENTS_DIR`), where agents defined through
    /// [`Orchestrator::define_agent`] are written; `None`: definitions are refused.
    pub user_agents_dir: Option<std::path::PathBuf>,
}

/// Which agents a process executes steps for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LocalAgents {
    /// Every registered agent.
    #[default]
    All,
    /// None: steps wait for workers.
    None,
    /// These agents.
    Only(Vec<String>),
}

impl LocalAgents {
    /// Parses `all`, `none` or a comma-separated list of agent ids.
    pub fn parse(text: &str) -> LocalAgents {
        match text.trim() {
            "" | "all" => LocalAgents::All,
            "none" => LocalAgents::None,
            list => LocalAgents::Only(
                list.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect(),
            ),
        }
    }

    /// Whether `agent` is included.
    pub fn includes(&self, agent: &str) -> bool {
        match self {
            LocalAgents::All => true,
            LocalAgents::None => false,
            LocalAgents::Only(ids) => ids.iter().any(|i| i == agent),
        }
    }
}

impl Default for OrchestratorConfig {
    fn default() -> Self {
        OrchestratorConfig {
            max_concurrent_tasks: 100,
            max_pending_tasks: 10_000,
            default_provider: "ollama".into(),
            default_model: "llama3.2".into(),
            agent_bindings: HashMap::new(),
            max_tokens: Some(512),
            structured_max_tokens: 512,
            step_timeout: Duration::from_secs(300),
            max_attempts: 3,
            backoff: Backoff::default(),
            outage_wait: Duration::from_secs(600),
            breaker: BreakerConfig::default(),
            sensitive_fields: sutazai_core::mask::SensitiveFields::default(),
            default_max_agents: 5,
            swarm_rounds: 2,
            event_capacity: 4096,
            local_agents: LocalAgents::All,
            user_agents_dir: None,
        }
    }
}

/// Which tasks to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskFilter {
    /// Every task.
    All,
    /// Not yet finished: queued, awaiting approval or running (`status=active`).
    Active,
    /// One status.
    Status(TaskStatus),
}

/// A task with its steps.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TaskDetail {
    /// The task.
    #[serde(flatten)]
    pub task: Task,
    /// Approvals still missing.
    pub pending_approvals: Vec<String>,
    /// Every step so far, in start order, with tokens and durations.
    pub steps: Vec<Step>,
}

/// An agent as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AgentInfo {
    /// Agent id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Classification family.
    pub category: AgentCategory,
    /// Coordination role.
    pub role: AgentRole,
    /// Capability tags.
    pub capabilities: Vec<String>,
    /// Runtime state.
    pub status: AgentState,
    /// Model it uses.
    pub model: String,
    /// Provider it uses.
    pub provider: String,
    /// Steps it runs now.
    pub active_steps: u32,
    /// Steps it may run at once (`scale` changes it).
    pub max_concurrency: u32,
    /// Current load, 0 to 1.
    pub load: f64,
    /// Completed steps.
    pub completed_steps: u64,
    /// Failed steps.
    pub failed_steps: u64,
    /// Success rate, 0 to 1 (`null` before any step).
    pub success_rate: Option<f64>,
    /// Mean seconds per completed step (`null` before any step).
    pub average_response_time: Option<f64>,
    /// Where it is defined: `builtin` or the user file's path.
    pub source: String,
    /// The same figures over the recent steps only (the last five minutes, at most the
    /// last 1,000 steps) — what alerting should judge; the fields above are since the
    /// journal began.
    pub recent: RecentPerformance,
}

/// An agent's full definition, as the dashboard's editor loads it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AgentDefinition {
    /// What the registry holds for it now.
    pub definition: AgentSpec,
    /// `builtin` or the user file's path.
    pub source: String,
    /// Whether a built-in agent has this id (deleting a user file that overrides it
    /// brings the built-in back).
    pub builtin: bool,
}

/// What `DELETE /agents/{id}` did.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AgentRemoval {
    /// The agent.
    pub id: String,
    /// The user file that was deleted.
    pub deleted_file: String,
    /// The built-in definition, back in place of the user's; `null` when the agent is gone.
    pub restored: Option<AgentInfo>,
}

/// Whether [`Orchestrator::define_agent`] may replace an existing agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefineMode {
    /// Only a new id (`POST /agents`).
    Create,
    /// A new id, or a new definition of an existing agent (`PUT /agents/{id}`).
    CreateOrReplace,
}

/// Lifecycle actions of `/agents/{id}/control`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentAction {
    /// Selectable again.
    Start,
    /// Never selected; its running steps finish.
    Stop,
    /// Start, and reset its circuit breaker.
    Restart,
    /// Set how many steps it may run at once.
    Scale(u32),
}

/// Counters for `/status`, `/health` and the `system_status` event.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct OrchestratorStats {
    /// Tasks running now.
    pub active_tasks: usize,
    /// Tasks waiting for a slot.
    pub queued_tasks: usize,
    /// Tasks waiting for approvals.
    pub awaiting_approval: usize,
    /// `MAX_CONCURRENT_TASKS`.
    pub max_concurrent_tasks: usize,
    /// Registered agents.
    pub agents_total: usize,
    /// Agents that are enabled with a closed breaker.
    pub agents_healthy: usize,
    /// Tasks accepted since start.
    pub tasks_submitted: u64,
    /// Tasks completed since start.
    pub tasks_completed: u64,
    /// Tasks failed since start.
    pub tasks_failed: u64,
    /// Seconds since start.
    pub uptime: f64,
    /// Orchestration is paused: queued tasks wait.
    pub paused: bool,
    /// Tasks that were running when the last process stopped and have not finished since
    /// (they resume from their journaled steps).
    pub tasks_interrupted: usize,
}

/// One agent's performance over a window: its steps that finished in it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AgentPerformance {
    /// Completed / (completed + failed), 0 to 1.
    pub success_rate: f64,
    /// Mean seconds per completed step (`0` when none completed).
    pub average_response_time: f64,
    /// Nearest-rank median of the completed steps' seconds (`null` when none completed).
    pub p50_response_time: Option<f64>,
    /// Nearest-rank 95th percentile of the completed steps' seconds (`null` when none
    /// completed).
    pub p95_response_time: Option<f64>,
    /// Steps completed.
    pub completed: u64,
    /// Steps failed: after all their attempts, or abandoned in flight by a task that was
    /// cancelled or ran past its deadline.
    pub failed: u64,
    /// Failed / (completed + failed), 0 to 1.
    pub error_rate: f64,
    /// Tokens in and out (`prompt_tokens + completion_tokens`).
    pub total_tokens: u64,
    /// Prompt tokens, failed steps' included.
    pub prompt_tokens: u64,
    /// Completion tokens, failed steps' included.
    pub completion_tokens: u64,
}

/// One coordination pattern's tasks that ended (`completed_at`) in a window.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PatternPerformance {
    /// Tasks that completed.
    pub completed: u64,
    /// Tasks that failed.
    pub failed: u64,
    /// Tasks that were cancelled.
    pub cancelled: u64,
    /// Completed / (completed + failed + cancelled), 0 to 1.
    pub completion_rate: f64,
    /// Mean seconds from `started_at` to `completed_at` over the completed tasks (`null`
    /// when none completed).
    pub average_duration: Option<f64>,
    /// Nearest-rank median of those durations (`null` when none completed).
    pub p50_duration: Option<f64>,
    /// Nearest-rank 95th percentile of those durations (`null` when none completed).
    pub p95_duration: Option<f64>,
}

/// `/analytics/performance`: steps that finished and tasks that ended in
/// `[start_date, end_date)` (an absent bound is open).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Analytics {
    /// Window start.
    pub start_date: Option<DateTime<Utc>>,
    /// Window end.
    pub end_date: Option<DateTime<Utc>>,
    /// Success rate over every step in the window, 0 to 1 (`0` when there were none).
    pub average_success_rate: f64,
    /// Mean seconds per completed step (`0` when there were none).
    pub average_response_time: f64,
    /// Nearest-rank median of every completed step's seconds (`null` when none).
    pub p50_response_time: Option<f64>,
    /// Nearest-rank 95th percentile of every completed step's seconds (`null` when none).
    pub p95_response_time: Option<f64>,
    /// Steps in the window (`completed_steps + failed_steps`).
    pub total_steps: u64,
    /// Steps completed in the window.
    pub completed_steps: u64,
    /// Steps failed in the window.
    pub failed_steps: u64,
    /// Tokens in and out over every step in the window.
    pub total_tokens: u64,
    /// Tasks completed in the window per hour of the window; `null` unless both dates are
    /// given (and the window is not empty).
    pub throughput_per_hour: Option<f64>,
    /// Per agent, only agents with steps in the window.
    pub agent_performance: std::collections::BTreeMap<String, AgentPerformance>,
    /// Per coordination pattern (`hierarchical`, `collaborative`, `pipeline`, `swarm`),
    /// only patterns with tasks that ended in the window.
    pub pattern_performance: std::collections::BTreeMap<String, PatternPerformance>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: OrchestratorConfig,
    pub(crate) roster: Roster,
    /// Where each agent's definition came from; changed with the roster, under
    /// `defining` (lock order: `defining`, then this, then the roster's own).
    pub(crate) registry: std::sync::RwLock<Registry>,
    /// Serialises agent definitions (file write + registry + roster) against each other.
    defining: Mutex<()>,
    pub(crate) providers: HashMap<String, Arc<dyn Provider>>,
    pub(crate) journal: Journal,
    pub(crate) bus: Bus,
    executor: Option<Executor>,
    pub(crate) events: broadcast::Sender<Event>,
    pub(crate) live: Mutex<LiveSet>,
    /// Tasks that ended lately, with their steps (see [`Ended`]).
    ended: Mutex<Ended>,
    queue: RunQueue,
    /// While true the dispatcher starts no queued task (running ones go on).
    paused: watch::Sender<bool>,
    slots: Arc<Semaphore>,
    pub(crate) shutdown: CancellationToken,
    tracker: TaskTracker,
    started: Instant,
    submitted: AtomicU64,
    /// Submissions between their admission check and their entry in `live`.
    admitting: AtomicUsize,
    pub(crate) completed: AtomicU64,
    pub(crate) failed: AtomicU64,
}

/// A submission's place in the admission count (see `Inner::admit`).
struct Admission<'a>(&'a AtomicUsize);

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The orchestrator. Cheap to clone; clones share everything.
#[derive(Debug, Clone)]
pub struct Orchestrator {
    pub(crate) inner: Arc<Inner>,
}

/// Longest accepted task name.
const MAX_NAME: usize = 200;
/// Longest accepted description.
const MAX_DESCRIPTION: usize = 20_000;
/// Most requirements per task.
const MAX_REQUIREMENTS: usize = 32;
/// Most required approvals per task.
const MAX_APPROVALS: usize = 16;
/// A task that waited longer than this in the queue re-selects its agents when it starts.
const RESELECT_AFTER: Duration = Duration::from_secs(1);
/// Longest task bound: a week.
const MAX_DURATION_SECS: f64 = 7.0 * 24.0 * 3600.0;

impl Orchestrator {
    /// Starts the orchestrator: seeds agents' track records from the journal, re-queues
    /// every unfinished task found there (they resume where they stopped), and starts the
    /// dispatcher. Must be called inside a tokio runtime.
    pub async fn start(
        config: OrchestratorConfig,
        registry: Registry,
        providers: HashMap<String, Arc<dyn Provider>>,
        journal: Journal,
        bus: Bus,
    ) -> Result<Orchestrator, OrchestratorError> {
        if config.max_concurrent_tasks == 0 {
            return Err(OrchestratorError::invalid(
                "MAX_CONCURRENT_TASKS",
                "must be at least 1",
            ));
        }
        if !providers.contains_key(&config.default_provider) {
            return Err(OrchestratorError::invalid(
                "default_provider",
                format!(
                    "no provider named `{}` is configured",
                    config.default_provider
                ),
            ));
        }
        let roster = Roster::new(registry.iter().cloned(), config.breaker);
        for stats in journal.agent_stats(None, None).await? {
            if let Some(slot) = roster.get(&stats.agent_id) {
                slot.seed_record(TrackRecord {
                    completed: stats.completed,
                    failed: stats.failed,
                    total_latency: stats.total_duration_secs,
                });
            }
        }
        if let LocalAgents::Only(ids) = &config.local_agents
            && let Some(unknown) = ids.iter().find(|id| registry.get(id).is_none())
        {
            return Err(OrchestratorError::invalid(
                "SUTAZAI_LOCAL_AGENTS",
                format!("`{unknown}` is not a registered agent"),
            ));
        }
        let shutdown = CancellationToken::new();
        let served: Vec<ServedAgent> = registry
            .iter()
            .filter(|spec| config.local_agents.includes(&spec.id))
            .map(|spec| ServedAgent {
                id: spec.id.clone(),
                max_concurrency: spec.max_concurrency,
            })
            .collect();
        let executor = (!served.is_empty())
            .then(|| Executor::start(bus.clone(), served, providers.clone(), shutdown.clone()));
        let (events, _) = broadcast::channel(config.event_capacity.max(16));
        let inner = Arc::new(Inner {
            slots: Arc::new(Semaphore::new(config.max_concurrent_tasks)),
            config,
            roster,
            registry: std::sync::RwLock::new(registry),
            defining: Mutex::new(()),
            providers,
            journal,
            bus,
            executor,
            events,
            live: Mutex::new(LiveSet::default()),
            ended: Mutex::new(Ended::default()),
            queue: RunQueue::default(),
            paused: watch::Sender::new(false),
            shutdown,
            tracker: TaskTracker::new(),
            started: Instant::now(),
            submitted: AtomicU64::new(0),
            admitting: AtomicUsize::new(0),
            completed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        });

        let unfinished = inner.journal.unfinished_tasks().await?;
        let resumed = unfinished.len();
        for mut task in unfinished {
            let interrupted = task.status == TaskStatus::Running;
            if interrupted {
                task.status = TaskStatus::Queued;
            }
            let queued = task.status == TaskStatus::Queued;
            let (id, priority) = (task.id.clone(), task.request.priority);
            inner.insert_live(task, true, interrupted);
            if queued {
                inner.queue.push(id, priority);
            }
        }
        if resumed > 0 {
            tracing::info!(resumed, "resuming unfinished tasks from the journal");
        }

        let dispatcher = Arc::clone(&inner);
        inner
            .tracker
            .spawn(async move { dispatcher.dispatch().await });
        Ok(Orchestrator { inner })
    }

    /// Validates, journals and queues a task. Returns once the task is durable; it then
    /// runs when a slot is free and its approvals are given.
    pub async fn submit(&self, request: TaskRequest) -> Result<Task, OrchestratorError> {
        if self.inner.shutdown.is_cancelled() {
            return Err(OrchestratorError::ShuttingDown);
        }
        let request = self.validate(request)?;
        let admitted = self.inner.admit()?;
        // Selecting now both validates the requirements and fixes the agents in the
        // journaled row; a task that then waits in the queue re-selects when it starts.
        let assigned_agents = crate::select::select(
            &self.inner.roster,
            &request,
            self.inner.config.default_max_agents,
        )?;
        let status = if request.constraints.required_approvals.is_empty() {
            TaskStatus::Queued
        } else {
            TaskStatus::AwaitingApproval
        };
        let task = Task {
            id: ids::new_id(),
            session_id: ids::new_id(),
            request,
            status,
            assigned_agents,
            approvals: Vec::new(),
            result: None,
            error: None,
            created_at: Utc::now(),
            started_at: None,
            completed_at: None,
        };
        self.inner.journal.insert_task(&task).await?;
        self.inner.submitted.fetch_add(1, Ordering::Relaxed);
        self.inner.insert_live(task.clone(), false, false);
        // Counted in `live` now: the reservation ends here, not at the end of the call, so
        // a task is never counted twice (a spurious refusal near the limit).
        drop(admitted);
        self.inner.emit(Event::TaskSubmitted {
            task_id: task.id.clone(),
            session_id: task.session_id.clone(),
            task_name: task.request.name.clone(),
            priority: task.request.priority,
        });
        if status == TaskStatus::Queued {
            self.inner
                .queue
                .push(task.id.clone(), task.request.priority);
        } else {
            self.inner.emit(Event::AwaitingApproval {
                task_id: task.id.clone(),
                task_name: task.request.name.clone(),
                pending: task.pending_approvals(),
            });
        }
        Ok(task)
    }

    fn validate(&self, mut request: TaskRequest) -> Result<TaskRequest, OrchestratorError> {
        request.name = request.name.trim().to_owned();
        if request.name.is_empty() {
            return Err(OrchestratorError::invalid("name", "must not be empty"));
        }
        if request.name.chars().count() > MAX_NAME {
            return Err(OrchestratorError::invalid(
                "name",
                format!("must be at most {MAX_NAME} characters"),
            ));
        }
        if request.description.chars().count() > MAX_DESCRIPTION {
            return Err(OrchestratorError::invalid(
                "description",
                format!("must be at most {MAX_DESCRIPTION} characters"),
            ));
        }
        if request.requirements.is_empty() {
            let from_type = request.task_type.trim();
            if !from_type.is_empty()
                && self
                    .inner
                    .roster
                    .snapshot()
                    .values()
                    .any(|s| s.spec().has_capability(from_type))
            {
                request.requirements.push(from_type.to_owned());
            } else {
                return Err(OrchestratorError::invalid(
                    "requirements",
                    "name at least one capability (for example \"code_generation\")",
                ));
            }
        }
        if request.requirements.len() > MAX_REQUIREMENTS {
            return Err(OrchestratorError::invalid(
                "requirements",
                format!("at most {MAX_REQUIREMENTS} requirements"),
            ));
        }
        let mut seen = Vec::with_capacity(request.requirements.len());
        for requirement in &request.requirements {
            let ok = !requirement.is_empty()
                && requirement.len() <= 64
                && requirement.starts_with(|c: char| c.is_ascii_lowercase())
                && requirement
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !ok {
                return Err(OrchestratorError::invalid(
                    "requirements",
                    format!(
                        "`{requirement}` is not a capability name (lowercase letters, digits, _)"
                    ),
                ));
            }
            if !seen.contains(requirement) {
                seen.push(requirement.clone());
            }
        }
        request.requirements = seen;
        let c = &request.constraints;
        if let Some(max) = c.max_agents
            && (max == 0 || max as usize > self.inner.roster.len())
        {
            return Err(OrchestratorError::invalid(
                "constraints.max_agents",
                format!("must be between 1 and {}", self.inner.roster.len()),
            ));
        }
        if let Some(d) = c.estimated_duration
            && (!d.is_finite() || d <= 0.0 || d > MAX_DURATION_SECS)
        {
            return Err(OrchestratorError::invalid(
                "constraints.estimated_duration",
                format!("must be a number of seconds between 0 and {MAX_DURATION_SECS}"),
            ));
        }
        if c.required_approvals.len() > MAX_APPROVALS {
            return Err(OrchestratorError::invalid(
                "constraints.required_approvals",
                format!("at most {MAX_APPROVALS} approvals"),
            ));
        }
        for (i, name) in c.required_approvals.iter().enumerate() {
            if name.trim().is_empty() || name.len() > 64 {
                return Err(OrchestratorError::invalid(
                    "constraints.required_approvals",
                    "each approval needs a name of 1 to 64 characters",
                ));
            }
            if c.required_approvals[..i].contains(name) {
                return Err(OrchestratorError::invalid(
                    "constraints.required_approvals",
                    format!("`{name}` is listed twice"),
                ));
            }
        }
        Ok(request)
    }

    /// One task.
    pub async fn task(&self, id: &str) -> Result<Task, OrchestratorError> {
        if let Some(task) = self.inner.live_task(id) {
            return Ok(task);
        }
        self.inner
            .journal
            .get_task(id)
            .await?
            .ok_or_else(|| OrchestratorError::TaskNotFound(id.to_owned()))
    }

    /// One task with its steps: from memory while it is live and its steps are all held
    /// there, else from the journal.
    pub async fn task_detail(&self, id: &str) -> Result<TaskDetail, OrchestratorError> {
        let held = {
            let live = self.inner.live.lock().unwrap_or_else(|p| p.into_inner());
            live.get(id).map(|l| (l.task.clone(), l.steps.clone()))
        };
        let (task, steps) = match held {
            // Copied outside the lock: under it only the `Arc` was cloned.
            Some((task, Some(steps))) => (task, Arc::unwrap_or_clone(steps)),
            Some((task, None)) => (task, self.inner.journal.steps(id).await?),
            None if let Some((task, steps)) = self.inner.ended_task(id) => {
                (task, Arc::unwrap_or_clone(steps))
            }
            None => self
                .inner
                .journal
                .task_with_steps(id)
                .await?
                .ok_or_else(|| OrchestratorError::TaskNotFound(id.to_owned()))?,
        };
        Ok(TaskDetail {
            pending_approvals: task.pending_approvals(),
            task,
            steps,
        })
    }

    /// Tasks, newest first, at most `limit`.
    pub async fn tasks(
        &self,
        filter: TaskFilter,
        limit: usize,
    ) -> Result<Vec<Task>, OrchestratorError> {
        let mut tasks = match filter {
            TaskFilter::Active => return Ok(self.inner.newest_live(limit, |_| true)),
            TaskFilter::Status(status) if !status.is_terminal() => {
                return Ok(self.inner.newest_live(limit, |t| t.status == status));
            }
            TaskFilter::All => self.inner.journal.list_tasks(None, limit).await?,
            TaskFilter::Status(status) => {
                self.inner.journal.list_tasks(Some(status), limit).await?
            }
        };
        // The journal may trail the in-memory state of a live task by one write.
        for task in &mut tasks {
            if let Some(live) = self.inner.live_task(&task.id) {
                *task = live;
            }
        }
        tasks.sort_by_key(|t| std::cmp::Reverse(t.created_at));
        tasks.truncate(limit);
        Ok(tasks)
    }

    /// Waits until the task reaches a terminal status and returns it.
    pub async fn wait_for(&self, id: &str) -> Result<Task, OrchestratorError> {
        let watch = {
            let mut live = self.inner.live.lock().unwrap_or_else(|p| p.into_inner());
            live.get_mut(id).map(|mut l| {
                let watchers = l.watch();
                (watchers.status.subscribe(), Arc::clone(&watchers.ended))
            })
        };
        if let Some((mut receiver, ended)) = watch {
            // An error means the sender is gone, i.e. the task left the live set.
            let _ = receiver.wait_for(|s| s.is_terminal()).await;
            if let Some(task) = ended.get() {
                return Ok(task.clone());
            }
        }
        self.task(id).await
    }

    /// Gives one of a task's required approvals. When the last one is given the task is
    /// queued.
    pub async fn approve(
        &self,
        id: &str,
        approval: &str,
        approved_by: &str,
    ) -> Result<Task, OrchestratorError> {
        let outcome: Option<Result<Task, OrchestratorError>> = {
            let mut live = self.inner.live.lock().unwrap_or_else(|p| p.into_inner());
            live.get_mut(id).map(|mut guard| {
                let entry: &mut Live = &mut guard;
                let task = &mut entry.task;
                if task.status != TaskStatus::AwaitingApproval {
                    return Err(OrchestratorError::InvalidState {
                        id: id.to_owned(),
                        status: task.status.as_str(),
                        message: "only a task awaiting approval can be approved".into(),
                    });
                }
                let pending = task.pending_approvals();
                if !pending.iter().any(|p| p == approval) {
                    let message = if task.approvals.iter().any(|a| a.name == approval) {
                        format!("`{approval}` was already given")
                    } else {
                        format!(
                            "`{approval}` is not one of the task's required approvals ({})",
                            task.request.constraints.required_approvals.join(", ")
                        )
                    };
                    return Err(OrchestratorError::invalid("approval", message));
                }
                task.approvals.push(Approval {
                    name: approval.to_owned(),
                    approved_by: approved_by.to_owned(),
                    approved_at: Utc::now(),
                });
                let all_given = task.pending_approvals().is_empty();
                if all_given {
                    task.status = TaskStatus::Queued;
                }
                let approved = task.clone();
                if all_given {
                    entry.announce(TaskStatus::Queued);
                    entry.queued_at = Instant::now();
                }
                Ok(approved)
            })
        };
        let task = match outcome {
            Some(result) => result?,
            None => {
                return match self.inner.journal.get_task(id).await? {
                    Some(t) => Err(OrchestratorError::InvalidState {
                        id: id.to_owned(),
                        status: t.status.as_str(),
                        message: "only a task awaiting approval can be approved".into(),
                    }),
                    None => Err(OrchestratorError::TaskNotFound(id.to_owned())),
                };
            }
        };
        self.inner.journal.update_task(&task).await?;
        self.inner.emit(Event::TaskApproved {
            task_id: task.id.clone(),
            approval: approval.to_owned(),
            pending: task.pending_approvals(),
        });
        if task.status == TaskStatus::Queued {
            self.inner
                .queue
                .push(task.id.clone(), task.request.priority);
        }
        Ok(task)
    }

    /// Cancels a task: a waiting one at once, a running one by stopping its in-flight
    /// model calls. Returns the task in its final state.
    pub async fn cancel(&self, id: &str) -> Result<Task, OrchestratorError> {
        let waiting = {
            let mut live = self.inner.live.lock().unwrap_or_else(|p| p.into_inner());
            match live.get_mut(id) {
                None => None,
                Some(entry) => {
                    entry.cancel.cancel();
                    if entry.task.status == TaskStatus::Running {
                        Some(false)
                    } else {
                        Some(true)
                    }
                }
            }
        };
        match waiting {
            None => match self.inner.journal.get_task(id).await? {
                Some(t) => Err(OrchestratorError::InvalidState {
                    id: id.to_owned(),
                    status: t.status.as_str(),
                    message: "the task has already finished".into(),
                }),
                None => Err(OrchestratorError::TaskNotFound(id.to_owned())),
            },
            Some(true) => {
                // Queued or awaiting approval: the dispatcher skips it when popped.
                let failure = TaskFailure::new("cancelled", "cancelled before it started");
                self.inner
                    .finish(id, Err(failure), TaskStatus::Cancelled)
                    .await;
                self.task(id).await
            }
            Some(false) => self.wait_for(id).await,
        }
    }

    /// Live events; each subscriber gets every event from now on (or is told it lagged).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// The bus the orchestrator uses.
    pub fn bus(&self) -> &Bus {
        &self.inner.bus
    }

    /// The executor running this process's local agents, if any.
    pub fn executor(&self) -> Option<&Executor> {
        self.inner.executor.as_ref()
    }

    /// The configured providers, by name.
    pub fn providers(&self) -> &HashMap<String, Arc<dyn Provider>> {
        &self.inner.providers
    }

    /// The default provider and model.
    pub fn default_model(&self) -> (&str, &str) {
        (
            &self.inner.config.default_provider,
            &self.inner.config.default_model,
        )
    }

    /// Every agent, ordered by id.
    pub fn agents(&self) -> Vec<AgentInfo> {
        self.inner
            .roster
            .snapshot()
            .keys()
            .filter_map(|id| self.inner.agent_info(id))
            .collect()
    }

    /// One agent.
    pub fn agent(&self, id: &str) -> Result<AgentInfo, OrchestratorError> {
        self.inner
            .agent_info(id)
            .ok_or_else(|| OrchestratorError::AgentNotFound(id.to_owned()))
    }

    /// Starts, stops, restarts or scales an agent.
    pub fn control_agent(
        &self,
        id: &str,
        action: AgentAction,
    ) -> Result<AgentInfo, OrchestratorError> {
        let slot = self
            .inner
            .roster
            .get(id)
            .ok_or_else(|| OrchestratorError::AgentNotFound(id.to_owned()))?;
        match action {
            AgentAction::Start => slot.set_enabled(true),
            AgentAction::Stop => slot.set_enabled(false),
            AgentAction::Restart => {
                slot.reset_breaker();
                slot.set_enabled(true);
            }
            AgentAction::Scale(n) => {
                if n == 0 || n > 256 {
                    return Err(OrchestratorError::invalid(
                        "instances",
                        "must be between 1 and 256",
                    ));
                }
                slot.set_limit(n);
            }
        }
        self.inner.emit(Event::AgentStatus {
            agent_id: id.to_owned(),
            status: slot.state(),
        });
        self.agent(id)
    }

    /// The full definition of an agent (prompt, temperature, …), for editing.
    pub fn agent_definition(&self, id: &str) -> Result<AgentDefinition, OrchestratorError> {
        let slot = self
            .inner
            .roster
            .get(id)
            .ok_or_else(|| OrchestratorError::AgentNotFound(id.to_owned()))?;
        Ok(AgentDefinition {
            definition: AgentSpec::clone(&slot.spec()),
            source: self.inner.source_of(id),
            builtin: Registry::builtin_spec(id).is_some(),
        })
    }

    /// Adds a user agent, or (with [`DefineMode::CreateOrReplace`]) redefines an existing
    /// one — a built-in included, which a user file then overrides. The definition is
    /// validated, written to the user agent directory (so it survives restarts, exactly as
    /// a hand-written file would), and takes effect at once: new tasks can select it, and
    /// a redefined agent keeps its record, breaker and running steps (each step uses the
    /// definition it started with). Returns the agent and whether it is new.
    ///
    /// A new agent is also served by this process's executor when `SUTAZAI_LOCAL_AGENTS`
    /// includes it (the default); otherwise, as for any agent outside that list, its steps
    /// wait for a `sutazai worker` serving it.
    pub async fn define_agent(
        &self,
        spec: AgentSpec,
        mode: DefineMode,
    ) -> Result<(AgentInfo, bool), OrchestratorError> {
        sutazai_agents::validate(&spec)
            .map_err(|(field, message)| OrchestratorError::InvalidRequest { field, message })?;
        if let Some(provider) = &spec.provider
            && !self.inner.providers.contains_key(provider)
        {
            let mut configured: Vec<&str> =
                self.inner.providers.keys().map(String::as_str).collect();
            configured.sort_unstable();
            return Err(OrchestratorError::invalid(
                "provider",
                format!(
                    "no provider named `{provider}` is configured (configured: {})",
                    configured.join(", ")
                ),
            ));
        }
        let Some(dir) = self.inner.config.user_agents_dir.clone() else {
            return Err(OrchestratorError::AgentFile(
                "no user agent directory is configured (SUTAZAI_AGENTS_DIR)".into(),
            ));
        };
        let inner = Arc::clone(&self.inner);
        let id = spec.id.clone();
        let created = tokio::task::spawn_blocking(move || {
            let _defining = inner.defining.lock().unwrap_or_else(|p| p.into_inner());
            if mode == DefineMode::Create && inner.roster.get(&spec.id).is_some() {
                return Err(OrchestratorError::AgentConflict {
                    id: spec.id.clone(),
                    message: "an agent with this id already exists; PUT /agents/{id} \
                              replaces its definition"
                        .into(),
                });
            }
            // A hand-written file that did not load at start (a typo) is not overwritten
            // by a create: the user may want to fix it instead.
            let file = dir.join(format!("{}.toml", spec.id));
            if mode == DefineMode::Create && file.exists() {
                return Err(OrchestratorError::AgentConflict {
                    id: spec.id.clone(),
                    message: format!(
                        "{} exists but did not load (see the log or `sutazai doctor`); fix \
                         it, or PUT /agents/{{id}} to replace it",
                        file.display()
                    ),
                });
            }
            let path = sutazai_agents::write_user_file(&dir, &spec).map_err(|e| match e.field {
                Some(field) => OrchestratorError::InvalidRequest {
                    field,
                    message: e.message,
                },
                None => {
                    OrchestratorError::AgentFile(format!("{}: {}", e.path.display(), e.message))
                }
            })?;
            inner
                .registry
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .set_user(spec.clone(), path);
            let served = ServedAgent {
                id: spec.id.clone(),
                max_concurrency: spec.max_concurrency,
            };
            let created = inner.roster.define(spec);
            if let Some(executor) = &inner.executor
                && inner.config.local_agents.includes(&served.id)
            {
                executor.serve(served);
            }
            Ok(created)
        })
        .await
        .map_err(|e| OrchestratorError::AgentFile(format!("defining the agent: {e}")))??;
        let info = self.agent(&id)?;
        tracing::info!(agent = %id, created, "agent defined");
        self.inner.emit(Event::AgentStatus {
            agent_id: id,
            status: info.status,
        });
        Ok((info, created))
    }

    /// Deletes a user agent's file. An agent that overrode a built-in gets the built-in
    /// definition back (record and breaker kept); one that only the user defined leaves
    /// the registry, unless it has steps running (`agent_conflict`: stop it, let them
    /// finish, delete again). Built-ins cannot be deleted (stop them instead).
    pub async fn remove_agent(&self, id: &str) -> Result<AgentRemoval, OrchestratorError> {
        let Some(dir) = self.inner.config.user_agents_dir.clone() else {
            return Err(OrchestratorError::AgentFile(
                "no user agent directory is configured (SUTAZAI_AGENTS_DIR)".into(),
            ));
        };
        let inner = Arc::clone(&self.inner);
        let owned = id.to_owned();
        let (path, restored) = tokio::task::spawn_blocking(move || {
            let id = owned;
            let _defining = inner.defining.lock().unwrap_or_else(|p| p.into_inner());
            let source = inner.registry_read().source(&id);
            let path = match source {
                None => return Err(OrchestratorError::AgentNotFound(id)),
                Some(sutazai_agents::AgentSource::Builtin) => {
                    return Err(OrchestratorError::AgentConflict {
                        id,
                        message: "built-in agents cannot be deleted; stop it instead \
                                  (POST /agents/{id}/control)"
                            .into(),
                    });
                }
                Some(sutazai_agents::AgentSource::User(path)) => path,
            };
            let builtin = Registry::builtin_spec(&id);
            let mut removed = None;
            if builtin.is_none() {
                match inner.roster.remove(&id) {
                    Ok(slot) => removed = slot,
                    Err(busy) => {
                        return Err(OrchestratorError::AgentConflict {
                            id,
                            message: format!(
                                "{busy} step(s) of this agent are running; stop the agent, \
                                 let them finish, then delete it"
                            ),
                        });
                    }
                }
            }
            // A user agent's file is always `<dir>/<id>.toml`: the loader reads only there
            // and definitions are written there.
            if let Err(e) = sutazai_agents::remove_user_file(&dir, &id) {
                // Nothing changed after all: put the agent back as it was.
                if let Some(slot) = removed {
                    inner.roster.restore(slot);
                }
                return Err(OrchestratorError::AgentFile(format!(
                    "{}: {}",
                    e.path.display(),
                    e.message
                )));
            }
            let restored = inner
                .registry
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .unset_user(&id);
            if let Some(spec) = restored.clone() {
                inner.roster.define(spec);
            }
            Ok((path, restored.is_some()))
        })
        .await
        .map_err(|e| OrchestratorError::AgentFile(format!("deleting the agent: {e}")))??;
        tracing::info!(agent = %id, restored, "user agent deleted");
        let restored = if restored {
            let info = self.agent(id)?;
            self.inner.emit(Event::AgentStatus {
                agent_id: id.to_owned(),
                status: info.status,
            });
            Some(info)
        } else {
            self.inner.emit(Event::AgentStatus {
                agent_id: id.to_owned(),
                status: AgentState::Stopped,
            });
            None
        };
        Ok(AgentRemoval {
            id: id.to_owned(),
            deleted_file: path.display().to_string(),
            restored,
        })
    }

    /// Counters.
    pub fn stats(&self) -> OrchestratorStats {
        let agents = self.inner.roster.snapshot();
        let tally = self
            .inner
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .tally();
        OrchestratorStats {
            active_tasks: tally.running,
            queued_tasks: self.inner.queue.len(),
            awaiting_approval: tally.awaiting_approval,
            max_concurrent_tasks: self.inner.config.max_concurrent_tasks,
            agents_total: agents.len(),
            agents_healthy: agents
                .values()
                .filter(|s| s.state() == AgentState::Healthy)
                .count(),
            tasks_submitted: self.inner.submitted.load(Ordering::Relaxed),
            tasks_completed: self.inner.completed.load(Ordering::Relaxed),
            tasks_failed: self.inner.failed.load(Ordering::Relaxed),
            uptime: self.inner.started.elapsed().as_secs_f64(),
            paused: *self.inner.paused.borrow(),
            tasks_interrupted: tally.interrupted,
        }
    }

    /// Pauses (`true`) or resumes orchestration: while paused, submitted tasks are accepted
    /// and journaled but wait in the queue; running tasks go on. Returns the previous state.
    pub fn set_paused(&self, paused: bool) -> bool {
        let was = self.inner.paused.send_replace(paused);
        if was != paused {
            tracing::info!(
                paused,
                "orchestration {}",
                if paused { "paused" } else { "resumed" }
            );
        }
        was
    }

    /// Whether orchestration is paused.
    pub fn is_paused(&self) -> bool {
        *self.inner.paused.borrow()
    }

    /// Performance over a window, from the journal: per agent and overall over the steps
    /// that finished in it, per coordination pattern over the tasks that ended in it.
    pub async fn analytics(
        &self,
        start_date: Option<DateTime<Utc>>,
        end_date: Option<DateTime<Utc>>,
    ) -> Result<Analytics, OrchestratorError> {
        if let (Some(s), Some(e)) = (start_date, end_date)
            && s > e
        {
            return Err(OrchestratorError::invalid(
                "start_date",
                "must not be after end_date",
            ));
        }
        let perf = self.inner.journal.performance(start_date, end_date).await?;
        Ok(analytics_from(start_date, end_date, &perf))
    }

    /// Signals shutdown without waiting: new work is refused and long-lived loops that
    /// watch [`Orchestrator::stopping`] (WebSockets) end.
    pub fn begin_shutdown(&self) {
        self.inner.shutdown.cancel();
    }

    /// Resolves once shutdown has begun.
    pub async fn stopping(&self) {
        self.inner.shutdown.cancelled().await
    }

    /// Stops accepting work, stops running tasks *without* marking them finished (they
    /// resume at the next start), and flushes the journal.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
        if let Some(executor) = &self.inner.executor {
            // Their tasks were just abandoned (they resume at the next start): nobody
            // waits for the local steps still running.
            executor.stopped(Duration::ZERO).await;
        }
        self.inner.journal.close().await;
    }
}

impl Inner {
    pub(crate) fn emit(&self, event: Event) {
        // No subscriber is fine: events are live only.
        let _ = self.events.send(event);
    }

    /// Reserves room for one more unfinished task, or refuses when
    /// `max_pending_tasks` are held; the reservation ends when the guard drops (the task
    /// is in `live` by then, or was not accepted).
    fn admit(&self) -> Result<Admission<'_>, OrchestratorError> {
        let limit = self.config.max_pending_tasks;
        let admitting = self.admitting.fetch_add(1, Ordering::AcqRel) + 1;
        let admission = Admission(&self.admitting);
        let held = self.live.lock().unwrap_or_else(|p| p.into_inner()).len();
        if held + admitting > limit {
            return Err(OrchestratorError::Overloaded {
                pending: held,
                limit,
            });
        }
        Ok(admission)
    }

    /// The newest `limit` live tasks that match, newest first, cloning only those (the set
    /// may hold 100,000s of queued tasks).
    fn newest_live(&self, limit: usize, matches: impl Fn(&Task) -> bool) -> Vec<Task> {
        if limit == 0 {
            return Vec::new();
        }
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let mut found: Vec<&Task> = live
            .values()
            .map(|l| &l.task)
            .filter(|t| matches(t))
            .collect();
        if found.len() > limit {
            found.select_nth_unstable_by_key(limit - 1, |t| std::cmp::Reverse(t.created_at));
            found.truncate(limit);
        }
        found.sort_by_key(|t| std::cmp::Reverse(t.created_at));
        found.into_iter().cloned().collect()
    }

    fn insert_live(&self, task: Task, resumed: bool, interrupted: bool) {
        let entry = Live::new(task, resumed, interrupted);
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.insert(entry);
    }

    pub(crate) fn registry_read(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.registry.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Where an agent is defined, as the API shows it: `builtin` or the user file's path.
    fn source_of(&self, id: &str) -> String {
        match self.registry_read().source(id) {
            Some(sutazai_agents::AgentSource::User(path)) => path.display().to_string(),
            _ => "builtin".to_owned(),
        }
    }

    pub(crate) fn live_task(&self, id: &str) -> Option<Task> {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.get(id).map(|l| l.task.clone())
    }

    pub(crate) fn binding(&self, agent_id: &str) -> (String, String) {
        let spec = self.roster.get(agent_id).map(|s| s.spec());
        let bound = self.config.agent_bindings.get(agent_id);
        let provider = bound
            .and_then(|b| b.provider.clone())
            .or_else(|| spec.as_ref().and_then(|s| s.provider.clone()))
            .unwrap_or_else(|| self.config.default_provider.clone());
        let model = bound
            .and_then(|b| b.model.clone())
            .or_else(|| spec.as_ref().and_then(|s| s.model.clone()))
            .unwrap_or_else(|| self.config.default_model.clone());
        (provider, model)
    }

    fn agent_info(&self, id: &str) -> Option<AgentInfo> {
        let slot = self.roster.get(id)?;
        let record = slot.record();
        let (provider, model) = self.binding(id);
        let source = self.source_of(id);
        let spec = slot.spec();
        Some(AgentInfo {
            id: slot.id.clone(),
            name: spec.name.clone(),
            category: spec.category,
            role: spec.role,
            capabilities: spec.capabilities.clone(),
            status: slot.state(),
            model,
            provider,
            active_steps: slot.inflight(),
            max_concurrency: slot.limit(),
            load: slot.load(),
            completed_steps: record.completed,
            failed_steps: record.failed,
            success_rate: record.success_rate(),
            average_response_time: record.average_latency(),
            source,
            recent: slot.recent_at(Instant::now()),
        })
    }

    /// Feeds queued tasks into free slots until shutdown, except while paused.
    async fn dispatch(self: Arc<Self>) {
        let mut paused = self.paused.subscribe();
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                r = paused.wait_for(|p| !*p) => if r.is_err() { return },
            }
            let permit = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                permit = Arc::clone(&self.slots).acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let task_id = tokio::select! {
                // In this order: a pause that is already set wins over a queued task that
                // is ready at the same moment (a slot freed while paused starts nothing).
                biased;
                _ = self.shutdown.cancelled() => return,
                // Paused while waiting for a task: nothing was taken; wait for the resume.
                _ = paused.wait_for(|p| *p) => continue,
                id = self.queue.pop() => id,
            };
            let inner = Arc::clone(&self);
            self.tracker
                .spawn(async move { inner.run_task(task_id, permit).await });
        }
    }

    /// Runs one task to a terminal status (or until shutdown, leaving it resumable).
    async fn run_task(self: Arc<Self>, task_id: String, permit: OwnedSemaphorePermit) {
        let _permit = permit;
        let started = {
            let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            let Some(mut entry) = live.get_mut(&task_id) else {
                return;
            };
            if entry.task.status != TaskStatus::Queued
                || entry.cancel.is_cancelled()
                || entry.finishing
            {
                return;
            }
            entry.task.status = TaskStatus::Running;
            entry.task.started_at.get_or_insert_with(Utc::now);
            entry.announce(TaskStatus::Running);
            let waited = entry.queued_at.elapsed() > RESELECT_AFTER;
            (
                entry.task.clone(),
                entry.cancel.clone(),
                entry.resumed,
                waited,
            )
        };
        let (mut task, cancel, resumed, waited) = started;

        // A resumed task keeps its journaled agents (its finished steps name them). A fresh
        // one that waited re-selects: load and track records have moved since submit.
        if task.assigned_agents.is_empty() || (waited && !resumed) {
            match crate::select::select(&self.roster, &task.request, self.config.default_max_agents)
            {
                Ok(agents) => task.assigned_agents = agents,
                Err(e) => {
                    let failure = TaskFailure::new(e.code(), e.to_string());
                    self.finish(&task_id, Err(failure), TaskStatus::Failed)
                        .await;
                    return;
                }
            }
            self.set_live_agents(&task_id, &task.assigned_agents);
            // Before any step record, so a resumed run finds the agents its steps used.
            drop(self.journal.update_task(&task));
        }
        self.emit(Event::TaskStarted {
            task_id: task_id.clone(),
            task_name: task.request.name.clone(),
            agents: task.assigned_agents.clone(),
            resumed,
        });

        let done = if resumed {
            match self.journal.steps(&task_id).await {
                Ok(steps) => steps,
                Err(e) => {
                    let failure = TaskFailure::new("journal_error", e.to_string());
                    self.finish(&task_id, Err(failure), TaskStatus::Failed)
                        .await;
                    return;
                }
            }
        } else {
            Vec::new()
        };
        if resumed {
            let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(mut entry) = live.get_mut(&task_id) {
                entry.steps = Some(Arc::new(done.clone()));
            }
        }
        let run = crate::run::Run::new(Arc::clone(&self), task, done, cancel.clone());
        let deadline = run
            .task
            .request
            .constraints
            .estimated_duration
            .map(Duration::from_secs_f64);
        let outcome = tokio::select! {
            biased;
            _ = self.shutdown.cancelled() => return,
            _ = cancel.cancelled() => Err((TaskFailure::new("cancelled", "cancelled while running"), TaskStatus::Cancelled)),
            _ = sleep_opt(deadline) => Err((TaskFailure::new(
                "deadline_exceeded",
                format!("the task ran past its estimated_duration of {}s", deadline.map(|d| d.as_secs_f64()).unwrap_or(0.0)),
            ), TaskStatus::Failed)),
            result = run.execute() => result.map_err(|f| (f, TaskStatus::Failed)),
        };
        run.abandon_inflight(&outcome).await;
        match outcome {
            Ok(result) => {
                self.finish(&task_id, Ok(result), TaskStatus::Completed)
                    .await
            }
            Err((failure, status)) => self.finish(&task_id, Err(failure), status).await,
        }
    }

    fn ended_task(&self, id: &str) -> Option<(Task, Arc<Vec<Step>>)> {
        self.ended.lock().unwrap_or_else(|p| p.into_inner()).get(id)
    }

    /// Records a step: in the live task's copy at once, and in the journal through the
    /// returned commit. The two see one step's writes in the same order because they all
    /// come from the task's one `run_task` future (its patterns join futures; they spawn
    /// nothing) and the journal's writer is FIFO. The copy may be ahead of the journal by
    /// the writes still queued.
    pub(crate) fn put_step(&self, step: &Step) -> sutazai_store::Commit {
        {
            let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            let mut entry = live.get_mut(&step.task_id);
            if let Some(steps) = entry.as_mut().and_then(|entry| entry.steps.as_mut()) {
                // Copies the list only while a `task_detail` still holds the previous one.
                let steps = Arc::make_mut(steps);
                match steps.iter_mut().find(|s| s.key == step.key) {
                    Some(held) => held.clone_from(step),
                    None => steps.push(step.clone()),
                }
                steps.sort_by(|a, b| (a.seq, &a.key).cmp(&(b.seq, &b.key)));
            }
        }
        self.journal.put_step(step)
    }

    fn set_live_agents(&self, task_id: &str, agents: &[String]) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mut entry) = live.get_mut(task_id) {
            entry.task.assigned_agents = agents.to_vec();
        }
    }

    /// Puts a task in a terminal status: journals it (awaited), removes it from the live
    /// set, wakes its watchers and publishes the event.
    pub(crate) async fn finish(
        &self,
        task_id: &str,
        outcome: Result<serde_json::Value, TaskFailure>,
        status: TaskStatus,
    ) {
        // Claim the task (a cancel and the run may both try to finish it), but leave it in
        // the live set until its final state is committed: a reader that misses it there
        // must find that state in the journal.
        let task = {
            let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            match live.get_mut(task_id) {
                Some(mut entry) if !entry.finishing => {
                    entry.finishing = true;
                    Some(entry.task.clone())
                }
                _ => None,
            }
        };
        let Some(mut task) = task else { return };
        task.status = status;
        task.completed_at = Some(Utc::now());
        let failure = match outcome {
            Ok(result) => {
                task.result = Some(result);
                None
            }
            Err(f) => {
                task.error = Some(f.to_string());
                Some(f)
            }
        };
        let journaled = match self.journal.update_task(&task).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(task_id, error = %e, "could not journal the task's final state");
                false
            }
        };
        let entry = {
            let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            live.remove(task_id)
        };
        // Only a final state the journal holds, with every step this process recorded.
        if journaled && let Some(steps) = entry.as_ref().and_then(|e| e.steps.clone()) {
            let mut ended = self.ended.lock().unwrap_or_else(|p| p.into_inner());
            ended.insert(task.clone(), steps);
        }
        if let Some(watchers) = entry.and_then(|entry| entry.watchers) {
            let _ = watchers.ended.set(task.clone());
            watchers.status.send_replace(status);
        }
        let secrets = self
            .config
            .sensitive_fields
            .secrets_in(&task.request.payload);
        let event = match (status, failure) {
            (TaskStatus::Completed, _) => {
                self.completed.fetch_add(1, Ordering::Relaxed);
                let mut result = task.result.clone().unwrap_or_default();
                sutazai_core::mask::redact_value(&mut result, &secrets);
                Event::TaskCompleted {
                    task_id: task.id.clone(),
                    session_id: task.session_id.clone(),
                    task_name: task.request.name.clone(),
                    result,
                    duration: match (task.started_at, task.completed_at) {
                        (Some(s), Some(e)) => (e - s).num_microseconds().unwrap_or(0) as f64 / 1e6,
                        _ => 0.0,
                    },
                }
            }
            (TaskStatus::Cancelled, _) => Event::TaskCancelled {
                task_id: task.id.clone(),
                task_name: task.request.name.clone(),
            },
            (_, failure) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let failure =
                    failure.unwrap_or_else(|| TaskFailure::new("failed", "the task failed"));
                Event::TaskFailed {
                    task_id: task.id.clone(),
                    task_name: task.request.name.clone(),
                    code: failure.code.to_owned(),
                    message: sutazai_core::mask::redact(&failure.message, &secrets),
                }
            }
        };
        self.emit(event);
    }
}

/// `a / b`, or `when_empty` when `b` is 0.
fn ratio(a: u64, b: u64, when_empty: f64) -> f64 {
    if b > 0 {
        a as f64 / b as f64
    } else {
        when_empty
    }
}

/// The API's figures from the journal's. Pure, so its arithmetic is tested without a
/// journal.
fn analytics_from(
    start_date: Option<DateTime<Utc>>,
    end_date: Option<DateTime<Utc>>,
    perf: &sutazai_store::PerformanceStats,
) -> Analytics {
    let (mut completed, mut failed, mut latency, mut tokens) = (0u64, 0u64, 0.0f64, 0u64);
    let mut agent_performance = std::collections::BTreeMap::new();
    for a in &perf.agents {
        let s = &a.totals;
        completed += s.completed;
        failed += s.failed;
        latency += s.total_duration_secs;
        let agent_tokens = s.prompt_tokens + s.completion_tokens;
        tokens += agent_tokens;
        let total = s.completed + s.failed;
        agent_performance.insert(
            s.agent_id.clone(),
            AgentPerformance {
                success_rate: ratio(s.completed, total, 0.0),
                average_response_time: if s.completed > 0 {
                    s.total_duration_secs / s.completed as f64
                } else {
                    0.0
                },
                p50_response_time: a.response_time.p50_secs,
                p95_response_time: a.response_time.p95_secs,
                completed: s.completed,
                failed: s.failed,
                error_rate: ratio(s.failed, total, 0.0),
                total_tokens: agent_tokens,
                prompt_tokens: s.prompt_tokens,
                completion_tokens: s.completion_tokens,
            },
        );
    }
    let pattern_performance = perf
        .patterns
        .iter()
        .map(|p| {
            (
                p.pattern.as_str().to_owned(),
                PatternPerformance {
                    completed: p.completed,
                    failed: p.failed,
                    cancelled: p.cancelled,
                    completion_rate: ratio(p.completed, p.ended(), 0.0),
                    average_duration: p.duration.mean_secs(),
                    p50_duration: p.duration.p50_secs,
                    p95_duration: p.duration.p95_secs,
                },
            )
        })
        .collect();
    let throughput_per_hour = match (start_date, end_date) {
        (Some(s), Some(e)) => {
            let hours = (e - s).num_milliseconds() as f64 / 3_600_000.0;
            (hours > 0.0).then(|| perf.tasks_completed() as f64 / hours)
        }
        _ => None,
    };
    let total = completed + failed;
    Analytics {
        start_date,
        end_date,
        average_success_rate: ratio(completed, total, 0.0),
        average_response_time: if completed > 0 {
            latency / completed as f64
        } else {
            0.0
        },
        p50_response_time: perf.response_time.p50_secs,
        p95_response_time: perf.response_time.p95_secs,
        total_steps: total,
        completed_steps: completed,
        failed_steps: failed,
        total_tokens: tokens,
        throughput_per_hour,
        agent_performance,
        pattern_performance,
    }
}

async fn sleep_opt(duration: Option<Duration>) {
    match duration {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use sutazai_core::CoordinationPattern;
    use sutazai_store::{
        AgentPerformanceStats, AgentStats, DurationSummary, PatternStats, PerformanceStats,
    };

    use super::*;

    fn at(hours: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_750_000_000 + hours * 3600, 0).expect("valid")
    }

    fn perf() -> PerformanceStats {
        PerformanceStats {
            agents: vec![
                AgentPerformanceStats {
                    totals: AgentStats {
                        agent_id: "alpha".into(),
                        completed: 3,
                        failed: 1,
                        total_duration_secs: 6.0,
                        prompt_tokens: 100,
                        completion_tokens: 20,
                    },
                    response_time: DurationSummary::from_durations(vec![1.0, 2.0, 3.0]),
                },
                AgentPerformanceStats {
                    totals: AgentStats {
                        agent_id: "beta".into(),
                        completed: 0,
                        failed: 2,
                        total_duration_secs: 0.0,
                        prompt_tokens: 7,
                        completion_tokens: 0,
                    },
                    response_time: DurationSummary::default(),
                },
            ],
            response_time: DurationSummary::from_durations(vec![1.0, 2.0, 3.0]),
            patterns: vec![
                PatternStats {
                    pattern: CoordinationPattern::Pipeline,
                    completed: 6,
                    failed: 1,
                    cancelled: 1,
                    duration: DurationSummary::from_durations(vec![10.0, 20.0]),
                },
                PatternStats {
                    pattern: CoordinationPattern::Swarm,
                    completed: 0,
                    failed: 0,
                    cancelled: 3,
                    duration: DurationSummary::default(),
                },
            ],
        }
    }

    #[test]
    fn analytics_keeps_the_old_figures_and_adds_the_new_ones() {
        let a = analytics_from(Some(at(0)), Some(at(4)), &perf());
        // Old fields, old meaning: 3 of 3 + 1 + 2 steps, 6 s over 3 completed.
        assert_eq!(a.total_steps, 6);
        assert_eq!(a.average_success_rate, 0.5);
        assert_eq!(a.average_response_time, 2.0);
        assert_eq!((a.completed_steps, a.failed_steps), (3, 3));
        assert_eq!(a.total_tokens, 127);
        assert_eq!(a.p50_response_time, Some(2.0));
        assert_eq!(a.p95_response_time, Some(3.0));
        // 6 completed tasks over 4 hours.
        assert_eq!(a.throughput_per_hour, Some(1.5));

        let alpha = &a.agent_performance["alpha"];
        assert_eq!(alpha.success_rate, 0.75);
        assert_eq!(alpha.error_rate, 0.25);
        assert_eq!(alpha.average_response_time, 2.0);
        assert_eq!(
            (alpha.p50_response_time, alpha.p95_response_time),
            (Some(2.0), Some(3.0))
        );
        assert_eq!(
            (
                alpha.prompt_tokens,
                alpha.completion_tokens,
                alpha.total_tokens
            ),
            (100, 20, 120)
        );
        let beta = &a.agent_performance["beta"];
        assert_eq!((beta.success_rate, beta.error_rate), (0.0, 1.0));
        assert_eq!(beta.average_response_time, 0.0);
        assert_eq!(beta.p50_response_time, None);

        let pipeline = &a.pattern_performance["pipeline"];
        assert_eq!(
            (pipeline.completed, pipeline.failed, pipeline.cancelled),
            (6, 1, 1)
        );
        assert_eq!(pipeline.completion_rate, 0.75);
        assert_eq!(pipeline.average_duration, Some(15.0));
        assert_eq!(
            (pipeline.p50_duration, pipeline.p95_duration),
            (Some(10.0), Some(20.0))
        );
        let swarm = &a.pattern_performance["swarm"];
        assert_eq!(swarm.completion_rate, 0.0);
        assert_eq!(swarm.average_duration, None);
        assert!(!a.pattern_performance.contains_key("collaborative"));

        let json = serde_json::to_value(&a).expect("serialises");
        assert_eq!(
            json["pattern_performance"]["swarm"]["p95_duration"],
            serde_json::Value::Null
        );
        assert_eq!(json["agent_performance"]["alpha"]["total_tokens"], 120);
    }

    #[test]
    fn throughput_needs_both_dates_and_a_non_empty_window() {
        assert_eq!(
            analytics_from(None, Some(at(4)), &perf()).throughput_per_hour,
            None
        );
        assert_eq!(
            analytics_from(Some(at(0)), None, &perf()).throughput_per_hour,
            None
        );
        assert_eq!(
            analytics_from(Some(at(2)), Some(at(2)), &perf()).throughput_per_hour,
            None
        );
        let a = analytics_from(Some(at(0)), Some(at(24)), &PerformanceStats::default());
        assert_eq!(a.throughput_per_hour, Some(0.0));
        assert_eq!(
            (
                a.total_steps,
                a.average_success_rate,
                a.average_response_time
            ),
            (0, 0.0, 0.0)
        );
        assert_eq!(a.p50_response_time, None);
        assert!(a.agent_performance.is_empty() && a.pattern_performance.is_empty());
    }
}
