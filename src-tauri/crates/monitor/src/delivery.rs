//! Alert delivery beyond the WebSocket, through [`Notifier`]s: email over SMTP (lettre) and
//! Slack incoming webhooks here, native desktop notifications in the desktop shell. Each
//! notifier has its own queue and task, so a slow or broken channel delays
//! nobody else; a failed delivery is logged and retried with backoff (1 s doubling to
//! 60 s, up to [`Notifier::attempts`] tries, [`ATTEMPTS`] by default), and its outcome is recorded on the alert (`deliveries`)
//! so that nothing is lost silently.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::monitor::{AlertRecord, Monitor};

/// Tries per alert and channel.
pub const ATTEMPTS: u32 = 8;
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Where alerts go besides `/ws`.
#[derive(Debug, Clone, Default)]
pub struct Channels {
    /// SMTP.
    pub email: Option<EmailChannel>,
    /// A Slack incoming webhook URL (or anything that takes Slack's `{"text": …}`).
    pub slack_webhook: Option<String>,
}

/// Email settings.
#[derive(Debug, Clone)]
pub struct EmailChannel {
    /// `smtp://[user:pass@]host[:port]` (`?tls=required` for STARTTLS) or `smtps://…`.
    pub url: String,
    /// Sender address.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
}

/// Why a channel could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// The SMTP URL or an address is wrong.
    #[error("alert email: {0}")]
    Email(String),
}

fn subject(record: &AlertRecord) -> String {
    let state = if record.status == "resolved" {
        "resolved"
    } else {
        "firing"
    };
    format!("[SutazAI {:?} {state}] {}", record.severity, record.message)
}

fn body(record: &AlertRecord) -> String {
    format!(
        "{}\n\nrule: {}\nsubject: {}\nvalue: {}\nstatus: {}\nfired at: {}\nresolved at: {}\n",
        record.message,
        record.rule_id,
        record.subject,
        record.value,
        record.status,
        record.fired_at.to_rfc3339(),
        record
            .resolved_at
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| "-".into())
    )
}

/// The future a [`Notifier`] returns.
pub type Delivering = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// Somewhere alert changes go besides `/ws`: email, Slack, the desktop's native
/// notifications. Each notifier gets its own queue and task; a change it fails to deliver
/// is retried with backoff (1 s doubling to 60 s) up to [`Notifier::attempts`] tries, and
/// every outcome is recorded on the alert's `deliveries`.
pub trait Notifier: Send + Sync + 'static {
    /// Its name in `deliveries` and logs (`email`, `slack`, `desktop`).
    fn name(&self) -> &'static str;

    /// Delivers one change (the alert as it is now: `firing` or `resolved`).
    fn deliver(&self, alert: AlertRecord) -> Delivering;

    /// Tries per change before giving up.
    fn attempts(&self) -> u32 {
        ATTEMPTS
    }

    /// Whether changes are sent to it now (a channel switched off in the settings is
    /// skipped, not failed).
    fn enabled(&self) -> bool {
        true
    }
}

/// One channel whose settings can change while the app runs: a notifier or nothing.
struct ChannelSlot {
    name: &'static str,
    current: std::sync::RwLock<Option<Arc<dyn Notifier>>>,
}

impl ChannelSlot {
    fn get(&self) -> Option<Arc<dyn Notifier>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set(&self, next: Option<Arc<dyn Notifier>>) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = next;
    }
}

impl Notifier for ChannelSlot {
    fn name(&self) -> &'static str {
        self.name
    }

    fn deliver(&self, alert: AlertRecord) -> Delivering {
        match self.get() {
            Some(notifier) => notifier.deliver(alert),
            None => Box::pin(async { Err("the channel was switched off in the settings".into()) }),
        }
    }

    fn enabled(&self) -> bool {
        self.get().is_some()
    }
}

/// Email and Slack notifiers built from [`Channels`], not yet in use.
pub struct ChannelSet {
    email: Option<Arc<dyn Notifier>>,
    slack: Option<Arc<dyn Notifier>>,
}

