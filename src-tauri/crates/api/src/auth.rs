//! Authentication, roles and audit at the HTTP boundary (issue 7).
//!
//! [`guard`] runs on every matched route: it finds the route's [`Access`] in [`policy`],
//! establishes the caller from `Authorization: Bearer <token or API key>`, `X-API-Key`, or
//! (WebSockets only, browsers cannot set headers there) `?access_token=`, refuses with 401
//! or 403 `{code, message}`, and records mutating calls and refusals in the audit log. The
//! `/auth/*` and `/audit*` handlers are here too. With authentication off every caller is
//! the local admin, and the audit log still records what they change.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sutazai_auth::{
    AuditLog, AuditRecord, Auth, AuthError, Credentials, Outcome, Principal, Role, Via,
};
use utoipa::ToSchema;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};

/// Authentication, audit and rate limiting for one server.
#[derive(Debug, Clone)]
pub struct Security {
    /// `None`: authentication is off.
    pub auth: Option<Auth>,
    /// API keys (managed even while authentication is off, to prepare turning it on).
    pub credentials: Credentials,
    pub audit: AuditLog,
    /// `None`: no rate limit.
    pub rate_limit: Option<Arc<RateLimit>>,
}

/// Requests per second per client address (a GCRA bucket each, bursts of twice the rate),
/// checked before anything else, so a flood — signed in or not — costs a lookup.
#[derive(Debug)]
pub struct RateLimit {
    limiter: governor::DefaultKeyedRateLimiter<std::net::IpAddr>,
    per_second: u32,
}

impl RateLimit {
    pub fn new(per_second: std::num::NonZeroU32) -> RateLimit {
        let burst = per_second.saturating_mul(std::num::NonZeroU32::MIN.saturating_add(1));
        RateLimit {
            limiter: governor::RateLimiter::keyed(
                governor::Quota::per_second(per_second).allow_burst(burst),
            ),
            per_second: per_second.get(),
        }
    }

    /// `Err(seconds to wait)` when `client` is over its rate. IPv6 clients count by their
    /// /64 (one host commonly holds a whole /64 and could rotate through it).
    fn check(&self, client: std::net::IpAddr) -> Result<(), u64> {
        use governor::clock::Clock as _;
        let key = match client {
            std::net::IpAddr::V6(v6) => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                std::net::IpAddr::V6(std::net::Ipv6Addr::from(bits))
            }
            v4 => v4,
        };
        self.limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }

    /// Forgets clients whose bucket is full again (call now and then: memory stays bounded
    /// by the clients of the last moments).
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: liveness, the API description, signing in.
    Public,
    /// A caller with at least this role.
    Role(Role),
}

/// The one table of who may call what, by method and route template. Reads are for
/// viewers, except configuration, keys and the audit log (admins); tasks, agents, messages,
/// infrastructure, orchestration control, alert acknowledgement and model pulls are for
/// operators; everything else (settings, alert rules, keys) and any route not named here
/// is for admins.
pub fn policy(method: &Method, route: &str) -> Access {
    const ADMIN_READS: &[&str] = &["/settings", "/auth/keys", "/audit", "/audit/verify"];
    const OPERATOR_WRITES: &[&str] = &[
        "/agents",
        "/tasks",
        "/messages/",
        "/infrastructure/",
        "/orchestration/",
        "/models/pull",
    ];
    match (method, route) {
        (_, "/health") | (&Method::GET, "/openapi.json") => Access::Public,
        (&Method::POST, "/auth/token" | "/auth/refresh") => Access::Public,
        (&Method::GET | &Method::HEAD, r) if ADMIN_READS.contains(&r) => Access::Role(Role::Admin),
        (&Method::GET | &Method::HEAD, _) => Access::Role(Role::Viewer),
        (&Method::POST, "/auth/revoke") => Access::Role(Role::Viewer),
        (&Method::POST, "/alerts/{id}/acknowledge") => Access::Role(Role::Operator),
        (_, r) if OPERATOR_WRITES.iter().any(|p| r.starts_with(p)) => Access::Role(Role::Operator),
        _ => Access::Role(Role::Admin),
    }
}

