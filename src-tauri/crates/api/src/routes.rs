//! REST handlers for the system description's routes plus task approval; the message-bus
//! routes are in `messages`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Local, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sutazai_core::{AgentSpec, AgentState, TaskRequest, TaskStatus};
use sutazai_orchestrator::{
    AgentAction, AgentDefinition, AgentInfo, AgentRemoval, Analytics, DefineMode, TaskDetail,
    TaskFilter,
};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::{health, messages};

/// Most tasks one list returns.
const MAX_LIMIT: usize = 1000;

/// `GET /health`.
#[utoipa::path(get, path = "/health", responses((status = 200, body = health::Health)))]
pub(crate) async fn health(State(state): State<AppState>) -> Json<health::Health> {
    Json(health::check(&state).await)
}

/// `GET /status`.
#[utoipa::path(get, path = "/status", responses((status = 200, description = "Comprehensive status")))]
pub(crate) async fn status(State(state): State<AppState>) -> Json<Value> {
    let health = health::check(&state).await;
    let stats = state.orchestrator.stats();
    let message_bus = messages::bus_status(state.orchestrator.bus()).await;
    let agents = state.orchestrator.agents();
    let count = |s: AgentState| agents.iter().filter(|a| a.status == s).count();
    Json(json!({
        "status": health.status,
        "system_health": health.system_health,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime": state.started.elapsed().as_secs_f64(),
        "active_tasks": stats.active_tasks,
        "queued_tasks": stats.queued_tasks,
        "awaiting_approval": stats.awaiting_approval,
        "max_concurrent_tasks": stats.max_concurrent_tasks,
        "paused": stats.paused,
        "tasks_interrupted": stats.tasks_interrupted,
        "tasks": {
            "submitted": stats.tasks_submitted,
            "completed": stats.tasks_completed,
            "failed": stats.tasks_failed,
        },
        "agents": {
            "total": agents.len(),
            "healthy": count(AgentState::Healthy),
            "degraded": count(AgentState::Degraded),
            "stopped": count(AgentState::Stopped),
        },
        "llm": health.llm,
        "journal": {"ok": health.journal_ok},
        "message_bus": message_bus,
        "infrastructure": match &state.infra {
            Some(infra) => serde_json::to_value(infra.availability()).unwrap_or_default(),
            None => json!({
                "available": false,
                "reason": "infrastructure management is off in this process",
            }),
        },
        "monitoring": match &state.monitor {
            Some(monitor) => {
                let host = monitor.host();
                json!({
                    "enabled": true,
                    "alerts_firing": health.alerts_firing,
                    "alerts_critical": health.alerts_critical,
                    "cpu_percent": host.as_ref().map(|h| h.cpu_percent),
                    "memory_percent": host.as_ref().map(|h| h.memory_percent),
                    "gpus": host.as_ref().map_or(0, |h| h.gpus.len()),
                    "history": monitor.history().is_some(),
                })
            }
            None => json!({"enabled": false}),
        },
    }))
}

/// Answer of `POST /orchestration/pause` and `/orchestration/resume`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Paused {
    /// Whether orchestration is paused now.
    paused: bool,
    /// Whether it was paused before.
    was_paused: bool,
}

/// `POST /orchestration/pause`: queued tasks wait (submissions are still accepted and
/// journaled; running tasks go on) until `POST /orchestration/resume`.
#[utoipa::path(post, path = "/orchestration/pause", responses((status = 200, body = Paused)))]
pub(crate) async fn pause(State(state): State<AppState>) -> Json<Paused> {
    let was_paused = state.orchestrator.set_paused(true);
    Json(Paused {
        paused: true,
        was_paused,
    })
}

/// `POST /orchestration/resume`.
#[utoipa::path(post, path = "/orchestration/resume", responses((status = 200, body = Paused)))]
pub(crate) async fn resume(State(state): State<AppState>) -> Json<Paused> {
    let was_paused = state.orchestrator.set_paused(false);
    Json(Paused {
        paused: false,
        was_paused,
    })
}

