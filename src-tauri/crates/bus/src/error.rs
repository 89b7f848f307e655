//! Why the bus refused or could not do something. Every variant has a stable snake_case
//! [`BusError::code`] that the API renders as `{code, message}`.

use std::time::Duration;

/// Why the bus refused a message or an operation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// Point-to-point and request-response messages need a `recipient_id`.
    #[error("a {0} message needs a recipient_id")]
    MissingRecipient(&'static str),
    /// Pub-sub messages need a `topic`.
    #[error("a pub_sub message needs a topic")]
    MissingTopic,
    /// A topic, pattern or id is empty, too long or has characters outside the allowed set.
    #[error("invalid {field}: {reason}")]
    InvalidName {
        /// Which field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// `expires_at` is already in the past; the message went to the dead-letter queue.
    #[error("message {0} expired before it was sent; it is in the dead-letter queue")]
    Expired(String),
    /// The sender exceeded its rate limit; the message went to the dead-letter queue.
    #[error(
        "sender `{sender}` exceeded its rate limit of {per_second} messages/s (burst {burst}); \
         retry in {retry_after_ms} ms; the message is in the dead-letter queue"
    )]
    RateLimited {
        /// The sender.
        sender: String,
        /// Sustained rate allowed.
        per_second: f64,
        /// Burst allowed.
        burst: u32,
        /// When a token is next available.
        retry_after_ms: u64,
    },
    /// No reply arrived in time for a request-response message.
    #[error("no reply from `{recipient}` to message {message_id} within {after:?}")]
    Timeout {
        /// The request's id (its correlation id).
        message_id: String,
        /// Who should have answered.
        recipient: String,
        /// How long we waited.
        after: Duration,
    },
    /// A request's id is already waiting for a reply.
    #[error("message {0} is already waiting for a reply")]
    DuplicateRequest(String),
    /// No dead letter has this id.
    #[error("no dead letter with id `{0}`")]
    DeadLetterNotFound(String),
    /// The dead letter holds no readable message (a tampered or undecodable envelope).
    #[error("dead letter `{0}` holds no readable message to replay")]
    NotReplayable(String),
    /// The transport (Redis) is unreachable or failed; the message was not accepted.
    #[error("message bus unavailable: {0}")]
    Unavailable(String),
    /// The bus is shutting down.
    #[error("the message bus is shutting down")]
    Closed,
}

impl BusError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            BusError::MissingRecipient(_) => "missing_recipient",
            BusError::MissingTopic => "missing_topic",
            BusError::InvalidName { .. } => "invalid_name",
            BusError::Expired(_) => "message_expired",
            BusError::RateLimited { .. } => "rate_limited",
            BusError::Timeout { .. } => "reply_timeout",
            BusError::DuplicateRequest(_) => "duplicate_request",
            BusError::DeadLetterNotFound(_) => "dead_letter_not_found",
            BusError::NotReplayable(_) => "not_replayable",
            BusError::Unavailable(_) => "bus_unavailable",
            BusError::Closed => "bus_closed",
        }
    }

    /// Whether the caller sent something invalid (as opposed to the bus failing).
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            BusError::MissingRecipient(_)
                | BusError::MissingTopic
                | BusError::InvalidName { .. }
                | BusError::Expired(_)
                | BusError::DuplicateRequest(_)
                | BusError::NotReplayable(_)
        )
    }
}