/// The caller of a request, in its extensions once [`guard`] let it through; `None`
/// principal: authentication is off (the local admin).
#[derive(Debug, Clone)]
pub struct Caller(pub Option<Principal>);

impl Caller {
    fn subject(&self) -> &str {
        self.0.as_ref().map_or("local", |p| p.subject.as_str())
    }

    fn role(&self) -> Role {
        self.0.as_ref().map_or(Role::Admin, |p| p.role)
    }
}

/// Set on a response by a handler that established who the caller is (sign-in), for the
/// audit entry.
#[derive(Debug, Clone)]
struct AuditActor(String, Role);

fn mutating(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The middleware. See the module documentation.
pub(crate) async fn guard(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(security) = state.security.clone() else {
        request.extensions_mut().insert(Caller(None));
        return next.run(request).await;
    };
    // Nothing is allocated here for a request that is neither refused nor audited (the
    // common read): the route is a shared string, the URI a cheap clone, the peer a copy.
    let method = request.method().clone();
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("", MatchedPath::as_str);
    let uri = request.uri().clone();
    let peer_addr = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    if let (Some(limit), Some(addr)) = (&security.rate_limit, peer_addr)
        && let Err(wait) = limit.check(addr.ip())
    {
        let error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "more than {} requests per second from {}: slow down (SUTAZAI_RATE_LIMIT)",
                limit.per_second,
                addr.ip()
            ),
        )
        .with_retry_after(wait.max(1));
        // Not audited: a flood would otherwise become a flood of audit writes. The
        // requests it lets through are.
        tracing::debug!(client = %addr.ip(), "rate limited");
        return error.into_response();
    }
    let access = policy(&method, route);
    let caller = match authorize(&security, access, &request) {
        Ok(caller) => caller,
        Err(refusal) => {
            security.audit.record(AuditRecord {
                at: chrono::Utc::now(),
                actor: refusal
                    .actor
                    .clone()
                    .unwrap_or_else(|| "anonymous".to_owned()),
                role: refusal.role,
                method: method.to_string(),
                path: uri.path().to_owned(),
                status: refusal.error.status.as_u16(),
                peer: peer_addr.map(|a| a.to_string()),
                outcome: Outcome::Denied,
                detail: Some(refusal.error.code.to_owned()),
            });
            return refusal.into_response();
        }
    };
    request.extensions_mut().insert(caller.clone());
    let response = next.run(request).await;
    let status = response.status().as_u16();
    if mutating(&method) || matches!(status, 401 | 403) {
        let (actor, role) = match response.extensions().get::<AuditActor>() {
            Some(AuditActor(actor, role)) => (actor.clone(), Some(*role)),
            None if access == Access::Public && caller.0.is_none() && security.auth.is_some() => {
                ("anonymous".to_owned(), None)
            }
            None => (caller.subject().to_owned(), Some(caller.role())),
        };
        let detail = (status >= 400).then(|| format!("HTTP {status}"));
        security.audit.record(AuditRecord {
            at: chrono::Utc::now(),
            actor,
            role,
            method: method.to_string(),
            path: uri.path().to_owned(),
            status,
            peer: peer_addr.map(|a| a.to_string()),
            outcome: Outcome::of_status(status),
            detail,
        });
    }
    response
}

