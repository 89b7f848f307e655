//! Fuzzes the bus's envelope codec (`sutazai_bus::Codec`), which reads whatever arrives on
//! a Redis stream: bytes from other processes, possibly hostile.
//!
//! The first input byte picks a mode. Mode 0 decodes the rest as an envelope: framing and
//! header parsing run before the signature check, and decoding must answer `Ok` or a
//! rejection, never panic. Otherwise the rest becomes a message (ids, topic, payload and
//! metadata strings taken from the input; type, pattern and priority from its bytes),
//! encoded with or without encryption and with compression above a small threshold; the
//! envelope must decode to the same message, and with one byte changed (at a position the
//! input picks) it must be rejected: everything is under the signature.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use sutazai_bus::{Codec, MasterKey};
use sutazai_core::Message;

/// A fixed key (bytes 0 to 31), so a crash found once reproduces.
static KEY: LazyLock<MasterKey> = LazyLock::new(|| {
    MasterKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").expect("a valid key")
});

static PLAIN: LazyLock<Codec> = LazyLock::new(|| Codec::new(&KEY, false, 64));
static SEALED: LazyLock<Codec> = LazyLock::new(|| Codec::new(&KEY, true, 64));

const TYPES: [&str; 7] = [
    "task_request",
    "task_response",
    "status_update",
    "health_check",
    "coordination_message",
    "system_command",
    "system_announcement",
];
const PATTERNS: [&str; 4] = ["point_to_point", "broadcast", "pub_sub", "request_response"];
const PRIORITIES: [&str; 4] = ["low", "normal", "high", "critical"];

/// Turns every non-integer number into a string. JSON floats need not survive a text
/// round trip bit for bit (serde_json parses them fast, not exactly, without its
/// `float_roundtrip` feature), which is a property of JSON numbers, not of the codec.
fn without_floats(value: Value) -> Value {
    match value {
        Value::Number(n) if !(n.is_i64() || n.is_u64()) => Value::String(n.to_string()),
        Value::Array(items) => Value::Array(items.into_iter().map(without_floats).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, without_floats(v))).collect())
        }
        other => other,
    }
}

/// A message built from `data`, or `None` when the parts do not make one.
fn message(data: &[u8]) -> Option<Message> {
    let [a, b, c, d, rest @ ..] = data else {
        return None;
    };
    let text = String::from_utf8_lossy(rest);
    let mut parts = text.split('\u{1}');
    let mut next = || parts.next().unwrap_or("").to_owned();
    let (sender, recipient, topic, key, value) = (next(), next(), next(), next(), next());
    let value = without_floats(serde_json::from_str(&value).unwrap_or(Value::String(value)));
    let candidate = json!({
        "id": format!("fuzz-{a}{b}"),
        "sender_id": sender,
        "recipient_id": if c & 1 == 1 { Value::String(recipient) } else { Value::Null },
        "message_type": TYPES[*a as usize % TYPES.len()],
        "pattern": PATTERNS[*b as usize % PATTERNS.len()],
        "priority": PRIORITIES[*c as usize % PRIORITIES.len()],
        "topic": if c & 2 == 2 { Value::String(topic) } else { Value::Null },
        "payload": { key.clone(): value.clone() },
        "metadata": { "trace": key },
        "created_at": "2026-11-24T12:00:00Z",
        "expires_at": if d & 1 == 1 { json!("2026-11-24T13:00:00Z") } else { Value::Null },
    });
    serde_json::from_value(candidate).ok()
}

fuzz_target!(|data: &[u8]| {
    // Mode, then two bytes for the position of the byte to change.
    let [mode, p0, p1, rest @ ..] = data else {
        return;
    };
    let mode = *mode;
    if mode == 0 {
        let _ = PLAIN.decode(rest);
        let _ = SEALED.decode(rest);
        return;
    }
    let Some(message) = message(rest) else {
        return;
    };
    let codec = if mode & 1 == 1 { &*SEALED } else { &*PLAIN };
    let Ok(envelope) = codec.encode(&message) else {
        // Too large or otherwise refused: a clean error is the contract.
        return;
    };
    let decoded = codec.decode(&envelope).expect("an encoded message decodes");
    assert_eq!(decoded, message, "round trip changed the message");
    let at = usize::from(u16::from_le_bytes([*p0, *p1])) % envelope.len();
    let mut tampered = envelope.clone();
    tampered[at] ^= 0x5a;
    assert!(
        codec.decode(&tampered).is_err(),
        "a changed byte at {at} of {} was accepted",
        envelope.len()
    );
});
