//! Alert delivery beyond the WebSocket: email over SMTP (lettre) and Slack incoming
//! webhooks. Each channel has its own queue and task, so a slow or broken channel delays
//! nobody else; a failed delivery is logged and retried with backoff (1 s doubling to
//! 60 s, up to [`ATTEMPTS`] tries), and its outcome is recorded on the alert (`deliveries`)
//! so that nothing is lost silently.

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

type Sender = Box<dyn Fn(AlertRecord) -> futures_send::BoxFuture + Send + Sync>;

mod futures_send {
    use std::future::Future;
    use std::pin::Pin;
    pub type BoxFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
}

fn email_sender(channel: &EmailChannel) -> Result<Sender, ChannelError> {
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
    Ok(Box::new(move |record: AlertRecord| {
        let transport = transport.clone();
        let from = from.clone();
        let to = to.clone();
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
    }))
}

fn slack_sender(url: &str) -> Sender {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap_or_default();
    let url = url.to_owned();
    Box::new(move |record: AlertRecord| {
        let client = client.clone();
        let url = url.clone();
        Box::pin(async move {
            let text = format!("*{}*\n{}", subject(&record), body(&record));
            let response = client
                .post(&url)
                .json(&serde_json::json!({ "text": text }))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(format!("the webhook answered {}", response.status()))
            }
        })
    })
}

/// One channel's queue: every alert change in order, each retried until delivered or out
/// of attempts.
async fn run_channel(
    name: &'static str,
    send: Sender,
    mut queue: mpsc::UnboundedReceiver<AlertRecord>,
    monitor: Monitor,
    shutdown: CancellationToken,
) {
    loop {
        let record = tokio::select! {
            () = shutdown.cancelled() => return,
            r = queue.recv() => match r { Some(r) => r, None => return },
        };
        let mut pause = Duration::from_secs(1);
        let mut attempt = 1;
        loop {
            match send(record.clone()).await {
                Ok(()) => {
                    tracing::info!(channel = name, alert = record.id, status = %record.status, "alert delivered");
                    monitor.record_delivery(record.id, name, "delivered", attempt, None);
                    break;
                }
                Err(error) if attempt >= ATTEMPTS => {
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

/// Starts delivering `monitor`'s alert changes (fired and resolved) to `channels`.
pub fn start(
    monitor: &Monitor,
    channels: &Channels,
    shutdown: CancellationToken,
) -> Result<(), ChannelError> {
    let mut queues: Vec<mpsc::UnboundedSender<AlertRecord>> = Vec::new();
    let mut spawn = |name: &'static str, send: Sender| {
        let (tx, rx) = mpsc::unbounded_channel();
        queues.push(tx);
        tokio::spawn(run_channel(
            name,
            send,
            rx,
            monitor.clone(),
            shutdown.clone(),
        ));
    };
    if let Some(email) = &channels.email {
        spawn("email", email_sender(email)?);
    }
    if let Some(url) = &channels.slack_webhook {
        spawn("slack", slack_sender(url));
    }
    if queues.is_empty() {
        return Ok(());
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
                    for q in &queues {
                        let _ = q.send(record.clone());
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
    Ok(())
}
