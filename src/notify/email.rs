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
use crate::config::{ReceiverConfig, ReceiverKind, SmtpTls};

/// An email receiver.
pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    renderer: Renderer,
}

impl Email {
    /// From a validated `type = "email"` receiver.
    pub fn new(receiver: &ReceiverConfig) -> Result<Self, BuildError> {
        let ReceiverKind::Email {
            smtp_host,
            smtp_port,
            tls,
            username,
            password,
            from,
            to,
        } = &receiver.kind
        else {
            return Err(BuildError::Kind("email"));
        };
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
