//! The infrastructure routes: Docker services' status, deploy-all, lifecycle control, logs,
//! stats and image pulls, over [`sutazai_infra::Infra`].
//!
//! Without an engine (no socket, daemon down, permission denied) or with infrastructure
//! management off, every route answers 503 `docker_unavailable` with the reason and what
//! to do; the rest of the API is unaffected.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use serde::Deserialize;
use serde_json::json;
use sutazai_infra::{
    Action, DeployReport, Infra, InfraError, InfraStatus, LogLine, ServiceStatus, StatsSample,
};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};

/// Most log lines one request returns.
const MAX_TAIL: usize = 10_000;

impl From<InfraError> for ApiError {
    fn from(e: InfraError) -> Self {
        let status = match &e {
            InfraError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            InfraError::UnknownService(_) | InfraError::UnknownContainer(_) => {
                StatusCode::NOT_FOUND
            }
            InfraError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            InfraError::Conflict(_) => StatusCode::CONFLICT,
            InfraError::Unhealthy { .. } => StatusCode::GATEWAY_TIMEOUT,
            // The server's own configuration (a catalogue file, a variable).
            InfraError::Catalogue { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            InfraError::Pull { .. } | InfraError::Docker(_) => StatusCode::BAD_GATEWAY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

/// An error with a stable code, as streamed answers report it.
pub(crate) trait Coded: std::fmt::Display {
    /// The stable code.
    fn code(&self) -> &str;
}

impl Coded for InfraError {
    fn code(&self) -> &str {
        InfraError::code(self)
    }
}

/// A streamed answer of one JSON line per item (`application/x-ndjson`); an error item
/// becomes a `{"error": {code, message}}` line.
pub(crate) fn ndjson<T: serde::Serialize + Send + 'static, E: Coded + Send + 'static>(
    items: futures::stream::BoxStream<'static, Result<T, E>>,
) -> Response {
    let body = items.map(|item| {
        let value = match item {
            Ok(item) => serde_json::to_value(item).unwrap_or_default(),
            Err(e) => json!({"error": {"code": e.code(), "message": e.to_string()}}),
        };
        Ok::<_, std::convert::Infallible>(format!("{value}\n"))
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(body),
    )
        .into_response()
}

/// The infrastructure layer, or the 503 that says it is off.
pub(crate) fn infra(state: &AppState) -> Result<&Infra, ApiError> {
    state.infra.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "docker_unavailable",
            "infrastructure management is off in this process (it runs in `sutazai serve` and the desktop app)",
        )
    })
}

/// `GET /infrastructure/status`.
#[utoipa::path(get, path = "/infrastructure/status", responses(
    (status = 200, body = InfraStatus),
    (status = 503, body = crate::error::ErrorBody, description = "Docker is unavailable: the message says why and what to do")))]
pub(crate) async fn status(State(state): State<AppState>) -> Result<Json<InfraStatus>, ApiError> {
    Ok(Json(infra(&state)?.status().await?))
}

/// `POST /infrastructure/deploy-all`: every service in dependency order, each gated on
/// health (Redis → Ollama → its models → workers); answers when all are up. Progress goes
/// to `/ws` as `infrastructure` events.
#[utoipa::path(post, path = "/infrastructure/deploy-all", responses(
    (status = 200, body = DeployReport),
    (status = 503, body = crate::error::ErrorBody),
    (status = 504, body = crate::error::ErrorBody, description = "a service did not become healthy")))]
pub(crate) async fn deploy_all(
    State(state): State<AppState>,
) -> Result<Json<DeployReport>, ApiError> {
    // Its own task: a client that goes away does not leave a deploy half done.
    let infra = infra(&state)?.clone();
    let job = tokio::spawn(async move { infra.deploy_all().await });
    let report = job.await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("deploy-all stopped unexpectedly: {e}"),
        )
    })??;
    Ok(Json(report))
}

/// Body of `POST /infrastructure/services/{service_name}/control`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServiceControl {
    /// `start`, `stop`, `restart`, `scale` or `remove`.
    #[schema(schema_with = service_action)]
    action: String,
    /// Replicas, for `scale` (required) and `start` (optional).
    instances: Option<u32>,
}

fn service_action() -> utoipa::openapi::Object {
    crate::openapi::string_enum(&["start", "stop", "restart", "scale", "remove"])
}

pub(crate) fn parse_action(action: &str) -> Result<Action, ApiError> {
    Ok(match action {
        "start" => Action::Start,
        "stop" => Action::Stop,
        "restart" => Action::Restart,
        "scale" => Action::Scale,
        "remove" => Action::Remove,
        other => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                format!("action `{other}` is not one of start, stop, restart, scale, remove"),
            ));
        }
    })
}

/// `POST /infrastructure/services/{service_name}/control`.
#[utoipa::path(post, path = "/infrastructure/services/{service_name}/control",
    request_body = ServiceControl,
    responses(
        (status = 200, body = ServiceStatus),
        (status = 404, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
pub(crate) async fn control_service(
    State(state): State<AppState>,
    Path(service_name): Path<String>,
    ApiJson(body): ApiJson<ServiceControl>,
) -> Result<Json<ServiceStatus>, ApiError> {
    let action = parse_action(&body.action)?;
    if action == Action::Scale && body.instances.is_none() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "`instances` is required for the scale action",
        ));
    }
    let infra = infra(&state)?;
    Ok(Json(
        infra.control(&service_name, action, body.instances).await?,
    ))
}

