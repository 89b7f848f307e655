//! Domain types shared by every SutazAI crate: agents, tasks, sessions, steps, messages.
//!
//! # Layout
//! - [`agent`]: what an agent *is* (its spec in the registry) and its runtime status.
//! - [`task`]: a task as submitted (`TaskRequest`), as tracked (`Task`), and its steps.
//! - [`message`]: the bus message model from the system description.
//! - [`ids`]: helpers for the opaque string ids used at every boundary.
//!
//! Every type here serialises with the field names of the system description
//! (`../shared/spec/system-design.md`), because those names are a public contract: the
//! API crate exposes these types unchanged. Nothing here does I/O.

pub mod agent;
pub mod ids;
pub mod mask;
pub mod message;
pub mod task;

pub use agent::{AgentCategory, AgentRole, AgentSpec, AgentState};
pub use message::{CommunicationPattern, Message, MessageType};
pub use task::{
    Approval, Constraints, CoordinationPattern, Priority, Step, StepKind, StepStatus, Task,
    TaskRequest, TaskStatus,
};
