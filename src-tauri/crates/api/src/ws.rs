//! WebSockets: `/ws` streams system status and orchestrator events; `/ws/agent/{id}`
//! streams one agent's status, its steps and the bus messages addressed to it.
//!
//! Events keep the system description's shapes: `{"type": "system_status", "data":
//! {"system_health", "active_tasks", …}}`, `{"type": "task_completed", "task_name", …}`,
//! `{"type": "alert", "message", "severity"}`; infrastructure events (deploy steps, pull
//! progress, heals, scaling, Docker availability) come as `{"type": "infrastructure",
//! "data": …}`. Each loop ends when the client leaves or the
//! server shuts down.
//!
//! `/ws/agent/{id}` watches the bus as an observer (`Filter::Agent`: the agent's inbox and
//! broadcasts): it sees each message as `{"type": "message", "message": …}` without
//! taking it from the agent. If the bus cannot be observed the client gets
//! `{"type": "error", "code", "message"}` once and still receives the agent's events.

use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use sutazai_bus::{BusError, Filter};
use sutazai_core::AgentState;
use sutazai_infra::InfraEvent;
use sutazai_orchestrator::Event;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::health;

/// Options of `/ws`.
#[derive(Debug, Deserialize)]
pub(crate) struct WsOptions {
    /// Also stream model output chunks (`step_token` events); off by default.
    tokens: Option<bool>,
}

/// How often an open socket's credential is checked again.
const SESSION_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// The credential a socket was opened with: checked again every second, so a socket ends
/// when its token expires or its token or key is revoked, not only at the upgrade.
struct Session {
    auth: Option<sutazai_auth::Auth>,
    principal: Option<sutazai_auth::Principal>,
    every: tokio::time::Interval,
}

impl Session {
    fn new(state: &AppState, caller: Caller) -> Session {
        Session {
            auth: state.security.as_ref().and_then(|s| s.auth.clone()),
            principal: caller.0,
            every: tokio::time::interval(SESSION_CHECK),
        }
    }

    /// Resolves once the credential is no longer good; never without authentication.
    async fn ended(&mut self) {
        let (Some(auth), Some(principal)) = (&self.auth, &self.principal) else {
            return std::future::pending().await;
        };
        loop {
            self.every.tick().await;
            if !auth.still_valid(principal) {
                return;
            }
        }
    }
}

/// Tells the client why the socket closes, then closes it.
async fn end_session(socket: &mut WebSocket) {
    let notice = json!({
        "type": "error",
        "code": "session_ended",
        "message": "the credential this socket was opened with expired or was revoked: sign in again",
    });
    let _ = send(socket, &notice).await;
    let _ = socket.send(WsMessage::Close(None)).await;
}

/// `GET /ws`.
pub(crate) async fn system(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiQuery(options): ApiQuery<WsOptions>,
) -> Response {
    let tokens = options.tokens.unwrap_or(false);
    let session = Session::new(&state, caller);
    ws.on_upgrade(move |socket| system_loop(socket, state, tokens, session))
}

async fn system_status(state: &AppState) -> Value {
    let health = health::check(state).await;
    let stats = state.orchestrator.stats();
    json!({
        "type": "system_status",
        "timestamp": Utc::now(),
        "data": {
            "system_health": health.system_health,
            "status": health.status,
            "active_tasks": stats.active_tasks,
            "queued_tasks": stats.queued_tasks,
            "awaiting_approval": stats.awaiting_approval,
            "agents_healthy": stats.agents_healthy,
            "agents_total": stats.agents_total,
            "tasks_completed": stats.tasks_completed,
            "tasks_failed": stats.tasks_failed,
            "llm_reachable": health.llm.reachable,
        }
    })
}

/// The alert a degraded agent raises.
fn alert_for(event: &Event) -> Option<Value> {
    match event {
        Event::AgentStatus {
            agent_id,
            status: AgentState::Degraded,
        } => Some(json!({
            "type": "alert",
            "severity": "warning",
            "message": format!("agent {agent_id} is degraded: its circuit breaker opened after repeated failures"),
            "agent_id": agent_id,
            "timestamp": Utc::now(),
        })),
        _ => None,
    }
}

async fn send(socket: &mut WebSocket, value: &Value) -> bool {
    socket
        .send(WsMessage::Text(value.to_string().into()))
        .await
        .is_ok()
}

/// Sends an event, and the alert it raises if any; false once the client is gone.
async fn forward(socket: &mut WebSocket, event: &Event) -> bool {
    let value = serde_json::to_value(event).unwrap_or(Value::Null);
    if !send(socket, &value).await {
        return false;
    }
    match alert_for(event) {
        Some(alert) => send(socket, &alert).await,
        None => true,
    }
}

/// An infrastructure event as sent on `/ws`: `{"type": "infrastructure", "event": …}`, and
/// for alerts (the healer gave up, a deploy failed) the spec's `alert` shape as well.
fn infra_messages(event: &InfraEvent) -> Vec<Value> {
    let mut out = vec![json!({
        "type": "infrastructure",
        "timestamp": Utc::now(),
        "data": event,
    })];
    if let InfraEvent::Alert {
        severity,
        service,
        message,
    } = event
    {
        out.push(json!({
            "type": "alert",
            "severity": severity,
            "message": message,
            "service": service,
            "timestamp": Utc::now(),
        }));
    }
    out
}

/// The next infrastructure event, or never when this process manages none.
async fn next_infra(
    events: &mut Option<tokio::sync::broadcast::Receiver<InfraEvent>>,
) -> Result<InfraEvent, RecvError> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// An alert change in the system description's shape (`{"type": "alert", "message",
/// "severity"}`), with the record's fields.
fn alert_message(record: &sutazai_monitor::AlertRecord) -> Value {
    json!({
        "type": "alert",
        "severity": record.severity,
        "message": record.message,
        "status": record.status,
        "alert": record,
        "timestamp": Utc::now(),
    })
}

