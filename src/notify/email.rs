//! Email over SMTP (lettre): plain text + HTML alternative, with the per-host table and the
//! bounded, redacted log tails of failing hosts. Transport security `none`, `starttls`
//! (required, not opportunistic) or `tls`; login when `username`/`password` are set.
//!
//! **Answer**: SMTP 2xx delivered; 4xx (transient) and connection/TLS/time-outs retried;
//! 5xx (permanent, e.g. unknown recipient, authentication refused) rejected.

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use secrecy::ExposeSecret as _;

use super::BuildError;
use super::{Delivery, Notifier};
use crate::alert::render::{BodyStyle, NotificationView, Renderer};
use crate::config::{Issues, ReceiverConfig};
use secrecy::SecretString;

/// SMTP transport security.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text (port 25, local relays).
    None,
    /// Plain connection upgraded with STARTTLS (port 587; required).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// `type = "email"` as written.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    smtp_host: Option<String>,
    smtp_port: Option<u16>,
    tls: Option<String>,
    username: Option<String>,
    password: Option<SecretString>,
    password_file: Option<std::path::PathBuf>,
    /// With `tls = "none"`: send the login over the unencrypted connection anyway (default
    /// false: refused).
    allow_plaintext_auth: Option<bool>,
    from: Option<String>,
    to: Option<Vec<String>>,
}

/// An email receiver's settings.
#[derive(Clone)]
pub struct Settings {
    /// SMTP server.
    pub smtp_host: String,
    /// Port (default by `tls`: 25, 587, 465).
    pub smtp_port: u16,
    /// Security.
    pub tls: SmtpTls,
    /// Login.
    pub username: Option<String>,
    /// Password.
    pub password: Option<SecretString>,
    /// Sender.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
}

impl Settings {
    /// Reads and checks them (templates: title, body, html).
    pub fn read(receiver: &ReceiverConfig, issues: &mut Issues) -> Option<Self> {
        let key = receiver.key();
        let r: Raw = super::read_settings(receiver, issues, &["title", "body", "html"])?;
        let before = issues.count();
        let tls = match r.tls.as_deref().unwrap_or("starttls") {
            "none" => Some(SmtpTls::None),
            "starttls" => Some(SmtpTls::StartTls),
            "tls" => Some(SmtpTls::Tls),
            other => {
                issues.add(
                    format!("{key}.tls"),
                    format!("`{other}`: use \"none\", \"starttls\" or \"tls\""),
                );
                None
            }
        };
        let smtp_host = issues.non_empty(format!("{key}.smtp_host"), &r.smtp_host);
        let from = issues.non_empty(format!("{key}.from"), &r.from);
        if let Some(f) = &from
            && f.parse::<Mailbox>().is_err()
        {
            issues.add(
                format!("{key}.from"),
                format!("`{f}` is not an email address"),
            );
        }
        let to = r.to.clone().unwrap_or_default();
        if to.is_empty() {
            issues.add(format!("{key}.to"), "required: a list of addresses");
        }
        for (i, t) in to.iter().enumerate() {
            if t.parse::<Mailbox>().is_err() {
                issues.add(
                    format!("{key}.to[{i}]"),
                    format!("`{t}` is not an email address"),
                );
            }
        }
        let password = issues.secret(&key, "password", &r.password, &r.password_file);
        if password.is_some() && r.username.is_none() {
            issues.add(format!("{key}.username"), "required with a password");
        }
        if tls == Some(SmtpTls::None)
            && (password.is_some() || r.password.is_some() || r.password_file.is_some())
            && r.allow_plaintext_auth != Some(true)
        {
            issues.add(
                format!("{key}.tls"),
                "\"none\" would send the SMTP password unencrypted: use \"starttls\" or \"tls\", or set allow_plaintext_auth = true",
            );
        }
        if issues.count() != before {
            return None;
        }
        let tls = tls?;
        Some(Settings {
            smtp_host: smtp_host?,
            smtp_port: r.smtp_port.unwrap_or(match tls {
                SmtpTls::None => 25,
                SmtpTls::StartTls => 587,
                SmtpTls::Tls => 465,
            }),
            tls,
            username: r.username,
            password,
            from: from?,
            to,
        })
    }
}

/// An email receiver.
pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    renderer: Renderer,
}

impl Email {
    /// From a receiver and its checked settings.
    pub fn new(receiver: &ReceiverConfig, settings: &Settings) -> Result<Self, BuildError> {
        let Settings {
            smtp_host,
            smtp_port,
            tls,
            username,
            password,
            from,
            to,
        } = settings;
        crate::tls::install_crypto_provider();
        let builder = match tls {
            SmtpTls::None => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp_host.as_str())
            }
            SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(smtp_host)
                .map_err(|source| BuildError::Smtp {
                    host: smtp_host.clone(),
                    source,
                })?,
            SmtpTls::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(smtp_host).map_err(|source| {
                    BuildError::Smtp {
                        host: smtp_host.clone(),
                        source,
                    }
                })?
            }
        };
        let mut builder = builder.port(*smtp_port).timeout(Some(receiver.timeout));
        if let Some(user) = username {
            let pass = password
                .as_ref()
                .map(|p| p.expose_secret().to_owned())
                .unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), pass));
        }
        let parse = |a: &str| {
            a.parse::<Mailbox>().map_err(|source| BuildError::Address {
                address: a.to_owned(),
                source,
            })
        };
        Ok(Email {
            transport: builder.build(),
            from: parse(from)?,
            to: to.iter().map(|a| parse(a)).collect::<Result<_, _>>()?,
            renderer: Renderer::new(&receiver.templates, BodyStyle::Text)?,
        })
    }
}

/// Classifies an SMTP error (never contains the password: lettre does not print
/// credentials).
fn classify(e: &lettre::transport::smtp::Error) -> Delivery {
    if e.is_permanent() {
        Delivery::Rejected(format!("SMTP refused: {e}"))
    } else {
        Delivery::Errored(format!("SMTP: {e}"))
    }
}

#[async_trait::async_trait]
impl Notifier for Email {
    async fn notify(&self, view: &NotificationView) -> Delivery {
        let rendered = match self.renderer.render(view) {
            Ok(r) => r,
            Err(e) => return Delivery::Rejected(e.to_string()),
        };
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(rendered.title)
            .header(lettre::message::header::MIME_VERSION_1_0);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        let message = match builder.multipart(MultiPart::alternative_plain_html(
            rendered.body,
            rendered.html,
        )) {
            Ok(m) => m,
            Err(e) => return Delivery::Rejected(format!("cannot build the message: {e}")),
        };
        match self.transport.send(message).await {
            Ok(_) => Delivery::Delivered,
            Err(e) => classify(&e),
        }
    }
}
