//! Native desktop notifications (`notify-rust`: the freedesktop D-Bus service on Linux,
//! the platform's own elsewhere) for alerts — as a [`Notifier`] of the monitor, so every
//! outcome is recorded on the alert like email's and Slack's — for long tasks that
//! finished or failed, and for tasks awaiting approval.
//!
//! Severity sets the urgency. Notifications are grouped: one per alert (its resolution
//! replaces the firing one) and one per task. A [`Throttle`] keeps a flapping rule from
//! flooding the desktop: one notification per subject a minute and at most five a minute
//! in all; what it holds back is counted and mentioned in the next one shown. Clicking a
//! notification asks the shell to open the matching dashboard view (where the platform
//! reports clicks).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sutazai_monitor::{AlertRecord, Delivering, Notifier, Severity};
use sutazai_orchestrator::{Event, Orchestrator};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

/// Tasks that ran at least this long get a notification when they finish.
pub const LONG_TASK: Duration = Duration::from_secs(30);
/// Least time between two notifications about the same alert or task.
const PER_SUBJECT: Duration = Duration::from_secs(60);
/// Most notifications in [`WINDOW`].
const BURST: usize = 5;
const WINDOW: Duration = Duration::from_secs(60);
/// Most notifications waiting for a click at once, each on a thread of its own (some
/// notification centres keep expired notifications without ever reporting them closed).
const WAITING: usize = 8;
/// Most notification ids remembered for replacing.
const IDS: usize = 256;

/// What the throttle decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Show it; `held_back` notifications were suppressed since the last one shown.
    Show {
        /// Suppressed since the last one shown.
        held_back: u32,
    },
    /// Too many: count it and show nothing.
    Suppress,
}

/// Rate limit per subject and overall.
#[derive(Debug, Default)]
pub struct Throttle {
    shown: VecDeque<Instant>,
    last: HashMap<String, Instant>,
    held_back: u32,
}

impl Throttle {
    /// Decides about a notification for `key` at `now`. `update` marks a change that only
    /// replaces a notification already shown for `key` (a resolution): it passes the
    /// per-subject limit, not the overall one.
    pub fn decide(&mut self, key: &str, now: Instant, update: bool) -> Decision {
        while self
            .shown
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
        {
            self.shown.pop_front();
        }
        let recent = self
            .last
            .get(key)
            .is_some_and(|t| now.saturating_duration_since(*t) < PER_SUBJECT);
        if (recent && !update) || self.shown.len() >= BURST {
            self.held_back += 1;
            return Decision::Suppress;
        }
        self.shown.push_back(now);
        self.last.insert(key.to_owned(), now);
        // Forget subjects nobody heard of for a long time.
        if self.last.len() > 1024 {
            self.last
                .retain(|_, t| now.saturating_duration_since(*t) < PER_SUBJECT);
        }
        Decision::Show {
            held_back: std::mem::take(&mut self.held_back),
        }
    }
}

/// One notification to show.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    /// Groups notifications: a later one with the same key replaces the earlier.
    pub key: String,
    /// Title.
    pub summary: String,
    /// Text.
    pub body: String,
    /// How urgent.
    pub severity: Severity,
    /// The dashboard view a click opens (`#/alerts`, `#/tasks/ID`).
    pub route: String,
    /// Replaces an earlier one of the same key (see [`Throttle::decide`]).
    pub update: bool,
}

/// The alert's notification.
pub fn alert_note(alert: &AlertRecord) -> Note {
    let resolved = alert.status == "resolved";
    Note {
        key: format!("alert:{}", alert.id),
        summary: if resolved {
            format!("Resolved: {}", alert.message)
        } else {
            format!("{}: {}", severity_word(alert.severity), alert.message)
        },
        body: format!(
            "{} on {} (rule {}).",
            if resolved { "Cleared" } else { "Firing" },
            alert.subject,
            alert.rule_id
        ),
        severity: if resolved {
            Severity::Info
        } else {
            alert.severity
        },
        route: "#/alerts".into(),
        update: resolved,
    }
}

fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "Critical",
        Severity::Warning => "Warning",
        Severity::Info => "Info",
    }
}

