//! Turning the text of one agent file into a checked [`AgentSpec`].
//!
//! Two layers: [`validate`] checks the rules a spec must obey wherever it came from, and
//! [`parse_agent_file`] adds what only a file can get wrong (TOML syntax, unknown or
//! missing keys, an id that disagrees with the file name). Both report the top-level key
//! to blame, because "line 7: invalid type" is much less useful to a user editing a
//! prompt file than "field `temperature`: line 7, column 15: invalid type".

use std::collections::HashSet;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use sutazai_core::AgentSpec;
use toml::de::{DeTable, Deserializer};

use crate::error::AgentFileError;

/// Longest id accepted; ids end up in URLs, journal rows and log lines.
const MAX_ID_LEN: usize = 64;
/// Longest capability tag accepted.
const MAX_CAPABILITY_LEN: usize = 64;
/// Longest system prompt accepted, in characters: far above any sensible prompt, low
/// enough that a runaway file cannot eat a small model's whole context window.
pub const MAX_SYSTEM_PROMPT_CHARS: usize = 8000;
/// Highest `max_concurrency` accepted; more parallel steps than this for one agent is
/// certainly a typo on a desktop machine.
pub const MAX_CONCURRENCY: u32 = 256;
/// Temperatures outside this range are rejected by the providers we talk to.
const TEMPERATURE_RANGE: std::ops::RangeInclusive<f32> = 0.0..=2.0;

/// Checks that `spec` obeys the registry's rules.
///
/// The orchestrator matches task requirements against capabilities, the API routes by id
/// and providers reject odd sampling settings, so a spec that breaks any of these rules
/// would fail later and further from its cause. The error is `(field, message)`, with
/// `field` the spec's field name as written in an agent file.
///
/// Rules: `id` matches `^[a-z0-9][a-z0-9-]{0,63}$`; `name` is not blank; `capabilities`
/// is not empty and each tag matches `^[a-z][a-z0-9_]{0,63}$` with no duplicates;
/// `system_prompt` is not blank and has at most 8000 characters; `temperature` is a
/// finite number in 0.0..=2.0; `max_concurrency` is in 1..=256; `model` and `provider`,
/// when present, are not blank.
pub fn validate(spec: &AgentSpec) -> Result<(), (String, String)> {
    let fail = |field: &str, message: String| Err((field.to_owned(), message));

    if !is_valid_id(&spec.id) {
        return fail(
            "id",
            format!(
                "`{}` is not a valid id: use 1 to {MAX_ID_LEN} lowercase letters, digits and \
                 `-`, starting with a letter or digit",
                spec.id
            ),
        );
    }
    if spec.name.trim().is_empty() {
        return fail("name", "must not be empty".to_owned());
    }
    if spec.capabilities.is_empty() {
        return fail(
            "capabilities",
            "must list at least one capability, or no task can ever be routed to this agent"
                .to_owned(),
        );
    }
    let mut seen = HashSet::with_capacity(spec.capabilities.len());
    for capability in &spec.capabilities {
        if !is_valid_capability(capability) {
            return fail(
                "capabilities",
                format!(
                    "`{capability}` is not a valid capability: use 1 to {MAX_CAPABILITY_LEN} \
                     lowercase letters, digits and `_`, starting with a letter"
                ),
            );
        }
        if !seen.insert(capability.as_str()) {
            return fail(
                "capabilities",
                format!("`{capability}` is listed more than once"),
            );
        }
    }
    if spec.system_prompt.trim().is_empty() {
        return fail("system_prompt", "must not be empty".to_owned());
    }
    let prompt_chars = spec.system_prompt.chars().count();
    if prompt_chars > MAX_SYSTEM_PROMPT_CHARS {
        return fail(
            "system_prompt",
            format!("must be at most {MAX_SYSTEM_PROMPT_CHARS} characters, got {prompt_chars}"),
        );
    }
    if !spec.temperature.is_finite() || !TEMPERATURE_RANGE.contains(&spec.temperature) {
        return fail(
            "temperature",
            format!("must be between 0.0 and 2.0, got {}", spec.temperature),
        );
    }
    if !(1..=MAX_CONCURRENCY).contains(&spec.max_concurrency) {
        return fail(
            "max_concurrency",
            format!(
                "must be between 1 and {MAX_CONCURRENCY}, got {}",
                spec.max_concurrency
            ),
        );
    }
    if spec.model.as_deref().is_some_and(|m| m.trim().is_empty()) {
        return fail(
            "model",
            "must not be empty; leave it out to use the configured default model".to_owned(),
        );
    }
    if spec
        .provider
        .as_deref()
        .is_some_and(|p| p.trim().is_empty())
    {
        return fail(
            "provider",
            "must not be empty; leave it out to use the configured default provider".to_owned(),
        );
    }
    Ok(())
}