/// Filters for `GET /agents`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AgentQuery {
    /// `healthy`, `degraded` or `stopped` (`all` or empty: every agent).
    #[param(schema_with = agent_status_filter)]
    status: Option<String>,
    /// Only agents with this capability.
    capability: Option<String>,
}

fn agent_status_filter() -> utoipa::openapi::Object {
    crate::openapi::string_enum(&["", "all", "healthy", "degraded", "stopped"])
}

/// Answer of `GET /agents`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AgentList {
    /// The agents.
    agents: Vec<AgentInfo>,
    /// How many are listed.
    total: usize,
}

/// `GET /agents`.
#[utoipa::path(get, path = "/agents", params(AgentQuery), responses((status = 200, body = AgentList)))]
pub(crate) async fn list_agents(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<AgentQuery>,
) -> Result<Json<AgentList>, ApiError> {
    let status = match query.status.as_deref() {
        None | Some("") | Some("all") => None,
        Some("healthy") => Some(AgentState::Healthy),
        Some("degraded") => Some(AgentState::Degraded),
        Some("stopped") => Some(AgentState::Stopped),
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                format!("status `{other}` is not one of healthy, degraded, stopped"),
            ));
        }
    };
    let agents: Vec<AgentInfo> = state
        .orchestrator
        .agents()
        .into_iter()
        .filter(|a| status.is_none_or(|s| a.status == s))
        .filter(|a| {
            query
                .capability
                .as_deref()
                .is_none_or(|c| a.capabilities.iter().any(|x| x == c))
        })
        .collect();
    Ok(Json(AgentList {
        total: agents.len(),
        agents,
    }))
}

/// `GET /agents/{agent_id}`.
#[utoipa::path(get, path = "/agents/{agent_id}", responses((status = 200, body = AgentInfo), (status = 404, body = crate::error::ErrorBody)))]
pub(crate) async fn get_agent(
    State(state): State<AppState>,
    Path(agent_id): Path<String>,
) -> Result<Json<AgentInfo>, ApiError> {
    Ok(Json(state.orchestrator.agent(&agent_id)?))
}

/// `POST /agents`: adds a user agent (written to the user agent directory, selectable at
/// once). 409 `agent_conflict` when the id exists (use `PUT /agents/{agent_id}`); 422
/// `invalid_request` naming the field that breaks the registry's rules.
#[utoipa::path(post, path = "/agents", request_body = AgentSpec, responses((status = 201, body = AgentInfo), (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub(crate) async fn create_agent(
    State(state): State<AppState>,
    ApiJson(spec): ApiJson<AgentSpec>,
) -> Result<(StatusCode, Json<AgentInfo>), ApiError> {
    let (info, _) = state
        .orchestrator
        .define_agent(spec, DefineMode::Create)
        .await?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// `PUT /agents/{agent_id}`: adds or redefines an agent (a built-in one included, which a
/// user file then overrides); 201 when new, 200 when replaced. The body's `id` may be
/// left out; when given it must be the path's. (The document describes the body as
/// `AgentSpecUpdate`: `AgentSpec` with `id` optional.)
#[utoipa::path(put, path = "/agents/{agent_id}", request_body = AgentSpec, responses((status = 200, body = AgentInfo), (status = 201, body = AgentInfo), (status = 422, body = crate::error::ErrorBody)))]
pub(crate) async fn put_agent(
    State(state): State<AppState>,
    Path(agent_id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, Json<AgentInfo>), ApiError> {
    let spec: AgentSpec = crate::extract::from_value(with_path_id(body, &agent_id))?;
    if spec.id != agent_id {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            format!(
                "invalid `id`: the body names `{}` but the path names `{agent_id}`; an agent's id cannot change",
                spec.id
            ),
        ));
    }
    let (info, created) = state
        .orchestrator
        .define_agent(spec, DefineMode::CreateOrReplace)
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(info)))
}

