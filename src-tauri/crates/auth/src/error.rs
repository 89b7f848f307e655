//! The one error type of this crate; the API maps each variant to a status and a `code`.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum AuthError {
    /// No credential was sent.
    #[error(
        "authentication required: send `Authorization: Bearer <token or API key>` (or `X-API-Key`)"
    )]
    Missing,
    /// A token this server signed, past its expiry.
    #[error("the token has expired: refresh it (POST /auth/refresh) or sign in again")]
    Expired,
    /// Not a token this server signed, or a malformed one.
    #[error("the token is not valid: {0}")]
    InvalidToken(String),
    /// A revoked token, or a session opened with a revoked API key.
    #[error("the token has been revoked")]
    Revoked,
    /// An unknown or revoked API key.
    #[error("the API key is not valid (unknown or revoked)")]
    BadCredentials,
    /// Bad input to a management call (key name, role, lifetime), naming the field.
    #[error("{field}: {why}")]
    Invalid { field: &'static str, why: String },
    #[error("no API key with id `{0}`")]
    KeyNotFound(String),
    /// The JWT secret is missing, unreadable or too weak.
    #[error("{0}")]
    Secret(String),
    #[error("auth store: {0}")]
    Store(#[from] rusqlite::Error),
    #[error("auth store schema: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    #[error("auth store file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Signing failed (cannot happen with HS256 and a valid key; kept rather than panic).
    #[error("signing a token: {0}")]
    Signing(String),
    /// The audit writer stopped (disk error at start, or after shutdown).
    #[error("the audit log is closed")]
    AuditClosed,
}

impl AuthError {
    /// The `code` clients see.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "unauthorized",
            AuthError::Expired => "token_expired",
            AuthError::InvalidToken(_) => "invalid_token",
            AuthError::Revoked => "token_revoked",
            AuthError::BadCredentials => "invalid_credentials",
            AuthError::Invalid { .. } => "invalid_request",
            AuthError::KeyNotFound(_) => "key_not_found",
            AuthError::Secret(_)
            | AuthError::Store(_)
            | AuthError::Migration(_)
            | AuthError::Io { .. }
            | AuthError::Signing(_)
            | AuthError::AuditClosed => "auth_store_error",
        }
    }
}
