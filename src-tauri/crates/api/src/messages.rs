//! The message-bus routes: sending and broadcasting (through the bus's rate-limited
//! ingress), the dead-letter queue (list, inspect, replay, delete, purge), the processes
//! on the bus (`/workers`) and the bus section of `/status`.
//!
//! Delivery is asynchronous: a send answers once the bus has accepted and queued the
//! message, with the queue it went to. Refusals are the bus's own codes
//! (`missing_recipient`, `invalid_name`, `message_expired`, `rate_limited`, …) through
//! `From<BusError> for ApiError`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{Duration as ChronoDuration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sutazai_bus::{
    Bus, DeadLetter, DeadLetterQuery, DeadReason, META_CORRELATION_ID, META_REPLY_TO, NodeInfo,
};
use sutazai_core::{CommunicationPattern, Message, MessageType, Priority, ids};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery};

/// Longest `ttl_seconds` accepted: one week, the bus's default retention.
pub(crate) const MAX_TTL_SECONDS: u64 = 7 * 24 * 3600;
/// Most dead letters one listing returns.
const MAX_DEAD_LETTER_LIMIT: usize = 1000;
/// Dead letters a listing returns when it does not say.
const DEFAULT_DEAD_LETTER_LIMIT: usize = 100;

/// `?sender_id=` of the message routes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SenderQuery {
    /// Who sends (default `api`). Each sender has its own rate limit.
    #[param(pattern = r"^[A-Za-z0-9._:/-]{1,256}$")]
    sender_id: Option<String>,
}

/// Body of `POST /messages/send` and `/messages/broadcast`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SendRequest {
    /// Recipient agent (required for point-to-point and request-response).
    #[schema(pattern = r"^[A-Za-z0-9._:/-]{1,256}$")]
    recipient_id: Option<String>,
    /// What the message is about.
    message_type: MessageType,
    /// Routing pattern (default point-to-point; always broadcast on `/messages/broadcast`).
    pattern: Option<CommunicationPattern>,
    /// Delivery priority.
    #[serde(default)]
    priority: Priority,
    /// Topic for pub-sub (required there): dot-separated segments.
    #[schema(pattern = r"^[A-Za-z0-9_:/-]+(\.[A-Za-z0-9_:/-]+)*$", max_length = 256)]
    topic: Option<String>,
    /// Content.
    #[serde(default)]
    payload: Map<String, Value>,
    /// Extras.
    #[serde(default)]
    metadata: Map<String, Value>,
    /// Not delivered after this (a time already past is refused and dead-lettered).
    expires_at: Option<chrono::DateTime<Utc>>,
    /// Not delivered after this many seconds (1 to 604800); instead of `expires_at`.
    #[schema(minimum = 1, maximum = 604800)]
    ttl_seconds: Option<u64>,
}

/// Answer of `POST /messages/send` and `/messages/broadcast`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Sent {
    /// The new message's id.
    message_id: String,
    /// Always `sent`: accepted and queued; delivery happens asynchronously.
    status: String,
    /// How it is routed.
    pattern: CommunicationPattern,
    /// The queue it went to (`inbox:<agent>`, `broadcast`, `topic:<name>`).
    queue: String,
}

/// Checks a request and turns it into a message from `sender`.
fn build_message(
    state: &AppState,
    sender: Option<String>,
    body: SendRequest,
    pattern: CommunicationPattern,
) -> Result<Message, ApiError> {
    let now = Utc::now();
    let expires_at = match (body.expires_at, body.ttl_seconds) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give either `expires_at` or `ttl_seconds`, not both",
            ));
        }
        (_, Some(ttl)) if ttl == 0 || ttl > MAX_TTL_SECONDS => {
            return Err(ApiError::bad_request(format!(
                "`ttl_seconds` must be between 1 and {MAX_TTL_SECONDS}, got {ttl}"
            )));
        }
        // In range, so it fits an i64 and the sum cannot overflow.
        (_, Some(ttl)) => Some(now + ChronoDuration::seconds(ttl as i64)),
        (at, None) => at,
    };
    // Request-response bookkeeping is the bus's own: a client that set these could make
    // an agent answer someone else's request.
    if let Some(key) = [META_CORRELATION_ID, META_REPLY_TO]
        .into_iter()
        .find(|k| body.metadata.contains_key(*k))
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "reserved_metadata",
            format!("metadata key `{key}` is reserved for the bus's request-response replies"),
        ));
    }
    if let Some(recipient) = body.recipient_id.as_deref()
        && matches!(
            pattern,
            CommunicationPattern::PointToPoint | CommunicationPattern::RequestResponse
        )
        && state.orchestrator.agent(recipient).is_err()
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "agent_not_found",
            format!("recipient `{recipient}` is not a registered agent"),
        ));
    }
    Ok(Message {
        id: ids::new_id(),
        sender_id: sender.unwrap_or_else(|| "api".to_owned()),
        recipient_id: body.recipient_id,
        message_type: body.message_type,
        pattern,
        priority: body.priority,
        topic: body.topic,
        payload: body.payload,
        metadata: body.metadata,
        created_at: now,
        expires_at,
    })
}