/// A body object with `id` set to the path's when it has none (a body that is no object
/// is left as it is, for the type error).
pub(crate) fn with_path_id(mut body: Value, id: &str) -> Value {
    if let Some(fields) = body.as_object_mut() {
        fields
            .entry("id")
            .or_insert_with(|| Value::String(id.to_owned()));
    }
    body
}

/// `DELETE /agents/{agent_id}`: deletes a user agent's file; a built-in it overrode comes
/// back. 409 for a built-in agent or one with steps running.
#[utoipa::path(delete, path = "/agents/{agent_id}", responses((status = 200, body = AgentRemoval), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub(crate) async fn delete_agent(
    State(state): State<AppState>,
    Path(agent_id): Path<String>,
) -> Result<Json<AgentRemoval>, ApiError> {
    Ok(Json(state.orchestrator.remove_agent(&agent_id).await?))
}

/// `GET /agents/{agent_id}/definition`: the full definition (prompt, temperature, …) and
/// where it comes from, for editing.
#[utoipa::path(get, path = "/agents/{agent_id}/definition", responses((status = 200, body = AgentDefinition), (status = 404, body = crate::error::ErrorBody)))]
pub(crate) async fn agent_definition(
    State(state): State<AppState>,
    Path(agent_id): Path<String>,
) -> Result<Json<AgentDefinition>, ApiError> {
    Ok(Json(state.orchestrator.agent_definition(&agent_id)?))
}

/// Body of `POST /agents/{agent_id}/control`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ControlRequest {
    /// `start`, `stop`, `restart` or `scale`.
    #[schema(schema_with = agent_action)]
    action: String,
    /// For `scale` (required there, 1 to 256): how many steps the agent may run at once.
    instances: Option<u32>,
}

fn agent_action() -> utoipa::openapi::Object {
    crate::openapi::string_enum(&["start", "stop", "restart", "scale"])
}

/// Answer of `POST /agents/{agent_id}/control`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Controlled {
    /// The agent's id.
    agent_id: String,
    /// The action applied.
    action: String,
    /// Its state now.
    status: AgentState,
    /// The agent now.
    agent: AgentInfo,
    /// Its worker containers' status after the same action, or `{"error": {code,
    /// message}}` when Docker could not apply it; `null` when it has none (or this process
    /// does not manage Docker).
    workers: Value,
}

/// `POST /agents/{agent_id}/control`.
#[utoipa::path(post, path = "/agents/{agent_id}/control", request_body = ControlRequest, responses((status = 200, body = Controlled), (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub(crate) async fn control_agent(
    State(state): State<AppState>,
    Path(agent_id): Path<String>,
    ApiJson(body): ApiJson<ControlRequest>,
) -> Result<Json<Controlled>, ApiError> {
    let action = match body.action.as_str() {
        "start" => AgentAction::Start,
        "stop" => AgentAction::Stop,
        "restart" => AgentAction::Restart,
        "scale" => AgentAction::Scale(body.instances.ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                "`instances` is required for the scale action",
            )
        })?),
        other => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                format!("action `{other}` is not one of start, stop, restart, scale"),
            ));
        }
    };
    // Checked before anything changes: `scale` also sizes the agent's worker containers.
    if let (Some(infra), Some(n)) = (&state.infra, body.instances)
        && infra.availability().available
        && n > sutazai_infra::catalogue::MAX_REPLICAS
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            format!(
                "instances {n} is above the limit of {} worker containers",
                sutazai_infra::catalogue::MAX_REPLICAS
            ),
        ));
    }
    let agent = state.orchestrator.control_agent(&agent_id, action)?;
    let workers = agent_workers(&state, &agent.id, &body.action, body.instances).await;
    Ok(Json(Controlled {
        agent_id: agent.id.clone(),
        action: body.action,
        status: agent.status,
        agent,
        workers,
    }))
}

