//! Agents: the registry entry ([`AgentSpec`]) and the runtime state an agent can be in.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The five families of the system description's agent classification matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentCategory {
    /// System architecture, autonomous control, problem solving.
    CoreIntelligence,
    /// Code generation, backend/frontend development, testing.
    Development,
    /// DevOps, deployment, hardware optimisation.
    Infrastructure,
    /// LocalAGI, AgentZero, Langflow, Dify and similar integrations.
    SpecializedAi,
    /// Penetration testing, security analysis, compliance.
    Security,
}

/// The part an agent plays when agents coordinate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentRole {
    /// Plans and synthesises (the hierarchical pattern's coordinator comes from these).
    Coordinator,
    /// Does the work a plan hands out.
    Worker,
    /// Does narrow expert work.
    Specialist,
    /// Reviews and watches.
    Monitor,
}

/// One agent of the registry: what it can do and how it talks to its model.
///
/// Built-in agents ship as data files embedded in the binary; a user's agent directory
/// adds or overrides them with files of the same shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// Stable kebab-case id (`senior-ai-engineer`); the API and the journal name agents by it.
    pub id: String,
    /// Human-readable name for the dashboard.
    pub name: String,
    /// Family in the classification matrix.
    pub category: AgentCategory,
    /// Part played in coordination.
    pub role: AgentRole,
    /// Capability tags that task `requirements` are matched against (`code_generation`).
    pub capabilities: Vec<String>,
    /// Model override; `None` means the configured default model (`SUTAZAI_MODEL`), so the
    /// whole registry runs on whatever single model the user has pulled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Provider override (a provider name from the configuration); `None` = the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The system prompt that makes a general model act as this agent.
    pub system_prompt: String,
    /// Sampling temperature, 0.0 to 2.0.
    #[serde(default = "default_temperature")]
    pub temperature: f32,
    /// How many steps this agent may run at once; selection counts free slots as load.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: u32,
}

fn default_temperature() -> f32 {
    0.2
}

fn default_max_concurrency() -> u32 {
    4
}

impl AgentSpec {
    /// Whether this agent lists `capability` among its capabilities.
    pub fn has_capability(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }
}

/// Runtime state of an agent as the API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    /// Enabled and its circuit breaker is closed: it can be selected.
    Healthy,
    /// Enabled, but its circuit breaker is open after repeated failures.
    Degraded,
    /// Stopped through `/agents/{id}/control`: never selected until started again.
    Stopped,
}
