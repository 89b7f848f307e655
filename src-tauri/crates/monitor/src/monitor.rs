//! The monitor: the sampler, the rule evaluator fed by every sample (host metrics, and the
//! app's own — agents — through an [`ObservationSource`]), and the alerts that come of it:
//! the ones firing now, a bounded history, acknowledgement, and a broadcast of every change
//! for `/ws` and the desktop's notifications. With a [`History`], every observation also
//! goes into the time series (10-second buckets and their roll-ups), and alerts and rule
//! edits are stored, so they outlive a restart: alerts firing when the app stopped are
//! taken up again and resolve when their condition clears.

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

use crate::history::{
    Accumulator, History, HistoryError, SeriesAnswer, SeriesInfo, SeriesQuery, load_alerts,
};
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
    /// Where time series, alerts and rule edits are stored (none: memory only).
    pub history: Option<History>,
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
    /// Time series need the history, which this monitor runs without.
    #[error(
        "this monitor keeps no history (time series are stored by `sutazai serve` and the desktop app)"
    )]
    NoHistory,
    /// A history query's parameter is out of range.
    #[error("{field}: {message}")]
    InvalidQuery {
        /// The parameter.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The history could not be read.
    #[error("{0}")]
    History(String),
}

impl From<HistoryError> for AlertError {
    fn from(e: HistoryError) -> Self {
        match e {
            HistoryError::Invalid { field, message } => AlertError::InvalidQuery { field, message },
            other => AlertError::History(other.to_string()),
        }
    }
}

impl AlertError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            AlertError::NotFound(_) => "alert_not_found",
            AlertError::UnknownRule(_) => "unknown_rule",
            AlertError::InvalidRule(_) => "invalid_rule",
            AlertError::NoHistory => "monitoring_history_off",
            AlertError::InvalidQuery { .. } => "invalid_query",
            AlertError::History(_) => "monitoring_history_error",
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
    history: Option<History>,
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

/// The host's observations in a snapshot: what the hardware rules watch and what the
/// time series keep.
pub fn host_observations(s: &HostSnapshot) -> Vec<Observation> {
    let host = |metric: &str, value: f64| Observation {
        metric: metric.into(),
        subject: "host".into(),
        value,
    };
    let swap_percent = if s.swap_total_bytes > 0 {
        s.swap_used_bytes as f64 / s.swap_total_bytes as f64 * 100.0
    } else {
        0.0
    };
    let (rx, tx) = s
        .networks
        .iter()
        .filter(|n| n.interface != "lo")
        .fold((0.0, 0.0), |(rx, tx), n| {
            (rx + n.rx_bytes_per_second, tx + n.tx_bytes_per_second)
        });
    let mut out = vec![
        host("cpu_percent", s.cpu_percent),
        host("memory_percent", s.memory_percent),
        host("memory_used_bytes", s.memory_used_bytes as f64),
        host("swap_percent", swap_percent),
        host("load_average_1m", s.load_average[0]),
        host("network_rx_bytes_per_second", rx),
        host("network_tx_bytes_per_second", tx),
    ];
    if let Some(hottest) = s.temperatures.iter().map(|t| t.celsius).reduce(f64::max) {
        out.push(host("temperature_celsius", hottest));
    }
    out.extend(s.disks.iter().map(|d| Observation {
        metric: "disk_used_percent".into(),
        subject: d.mount.clone(),
        value: d.used_percent,
    }));
    for g in &s.gpus {
        let gpu = |metric: &str, value: f64| Observation {
            metric: metric.into(),
            subject: g.subject(),
            value,
        };
        out.push(gpu("gpu_utilization_percent", g.utilization_percent));
        out.push(gpu("gpu_memory_percent", g.memory_percent));
        out.push(gpu("gpu_memory_used_bytes", g.memory_used_bytes as f64));
        if let Some(t) = g.temperature_celsius {
            out.push(gpu("gpu_temperature_celsius", t));
        }
    }
    out
}

/// A dependency's subject (`message_bus`, `docker`, `llm:<provider>`) as people say it.
fn dependency_name(subject: &str) -> String {
    match subject {
        "message_bus" => "the message bus".into(),
        "docker" => "the Docker engine".into(),
        other => match other.strip_prefix("llm:") {
            Some(provider) => format!("the LLM endpoint of provider {provider}"),
            None => other.into(),
        },
    }
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
        "dependency_down" => format!("{} is unreachable", dependency_name(subject)),
        "tasks_interrupted" => {
            format!("{value:.0} task(s) interrupted by the last stop are being resumed")
        }
        other => format!("{other} for {subject}: {value}"),
    }
}