/// The agent's worker containers (service `worker-{agent}`, each running `sutazai worker
/// --agents {agent}`), given the same action: `scale` creates the service; start, stop and
/// restart apply once it exists. Without Docker the in-process part above still applies
/// and this says why the containers were not touched.
async fn agent_workers(
    state: &AppState,
    agent: &str,
    action: &str,
    instances: Option<u32>,
) -> Value {
    let Some(infra) = &state.infra else {
        return Value::Null;
    };
    let outcome = async {
        let service = format!("worker-{agent}");
        if action != "scale" && infra.catalogue().get(&service).is_none() {
            return Ok(None);
        }
        let service = infra.ensure_agent_worker(agent).await?;
        let action = crate::infra::parse_action(action).map_err(|_| {
            sutazai_infra::InfraError::Invalid(format!("no container action {action}"))
        })?;
        infra.control(&service, action, instances).await.map(Some)
    }
    .await;
    match outcome {
        Ok(Some(status)) => serde_json::to_value(status).unwrap_or_default(),
        Ok(None) => Value::Null,
        Err(e) => json!({"error": {"code": e.code(), "message": e.to_string()}}),
    }
}

/// Answer of `POST /tasks`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Submitted {
    /// The task's id.
    task_id: String,
    /// Its coordination session's id.
    session_id: String,
    /// `queued` or `awaiting_approval`.
    status: TaskStatus,
    /// Approvals it waits for.
    pending_approvals: Vec<String>,
}

/// `POST /tasks`.
#[utoipa::path(post, path = "/tasks", request_body = TaskRequest, responses((status = 201, body = Submitted), (status = 422, body = crate::error::ErrorBody)))]
pub(crate) async fn submit_task(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<TaskRequest>,
) -> Result<(StatusCode, Json<Submitted>), ApiError> {
    let task = state.orchestrator.submit(request).await?;
    Ok((
        StatusCode::CREATED,
        Json(Submitted {
            pending_approvals: task.pending_approvals(),
            task_id: task.id,
            session_id: task.session_id,
            status: task.status,
        }),
    ))
}

/// Filters for `GET /tasks`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct TaskQuery {
    /// A status, or `active` for every unfinished task (`all` or empty: every task).
    #[param(schema_with = task_status_filter)]
    status: Option<String>,
    /// At most this many (default 50, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

fn task_status_filter() -> utoipa::openapi::Object {
    crate::openapi::string_enum(&[
        "",
        "all",
        "active",
        "queued",
        "awaiting_approval",
        "running",
        "completed",
        "failed",
        "cancelled",
    ])
}

/// Answer of `GET /tasks`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TaskList {
    /// The tasks, newest first.
    tasks: Vec<sutazai_core::Task>,
    /// How many are listed.
    total: usize,
}

/// `GET /tasks`.
#[utoipa::path(get, path = "/tasks", params(TaskQuery), responses((status = 200, body = TaskList, description = "Tasks, newest first")))]
pub(crate) async fn list_tasks(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<TaskQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let filter = match query.status.as_deref() {
        None | Some("") | Some("all") => TaskFilter::All,
        Some("active") => TaskFilter::Active,
        Some(s) => TaskFilter::Status(TaskStatus::parse(s).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                format!(
                    "status `{s}` is not one of active, queued, awaiting_approval, running, completed, failed, cancelled"
                ),
            )
        })?),
    };
    let limit = query.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("limit must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let tasks = state.orchestrator.tasks(filter, limit).await?;
    state.masked(&TaskList {
        total: tasks.len(),
        tasks,
    })
}

/// `GET /tasks/{task_id}`.
#[utoipa::path(get, path = "/tasks/{task_id}", responses((status = 200, body = TaskDetail), (status = 404, body = crate::error::ErrorBody)))]
pub(crate) async fn get_task(
    State(state): State<AppState>,
    Path(task_id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    state.masked(&state.orchestrator.task_detail(&task_id).await?)
}

/// Answer of `DELETE /tasks/{task_id}`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Cancelled {
    /// The task's id.
    task_id: String,
    /// `cancelled`.
    status: TaskStatus,
    /// The cancelled task.
    task: sutazai_core::Task,
}

