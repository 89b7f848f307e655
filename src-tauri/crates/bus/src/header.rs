//! The clear-text header of an envelope (see [`crate::envelope`]): every field of a
//! message except its payload and metadata, in a compact binary form.
//!
//! The header travels with every message on Redis, so it is kept small and cheap to read:
//! about 80 bytes for a typical message instead of the ~280 of its JSON. Fields in order,
//! integers big-endian:
//!
//! ```text
//! id            text
//! sender_id     text
//! recipient_id  0x00 (none) | text
//! message_type  u8      (codes below)
//! pattern       u8
//! priority      u8
//! topic         0x00 (none) | text
//! created_at    i64 seconds since the Unix epoch, u32 nanoseconds
//! expires_at    0x00 (none) | 0x01, i64 seconds, u32 nanoseconds
//!
//! text = 0x01, 16 bytes      a UUID whose text is the canonical lower-case hyphenated form
//!      | 0x02, u16 length, UTF-8 bytes
//! ```
//!
//! Reading never panics and refuses anything but exactly one header: unknown codes, bad
//! UTF-8, an out-of-range time, truncation or trailing bytes. [`Header::to_json`] gives the
//! header as the JSON object the dead-letter listing shows (the message's field names).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sutazai_core::{CommunicationPattern, Message, MessageType, Priority};
use uuid::Uuid;

const NONE: u8 = 0x00;
const SOME: u8 = 0x01;
const TEXT_UUID: u8 = 0x01;
const TEXT_UTF8: u8 = 0x02;
/// The longest text field, in bytes.
pub(crate) const MAX_TEXT: usize = u16::MAX as usize;

/// A text field longer than [`MAX_TEXT`] bytes.
#[derive(Debug)]
pub(crate) struct TooLong {
    pub(crate) field: &'static str,
    pub(crate) len: usize,
}

/// A decoded header.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Header {
    pub(crate) id: String,
    pub(crate) sender_id: String,
    pub(crate) recipient_id: Option<String>,
    pub(crate) message_type: MessageType,
    pub(crate) pattern: CommunicationPattern,
    pub(crate) priority: Priority,
    pub(crate) topic: Option<String>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) expires_at: Option<DateTime<Utc>>,
}

fn type_code(t: MessageType) -> u8 {
    match t {
        MessageType::TaskRequest => 1,
        MessageType::TaskResponse => 2,
        MessageType::StatusUpdate => 3,
        MessageType::HealthCheck => 4,
        MessageType::CoordinationMessage => 5,
        MessageType::SystemCommand => 6,
        MessageType::SystemAnnouncement => 7,
    }
}

fn type_from(code: u8) -> Option<MessageType> {
    Some(match code {
        1 => MessageType::TaskRequest,
        2 => MessageType::TaskResponse,
        3 => MessageType::StatusUpdate,
        4 => MessageType::HealthCheck,
        5 => MessageType::CoordinationMessage,
        6 => MessageType::SystemCommand,
        7 => MessageType::SystemAnnouncement,
        _ => return None,
    })
}

fn pattern_code(p: CommunicationPattern) -> u8 {
    match p {
        CommunicationPattern::PointToPoint => 1,
        CommunicationPattern::Broadcast => 2,
        CommunicationPattern::PubSub => 3,
        CommunicationPattern::RequestResponse => 4,
    }
}

fn pattern_from(code: u8) -> Option<CommunicationPattern> {
    Some(match code {
        1 => CommunicationPattern::PointToPoint,
        2 => CommunicationPattern::Broadcast,
        3 => CommunicationPattern::PubSub,
        4 => CommunicationPattern::RequestResponse,
        _ => return None,
    })
}

fn priority_code(p: Priority) -> u8 {
    match p {
        Priority::Low => 1,
        Priority::Normal => 2,
        Priority::High => 3,
        Priority::Critical => 4,
    }
}

fn priority_from(code: u8) -> Option<Priority> {
    Some(match code {
        1 => Priority::Low,
        2 => Priority::Normal,
        3 => Priority::High,
        4 => Priority::Critical,
        _ => return None,
    })
}

