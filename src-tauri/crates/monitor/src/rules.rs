//! Alert rules and their evaluation, as a pure state machine over observations and the
//! time (so tests control the clock).
//!
//! A [`Rule`] watches one metric (`cpu_percent`, `agent_success_rate`, …) for every
//! subject that reports it (the host, each agent, each disk). For a subject, the rule's
//! condition must hold continuously for `for_seconds` before it **fires**, once: while it
//! keeps holding nothing more is sent (deduplication). When the condition clears, the
//! alert is **resolved**. After firing, the same rule and subject fire again only once
//! `cooldown_seconds` have passed since the last firing, however often the condition
//! flaps. A firing alert can be **acknowledged**; that is recorded and does not silence
//! its resolution. A subject that stops reporting the metric (an agent with no steps in
//! the recent window, an agent stopped, a disk unmounted, a GPU gone) counts as clear: its
//! alert resolves rather than firing forever.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How a value is compared with the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    /// Fires while the value is above the threshold.
    Above,
    /// Fires while the value is below the threshold.
    Below,
}

/// How bad it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Needs attention.
    Warning,
    /// Needs action now.
    Critical,
}

/// One alert rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Stable id (`agent_success_rate_low`).
    pub id: String,
    /// The metric it watches.
    pub metric: String,
    /// Above or below.
    pub comparison: Comparison,
    /// The threshold, in the metric's unit.
    pub threshold: f64,
    /// Seconds the condition must hold before the rule fires.
    pub for_seconds: u64,
    /// Seconds after a firing before the same subject may fire again.
    pub cooldown_seconds: u64,
    /// Severity of its alerts.
    pub severity: Severity,
    /// Off rules are not evaluated.
    pub enabled: bool,
}

impl Rule {
    fn holds(&self, value: f64) -> bool {
        match self.comparison {
            Comparison::Above => value > self.threshold,
            Comparison::Below => value < self.threshold,
        }
    }
}

fn rule(
    id: &str,
    metric: &str,
    comparison: Comparison,
    threshold: f64,
    for_seconds: u64,
    severity: Severity,
) -> Rule {
    Rule {
        id: id.into(),
        metric: metric.into(),
        comparison,
        threshold,
        for_seconds,
        cooldown_seconds: 900,
        severity,
        enabled: true,
    }
}

/// The system description's thresholds (agent health below 80%, success rate below 90%,
/// response time above 10 s, error rate above 5%), the hardware ones, a dependency (the
/// message bus, an LLM endpoint, the Docker engine) unreachable for 10 s, and tasks
/// interrupted by the last stop still being resumed.
pub fn default_rules() -> Vec<Rule> {
    use Comparison::{Above, Below};
    use Severity::{Critical, Warning};
    vec![
        rule("agent_health_low", "agent_health", Below, 0.80, 60, Warning),
        rule(
            "agent_success_rate_low",
            "agent_success_rate",
            Below,
            0.90,
            60,
            Warning,
        ),
        rule(
            "agent_response_time_high",
            "agent_response_time_seconds",
            Above,
            10.0,
            60,
            Warning,
        ),
        rule(
            "agent_error_rate_high",
            "agent_error_rate",
            Above,
            0.05,
            60,
            Warning,
        ),
        rule("host_cpu_high", "cpu_percent", Above, 90.0, 300, Warning),
        rule(
            "host_memory_high",
            "memory_percent",
            Above,
            90.0,
            300,
            Critical,
        ),
        rule(
            "disk_usage_high",
            "disk_used_percent",
            Above,
            90.0,
            600,
            Critical,
        ),
        // Every outage and every interrupted start counts: no cooldown.
        Rule {
            cooldown_seconds: 0,
            ..rule("dependency_down", "dependency_up", Below, 1.0, 10, Critical)
        },
        Rule {
            cooldown_seconds: 0,
            ..rule(
                "tasks_interrupted",
                "tasks_interrupted",
                Above,
                0.0,
                0,
                Warning,
            )
        },
        rule(
            "gpu_memory_high",
            "gpu_memory_percent",
            Above,
            95.0,
            300,
            Warning,
        ),
    ]
}

/// A value of a metric for one subject at one time.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The metric.
    pub metric: String,
    /// What it is about (`host`, an agent id, a mount point).
    pub subject: String,
    /// The value.
    pub value: f64,
}

