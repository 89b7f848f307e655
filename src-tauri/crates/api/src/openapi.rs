//! The OpenAPI document served at `/openapi.json`, generated from the handlers'
//! annotations so it cannot drift from the routes.

use axum::Json;
use utoipa::OpenApi;

use crate::routes;

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
        routes::control_agent,
        routes::submit_task,
        routes::list_tasks,
        routes::get_task,
        routes::cancel_task,
        routes::approve_task,
        routes::send_message,
        routes::broadcast_message,
        routes::infrastructure_status,
        routes::deploy_all,
        routes::control_service,
        routes::analytics,
    ),
    components(schemas(
        crate::error::ErrorBody,
        sutazai_core::TaskRequest,
        sutazai_core::Task,
        sutazai_core::Step,
        sutazai_core::Message,
    ))
)]
struct Document;

/// `GET /openapi.json`.
pub(crate) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(Document::openapi())
}
