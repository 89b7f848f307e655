//! The OpenAPI document served at `/openapi.json`, generated from the handlers'
//! annotations so it cannot drift from the routes.

use axum::Json;
use utoipa::OpenApi;

use utoipa::Modify;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::{auth, infra, messages, monitoring, routes, settings, setup};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "SutazAI API",
        description = "Local control plane for AI agents: the system description's REST API"
    ),
    paths(
        routes::health,
        routes::status,
        routes::list_agents,
        routes::get_agent,
        routes::create_agent,
        routes::put_agent,
        routes::delete_agent,
        routes::agent_definition,
        settings::get_settings,
        settings::put_settings,
        routes::control_agent,
        routes::submit_task,
        routes::list_tasks,
        routes::get_task,
        routes::cancel_task,
        routes::approve_task,
        messages::send_message,
        messages::broadcast_message,
        messages::list_dead_letters,
        messages::get_dead_letter,
        messages::replay_dead_letter,
        messages::delete_dead_letter,
        messages::purge_dead_letters,
        messages::workers,
        infra::status,
        infra::deploy_all,
        infra::control_service,
        infra::logs,
        infra::stats,
        infra::pull,
        routes::analytics,
        routes::pause,
        setup::doctor,
        setup::pull_model,
        routes::resume,
        monitoring::list_alerts,
        monitoring::acknowledge_alert,
        monitoring::set_rule,
        monitoring::host,
        monitoring::series,
        monitoring::series_catalogue,
        auth::sign_in,
        auth::refresh,
        auth::revoke,
        auth::whoami,
        auth::list_keys,
        auth::create_key,
        auth::revoke_key,
        auth::audit,
        auth::verify_audit,
    ),
    modifiers(&BearerAuth),
    security(("bearer" = []), ("api_key" = [])),
    components(schemas(
        crate::error::ErrorBody,
        auth::SignIn,
        auth::Refresh,
        auth::Revoke,
        auth::TokenAnswer,
        auth::NewKey,
        setup::PullModel,
        sutazai_core::TaskRequest,
        sutazai_core::Task,
        sutazai_core::Step,
        sutazai_core::Message,
        messages::SendRequest,
        messages::Sent,
        messages::DeadLetterList,
        messages::Replayed,
        messages::Purged,
        messages::Workers,
        sutazai_bus::DeadLetter,
        sutazai_bus::DeadReason,
        sutazai_bus::NodeInfo,
        sutazai_bus::QueueDepth,
        infra::ServiceControl,
        infra::PullRequest,
        sutazai_infra::InfraStatus,
        sutazai_infra::ServiceStatus,
        sutazai_infra::ContainerInfo,
        sutazai_infra::Availability,
        sutazai_infra::DeployReport,
        sutazai_infra::LogLine,
        sutazai_infra::StatsSample,
        sutazai_infra::PullProgress,
        sutazai_infra::InfraEvent,
        sutazai_infra::ServiceKind,
        sutazai_monitor::AlertRecord,
        sutazai_monitor::Delivery,
        sutazai_monitor::Rule,
        sutazai_monitor::Comparison,
        sutazai_monitor::Severity,
        sutazai_monitor::HostSnapshot,
        sutazai_monitor::sampler::DiskSample,
        sutazai_monitor::sampler::NetworkSample,
        sutazai_monitor::sampler::TemperatureSample,
        sutazai_monitor::sampler::ProcessSample,
        sutazai_monitor::GpuSample,
        sutazai_monitor::gpu::GpuProcessSample,
        sutazai_monitor::SeriesAnswer,
        sutazai_monitor::SeriesInfo,
        sutazai_monitor::SeriesPoint,
        sutazai_monitor::history::SeriesData,
    ))
)]
struct Document;

/// The two ways to authenticate when the server runs with `ENABLE_AUTH`: a bearer token
/// (JWT from `POST /auth/token`, or an API key) and the `X-API-Key` header.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT or API key (szk_…)")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// `GET /openapi.json`.
pub(crate) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(Document::openapi())
}
