//! JWT access and refresh tokens: HS256 with the configured secret, issuer `sutazai`, a
//! random id (`jti`) each so one can be revoked, and the key a session came from (`kid`).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::{AuthError, Role};

const ISSUER: &str = "sutazai";

/// Which of the pair a token is; a refresh token is refused where an access token is
/// needed and the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Access,
    Refresh,
}

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub role: Role,
    pub typ: TokenKind,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    /// The API key the session was opened with, if any: revoking the key ends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
}

/// An answer to a sign-in or refresh.
#[derive(Clone, Serialize, Deserialize)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds the access token lives (`SESSION_TIMEOUT`).
    pub expires_in: u64,
    /// Seconds the refresh token lives.
    pub refresh_expires_in: u64,
    pub role: Role,
    pub subject: String,
}

impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The tokens stay out of logs.
        f.debug_struct("TokenPair")
            .field("subject", &self.subject)
            .field("role", &self.role)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// Access tokens verified at most this many at a time in [`Tokens`]' cache.
const VERIFIED_CACHE: usize = 4096;

/// Signs and checks tokens.
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    access_lifetime: Duration,
    refresh_lifetime: Duration,
    /// Access tokens whose signature and issuer were checked, by their exact text: a
    /// client sends the same token on every request until it expires, and this spares
    /// re-checking it (HMAC, base64 and JSON each time). Expiry is checked on every hit;
    /// revocation is the caller's check either way. When full, expired entries are dropped, and all of them if none had expired.
    verified: Mutex<HashMap<String, Claims>>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The keys stay out of logs.
        f.debug_struct("Tokens")
            .field("access_lifetime", &self.access_lifetime)
            .field("refresh_lifetime", &self.refresh_lifetime)
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// Least secret length accepted, in bytes (HS256's key size).
    pub const MIN_SECRET_BYTES: usize = 32;

    /// `secret` is the HMAC key; shorter than [`Tokens::MIN_SECRET_BYTES`] is refused.
    pub fn new(
        secret: &[u8],
        access_lifetime: Duration,
        refresh_lifetime: Duration,
    ) -> Result<Tokens, AuthError> {
        if secret.len() < Self::MIN_SECRET_BYTES {
            return Err(AuthError::Secret(weak_secret(secret.len())));
        }
        if access_lifetime.is_zero() || refresh_lifetime < access_lifetime {
            return Err(AuthError::Invalid {
                field: "session_timeout",
                why: "the access lifetime must be positive and not longer than the refresh \
                      lifetime"
                    .to_owned(),
            });
        }
        Ok(Tokens {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            access_lifetime,
            refresh_lifetime,
            verified: Mutex::new(HashMap::new()),
        })
    }

    pub fn access_lifetime(&self) -> Duration {
        self.access_lifetime
    }

    /// A new access + refresh pair for `subject`.
    pub fn issue(
        &self,
        subject: &str,
        role: Role,
        key_id: Option<&str>,
    ) -> Result<TokenPair, AuthError> {
        let now = chrono::Utc::now().timestamp();
        Ok(TokenPair {
            access_token: self.mint(
                subject,
                role,
                key_id,
                TokenKind::Access,
                now,
                self.access_lifetime,
            )?,
            refresh_token: self.mint(
                subject,
                role,
                key_id,
                TokenKind::Refresh,
                now,
                self.refresh_lifetime,
            )?,
            token_type: "Bearer".to_owned(),
            expires_in: self.access_lifetime.as_secs(),
            refresh_expires_in: self.refresh_lifetime.as_secs(),
            role,
            subject: subject.to_owned(),
        })
    }

    /// One token issued at `issued_at` (seconds since the epoch) living `lifetime`: what
    /// `sutazai auth token` prints, and how tests make an expired one.
    pub fn mint(
        &self,
        subject: &str,
        role: Role,
        key_id: Option<&str>,
        kind: TokenKind,
        issued_at: i64,
        lifetime: Duration,
    ) -> Result<String, AuthError> {
        let lifetime = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 2);
        let claims = Claims {
            iss: ISSUER.to_owned(),
            sub: subject.to_owned(),
            role,
            typ: kind,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            iat: issued_at,
            exp: issued_at.saturating_add(lifetime),
            kid: key_id.map(str::to_owned),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AuthError::Signing(e.to_string()))
    }

    /// Checks signature, issuer, expiry and kind. Revocation is the caller's check.
    pub fn verify(&self, token: &str, kind: TokenKind) -> Result<Claims, AuthError> {
        if kind == TokenKind::Access {
            let cached = self
                .verified
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(token)
                .cloned();
            // At the last second and after, the full check below decides (and says why).
            if let Some(claims) = cached
                && chrono::Utc::now().timestamp() < claims.exp
            {
                return Ok(claims);
            }
        }
        let claims = self.verify_any(token)?;
        if claims.typ == TokenKind::Access && kind == TokenKind::Access {
            let mut verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
            if verified.len() >= VERIFIED_CACHE {
                let now = chrono::Utc::now().timestamp();
                verified.retain(|_, cached| now < cached.exp);
                if verified.len() >= VERIFIED_CACHE {
                    verified.clear();
                }
            }
            verified.insert(token.to_owned(), claims.clone());
        }
        if claims.typ != kind {
            return Err(AuthError::InvalidToken(format!(
                "a {} token was sent where a {} token is needed",
                kind_name(claims.typ),
                kind_name(kind)
            )));
        }
        Ok(claims)
    }

    /// Like [`Tokens::verify`], of either kind.
    pub fn verify_any(&self, token: &str) -> Result<Claims, AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 0;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::InvalidSignature => {
                    AuthError::InvalidToken("the signature does not match".to_owned())
                }
                ErrorKind::InvalidIssuer => {
                    AuthError::InvalidToken("not issued by this server".to_owned())
                }
                ErrorKind::InvalidAlgorithm => {
                    AuthError::InvalidToken("only HS256 tokens are accepted".to_owned())
                }
                _ => AuthError::InvalidToken("not a well-formed JWT".to_owned()),
            })
    }
}

