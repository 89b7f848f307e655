//! Monitoring routes: alerts (list and history, acknowledge, rules), the host's latest and
//! recent samples, stored time series by range and step, and `GET /metrics` in the
//! Prometheus text exposition format.

use std::fmt::Write as _;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sutazai_monitor::{
    AlertError, AlertRecord, HostSnapshot, Monitor, Rule, SeriesAnswer, SeriesInfo, SeriesQuery,
};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};

impl From<AlertError> for ApiError {
    fn from(e: AlertError) -> Self {
        let status = match e {
            AlertError::InvalidRule(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AlertError::InvalidQuery { .. } => StatusCode::BAD_REQUEST,
            AlertError::NoHistory => StatusCode::SERVICE_UNAVAILABLE,
            AlertError::History(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::NOT_FOUND,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

fn monitor(state: &AppState) -> Result<&Monitor, ApiError> {
    state.monitor.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "monitoring_off",
            "monitoring is off in this process (it runs in `sutazai serve` and the desktop app)",
        )
    })
}

/// Filters of `GET /alerts`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AlertQuery {
    /// `firing` or `resolved`.
    #[param(schema_with = alert_status_filter)]
    status: Option<String>,
    /// Only alerts with a smaller id (the next page: the last id of this one).
    #[param(minimum = 0)]
    before: Option<i64>,
    /// At most this many (1 to 1000; 1000 by default).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

fn alert_status_filter() -> utoipa::openapi::Object {
    crate::openapi::string_enum(&["firing", "resolved"])
}

/// Answer of `GET /alerts`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AlertList {
    /// The alerts, newest first.
    alerts: Vec<AlertRecord>,
    /// The rules in use.
    rules: Vec<Rule>,
}

/// `GET /alerts`: the stored alert history newest first (firing and resolved), with the
/// rules in use.
#[utoipa::path(get, path = "/alerts", params(AlertQuery),
    responses((status = 200, body = AlertList), (status = 400, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
pub(crate) async fn list_alerts(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<AlertQuery>,
) -> Result<Json<AlertList>, ApiError> {
    let monitor = monitor(&state)?;
    if let Some(status) = query.status.as_deref()
        && status != "firing"
        && status != "resolved"
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("status `{status}` is not one of firing, resolved"),
        ));
    }
    let limit = query.limit.unwrap_or(1000);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("limit {limit} is not between 1 and 1000"),
        ));
    }
    // Alert ids are SQLite row ids: they fit an i64.
    let before = match query.before.map(u64::try_from) {
        None => None,
        Some(Ok(before)) => Some(before),
        Some(Err(_)) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                "before must be 0 or more",
            ));
        }
    };
    let alerts: Vec<AlertRecord> = monitor
        .alert_history(query.status.clone(), before, limit)
        .await?;
    Ok(Json(AlertList {
        alerts,
        rules: monitor.rules(),
    }))
}

/// `POST /alerts/{id}/acknowledge`.
#[utoipa::path(post, path = "/alerts/{id}/acknowledge",
    responses((status = 200, body = AlertRecord), (status = 404, body = crate::error::ErrorBody)))]
pub(crate) async fn acknowledge_alert(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<AlertRecord>, ApiError> {
    let id: u64 = id.parse().map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "alert_not_found",
            format!("no alert {id:?}"),
        )
    })?;
    Ok(Json(monitor(&state)?.acknowledge(id)?))
}

/// `PUT /alerts/rules/{id}`: changes a rule (threshold, duration, cooldown, severity, on
/// or off); its alerts' state starts over. The body's `id` may be left out; when given it
/// must be the path's. (The document describes the body as `RuleUpdate`: `Rule` with `id`
/// optional.)
#[utoipa::path(put, path = "/alerts/rules/{id}", request_body = Rule,
    responses((status = 200, body = Rule), (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
pub(crate) async fn set_rule(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<Rule>, ApiError> {
    let monitor = monitor(&state)?;
    // No rule at this path: 404, whatever the body says.
    if !monitor.rules().iter().any(|r| r.id == id) {
        return Err(AlertError::UnknownRule(id).into());
    }
    let rule: Rule = crate::extract::from_value(crate::routes::with_path_id(body, &id))?;
    if rule.id != id {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_rule",
            format!("the body's id {:?} is not the path's {id:?}", rule.id),
        ));
    }
    Ok(Json(monitor.set_rule(rule)?))
}

/// Parameters of `GET /monitoring/host`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct HostParams {
    /// ISO 8601: only samples taken after this go into `history` (a live graph asks for
    /// what it has not got yet instead of the whole hour).
    #[param(schema_with = crate::openapi::date_time)]
    since: Option<String>,
}

/// Answer of `GET /monitoring/host`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HostAnswer<'a> {
    /// The latest sample; `null` before the first.
    latest: Option<&'a HostSnapshot>,
    /// The recent samples (after `since`), oldest first.
    history: Vec<&'a HostSnapshot>,
}