fn write_text(out: &mut Vec<u8>, field: &'static str, text: &str) -> Result<(), TooLong> {
    // Only a UUID that reads back as exactly the same text is stored as 16 bytes.
    if text.len() == 36
        && let Ok(uuid) = Uuid::try_parse(text)
    {
        let mut canonical = [0u8; 36];
        if uuid.hyphenated().encode_lower(&mut canonical).as_bytes() == text.as_bytes() {
            out.push(TEXT_UUID);
            out.extend_from_slice(uuid.as_bytes());
            return Ok(());
        }
    }
    let len = u16::try_from(text.len()).map_err(|_| TooLong {
        field,
        len: text.len(),
    })?;
    out.push(TEXT_UTF8);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

fn write_time(out: &mut Vec<u8>, time: &DateTime<Utc>) {
    out.extend_from_slice(&time.timestamp().to_be_bytes());
    out.extend_from_slice(&time.timestamp_subsec_nanos().to_be_bytes());
}

/// Appends `message`'s header to `out`.
pub(crate) fn write(message: &Message, out: &mut Vec<u8>) -> Result<(), TooLong> {
    // Listing every field (no `..`) makes a field added to `Message` a compile error here
    // rather than a field silently lost on the wire.
    let Message {
        id,
        sender_id,
        recipient_id,
        message_type,
        pattern,
        priority,
        topic,
        payload: _,
        metadata: _,
        created_at,
        expires_at,
    } = message;
    write_text(out, "id", id)?;
    write_text(out, "sender_id", sender_id)?;
    match recipient_id {
        None => out.push(NONE),
        Some(recipient) => write_text(out, "recipient_id", recipient)?,
    }
    out.push(type_code(*message_type));
    out.push(pattern_code(*pattern));
    out.push(priority_code(*priority));
    match topic {
        None => out.push(NONE),
        Some(topic) => write_text(out, "topic", topic)?,
    }
    write_time(out, created_at);
    match expires_at {
        None => out.push(NONE),
        Some(at) => {
            out.push(SOME);
            write_time(out, at);
        }
    }
    Ok(())
}

/// A cursor over header bytes.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let Some((taken, rest)) = self.rest.split_at_checked(n) else {
            return Err(format!("truncated in {what}"));
        };
        self.rest = rest;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        let Some((taken, rest)) = self.rest.split_first_chunk::<N>() else {
            return Err(format!("truncated in {what}"));
        };
        self.rest = rest;
        Ok(*taken)
    }

    fn byte(&mut self, what: &str) -> Result<u8, String> {
        let [b] = self.array::<1>(what)?;
        Ok(b)
    }

    fn text_after(&mut self, tag: u8, what: &str) -> Result<String, String> {
        match tag {
            TEXT_UUID => {
                let bytes = self.array::<16>(what)?;
                Ok(Uuid::from_bytes(bytes).hyphenated().to_string())
            }
            TEXT_UTF8 => {
                let len = u16::from_be_bytes(self.array::<2>(what)?);
                let bytes = self.take(usize::from(len), what)?;
                String::from_utf8(bytes.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
            }
            other => Err(format!("unknown text tag {other:#04x} in {what}")),
        }
    }

    fn text(&mut self, what: &str) -> Result<String, String> {
        let tag = self.byte(what)?;
        self.text_after(tag, what)
    }

    fn optional_text(&mut self, what: &str) -> Result<Option<String>, String> {
        match self.byte(what)? {
            NONE => Ok(None),
            tag => self.text_after(tag, what).map(Some),
        }
    }

    fn code<T>(&mut self, what: &str, from: fn(u8) -> Option<T>) -> Result<T, String> {
        let code = self.byte(what)?;
        from(code).ok_or_else(|| format!("unknown {what} code {code}"))
    }

    fn time(&mut self, what: &str) -> Result<DateTime<Utc>, String> {
        let seconds = i64::from_be_bytes(self.array::<8>(what)?);
        let nanos = u32::from_be_bytes(self.array::<4>(what)?);
        DateTime::from_timestamp(seconds, nanos).ok_or_else(|| format!("{what} is out of range"))
    }
}

impl Header {
    /// Reads exactly one header from `bytes`; the error says what is wrong.
    pub(crate) fn read(bytes: &[u8]) -> Result<Header, String> {
        let mut r = Reader { rest: bytes };
        let header = Header {
            id: r.text("id")?,
            sender_id: r.text("sender_id")?,
            recipient_id: r.optional_text("recipient_id")?,
            message_type: r.code("message_type", type_from)?,
            pattern: r.code("pattern", pattern_from)?,
            priority: r.code("priority", priority_from)?,
            topic: r.optional_text("topic")?,
            created_at: r.time("created_at")?,
            expires_at: match r.byte("expires_at")? {
                NONE => None,
                SOME => Some(r.time("expires_at")?),
                other => return Err(format!("unknown expires_at tag {other:#04x}")),
            },
        };
        if !r.rest.is_empty() {
            return Err(format!("{} bytes after the header", r.rest.len()));
        }
        Ok(header)
    }

