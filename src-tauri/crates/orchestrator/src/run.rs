//! One task's execution: the step runner and the four coordination patterns.
//!
//! The step runner ([`Run::step`]) is where durability and fault tolerance live: a step
//! whose key is already finished in the journal returns its stored output without a model
//! call; otherwise it is journaled as started, run with per-attempt timeouts, retried with
//! backoff through the agent's circuit breaker, streamed as events, and journaled as
//! finished with tokens and duration.
//!
//! Durability rule: no model call starts before every earlier finished step of the task
//! is committed, and the task's final state is committed before anyone is told it ended.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::Utc;
use futures::future::try_join_all;
use serde::Deserialize;
use serde_json::{Value, json};
use sutazai_core::mask::StreamRedactor;
use sutazai_core::{
    AgentState, CommunicationPattern, CoordinationPattern, Message, MessageType, Priority, Step,
    StepKind, StepStatus, Task, TaskStatus, ids,
};
use sutazai_llm::{ChatMessage, ChatRequest, Role};
use tokio_util::sync::CancellationToken;

use crate::dispatch::{self, DispatchError, StepRequest};
use crate::engine::Inner;
use crate::error::TaskFailure;
use crate::event::Event;
use crate::prompt;

/// How long a swarm round waits for the bus to deliver the round's results after the
/// last agent finished.
const ROUND_COLLECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Checks a structured step's answer beyond its schema; `Err` says what is wrong.
type Validator<'a> = dyn Fn(&str) -> Result<(), String> + Send + Sync + 'a;

/// The state of one task's run.
pub(crate) struct Run {
    inner: Arc<Inner>,
    pub(crate) task: Task,
    /// Steps the journal already holds for this task (a resumed run), by key.
    journaled: HashMap<String, Step>,
    /// Next step sequence number.
    seq: AtomicU32,
    /// Finish records queued so far, and how many of them are known to be committed.
    finished_writes: AtomicU32,
    durable_writes: AtomicU32,
    /// Steps whose model call is in flight, so an abandoned run can close them.
    inflight: Mutex<BTreeMap<String, Step>>,
    cancel: CancellationToken,
    /// The payload's sensitive values, redacted from the text its events carry.
    secrets: Arc<[String]>,
}

/// Why one attempt failed.
enum AttemptError {
    /// The executor that ran the step reported a failure.
    Remote {
        code: String,
        message: String,
        retryable: bool,
    },
    Timeout,
    InvalidJson(String),
    CircuitOpen,
}

impl AttemptError {
    fn retryable(&self) -> bool {
        match self {
            AttemptError::Remote { retryable, .. } => *retryable,
            AttemptError::Timeout | AttemptError::InvalidJson(_) | AttemptError::CircuitOpen => {
                true
            }
        }
    }

    /// Whether the failure says a dependency is away rather than that the step went
    /// wrong: the LLM endpoint refused the connection, the bus could not be reached, or the
    /// agent's breaker is open. Such failures do not use up attempts (see
    /// `OrchestratorConfig::outage_wait`).
    fn is_outage(&self) -> bool {
        match self {
            AttemptError::Remote { code, .. } => {
                code == "llm_unreachable" || code == "bus_unavailable"
            }
            AttemptError::CircuitOpen => true,
            AttemptError::Timeout | AttemptError::InvalidJson(_) => false,
        }
    }

    fn code(&self) -> &str {
        match self {
            AttemptError::Remote { code, .. } => code,
            AttemptError::Timeout => "step_timeout",
            AttemptError::InvalidJson(_) => "invalid_json",
            AttemptError::CircuitOpen => "circuit_open",
        }
    }