/// `GET /monitoring/host`: the latest host sample and the recent ones (for graphs).
#[utoipa::path(get, path = "/monitoring/host", params(HostParams),
    responses((status = 200, body = HostAnswer), (status = 400, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
pub(crate) async fn host(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<HostParams>,
) -> Result<Response, ApiError> {
    let monitor = monitor(&state)?;
    let since = crate::routes::parse_date("since", params.since.as_deref())?;
    let recent = monitor.host_history();
    let history: Vec<&HostSnapshot> = recent
        .iter()
        .map(AsRef::as_ref)
        .filter(|s| since.is_none_or(|t| s.at > t))
        .collect();
    let latest = monitor.host();
    Ok(Json(HostAnswer {
        latest: latest.as_deref(),
        history,
    })
    .into_response())
}

/// Parameters of `GET /monitoring/series`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SeriesParams {
    /// The metric (`cpu_percent`, `agent_success_rate`, …; see `/monitoring/series/catalogue`).
    #[param(min_length = 1, max_length = 128)]
    metric: String,
    /// One subject (`host`, an agent id, a mount point, `gpu0`); every one when left out.
    subject: Option<String>,
    /// ISO 8601 (an hour before `end` by default); before `end`.
    #[param(schema_with = crate::openapi::date_time)]
    start: Option<String>,
    /// ISO 8601 (now by default).
    #[param(schema_with = crate::openapi::date_time)]
    end: Option<String>,
    /// Seconds per point, 10 to 2592000, at most 500 points over the range (by default the
    /// smallest of 10 s, 30 s, 1 min, 5 min, 15 min, 1 h, 6 h, 1 day giving at most 500).
    #[param(minimum = 10, maximum = 2_592_000)]
    step: Option<i64>,
}

/// Steps chosen when none is given.
const STEPS: [i64; 8] = [10, 30, 60, 300, 900, 3600, 21_600, 86_400];

/// `GET /monitoring/series`: a stored metric over a range, one point per step (mean, min,
/// max, samples) per subject.
#[utoipa::path(get, path = "/monitoring/series", params(SeriesParams),
    responses((status = 200, body = SeriesAnswer), (status = 400, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
pub(crate) async fn series(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<SeriesParams>,
) -> Result<Json<SeriesAnswer>, ApiError> {
    let monitor = monitor(&state)?;
    if params.metric.is_empty() || params.metric.chars().count() > 128 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "metric must be 1 to 128 characters",
        ));
    }
    let end =
        crate::routes::parse_date("end", params.end.as_deref())?.unwrap_or_else(chrono::Utc::now);
    let start = crate::routes::parse_date("start", params.start.as_deref())?
        .unwrap_or(end - chrono::TimeDelta::hours(1));
    let span = (end - start).num_seconds();
    let step = params.step.unwrap_or_else(|| {
        STEPS
            .iter()
            .copied()
            .find(|s| span / s <= 500)
            .unwrap_or(STEPS[STEPS.len() - 1])
    });
    Ok(Json(
        monitor
            .series(SeriesQuery {
                metric: params.metric,
                subject: params.subject,
                start,
                end,
                step,
            })
            .await?,
    ))
}

/// `GET /monitoring/series/catalogue`: every stored series (metric, subject, latest bucket).
#[utoipa::path(get, path = "/monitoring/series/catalogue",
    responses((status = 200, body = [SeriesInfo]), (status = 503, body = crate::error::ErrorBody)))]
pub(crate) async fn series_catalogue(
    State(state): State<AppState>,
) -> Result<Json<Vec<SeriesInfo>>, ApiError> {
    Ok(Json(monitor(&state)?.series_catalogue().await?))
}

/// Escapes a label value for the text format.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes one metric family: HELP, TYPE and its samples.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        if value.is_finite() {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    }
}

