//! Who may call the SutazAI API, and what they did: the authentication, authorisation and
//! audit core behind `ENABLE_AUTH` (issue 7). No HTTP here; the API crate maps these types
//! onto headers, routes and `{code, message}` answers.
//!
//! - [`Role`]: viewer < operator < admin; a route needs one, a caller has one.
//! - [`Tokens`]: JWT access and refresh tokens (HS256 with `JWT_SECRET_KEY`, access
//!   lifetime `SESSION_TIMEOUT`), refresh with rotation.
//! - [`Credentials`]: API keys (stored as SHA-256 hashes, shown once at creation) and
//!   revoked token ids, in `auth.sqlite3`; an in-memory view answers every request without
//!   touching SQLite, and [`Credentials::watch`] picks up changes another process (the CLI)
//!   committed.
//! - [`Auth`]: both together — [`Auth::authenticate`] turns a bearer credential into a
//!   [`Principal`].
//! - [`AuditLog`]: every mutating call and every refused one, appended by one writer thread
//!   to a SHA-256 hash chain that [`AuditLog::verify`] (or [`verify_chain`]) re-computes.
//! - [`secret`]: the JWT secret from the settings or a generated 0600 file.
//!
//! Invariants: a key's plaintext exists only in the answer that created it; the store and
//! the secret file are created 0600; a revoked key also invalidates the sessions opened
//! with it; an audit entry's hash covers its predecessor's, so editing or deleting a row
//! breaks every later link.

mod audit;
mod credentials;
mod error;
mod role;
mod schema;
pub mod secret;
mod tokens;

use std::sync::Arc;

pub use audit::{AuditEntry, AuditLog, AuditPage, AuditRecord, ChainReport, Outcome, verify_chain};
pub use credentials::{ApiKey, Credentials, NewApiKey, validate_key_name};
pub use error::AuthError;
pub use role::Role;
pub use tokens::{Claims, TokenKind, TokenPair, Tokens, weak_secret};

/// Who made a request, as established by [`Auth::authenticate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `key:<name>` for API keys and sessions opened with one; what a minted token names.
    pub subject: String,
    pub role: Role,
    pub via: Via,
}

/// How a [`Principal`] proved itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// An access token; `expires_at` in seconds since the epoch.
    Jwt {
        jti: String,
        expires_at: i64,
        key_id: Option<String>,
    },
    ApiKey {
        id: String,
    },
}

impl Via {
    pub fn as_str(&self) -> &'static str {
        match self {
            Via::Jwt { .. } => "jwt",
            Via::ApiKey { .. } => "api_key",
        }
    }
}

/// Tokens and credentials together: what a server with authentication on holds.
#[derive(Debug, Clone)]
pub struct Auth {
    pub tokens: Arc<Tokens>,
    pub credentials: Credentials,
}

impl Auth {
    pub fn new(tokens: Tokens, credentials: Credentials) -> Auth {
        Auth {
            tokens: Arc::new(tokens),
            credentials,
        }
    }

    /// A bearer credential (an API key `szk_…` or an access token) to the caller it
    /// names. Never touches SQLite.
    pub fn authenticate(&self, bearer: &str) -> Result<Principal, AuthError> {
        let bearer = bearer.trim();
        if bearer.is_empty() {
            return Err(AuthError::Missing);
        }
        if credentials::looks_like_key(bearer) {
            let key = self.credentials.lookup(bearer)?;
            return Ok(Principal {
                subject: format!("key:{}", key.name),
                role: key.role,
                via: Via::ApiKey { id: key.id },
            });
        }
        let claims = self.tokens.verify(bearer, TokenKind::Access)?;
        self.check_not_revoked(&claims)?;
        Ok(Principal {
            subject: claims.sub,
            role: claims.role,
            via: Via::Jwt {
                jti: claims.jti,
                expires_at: claims.exp,
                key_id: claims.kid,
            },
        })
    }

    /// Exchanges an API key for a session: an access and a refresh token naming the key.
    pub fn open_session(&self, api_key: &str) -> Result<TokenPair, AuthError> {
        if !credentials::looks_like_key(api_key.trim()) {
            return Err(AuthError::BadCredentials);
        }
        let key = self
            .credentials
            .lookup(api_key.trim())
            .map_err(|_| AuthError::BadCredentials)?;
        self.tokens
            .issue(&format!("key:{}", key.name), key.role, Some(&key.id))
    }

    /// A refresh token for a new pair; the old refresh token is revoked (rotation), so a
    /// stolen one works at most once. Blocking (writes the revocation).
    pub fn refresh(&self, refresh_token: &str) -> Result<TokenPair, AuthError> {
        let claims = self
            .tokens
            .verify(refresh_token.trim(), TokenKind::Refresh)?;
        self.check_not_revoked(&claims)?;
        // The insert decides: of two refreshes racing with one token, only the one whose
        // revocation was new gets a pair.
        if !self.credentials.revoke_token(&claims.jti, claims.exp)? {
            return Err(AuthError::Revoked);
        }
        self.tokens
            .issue(&claims.sub, claims.role, claims.kid.as_deref())
    }

    /// Revokes a token (access or refresh) this server signed; `Ok(false)` when it was
    /// already revoked. Expired tokens need no revocation and count as done. Blocking.
    pub fn revoke(&self, token: &str) -> Result<bool, AuthError> {
        let claims = match self.tokens.verify_any(token.trim()) {
            Ok(claims) => claims,
            Err(AuthError::Expired) => return Ok(false),
            Err(e) => return Err(e),
        };
        self.credentials.revoke_token(&claims.jti, claims.exp)
    }

    /// Whether a caller established earlier may still act: its token not expired or
    /// revoked, its key not revoked. For long-lived connections (WebSockets), checked
    /// now and then. Never touches SQLite.
    pub fn still_valid(&self, principal: &Principal) -> bool {
        match &principal.via {
            Via::ApiKey { id } => self.credentials.is_key_active(id),
            Via::Jwt {
                jti,
                expires_at,
                key_id,
            } => {
                chrono::Utc::now().timestamp() < *expires_at
                    && !self.credentials.is_token_revoked(jti)
                    && key_id
                        .as_ref()
                        .is_none_or(|k| self.credentials.is_key_active(k))
            }
        }
    }

    fn check_not_revoked(&self, claims: &Claims) -> Result<(), AuthError> {
        if self.credentials.is_token_revoked(&claims.jti) {
            return Err(AuthError::Revoked);
        }
        if let Some(kid) = &claims.kid
            && !self.credentials.is_key_active(kid)
        {
            return Err(AuthError::Revoked);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_refresh_token_is_good_for_one_refresh_even_when_raced() {
        let dir = tempfile::tempdir().unwrap();
        let credentials = Credentials::open(&dir.path().join("auth.sqlite3")).unwrap();
        let key = credentials.create_key("ci", Role::Operator).unwrap();
        let tokens =
            Tokens::new(&[9; 32], Duration::from_secs(60), Duration::from_secs(600)).unwrap();
        let auth = Auth::new(tokens, credentials);
        let pair = auth.open_session(&key.key).unwrap();
        let barrier = std::sync::Barrier::new(8);
        let wins = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        auth.refresh(&pair.refresh_token).is_ok()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(|ok| *ok)
                .count()
        });
        assert_eq!(wins, 1, "exactly one of 8 concurrent refreshes may succeed");
        assert!(matches!(
            auth.refresh(&pair.refresh_token),
            Err(AuthError::Revoked)
        ));
    }
}
