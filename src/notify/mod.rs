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
pub mod http;
pub mod slack;
pub mod webhook;
pub mod wecom;

pub use self::dispatch::Dispatcher;
use self::http::Robot;
use crate::alert::render::NotificationView;
use crate::config::{Config, Issues, ReceiverConfig};
pub use crate::model::outbox::{Delivery, Notification, OutboxState, Resend};
use secrecy::SecretString;

/// A receiver type: builds the request for one notification and classifies the answer.
#[async_trait::async_trait]
pub trait Notifier: Send + Sync {
    /// Sends `alerts` (one group, firing first) once. Errors never contain secrets (tokens
    /// in URLs, passwords, sign keys).
    async fn notify(&self, view: &NotificationView) -> Delivery;
}

/// A receiver's own settings, read and checked by its type (one file each); one line per type
/// here.
#[derive(Clone)]
pub enum Settings {
    /// `type = "email"`.
    Email(email::Settings),
    /// `type = "webhook"`.
    Webhook(webhook::Settings),
    /// `type = "alertmanager"`.
    Alertmanager(alertmanager::Settings),
    /// `type = "wecom"`.
    Wecom(http::RobotSettings),
    /// `type = "dingtalk"`.
    Dingtalk(http::RobotSettings),
    /// `type = "feishu"`.
    Feishu(http::RobotSettings),
    /// `type = "slack"`.
    Slack(http::RobotSettings),
}

/// Every receiver type, as `type = "…"` names it.
pub const TYPES: [&str; 7] = [
    "email",
    "webhook",
    "alertmanager",
    "wecom",
    "dingtalk",
    "feishu",
    "slack",
];

impl Settings {
    /// Reads and checks `receiver`'s own settings; every problem goes to `issues`, by key.
    pub fn read(receiver: &ReceiverConfig, issues: &mut Issues) -> Option<Settings> {
        use http::{RobotSettings, Signing};
        match receiver.kind.as_str() {
            "email" => email::Settings::read(receiver, issues).map(Settings::Email),
            "webhook" => webhook::Settings::read(receiver, issues).map(Settings::Webhook),
            "alertmanager" => {
                alertmanager::Settings::read(receiver, issues).map(Settings::Alertmanager)
            }
            "wecom" => RobotSettings::read(receiver, issues, Signing::No).map(Settings::Wecom),
            "dingtalk" => {
                RobotSettings::read(receiver, issues, Signing::Yes).map(Settings::Dingtalk)
            }
            "feishu" => RobotSettings::read(receiver, issues, Signing::Yes).map(Settings::Feishu),
            "slack" => RobotSettings::read(receiver, issues, Signing::No).map(Settings::Slack),
            other => {
                issues.add(
                    format!("{}.type", receiver.key()),
                    format!(
                        "`{other}` is not a receiver type: use one of {}",
                        TYPES.join(", ")
                    ),
                );
                None
            }
        }
    }