impl std::fmt::Debug for ChannelSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelSet")
            .field("email", &self.email.is_some())
            .field("slack", &self.slack.is_some())
            .finish()
    }
}

/// The email and Slack channels as notifiers whose settings can be replaced while alerts
/// flow ([`LiveChannels::set`], from the dashboard's settings): a change queued before
/// the replacement is delivered with the settings current when it is sent.
#[derive(Clone)]
pub struct LiveChannels {
    email: Arc<ChannelSlot>,
    slack: Arc<ChannelSlot>,
}

impl std::fmt::Debug for LiveChannels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveChannels")
            .field("email", &self.email.enabled())
            .field("slack", &self.slack.enabled())
            .finish()
    }
}

impl LiveChannels {
    /// The channels of `channels` (checked as [`Channels::notifiers`] does).
    pub fn new(channels: &Channels) -> Result<LiveChannels, ChannelError> {
        let live = LiveChannels {
            email: Arc::new(ChannelSlot {
                name: "email",
                current: std::sync::RwLock::new(None),
            }),
            slack: Arc::new(ChannelSlot {
                name: "slack",
                current: std::sync::RwLock::new(None),
            }),
        };
        live.set(channels)?;
        Ok(live)
    }

    /// Replaces both channels' settings; on an error nothing changes.
    pub fn set(&self, channels: &Channels) -> Result<(), ChannelError> {
        self.install(LiveChannels::build(channels)?);
        Ok(())
    }

    /// The notifiers `channels` describe, checked, for [`LiveChannels::install`] later
    /// (a caller that must do something else in between, such as saving the settings).
    pub fn build(channels: &Channels) -> Result<ChannelSet, ChannelError> {
        let email = match &channels.email {
            Some(email) => Some(Arc::new(email_notifier(email)?) as Arc<dyn Notifier>),
            None => None,
        };
        let slack = channels
            .slack_webhook
            .as_deref()
            .map(|url| Arc::new(slack_notifier(url)) as Arc<dyn Notifier>);
        Ok(ChannelSet { email, slack })
    }

    /// Switches both channels to `set`.
    pub fn install(&self, set: ChannelSet) {
        self.email.set(set.email);
        self.slack.set(set.slack);
    }

    /// Both channels, for [`start`]; each is skipped while switched off.
    pub fn notifiers(&self) -> Vec<Arc<dyn Notifier>> {
        vec![self.email.clone(), self.slack.clone()]
    }
}

/// Email over SMTP.
struct EmailNotifier {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl Notifier for EmailNotifier {
    fn name(&self) -> &'static str {
        "email"
    }