/// `DELETE /tasks/{task_id}`.
#[utoipa::path(delete, path = "/tasks/{task_id}", responses((status = 200, body = Cancelled, description = "The cancelled task"), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub(crate) async fn cancel_task(
    State(state): State<AppState>,
    Path(task_id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let task = state.orchestrator.cancel(&task_id).await?;
    state.masked(&Cancelled {
        task_id: task.id.clone(),
        status: task.status,
        task,
    })
}

/// Body of `POST /tasks/{task_id}/approve`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApproveRequest {
    /// One of the task's `required_approvals`.
    approval: String,
    /// Who approves (free text).
    #[serde(default)]
    approved_by: Option<String>,
}

/// Answer of `POST /tasks/{task_id}/approve`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Approved {
    /// The task's id.
    task_id: String,
    /// `queued` once every approval is given, else `awaiting_approval`.
    status: TaskStatus,
    /// Approvals it still waits for.
    pending_approvals: Vec<String>,
    /// Approvals given so far.
    approvals: Vec<sutazai_core::Approval>,
}

/// `POST /tasks/{task_id}/approve`.
#[utoipa::path(post, path = "/tasks/{task_id}/approve", request_body = ApproveRequest, responses((status = 200, body = Approved, description = "The task after the approval"), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub(crate) async fn approve_task(
    State(state): State<AppState>,
    Path(task_id): Path<String>,
    ApiJson(body): ApiJson<ApproveRequest>,
) -> Result<Json<Approved>, ApiError> {
    let by = body.approved_by.unwrap_or_else(|| "api".to_owned());
    let task = state
        .orchestrator
        .approve(&task_id, &body.approval, &by)
        .await?;
    Ok(Json(Approved {
        pending_approvals: task.pending_approvals(),
        task_id: task.id,
        status: task.status,
        approvals: task.approvals,
    }))
}

/// Window of `GET /analytics/performance`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AnalyticsQuery {
    /// ISO 8601 (RFC 3339); also accepted without an offset, as the server's local time
    /// (Python's `isoformat()`).
    #[param(schema_with = crate::openapi::date_time)]
    start_date: Option<String>,
    /// ISO 8601, as `start_date`; after `start_date`.
    #[param(schema_with = crate::openapi::date_time)]
    end_date: Option<String>,
}

pub(crate) fn parse_date(
    field: &str,
    value: Option<&str>,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if let Ok(d) = DateTime::parse_from_rfc3339(value) {
        return Ok(Some(d.with_timezone(&Utc)));
    }
    NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .and_then(|naive| Local.from_local_datetime(&naive).earliest())
        .map(|d| Some(d.with_timezone(&Utc)))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                format!("{field} `{value}` is not an ISO 8601 date-time"),
            )
        })
}

/// `GET /analytics/performance`: from the journal, per agent and overall over the steps
/// that finished in `[start_date, end_date)`, per coordination pattern over the tasks that
/// ended in it, with nearest-rank p50/p95 response times and task durations, token totals
/// and (when both dates are given) completed tasks per hour.
#[utoipa::path(
    get,
    path = "/analytics/performance",
    params(AnalyticsQuery),
    responses(
        (status = 200, body = Analytics),
        (status = 400, description = "A date is not ISO 8601", body = crate::error::ErrorBody),
        (status = 422, description = "start_date is after end_date", body = crate::error::ErrorBody),
    )
)]
pub(crate) async fn analytics(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<AnalyticsQuery>,
) -> Result<Json<Analytics>, ApiError> {
    let start = parse_date("start_date", query.start_date.as_deref())?;
    let end = parse_date("end_date", query.end_date.as_deref())?;
    Ok(Json(state.orchestrator.analytics(start, end).await?))
}