/// The next alert change, or never when this process runs no monitor.
async fn next_alert(
    alerts: &mut Option<tokio::sync::broadcast::Receiver<sutazai_monitor::AlertRecord>>,
) -> Result<sutazai_monitor::AlertRecord, RecvError> {
    match alerts {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn system_loop(mut socket: WebSocket, state: AppState, tokens: bool, mut session: Session) {
    let mut events = state.orchestrator.subscribe();
    let mut infra_events = state.infra.as_ref().map(sutazai_infra::Infra::subscribe);
    let mut alerts = state
        .monitor
        .as_ref()
        .map(sutazai_monitor::Monitor::subscribe);
    let mut tick = tokio::time::interval(state.config.heartbeat_interval);
    loop {
        tokio::select! {
            _ = state.orchestrator.stopping() => break,
            () = session.ended() => return end_session(&mut socket).await,
            _ = tick.tick() => {
                if !send(&mut socket, &system_status(&state).await).await { return; }
            }
            event = events.recv() => match event {
                Ok(Event::StepToken { .. }) if !tokens => {}
                Ok(event) => {
                    if !forward(&mut socket, &event).await { return; }
                }
                Err(RecvError::Lagged(missed)) => {
                    if !send(&mut socket, &json!({"type": "lagged", "missed": missed})).await { return; }
                }
                Err(RecvError::Closed) => break,
            },
            event = next_infra(&mut infra_events) => match event {
                Ok(event) => {
                    for value in infra_messages(&event) {
                        if !send(&mut socket, &value).await { return; }
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    if !send(&mut socket, &json!({"type": "lagged", "missed": missed})).await { return; }
                }
                Err(RecvError::Closed) => infra_events = None,
            },
            record = next_alert(&mut alerts) => match record {
                Ok(record) => {
                    if !send(&mut socket, &alert_message(&record)).await { return; }
                }
                Err(RecvError::Lagged(missed)) => {
                    if !send(&mut socket, &json!({"type": "lagged", "missed": missed})).await { return; }
                }
                Err(RecvError::Closed) => alerts = None,
            },
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(WsMessage::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = socket.send(WsMessage::Close(None)).await;
}

/// `GET /ws/agent/{agent_id}`.
pub(crate) async fn agent(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(agent_id): Path<String>,
) -> Result<Response, ApiError> {
    state.orchestrator.agent(&agent_id)?;
    let session = Session::new(&state, caller);
    Ok(ws
        .on_upgrade(move |socket| agent_loop(socket, state, agent_id, session))
        .into_response())
}

/// Messages an observer forwards to one socket before it waits for the socket.
const OBSERVED_BUFFER: usize = 64;

/// Stops a socket's observer task when the socket's loop ends, however it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Observes what `agent_id` receives in a task of its own (so the socket loop only ever
/// waits on a channel, which loses nothing when another event wins the `select!`) and
/// hands each message over as its `{"type": "message"}` frame.
async fn observe(
    state: &AppState,
    agent_id: &str,
) -> Result<(mpsc::Receiver<Value>, AbortOnDrop), BusError> {
    let mut observer = state
        .orchestrator
        .bus()
        .observe(Filter::Agent(agent_id.to_owned()))
        .await?;
    let (tx, rx) = mpsc::channel(OBSERVED_BUFFER);
    let pump = tokio::spawn(async move {
        while let Some(delivery) = observer.next().await {
            let frame = json!({"type": "message", "message": &*delivery.message});
            if tx.send(frame).await.is_err() {
                break;
            }
        }
    });
    Ok((rx, AbortOnDrop(pump)))
}

/// The next observed message; never resolves when there is none to come (no observer, or
/// the bus shut down), so the socket's other events keep flowing.
async fn next_observed(observed: &mut Option<mpsc::Receiver<Value>>) -> Value {
    if let Some(rx) = observed.as_mut()
        && let Some(frame) = rx.recv().await
    {
        return frame;
    }
    *observed = None;
    std::future::pending().await
}

async fn agent_loop(
    mut socket: WebSocket,
    state: AppState,
    agent_id: String,
    mut session: Session,
) {
    let mut events = state.orchestrator.subscribe();
    let (mut observed, _observer) = match observe(&state, &agent_id).await {
        Ok((rx, guard)) => (Some(rx), Some(guard)),
        Err(e) => {
            let error = json!({"type": "error", "code": e.code(), "message": e.to_string()});
            if !send(&mut socket, &error).await {
                return;
            }
            (None, None)
        }
    };
    let mut tick = tokio::time::interval(state.config.heartbeat_interval);
    loop {
        tokio::select! {
            _ = state.orchestrator.stopping() => break,
            () = session.ended() => return end_session(&mut socket).await,
            _ = tick.tick() => {
                let Ok(agent) = state.orchestrator.agent(&agent_id) else { break };
                let value = json!({"type": "agent_status", "timestamp": Utc::now(), "agent": agent});
                if !send(&mut socket, &value).await { return; }
            }
            event = events.recv() => match event {
                Ok(event) if event.agent_id() == Some(agent_id.as_str()) => {
                    if !forward(&mut socket, &event).await { return; }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(missed)) => {
                    if !send(&mut socket, &json!({"type": "lagged", "missed": missed})).await { return; }
                }
                Err(RecvError::Closed) => break,
            },
            message = next_observed(&mut observed) => {
                let mut message = message;
                state.config.sensitive_fields.mask_document(&mut message);
                if !send(&mut socket, &message).await { return; }
            }
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(WsMessage::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = socket.send(WsMessage::Close(None)).await;
}
