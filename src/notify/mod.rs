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

use serde::{Deserialize, Serialize};

pub use self::dispatch::Dispatcher;
use crate::alert::render::NotificationView;
use crate::alert::{Alert, AlertStatus};
use crate::config::{ReceiverConfig, ReceiverKind};

/// How one delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The receiver took it.
    Delivered,
    /// A transient failure (connection, 5xx, 429, rate-limit errcode): try again later.
    Errored(String),
    /// A permanent refusal (bad request, invalid token, sign mismatch): do not retry.
    Rejected(String),
}

impl Delivery {
    /// The `result` label: `delivered`, `errored` or `rejected`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Delivery::Delivered => "delivered",
            Delivery::Errored(_) => "errored",
            Delivery::Rejected(_) => "rejected",
        }
    }
}

/// A receiver type: builds the request for one notification and classifies the answer.
#[async_trait::async_trait]
pub trait Notifier: Send + Sync {
    /// Sends `alerts` (one group, firing first) once. Errors never contain secrets (tokens
    /// in URLs, passwords, sign keys).
    async fn notify(&self, view: &NotificationView) -> Delivery;
}

/// Stored state of a notification in the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    /// Not tried yet.
    Pending,
    /// Tried, failed transiently; will be retried at `due_at`.
    Errored,
    /// Delivered.
    Delivered,
    /// Refused permanently, or given up after `retry_for`.
    Rejected,
    /// Not sent: the alert resolved before its firing notification was first attempted, and
    /// the receiver never got it firing (nothing to say, as Alertmanager does).
    Dropped,
}

impl OutboxState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Errored => "errored",
            OutboxState::Delivered => "delivered",
            OutboxState::Rejected => "rejected",
            OutboxState::Dropped => "dropped",
        }
    }

    /// Parses a stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Errored,
            Self::Delivered,
            Self::Rejected,
            Self::Dropped,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

/// One notification of one alert to one receiver (a row of the outbox).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Notification {
    /// Row id.
    pub id: i64,
    /// Bumped when a pending notification takes a newer state of its alert.
    pub version: i64,
    /// Receiver name.
    pub receiver: String,
    /// Notifications with the same key go out together.
    pub group_key: String,
    /// The alert.
    pub fingerprint: String,
    /// The alert's status in this notification.
    pub status: AlertStatus,
    /// `new` (a transition) or `repeat`.
    pub kind: String,
    /// The alert as notified.
    pub alert: Alert,
    /// Unix ms.
    pub created_at_ms: i64,
    /// Not before, Unix ms.
    pub due_at_ms: i64,
    /// Attempts made.
    pub attempts: u32,
    /// Where it stands.
    pub outcome: OutboxState,
    /// The last failure, in words (never a secret).
    pub last_error: Option<String>,
    /// Unix ms.
    pub last_attempt_at_ms: Option<i64>,
    /// Unix ms.
    pub delivered_at_ms: Option<i64>,
}

/// How often a receiver re-sends alerts on its own (beyond a route's `repeat_interval`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Resend {
    /// Firing alerts every this many ms instead of the route's `repeat_interval`.
    pub firing_every_ms: Option<i64>,
    /// Resolved alerts every this many ms…
    pub resolved_every_ms: i64,
    /// …for this many ms after they resolved (0: never).
    pub resolved_for_ms: i64,
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

/// Builds the notifier of a receiver.
pub fn build(receiver: &ReceiverConfig) -> Result<std::sync::Arc<dyn Notifier>, String> {
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
        ReceiverKind::Wecom { url } => {
            Arc::new(wecom::Wecom::new(client()?, url.clone(), receiver)?)
        }
        ReceiverKind::Dingtalk { url, secret } => Arc::new(dingtalk::Dingtalk::new(
            client()?,
            url.clone(),
            secret.clone(),
            receiver,
        )?),
        ReceiverKind::Feishu { url, secret } => Arc::new(feishu::Feishu::new(
            client()?,
            url.clone(),
            secret.clone(),
            receiver,
        )?),
        ReceiverKind::Slack { url } => {
            Arc::new(slack::Slack::new(client()?, url.clone(), receiver)?)
        }
    })
}