struct Refusal {
    error: ApiError,
    actor: Option<String>,
    role: Option<Role>,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let challenge = match self.error.code {
            "unauthorized" => Some(r#"Bearer realm="sutazai""#),
            "invalid_token" | "token_expired" | "token_revoked" | "invalid_credentials" => {
                Some(r#"Bearer realm="sutazai", error="invalid_token""#)
            }
            _ => None,
        };
        let mut response = self.error.into_response();
        if let Some(challenge) = challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

fn authorize(security: &Security, access: Access, request: &Request) -> Result<Caller, Refusal> {
    let Some(auth) = &security.auth else {
        return Ok(Caller(None));
    };
    let needed = match access {
        // Public routes act the same for everyone: no token is checked (sign-in names its
        // caller in the audit entry itself).
        Access::Public => return Ok(Caller(None)),
        Access::Role(role) => role,
    };
    let credential = credential(request.headers(), request.uri());
    let Some(credential) = credential else {
        return Err(Refusal {
            error: auth_error(AuthError::Missing),
            actor: None,
            role: None,
        });
    };
    let principal = auth.authenticate(&credential).map_err(|e| Refusal {
        error: auth_error(e),
        actor: None,
        role: None,
    })?;
    if !principal.role.allows(needed) {
        return Err(Refusal {
            error: ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "{} {} needs the {needed} role; {} has the {} role",
                    request.method(),
                    request.uri().path(),
                    principal.subject,
                    principal.role
                ),
            ),
            actor: Some(principal.subject),
            role: Some(principal.role),
        });
    }
    Ok(Caller(Some(principal)))
}

/// The bearer credential of a request: `Authorization: Bearer …`, else `X-API-Key`, else
/// for WebSocket routes the `access_token` query parameter.
fn credential(headers: &HeaderMap, uri: &axum::http::Uri) -> Option<String> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let value = value.trim();
        // Another scheme, or none, counts as an empty credential: refused as missing.
        let token = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map_or("", |(_, token)| token.trim());
        return Some(token.to_owned());
    }
    if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(key.trim().to_owned());
    }
    if uri.path() == "/ws" || uri.path().starts_with("/ws/") {
        return uri.query().and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "access_token")
                .map(|(_, v)| v.into_owned())
        });
    }
    None
}

/// An [`AuthError`] as an answer: 401 for credential problems, 404/422 for management
/// input, 500 for the store.
pub(crate) fn auth_error(e: AuthError) -> ApiError {
    let status = match &e {
        AuthError::Missing
        | AuthError::Expired
        | AuthError::InvalidToken(_)
        | AuthError::Revoked
        | AuthError::BadCredentials => StatusCode::UNAUTHORIZED,
        AuthError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        AuthError::KeyNotFound(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let message = match &e {
        AuthError::Invalid { field, why } => format!("invalid `{field}`: {why}"),
        // Store and file errors name paths and SQL: the log gets them, the client does not.
        _ if status == StatusCode::INTERNAL_SERVER_ERROR => {
            tracing::error!(error = %e, code = e.code(), "credential store or audit log failed");
            "the credential store or audit log failed; the server log has the details".into()
        }
        _ => e.to_string(),
    };
    ApiError::new(status, e.code(), message)
}

fn security(state: &AppState) -> Result<Arc<Security>, ApiError> {
    state.security.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "auth_store_off",
            "this server keeps no credential store or audit log",
        )
    })
}

fn enabled(state: &AppState) -> Result<(Arc<Security>, Auth), ApiError> {
    let security = security(state)?;
    let auth = security.auth.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "auth_disabled",
            "authentication is off on this server (ENABLE_AUTH is not true and it listens on \
             loopback only): no sign-in is needed",
        )
    })?;
    Ok((security, auth))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, AuthError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                format!("auth store task: {e}"),
            )
        })?
        .map_err(auth_error)
}

/// Body of `POST /auth/token`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// An API key (`szk_…`).
    #[schema(max_length = 4096)]
    pub api_key: String,
}

/// Body of `POST /auth/refresh`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Refresh {
    #[schema(max_length = 4096)]
    pub refresh_token: String,
}

/// Body of `POST /auth/revoke`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Revoke {
    /// Another token to revoke with the caller's own (typically the refresh token).
    #[serde(default)]
    #[schema(max_length = 4096)]
    pub token: Option<String>,
}