    fn message(&self) -> String {
        match self {
            AttemptError::Remote { message, .. } => message.clone(),
            AttemptError::Timeout => "the model call timed out".into(),
            AttemptError::InvalidJson(why) => format!("the model's JSON was unusable: {why}"),
            AttemptError::CircuitOpen => "the agent's circuit breaker is open".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct Plan {
    subtasks: Vec<Subtask>,
}

#[derive(Debug, Deserialize, serde::Serialize)]
struct Subtask {
    agent_id: String,
    instruction: String,
}

#[derive(Debug, Deserialize)]
struct Vote {
    choice: usize,
}

impl Run {
    pub(crate) fn new(
        inner: Arc<Inner>,
        task: Task,
        journaled: Vec<Step>,
        cancel: CancellationToken,
    ) -> Run {
        let next = journaled.iter().map(|s| s.seq + 1).max().unwrap_or(0);
        Run {
            journaled: journaled.into_iter().map(|s| (s.key.clone(), s)).collect(),
            seq: AtomicU32::new(next),
            finished_writes: AtomicU32::new(0),
            durable_writes: AtomicU32::new(0),
            inflight: Mutex::new(BTreeMap::new()),
            cancel,
            secrets: inner
                .config
                .sensitive_fields
                .secrets_in(&task.request.payload)
                .into(),
            inner,
            task,
        }
    }

    /// Runs the task's pattern to a result.
    pub(crate) async fn execute(&self) -> Result<Value, TaskFailure> {
        let agents = self.task.assigned_agents.clone();
        if agents.is_empty() {
            return Err(TaskFailure::new("no_agents", "no agents were selected"));
        }
        match self.task.request.coordination_pattern {
            CoordinationPattern::Hierarchical => self.hierarchical(&agents).await,
            CoordinationPattern::Collaborative => self.collaborative(&agents).await,
            CoordinationPattern::Pipeline => self.pipeline(&agents).await,
            CoordinationPattern::Swarm => self.swarm(&agents).await,
        }
    }

    /// Closes the journal records of steps whose model call was abandoned (cancel,
    /// deadline) so no step is left looking as if it still ran. Not called on shutdown:
    /// those steps stay `running` and re-run when the task resumes.
    pub(crate) async fn abandon_inflight(
        &self,
        outcome: &Result<Value, (TaskFailure, TaskStatus)>,
    ) {
        let Err((failure, _)) = outcome else { return };
        let steps = std::mem::take(&mut *self.inflight.lock().unwrap_or_else(|p| p.into_inner()));
        for (_, mut step) in steps {
            step.status = StepStatus::Failed;
            step.error = Some(failure.to_string());
            step.finished_at = Some(Utc::now());
            let _ = self.inner.put_step(&step).await;
        }
    }

    async fn hierarchical(&self, agents: &[String]) -> Result<Value, TaskFailure> {
        let coordinator = &agents[0];
        let workers = &agents[1..];
        let max_subtasks = (workers.len() * 2).clamp(1, 8);
        let worker_list: Vec<(String, Vec<String>)> = workers
            .iter()
            .map(|w| (w.clone(), self.capabilities(w)))
            .collect();
        let schema = json!({
            "type": "object",
            "properties": {
                "subtasks": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": max_subtasks,
                    "items": {
                        "type": "object",
                        "properties": {
                            "agent_id": {"type": "string", "enum": workers},
                            "instruction": {"type": "string", "maxLength": 300}
                        },
                        "required": ["agent_id", "instruction"]
                    }
                }
            },
            "required": ["subtasks"]
        });
        let workers_owned = workers.to_vec();
        let validate = move |text: &str| -> Result<(), String> {
            let plan: Plan = serde_json::from_str(text).map_err(|e| e.to_string())?;
            if plan.subtasks.is_empty() || plan.subtasks.len() > max_subtasks {
                return Err(format!(
                    "the plan has {} subtasks, expected 1 to {max_subtasks}",
                    plan.subtasks.len()
                ));
            }
            if let Some(bad) = plan
                .subtasks
                .iter()
                .find(|s| !workers_owned.contains(&s.agent_id))
            {
                return Err(format!("`{}` is not one of the workers", bad.agent_id));
            }
            Ok(())
        };
        let plan_text = self
            .step(
                "plan",
                StepKind::Plan,
                coordinator,
                prompt::plan(&self.task, &worker_list, max_subtasks),
                Some((schema, &validate)),
            )
            .await?;
        let plan: Plan = serde_json::from_str(&plan_text)
            .map_err(|e| TaskFailure::new("invalid_plan", format!("journaled plan: {e}")))?;

        let results = try_join_all(plan.subtasks.iter().enumerate().map(|(i, sub)| {
            let key = format!("work/{i}");
            async move {
                let out = self
                    .step(
                        &key,
                        StepKind::Work,
                        &sub.agent_id,
                        prompt::subtask(&self.task, &sub.instruction),
                        None,
                    )
                    .await?;
                Ok::<_, TaskFailure>((sub.agent_id.clone(), out))
            }
        }))
        .await?;

        let answer = self
            .step(
                "synthesize",
                StepKind::Synthesize,
                coordinator,
                prompt::synthesize(&self.task, &results),
                None,
            )
            .await?;
        Ok(json!({
            "output": answer,
            "pattern": "hierarchical",
            "coordinator": coordinator,
            "plan": plan.subtasks,
            "contributions": contributions(&results),
        }))
    }

    async fn collaborative(&self, agents: &[String]) -> Result<Value, TaskFailure> {
        let results = try_join_all(agents.iter().map(|agent| {
            let key = format!("work/{agent}");
            async move {
                let out = self
                    .step(
                        &key,
                        StepKind::Work,
                        agent,
                        prompt::collaborate(&self.task, &self.capabilities(agent)),
                        None,
                    )
                    .await?;
                Ok::<_, TaskFailure>((agent.clone(), out))
            }
        }))
        .await?;
        let synthesizer = &agents[0];
        let answer = self
            .step(
                "synthesize",
                StepKind::Synthesize,
                synthesizer,
                prompt::synthesize(&self.task, &results),
                None,
            )
            .await?;
        Ok(json!({
            "output": answer,
            "pattern": "collaborative",
            "synthesizer": synthesizer,
            "contributions": contributions(&results),
        }))
    }

    async fn pipeline(&self, agents: &[String]) -> Result<Value, TaskFailure> {
        let mut stages: Vec<(String, String)> = Vec::with_capacity(agents.len());
        for (i, agent) in agents.iter().enumerate() {
            let focus: Vec<String> = self
                .task
                .request
                .requirements
                .iter()
                .filter(|r| self.capabilities(agent).contains(r))
                .cloned()
                .collect();
            let input = prompt::stage(&self.task, i, agents.len(), &focus, stages.last());
            let out = self
                .step(&format!("stage/{i}"), StepKind::Stage, agent, input, None)
                .await?;
            stages.push((agent.clone(), out));
        }
        let output = stages.last().map(|(_, o)| o.clone()).unwrap_or_default();
        Ok(json!({
            "output": output,
            "pattern": "pipeline",
            "stages": contributions(&stages),
        }))
    }

    async fn swarm(&self, agents: &[String]) -> Result<Value, TaskFailure> {
        let rounds = self.inner.config.swarm_rounds.max(1);
        let topic = format!("swarm.{}", self.task.id);
        let mut peers: Vec<(String, String)> = Vec::new();
        for round in 0..rounds {
            // A subscription of this round only: created before anyone publishes, so it
            // holds exactly what the bus delivered for the round.
            let name = format!("swarm-{}-{round}", self.task.id);
            let mut subscription = self
                .inner
                .bus
                .subscribe_topics(&name, &[topic.as_str()])
                .await
                .map_err(|e| TaskFailure::new(e.code(), format!("swarm round {round}: {e}")))?;
            // Removed however the round ends (an agent failing, cancellation, shutdown).
            let _remove = RoundSubscription {
                bus: self.inner.bus.clone(),
                name: name.clone(),
            };
            let own = try_join_all(agents.iter().map(|agent| {
                let key = format!("round/{round}/{agent}");
                let seen: Vec<(String, String)> =
                    peers.iter().filter(|(a, _)| a != agent).cloned().collect();
                let topic = topic.clone();
                async move {
                    let out = self
                        .step(
                            &key,
                            StepKind::Round,
                            agent,
                            prompt::swarm_round(&self.task, round, rounds, &seen),
                            None,
                        )
                        .await?;
                    self.publish_round(&topic, round, agent, &out).await;
                    Ok::<_, TaskFailure>((agent.clone(), out))
                }
            }))
            .await?;
            // What the agents see next round is what the bus delivered this round.
            let mut delivered: BTreeMap<String, String> = BTreeMap::new();
            let deadline = tokio::time::Instant::now() + ROUND_COLLECT_TIMEOUT;
            while delivered.len() < own.len() {
                let Ok(Some(d)) = tokio::time::timeout_at(deadline, subscription.next()).await
                else {
                    break;
                };
                let m = d.message.clone();
                let _ = d.ack().await;
                let this_round =
                    m.payload.get("round").and_then(Value::as_u64) == Some(u64::from(round));
                if let (true, Some(Value::String(a)), Some(Value::String(o))) = (
                    this_round,
                    m.payload.get("agent_id"),
                    m.payload.get("output"),
                ) {
                    delivered.insert(a.clone(), o.clone());
                }
            }
            drop(subscription);
            if delivered.len() < own.len() {
                tracing::warn!(
                    task_id = %self.task.id,
                    round,
                    delivered = delivered.len(),
                    "the bus delivered fewer round results than agents; using the step outputs"
                );
                peers = own;
            } else {
                peers = agents
                    .iter()
                    .filter_map(|a| delivered.get(a).map(|o| (a.clone(), o.clone())))
                    .collect();
            }
        }

        // Vote: every agent picks the best candidate other than its own.
        let candidates = peers;
        let votes = try_join_all(agents.iter().enumerate().map(|(me, agent)| {
            let choices: Vec<usize> = (0..candidates.len())
                .filter(|&i| i != me || candidates.len() == 1)
                .collect();
            let schema = json!({
                "type": "object",
                "properties": {"choice": {"type": "integer", "enum": choices}},
                "required": ["choice"]
            });
            let allowed = choices.clone();
            let candidates = &candidates;
            async move {
                let validate = move |text: &str| -> Result<(), String> {
                    let vote: Vote = serde_json::from_str(text).map_err(|e| e.to_string())?;
                    if allowed.contains(&vote.choice) {
                        Ok(())
                    } else {
                        Err(format!("choice {} is not one of {allowed:?}", vote.choice))
                    }
                };
                let text = self
                    .step(
                        &format!("vote/{agent}"),
                        StepKind::Vote,
                        agent,
                        prompt::vote(&self.task, candidates, &choices),
                        Some((schema, &validate)),
                    )
                    .await?;
                let vote: Vote = serde_json::from_str(&text)
                    .map_err(|e| TaskFailure::new("invalid_vote", e.to_string()))?;
                Ok::<_, TaskFailure>((agent.clone(), vote.choice))
            }
        }))
        .await?;
        let mut tally = vec![0u32; candidates.len()];
        for (_, choice) in &votes {
            if let Some(t) = tally.get_mut(*choice) {
                *t += 1;
            }
        }
        // Most votes wins; a tie goes to the candidate of the better-ranked agent.
        let winner = tally
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))
            .map(|(i, _)| i)
            .unwrap_or(0);
        let (winner_agent, output) = candidates
            .get(winner)
            .cloned()
            .ok_or_else(|| TaskFailure::new("no_candidates", "the swarm produced nothing"))?;
        Ok(json!({
            "output": output,
            "pattern": "swarm",
            "winner": winner_agent,
            "rounds": rounds,
            "votes": votes.iter().map(|(a, c)| (a.clone(), json!(c))).collect::<serde_json::Map<_, _>>(),
            "tally": tally,
            "candidates": contributions(&candidates),
        }))
    }