impl Monitor {
    /// Starts the sampler and the evaluation task. With a history, the rules people
    /// edited replace the defaults of the same id, and the stored alerts are taken up.
    pub async fn start(
        config: MonitorConfig,
        shutdown: CancellationToken,
    ) -> Result<Monitor, AlertError> {
        let mut rules = config.rules.clone();
        let mut book = Book::default();
        if let Some(history) = &config.history {
            for stored in history.rules().await? {
                match rules.iter_mut().find(|r| r.id == stored.id) {
                    Some(rule) if rule.metric == stored.metric => *rule = stored,
                    _ => {
                        tracing::warn!(rule = %stored.id, "stored alert rule no longer applies; ignored")
                    }
                }
            }
            let path = history.path().to_owned();
            let (max_id, alerts) = tokio::task::spawn_blocking(move || load_alerts(&path, HISTORY))
                .await
                .map_err(|e| AlertError::History(e.to_string()))??;
            book.next_id = max_id;
            book.evaluator = Evaluator::new(rules);
            let now = Utc::now();
            let mut alerts = alerts;
            for a in alerts.iter_mut().filter(|a| a.status == "firing") {
                // A rule removed or switched off since cannot clear its alert: it is over.
                if !book
                    .evaluator
                    .restore(&a.rule_id, &a.subject, a.fired_at, a.acknowledged)
                {
                    a.status = "resolved".into();
                    a.resolved_at = Some(now);
                    history.save_alert(a);
                }
            }
            book.alerts = alerts.into();
        } else {
            book.evaluator = Evaluator::new(rules);
        }
        let sampler = Sampler::start(config.interval, config.ring, shutdown.clone());
        let (changes, _) = broadcast::channel(256);
        let monitor = Monitor {
            sampler,
            book: Arc::new(Mutex::new(book)),
            changes,
            history: config.history.clone(),
        };
        let task = monitor.clone();
        let source = config.source.clone();
        tokio::spawn(async move {
            let mut snapshots = task.sampler.watch();
            let mut buckets = Accumulator::default();
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
                let now = Utc::now();
                task.evaluate(now, &observations);
                if let Some(history) = &task.history
                    && let Some(closed) = buckets.add(now.timestamp(), &observations)
                {
                    history.record(closed);
                }
            }
        });
        Ok(monitor)
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
                        self.stored(&record);
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
                            let record = record.clone();
                            self.stored(&record);
                            out.push(record);
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

    /// Queues `record` for the history. Called with the book locked, so the writer gets
    /// every alert's states in the order they happened (the send never blocks).
    fn stored(&self, record: &AlertRecord) {
        if let Some(history) = &self.history {
            history.save_alert(record);
        }
    }

    /// Every alert kept, newest first.
    pub fn alerts(&self) -> Vec<AlertRecord> {
        lock(&self.book).alerts.iter().rev().cloned().collect()
    }