/// Parses and validates the agent file at `path` whose contents are `text`.
///
/// The caller reads the file (so this stays free of I/O and works the same for embedded
/// built-ins and user files); `path` is used for the error messages and for the rule that
/// the id equals the file stem, which keeps "which file defines agent X" answerable
/// without opening every file and makes two files claiming one id impossible.
pub fn parse_agent_file(path: &Path, text: &str) -> Result<AgentSpec, AgentFileError> {
    let spec =
        deserialize(text).map_err(|(field, message)| AgentFileError::new(path, field, message))?;
    validate(&spec).map_err(|(field, message)| AgentFileError::new(path, Some(field), message))?;
    let stem = path.file_stem().and_then(|s| s.to_str());
    if stem != Some(spec.id.as_str()) {
        return Err(AgentFileError::new(
            path,
            Some("id".to_owned()),
            format!(
                "id `{}` does not match the file name; an agent's file must be named \
                 `<id>.toml`, so rename the file to `{}.toml` or change the id",
                spec.id, spec.id
            ),
        ));
    }
    Ok(spec)
}

/// Parses TOML into an [`AgentSpec`], describing any failure as `(field, message)`.
fn deserialize(text: &str) -> Result<AgentSpec, (Option<String>, String)> {
    let (table, syntax_errors) = DeTable::parse_recoverable(text);
    // Spans of every top-level `key = value`, taken before deserialising consumes the
    // table, so an error's position can be turned back into the key it belongs to.
    let keys: Vec<(String, Range<usize>)> = table
        .get_ref()
        .iter()
        .map(|(key, value)| {
            (
                key.get_ref().to_string(),
                key.span().start..value.span().end,
            )
        })
        .collect();
    if let Some(first) = syntax_errors.first() {
        let (field, mut message) = describe(text, &keys, first);
        if syntax_errors.len() > 1 {
            message.push_str(&format!(
                " (and {} more syntax errors)",
                syntax_errors.len() - 1
            ));
        }
        return Err((field, message));
    }
    AgentSpec::deserialize(Deserializer::from(table)).map_err(|err| describe(text, &keys, &err))
}

/// Turns a toml error into `(field, message)` with a `line N, column M:` prefix.
fn describe(
    text: &str,
    keys: &[(String, Range<usize>)],
    err: &toml::de::Error,
) -> (Option<String>, String) {
    let message = err.message().trim_end().to_owned();
    // serde's own messages name the field for missing and unknown keys; a missing key has
    // no position in the file (toml points at the whole document), so no line is given.
    if let Some(field) = quoted_after(&message, "missing field `") {
        return (Some(field), message);
    }
    let named = quoted_after(&message, "unknown field `")
        .or_else(|| quoted_after(&message, "duplicate field `"));
    let Some(span) = err.span() else {
        return (named, message);
    };
    let field = named
        .or_else(|| key_at(keys, span.start))
        .or_else(|| key_on_line(text, span.start));
    let message = match line_column(text, span.start) {
        Some((line, column)) => format!("line {line}, column {column}: {message}"),
        None => message,
    };
    (field, message)
}

/// The text between `prefix` and the next backtick in `message`, if `prefix` occurs.
fn quoted_after(message: &str, prefix: &str) -> Option<String> {
    let rest = &message[message.find(prefix)? + prefix.len()..];
    let end = rest.find('`')?;
    Some(rest[..end].to_owned())
}

/// The top-level key whose `key = value` text covers byte `offset`.
fn key_at(keys: &[(String, Range<usize>)], offset: usize) -> Option<String> {
    keys.iter()
        .find(|(key, range)| {
            !key.is_empty() && range.start <= offset && offset < range.end.max(range.start + 1)
        })
        .map(|(key, _)| key.clone())
}

/// The bare key at the start of the line holding byte `offset`, for syntax errors after
/// which the parser could not recover the key itself (`temperature = 0.5.3`).
fn key_on_line(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text.get(line_start..)?.lines().next()?.trim_start();
    let key_len = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(line.len());
    let (key, rest) = line.split_at(key_len);
    (!key.is_empty() && rest.trim_start().starts_with('=')).then(|| key.to_owned())
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> Option<(usize, usize)> {
    let before = text.get(..offset)?;
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..)?.chars().count() + 1;
    Some((line, column))
}

