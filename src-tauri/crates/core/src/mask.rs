//! Masking of sensitive fields: values under keys such as `password` or `api_key` in task
//! payloads and messages are shown as `***` wherever they leave the process (API answers,
//! events, logs). The stored task keeps them: an agent may need them, and a resumed task
//! must see what was submitted. Text that may quote them (a step's prompt, an agent's
//! answer) is redacted by value.
//!
//! A key is sensitive when, lowercased and without `-`/`_`/`.`/spaces, it equals or ends
//! with a configured name (`db_password`, `X-Api-Key`, `githubToken`), so `max_tokens`
//! is not (it does not end with `token`).

use serde_json::Value;

/// What replaces a sensitive value.
pub const MASK: &str = "***";

/// The names masked when `SUTAZAI_MASK_FIELDS` is not set.
pub const DEFAULT_FIELDS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "private_key",
    "credentials",
    "cookie",
];

/// Values shorter than this are not redacted from free text (too likely to hit ordinary
/// words); they are still masked under their keys.
const MIN_REDACTED_CHARS: usize = 4;

fn normalise(key: &str) -> String {
    key.chars()
        .filter(|c| !matches!(c, '-' | '_' | '.' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The configured sensitive field names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SensitiveFields(Vec<String>);

impl Default for SensitiveFields {
    fn default() -> Self {
        SensitiveFields::new(DEFAULT_FIELDS.iter().copied())
    }
}

impl SensitiveFields {
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> SensitiveFields {
        let mut names: Vec<String> = names
            .into_iter()
            .map(normalise)
            .filter(|n| !n.is_empty())
            .collect();
        names.sort();
        names.dedup();
        SensitiveFields(names)
    }

    /// From a comma-separated list (`SUTAZAI_MASK_FIELDS`); empty masks nothing.
    pub fn parse(list: &str) -> SensitiveFields {
        SensitiveFields::new(list.split(','))
    }

    pub fn names(&self) -> &[String] {
        &self.0
    }

    pub fn is_sensitive(&self, key: &str) -> bool {
        if key.is_ascii() {
            // Every key of every answer passes here: compare the normalised key's end from
            // the back without building it.
            return self.0.iter().any(|name| {
                let mut back = key
                    .bytes()
                    .rev()
                    .filter(|b| !matches!(b, b'-' | b'_' | b'.' | b' '))
                    .map(|b| b.to_ascii_lowercase());
                name.bytes().rev().all(|n| back.next() == Some(n))
            });
        }
        let key = normalise(key);
        self.0.iter().any(|name| key.ends_with(name.as_str()))
    }

    /// Replaces every sensitive value in `value` (at any depth, whatever its type) with
    /// [`MASK`]; returns the string forms of what was masked, for [`redact`].
    pub fn mask(&self, value: &mut Value) -> Vec<String> {
        let mut found = Vec::new();
        self.mask_into(value, &mut found);
        found.sort();
        found.dedup();
        found
    }

    /// [`SensitiveFields::mask`], then every string left in `value` redacted of what was
    /// masked: for whole answers (a task with its steps' prompts and outputs).
    pub fn mask_document(&self, value: &mut Value) {
        let secrets = self.mask(value);
        if secrets
            .iter()
            .any(|s| s.chars().count() >= MIN_REDACTED_CHARS)
        {
            redact_strings(value, &secrets);
        }
    }

    fn mask_into(&self, value: &mut Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, v) in map.iter_mut() {
                    if self.is_sensitive(key) && !v.is_null() {
                        collect_strings(v, found);
                        *v = Value::String(MASK.to_owned());
                    } else {
                        self.mask_into(v, found);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.mask_into(v, found)),
            _ => {}
        }
    }

    /// The values (as strings) under sensitive keys anywhere in `value`, which is left as
    /// it is, longest first: what [`redact`] and [`redact_value`] take out of text that may
    /// quote them (short ones are left out, as there).
    pub fn secrets_in(&self, value: &Value) -> Vec<String> {
        let mut copy = value.clone();
        let mut found: Vec<String> = self
            .mask(&mut copy)
            .into_iter()
            .filter(|s| s.chars().count() >= MIN_REDACTED_CHARS)
            .collect();
        found.sort_by_key(|s| std::cmp::Reverse(s.len()));
        found
    }
}

/// Redacts secrets from text that arrives in pieces (streamed tokens): the tail that could
/// be the start of a secret is held back until the next piece shows whether it is, so a
/// secret split across pieces is still replaced whole. [`StreamRedactor::finish`] gives
/// what is held at the end.
#[derive(Debug, Default)]
pub struct StreamRedactor {
    secrets: Vec<String>,
    /// Each secret and its JSON-escaped form (what [`redact`] replaces).
    forms: Vec<String>,
    /// Bytes held back: one less than the longest form.
    hold: usize,
    pending: String,
}

impl StreamRedactor {
    /// A redactor of `secrets` (as [`SensitiveFields::secrets_in`] finds them).
    pub fn new(secrets: Vec<String>) -> StreamRedactor {
        let mut forms = Vec::new();
        for secret in secrets
            .iter()
            .filter(|s| s.chars().count() >= MIN_REDACTED_CHARS)
        {
            forms.push(secret.clone());
            let escaped = serde_json::to_string(secret).unwrap_or_default();
            let escaped = escaped.trim_matches('"');
            if escaped != secret.as_str() {
                forms.push(escaped.to_owned());
            }
        }
        let hold = forms.iter().map(String::len).max().unwrap_or(1) - 1;
        StreamRedactor {
            secrets,
            forms,
            hold,
            pending: String::new(),
        }
    }

    /// Takes the next piece; returns the text that is safe to show now (maybe empty).
    pub fn push(&mut self, piece: &str) -> String {
        if self.forms.is_empty() {
            return piece.to_owned();
        }
        self.pending.push_str(piece);
        let mut cut = self.pending.len().saturating_sub(self.hold);
        while !self.pending.is_char_boundary(cut) {
            cut -= 1;
        }
        // A secret that straddles the cut is whole already: it goes out (replaced) now.
        loop {
            let straddling = self.forms.iter().find_map(|form| {
                self.pending
                    .match_indices(form.as_str())
                    .map(|(at, found)| at + found.len())
                    .find(|end| *end > cut && end - form.len() < cut)
            });
            match straddling {
                Some(end) => cut = end,
                None => break,
            }
        }
        let out = redact(&self.pending[..cut], &self.secrets);
        self.pending.drain(..cut);
        out
    }

    /// What is still held back, redacted; the redactor is empty afterwards.
    pub fn finish(&mut self) -> String {
        redact(&std::mem::take(&mut self.pending), &self.secrets)
    }
}

/// Every string in `value` (at any depth) [`redact`]ed of `secrets`.
pub fn redact_value(value: &mut Value, secrets: &[String]) {
    if !secrets.is_empty() {
        redact_strings(value, secrets);
    }
}

fn redact_strings(value: &mut Value, secrets: &[String]) {
    match value {
        Value::String(s) => {
            let redacted = redact(s, secrets);
            if redacted != *s {
                *s = redacted;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redact_strings(v, secrets)),
        Value::Object(map) => map.values_mut().for_each(|v| redact_strings(v, secrets)),
        _ => {}
    }
}

fn collect_strings(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::String(s) => found.push(s.clone()),
        Value::Number(n) => found.push(n.to_string()),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, found)),
        Value::Object(map) => map.values().for_each(|v| collect_strings(v, found)),
        Value::Bool(_) | Value::Null => {}
    }
}