/// The notification a task event deserves, if any: long tasks that completed (the event
/// carries the task's duration), failed tasks, tasks awaiting approval.
pub fn task_note(event: &Event) -> Option<Note> {
    let note = |task_id: &str, summary: String, body: String, severity| Note {
        key: format!("task:{task_id}"),
        summary,
        body,
        severity,
        route: format!("#/tasks/{task_id}"),
        update: false,
    };
    match event {
        Event::TaskCompleted {
            task_id,
            task_name,
            duration,
            ..
        } => (*duration >= LONG_TASK.as_secs_f64()).then(|| {
            note(
                task_id,
                format!("Task finished: {task_name}"),
                format!("Completed in {}.", sutazai_cli::output::duration(*duration)),
                Severity::Info,
            )
        }),
        Event::TaskFailed {
            task_id,
            task_name,
            code,
            message,
        } => Some(note(
            task_id,
            format!("Task failed: {task_name}"),
            format!("{message} ({code})"),
            Severity::Warning,
        )),
        Event::AwaitingApproval {
            task_id,
            task_name,
            pending,
        } => Some(note(
            task_id,
            format!("Approval needed: {task_name}"),
            format!("Waiting for: {}.", pending.join(", ")),
            Severity::Warning,
        )),
        _ => None,
    }
}

/// Shows notifications through the platform's service, throttled and grouped, and reports
/// clicks as dashboard routes.
#[derive(Clone)]
pub struct Desktop {
    throttle: Arc<Mutex<Throttle>>,
    /// Platform ids of the notifications shown, by key (for replacing them).
    ids: Arc<Mutex<HashMap<String, u32>>>,
    /// Threads waiting for a click now.
    waiting: Arc<std::sync::atomic::AtomicUsize>,
    clicks: mpsc::UnboundedSender<String>,
}

impl std::fmt::Debug for Desktop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Desktop").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Desktop {
    /// A notifier whose clicks arrive on the returned receiver as routes.
    pub fn new() -> (Desktop, mpsc::UnboundedReceiver<String>) {
        let (clicks, routes) = mpsc::unbounded_channel();
        (
            Desktop {
                throttle: Arc::default(),
                ids: Arc::default(),
                waiting: Arc::default(),
                clicks,
            },
            routes,
        )
    }

    /// Shows `note` unless the throttle holds it back. Blocking (D-Bus): call it off the
    /// reactor. Errors are the platform's (no notification service, …).
    pub fn show(&self, note: &Note) -> Result<(), String> {
        let held_back = match lock(&self.throttle).decide(&note.key, Instant::now(), note.update) {
            Decision::Show { held_back } => held_back,
            Decision::Suppress => {
                tracing::info!(key = %note.key, "desktop notification held back by the rate limit");
                return Ok(());
            }
        };
        let mut body = note.body.clone();
        if held_back > 0 {
            body.push_str(&format!(
                "\n(+{held_back} more notification{} held back — see the dashboard)",
                if held_back == 1 { "" } else { "s" }
            ));
        }
        let mut n = notify_rust::Notification::new();
        n.appname("SutazAI")
            .summary(&note.summary)
            .body(&body)
            .icon("sutazai")
            .timeout(notify_rust::Timeout::Default);
        #[cfg(all(unix, not(target_os = "macos")))]
        {
            n.urgency(match note.severity {
                Severity::Critical => notify_rust::Urgency::Critical,
                Severity::Warning => notify_rust::Urgency::Normal,
                Severity::Info => notify_rust::Urgency::Low,
            })
            .action("default", "Open");
            if let Some(id) = lock(&self.ids).get(&note.key) {
                n.id(*id);
            }
        }
        let handle = n.show().map_err(|e| e.to_string())?;
        #[cfg(all(unix, not(target_os = "macos")))]
        {
            {
                let mut ids = lock(&self.ids);
                if ids.len() >= IDS {
                    ids.clear();
                }
                ids.insert(note.key.clone(), handle.id());
            }
            use std::sync::atomic::Ordering;
            // Waits for a click or the notification's closing on a thread of its own
            // (critical notifications stay until the user acts); beyond WAITING such
            // threads, further notifications are shown without click handling.
            if self.waiting.fetch_add(1, Ordering::SeqCst) < WAITING {
                let clicks = self.clicks.clone();
                let route = note.route.clone();
                let waiting = self.waiting.clone();
                let spawned = std::thread::Builder::new()
                    .name("sutazai-notification".into())
                    .spawn(move || {
                        handle.wait_for_action(|action| {
                            if action == "default" {
                                let _ = clicks.send(route);
                            }
                        });
                        waiting.fetch_sub(1, Ordering::SeqCst);
                    });
                if spawned.is_err() {
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                }
            } else {
                self.waiting.fetch_sub(1, Ordering::SeqCst);
            }
        }
        #[cfg(not(all(unix, not(target_os = "macos"))))]
        drop(handle);
        Ok(())
    }

    /// Notifies about long tasks, failed ones and approvals, until `shutdown`.
    pub fn watch_tasks(&self, orchestrator: &Orchestrator, shutdown: CancellationToken) {
        let mut events = orchestrator.subscribe();
        let desktop = self.clone();
        tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    () = shutdown.cancelled() => return,
                    e = events.recv() => e,
                };
                let event = match event {
                    Ok(e) => e,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "desktop notifications missed task events");
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if let Some(note) = task_note(&event) {
                    let desktop = desktop.clone();
                    let shown = tokio::task::spawn_blocking(move || desktop.show(&note)).await;
                    if let Ok(Err(e)) = shown {
                        tracing::warn!(error = %e, "desktop notification failed");
                    }
                }
            }
        });
    }
}

