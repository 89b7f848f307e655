//! The bus message model of the system description (`Message`, its types and patterns).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::task::Priority;

/// What a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageType {
    /// A task assignment.
    TaskRequest,
    /// A task's completion.
    TaskResponse,
    /// An agent's status.
    StatusUpdate,
    /// A health probe.
    HealthCheck,
    /// Multi-agent coordination (swarm rounds travel as these).
    CoordinationMessage,
    /// System control.
    SystemCommand,
    /// An announcement to everyone (the broadcast example's type).
    SystemAnnouncement,
}

/// How a message is routed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CommunicationPattern {
    /// To one recipient.
    #[default]
    PointToPoint,
    /// To every agent.
    Broadcast,
    /// To every subscriber of `topic`.
    PubSub,
    /// To one recipient, who answers with a correlated reply.
    RequestResponse,
}

/// A bus message, with the system description's fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Message {
    /// Message id.
    pub id: String,
    /// Who sent it.
    pub sender_id: String,
    /// The recipient for point-to-point and request-response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_id: Option<String>,
    /// What it is about.
    pub message_type: MessageType,
    /// How it is routed.
    pub pattern: CommunicationPattern,
    /// Delivery priority.
    pub priority: Priority,
    /// The topic for pub-sub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// The content.
    #[serde(default)]
    pub payload: Map<String, Value>,
    /// Routing and tracing extras.
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// When it was sent.
    pub created_at: DateTime<Utc>,
    /// After this it is not delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}