    /// The receiver's settings when they read, else [`BuildError::Settings`] with every
    /// problem (at start; the configuration was checked when it was loaded).
    pub fn of(receiver: &ReceiverConfig) -> Result<Settings, BuildError> {
        let mut issues = Issues::default();
        Settings::read(receiver, &mut issues).ok_or_else(|| {
            BuildError::Settings(
                issues
                    .into_vec()
                    .into_iter()
                    .map(|i| format!("{}: {}", i.key, i.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })
    }

    /// Its secrets (password, URL with its token, signing secret), to mask.
    pub fn secrets(&self) -> Vec<&SecretString> {
        match self {
            Settings::Email(s) => s.password.iter().collect(),
            Settings::Webhook(s) => std::iter::once(&s.url).chain(&s.secret).collect(),
            Settings::Alertmanager(_) => Vec::new(),
            Settings::Wecom(s)
            | Settings::Dingtalk(s)
            | Settings::Feishu(s)
            | Settings::Slack(s) => std::iter::once(&s.url).chain(&s.secret).collect(),
        }
    }

    /// The receiver's own re-send policy (Alertmanager: `resend_delay`, `resolve_resend`).
    pub fn resend(&self) -> Resend {
        match self {
            Settings::Alertmanager(s) => Resend {
                firing_every_ms: Some(s.resend_delay.as_millis() as i64),
                resolved_every_ms: s.resend_delay.as_millis() as i64,
                resolved_for_ms: s.resolve_resend.as_millis() as i64,
            },
            _ => Resend::default(),
        }
    }

    /// Builds the notifier.
    pub fn build(
        &self,
        receiver: &ReceiverConfig,
    ) -> Result<std::sync::Arc<dyn Notifier>, BuildError> {
        use std::sync::Arc;
        let client = || http::client(receiver.timeout);
        Ok(match self {
            Settings::Email(s) => Arc::new(email::Email::new(receiver, s)?),
            Settings::Webhook(s) => Arc::new(webhook::Webhook::new(
                client()?,
                s.url.clone(),
                s.secret.clone(),
            )),
            Settings::Alertmanager(s) => Arc::new(alertmanager::Alertmanager::new(
                client()?,
                s.urls.clone(),
                s.resend_delay,
            )),
            Settings::Wecom(s) => Arc::new(wecom::Wecom(Robot::new(client()?, s, receiver)?)),
            Settings::Dingtalk(s) => {
                Arc::new(dingtalk::Dingtalk(Robot::new(client()?, s, receiver)?))
            }
            Settings::Feishu(s) => Arc::new(feishu::Feishu(Robot::new(client()?, s, receiver)?)),
            Settings::Slack(s) => Arc::new(slack::Slack(Robot::new(client()?, s, receiver)?)),
        })
    }
}

/// The receiver check jobwatch loads its configuration with
/// ([`crate::config::load_checked`]): each type reads and checks its own settings.
pub fn check_receiver(receiver: &ReceiverConfig, issues: &mut Issues) {
    let _ = Settings::read(receiver, issues);
}

/// Every configured receiver's secrets (to mask wherever they could appear).
pub fn secrets(config: &Config) -> Vec<String> {
    use secrecy::ExposeSecret as _;
    let mut out = Vec::new();
    for receiver in config.alerts.receivers.values() {
        let mut issues = Issues::default();
        if let Some(settings) = Settings::read(receiver, &mut issues) {
            out.extend(
                settings
                    .secrets()
                    .iter()
                    .map(|s| s.expose_secret().to_owned()),
            );
        }
    }
    out
}

/// Reads a type's own settings from the receiver's table, as `T` (unknown keys refused: they
/// are "not a setting of" this type), and checks which templates it may override.
fn read_settings<T: serde::de::DeserializeOwned>(
    receiver: &ReceiverConfig,
    issues: &mut Issues,
    templates: &[&str],
) -> Option<T> {
    let key = receiver.key();
    let not_ours = format!("not a setting of type = \"{}\"", receiver.kind);
    for (field, set) in [
        ("title", receiver.templates.title.is_some()),
        ("body", receiver.templates.body.is_some()),
        ("html", receiver.templates.html.is_some()),
    ] {
        if set && !templates.contains(&field) {
            issues.add(format!("{key}.templates.{field}"), not_ours.clone());
        }
    }
    let mut found = Issues::default();
    let value = found.read::<T>(&key, &receiver.settings);
    for issue in found.into_vec() {
        let message = if issue.message.starts_with("unknown field") {
            not_ours.clone()
        } else {
            issue.message
        };
        issues.add(issue.key, message);
    }
    value
}

/// The receiver's `url` (inline or `url_file`), required and an http(s) URL (a secret: it is
/// never repeated).
fn secret_url(
    receiver: &ReceiverConfig,
    issues: &mut Issues,
    inline: &Option<SecretString>,
    file: &Option<std::path::PathBuf>,
) -> Option<SecretString> {
    use secrecy::ExposeSecret as _;
    let key = receiver.key();
    match issues.secret(&key, "url", inline, file) {
        Some(u) => issues
            .http_url(format!("{key}.url"), u.expose_secret())
            .map(|_| u),
        None => {
            if inline.is_none() && file.is_none() {
                issues.add(format!("{key}.url"), "required");
            }
            None
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
    /// The receiver's settings do not read (checked at load; seen again here).
    #[error("invalid settings: {0}")]
    Settings(String),
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

/// Builds the notifier of a receiver (its settings were checked when the configuration was
/// loaded; a problem found again here is a [`BuildError::Settings`]).
pub fn build(receiver: &ReceiverConfig) -> Result<std::sync::Arc<dyn Notifier>, BuildError> {
    Settings::of(receiver)?.build(receiver)
}

#[cfg(test)]
mod tests;