/// A session: access and refresh tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenAnswer {
    pub access_token: String,
    pub refresh_token: String,
    /// `Bearer`.
    pub token_type: String,
    /// Seconds the access token lives (`SESSION_TIMEOUT`).
    pub expires_in: u64,
    pub refresh_expires_in: u64,
    /// `admin`, `operator` or `viewer`.
    pub role: String,
    pub subject: String,
}

impl From<sutazai_auth::TokenPair> for TokenAnswer {
    fn from(p: sutazai_auth::TokenPair) -> Self {
        TokenAnswer {
            access_token: p.access_token,
            refresh_token: p.refresh_token,
            token_type: p.token_type,
            expires_in: p.expires_in,
            refresh_expires_in: p.refresh_expires_in,
            role: p.role.to_string(),
            subject: p.subject,
        }
    }
}

/// Longest credential accepted in a body; longer is not one of ours.
const MAX_TOKEN_CHARS: usize = 4096;

fn check_len(field: &'static str, value: &str) -> Result<(), ApiError> {
    if value.chars().count() > MAX_TOKEN_CHARS {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            format!("invalid `{field}`: longer than {MAX_TOKEN_CHARS} characters"),
        ));
    }
    Ok(())
}

fn with_actor(answer: TokenAnswer) -> Response {
    let actor = AuditActor(
        answer.subject.clone(),
        answer.role.parse().unwrap_or(Role::Viewer),
    );
    let mut response = Json(answer).into_response();
    response.extensions_mut().insert(actor);
    response
}

