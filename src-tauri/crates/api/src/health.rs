//! System health: one computation shared by `/health`, `/status` and the WebSocket
//! `system_status` event, so they never disagree.
//!
//! Health is a fraction from 0 to 1, the mean of the checks: the journal answers a
//! query; the default LLM endpoint answers and has the default model (half credit when it
//! answers without the model); the share of agents that are healthy; and, where the
//! monitor runs, its alerts (full credit when none fires, half while only warnings fire
//! or every critical one is acknowledged, none while a critical alert fires unheeded). The
//! slow checks are cached for a few seconds so many clients do not hammer the LLM endpoint.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;

/// How long a probe result is reused.
const CACHE_FOR: Duration = Duration::from_secs(5);
/// How long the LLM probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The LLM endpoint check.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct LlmCheck {
    /// Default provider name.
    pub provider: String,
    /// Default model.
    pub model: String,
    /// The endpoint answered.
    pub reachable: bool,
    /// The endpoint lists the default model.
    pub model_available: bool,
    /// Why not, when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The outcome of all checks.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Health {
    /// `healthy` (≥ 0.9), `degraded` (≥ 0.5) or `unhealthy`.
    pub status: &'static str,
    /// Fraction from 0 to 1.
    pub system_health: f64,
    /// The journal answered.
    pub journal_ok: bool,
    /// The LLM check.
    pub llm: LlmCheck,
    /// Healthy agents.
    pub agents_healthy: usize,
    /// All agents.
    pub agents_total: usize,
    /// Alerts firing now (`None` where the monitor does not run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alerts_firing: Option<usize>,
    /// Critical alerts firing now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alerts_critical: Option<usize>,
}

#[derive(Debug, Default)]
pub(crate) struct HealthCache {
    probes: Mutex<Option<(Instant, bool, LlmCheck)>>,
}

async fn probe(state: &AppState) -> (bool, LlmCheck) {
    let cached = state
        .health
        .probes
        .lock()
        .ok()
        .and_then(|g| g.clone())
        .filter(|(at, _, _)| at.elapsed() < CACHE_FOR);
    if let Some((_, journal_ok, llm)) = cached {
        return (journal_ok, llm);
    }
    let orchestrator = &state.orchestrator;
    let journal_ok = orchestrator
        .tasks(sutazai_orchestrator::TaskFilter::All, 1)
        .await
        .is_ok();
    let (provider_id, model) = orchestrator.default_model();
    let mut llm = LlmCheck {
        provider: provider_id.to_owned(),
        model: model.to_owned(),
        reachable: false,
        model_available: false,
        error: None,
    };
    match orchestrator.providers().get(provider_id) {
        None => llm.error = Some("the default provider is not configured".into()),
        Some(provider) => match tokio::time::timeout(PROBE_TIMEOUT, provider.list_models()).await {
            Err(_) => llm.error = Some("the LLM endpoint did not answer in time".into()),
            Ok(Err(e)) => llm.error = Some(e.to_string()),
            Ok(Ok(models)) => {
                llm.reachable = true;
                llm.model_available = models
                    .iter()
                    .any(|m| m.name == model || m.name.strip_suffix(":latest") == Some(model));
                if !llm.model_available {
                    llm.error = Some(format!("model `{model}` is not available; pull it first"));
                }
            }
        },
    }
    if let Ok(mut guard) = state.health.probes.lock() {
        *guard = Some((Instant::now(), journal_ok, llm.clone()));
    }
    (journal_ok, llm)
}

/// Runs (or reuses) the checks.
pub(crate) async fn check(state: &AppState) -> Health {
    let (journal_ok, llm) = probe(state).await;
    let stats = state.orchestrator.stats();
    let llm_score = match (llm.reachable, llm.model_available) {
        (true, true) => 1.0,
        (true, false) => 0.5,
        _ => 0.0,
    };
    let agents_score = if stats.agents_total == 0 {
        0.0
    } else {
        stats.agents_healthy as f64 / stats.agents_total as f64
    };
    let journal_score = if journal_ok { 1.0 } else { 0.0 };
    let alerts = state.monitor.as_ref().map(|m| m.firing_summary());
    let system_health = match alerts {
        None => (journal_score + llm_score + agents_score) / 3.0,
        Some((firing, _, unheeded)) => {
            let alerts_score = if unheeded > 0 {
                0.0
            } else if firing > 0 {
                0.5
            } else {
                1.0
            };
            (journal_score + llm_score + agents_score + alerts_score) / 4.0
        }
    };
    let status = if system_health >= 0.9 {
        "healthy"
    } else if system_health >= 0.5 {
        "degraded"
    } else {
        "unhealthy"
    };
    Health {
        status,
        system_health,
        journal_ok,
        llm,
        agents_healthy: stats.agents_healthy,
        agents_total: stats.agents_total,
        alerts_firing: alerts.map(|(firing, _, _)| firing),
        alerts_critical: alerts.map(|(_, critical, _)| critical),
    }
}