/// Why a configured secret of `len` bytes is refused (the settings check says the same).
pub fn weak_secret(len: usize) -> String {
    format!(
        "JWT_SECRET_KEY is {len} bytes long; it must be at least {} (for example the output \
         of `openssl rand -base64 32`), or unset it to have one generated in the data directory",
        Tokens::MIN_SECRET_BYTES
    )
}

fn kind_name(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::Access => "access",
        TokenKind::Refresh => "refresh",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(&[7; 32], Duration::from_secs(60), Duration::from_secs(600)).unwrap()
    }

    #[test]
    fn a_pair_verifies_as_its_own_kind_only() {
        let t = tokens();
        let pair = t.issue("key:ci", Role::Operator, Some("k1")).unwrap();
        let access = t.verify(&pair.access_token, TokenKind::Access).unwrap();
        assert_eq!(
            (access.sub.as_str(), access.role),
            ("key:ci", Role::Operator)
        );
        assert_eq!(access.kid.as_deref(), Some("k1"));
        assert_eq!(access.exp - access.iat, 60);
        let refresh = t.verify(&pair.refresh_token, TokenKind::Refresh).unwrap();
        assert_eq!(refresh.exp - refresh.iat, 600);
        assert_ne!(access.jti, refresh.jti);
        assert!(matches!(
            t.verify(&pair.refresh_token, TokenKind::Access),
            Err(AuthError::InvalidToken(m)) if m.contains("refresh token was sent")
        ));
    }

    #[test]
    fn expired_forged_and_garbage_tokens_are_refused() {
        let t = tokens();
        let old = chrono::Utc::now().timestamp() - 3600;
        let expired = t
            .mint(
                "x",
                Role::Admin,
                None,
                TokenKind::Access,
                old,
                Duration::from_secs(60),
            )
            .unwrap();
        assert!(matches!(
            t.verify(&expired, TokenKind::Access),
            Err(AuthError::Expired)
        ));
        let other =
            Tokens::new(&[8; 32], Duration::from_secs(60), Duration::from_secs(60)).unwrap();
        let forged = other.issue("x", Role::Admin, None).unwrap().access_token;
        assert!(matches!(
            t.verify(&forged, TokenKind::Access),
            Err(AuthError::InvalidToken(m)) if m.contains("signature")
        ));
        for junk in ["", "abc", "a.b.c", "eyJhbGciOiJub25lIn0.e30."] {
            assert!(
                matches!(
                    t.verify(junk, TokenKind::Access),
                    Err(AuthError::InvalidToken(_))
                ),
                "{junk}"
            );
        }
    }

    /// The cache of verified access tokens never outlives a token's expiry, and only the
    /// exact text that was checked is a hit.
    #[test]
    fn a_cached_token_still_expires_and_a_tampered_one_is_not_a_hit() {
        let t = tokens();
        let now = chrono::Utc::now().timestamp();
        let token = t
            .mint(
                "x",
                Role::Viewer,
                None,
                TokenKind::Access,
                now - 59,
                Duration::from_secs(60),
            )
            .unwrap();
        let claims = t.verify(&token, TokenKind::Access).unwrap();
        assert_eq!(t.verify(&token, TokenKind::Access).unwrap(), claims);
        // Same claims, other signature: checked, refused.
        let (unsigned, _) = token.rsplit_once('.').unwrap();
        let tampered = format!("{unsigned}.{}", "A".repeat(43));
        assert!(matches!(
            t.verify(&tampered, TokenKind::Access),
            Err(AuthError::InvalidToken(_))
        ));
        while chrono::Utc::now().timestamp() <= claims.exp {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(matches!(
            t.verify(&token, TokenKind::Access),
            Err(AuthError::Expired)
        ));
    }

    #[test]
    fn weak_secrets_are_refused() {
        let err = Tokens::new(
            b"your-secret-key",
            Duration::from_secs(1),
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(err.to_string().contains("15 bytes"), "{err}");
    }
}
