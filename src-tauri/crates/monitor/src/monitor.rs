//! The monitor: the sampler, the rule evaluator fed by every sample (host metrics, and the
//! app's own — agents — through an [`ObservationSource`]), and the alerts that come of it:
//! the ones firing now, a bounded history, acknowledgement, and a broadcast of every change
//! for `/ws` and the desktop's notifications.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use crate::rules::{AlertChange, Evaluator, Observation, Rule, Severity};
use crate::sampler::{HostSnapshot, Sampler};

/// Alerts kept in the history (firing ones are always kept).
const HISTORY: usize = 1000;

/// Observations the app adds to each evaluation (agent success rates, …).
pub type ObservationSource =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Vec<Observation>> + Send>> + Send + Sync>;

/// Settings of the monitor.
#[derive(Clone)]
pub struct MonitorConfig {
    /// Between samples.
    pub interval: Duration,
    /// Snapshots kept for live graphs.
    pub ring: usize,
    /// The alert rules.
    pub rules: Vec<Rule>,
    /// The app's own observations.
    pub source: Option<ObservationSource>,
}

impl std::fmt::Debug for MonitorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonitorConfig")
            .field("interval", &self.interval)
            .field("ring", &self.ring)
            .field("rules", &self.rules.len())
            .finish_non_exhaustive()
    }
}

/// One alert, firing or resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AlertRecord {
    /// Its id.
    pub id: u64,
    /// The rule that raised it.
    pub rule_id: String,
    /// What it is about (`host`, an agent id, a mount point).
    pub subject: String,
    /// Severity.
    pub severity: Severity,
    /// `firing` or `resolved`.
    pub status: String,
    /// What happened, for people.
    pub message: String,
    /// The value that fired it.
    pub value: f64,
    /// When it fired.
    pub fired_at: DateTime<Utc>,
    /// When it resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Whether someone acknowledged it.
    pub acknowledged: bool,
    /// Delivery to each channel (email, slack): the last outcome.
    pub deliveries: Vec<Delivery>,
}

/// The last outcome of delivering an alert change to one channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    /// `email` or `slack`.
    pub channel: String,
    /// Which change (`firing` or `resolved`) it concerns.
    pub change: String,
    /// `delivered`, `retrying` or `failed`.
    pub status: String,
    /// Tries so far.
    pub attempts: u32,
    /// The last error.
    pub error: Option<String>,
}

/// Why an alert could not be acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AlertError {
    /// No alert with that id.
    #[error("no alert {0}")]
    NotFound(u64),
    /// No rule with that id.
    #[error("no alert rule {0:?}")]
    UnknownRule(String),
    /// A rule's values are out of range.
    #[error("{0}")]
    InvalidRule(String),
}

impl AlertError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            AlertError::NotFound(_) => "alert_not_found",
            AlertError::UnknownRule(_) => "unknown_rule",
            AlertError::InvalidRule(_) => "invalid_rule",
        }
    }
}

#[derive(Debug, Default)]
struct Book {
    next_id: u64,
    evaluator: Evaluator,
    /// Newest last.
    alerts: VecDeque<AlertRecord>,
}

/// The running monitor. Cheap to clone.
#[derive(Clone)]
pub struct Monitor {
    sampler: Sampler,
    book: Arc<Mutex<Book>>,
    changes: broadcast::Sender<AlertRecord>,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor").finish_non_exhaustive()
    }
}

fn lock(book: &Mutex<Book>) -> MutexGuard<'_, Book> {
    book.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The host's observations in a snapshot.
pub fn host_observations(s: &HostSnapshot) -> Vec<Observation> {
    let mut out = vec![
        Observation {
            metric: "cpu_percent".into(),
            subject: "host".into(),
            value: s.cpu_percent,
        },
        Observation {
            metric: "memory_percent".into(),
            subject: "host".into(),
            value: s.memory_percent,
        },
    ];
    out.extend(s.disks.iter().map(|d| Observation {
        metric: "disk_used_percent".into(),
        subject: d.mount.clone(),
        value: d.used_percent,
    }));
    out
}

