//! The one error an agent file can produce, shaped so a user can fix the file from the
//! message alone: it names the file, the field when one is to blame, and what is wrong.

use std::fmt;
use std::path::PathBuf;

/// Why one agent file was rejected.
///
/// A registry load collects these instead of failing, so one broken user file never takes
/// the other agents down; the caller decides whether to log them, show them in the
/// dashboard or refuse to start. Display reads like a compiler diagnostic:
/// `agents/x.toml: field `temperature`: must be between 0.0 and 2.0, got 3.5`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}{}", .path.display(), FieldLabel(.field.as_deref()), .message)]
#[non_exhaustive]
pub struct AgentFileError {
    /// The file at fault, as it was given to the loader (built-ins read `builtin/<id>.toml`),
    /// so the message points at something the user can open.
    pub path: PathBuf,
    /// The top-level key to blame (`temperature`), when the error can be pinned on one;
    /// `None` for problems with the file as a whole (unreadable, not UTF-8, bad syntax
    /// outside any key).
    pub field: Option<String>,
    /// What is wrong, without the path or field; TOML syntax and type errors start with
    /// `line N, column M:` so the user can find the spot.
    pub message: String,
}

impl AgentFileError {
    /// Builds an error; used by the parser and the directory loader alike so every error
    /// carries the same three parts.
    pub fn new(
        path: impl Into<PathBuf>,
        field: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            path: path.into(),
            field,
            message: message.into(),
        }
    }
}

/// Renders the optional ``field `x`: `` part of [`AgentFileError`]'s message.
struct FieldLabel<'a>(Option<&'a str>);

impl fmt::Display for FieldLabel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(field) => write!(f, "field `{field}`: "),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_file_and_field() {
        let err = AgentFileError::new(
            "agents/x.toml",
            Some("temperature".to_owned()),
            "must be between 0.0 and 2.0, got 3.5",
        );
        assert_eq!(
            err.to_string(),
            "agents/x.toml: field `temperature`: must be between 0.0 and 2.0, got 3.5"
        );
    }

    #[test]
    fn display_without_field_names_only_the_file() {
        let err = AgentFileError::new("agents/y.toml", None, "file is not valid UTF-8");
        assert_eq!(err.to_string(), "agents/y.toml: file is not valid UTF-8");
    }
}
