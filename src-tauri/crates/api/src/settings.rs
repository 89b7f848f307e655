//! The settings the dashboard edits while the app runs: the LLM endpoints' URLs and the
//! alert delivery channels. `GET /settings` shows them (secrets only as "set" or not),
//! `PUT /settings` changes them: the serving process validates the edit as a start would,
//! writes it to the config file and applies it at once (see the CLI crate's
//! `settings_admin`). Without a serving process that offers them: 503 `setup_off`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::setup::setup;

/// Body of `PUT /settings`: only what is present changes.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsBody {
    /// New base URLs of configured LLM endpoints, by provider name
    /// (`{"ollama": "http://gpu-box:11434"}`).
    #[serde(default)]
    pub providers: BTreeMap<String, String>,
    /// SMTP URL for alert email (`smtp://user:pass@host:587?tls=required`); `""` switches
    /// email off.
    #[schema(max_length = 2048)]
    pub alert_smtp_url: Option<String>,
    /// Sender of alert email; `""` removes it.
    #[schema(max_length = 2048)]
    pub alert_email_from: Option<String>,
    /// Recipients of alert email; `[]` removes them.
    #[schema(schema_with = recipients)]
    pub alert_email_to: Option<Vec<String>>,
    /// Slack incoming webhook URL; `""` switches Slack off.
    #[schema(max_length = 2048)]
    pub alert_slack_webhook: Option<String>,
}

fn recipients() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(r"\S"))
                .max_length(Some(320)),
        )
        .max_items(Some(50))
        .description(Some(
            "Recipients of alert email (at most 50, each 1 to 320 characters, not blank); `[]` \
             removes them.",
        ))
        .build()
}

/// Most provider URLs one edit changes.
const MAX_PROVIDERS: usize = 32;

/// `GET /settings`: the config file edits go to, the default model, each LLM endpoint
/// (name, kind, URL, whether an environment variable fixes it) and the alert channels
/// (whether on, sender and recipients; secrets only as `*_set` flags).
#[utoipa::path(get, path = "/settings",
    responses((status = 200, description = "`{config_file, config_file_exists, model, providers: [...], email: {...}, slack: {...}}`"), (status = 503, body = crate::error::ErrorBody)))]
pub(crate) async fn get_settings(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let view = setup(&state)?.view_settings.clone();
    Ok(Json(view()))
}

/// `PUT /settings`: validates, saves to the config file and applies at once; answers the
/// settings as they are then. 422 `invalid_request` naming the key, 409 `setting_locked`
/// when an environment variable fixes the value.
#[utoipa::path(put, path = "/settings", request_body = SettingsBody,
    responses((status = 200, description = "the settings, as `GET /settings`"), (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
pub(crate) async fn put_settings(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SettingsBody>,
) -> Result<Json<Value>, ApiError> {
    if body.providers.len() > MAX_PROVIDERS {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            format!("invalid `providers`: at most {MAX_PROVIDERS} per edit"),
        ));
    }
    let edit = setup(&state)?.edit_settings.clone();
    match edit(body).await {
        Ok(view) => Ok(Json(view)),
        Err(e) => Err(ApiError::new(
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            e.code,
            e.message,
        )),
    }
}
