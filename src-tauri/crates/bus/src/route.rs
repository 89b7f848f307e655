//! Where a message goes: validation of names and the routing decision for each
//! communication pattern, plus topic patterns with wildcards.
//!
//! Topic names are dot-separated segments of `[A-Za-z0-9_:/-]`. A subscription pattern may
//! use `*` for exactly one segment and `#` as its last segment for zero or more segments:
//! `swarm.*` matches `swarm.t1` but not `swarm.t1.votes`; `alerts.#` matches `alerts`,
//! `alerts.cpu` and `alerts.cpu.high`.

use chrono::Utc;
use sutazai_core::{CommunicationPattern, Message, Priority};

use crate::error::BusError;

/// Longest id, topic or pattern accepted.
pub const MAX_NAME_LEN: usize = 256;

/// The routing decision for one message (borrowing its names from the message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// An agent's inbox (point-to-point and request-response), at the message's priority.
    Inbox {
        /// The recipient agent.
        agent: &'a str,
        /// Its priority level.
        priority: Priority,
    },
    /// Every agent's inbox.
    Broadcast {
        /// Its priority level.
        priority: Priority,
    },
    /// Every subscription whose pattern matches the topic.
    Topic(&'a str),
}

impl Route<'_> {
    /// The name the dead-letter listing and statistics use (`inbox:<agent>`, `broadcast`,
    /// `topic:<name>`).
    pub fn queue_name(&self) -> String {
        match self {
            Route::Inbox { agent, .. } => format!("inbox:{agent}"),
            Route::Broadcast { .. } => "broadcast".to_owned(),
            Route::Topic(t) => format!("topic:{t}"),
        }
    }
}

/// Checks a message and decides its route. Expiry is checked too: an expired message
/// yields [`BusError::Expired`].
pub fn route(message: &Message) -> Result<Route<'_>, BusError> {
    validate_id("id", &message.id)?;
    validate_id("sender_id", &message.sender_id)?;
    if message.expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(BusError::Expired(message.id.clone()));
    }
    match message.pattern {
        CommunicationPattern::PointToPoint | CommunicationPattern::RequestResponse => {
            let name = match message.pattern {
                CommunicationPattern::PointToPoint => "point_to_point",
                _ => "request_response",
            };
            let agent = message
                .recipient_id
                .as_deref()
                .ok_or(BusError::MissingRecipient(name))?;
            validate_id("recipient_id", agent)?;
            Ok(Route::Inbox {
                agent,
                priority: message.priority,
            })
        }
        CommunicationPattern::Broadcast => Ok(Route::Broadcast {
            priority: message.priority,
        }),
        CommunicationPattern::PubSub => {
            let topic = message.topic.as_deref().ok_or(BusError::MissingTopic)?;
            validate_topic(topic)?;
            Ok(Route::Topic(topic))
        }
    }
}

/// Checks an id (agent, sender, message, subscription name).
pub fn validate_id(field: &'static str, value: &str) -> Result<(), BusError> {
    check(field, value, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '/' | '-')
    })
}

/// Checks a topic name (no wildcards, no empty segments).
pub fn validate_topic(topic: &str) -> Result<(), BusError> {
    check("topic", topic, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '/' | '-')
    })?;
    if topic.split('.').any(str::is_empty) {
        return Err(BusError::InvalidName {
            field: "topic",
            reason: "segments between dots must not be empty".into(),
        });
    }
    Ok(())
}

/// The bytes ids and topic names may hold (`A-Z a-z 0-9 . _ : / -`), as a table: this check
/// runs on every message.
static NAME_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'/' | b'-');
        b += 1;
    }
    table
};

fn check(field: &'static str, value: &str, allowed: impl Fn(char) -> bool) -> Result<(), BusError> {
    // Every allowed character is ASCII: a byte scan is the fast path (this runs for every
    // message); the character is decoded only to say which one is wrong.
    let reason = if value.is_empty() {
        Some("must not be empty".to_owned())
    } else if value.len() > MAX_NAME_LEN {
        Some(format!(
            "must be at most {MAX_NAME_LEN} characters, got {}",
            value.len()
        ))
    } else if value.bytes().all(|b| NAME_BYTES[usize::from(b)]) {
        None
    } else {
        value
            .chars()
            .find(|c| !allowed(*c))
            .map(|c| format!("character {c:?} is not allowed (use A-Z a-z 0-9 . _ : / -)"))
    };
    match reason {
        Some(reason) => Err(BusError::InvalidName { field, reason }),
        None => Ok(()),
    }
}

