//! The SutazAI orchestrator: accepts tasks, picks agents, runs them through one of four
//! coordination patterns, and journals every step so nothing finished is ever redone.
//!
//! # Layout
//! - [`Orchestrator`] (this file, [`engine`]): the facade the API, the CLI and the desktop
//!   shell call — submit, list, cancel, approve, agent control, statistics, analytics
//!   (from the journal's windowed figures), events.
//! - [`select`]: scoring and selecting agents; [`roster`]: agents' runtime state (with
//!   the recent, windowed record behind [`RecentPerformance`]).
//! - `run` (private): one task's execution — the step runner (journal, retries, timeouts,
//!   circuit breakers, streaming) and the four patterns; `prompt` builds the prompts.
//! - `live` (private): the unfinished tasks held in memory, with O(1) status tallies.
//! - [`queue`]: the priority queue behind `MAX_CONCURRENT_TASKS`.
//! - [`breaker`], [`backoff`]: fault-tolerance building blocks.
//! - [`event`]: live events for WebSockets and the UI.
//! - [`dispatch`]: steps travel over the message bus as request-response messages;
//!   [`executor`] consumes agents' inboxes and runs them (in `serve` for local agents, in
//!   `sutazai worker` processes elsewhere).
//!
//! # Durability
//! A task is journaled before `submit` returns. Each step is journaled as started before
//! its model call and as finished (with its output) after; a step's key is deterministic,
//! so after a crash the resumed run finds finished steps in the journal and reuses their
//! output instead of calling the model again.

pub mod backoff;
pub mod breaker;
pub mod dispatch;
mod engine;
pub mod error;
pub mod event;
pub mod executor;
mod live;
mod prompt;
pub mod queue;
pub mod roster;
mod run;
pub mod select;

pub use engine::{
    AgentAction, AgentBinding, AgentDefinition, AgentInfo, AgentPerformance, AgentRemoval,
    Analytics, DefineMode, LocalAgents, Orchestrator, OrchestratorConfig, OrchestratorStats,
    PatternPerformance, TaskDetail, TaskFilter,
};
pub use error::{OrchestratorError, TaskFailure};
pub use event::Event;
pub use roster::RecentPerformance;
