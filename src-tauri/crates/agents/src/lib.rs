//! The agent registry: which agents exist, what each can do, and how it is prompted.
//!
//! SutazAI ships the 38 agents of the system description (`spec/system-design.md`,
//! "Complete Agent Registry") as data, not code: one TOML file per agent in this crate's
//! `builtin/` directory, embedded into the binary at compile time. Users add agents, or
//! replace built-in ones, by dropping files of the same shape into their agent directory;
//! [`Registry::load`] overlays those on the built-ins.
//!
//! # Layout
//! - [`registry`] holds [`Registry`] (built-ins plus user files, lookups by id and capability)
//!   and [`AgentSource`].
//! - [`parse`] holds [`parse_agent_file`] (TOML text to a checked [`AgentSpec`]) and
//!   [`validate`] (the rules every spec obeys).
//! - [`error`] holds [`AgentFileError`], one per rejected file.
//!
//! # Agent file format
//! A file is named `<id>.toml` and deserialises into [`sutazai_core::AgentSpec`]; unknown
//! keys are rejected so a misspelt key is an error rather than a silently ignored
//! setting.
//!
//! ```toml
//! # agents/sql-reviewer.toml
//! id = "sql-reviewer"                 # ^[a-z0-9][a-z0-9-]{0,63}$, equal to the file stem
//! name = "SQL Reviewer"               # shown in the dashboard
//! category = "development"            # core_intelligence | development | infrastructure
//!                                     # | specialized_ai | security
//! role = "worker"                     # coordinator | worker | specialist | monitor
//! capabilities = ["code_review", "database_design"]   # ^[a-z][a-z0-9_]{0,63}$, no repeats
//! system_prompt = """\
//! You review SQL schemas and queries for correctness and performance. \
//! Answer concisely."""                # at most 8000 characters
//! temperature = 0.2                   # optional, 0.0..=2.0, default 0.2
//! max_concurrency = 4                 # optional, 1..=256, default 4
//! # model = "qwen2.5:7b"              # optional; default: the configured model
//! # provider = "ollama"               # optional; default: the configured provider
//! ```
//!
//! Task `requirements` are matched against `capabilities`, so tags form a shared
//! vocabulary: reuse an existing tag (see [`Registry::capabilities`]) before inventing
//! one. Coordinators (the hierarchical pattern's planners) carry `task_planning` and
//! `synthesis`.
//!
//! # Example
//! ```
//! use sutazai_agents::Registry;
//!
//! let registry = Registry::builtin();
//! assert_eq!(registry.len(), 38);
//! let reviewers = registry.with_capability("security_review");
//! assert!(reviewers.iter().any(|a| a.id == "semgrep-security-analyzer"));
//! ```

pub mod error;
pub mod parse;
pub mod registry;

pub use error::AgentFileError;
pub use parse::{parse_agent_file, validate};
pub use registry::{AgentSource, Registry, remove_user_file, write_user_file};
pub use sutazai_core::AgentSpec;