    /// The header as a JSON object with the message's field names (absent optional fields
    /// left out), as the dead-letter listing shows it.
    pub(crate) fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert("id".into(), Value::from(self.id.clone()));
        map.insert("sender_id".into(), Value::from(self.sender_id.clone()));
        if let Some(recipient) = &self.recipient_id {
            map.insert("recipient_id".into(), Value::from(recipient.clone()));
        }
        let mut insert = |key: &str, value: Result<Value, serde_json::Error>| {
            if let Ok(value) = value {
                map.insert(key.into(), value);
            }
        };
        insert("message_type", serde_json::to_value(self.message_type));
        insert("pattern", serde_json::to_value(self.pattern));
        insert("priority", serde_json::to_value(self.priority));
        if let Some(topic) = &self.topic {
            map.insert("topic".into(), Value::from(topic.clone()));
        }
        map.insert(
            "created_at".into(),
            Value::from(self.created_at.to_rfc3339()),
        );
        if let Some(at) = &self.expires_at {
            map.insert("expires_at".into(), Value::from(at.to_rfc3339()));
        }
        Value::Object(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn message() -> Message {
        Message {
            id: sutazai_core::ids::new_id(),
            sender_id: "orchestrator".into(),
            recipient_id: Some("senior-ai-engineer".into()),
            message_type: MessageType::TaskRequest,
            pattern: CommunicationPattern::RequestResponse,
            priority: Priority::High,
            topic: None,
            payload: Map::new(),
            metadata: Map::new(),
            created_at: Utc::now(),
            expires_at: Some(Utc.with_ymd_and_hms(2031, 1, 2, 3, 4, 5).unwrap()),
        }
    }

    fn round_trip(m: &Message) -> Header {
        let mut out = Vec::new();
        write(m, &mut out).unwrap();
        Header::read(&out).unwrap()
    }

    fn same(h: &Header, m: &Message) {
        assert_eq!(h.id, m.id);
        assert_eq!(h.sender_id, m.sender_id);
        assert_eq!(h.recipient_id, m.recipient_id);
        assert_eq!(h.message_type, m.message_type);
        assert_eq!(h.pattern, m.pattern);
        assert_eq!(h.priority, m.priority);
        assert_eq!(h.topic, m.topic);
        assert_eq!(h.created_at, m.created_at);
        assert_eq!(h.expires_at, m.expires_at);
    }

    #[test]
    fn every_code_round_trips() {
        let types = [
            MessageType::TaskRequest,
            MessageType::TaskResponse,
            MessageType::StatusUpdate,
            MessageType::HealthCheck,
            MessageType::CoordinationMessage,
            MessageType::SystemCommand,
            MessageType::SystemAnnouncement,
        ];
        let patterns = [
            CommunicationPattern::PointToPoint,
            CommunicationPattern::Broadcast,
            CommunicationPattern::PubSub,
            CommunicationPattern::RequestResponse,
        ];
        let priorities = [
            Priority::Low,
            Priority::Normal,
            Priority::High,
            Priority::Critical,
        ];
        let mut m = message();
        for t in types {
            for p in patterns {
                for q in priorities {
                    m.message_type = t;
                    m.pattern = p;
                    m.priority = q;
                    same(&round_trip(&m), &m);
                }
            }
        }
    }

    #[test]
    fn texts_round_trip_exactly() {
        let mut m = message();
        let uuid = Uuid::now_v7().hyphenated().to_string();
        for id in [
            uuid.clone(),
            // Not canonical: kept as text so that it reads back unchanged.
            uuid.to_uppercase(),
            Uuid::now_v7().simple().to_string(),
            "msg-1".into(),
            String::new(),
            "é — ü".into(),
            "x".repeat(MAX_TEXT),
        ] {
            m.id = id;
            m.recipient_id = None;
            m.topic = Some("swarm.round.1".into());
            m.expires_at = None;
            same(&round_trip(&m), &m);
        }
        m.sender_id = "x".repeat(MAX_TEXT + 1);
        let error = write(&m, &mut Vec::new()).unwrap_err();
        assert_eq!(error.field, "sender_id");
        assert_eq!(error.len, MAX_TEXT + 1);
    }

    #[test]
    fn typical_header_is_small() {
        let mut out = Vec::new();
        write(&message(), &mut out).unwrap();
        // 82 bytes; the same header as JSON is about 280.
        assert!(out.len() < 100, "{} bytes", out.len());
    }

    #[test]
    fn anything_but_one_header_is_refused() {
        let mut good = Vec::new();
        write(&message(), &mut good).unwrap();
        for len in 0..good.len() {
            assert!(Header::read(&good[..len]).is_err(), "length {len}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(
            Header::read(&longer)
                .unwrap_err()
                .contains("after the header")
        );
        // The message type code sits after the two texts and the recipient.
        let mut m = message();
        m.id = "a".into();
        m.sender_id = "b".into();
        m.recipient_id = None;
        let mut bytes = Vec::new();
        write(&m, &mut bytes).unwrap();
        let type_at = 4 + 4 + 1;
        assert_eq!(bytes[type_at], 1);
        bytes[type_at] = 99;
        assert!(Header::read(&bytes).unwrap_err().contains("message_type"));
        bytes[type_at] = 1;
        bytes[0] = 0x07;
        assert!(Header::read(&bytes).unwrap_err().contains("text tag"));
        bytes[0] = TEXT_UTF8;
        bytes[3] = 0xff;
        assert!(Header::read(&bytes).unwrap_err().contains("UTF-8"));
    }

    #[test]
    fn json_view_uses_the_message_field_names() {
        let m = message();
        let json = round_trip(&m).to_json();
        let expected = serde_json::to_value(&m).unwrap();
        for key in [
            "id",
            "sender_id",
            "recipient_id",
            "message_type",
            "pattern",
            "priority",
        ] {
            assert_eq!(json[key], expected[key], "{key}");
        }
        let created: DateTime<Utc> = json["created_at"].as_str().unwrap().parse().unwrap();
        assert_eq!(created, m.created_at);
        assert!(json.get("topic").is_none() && json.get("payload").is_none());
    }
}