/// A subscription pattern over topic names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPattern {
    text: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    One,
    Rest,
}

impl TopicPattern {
    /// Parses a pattern; `*` is one segment, a final `#` is any number of segments.
    pub fn parse(text: &str) -> Result<TopicPattern, BusError> {
        let invalid = |reason: &str| BusError::InvalidName {
            field: "pattern",
            reason: format!("`{text}`: {reason}"),
        };
        check("pattern", text, |c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '/' | '-' | '*' | '#')
        })?;
        let parts: Vec<&str> = text.split('.').collect();
        let mut segments = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            segments.push(match *part {
                "" => return Err(invalid("segments between dots must not be empty")),
                "*" => Segment::One,
                "#" if i + 1 == parts.len() => Segment::Rest,
                "#" => return Err(invalid("`#` is only allowed as the last segment")),
                p if p.contains(['*', '#']) => {
                    return Err(invalid("a wildcard must be a whole segment"));
                }
                p => Segment::Literal(p.to_owned()),
            });
        }
        Ok(TopicPattern {
            text: text.to_owned(),
            segments,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern has no wildcard (it names exactly one topic).
    pub fn is_exact(&self) -> bool {
        self.segments
            .iter()
            .all(|s| matches!(s, Segment::Literal(_)))
    }

    /// Whether `topic` matches.
    pub fn matches(&self, topic: &str) -> bool {
        let mut parts = topic.split('.');
        for segment in &self.segments {
            match segment {
                Segment::Rest => return true,
                Segment::One => {
                    if parts.next().is_none() {
                        return false;
                    }
                }
                Segment::Literal(l) => {
                    if parts.next() != Some(l.as_str()) {
                        return false;
                    }
                }
            }
        }
        parts.next().is_none()
    }
}

/// Parses every pattern of a subscription.
pub fn parse_patterns<S: AsRef<str>>(patterns: &[S]) -> Result<Vec<TopicPattern>, BusError> {
    if patterns.is_empty() {
        return Err(BusError::InvalidName {
            field: "patterns",
            reason: "at least one topic pattern is needed".into(),
        });
    }
    patterns
        .iter()
        .map(|p| TopicPattern::parse(p.as_ref()))
        .collect()
}

/// Whether any of `patterns` matches `topic`.
pub fn any_match(patterns: &[TopicPattern], topic: &str) -> bool {
    patterns.iter().any(|p| p.matches(topic))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        let p = TopicPattern::parse("swarm.*").unwrap();
        assert!(p.matches("swarm.t1"));
        assert!(!p.matches("swarm"));
        assert!(!p.matches("swarm.t1.votes"));
        assert!(!p.matches("other.t1"));
        let p = TopicPattern::parse("alerts.#").unwrap();
        assert!(p.matches("alerts"));
        assert!(p.matches("alerts.cpu.high"));
        assert!(!p.matches("alert"));
        let p = TopicPattern::parse("a.*.c").unwrap();
        assert!(p.matches("a.b.c"));
        assert!(!p.matches("a.b.d"));
        assert!(TopicPattern::parse("exact.name").unwrap().is_exact());
        assert!(TopicPattern::parse("#").unwrap().matches("anything.at.all"));
    }

    #[test]
    fn bad_patterns_and_names() {
        for bad in ["", "a..b", "a.#.b", "a.b*", "with space", "x#"] {
            assert!(TopicPattern::parse(bad).is_err(), "{bad:?}");
        }
        assert!(validate_topic("a..b").is_err());
        assert!(validate_topic("swarm.*").is_err());
        assert!(validate_id("sender_id", &"x".repeat(MAX_NAME_LEN + 1)).is_err());
        assert!(validate_id("sender_id", "senior-ai-engineer").is_ok());
    }
}