    async fn publish_round(&self, topic: &str, round: u32, agent: &str, output: &str) {
        let mut payload = serde_json::Map::new();
        payload.insert("task_id".into(), json!(self.task.id));
        payload.insert("round".into(), json!(round));
        payload.insert("agent_id".into(), json!(agent));
        payload.insert("output".into(), json!(output));
        let message = Message {
            id: ids::new_id(),
            sender_id: agent.to_owned(),
            recipient_id: None,
            message_type: MessageType::CoordinationMessage,
            pattern: CommunicationPattern::PubSub,
            priority: Priority::Normal,
            topic: Some(topic.to_owned()),
            payload,
            metadata: serde_json::Map::new(),
            created_at: Utc::now(),
            expires_at: None,
        };
        if let Err(e) = self.inner.bus.publish(message).await {
            tracing::warn!(error = %e, "could not publish a swarm round result");
        }
    }

    fn capabilities(&self, agent: &str) -> Vec<String> {
        self.inner
            .roster
            .get(agent)
            .map(|s| s.spec().capabilities.clone())
            .unwrap_or_default()
    }

    fn next_seq(&self) -> u32 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Runs (or replays from the journal) one step and returns its output.
    async fn step(
        &self,
        key: &str,
        kind: StepKind,
        agent_id: &str,
        input: String,
        structured: Option<(Value, &Validator<'_>)>,
    ) -> Result<String, TaskFailure> {
        if let Some(done) = self.journaled.get(key)
            && done.status == StepStatus::Completed
        {
            return Ok(done.output.clone().unwrap_or_default());
        }
        let inner = &self.inner;
        let task_id = &self.task.id;
        let slot = inner.roster.get(agent_id).ok_or_else(|| {
            TaskFailure::new(
                "agent_not_found",
                format!("step {key}: agent `{agent_id}` is no longer registered"),
            )
        })?;
        let (provider_id, model) = inner.binding(agent_id);
        if !inner.providers.contains_key(&provider_id) {
            return Err(TaskFailure::new(
                "provider_not_found",
                format!(
                    "step {key}: agent `{agent_id}` uses provider `{provider_id}`, which is not configured"
                ),
            ));
        }
        let _slot_guard = slot.acquire().await;
        // The definition as of this step: an edit while it runs applies from the next one.
        let spec = slot.spec();

        let mut step = Step {
            task_id: task_id.clone(),
            key: key.to_owned(),
            seq: self
                .journaled
                .get(key)
                .map(|s| s.seq)
                .unwrap_or_else(|| self.next_seq()),
            kind,
            agent_id: agent_id.to_owned(),
            status: StepStatus::Running,
            input,
            output: None,
            error: None,
            attempts: 0,
            model: Some(model.clone()),
            prompt_tokens: 0,
            completion_tokens: 0,
            duration: None,
            started_at: Utc::now(),
            finished_at: None,
        };
        // The journal has one FIFO writer: once this record is committed, so is every
        // record queued before it. Awaiting it is therefore the barrier that makes earlier
        // steps' results durable before this step's model call — needed only when some
        // finished step's record has not been awaited yet.
        let started = inner.put_step(&step);
        let finished = self.finished_writes.load(Ordering::Acquire);
        if finished > self.durable_writes.load(Ordering::Acquire) {
            started
                .await
                .map_err(|e| TaskFailure::new("journal_error", format!("step {key}: {e}")))?;
            self.durable_writes.fetch_max(finished, Ordering::AcqRel);
        } else {
            drop(started);
        }
        self.track_inflight(&step, true);
        inner.emit(Event::StepStarted {
            task_id: task_id.clone(),
            step: key.to_owned(),
            kind,
            agent_id: agent_id.to_owned(),
        });

        let (schema, validate) = match structured {
            Some((schema, validate)) => (Some(schema), Some(validate)),
            None => (None, None),
        };
        let mut request = ChatRequest {
            model,
            messages: vec![
                ChatMessage {
                    role: Role::System,
                    content: spec.system_prompt.clone(),
                },
                ChatMessage {
                    role: Role::User,
                    content: step.input.clone(),
                },
            ],
            temperature: Some(spec.temperature),
            max_tokens: if schema.is_some() {
                Some(inner.config.structured_max_tokens)
            } else {
                inner.config.max_tokens
            },
            format: schema,
            seed: Some(42),
            trace: Some(format!("{task_id}/{key}")),
        };
        let stream = TokenStream {
            inner,
            task_id,
            step: key,
            agent_id,
            redactor: Mutex::new(StreamRedactor::new(self.secrets.to_vec())),
        };
        let sink = |text: &str| stream.push(text);

        let mut call = StepRequest {
            kind: "step".into(),
            task_id: task_id.clone(),
            step: key.to_owned(),
            agent_id: agent_id.to_owned(),
            provider: provider_id,
            request: ChatRequest::default(),
        };
        let max_attempts = inner.config.max_attempts.max(1);
        let mut attempt = 0;
        // Since when the calls have met an outage, and how many retries it has cost.
        let mut outage: Option<(Instant, u32)> = None;
        // The failure that showed the outage.
        let mut outage_cause = None;
        let error = loop {
            if outage.is_none() {
                attempt += 1;
            }
            step.attempts = attempt;
            let began = Instant::now();
            let outcome = if slot.with_breaker(|b| b.try_acquire(began)).is_err() {
                Err(AttemptError::CircuitOpen)
            } else {
                call.request = request.clone();
                let answer = dispatch::call(
                    &inner.bus,
                    &call,
                    self.task.request.priority,
                    inner.config.step_timeout,
                    &sink,
                )
                .await;
                // What the redactor held back of this attempt's text.
                stream.flush();
                match answer {
                    Err(DispatchError::Timeout) => Err(AttemptError::Timeout),
                    Err(DispatchError::Failed {
                        code,
                        message,
                        retryable,
                    }) => Err(AttemptError::Remote {
                        code,
                        message,
                        retryable,
                    }),
                    Ok(response) => match validate.map(|v| v(&response.content)) {
                        Some(Err(why)) => {
                            step.prompt_tokens = response.prompt_tokens;
                            step.completion_tokens = response.completion_tokens;
                            Err(AttemptError::InvalidJson(why))
                        }
                        _ => Ok(response),
                    },
                }
            };
            match outcome {
                Ok(response) => {
                    slot.with_breaker(|b| b.on_success());
                    if let Some((since, retries)) = outage.take() {
                        tracing::info!(
                            task_id = %task_id, step = key, agent_id, retries,
                            "outage over after {:.1} s", since.elapsed().as_secs_f64()
                        );
                    }
                    let seconds = response
                        .duration
                        .as_secs_f64()
                        .max(began.elapsed().as_secs_f64());
                    slot.record_outcome(true, seconds);
                    step.status = StepStatus::Completed;
                    step.output = Some(response.content);
                    step.model = Some(response.model);
                    step.prompt_tokens = response.prompt_tokens;
                    step.completion_tokens = response.completion_tokens;
                    step.duration = Some(seconds);
                    step.error = None;
                    step.finished_at = Some(Utc::now());
                    // Not awaited: the next model call (see above) or the task's final
                    // update, which is awaited, makes it durable first.
                    drop(inner.put_step(&step));
                    self.finished_writes.fetch_add(1, Ordering::AcqRel);
                    self.track_inflight(&step, false);
                    inner.emit(Event::StepFinished {
                        task_id: task_id.clone(),
                        step: key.to_owned(),
                        agent_id: agent_id.to_owned(),
                        status: StepStatus::Completed,
                        prompt_tokens: step.prompt_tokens,
                        completion_tokens: step.completion_tokens,
                        duration: seconds,
                    });
                    return Ok(step.output.clone().unwrap_or_default());
                }
                Err(error) => {
                    // The bus being away says nothing about the agent or its endpoint.
                    if !matches!(error, AttemptError::CircuitOpen)
                        && error.code() != "bus_unavailable"
                    {
                        let opened = slot
                            .with_breaker(|b| b.on_failure(Instant::now(), &inner.roster.breaker));
                        if opened {
                            inner.emit(Event::AgentStatus {
                                agent_id: agent_id.to_owned(),
                                status: AgentState::Degraded,
                            });
                        }
                    }
                    if error.is_outage() && !self.cancel.is_cancelled() {
                        // An open breaker hides the cause: report the failure that opened it.
                        let cause = match error {
                            AttemptError::CircuitOpen => outage_cause.take().unwrap_or(error),
                            other => other,
                        };
                        let (since, retries) = outage.get_or_insert((began, 0));
                        if since.elapsed() >= inner.config.outage_wait {
                            // It outlasted the wait: the step fails now.
                            break cause;
                        }
                        if *retries == 0 {
                            tracing::warn!(
                                task_id = %task_id, step = key, agent_id, code = cause.code(),
                                "step waiting for an outage to end: {}", cause.message()
                            );
                        }
                        // 0.25–0.5 s, 0.5–1 s, 1–2 s, then every 2–4 s (default backoff).
                        let delay = inner.config.backoff.delay((*retries).min(3));
                        *retries += 1;
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {
                                outage_cause = Some(cause);
                                continue;
                            }
                            _ = self.cancel.cancelled() => break cause,
                        }
                    }
                    outage_cause = None;
                    if let Some((since, retries)) = outage.take() {
                        tracing::info!(
                            task_id = %task_id, step = key, agent_id, retries,
                            "outage over after {:.1} s", since.elapsed().as_secs_f64()
                        );
                    }
                    tracing::warn!(
                        task_id = %task_id, step = key, agent_id, attempt,
                        code = error.code(), "step attempt failed: {}", error.message()
                    );
                    let retry = error.retryable() && attempt < max_attempts;
                    if matches!(error, AttemptError::InvalidJson(_)) {
                        // Same prompt at temperature 0 gives the same bad JSON: loosen.
                        request.temperature = Some(spec.temperature.max(0.3 * attempt as f32));
                        request.seed = Some(42 + u64::from(attempt));
                    }
                    if !retry {
                        break error;
                    }
                    let delay = inner.config.backoff.delay(attempt - 1);
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = self.cancel.cancelled() => break error,
                    }
                }
            }
        };