/// What evaluation decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AlertChange {
    /// The condition held long enough: an alert.
    Fired {
        /// The rule.
        rule_id: String,
        /// Its subject.
        subject: String,
        /// The value that made it fire.
        value: f64,
        /// Severity.
        severity: Severity,
        /// When.
        at: DateTime<Utc>,
    },
    /// The condition cleared (or the subject stopped reporting: `value` is NaN).
    Resolved {
        /// The rule.
        rule_id: String,
        /// Its subject.
        subject: String,
        /// The value that cleared it.
        value: f64,
        /// When.
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, Default)]
struct State {
    /// Since when the condition holds, while it does.
    since: Option<DateTime<Utc>>,
    /// Firing now.
    firing: bool,
    /// Acknowledged (while firing).
    acknowledged: bool,
    /// When it last fired.
    last_fired: Option<DateTime<Utc>>,
}

impl State {
    /// The condition does not hold (at `value`, NaN when not reported): the duration starts
    /// over, and a firing alert resolves.
    fn clear(
        &mut self,
        rule: &Rule,
        subject: &str,
        value: f64,
        now: DateTime<Utc>,
    ) -> Option<AlertChange> {
        self.since = None;
        if !self.firing {
            return None;
        }
        self.firing = false;
        self.acknowledged = false;
        Some(AlertChange::Resolved {
            rule_id: rule.id.clone(),
            subject: subject.to_owned(),
            value,
            at: now,
        })
    }
}

/// Evaluates rules over observations, remembering each rule × subject's state.
#[derive(Debug, Clone, Default)]
pub struct Evaluator {
    rules: Vec<Rule>,
    states: HashMap<(String, String), State>,
}

impl Evaluator {
    /// An evaluator of `rules`.
    pub fn new(rules: Vec<Rule>) -> Evaluator {
        Evaluator {
            rules,
            states: HashMap::new(),
        }
    }

    /// The rules.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Replaces a rule (same id) or adds it; its state starts over. Returns the subjects
    /// whose alerts of that rule were firing (they are over: the rule they obeyed changed).
    pub fn set_rule(&mut self, rule: Rule) -> Vec<String> {
        let mut ended = Vec::new();
        self.states.retain(|(id, subject), state| {
            if *id != rule.id {
                return true;
            }
            if state.firing {
                ended.push(subject.clone());
            }
            false
        });
        match self.rules.iter_mut().find(|r| r.id == rule.id) {
            Some(existing) => *existing = rule,
            None => self.rules.push(rule),
        }
        ended
    }

    /// Feeds the observations taken at `now`; returns what fired and what resolved.
    pub fn observe(
        &mut self,
        now: DateTime<Utc>,
        observations: &[Observation],
    ) -> Vec<AlertChange> {
        let mut changes = Vec::new();
        for rule in self.rules.iter().filter(|r| r.enabled) {
            for o in observations.iter().filter(|o| o.metric == rule.metric) {
                let key = (rule.id.clone(), o.subject.clone());
                let state = self.states.entry(key).or_default();
                if !rule.holds(o.value) {
                    changes.extend(state.clear(rule, &o.subject, o.value, now));
                    continue;
                }
                let since = *state.since.get_or_insert(now);
                if state.firing {
                    continue;
                }
                let held = now - since >= TimeDelta::seconds(rule.for_seconds as i64);
                let cooled = state
                    .last_fired
                    .is_none_or(|at| now - at >= TimeDelta::seconds(rule.cooldown_seconds as i64));
                if held && cooled {
                    state.firing = true;
                    state.last_fired = Some(now);
                    changes.push(AlertChange::Fired {
                        rule_id: rule.id.clone(),
                        subject: o.subject.clone(),
                        value: o.value,
                        severity: rule.severity,
                        at: now,
                    });
                }
            }
        }
        // Subjects that no longer report a rule's metric are clear.
        let reported: std::collections::HashSet<(&str, &str)> = observations
            .iter()
            .map(|o| (o.metric.as_str(), o.subject.as_str()))
            .collect();
        for rule in self.rules.iter().filter(|r| r.enabled) {
            for ((id, subject), state) in self.states.iter_mut() {
                if *id != rule.id || reported.contains(&(rule.metric.as_str(), subject.as_str())) {
                    continue;
                }
                changes.extend(state.clear(rule, subject, f64::NAN, now));
            }
        }
        changes
    }

    /// Acknowledges the firing alert of `rule_id` for `subject`; false when none fires.
    pub fn acknowledge(&mut self, rule_id: &str, subject: &str) -> bool {
        match self
            .states
            .get_mut(&(rule_id.to_owned(), subject.to_owned()))
        {
            Some(state) if state.firing => {
                state.acknowledged = true;
                true
            }
            _ => false,
        }
    }