impl Notifier for Desktop {
    fn name(&self) -> &'static str {
        "desktop"
    }

    fn deliver(&self, alert: AlertRecord) -> Delivering {
        let desktop = self.clone();
        Box::pin(async move {
            let note = alert_note(&alert);
            tokio::task::spawn_blocking(move || desktop.show(&note))
                .await
                .map_err(|e| e.to_string())?
        })
    }

    /// A notification that cannot be shown now is stale a minute later: few tries.
    fn attempts(&self) -> u32 {
        3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throttle_limits_each_subject_and_the_total() {
        let mut t = Throttle::default();
        let t0 = Instant::now();
        assert_eq!(t.decide("a", t0, false), Decision::Show { held_back: 0 });
        // The same subject again within a minute: held back …
        assert_eq!(
            t.decide("a", t0 + Duration::from_secs(5), false),
            Decision::Suppress
        );
        // … unless it only replaces the one shown (a resolution).
        assert_eq!(
            t.decide("a", t0 + Duration::from_secs(6), true),
            Decision::Show { held_back: 1 }
        );
        for (i, key) in ["b", "c", "d"].iter().enumerate() {
            assert_eq!(
                t.decide(key, t0 + Duration::from_secs(10 + i as u64), false),
                Decision::Show { held_back: 0 }
            );
        }
        // Five shown within the minute: the sixth and seventh are held back.
        assert_eq!(
            t.decide("e", t0 + Duration::from_secs(20), false),
            Decision::Suppress
        );
        assert_eq!(
            t.decide("f", t0 + Duration::from_secs(21), false),
            Decision::Suppress
        );
        // A minute after the first, room again; the next shown counts what was held back.
        assert_eq!(
            t.decide("g", t0 + Duration::from_secs(61), false),
            Decision::Show { held_back: 2 }
        );
    }

    fn alert(status: &str, severity: Severity) -> AlertRecord {
        AlertRecord {
            id: 7,
            rule_id: "agent_error_rate_high".into(),
            subject: "coder".into(),
            severity,
            status: status.into(),
            message: "agent coder error rate is 50% (above 5%)".into(),
            value: 0.5,
            fired_at: chrono::Utc::now(),
            resolved_at: None,
            acknowledged: false,
            deliveries: Vec::new(),
        }
    }

    #[test]
    fn alerts_become_grouped_notes() {
        let firing = alert_note(&alert("firing", Severity::Critical));
        assert_eq!(firing.key, "alert:7");
        assert_eq!(
            firing.summary,
            "Critical: agent coder error rate is 50% (above 5%)"
        );
        assert_eq!(firing.severity, Severity::Critical);
        assert_eq!(firing.route, "#/alerts");
        assert!(!firing.update);
        let resolved = alert_note(&alert("resolved", Severity::Critical));
        assert_eq!(
            resolved.key, firing.key,
            "the resolution replaces the firing one"
        );
        assert!(resolved.update && resolved.summary.starts_with("Resolved: "));
        assert_eq!(resolved.severity, Severity::Info);
    }

    #[test]
    fn only_long_tasks_failures_and_approvals_notify() {
        let done = |duration: f64| Event::TaskCompleted {
            task_id: "t1".into(),
            session_id: "s".into(),
            task_name: "report".into(),
            result: serde_json::Value::Null,
            duration,
        };
        assert_eq!(task_note(&done(3.0)), None);
        let long = task_note(&done(125.0)).unwrap();
        assert_eq!(long.summary, "Task finished: report");
        assert_eq!(long.body, "Completed in 2m05s.");
        assert_eq!(long.route, "#/tasks/t1");
        let failed = task_note(&Event::TaskFailed {
            task_id: "t2".into(),
            task_name: "build".into(),
            code: "llm_unreachable".into(),
            message: "cannot reach the LLM server".into(),
        })
        .unwrap();
        assert_eq!(failed.body, "cannot reach the LLM server (llm_unreachable)");
        let approval = task_note(&Event::AwaitingApproval {
            task_id: "t3".into(),
            task_name: "deploy".into(),
            pending: vec!["security".into(), "owner".into()],
        })
        .unwrap();
        assert_eq!(approval.summary, "Approval needed: deploy");
        assert_eq!(approval.body, "Waiting for: security, owner.");
    }
}