    fn deliver(&self, record: AlertRecord) -> Delivering {
        let transport = self.transport.clone();
        let from = self.from.clone();
        let to = self.to.clone();
        Box::pin(async move {
            let mut builder = Message::builder().from(from).subject(subject(&record));
            for r in to {
                builder = builder.to(r);
            }
            let message = builder.body(body(&record)).map_err(|e| e.to_string())?;
            transport
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
}

/// A Slack incoming webhook.
struct SlackNotifier {
    client: reqwest::Client,
    url: String,
}

impl Notifier for SlackNotifier {
    fn name(&self) -> &'static str {
        "slack"
    }

    fn deliver(&self, record: AlertRecord) -> Delivering {
        let client = self.client.clone();
        let url = self.url.clone();
        Box::pin(async move {
            let text = format!("*{}*\n{}", subject(&record), body(&record));
            let response = client
                .post(&url)
                .json(&serde_json::json!({ "text": text }))
                .send()
                .await
                // The webhook URL is a secret: errors name everything but it.
                .map_err(|e| e.without_url().to_string())?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(format!("the webhook answered {}", response.status()))
            }
        })
    }
}

impl Channels {
    /// The configured channels as notifiers (checking the email settings).
    pub fn notifiers(&self) -> Result<Vec<Arc<dyn Notifier>>, ChannelError> {
        let mut out: Vec<Arc<dyn Notifier>> = Vec::new();
        if let Some(email) = &self.email {
            out.push(Arc::new(email_notifier(email)?));
        }
        if let Some(url) = &self.slack_webhook {
            out.push(Arc::new(slack_notifier(url)));
        }
        Ok(out)
    }
}

fn slack_notifier(url: &str) -> SlackNotifier {
    SlackNotifier {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap_or_default(),
        url: url.to_owned(),
    }
}

fn email_notifier(channel: &EmailChannel) -> Result<EmailNotifier, ChannelError> {
    let transport: AsyncSmtpTransport<Tokio1Executor> =
        AsyncSmtpTransport::<Tokio1Executor>::from_url(&channel.url)
            .map_err(|e| ChannelError::Email(format!("SMTP URL: {e}")))?
            .timeout(Some(Duration::from_secs(20)))
            .build();
    let from: Mailbox = channel
        .from
        .parse()
        .map_err(|e| ChannelError::Email(format!("from address {:?}: {e}", channel.from)))?;
    let mut to = Vec::new();
    for address in &channel.to {
        to.push(
            address
                .parse::<Mailbox>()
                .map_err(|e| ChannelError::Email(format!("to address {address:?}: {e}")))?,
        );
    }
    if to.is_empty() {
        return Err(ChannelError::Email("no recipient".into()));
    }
    Ok(EmailNotifier {
        transport,
        from,
        to,
    })
}

/// One channel's queue: every alert change in order, each retried until delivered or out
/// of attempts.
async fn run_channel(
    notifier: Arc<dyn Notifier>,
    mut queue: mpsc::UnboundedReceiver<AlertRecord>,
    monitor: Monitor,
    shutdown: CancellationToken,
) {
    loop {
        let record = tokio::select! {
            () = shutdown.cancelled() => return,
            r = queue.recv() => match r { Some(r) => r, None => return },
        };
        let name = notifier.name();
        let attempts = notifier.attempts().max(1);
        let mut pause = Duration::from_secs(1);
        let mut attempt = 1;
        loop {
            match notifier.deliver(record.clone()).await {
                Ok(()) => {
                    tracing::info!(channel = name, alert = record.id, status = %record.status, "alert delivered");
                    monitor.record_delivery(record.id, name, "delivered", attempt, None);
                    break;
                }
                Err(error) if attempt >= attempts => {
                    tracing::error!(channel = name, alert = record.id, attempts = attempt, %error, "alert could not be delivered; giving up");
                    monitor.record_delivery(record.id, name, "failed", attempt, Some(error));
                    break;
                }
                Err(error) => {
                    tracing::warn!(channel = name, alert = record.id, attempt, %error, "alert delivery failed; retrying");
                    monitor.record_delivery(record.id, name, "retrying", attempt, Some(error));
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(BACKOFF_MAX);
                    attempt += 1;
                }
            }
        }
    }
}

/// Starts delivering `monitor`'s alert changes (fired and resolved) to `notifiers`.
pub fn start(monitor: &Monitor, notifiers: Vec<Arc<dyn Notifier>>, shutdown: CancellationToken) {
    let mut queues: Vec<(Arc<dyn Notifier>, mpsc::UnboundedSender<AlertRecord>)> = Vec::new();
    for notifier in notifiers {
        let (tx, rx) = mpsc::unbounded_channel();
        queues.push((notifier.clone(), tx));
        tokio::spawn(run_channel(notifier, rx, monitor.clone(), shutdown.clone()));
    }
    if queues.is_empty() {
        return;
    }
    let mut changes = monitor.subscribe();
    tokio::spawn(async move {
        loop {
            let record = tokio::select! {
                () = shutdown.cancelled() => return,
                r = changes.recv() => r,
            };
            match record {
                // Acknowledgements are not sent out; firing and resolution are.
                Ok(record) if record.acknowledged && record.status == "firing" => {}
                Ok(record) => {
                    for (notifier, q) in &queues {
                        if notifier.enabled() {
                            let _ = q.send(record.clone());
                        }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::error!(
                        missed = n,
                        "alert delivery fell behind; some changes were not sent"
                    );
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}
