//! First-run routes for the dashboard's welcome flow: the environment checks as the
//! server sees them (`GET /setup/doctor`) and pulling a model through the default provider
//! with progress (`POST /models/pull`, NDJSON). Both are provided by the process that
//! runs the API (the CLI crate knows the settings and the checks); without them the
//! routes answer 503 `setup_off`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::ApiJson;

/// Why a setup action failed, with its HTTP status when it fails before streaming.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SetupError {
    /// Stable code (`pull_failed`, `not_supported`, …).
    pub code: &'static str,
    /// For people.
    pub message: String,
    /// HTTP status when refused before the stream starts.
    pub status: u16,
}

impl crate::infra::Coded for SetupError {
    fn code(&self) -> &str {
        self.code
    }
}

/// Runs the checks; the report as JSON (`{ok, checks: [...]}`).
pub type DoctorFn = Arc<dyn Fn() -> BoxFuture<'static, Value> + Send + Sync>;
/// Starts pulling a model; progress items, then a final `{"status": "success"}`.
pub type PullFn = Arc<
    dyn Fn(String) -> Result<BoxStream<'static, Result<Value, SetupError>>, SetupError>
        + Send
        + Sync,
>;

/// The editable settings as JSON (`GET /settings`).
pub type ViewSettingsFn = Arc<dyn Fn() -> Value + Send + Sync>;
/// Applies an edit, answering the settings as they are then (`PUT /settings`).
pub type EditSettingsFn = Arc<
    dyn Fn(crate::settings::SettingsBody) -> BoxFuture<'static, Result<Value, SetupError>>
        + Send
        + Sync,
>;

/// What the serving process provides for the first-run and settings routes.
#[derive(Clone)]
pub struct Setup {
    /// `GET /settings`.
    pub view_settings: ViewSettingsFn,
    /// `PUT /settings`.
    pub edit_settings: EditSettingsFn,
    /// `GET /setup/doctor`.
    pub doctor: DoctorFn,
    /// `POST /models/pull`.
    pub pull_model: PullFn,
    /// The model pulled when the request names none.
    pub default_model: String,
}

impl std::fmt::Debug for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setup")
            .field("default_model", &self.default_model)
            .finish_non_exhaustive()
    }
}

pub(crate) fn setup(state: &AppState) -> Result<&Setup, ApiError> {
    state.setup.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "setup_off",
            "first-run checks are offered by `sutazai serve` and the desktop app",
        )
    })
}

/// `GET /setup/doctor`: the environment checks (settings, data dir, disk, LLM endpoint and
/// models, Redis, Docker, agents), each with what was found and, for failures, the fix.
#[utoipa::path(get, path = "/setup/doctor",
    responses((status = 200, description = "`{ok, checks: [{name, status, essential, detail, hint?, notes?}]}`"), (status = 503, body = crate::error::ErrorBody)))]
pub(crate) async fn doctor(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let run = setup(&state)?.doctor.clone();
    Ok(Json(run().await))
}

/// Body of `POST /models/pull`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PullModel {
    /// The model (`llama3.2`, `qwen2.5:7b`: letters, digits and `. _ : / -`, at most 200);
    /// the configured default when left out.
    #[schema(pattern = r"^[A-Za-z0-9._:/-]{1,200}$")]
    model: Option<String>,
}

/// Whether `name` looks like a model reference (`name[:tag]`, optionally `namespace/`).
fn valid_model(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:/-".contains(&b))
}

/// `POST /models/pull`: pulls a model through the default provider (Ollama's
/// `/api/pull`), answering one JSON line per progress report (`{status, total?,
/// completed?}`), then `{"status": "success"}` or `{"error": {code, message}}`.
#[utoipa::path(post, path = "/models/pull", request_body = PullModel,
    responses((status = 200, description = "Progress lines (`{status, total?, completed?}`), then a final line", content_type = "application/x-ndjson", body = Value), (status = 422, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
pub(crate) async fn pull_model(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<PullModel>,
) -> Result<Response, ApiError> {
    let setup = setup(&state)?;
    let model = body.model.unwrap_or_else(|| setup.default_model.clone());
    if !valid_model(&model) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            format!(
                "model: {model:?} is not a model name (letters, digits and . _ : / -, at most 200)"
            ),
        ));
    }
    let stream = (setup.pull_model)(model).map_err(|e| {
        ApiError::new(
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_GATEWAY),
            e.code,
            e.message,
        )
    })?;
    Ok(crate::infra::ndjson(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names() {
        for ok in ["llama3.2", "qwen2.5:7b", "library/smollm2:135m", "a-b_c"] {
            assert!(valid_model(ok), "{ok}");
        }
        for bad in ["", "x y", "a;rm -rf", &"m".repeat(201), "ünï"] {
            assert!(!valid_model(bad), "{bad}");
        }
    }
}