/// `POST /auth/token`: an API key for a session (access token for `SESSION_TIMEOUT`, and
/// a refresh token). 401 `invalid_credentials`; 409 `auth_disabled` when auth is off.
#[utoipa::path(post, path = "/auth/token", request_body = SignIn,
    responses((status = 200, body = TokenAnswer), (status = 401, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub(crate) async fn sign_in(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SignIn>,
) -> Result<Response, ApiError> {
    check_len("api_key", &body.api_key)?;
    let (_, auth) = enabled(&state)?;
    let pair = auth.open_session(&body.api_key).map_err(auth_error)?;
    Ok(with_actor(pair.into()))
}

/// `POST /auth/refresh`: a refresh token for a new pair; the old refresh token stops
/// working (rotation). 401 when it expired or was revoked.
#[utoipa::path(post, path = "/auth/refresh", request_body = Refresh,
    responses((status = 200, body = TokenAnswer), (status = 401, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Refresh>,
) -> Result<Response, ApiError> {
    check_len("refresh_token", &body.refresh_token)?;
    let (_, auth) = enabled(&state)?;
    let pair = blocking(move || auth.refresh(&body.refresh_token)).await?;
    Ok(with_actor(pair.into()))
}

/// `POST /auth/revoke`: revokes the caller's access token (sign-out) and `token` when
/// given. Answers how many were newly revoked. The body is optional.
#[utoipa::path(post, path = "/auth/revoke", request_body(content = Option<Revoke>, description = "Optional: a bare POST signs the caller out"),
    responses((status = 200, description = "`{revoked: n}`"), (status = 401, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    // The body is optional: a bare POST (or `null`) signs the caller out.
    let body: Revoke = if body.iter().all(u8::is_ascii_whitespace) {
        Revoke::default()
    } else {
        crate::extract::from_slice::<Option<Revoke>>(&body)?.unwrap_or_default()
    };
    if let Some(token) = &body.token {
        check_len("token", token)?;
    }
    let (security, auth) = enabled(&state)?;
    let own = match caller.0.map(|p| p.via) {
        Some(Via::Jwt {
            jti, expires_at, ..
        }) => Some((jti, expires_at)),
        _ => None,
    };
    let revoked = blocking(move || {
        let mut n = 0u32;
        if let Some((jti, exp)) = own {
            n += u32::from(security.credentials.revoke_token(&jti, exp)?);
        }
        if let Some(token) = body.token {
            n += u32::from(auth.revoke(&token)?);
        }
        Ok(n)
    })
    .await?;
    Ok(Json(serde_json::json!({ "revoked": revoked })))
}

/// `GET /auth/whoami`: whether authentication is on, and who the caller is.
#[utoipa::path(get, path = "/auth/whoami",
    responses((status = 200, description = "`{auth_enabled, subject, role, via, expires_at}`"), (status = 401, body = crate::error::ErrorBody)))]
pub(crate) async fn whoami(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Json<serde_json::Value> {
    let auth_enabled = state.security.as_ref().is_some_and(|s| s.auth.is_some());
    let (via, expires_at) = match caller.0.as_ref().map(|p| &p.via) {
        Some(Via::Jwt { expires_at, .. }) => (
            "jwt",
            chrono::DateTime::from_timestamp(*expires_at, 0).map(|t| t.to_rfc3339()),
        ),
        Some(v @ Via::ApiKey { .. }) => (v.as_str(), None),
        None => ("none", None),
    };
    Json(serde_json::json!({
        "auth_enabled": auth_enabled,
        "subject": caller.subject(),
        "role": caller.role(),
        "via": via,
        "expires_at": expires_at,
    }))
}

/// Body of `POST /auth/keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// 1–64 characters: ASCII letters, digits, `-`, `_`, `.`, spaces (surrounding spaces
    /// are trimmed); unique among active keys.
    #[schema(pattern = r"^[A-Za-z0-9._-]([A-Za-z0-9._ -]{0,62}[A-Za-z0-9._-])?$")]
    pub name: String,
    /// `admin`, `operator` or `viewer`.
    #[schema(schema_with = role_schema)]
    pub role: String,
}

fn role_schema() -> utoipa::openapi::Object {
    crate::openapi::string_enum(&Role::ALL.map(Role::as_str))
}

/// `GET /auth/keys`: every API key (never its secret), newest first.
#[utoipa::path(get, path = "/auth/keys",
    responses((status = 200, description = "`{keys: [{id, name, role, prefix, created_at, last_used_at, revoked_at}]}`"), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub(crate) async fn list_keys(
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let security = security(&state)?;
    let keys = blocking(move || security.credentials.list_keys()).await?;
    Ok(Json(serde_json::json!({ "keys": keys })))
}

/// `POST /auth/keys`: creates a key; its secret (`key`) is in this answer only.
#[utoipa::path(post, path = "/auth/keys", request_body = NewKey,
    responses((status = 201, description = "`{id, name, role, prefix, created_at, key}`"), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub(crate) async fn create_key(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewKey>,
) -> Result<(StatusCode, Json<sutazai_auth::NewApiKey>), ApiError> {
    let role: Role = body.role.parse().map_err(|why: String| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            format!("invalid `role`: {why}"),
        )
    })?;
    let security = security(&state)?;
    let key = blocking(move || security.credentials.create_key(&body.name, role)).await?;
    Ok((StatusCode::CREATED, Json(key)))
}

/// `DELETE /auth/keys/{id}`: revokes a key and every session opened with it, at once.
#[utoipa::path(delete, path = "/auth/keys/{id}", params(("id" = String, Path, description = "Key id")),
    responses((status = 200, description = "`{id, revoked_at}`"), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let security = security(&state)?;
    let key = blocking(move || security.credentials.revoke_key(&id)).await?;
    Ok(Json(
        serde_json::json!({ "id": key.id, "revoked_at": key.revoked_at }),
    ))
}

/// Query of `GET /audit`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Entries with a smaller `seq` (the previous page's `next_before`).
    #[param(minimum = 1)]
    pub before: Option<i64>,
    /// 1–1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// `GET /audit`: the audit log, newest first.
#[utoipa::path(get, path = "/audit", params(AuditQuery),
    responses((status = 200, description = "`{entries: [{seq, at, actor, role, method, path, status, peer, outcome, detail, hash}], next_before}`"), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub(crate) async fn audit(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<sutazai_auth::AuditPage>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    // 400 `invalid_query`, as every list's out-of-range parameters.
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("limit must be between 1 and 1000, got {limit}"),
        ));
    }
    if let Some(before) = query.before.filter(|b| *b < 1) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("before must be a sequence number, 1 or more, got {before}"),
        ));
    }
    let security = security(&state)?;
    security.audit.flush().await.map_err(auth_error)?;
    let page = blocking(move || security.audit.page(query.before, limit)).await?;
    Ok(Json(page))
}