/// Options of the logs route.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LogsQuery {
    /// Last lines to return (default 100, at most 10000).
    #[param(minimum = 0, maximum = 10_000)]
    tail: Option<usize>,
    /// Keep the response open and stream new lines (NDJSON) as they come.
    follow: Option<bool>,
}

/// Answer of the logs route without `follow`.
#[derive(Debug, serde::Serialize, ToSchema)]
pub(crate) struct Logs {
    /// The lines, oldest first.
    lines: Vec<LogLine>,
}

/// `GET /infrastructure/services/{name}/logs`: a service's (or one container's) log lines.
/// Without `follow`: `{"lines": [...]}`; with `follow=true`: one JSON line per log line
/// (`application/x-ndjson`) until the client leaves.
#[utoipa::path(get, path = "/infrastructure/services/{name}/logs", params(LogsQuery),
    responses(
        (status = 200, description = "The lines (`{\"lines\": [...]}`), or with `follow=true` one line per log line", content(
            (Logs = "application/json"),
            (LogLine = "application/x-ndjson"))),
        (status = 404, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
pub(crate) async fn logs(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<LogsQuery>,
) -> Result<Response, ApiError> {
    let tail = query.tail.unwrap_or(100);
    if tail > MAX_TAIL {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("tail {tail} is above the limit of {MAX_TAIL}"),
        ));
    }
    let infra = infra(&state)?;
    let follow = query.follow.unwrap_or(false);
    let mut lines = infra.logs(&name, tail, follow).await?;
    if follow {
        return Ok(ndjson(lines));
    }
    let mut out = Vec::new();
    while let Some(line) = lines.next().await {
        out.push(line?);
    }
    Ok(Json(Logs { lines: out }).into_response())
}

/// Options of the stats route.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct StatsQuery {
    /// Keep the response open with a sample a second (NDJSON) until the client leaves.
    stream: Option<bool>,
}

/// `GET /infrastructure/containers/{name}/stats`: CPU %, memory, network and block I/O —
/// one sample, or with `stream=true` one JSON line a second (`application/x-ndjson`).
#[utoipa::path(get, path = "/infrastructure/containers/{name}/stats", params(StatsQuery),
    responses(
        (status = 200, description = "One sample, or with `stream=true` one line a second", content(
            (StatsSample = "application/json"),
            (StatsSample = "application/x-ndjson"))),
        (status = 404, body = crate::error::ErrorBody),
        (status = 502, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
pub(crate) async fn stats(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<StatsQuery>,
) -> Result<Response, ApiError> {
    let stream = query.stream.unwrap_or(false);
    let mut samples = infra(&state)?.stats(&name, stream).await?;
    if stream {
        return Ok(ndjson(samples));
    }
    match samples.next().await {
        Some(sample) => Ok(Json(sample?).into_response()),
        None => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "docker_error",
            format!("Docker returned no stats for {name}"),
        )),
    }
}

/// Body of `POST /infrastructure/images/pull`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PullRequest {
    /// Image reference (`redis:7-alpine`, `127.0.0.1:5000/team/worker:1`): at most 512
    /// characters, no spaces (surrounding ones are trimmed).
    #[schema(pattern = r"^\s*\S{1,512}\s*$")]
    image: String,
}

/// `POST /infrastructure/images/pull`: pulls an image, streaming per-layer progress as
/// JSON lines (`application/x-ndjson`); the last line is `{"status": "done"}` or
/// `{"error": {code, message}}`.
#[utoipa::path(post, path = "/infrastructure/images/pull", request_body = PullRequest,
    responses(
        (status = 200, description = "PullProgress lines, then a final line", content_type = "application/x-ndjson"),
        (status = 422, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
pub(crate) async fn pull(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<PullRequest>,
) -> Result<Response, ApiError> {
    let image = body.image.trim().to_owned();
    if image.is_empty() || image.chars().count() > 512 || image.chars().any(char::is_whitespace) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "image must be a reference of at most 512 characters without spaces",
        ));
    }
    let infra = infra(&state)?;
    // Refuse before streaming when the engine is known to be down.
    if !infra.availability().available {
        infra.status().await?;
    }
    let progress = infra.pull(&image);
    let body = futures::stream::unfold((progress, false), |(mut progress, finished)| async move {
        if finished {
            return None;
        }
        match progress.next().await {
            Some(Ok(p)) => Some((
                format!("{}\n", serde_json::to_value(p).unwrap_or_default()),
                (progress, false),
            )),
            Some(Err(e)) => Some((
                format!(
                    "{}\n",
                    json!({"error": {"code": e.code(), "message": e.to_string()}})
                ),
                (progress, true),
            )),
            None => Some((format!("{}\n", json!({"status": "done"})), (progress, true))),
        }
    })
    .map(Ok::<_, std::convert::Infallible>);
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(body),
    )
        .into_response())
}