    /// Alerts firing now, without copying the history: (all, critical, critical and not
    /// acknowledged).
    pub fn firing_summary(&self) -> (usize, usize, usize) {
        let book = lock(&self.book);
        let firing = book.alerts.iter().filter(|r| r.status == "firing");
        firing.fold((0, 0, 0), |(all, critical, open), r| {
            let is_critical = r.severity == Severity::Critical;
            (
                all + 1,
                critical + usize::from(is_critical),
                open + usize::from(is_critical && !r.acknowledged),
            )
        })
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
            self.stored(&record);
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
        {
            let mut book = lock(&self.book);
            let Some(record) = book.alerts.iter_mut().find(|r| r.id == id) else {
                return;
            };
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
            let updated = record.clone();
            self.stored(&updated);
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
        let ended = book.evaluator.set_rule(rule.clone());
        let now = Utc::now();
        let mut closed = Vec::new();
        for subject in ended {
            if let Some(record) = book
                .alerts
                .iter_mut()
                .rev()
                .find(|r| r.rule_id == rule.id && r.subject == subject && r.status == "firing")
            {
                record.status = "resolved".into();
                record.resolved_at = Some(now);
                closed.push(record.clone());
            }
        }
        for record in &closed {
            self.stored(record);
        }
        if let Some(history) = &self.history {
            history.save_rule(&rule);
        }
        drop(book);
        for record in &closed {
            let _ = self.changes.send(record.clone());
        }
        Ok(rule)
    }

    /// Stored alerts, newest first: with `status` (any when `None`), ids below `before`, at
    /// most `limit`. Without a history, the ones kept in memory.
    pub async fn alert_history(
        &self,
        status: Option<String>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AlertRecord>, AlertError> {
        match &self.history {
            Some(history) => Ok(history.alerts(status, before, limit).await?),
            None => Ok(self
                .alerts()
                .into_iter()
                .filter(|a| status.as_deref().is_none_or(|s| a.status == s))
                .filter(|a| before.is_none_or(|b| a.id < b))
                .take(limit)
                .collect()),
        }
    }

    /// Points of a metric over a range, by step.
    pub async fn series(&self, query: SeriesQuery) -> Result<SeriesAnswer, AlertError> {
        let history = self.history.as_ref().ok_or(AlertError::NoHistory)?;
        Ok(history.query(query, Utc::now()).await?)
    }

    /// Every series stored.
    pub async fn series_catalogue(&self) -> Result<Vec<SeriesInfo>, AlertError> {
        let history = self.history.as_ref().ok_or(AlertError::NoHistory)?;
        Ok(history.catalogue().await?)
    }

    /// The history, if kept.
    pub fn history(&self) -> Option<&History> {
        self.history.as_ref()
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
                history: None,
            },
            stop.clone(),
        )
        .await
        .unwrap();
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
        assert_eq!(monitor.firing_summary().0, 1);
        let acked = monitor.acknowledge(fired[0].id).unwrap();
        assert!(acked.acknowledged);
        assert_eq!(monitor.acknowledge(999), Err(AlertError::NotFound(999)));
        let resolved = monitor.evaluate(at(120), &low(0.99));
        assert_eq!(resolved[0].status, "resolved");
        assert_eq!(resolved[0].resolved_at, Some(at(120)));
        assert_eq!(monitor.firing_summary().0, 0);
        assert_eq!(monitor.alerts().len(), 1);
        stop.cancel();
    }

    /// Alerts, acknowledgements and rule edits outlive a restart: an alert firing when the
    /// monitor stopped is taken up (no second alert while its condition holds) and
    /// resolves, with the same id, when the condition clears.
    #[tokio::test]
    async fn alerts_and_rule_edits_are_stored_and_taken_up_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("monitoring.db");
        let start = |stop: CancellationToken| {
            let path = path.clone();
            async move {
                let history =
                    History::open(&path, Duration::from_secs(86_400), stop.clone()).unwrap();
                Monitor::start(
                    MonitorConfig {
                        interval: Duration::from_secs(3600),
                        ring: 4,
                        rules: default_rules(),
                        source: None,
                        history: Some(history),
                    },
                    stop,
                )
                .await
                .unwrap()
            }
        };
        let errors = |v: f64| {
            vec![Observation {
                metric: "agent_error_rate".into(),
                subject: "agent-y".into(),
                value: v,
            }]
        };
        let stop = CancellationToken::new();
        let first = start(stop.clone()).await;
        let mut rule = first
            .rules()
            .into_iter()
            .find(|r| r.id == "agent_error_rate_high")
            .unwrap();
        rule.threshold = 0.2;
        rule.for_seconds = 0;
        first.set_rule(rule.clone()).unwrap();
        let fired = first.evaluate(at(0), &errors(0.5));
        assert_eq!(fired.len(), 1);
        first.acknowledge(fired[0].id).unwrap();
        first.history().unwrap().flush().await.unwrap();
        stop.cancel();

        let stop = CancellationToken::new();
        let second = start(stop.clone()).await;
        let kept = second
            .rules()
            .into_iter()
            .find(|r| r.id == "agent_error_rate_high")
            .unwrap();
        assert_eq!(kept, rule, "the edited rule is back");
        let alerts = second.alerts();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].status, "firing");
        assert!(alerts[0].acknowledged);
        assert!(
            second.evaluate(at(30), &errors(0.5)).is_empty(),
            "no duplicate"
        );
        let resolved = second.evaluate(at(60), &errors(0.1));
        assert_eq!(resolved.len(), 1);
        assert_eq!(
            (resolved[0].id, resolved[0].status.as_str()),
            (fired[0].id, "resolved")
        );
        // New alerts continue the numbering.
        let again = second.evaluate(at(5000), &errors(0.9));
        assert_eq!(again[0].id, fired[0].id + 1);
        second.history().unwrap().flush().await.unwrap();
        let stored = second
            .alert_history(Some("resolved".into()), None, 10)
            .await
            .unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].resolved_at, Some(at(60)));
        let all = second.alert_history(None, None, 10).await.unwrap();
        assert_eq!(
            all.iter().map(|a| a.id).collect::<Vec<_>>(),
            [again[0].id, fired[0].id]
        );
        stop.cancel();
    }
}