fn message(rule: &str, subject: &str, value: f64) -> String {
    match rule {
        "agent_health_low" => format!(
            "agent {subject} health is {:.0}% (below 80%)",
            value * 100.0
        ),
        "agent_success_rate_low" => {
            format!(
                "agent {subject} success rate is {:.0}% (below 90%)",
                value * 100.0
            )
        }
        "agent_response_time_high" => {
            format!("agent {subject} responds in {value:.1} s on average (above 10 s)")
        }
        "agent_error_rate_high" => {
            format!(
                "agent {subject} error rate is {:.0}% (above 5%)",
                value * 100.0
            )
        }
        "host_cpu_high" => format!("host CPU at {value:.0}%"),
        "host_memory_high" => format!("host memory at {value:.0}%"),
        "disk_usage_high" => format!("disk {subject} is {value:.0}% full"),
        "gpu_memory_high" => format!("GPU {subject} memory at {value:.0}%"),
        other => format!("{other} for {subject}: {value}"),
    }
}

impl Monitor {
    /// Starts the sampler and the evaluation task.
    pub fn start(config: MonitorConfig, shutdown: CancellationToken) -> Monitor {
        let sampler = Sampler::start(config.interval, config.ring, shutdown.clone());
        let (changes, _) = broadcast::channel(256);
        let monitor = Monitor {
            sampler,
            book: Arc::new(Mutex::new(Book {
                evaluator: Evaluator::new(config.rules.clone()),
                ..Book::default()
            })),
            changes,
        };
        let task = monitor.clone();
        let source = config.source.clone();
        tokio::spawn(async move {
            let mut snapshots = task.sampler.watch();
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    changed = snapshots.changed() => if changed.is_err() { return },
                }
                let Some(snapshot) = snapshots.borrow_and_update().clone() else {
                    continue;
                };
                let mut observations = host_observations(&snapshot);
                if let Some(source) = &source {
                    observations.extend(source().await);
                }
                task.evaluate(Utc::now(), &observations);
            }
        });
        monitor
    }

    /// Evaluates `observations` taken at `now` and records what changed.
    pub fn evaluate(&self, now: DateTime<Utc>, observations: &[Observation]) -> Vec<AlertRecord> {
        let mut out = Vec::new();
        {
            let mut book = lock(&self.book);
            for change in book.evaluator.observe(now, observations) {
                match change {
                    AlertChange::Fired {
                        rule_id,
                        subject,
                        value,
                        severity,
                        at,
                    } => {
                        book.next_id += 1;
                        let record = AlertRecord {
                            id: book.next_id,
                            message: message(&rule_id, &subject, value),
                            rule_id,
                            subject,
                            severity,
                            status: "firing".into(),
                            value,
                            fired_at: at,
                            resolved_at: None,
                            acknowledged: false,
                            deliveries: Vec::new(),
                        };
                        book.alerts.push_back(record.clone());
                        out.push(record);
                    }
                    AlertChange::Resolved {
                        rule_id,
                        subject,
                        at,
                        ..
                    } => {
                        if let Some(record) = book.alerts.iter_mut().rev().find(|r| {
                            r.rule_id == rule_id && r.subject == subject && r.status == "firing"
                        }) {
                            record.status = "resolved".into();
                            record.resolved_at = Some(at);
                            out.push(record.clone());
                        }
                    }
                }
            }
            // Bounded: the oldest resolved alerts go first.
            while book.alerts.len() > HISTORY {
                match book.alerts.iter().position(|r| r.status == "resolved") {
                    Some(i) => {
                        book.alerts.remove(i);
                    }
                    None => break,
                }
            }
        }
        for record in &out {
            let _ = self.changes.send(record.clone());
        }
        out
    }

    /// Every alert kept, newest first.
    pub fn alerts(&self) -> Vec<AlertRecord> {
        lock(&self.book).alerts.iter().rev().cloned().collect()
    }

    /// How many alerts fire now (without copying the history).
    pub fn firing_count(&self) -> usize {
        lock(&self.book)
            .alerts
            .iter()
            .filter(|r| r.status == "firing")
            .count()
    }

    /// Acknowledges alert `id`.
    pub fn acknowledge(&self, id: u64) -> Result<AlertRecord, AlertError> {
        let record = {
            let mut book = lock(&self.book);
            let Some(record) = book.alerts.iter_mut().find(|r| r.id == id) else {
                return Err(AlertError::NotFound(id));
            };
            record.acknowledged = true;
            let record = record.clone();
            if record.status == "firing" {
                book.evaluator.acknowledge(&record.rule_id, &record.subject);
            }
            record
        };
        let _ = self.changes.send(record.clone());
        Ok(record)
    }

    /// Records the outcome of delivering alert `id`'s current change to `channel`.
    pub fn record_delivery(
        &self,
        id: u64,
        channel: &str,
        status: &str,
        attempts: u32,
        error: Option<String>,
    ) {
        let mut book = lock(&self.book);
        if let Some(record) = book.alerts.iter_mut().find(|r| r.id == id) {
            let change = record.status.clone();
            record
                .deliveries
                .retain(|d| !(d.channel == channel && d.change == change));
            record.deliveries.push(Delivery {
                channel: channel.to_owned(),
                change,
                status: status.to_owned(),
                attempts,
                error,
            });
        }
    }

    /// Replaces a rule (matched by id; unknown ids are refused) after checking it.
    pub fn set_rule(&self, rule: Rule) -> Result<Rule, AlertError> {
        if !rule.threshold.is_finite()
            || rule.for_seconds > 86_400
            || rule.cooldown_seconds > 7 * 86_400
        {
            return Err(AlertError::InvalidRule(format!(
                "threshold must be a number, for_seconds at most 86400, cooldown_seconds at most 604800 (rule {})",
                rule.id
            )));
        }
        let mut book = lock(&self.book);
        let Some(existing) = book.evaluator.rules().iter().find(|r| r.id == rule.id) else {
            return Err(AlertError::UnknownRule(rule.id));
        };
        if existing.metric != rule.metric {
            return Err(AlertError::InvalidRule(format!(
                "the metric of rule {} is {}; it cannot change",
                rule.id, existing.metric
            )));
        }
        book.evaluator.set_rule(rule.clone());
        Ok(rule)
    }

    /// Every alert change (fired, resolved, acknowledged).
    pub fn subscribe(&self) -> broadcast::Receiver<AlertRecord> {
        self.changes.subscribe()
    }

    /// The latest host snapshot.
    pub fn host(&self) -> Option<Arc<HostSnapshot>> {
        self.sampler.latest()
    }

    /// The recent host snapshots, oldest first.
    pub fn host_history(&self) -> Vec<Arc<HostSnapshot>> {
        self.sampler.recent()
    }

    /// The rules in use.
    pub fn rules(&self) -> Vec<Rule> {
        lock(&self.book).evaluator.rules().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::default_rules;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    #[tokio::test]
    async fn alerts_fire_resolve_and_are_acknowledged() {
        let stop = CancellationToken::new();
        let monitor = Monitor::start(
            MonitorConfig {
                interval: Duration::from_secs(3600),
                ring: 4,
                rules: default_rules(),
                source: None,
            },
            stop.clone(),
        );
        let mut changes = monitor.subscribe();
        let low = |v: f64| {
            vec![Observation {
                metric: "agent_success_rate".into(),
                subject: "agent-x".into(),
                value: v,
            }]
        };
        assert!(monitor.evaluate(at(0), &low(0.5)).is_empty());
        let fired = monitor.evaluate(at(61), &low(0.5));
        assert_eq!(fired.len(), 1);
        assert_eq!(
            fired[0].message,
            "agent agent-x success rate is 50% (below 90%)"
        );
        assert_eq!(changes.recv().await.unwrap().status, "firing");
        assert_eq!(monitor.firing_count(), 1);
        let acked = monitor.acknowledge(fired[0].id).unwrap();
        assert!(acked.acknowledged);
        assert_eq!(monitor.acknowledge(999), Err(AlertError::NotFound(999)));
        let resolved = monitor.evaluate(at(120), &low(0.99));
        assert_eq!(resolved[0].status, "resolved");
        assert_eq!(resolved[0].resolved_at, Some(at(120)));
        assert_eq!(monitor.firing_count(), 0);
        assert_eq!(monitor.alerts().len(), 1);
        stop.cancel();
    }
}