        slot.record_outcome(false, 0.0);
        step.status = StepStatus::Failed;
        step.error = Some(format!("{}: {}", error.code(), error.message()));
        step.finished_at = Some(Utc::now());
        let _ = inner.put_step(&step).await;
        self.track_inflight(&step, false);
        inner.emit(Event::StepFinished {
            task_id: task_id.clone(),
            step: key.to_owned(),
            agent_id: agent_id.to_owned(),
            status: StepStatus::Failed,
            prompt_tokens: step.prompt_tokens,
            completion_tokens: step.completion_tokens,
            duration: 0.0,
        });
        Err(TaskFailure::new(
            error.code(),
            format!(
                "step {key} ({agent_id}) failed after {} attempt(s): {}",
                step.attempts,
                error.message()
            ),
        ))
    }

    fn track_inflight(&self, step: &Step, running: bool) {
        let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if running {
            inflight.insert(step.key.clone(), step.clone());
        } else {
            inflight.remove(&step.key);
        }
    }
}

/// A step's streamed text on its way to the event stream, redacted of the payload's
/// secrets even when one is split across chunks.
struct TokenStream<'a> {
    inner: &'a Inner,
    task_id: &'a str,
    step: &'a str,
    agent_id: &'a str,
    redactor: Mutex<StreamRedactor>,
}

impl TokenStream<'_> {
    fn push(&self, text: &str) {
        let safe = self
            .redactor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(text);
        self.send(safe);
    }

    fn flush(&self) {
        let rest = self
            .redactor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .finish();
        self.send(rest);
    }

    fn send(&self, text: String) {
        if !text.is_empty() && self.inner.events.receiver_count() > 0 {
            let _ = self.inner.events.send(Event::StepToken {
                task_id: self.task_id.to_owned(),
                step: self.step.to_owned(),
                agent_id: self.agent_id.to_owned(),
                text,
            });
        }
    }
}

/// Removes a swarm round's topic subscription when dropped.
struct RoundSubscription {
    bus: sutazai_bus::Bus,
    name: String,
}

impl Drop for RoundSubscription {
    fn drop(&mut self) {
        let (bus, name) = (self.bus.clone(), std::mem::take(&mut self.name));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = bus.unsubscribe(&name).await {
                    tracing::debug!(error = %e, "could not remove a swarm round subscription");
                }
            });
        }
    }
}

fn contributions(items: &[(String, String)]) -> Vec<Value> {
    items
        .iter()
        .map(|(agent, output)| json!({"agent_id": agent, "output": output}))
        .collect()
}
