//! Dead letters: messages the bus would not or could not deliver, kept with the reason so
//! an operator can inspect, replay or purge them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sutazai_core::Message;
use utoipa::ToSchema;

/// Why a message is in the dead-letter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeadReason {
    /// Its `expires_at` passed before it was delivered.
    Expired,
    /// Delivery or handling failed more than the allowed number of times.
    MaxAttempts,
    /// Its sender was over the rate limit.
    RateLimited,
    /// The envelope's signature did not verify (tampered, or signed with another key).
    BadSignature,
    /// The envelope carried no signature.
    Unsigned,
    /// The encrypted payload did not decrypt.
    DecryptFailed,
    /// The compressed payload did not decompress.
    DecompressFailed,
    /// The envelope could not be parsed.
    Malformed,
}

impl DeadReason {
    /// The wire name (`"bad_signature"`).
    pub fn as_str(self) -> &'static str {
        match self {
            DeadReason::Expired => "expired",
            DeadReason::MaxAttempts => "max_attempts",
            DeadReason::RateLimited => "rate_limited",
            DeadReason::BadSignature => "bad_signature",
            DeadReason::Unsigned => "unsigned",
            DeadReason::DecryptFailed => "decrypt_failed",
            DeadReason::DecompressFailed => "decompress_failed",
            DeadReason::Malformed => "malformed",
        }
    }

    /// Every reason.
    pub const ALL: [DeadReason; 8] = [
        DeadReason::Expired,
        DeadReason::MaxAttempts,
        DeadReason::RateLimited,
        DeadReason::BadSignature,
        DeadReason::Unsigned,
        DeadReason::DecryptFailed,
        DeadReason::DecompressFailed,
        DeadReason::Malformed,
    ];

    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<DeadReason> {
        DeadReason::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

/// One dead letter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeadLetter {
    /// Dead-letter id (not the message id: the same message may die twice).
    pub id: String,
    /// Why it is here.
    pub reason: DeadReason,
    /// What exactly went wrong.
    pub detail: String,
    /// The queue it was on (`inbox:<agent>`, `broadcast`, `topic:<name>`, `ingress`).
    pub queue: String,
    /// Delivery attempts made.
    pub attempts: u32,
    /// When it died.
    pub dead_at: DateTime<Utc>,
    /// The message, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
    /// The clear-text header of an envelope that could not be read in full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<Value>,
    /// The raw envelope (base64, at most 64 KiB) when it could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_base64: Option<String>,
}

impl DeadLetter {
    /// A dead letter with a fresh id, dated now, for a message that could be read.
    pub fn new(
        reason: DeadReason,
        detail: String,
        queue: &str,
        attempts: u32,
        message: Option<Message>,
    ) -> DeadLetter {
        DeadLetter {
            id: sutazai_core::ids::new_id(),
            reason,
            detail,
            queue: queue.to_owned(),
            attempts,
            dead_at: chrono::Utc::now(),
            message,
            header: None,
            raw_base64: None,
        }
    }
}

/// A dead-letter listing query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterQuery {
    /// Only this reason.
    pub reason: Option<DeadReason>,
    /// At most this many, newest first.
    pub limit: usize,
}
