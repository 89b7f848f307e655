//! Agent steps over the message bus: the wire format of a step request and its reply, and
//! the requester side ([`call`]) the step runner uses.
//!
//! A step travels as a `task_request` message (request-response) to the agent's inbox,
//! carrying the exact [`ChatRequest`] and the provider to run it on. Whoever consumes that
//! inbox — the [`executor`](crate::executor) in this process or a `sutazai worker`
//! elsewhere — answers with `status_update` messages carrying streamed text and one
//! `task_response` with the outcome. The request expires when the step's timeout does, so
//! nobody starts a step its requester has given up on; a requester that stops waiting
//! (timeout, cancellation) publishes a cancel notice on [`CANCEL_TOPIC`] so the executor
//! aborts the model call.

use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sutazai_bus::{Bus, BusError};
use sutazai_core::{CommunicationPattern, Message, MessageType, Priority, ids};
use sutazai_llm::{ChatRequest, ChatResponse, DoneReason, LlmError};

/// The pub-sub topic cancel notices travel on.
pub const CANCEL_TOPIC: &str = "control.cancel";
/// The sender id of step requests.
pub const ORCHESTRATOR_SENDER: &str = "orchestrator";
/// The payload `kind` of a step request.
const STEP_KIND: &str = "step";

/// What a step request carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepRequest {
    /// Always `step`.
    pub kind: String,
    /// The task.
    pub task_id: String,
    /// The step key.
    pub step: String,
    /// The agent that runs it.
    pub agent_id: String,
    /// The provider (by configured name) to run it on.
    pub provider: String,
    /// The model call.
    pub request: ChatRequest,
}

impl StepRequest {
    /// Reads a step request out of a message payload; `None` for any other message.
    pub fn from_payload(payload: &Map<String, Value>) -> Option<StepRequest> {
        if payload.get("kind").and_then(Value::as_str) != Some(STEP_KIND) {
            return None;
        }
        serde_json::from_value(Value::Object(payload.clone())).ok()
    }
}

/// A step's outcome as the executor reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum StepReply {
    /// The model answered.
    Completed {
        /// The answer.
        content: String,
        /// The model that answered.
        model: String,
        /// Prompt tokens.
        prompt_tokens: u32,
        /// Generated tokens.
        completion_tokens: u32,
        /// Seconds the call took.
        duration_secs: f64,
        /// Why generation stopped.
        done_reason: String,
        /// The node that ran it.
        node: String,
    },
    /// It failed.
    Failed {
        /// Stable code (`llm_unreachable`, `provider_not_found`, `cancelled`, ...).
        code: String,
        /// What went wrong.
        message: String,
        /// Whether trying again may help.
        retryable: bool,
        /// The node that ran it.
        node: String,
    },
}

impl StepReply {
    /// The reply for a finished model call.
    pub fn from_result(result: Result<ChatResponse, LlmError>, node: &str) -> StepReply {
        match result {
            Ok(r) => StepReply::Completed {
                content: r.content,
                model: r.model,
                prompt_tokens: r.prompt_tokens,
                completion_tokens: r.completion_tokens,
                duration_secs: r.duration.as_secs_f64(),
                done_reason: r.done_reason.as_str().to_owned(),
                node: node.to_owned(),
            },
            Err(e) => StepReply::Failed {
                code: e.code().to_owned(),
                message: e.to_string(),
                retryable: e.is_retryable(),
                node: node.to_owned(),
            },
        }
    }

    /// As a message payload.
    pub fn to_payload(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }
}

/// Why a dispatched step did not produce an answer.
#[derive(Debug, Clone, PartialEq)]
pub enum DispatchError {
    /// No reply within the step timeout.
    Timeout,
    /// The executor reported a failure.
    Failed {
        /// Stable code.
        code: String,
        /// What went wrong.
        message: String,
        /// Whether trying again may help.
        retryable: bool,
    },
}

/// Sends `request` to `agent_id`'s inbox and waits up to `timeout` for the answer, passing
/// streamed text to `on_text`. Dropping the future (cancellation) withdraws the request.
pub async fn call(
    bus: &Bus,
    step: &StepRequest,
    priority: Priority,
    timeout: Duration,
    on_text: &(dyn Fn(&str) + Send + Sync),
) -> Result<ChatResponse, DispatchError> {
    let payload = match serde_json::to_value(step) {
        Ok(Value::Object(map)) => map,
        _ => {
            return Err(DispatchError::Failed {
                code: "invalid_step".into(),
                message: "the step request could not be serialised".into(),
                retryable: false,
            });
        }
    };
    let message = Message {
        id: ids::new_id(),
        sender_id: ORCHESTRATOR_SENDER.to_owned(),
        recipient_id: Some(step.agent_id.clone()),
        message_type: MessageType::TaskRequest,
        pattern: CommunicationPattern::RequestResponse,
        priority,
        topic: None,
        payload,
        metadata: Map::new(),
        created_at: Utc::now(),
        expires_at: chrono::Duration::from_std(timeout)
            .ok()
            .and_then(|t| Utc::now().checked_add_signed(t)),
    };
    let mut withdraw = Withdraw {
        bus: bus.clone(),
        id: Some(message.id.clone()),
    };
    let outcome = bus
        .request_with(message, timeout, |update| {
            if let Some(text) = update.payload.get("text").and_then(Value::as_str) {
                on_text(text);
            }
        })
        .await;
    let reply = match outcome {
        Ok(reply) => {
            withdraw.id = None;
            reply
        }
        Err(BusError::Timeout { .. }) => return Err(DispatchError::Timeout),
        Err(e) => {
            let retryable = !e.is_client_error();
            return Err(DispatchError::Failed {
                code: e.code().to_owned(),
                message: e.to_string(),
                retryable,
            });
        }
    };
    match serde_json::from_value::<StepReply>(Value::Object(reply.payload.clone())) {
        Ok(StepReply::Completed {
            content,
            model,
            prompt_tokens,
            completion_tokens,
            duration_secs,
            done_reason,
            ..
        }) => Ok(ChatResponse {
            content,
            model,
            prompt_tokens,
            completion_tokens,
            duration: Duration::try_from_secs_f64(duration_secs).unwrap_or_default(),
            done_reason: DoneReason::from_wire(&done_reason),
        }),
        Ok(StepReply::Failed {
            code,
            message,
            retryable,
            ..
        }) => Err(DispatchError::Failed {
            code,
            message,
            retryable,
        }),
        Err(e) => Err(DispatchError::Failed {
            code: "invalid_reply".into(),
            message: format!(
                "the step reply from {} was unreadable: {e}",
                reply.sender_id
            ),
            retryable: true,
        }),
    }
}

/// Publishes a cancel notice for a request nobody waits for any more.
struct Withdraw {
    bus: Bus,
    id: Option<String>,
}

impl Drop for Withdraw {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        let bus = self.bus.clone();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let mut payload = Map::new();
            payload.insert("correlation_id".into(), Value::String(id));
            let notice = Message {
                id: ids::new_id(),
                sender_id: ORCHESTRATOR_SENDER.to_owned(),
                recipient_id: None,
                message_type: MessageType::SystemCommand,
                pattern: CommunicationPattern::PubSub,
                priority: Priority::High,
                topic: Some(CANCEL_TOPIC.to_owned()),
                payload,
                metadata: Map::new(),
                created_at: Utc::now(),
                expires_at: Some(Utc::now() + chrono::Duration::minutes(5)),
            };
            if let Err(e) = bus.publish(notice).await {
                tracing::debug!(error = %e, "could not publish a step cancel notice");
            }
        });
    }
}
