//! The API's one error type. Every failure reaches the client as JSON `{code, message}`
//! with a fitting status; clients match on `code`, never on `message`. A refusal that
//! can be retried later (a sender over its rate limit) also carries `Retry-After`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sutazai_bus::BusError;
use sutazai_orchestrator::OrchestratorError;
use utoipa::ToSchema;

/// An error response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable snake_case code.
    pub code: &'static str,
    /// Human-readable explanation naming the offending field or resource.
    pub message: String,
    /// Seconds after which the request may succeed, sent as `Retry-After`.
    pub retry_after: Option<u64>,
}

/// The JSON body of every error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable snake_case code.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl ApiError {
    /// An error with the given status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same error with a `Retry-After` of `seconds`.
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// 400 with `invalid_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, "{}", self.message);
        }
        let mut response = (
            self.status,
            Json(ErrorBody {
                code: self.code.to_owned(),
                message: self.message,
            }),
        )
            .into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<OrchestratorError> for ApiError {
    fn from(e: OrchestratorError) -> Self {
        let status = match &e {
            OrchestratorError::InvalidRequest { .. }
            | OrchestratorError::NoCapableAgent(_)
            | OrchestratorError::AgentsUnavailable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            OrchestratorError::AgentNotFound(_) | OrchestratorError::TaskNotFound(_) => {
                StatusCode::NOT_FOUND
            }
            OrchestratorError::InvalidState { .. } | OrchestratorError::AgentConflict { .. } => {
                StatusCode::CONFLICT
            }
            OrchestratorError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            // Backpressure: the client should come back shortly.
            OrchestratorError::Overloaded { .. } => {
                return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.code(), e.to_string())
                    .with_retry_after(2);
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl From<BusError> for ApiError {
    /// Invalid messages are 400 with the bus's code; a sender over its rate limit is 429
    /// with `Retry-After` (whole seconds, rounded up); a missing dead letter is 404, one
    /// without a readable message 409; a reply that never came 504; a bus that is down or
    /// shutting down 503.
    fn from(e: BusError) -> Self {
        let status = match &e {
            BusError::RateLimited { retry_after_ms, .. } => {
                let seconds = retry_after_ms.div_ceil(1000).max(1);
                return ApiError::new(StatusCode::TOO_MANY_REQUESTS, e.code(), e.to_string())
                    .with_retry_after(seconds);
            }
            BusError::DeadLetterNotFound(_) => StatusCode::NOT_FOUND,
            BusError::NotReplayable(_) => StatusCode::CONFLICT,
            BusError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            BusError::Unavailable(_) | BusError::Closed => StatusCode::SERVICE_UNAVAILABLE,
            _ if e.is_client_error() => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

/// Fallback for unknown routes.
pub(crate) async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {}", uri.path()),
    )
}

/// Fallback for a known route with the wrong method.
pub(crate) async fn method_not_allowed(
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn mapped(e: BusError) -> (StatusCode, &'static str, Option<u64>) {
        let api = ApiError::from(e);
        (api.status, api.code, api.retry_after)
    }

    #[test]
    fn bus_errors_map_to_statuses_and_codes() {
        let cases = [
            (
                BusError::MissingRecipient("point_to_point"),
                StatusCode::BAD_REQUEST,
                "missing_recipient",
            ),
            (
                BusError::MissingTopic,
                StatusCode::BAD_REQUEST,
                "missing_topic",
            ),
            (
                BusError::InvalidName {
                    field: "topic",
                    reason: "must not be empty".into(),
                },
                StatusCode::BAD_REQUEST,
                "invalid_name",
            ),
            (
                BusError::Expired("m1".into()),
                StatusCode::BAD_REQUEST,
                "message_expired",
            ),
            (
                BusError::DeadLetterNotFound("d1".into()),
                StatusCode::NOT_FOUND,
                "dead_letter_not_found",
            ),
            (
                BusError::NotReplayable("d1".into()),
                StatusCode::CONFLICT,
                "not_replayable",
            ),
            (
                BusError::Timeout {
                    message_id: "m1".into(),
                    recipient: "a".into(),
                    after: Duration::from_secs(1),
                },
                StatusCode::GATEWAY_TIMEOUT,
                "reply_timeout",
            ),
            (
                BusError::Unavailable("connection refused".into()),
                StatusCode::SERVICE_UNAVAILABLE,
                "bus_unavailable",
            ),
            (
                BusError::Closed,
                StatusCode::SERVICE_UNAVAILABLE,
                "bus_closed",
            ),
        ];
        for (error, status, code) in cases {
            assert_eq!(mapped(error), (status, code, None));
        }
    }

    #[test]
    fn rate_limited_is_429_with_retry_after_rounded_up() {
        let limited = |retry_after_ms| BusError::RateLimited {
            sender: "s".into(),
            per_second: 100.0,
            burst: 200,
            retry_after_ms,
        };
        for (ms, seconds) in [(1, 1), (999, 1), (1000, 1), (1001, 2), (2500, 3)] {
            assert_eq!(
                mapped(limited(ms)),
                (StatusCode::TOO_MANY_REQUESTS, "rate_limited", Some(seconds))
            );
        }
        let response = ApiError::from(limited(1500)).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            response.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from_static("2"))
        );
    }
}