/// `GET /audit/verify`: re-computes the hash chain over the whole log.
#[utoipa::path(get, path = "/audit/verify",
    responses((status = 200, description = "`{ok, entries, first_bad_seq, head_hash}`"), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub(crate) async fn verify_audit(
    State(state): State<AppState>,
) -> Result<Json<sutazai_auth::ChainReport>, ApiError> {
    let security = security(&state)?;
    security.audit.flush().await.map_err(auth_error)?;
    let report = blocking(move || security.audit.verify()).await?;
    Ok(Json(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_table() {
        use Access::*;
        let cases = [
            (Method::GET, "/health", Public),
            (Method::GET, "/openapi.json", Public),
            (Method::POST, "/auth/token", Public),
            (Method::GET, "/agents", Role(sutazai_auth::Role::Viewer)),
            (Method::GET, "/ws", Role(sutazai_auth::Role::Viewer)),
            (Method::GET, "/settings", Role(sutazai_auth::Role::Admin)),
            (Method::GET, "/audit", Role(sutazai_auth::Role::Admin)),
            (Method::POST, "/tasks", Role(sutazai_auth::Role::Operator)),
            (
                Method::DELETE,
                "/agents/{agent_id}",
                Role(sutazai_auth::Role::Operator),
            ),
            (
                Method::POST,
                "/infrastructure/deploy-all",
                Role(sutazai_auth::Role::Operator),
            ),
            (
                Method::POST,
                "/alerts/{id}/acknowledge",
                Role(sutazai_auth::Role::Operator),
            ),
            (
                Method::PUT,
                "/alerts/rules/{id}",
                Role(sutazai_auth::Role::Admin),
            ),
            (Method::PUT, "/settings", Role(sutazai_auth::Role::Admin)),
            (Method::POST, "/auth/keys", Role(sutazai_auth::Role::Admin)),
            (
                Method::POST,
                "/something/new",
                Role(sutazai_auth::Role::Admin),
            ),
        ];
        for (method, route, access) in cases {
            assert_eq!(policy(&method, route), access, "{method} {route}");
        }
    }

    #[test]
    fn credentials_from_headers_and_websocket_queries() {
        let uri = |s: &str| s.parse::<axum::http::Uri>().unwrap();
        let mut headers = HeaderMap::new();
        assert_eq!(credential(&headers, &uri("/agents")), None);
        assert_eq!(
            credential(&headers, &uri("/ws?x=1&access_token=a%2Bb")),
            Some("a+b".to_owned())
        );
        assert_eq!(
            credential(&headers, &uri("/agents?access_token=abc")),
            None,
            "only WebSockets take a query token"
        );
        headers.insert("x-api-key", HeaderValue::from_static("szk_1"));
        assert_eq!(
            credential(&headers, &uri("/agents")),
            Some("szk_1".to_owned())
        );
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer tok"),
        );
        assert_eq!(
            credential(&headers, &uri("/agents")),
            Some("tok".to_owned())
        );
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(
            credential(&headers, &uri("/agents")),
            Some(String::new()),
            "a wrong scheme is no credential"
        );
    }
}