/// `text` with every occurrence of each secret (at least 4 characters) replaced by
/// [`MASK`], longest first so a secret containing another is replaced whole.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut secrets: Vec<&String> = secrets
        .iter()
        .filter(|s| s.chars().count() >= MIN_REDACTED_CHARS)
        .collect();
    if secrets.is_empty() {
        return text.to_owned();
    }
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_owned();
    for secret in secrets {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), MASK);
        }
        // A JSON-escaped form (quotes, backslashes) as it appears inside a prompt.
        let escaped = serde_json::to_string(secret).unwrap_or_default();
        let escaped = escaped.trim_matches('"');
        if escaped != secret.as_str() && out.contains(escaped) {
            out = out.replace(escaped, MASK);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sensitive_keys_at_any_depth_are_masked_and_collected() {
        let fields = SensitiveFields::default();
        let mut payload = json!({
            "db_password": "hunter22",
            "X-Api-Key": "sk-abcdef",
            "githubToken": {"value": "ghp_123456"},
            "max_tokens": 128,
            "items": [{"secret": 424242}, {"name": "kept"}],
            "empty_password": null
        });
        let found = fields.mask(&mut payload);
        assert_eq!(payload["db_password"], MASK);
        assert_eq!(payload["X-Api-Key"], MASK);
        assert_eq!(payload["githubToken"], MASK);
        assert_eq!(payload["max_tokens"], 128);
        assert_eq!(payload["items"][0]["secret"], MASK);
        assert_eq!(payload["items"][1]["name"], "kept");
        assert!(payload["empty_password"].is_null());
        assert_eq!(found, vec!["424242", "ghp_123456", "hunter22", "sk-abcdef"]);
    }

    /// The allocation-free check of ASCII keys agrees with normalising them.
    #[test]
    fn ascii_keys_are_judged_as_their_normal_form() {
        let fields = SensitiveFields::parse("password,api_key,token,x");
        for key in [
            "db_password",
            "DB-PASSWORD",
            "pass word",
            "password_",
            "passwords",
            "api.key",
            "X-Api-Key",
            "apikeys",
            "githubToken",
            "max_tokens",
            "token",
            "t",
            "",
            "_",
            "x",
            "wordx",
            "X_",
            "paßword",
            "ÄPI_KEY",
            "café_token",
        ] {
            let normal = normalise(key);
            let expected = fields.names().iter().any(|n| normal.ends_with(n.as_str()));
            assert_eq!(fields.is_sensitive(key), expected, "{key:?}");
        }
        assert!(fields.is_sensitive("DB-PASSWORD") && !fields.is_sensitive("max_tokens"));
    }

    #[test]
    fn text_is_redacted_by_value() {
        let secrets = vec![
            "hunter22".to_owned(),
            "a\"b\\cd".to_owned(),
            "abc".to_owned(),
        ];
        let prompt = r#"Payload: {"password": "hunter22", "other": "a\"b\\cd"} abc hunter22"#;
        assert_eq!(
            redact(prompt, &secrets),
            r#"Payload: {"password": "***", "other": "***"} abc ***"#
        );
        let mut task = serde_json::json!({
            "payload": {"password": "hunter22"},
            "steps": [{"input": "Payload: {\"password\": \"hunter22\"}", "output": "I used hunter22"}]
        });
        SensitiveFields::default().mask_document(&mut task);
        assert_eq!(task["payload"]["password"], MASK);
        assert_eq!(
            task["steps"][0]["input"],
            "Payload: {\"password\": \"***\"}"
        );
        assert_eq!(task["steps"][0]["output"], "I used ***");
        let fields = SensitiveFields::parse("pin, , PIN");
        assert_eq!(fields.names(), ["pin"]);
        assert!(SensitiveFields::parse("").names().is_empty());
    }

    #[test]
    fn a_secret_split_across_streamed_pieces_is_still_redacted() {
        let secret = "hunter22-secret".to_owned();
        let text = format!("the password is {secret}, and \"{secret}\" again. Done.");
        // Every way of cutting the text into pieces of 1 to 7 bytes.
        for size in 1..=7 {
            let mut r = StreamRedactor::new(vec![secret.clone()]);
            let mut out = String::new();
            let bytes = text.as_bytes();
            for piece in bytes.chunks(size) {
                out.push_str(&r.push(std::str::from_utf8(piece).unwrap()));
            }
            out.push_str(&r.finish());
            assert!(!out.contains("hunter"), "pieces of {size}: {out}");
            assert_eq!(out, text.replace(&secret, MASK), "pieces of {size}");
        }
        // No secrets: pieces pass through at once.
        let mut plain = StreamRedactor::new(Vec::new());
        assert_eq!(plain.push("abc"), "abc");
        assert_eq!(plain.finish(), "");
    }
}