async fn send(
    state: &AppState,
    sender: Option<String>,
    body: SendRequest,
    pattern: CommunicationPattern,
) -> Result<Json<Sent>, ApiError> {
    let message = build_message(state, sender, body, pattern)?;
    let bus = state.orchestrator.bus();
    // An already expired message is refused (`message_expired`) and dead-lettered, so
    // the refusal can be found under `reason=expired`.
    let published = bus.send(message).await?;
    Ok(Json(Sent {
        message_id: published.message_id,
        status: "sent".to_owned(),
        pattern,
        queue: published.queue,
    }))
}

/// `POST /messages/send`.
#[utoipa::path(
    post,
    path = "/messages/send",
    params(SenderQuery),
    request_body = SendRequest,
    responses(
        (status = 200, body = Sent, description = "Accepted and queued"),
        (status = 400, body = ErrorBody, description = "Invalid or expired message (`missing_recipient`, `missing_topic`, `invalid_name`, `message_expired`, `invalid_request`)"),
        (status = 404, body = ErrorBody, description = "`agent_not_found`"),
        (status = 429, body = ErrorBody, description = "`rate_limited`, with `Retry-After`; the message is dead-lettered"),
        (status = 503, body = ErrorBody, description = "`bus_unavailable` or `bus_closed`"),
    )
)]
pub(crate) async fn send_message(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<SenderQuery>,
    ApiJson(body): ApiJson<SendRequest>,
) -> Result<Json<Sent>, ApiError> {
    let pattern = body.pattern.unwrap_or_default();
    send(&state, query.sender_id, body, pattern).await
}

/// `POST /messages/broadcast`.
#[utoipa::path(
    post,
    path = "/messages/broadcast",
    params(SenderQuery),
    request_body = SendRequest,
    responses(
        (status = 200, body = Sent, description = "Accepted and queued for every agent"),
        (status = 400, body = ErrorBody, description = "Invalid or expired message"),
        (status = 429, body = ErrorBody, description = "`rate_limited`, with `Retry-After`"),
        (status = 503, body = ErrorBody, description = "`bus_unavailable` or `bus_closed`"),
    )
)]
pub(crate) async fn broadcast_message(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<SenderQuery>,
    ApiJson(body): ApiJson<SendRequest>,
) -> Result<Json<Sent>, ApiError> {
    send(
        &state,
        query.sender_id,
        body,
        CommunicationPattern::Broadcast,
    )
    .await
}

/// Filters of `GET /messages/dead-letters`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeadLetterParams {
    /// Only this reason: expired, max_attempts, rate_limited, bad_signature, unsigned,
    /// decrypt_failed, decompress_failed or malformed (`all` or empty: every reason).
    #[param(schema_with = reason_filter)]
    reason: Option<String>,
    /// At most this many, newest first (1 to 1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

fn reason_filter() -> utoipa::openapi::Object {
    let mut values = vec!["", "all"];
    values.extend(DeadReason::ALL.iter().map(|r| r.as_str()));
    crate::openapi::string_enum(&values)
}

/// Answer of `GET /messages/dead-letters`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DeadLetterList {
    /// The dead letters, newest first.
    dead_letters: Vec<DeadLetter>,
    /// How many are listed.
    count: usize,
}

/// Answer of `POST /messages/dead-letters/{id}/replay`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Replayed {
    /// The replayed message's id (its original id).
    message_id: String,
    /// The queue it went to.
    queue: String,
    /// Always `replayed`.
    status: String,
}

/// Answer of `DELETE /messages/dead-letters`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Purged {
    /// How many dead letters were deleted.
    purged: u64,
}

fn parse_reason(text: &str) -> Result<DeadReason, ApiError> {
    DeadReason::parse(text).ok_or_else(|| {
        let valid: Vec<&str> = DeadReason::ALL.iter().map(|r| r.as_str()).collect();
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_reason",
            format!("reason `{text}` is not one of {}", valid.join(", ")),
        )
    })
}

/// `GET /messages/dead-letters`.
#[utoipa::path(
    get,
    path = "/messages/dead-letters",
    params(DeadLetterParams),
    responses(
        (status = 200, body = DeadLetterList),
        (status = 400, body = ErrorBody, description = "`invalid_reason` or `invalid_query`"),
        (status = 503, body = ErrorBody, description = "`bus_unavailable`"),
    )
)]
pub(crate) async fn list_dead_letters(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<DeadLetterParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let reason = match params.reason.as_deref() {
        None | Some("") | Some("all") => None,
        Some(text) => Some(parse_reason(text)?),
    };
    let limit = params.limit.unwrap_or(DEFAULT_DEAD_LETTER_LIMIT);
    if limit == 0 || limit > MAX_DEAD_LETTER_LIMIT {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("limit must be between 1 and {MAX_DEAD_LETTER_LIMIT}, got {limit}"),
        ));
    }
    let dead_letters = state
        .orchestrator
        .bus()
        .dead_letters(&DeadLetterQuery { reason, limit })
        .await?;
    state.masked(&DeadLetterList {
        count: dead_letters.len(),
        dead_letters,
    })
}