/// `^[a-z0-9][a-z0-9-]{0,63}$`
pub(crate) fn is_valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id.len() <= MAX_ID_LEN
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// `^[a-z][a-z0-9_]{0,63}$`
fn is_valid_capability(capability: &str) -> bool {
    let mut chars = capability.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && capability.len() <= MAX_CAPABILITY_LEN
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const GOOD: &str = r#"
id = "good-agent"
name = "Good Agent"
category = "development"
role = "worker"
capabilities = ["code_generation", "code_review"]
system_prompt = "You write code. Answer concisely."
temperature = 0.3
max_concurrency = 4
"#;

    fn path() -> PathBuf {
        PathBuf::from("agents/good-agent.toml")
    }

    fn good_spec() -> AgentSpec {
        parse_agent_file(&path(), GOOD).expect("the reference file parses")
    }

    /// The reference file with the line starting `key =` replaced by `line`.
    fn with_line(key: &str, line: &str) -> String {
        GOOD.lines()
            .map(|l| {
                if l.starts_with(&format!("{key} =")) {
                    line
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn parse_err(text: &str) -> AgentFileError {
        parse_agent_file(&path(), text).expect_err("the file must be rejected")
    }

    #[test]
    fn parses_a_good_file() {
        let spec = good_spec();
        assert_eq!(spec.id, "good-agent");
        assert_eq!(spec.capabilities, ["code_generation", "code_review"]);
        assert_eq!(spec.temperature, 0.3);
        assert_eq!(spec.max_concurrency, 4);
        assert_eq!(spec.model, None);
    }

    #[test]
    fn defaults_apply_to_omitted_optional_fields() {
        let text = GOOD
            .lines()
            .filter(|l| !l.starts_with("temperature") && !l.starts_with("max_concurrency"))
            .collect::<Vec<_>>()
            .join("\n");
        let spec = parse_agent_file(&path(), &text).expect("optional fields may be omitted");
        assert_eq!(spec.temperature, 0.2);
        assert_eq!(spec.max_concurrency, 4);
    }

    #[test]
    fn id_rules() {
        for ok in ["a", "0", "senior-ai-engineer", "x1-2", &"a".repeat(64)] {
            assert!(is_valid_id(ok), "{ok} should be valid");
        }
        for bad in ["", "-a", "A", "a_b", "a b", "é", &"a".repeat(65)] {
            assert!(!is_valid_id(bad), "{bad} should be invalid");
        }
    }

    #[test]
    fn capability_rules() {
        for ok in ["a", "code_generation", "x1", &"a".repeat(64)] {
            assert!(is_valid_capability(ok), "{ok} should be valid");
        }
        for bad in ["", "1a", "_a", "Code", "code-generation", &"a".repeat(65)] {
            assert!(!is_valid_capability(bad), "{bad} should be invalid");
        }
    }

    /// A change that makes the reference spec invalid.
    type Mutation = Box<dyn Fn(&mut AgentSpec)>;

    #[test]
    fn validate_names_the_offending_field() {
        let base = good_spec();
        let cases: Vec<(&str, Mutation)> = vec![
            ("id", Box::new(|s| s.id = "Bad_Id".to_owned())),
            ("name", Box::new(|s| s.name = "  ".to_owned())),
            ("capabilities", Box::new(|s| s.capabilities.clear())),
            (
                "capabilities",
                Box::new(|s| s.capabilities.push("Code-Gen".to_owned())),
            ),
            (
                "capabilities",
                Box::new(|s| s.capabilities.push("code_review".to_owned())),
            ),
            ("system_prompt", Box::new(|s| s.system_prompt.clear())),
            (
                "system_prompt",
                Box::new(|s| s.system_prompt = "x".repeat(MAX_SYSTEM_PROMPT_CHARS + 1)),
            ),
            ("temperature", Box::new(|s| s.temperature = 2.5)),
            ("temperature", Box::new(|s| s.temperature = -0.1)),
            ("temperature", Box::new(|s| s.temperature = f32::NAN)),
            ("max_concurrency", Box::new(|s| s.max_concurrency = 0)),
            (
                "max_concurrency",
                Box::new(|s| s.max_concurrency = MAX_CONCURRENCY + 1),
            ),
            ("model", Box::new(|s| s.model = Some(String::new()))),
            ("provider", Box::new(|s| s.provider = Some(" ".to_owned()))),
        ];
        for (field, mutate) in cases {
            let mut spec = base.clone();
            mutate(&mut spec);
            let (got, message) = validate(&spec).expect_err("the spec must be rejected");
            assert_eq!(got, field, "wrong field for: {message}");
        }
        let mut at_limit = base;
        at_limit.system_prompt = "é".repeat(MAX_SYSTEM_PROMPT_CHARS);
        at_limit.temperature = 2.0;
        at_limit.max_concurrency = MAX_CONCURRENCY;
        at_limit.model = Some("qwen2.5:0.5b".to_owned());
        assert_eq!(validate(&at_limit), Ok(()));
    }

    #[test]
    fn out_of_range_temperature_reads_well() {
        let err = parse_err(&with_line("temperature", "temperature = 3.5"));
        assert_eq!(
            err.to_string(),
            "agents/good-agent.toml: field `temperature`: must be between 0.0 and 2.0, got 3.5"
        );
    }

    #[test]
    fn id_must_match_file_stem() {
        let err = parse_agent_file(Path::new("agents/other.toml"), GOOD)
            .expect_err("id and file name disagree");
        assert_eq!(err.field.as_deref(), Some("id"));
        assert!(err.message.contains("good-agent"), "{}", err.message);
    }

    #[test]
    fn syntax_error_names_key_and_line() {
        let err = parse_err(&with_line("temperature", "temperature = 0.5.3"));
        assert_eq!(err.field.as_deref(), Some("temperature"));
        assert!(
            err.message.starts_with("line 8, column "),
            "{}",
            err.message
        );
    }

    #[test]
    fn syntax_error_outside_a_key_has_no_field_but_a_line() {
        let err = parse_err(&format!("{GOOD}\n[[[\n"));
        assert_eq!(err.field, None, "{err}");
        assert!(
            err.message.starts_with("line 11, column "),
            "{}",
            err.message
        );
    }

    #[test]
    fn wrong_type_names_key_and_line() {
        let err = parse_err(&with_line("max_concurrency", "max_concurrency = \"four\""));
        assert_eq!(err.field.as_deref(), Some("max_concurrency"), "{err}");
        assert!(
            err.message.starts_with("line 9, column "),
            "{}",
            err.message
        );

        let err = parse_err(&with_line("role", "role = \"boss\""));
        assert_eq!(err.field.as_deref(), Some("role"), "{err}");
        assert!(
            err.message.starts_with("line 5, column "),
            "{}",
            err.message
        );
    }

    #[test]
    fn unknown_field_is_named() {
        let err = parse_err(&format!("{GOOD}colour = \"blue\"\n"));
        assert_eq!(err.field.as_deref(), Some("colour"), "{err}");
        assert!(
            err.message.starts_with("line 10, column 1: "),
            "{}",
            err.message
        );
        assert!(err.message.contains("unknown field"), "{}", err.message);
    }

    #[test]
    fn missing_field_is_named() {
        let text = GOOD
            .lines()
            .filter(|l| !l.starts_with("system_prompt"))
            .collect::<Vec<_>>()
            .join("\n");
        let err = parse_err(&text);
        assert_eq!(err.field.as_deref(), Some("system_prompt"), "{err}");
        assert!(err.message.contains("missing field"), "{}", err.message);
    }

    #[test]
    fn duplicate_key_is_named() {
        let err = parse_err(&format!("{GOOD}name = \"Again\"\n"));
        assert_eq!(err.field.as_deref(), Some("name"), "{err}");
        assert!(
            err.message.starts_with("line 10, column 1: "),
            "{}",
            err.message
        );
    }

    #[test]
    fn empty_file_is_rejected() {
        let err = parse_err("");
        assert!(err.field.is_some(), "a missing field is named: {err}");
    }

    #[test]
    fn helpers_do_not_panic_off_char_boundaries() {
        let text = "é = 1";
        assert_eq!(line_column(text, 1), None);
        assert_eq!(key_on_line(text, 1), None);
        assert_eq!(line_column(text, 100), None);
        assert_eq!(line_column("a\nbc", 3), Some((2, 2)));
        assert_eq!(
            key_on_line("x = 1\n  temperature = 0.5.3", 20),
            Some("temperature".to_owned())
        );
    }
}
