//! WebSockets: `/ws` streams system status and orchestrator events; `/ws/agent/{id}`
//! streams one agent's status, its steps and the bus messages addressed to it.
//!
//! Events keep the system description's shapes: `{"type": "system_status", "data":
//! {"system_health", "active_tasks", …}}`, `{"type": "task_completed", "task_name", …}`,
//! `{"type": "alert", "message", "severity"}`. Each loop ends when the client leaves or the
//! server shuts down.

use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use sutazai_bus::Received;
use sutazai_core::AgentState;
use sutazai_orchestrator::Event;
use tokio::sync::broadcast::error::RecvError;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::health;

/// Options of `/ws`.
#[derive(Debug, Deserialize)]
pub(crate) struct WsOptions {
    /// Also stream model output chunks (`step_token` events); off by default.
    tokens: Option<bool>,
}

/// `GET /ws`.
pub(crate) async fn system(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    ApiQuery(options): ApiQuery<WsOptions>,
) -> Response {
    let tokens = options.tokens.unwrap_or(false);
    ws.on_upgrade(move |socket| system_loop(socket, state, tokens))
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

async fn system_loop(mut socket: WebSocket, state: AppState, tokens: bool) {
    let mut events = state.orchestrator.subscribe();
    let mut tick = tokio::time::interval(state.config.heartbeat_interval);
    loop {
        tokio::select! {
            _ = state.orchestrator.stopping() => break,
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
    Path(agent_id): Path<String>,
) -> Result<Response, ApiError> {
    state.orchestrator.agent(&agent_id)?;
    Ok(ws
        .on_upgrade(move |socket| agent_loop(socket, state, agent_id))
        .into_response())
}

async fn agent_loop(mut socket: WebSocket, state: AppState, agent_id: String) {
    let mut events = state.orchestrator.subscribe();
    let mut inbox = state.orchestrator.bus().subscribe_agent(&agent_id);
    let mut tick = tokio::time::interval(state.config.heartbeat_interval);
    loop {
        tokio::select! {
            _ = state.orchestrator.stopping() => break,
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
            received = inbox.recv() => match received {
                Some(Received::Message(message)) => {
                    let value = json!({"type": "message", "message": &*message});
                    if !send(&mut socket, &value).await { return; }
                }
                Some(Received::Lagged(missed)) => {
                    if !send(&mut socket, &json!({"type": "lagged", "missed": missed})).await { return; }
                }
                None => break,
            },
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(WsMessage::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = socket.send(WsMessage::Close(None)).await;
}