    /// Takes up an alert that was firing when the app last stopped: it stays firing (no
    /// second alert while the condition holds) and resolves when the condition clears.
    /// False (nothing taken up) when its rule no longer exists or is off.
    pub fn restore(
        &mut self,
        rule_id: &str,
        subject: &str,
        fired_at: DateTime<Utc>,
        acknowledged: bool,
    ) -> bool {
        if !self.rules.iter().any(|r| r.id == rule_id && r.enabled) {
            return false;
        }
        self.states.insert(
            (rule_id.to_owned(), subject.to_owned()),
            State {
                since: Some(fired_at),
                firing: true,
                acknowledged,
                last_fired: Some(fired_at),
            },
        );
        true
    }

    /// Whether the alert of `rule_id` for `subject` fires now (and whether acknowledged).
    pub fn firing(&self, rule_id: &str, subject: &str) -> Option<bool> {
        self.states
            .get(&(rule_id.to_owned(), subject.to_owned()))
            .filter(|s| s.firing)
            .map(|s| s.acknowledged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    fn cpu(value: f64) -> Vec<Observation> {
        vec![Observation {
            metric: "cpu_percent".into(),
            subject: "host".into(),
            value,
        }]
    }

    fn evaluator() -> Evaluator {
        let mut r = default_rules()
            .into_iter()
            .find(|r| r.id == "host_cpu_high")
            .unwrap();
        r.for_seconds = 60;
        r.cooldown_seconds = 300;
        Evaluator::new(vec![r])
    }

    fn fired(changes: &[AlertChange]) -> usize {
        changes
            .iter()
            .filter(|c| matches!(c, AlertChange::Fired { .. }))
            .count()
    }

    fn resolved(changes: &[AlertChange]) -> usize {
        changes
            .iter()
            .filter(|c| matches!(c, AlertChange::Resolved { .. }))
            .count()
    }

    #[test]
    fn shorter_than_the_duration_never_fires() {
        let mut e = evaluator();
        let mut all = Vec::new();
        // High for 50 s, then normal, then high again for 50 s.
        for s in (0..=50).step_by(10) {
            all.extend(e.observe(at(s), &cpu(95.0)));
        }
        all.extend(e.observe(at(60), &cpu(20.0)));
        for s in (70..=120).step_by(10) {
            all.extend(e.observe(at(s), &cpu(95.0)));
        }
        assert!(all.is_empty(), "{all:?}");
    }

    #[test]
    fn held_longer_fires_once_then_resolves() {
        let mut e = evaluator();
        let mut all = Vec::new();
        for s in (0..=600).step_by(10) {
            all.extend(e.observe(at(s), &cpu(95.0)));
        }
        assert_eq!(fired(&all), 1, "deduplicated: {all:?}");
        assert!(matches!(&all[0], AlertChange::Fired { at: t, .. } if *t == at(60)));
        assert_eq!(e.firing("host_cpu_high", "host"), Some(false));
        assert!(e.acknowledge("host_cpu_high", "host"));
        assert_eq!(e.firing("host_cpu_high", "host"), Some(true));
        let cleared = e.observe(at(610), &cpu(30.0));
        assert_eq!(resolved(&cleared), 1);
        assert_eq!(e.firing("host_cpu_high", "host"), None);
        assert!(!e.acknowledge("host_cpu_high", "host"));
    }

    #[test]
    fn flapping_waits_for_the_cooldown() {
        let mut e = evaluator();
        let mut fires = Vec::new();
        // Every 100 s: 70 s high (long enough), 30 s normal.
        for cycle in 0..8 {
            let base = cycle * 100;
            for s in (0..=70).step_by(10) {
                for c in e.observe(at(base + s), &cpu(95.0)) {
                    if let AlertChange::Fired { at: t, .. } = c {
                        fires.push(t);
                    }
                }
            }
            e.observe(at(base + 80), &cpu(10.0));
        }
        // Fires at 60; the next cycles are long enough but within the 300 s cooldown until
        // 360, and again until 660.
        assert_eq!(fires, [at(60), at(360), at(660)], "{fires:?}");
    }

    #[test]
    fn subjects_are_independent_and_off_rules_are_quiet() {
        let mut e = Evaluator::new(default_rules());
        let obs = |a: f64, b: f64| {
            vec![
                Observation {
                    metric: "agent_success_rate".into(),
                    subject: "agent-a".into(),
                    value: a,
                },
                Observation {
                    metric: "agent_success_rate".into(),
                    subject: "agent-b".into(),
                    value: b,
                },
            ]
        };
        let mut all = Vec::new();
        for s in (0..=120).step_by(10) {
            all.extend(e.observe(at(s), &obs(0.5, 0.99)));
        }
        assert_eq!(fired(&all), 1);
        assert!(matches!(&all[0], AlertChange::Fired { subject, .. } if subject == "agent-a"));
        let mut off = e.rules()[1].clone();
        assert_eq!(off.id, "agent_success_rate_low");
        off.enabled = false;
        e.set_rule(off);
        let mut later = Vec::new();
        for s in (130..=400).step_by(10) {
            later.extend(e.observe(at(s), &obs(0.1, 0.1)));
        }
        assert!(later.is_empty(), "{later:?}");
    }

    #[test]
    fn only_alerts_of_enabled_rules_are_taken_up() {
        let mut e = Evaluator::new(default_rules());
        assert!(e.restore("agent_error_rate_high", "coder", at(0), true));
        assert_eq!(e.firing("agent_error_rate_high", "coder"), Some(true));
        assert!(!e.restore("a_rule_removed_since", "coder", at(0), false));
        let mut off = e.rules()[0].clone();
        off.enabled = false;
        e.set_rule(off.clone());
        assert!(!e.restore(&off.id, "coder", at(0), false));
        assert_eq!(e.firing(&off.id, "coder"), None);
    }

    /// A subject that stops reporting (no steps in the window, agent stopped) resolves,
    /// and must hold the condition for the whole duration again before it fires anew.
    #[test]
    fn a_subject_that_stops_reporting_resolves() {
        let mut e = Evaluator::new(default_rules());
        let low = vec![Observation {
            metric: "agent_success_rate".into(),
            subject: "agent-a".into(),
            value: 0.5,
        }];
        assert!(e.observe(at(0), &low).is_empty());
        assert_eq!(fired(&e.observe(at(60), &low)), 1);
        let gone = e.observe(at(61), &[]);
        assert!(
            matches!(&gone[..], [AlertChange::Resolved { subject, value, .. }] if subject == "agent-a" && value.is_nan()),
            "{gone:?}"
        );
        assert_eq!(e.firing("agent_success_rate_low", "agent-a"), None);
        // Reporting again starts the duration over (and the cooldown still applies).
        assert!(e.observe(at(1000), &low).is_empty());
        assert_eq!(fired(&e.observe(at(1060), &low)), 1);
    }

    /// A dependency away for 10 s fires a critical alert that resolves when it answers;
    /// tasks interrupted by a stop raise a warning at once, until they have finished.
    #[test]
    fn outages_and_interrupted_tasks_fire_and_resolve() {
        let mut e = Evaluator::new(default_rules());
        let obs = |metric: &str, subject: &str, value: f64| {
            vec![Observation {
                metric: metric.into(),
                subject: subject.into(),
                value,
            }]
        };
        assert!(
            e.observe(at(0), &obs("dependency_up", "llm:ollama", 1.0))
                .is_empty()
        );
        assert!(
            e.observe(at(1), &obs("dependency_up", "llm:ollama", 0.0))
                .is_empty()
        );
        assert!(
            e.observe(at(6), &obs("dependency_up", "llm:ollama", 0.0))
                .is_empty()
        );
        let fired_now = e.observe(at(11), &obs("dependency_up", "llm:ollama", 0.0));
        assert!(
            matches!(&fired_now[..], [AlertChange::Fired { rule_id, severity: Severity::Critical, .. }] if rule_id == "dependency_down"),
            "{fired_now:?}"
        );
        let back = e.observe(at(20), &obs("dependency_up", "llm:ollama", 1.0));
        assert!(
            matches!(&back[..], [AlertChange::Resolved { .. }]),
            "{back:?}"
        );
        // A second outage a minute later is alerted too (no cooldown).
        assert!(
            e.observe(at(80), &obs("dependency_up", "llm:ollama", 0.0))
                .is_empty()
        );
        assert_eq!(
            fired(&e.observe(at(90), &obs("dependency_up", "llm:ollama", 0.0))),
            1
        );
        assert_eq!(
            e.observe(at(91), &obs("dependency_up", "llm:ollama", 1.0))
                .len(),
            1
        );

        let now = e.observe(at(30), &obs("tasks_interrupted", "app", 3.0));
        assert!(
            matches!(&now[..], [AlertChange::Fired { rule_id, severity: Severity::Warning, .. }] if rule_id == "tasks_interrupted"),
            "{now:?}"
        );
        assert!(
            e.observe(at(31), &obs("tasks_interrupted", "app", 1.0))
                .is_empty()
        );
        let done = e.observe(at(40), &obs("tasks_interrupted", "app", 0.0));
        assert!(
            matches!(&done[..], [AlertChange::Resolved { .. }]),
            "{done:?}"
        );
    }
}