/// `GET /metrics`: Prometheus text format (version 0.0.4).
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let mut out = String::new();
    let stats = state.orchestrator.stats();
    family(
        &mut out,
        "sutazai_tasks_active",
        "gauge",
        "Tasks running now.",
        &[(String::new(), stats.active_tasks as f64)],
    );
    family(
        &mut out,
        "sutazai_tasks_queued",
        "gauge",
        "Tasks waiting for a slot.",
        &[(String::new(), stats.queued_tasks as f64)],
    );
    family(
        &mut out,
        "sutazai_tasks_awaiting_approval",
        "gauge",
        "Tasks waiting for approvals.",
        &[(String::new(), stats.awaiting_approval as f64)],
    );
    family(
        &mut out,
        "sutazai_tasks_total",
        "counter",
        "Tasks by outcome since start.",
        &[
            (
                "{outcome=\"submitted\"}".into(),
                stats.tasks_submitted as f64,
            ),
            (
                "{outcome=\"completed\"}".into(),
                stats.tasks_completed as f64,
            ),
            ("{outcome=\"failed\"}".into(), stats.tasks_failed as f64),
        ],
    );
    let agents = state.orchestrator.agents();
    let per_agent = |f: &dyn Fn(&sutazai_orchestrator::AgentInfo) -> Option<f64>| {
        agents
            .iter()
            .filter_map(|a| f(a).map(|v| (format!("{{agent=\"{}\"}}", label(&a.id)), v)))
            .collect::<Vec<_>>()
    };
    family(
        &mut out,
        "sutazai_agent_steps_completed_total",
        "counter",
        "Steps an agent completed.",
        &per_agent(&|a| Some(a.completed_steps as f64)),
    );
    family(
        &mut out,
        "sutazai_agent_steps_failed_total",
        "counter",
        "Steps an agent failed.",
        &per_agent(&|a| Some(a.failed_steps as f64)),
    );
    family(
        &mut out,
        "sutazai_agent_success_rate",
        "gauge",
        "Share of an agent's steps that succeeded (0 to 1).",
        &per_agent(&|a| a.success_rate),
    );
    family(
        &mut out,
        "sutazai_agent_response_time_seconds",
        "gauge",
        "Mean seconds per completed step.",
        &per_agent(&|a| a.average_response_time),
    );
    family(
        &mut out,
        "sutazai_agent_load",
        "gauge",
        "Active steps over the agent's concurrency (0 to 1).",
        &per_agent(&|a| Some(a.load)),
    );
    if let Ok(bus) = state.orchestrator.bus().stats().await {
        family(
            &mut out,
            "sutazai_bus_messages_per_minute",
            "gauge",
            "Messages published in the last minute.",
            &[(String::new(), bus.messages_per_minute as f64)],
        );
        family(
            &mut out,
            "sutazai_bus_messages_total",
            "counter",
            "Bus messages by outcome since start.",
            &[
                ("{outcome=\"published\"}".into(), bus.published as f64),
                ("{outcome=\"delivered\"}".into(), bus.delivered as f64),
                ("{outcome=\"acknowledged\"}".into(), bus.acknowledged as f64),
                ("{outcome=\"retried\"}".into(), bus.retried as f64),
                (
                    "{outcome=\"dead_lettered\"}".into(),
                    bus.dead_lettered as f64,
                ),
            ],
        );
        family(
            &mut out,
            "sutazai_bus_dead_letters",
            "gauge",
            "Messages in the dead-letter queue.",
            &[(String::new(), bus.dead_letters as f64)],
        );
        let waiting: Vec<(String, f64)> = bus
            .queues
            .iter()
            .map(|q| {
                (
                    format!("{{queue=\"{}\"}}", label(&q.queue)),
                    q.waiting as f64,
                )
            })
            .collect();
        family(
            &mut out,
            "sutazai_bus_queue_waiting",
            "gauge",
            "Messages waiting per queue.",
            &waiting,
        );
    }
    if let Some(monitor) = &state.monitor {
        if let Some(h) = monitor.host() {
            family(
                &mut out,
                "sutazai_host_cpu_percent",
                "gauge",
                "Host CPU use, percent of all cores.",
                &[(String::new(), h.cpu_percent)],
            );
            family(
                &mut out,
                "sutazai_host_memory_used_bytes",
                "gauge",
                "Host memory in use.",
                &[(String::new(), h.memory_used_bytes as f64)],
            );
            family(
                &mut out,
                "sutazai_host_memory_total_bytes",
                "gauge",
                "Host memory in all.",
                &[(String::new(), h.memory_total_bytes as f64)],
            );
            family(
                &mut out,
                "sutazai_host_load_average",
                "gauge",
                "Load averages.",
                &[
                    ("{period=\"1m\"}".into(), h.load_average[0]),
                    ("{period=\"5m\"}".into(), h.load_average[1]),
                    ("{period=\"15m\"}".into(), h.load_average[2]),
                ],
            );
            let disks: Vec<(String, f64)> = h
                .disks
                .iter()
                .map(|d| (format!("{{mount=\"{}\"}}", label(&d.mount)), d.used_percent))
                .collect();
            family(
                &mut out,
                "sutazai_host_disk_used_percent",
                "gauge",
                "Disk use per mount, percent.",
                &disks,
            );
            let rx: Vec<(String, f64)> = h
                .networks
                .iter()
                .map(|n| {
                    (
                        format!("{{interface=\"{}\"}}", label(&n.interface)),
                        n.rx_bytes_per_second,
                    )
                })
                .collect();
            family(
                &mut out,
                "sutazai_host_network_receive_bytes_per_second",
                "gauge",
                "Bytes received per second.",
                &rx,
            );
            let tx: Vec<(String, f64)> = h
                .networks
                .iter()
                .map(|n| {
                    (
                        format!("{{interface=\"{}\"}}", label(&n.interface)),
                        n.tx_bytes_per_second,
                    )
                })
                .collect();
            family(
                &mut out,
                "sutazai_host_network_transmit_bytes_per_second",
                "gauge",
                "Bytes sent per second.",
                &tx,
            );
        }
        let (firing, _, _) = monitor.firing_summary();
        family(
            &mut out,
            "sutazai_alerts_firing",
            "gauge",
            "Alerts firing now.",
            &[(String::new(), firing as f64)],
        );
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}
