//! Agent selection: which agents work on a task, in what order.
//!
//! Each candidate is scored by capability coverage, measured success rate, latency and
//! current load ([`score`]). Every requirement then gets its best-scoring agent, preferring
//! agents not yet chosen, so a task over four capabilities gets four specialists. When that
//! is more agents than `constraints.max_agents` allows, a greedy set cover within the bound
//! is used instead. The pattern shapes the result:
//! - hierarchical: a coordinator (role `coordinator` with `task_planning`) first, then workers;
//! - pipeline: one stage per agent, ordered by the first requirement each covers;
//! - collaborative and swarm: at least two (swarm: three) agents where the roster allows.

use std::cell::OnceCell;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use sutazai_core::{AgentRole, AgentSpec, CoordinationPattern, TaskRequest};

use crate::error::OrchestratorError;
use crate::roster::{AgentSlot, Roster};

/// Weights of the score's terms; they sum to 1.
const W_COVERAGE: f64 = 0.5;
const W_SUCCESS: f64 = 0.25;
const W_LATENCY: f64 = 0.1;
const W_LOAD: f64 = 0.15;

/// Latency (seconds) at which the latency term halves.
const LATENCY_HALF: f64 = 10.0;

/// Score of `slot` (defined by `spec`) for `requirements`, from 0 to 1 (an open breaker
/// subtracts 1 so such an agent is picked only when nothing else can do the job).
pub fn score(slot: &AgentSlot, spec: &AgentSpec, requirements: &[String], now: Instant) -> f64 {
    let coverage = if requirements.is_empty() {
        0.0
    } else {
        requirements
            .iter()
            .filter(|r| spec.has_capability(r))
            .count() as f64
            / requirements.len() as f64
    };
    let record = slot.record();
    let success = record.smoothed_success_rate();
    let latency = record
        .average_latency()
        .map(|s| 1.0 / (1.0 + s / LATENCY_HALF))
        .unwrap_or(0.5);
    let load = 1.0 - slot.load();
    let penalty = if slot.with_breaker(|b| b.is_open(now)) {
        1.0
    } else {
        0.0
    };
    W_COVERAGE * coverage + W_SUCCESS * success + W_LATENCY * latency + W_LOAD * load - penalty
}

/// Selects agents for `request`. `default_max_agents` applies when the request sets none.
pub fn select(
    roster: &Roster,
    request: &TaskRequest,
    default_max_agents: u32,
) -> Result<Vec<String>, OrchestratorError> {
    let now = Instant::now();
    let requirements = &request.requirements;
    let max_agents = request
        .constraints
        .max_agents
        .unwrap_or(default_max_agents)
        .max(1) as usize;
    let pattern = request.coordination_pattern;

    // One view of the roster for the whole selection, however agents change meanwhile:
    // each definition is read once, each score computed at most once.
    let agents = roster.snapshot();
    let candidates: Vec<Candidate<'_>> = agents
        .values()
        .map(|slot| Candidate {
            slot,
            spec: slot.spec(),
            enabled: slot.is_enabled(),
            score: OnceCell::new(),
        })
        .collect();
    // Every requirement must be coverable by an enabled agent.
    for requirement in requirements {
        let mut any = false;
        let mut enabled = false;
        for c in &candidates {
            if c.spec.has_capability(requirement) {
                any = true;
                enabled |= c.enabled;
            }
        }
        if !any {
            return Err(OrchestratorError::NoCapableAgent(requirement.clone()));
        }
        if !enabled {
            return Err(OrchestratorError::AgentsUnavailable(requirement.clone()));
        }
    }

    let pool = Pool {
        candidates,
        requirements,
        now,
    };

    let mut chosen: Vec<String> = Vec::new();
    let mut worker_budget = max_agents;
    if pattern == CoordinationPattern::Hierarchical {
        if max_agents < 2 {
            return Err(OrchestratorError::invalid(
                "constraints.max_agents",
                "the hierarchical pattern needs at least 2 agents (a coordinator and a worker)",
            ));
        }
        let coordinator = pool
            .ranked(&|c| {
                c.spec.role == AgentRole::Coordinator && c.spec.has_capability("task_planning")
            })
            .into_iter()
            .next()
            .ok_or_else(|| OrchestratorError::NoCapableAgent("task_planning".into()))?;
        chosen.push(coordinator.id().to_owned());
        worker_budget -= 1;
    }

    let workers = assign(requirements, worker_budget, &chosen, &pool)?;
    chosen.extend(workers);

    let minimum = match pattern {
        CoordinationPattern::Swarm => 3,
        CoordinationPattern::Collaborative => 2,
        CoordinationPattern::Hierarchical => 2,
        CoordinationPattern::Pipeline => 1,
    }
    .min(max_agents);
    if chosen.len() < minimum {
        // Fill with the best remaining agents that share at least one requirement, then
        // with the best remaining overall.
        let already: BTreeSet<String> = chosen.iter().cloned().collect();
        let extra = pool
            .ranked(&|c| {
                !already.contains(c.id())
                    && c.spec.role != AgentRole::Coordinator
                    && requirements.iter().any(|r| c.spec.has_capability(r))
            })
            .into_iter()
            .chain(pool.ranked(&|c| !already.contains(c.id())))
            .map(|c| c.id().to_owned())
            .collect::<Vec<_>>();
        for id in extra {
            if chosen.len() >= minimum {
                break;
            }
            if !chosen.contains(&id) {
                chosen.push(id);
            }
        }
    }
    Ok(chosen)
}

