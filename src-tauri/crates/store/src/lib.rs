//! The durable journal of tasks and steps, in SQLite.
//!
//! The orchestrator journals every task and every step before and after it runs. After a
//! crash (`kill -9` included) a restarted process reads [`Journal::unfinished_tasks`] and
//! each task's [`Journal::steps`], reuses the output of every completed step, and runs only
//! what is missing: no LLM call is repeated.
//!
//! Throughput comes from *group commit*: all writes of the process go through one writer
//! thread that commits whatever is queued in a single transaction, so a busy orchestrator
//! pays one commit per thousands of writes while an idle one still gets a single write
//! committed at once.
//!
//! # Layout
//! - [`journal`]: [`Journal`] (the cloneable handle: writes, reads, close) and [`Commit`]
//!   (the future of one write, enqueued eagerly).
//! - `writer`: the dedicated `sutazai-journal-writer` thread and its batching loop.
//! - `checkpoint`: the `sutazai-journal-checkpoint` thread, which copies the WAL into the
//!   database file beside the writer so no commit waits on a checkpoint's `fsync`.
//! - `queries`: the read queries, run on tokio's blocking threads over read-only
//!   connections; defines [`AgentStats`].
//! - [`performance`]: the windowed figures of `/analytics/performance` (per agent, overall
//!   and per coordination pattern, with nearest-rank percentiles), read in one snapshot.
//! - `codec`: domain types to rows and back; undecodable rows become
//!   [`StoreError::Corrupt`].
//! - `schema`: migrations ([`SCHEMA_VERSION`]) and connection setup (WAL,
//!   `synchronous = NORMAL`: durable across process crashes, not across power loss).
//! - [`error`]: the one error type, [`StoreError`].

pub mod error;
pub mod journal;
pub mod performance;

mod checkpoint;
mod codec;
mod queries;
mod schema;
mod writer;

pub use error::StoreError;
pub use journal::{Commit, Journal, JournalStats};
pub use performance::{
    AgentPerformanceStats, DurationSummary, PatternStats, PerformanceStats, nearest_rank,
};
pub use queries::AgentStats;
pub use schema::SCHEMA_VERSION;