/// `GET /messages/dead-letters/{id}`.
#[utoipa::path(
    get,
    path = "/messages/dead-letters/{id}",
    params(("id" = String, Path, description = "Dead-letter id")),
    responses(
        (status = 200, body = DeadLetter),
        (status = 404, body = ErrorBody, description = "`dead_letter_not_found`"),
    )
)]
pub(crate) async fn get_dead_letter(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    state.masked(&state.orchestrator.bus().dead_letter(&id).await?)
}

/// `POST /messages/dead-letters/{id}/replay`: publishes the message again (an expired one
/// without its expiry) and removes the dead letter.
#[utoipa::path(
    post,
    path = "/messages/dead-letters/{id}/replay",
    params(("id" = String, Path, description = "Dead-letter id")),
    responses(
        (status = 200, body = Replayed),
        (status = 404, body = ErrorBody, description = "`dead_letter_not_found`"),
        (status = 409, body = ErrorBody, description = "`not_replayable`: no readable message"),
    )
)]
pub(crate) async fn replay_dead_letter(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Replayed>, ApiError> {
    let published = state.orchestrator.bus().replay(&id).await?;
    Ok(Json(Replayed {
        message_id: published.message_id,
        queue: published.queue,
        status: "replayed".to_owned(),
    }))
}

/// `DELETE /messages/dead-letters/{id}`: answers the removed dead letter.
#[utoipa::path(
    delete,
    path = "/messages/dead-letters/{id}",
    params(("id" = String, Path, description = "Dead-letter id")),
    responses(
        (status = 200, body = DeadLetter, description = "The removed dead letter"),
        (status = 404, body = ErrorBody, description = "`dead_letter_not_found`"),
    )
)]
pub(crate) async fn delete_dead_letter(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DeadLetter>, ApiError> {
    Ok(Json(
        state.orchestrator.bus().remove_dead_letter(&id).await?,
    ))
}

/// `DELETE /messages/dead-letters`: deletes every dead letter.
#[utoipa::path(
    delete,
    path = "/messages/dead-letters",
    responses(
        (status = 200, body = Purged),
        (status = 503, body = ErrorBody, description = "`bus_unavailable`"),
    )
)]
pub(crate) async fn purge_dead_letters(
    State(state): State<AppState>,
) -> Result<Json<Purged>, ApiError> {
    let purged = state.orchestrator.bus().purge_dead_letters().await?;
    Ok(Json(Purged { purged }))
}

/// Answer of `GET /workers`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Workers {
    /// Every process on the bus (this server and any `sutazai worker`), as last announced.
    nodes: Vec<NodeInfo>,
    /// How many were heard from within the last 15 seconds.
    alive: usize,
}

/// `GET /workers`: the processes on the bus and their heartbeats.
#[utoipa::path(
    get,
    path = "/workers",
    responses(
        (status = 200, body = Workers),
        (status = 503, body = ErrorBody, description = "`bus_unavailable`"),
    )
)]
pub(crate) async fn workers(State(state): State<AppState>) -> Result<Json<Workers>, ApiError> {
    let nodes = state.orchestrator.bus().nodes().await?;
    let alive = nodes.iter().filter(|n| n.alive).count();
    Ok(Json(Workers { nodes, alive }))
}

/// The `message_bus` section of `/status`. When the bus cannot be read (Redis down) it
/// says so instead of failing the whole status.
pub(crate) async fn bus_status(bus: &Bus) -> Value {
    let (stats, nodes) = tokio::join!(bus.stats(), bus.nodes());
    match stats.and_then(|stats| nodes.map(|nodes| (stats, nodes))) {
        Ok((stats, nodes)) => json!({
            "backend": stats.backend,
            "available": true,
            "node_id": stats.node_id,
            "published": stats.published,
            "delivered": stats.delivered,
            "acknowledged": stats.acknowledged,
            "retried": stats.retried,
            "dead_lettered": stats.dead_lettered,
            "rate_limited": stats.rate_limited,
            "messages_per_minute": stats.messages_per_minute,
            "dead_letters": stats.dead_letters,
            "queue_depths": stats.queues,
            "workers_alive": nodes.iter().filter(|n| n.alive).count(),
        }),
        Err(e) => json!({
            "backend": bus.backend_name(),
            "available": false,
            "error": e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dead_reason_is_listed_and_parses() {
        for reason in DeadReason::ALL {
            assert_eq!(parse_reason(reason.as_str()).ok(), Some(reason));
        }
        let e = parse_reason("lost")
            .err()
            .map(|e| (e.status, e.code, e.message));
        let Some((status, code, message)) = e else {
            panic!("`lost` parsed as a reason");
        };
        assert_eq!((status, code), (StatusCode::BAD_REQUEST, "invalid_reason"));
        assert!(
            message.contains("lost") && message.contains("rate_limited"),
            "{message}"
        );
    }
}