/// An agent as one selection sees it.
struct Candidate<'a> {
    slot: &'a AgentSlot,
    /// Its definition, read once.
    spec: Arc<AgentSpec>,
    enabled: bool,
    /// [`score`], computed the first time a ranking needs it.
    score: OnceCell<f64>,
}

impl Candidate<'_> {
    fn id(&self) -> &str {
        &self.slot.id
    }
}

/// The candidates of one selection.
struct Pool<'a> {
    candidates: Vec<Candidate<'a>>,
    requirements: &'a [String],
    now: Instant,
}

impl<'a> Pool<'a> {
    /// Enabled agents passing `filter`, best score first (ties by id).
    fn ranked(&self, filter: &dyn Fn(&Candidate<'a>) -> bool) -> Vec<&Candidate<'a>> {
        let mut found: Vec<(&Candidate<'a>, f64)> = self
            .candidates
            .iter()
            .filter(|c| c.enabled && filter(c))
            .map(|c| {
                let score = *c
                    .score
                    .get_or_init(|| score(c.slot, &c.spec, self.requirements, self.now));
                (c, score)
            })
            .collect();
        found.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.id().cmp(b.0.id())));
        found.into_iter().map(|(c, _)| c).collect()
    }
}

/// One agent per requirement (distinct where possible), ordered by the first requirement
/// each covers; a greedy cover when that exceeds `budget`.
fn assign(
    requirements: &[String],
    budget: usize,
    exclude: &[String],
    pool: &Pool<'_>,
) -> Result<Vec<String>, OrchestratorError> {
    let mut per_requirement: Vec<String> = Vec::new();
    let taken = |list: &[String], id: &str| list.iter().any(|x| x == id);
    for requirement in requirements {
        let candidates = pool.ranked(&|c| c.spec.has_capability(requirement));
        let pick = candidates
            .iter()
            .find(|c| !taken(&per_requirement, c.id()) && !taken(exclude, c.id()))
            .or_else(|| candidates.first());
        if let Some(c) = pick
            && !taken(&per_requirement, c.id())
        {
            per_requirement.push(c.id().to_owned());
        }
    }
    if per_requirement.len() <= budget {
        return Ok(per_requirement);
    }

    // Greedy set cover within the budget: take the agent covering most uncovered
    // requirements (score breaks ties, via the ranking order).
    let all = pool.ranked(&|c| requirements.iter().any(|r| c.spec.has_capability(r)));
    let mut uncovered: Vec<&String> = requirements.iter().collect();
    let mut cover: Vec<&Candidate<'_>> = Vec::new();
    while !uncovered.is_empty() && cover.len() < budget {
        let best = all
            .iter()
            .filter(|s| !cover.iter().any(|c| c.id() == s.id()))
            .max_by_key(|s| {
                (
                    uncovered
                        .iter()
                        .filter(|r| s.spec.has_capability(r))
                        .count(),
                    std::cmp::Reverse(all.iter().position(|x| x.id() == s.id())),
                )
            });
        let Some(best) = best else { break };
        uncovered.retain(|r| !best.spec.has_capability(r));
        cover.push(best);
    }
    if let Some(missing) = uncovered.first() {
        return Err(OrchestratorError::invalid(
            "constraints.max_agents",
            format!(
                "{budget} agent(s) cannot cover every requirement (`{missing}` is left over); raise max_agents"
            ),
        ));
    }
    let first_covered = |c: &Candidate<'_>| {
        requirements
            .iter()
            .position(|r| c.spec.has_capability(r))
            .unwrap_or(usize::MAX)
    };
    cover.sort_by_key(|c| first_covered(c));
    Ok(cover.into_iter().map(|c| c.id().to_owned()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::BreakerConfig;
    use sutazai_core::{AgentCategory, AgentSpec, Constraints, Priority};

    fn agent(id: &str, role: AgentRole, caps: &[&str]) -> AgentSpec {
        AgentSpec {
            id: id.into(),
            name: id.into(),
            category: AgentCategory::Development,
            role,
            capabilities: caps.iter().map(|c| c.to_string()).collect(),
            model: None,
            provider: None,
            system_prompt: "x".into(),
            temperature: 0.2,
            max_concurrency: 2,
        }
    }

    fn roster() -> Roster {
        Roster::new(
            [
                agent(
                    "boss",
                    AgentRole::Coordinator,
                    &["task_planning", "synthesis"],
                ),
                agent(
                    "coder",
                    AgentRole::Worker,
                    &["code_generation", "code_review"],
                ),
                agent("coder2", AgentRole::Worker, &["code_generation"]),
                agent(
                    "sec",
                    AgentRole::Monitor,
                    &["security_review", "code_review"],
                ),
                agent("ops", AgentRole::Specialist, &["deployment", "monitoring"]),
            ],
            BreakerConfig::default(),
        )
    }

    fn request(pattern: CoordinationPattern, reqs: &[&str], max: Option<u32>) -> TaskRequest {
        TaskRequest {
            name: "t".into(),
            description: String::new(),
            task_type: String::new(),
            priority: Priority::Normal,
            requirements: reqs.iter().map(|r| r.to_string()).collect(),
            coordination_pattern: pattern,
            payload: serde_json::Value::Null,
            constraints: Constraints {
                max_agents: max,
                ..Default::default()
            },
        }
    }

    #[test]
    fn one_agent_per_requirement_in_order() {
        let r = roster();
        let req = request(
            CoordinationPattern::Pipeline,
            &["security_review", "code_generation", "deployment"],
            None,
        );
        assert_eq!(select(&r, &req, 5).unwrap(), ["sec", "coder", "ops"]);
    }

    #[test]
    fn hierarchical_puts_coordinator_first() {
        let r = roster();
        let req = request(
            CoordinationPattern::Hierarchical,
            &["code_generation"],
            None,
        );
        let chosen = select(&r, &req, 5).unwrap();
        assert_eq!(chosen[0], "boss");
        assert!(chosen.len() >= 2);
    }

    #[test]
    fn max_agents_forces_a_cover() {
        let r = roster();
        let req = request(
            CoordinationPattern::Pipeline,
            &["code_generation", "code_review", "security_review"],
            Some(2),
        );
        let chosen = select(&r, &req, 5).unwrap();
        assert_eq!(chosen.len(), 2);
        let req = request(
            CoordinationPattern::Pipeline,
            &["code_generation", "security_review", "deployment"],
            Some(2),
        );
        let err = select(&r, &req, 5).unwrap_err();
        assert_eq!(err.code(), "invalid_request");
    }

    #[test]
    fn unknown_and_stopped_capabilities_are_errors() {
        let r = roster();
        let req = request(CoordinationPattern::Pipeline, &["quantum_magic"], None);
        assert!(matches!(
            select(&r, &req, 5),
            Err(OrchestratorError::NoCapableAgent(c)) if c == "quantum_magic"
        ));
        r.get("ops").unwrap().set_enabled(false);
        let req = request(CoordinationPattern::Pipeline, &["deployment"], None);
        assert!(matches!(
            select(&r, &req, 5),
            Err(OrchestratorError::AgentsUnavailable(_))
        ));
    }

    #[test]
    fn track_record_and_load_change_the_choice() {
        let r = roster();
        let req = request(CoordinationPattern::Pipeline, &["code_generation"], None);
        assert_eq!(select(&r, &req, 5).unwrap(), ["coder"]);
        for _ in 0..10 {
            r.get("coder").unwrap().record_outcome(false, 0.0);
            r.get("coder2").unwrap().record_outcome(true, 1.0);
        }
        assert_eq!(select(&r, &req, 5).unwrap(), ["coder2"]);
    }

    #[test]
    fn swarm_and_collaborative_get_a_minimum() {
        let r = roster();
        let req = request(CoordinationPattern::Swarm, &["code_generation"], None);
        assert_eq!(select(&r, &req, 5).unwrap().len(), 3);
        let req = request(
            CoordinationPattern::Collaborative,
            &["code_generation"],
            None,
        );
        assert_eq!(select(&r, &req, 5).unwrap(), ["coder", "coder2"]);
    }
}
