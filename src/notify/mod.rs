//! Alert delivery: one file per receiver type behind [`Notifier`], and one retry stage for
//! all of them ([`dispatch`]).
//!
//! A notifier only builds its request and classifies the answer as a [`Delivery`]: it never
//! retries by itself. The retry stage owns backoff (backon), attempts, the stored outcome,
//! the `jobwatch_alert_notifications_total` counter and the outbox depth gauge.

pub mod alertmanager;
pub mod dingtalk;
pub mod dispatch;
pub mod email;
pub mod feishu;
mod http;
pub mod slack;
pub mod webhook;
pub mod wecom;

pub use self::dispatch::Dispatcher;
use self::http::Robot;
use crate::alert::render::NotificationView;
use crate::config::{ReceiverConfig, ReceiverKind};
pub use crate::model::outbox::{Delivery, Notification, OutboxState, Resend};

/// A receiver type: builds the request for one notification and classifies the answer.
#[async_trait::async_trait]
pub trait Notifier: Send + Sync {
    /// Sends `alerts` (one group, firing first) once. Errors never contain secrets (tokens
    /// in URLs, passwords, sign keys).
    async fn notify(&self, view: &NotificationView) -> Delivery;
}

impl Resend {
    /// The receiver's own re-send policy (Alertmanager: `resend_delay`, `resolve_resend`).
    pub fn of(receiver: &ReceiverConfig) -> Self {
        match &receiver.kind {
            ReceiverKind::Alertmanager {
                resend_delay,
                resolve_resend,
                ..
            } => Resend {
                firing_every_ms: Some(resend_delay.as_millis() as i64),
                resolved_every_ms: resend_delay.as_millis() as i64,
                resolved_for_ms: resolve_resend.as_millis() as i64,
            },
            _ => Resend::default(),
        }
    }
}

/// `text` cut to `max` characters (with a mark when cut).
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(20)).collect();
    out.push_str("\n… (cut)");
    out
}

/// `text` cut to `max` bytes at a character boundary (with a mark when cut).
fn cut_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub(12);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n… (cut)", &text[..end])
}

/// Why a receiver's notifier could not be built (at start).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The HTTP client (TLS stack) could not start.
    #[error("cannot build an HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// The SMTP relay's TLS settings could not be prepared.
    #[error("SMTP {host}: {source}")]
    Smtp {
        /// The SMTP server.
        host: String,
        /// lettre's words.
        #[source]
        source: lettre::transport::smtp::Error,
    },
    /// An address does not parse (validation checks them first).
    #[error("`{address}` is not an email address: {source}")]
    Address {
        /// As configured.
        address: String,
        /// lettre's words.
        #[source]
        source: lettre::address::AddressError,
    },
    /// A template does not compile.
    #[error(transparent)]
    Template(#[from] crate::alert::render::TemplateError),
    /// A notifier was built from a receiver of another kind.
    #[error("not a {0} receiver")]
    Kind(&'static str),
    /// One receiver failed (named).
    #[error("receiver {name}: {source}")]
    Receiver {
        /// The receiver.
        name: String,
        /// Why.
        #[source]
        source: Box<BuildError>,
    },
}

/// Builds the notifier of a receiver.
pub fn build(receiver: &ReceiverConfig) -> Result<std::sync::Arc<dyn Notifier>, BuildError> {
    use std::sync::Arc;
    let client = || http::client(receiver.timeout);
    Ok(match &receiver.kind {
        ReceiverKind::Email { .. } => Arc::new(email::Email::new(receiver)?),
        ReceiverKind::Webhook { url, secret } => Arc::new(webhook::Webhook::new(
            client()?,
            url.clone(),
            secret.clone(),
        )),
        ReceiverKind::Alertmanager {
            urls, resend_delay, ..
        } => Arc::new(alertmanager::Alertmanager::new(
            client()?,
            urls.clone(),
            *resend_delay,
        )),
        ReceiverKind::Wecom { url } => Arc::new(wecom::Wecom(Robot::new(
            client()?,
            url.clone(),
            None,
            receiver,
        )?)),
        ReceiverKind::Dingtalk { url, secret } => Arc::new(dingtalk::Dingtalk(Robot::new(
            client()?,
            url.clone(),
            secret.clone(),
            receiver,
        )?)),
        ReceiverKind::Feishu { url, secret } => Arc::new(feishu::Feishu(Robot::new(
            client()?,
            url.clone(),
            secret.clone(),
            receiver,
        )?)),
        ReceiverKind::Slack { url } => Arc::new(slack::Slack(Robot::new(
            client()?,
            url.clone(),
            None,
            receiver,
        )?)),
    })
}
