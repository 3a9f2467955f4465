//! `[alerts.receivers.<name>]`: one flat table per receiver, its fields checked per `type`
//! (email, webhook, alertmanager, wecom, dingtalk, feishu, slack), and the validated kinds.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use super::positive;
use crate::config::Issues;

/// `[alerts.receivers.<name>]`: one flat table, fields checked per `type`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReceiver {
    #[serde(rename = "type")]
    pub(super) kind: Option<String>,
    pub(super) send_resolved: Option<bool>,
    #[serde(default, with = "humantime_serde")]
    pub(super) timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(super) retry_for: Option<Duration>,
    #[serde(default)]
    pub(super) templates: RawTemplates,
    // webhook, wecom, dingtalk, feishu, slack
    pub(super) url: Option<SecretString>,
    pub(super) url_file: Option<PathBuf>,
    // webhook (HMAC), dingtalk and feishu (sign)
    pub(super) secret: Option<SecretString>,
    pub(super) secret_file: Option<PathBuf>,
    // alertmanager
    pub(super) urls: Option<Vec<String>>,
    #[serde(default, with = "humantime_serde")]
    pub(super) resend_delay: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(super) resolve_resend: Option<Duration>,
    // email
    pub(super) smtp_host: Option<String>,
    pub(super) smtp_port: Option<u16>,
    pub(super) tls: Option<String>,
    pub(super) username: Option<String>,
    pub(super) password: Option<SecretString>,
    pub(super) password_file: Option<PathBuf>,
    /// With `tls = "none"`: send the login over the unencrypted connection anyway (default
    /// false: refused).
    pub(super) allow_plaintext_auth: Option<bool>,
    pub(super) from: Option<String>,
    pub(super) to: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTemplates {
    pub(super) title: Option<String>,
    pub(super) body: Option<String>,
    pub(super) html: Option<String>,
}

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

/// Where and how a receiver delivers.
#[derive(Debug, Clone)]
pub enum ReceiverKind {
    /// SMTP email.
    Email {
        /// SMTP server.
        smtp_host: String,
        /// Port (default by `tls`: 25, 587, 465).
        smtp_port: u16,
        /// Security.
        tls: SmtpTls,
        /// Login.
        username: Option<String>,
        /// Password.
        password: Option<SecretString>,
        /// Sender.
        from: String,
        /// Recipients.
        to: Vec<String>,
    },
    /// Generic JSON webhook.
    Webhook {
        /// Endpoint (a secret: it may carry a token).
        url: SecretString,
        /// HMAC-SHA256 key for `X-Jobwatch-Signature`.
        secret: Option<SecretString>,
    },
    /// Alertmanager API v2.
    Alertmanager {
        /// Every Alertmanager of the cluster (each gets every alert).
        urls: Vec<Url>,
        /// Firing alerts are re-pushed this often (`endsAt` = 4 × this ahead).
        resend_delay: Duration,
        /// Resolved alerts are re-pushed for this long after they resolve.
        resolve_resend: Duration,
    },
    /// WeCom (企业微信) group robot.
    Wecom {
        /// `https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…` (a secret).
        url: SecretString,
    },
    /// DingTalk (钉钉) custom robot.
    Dingtalk {
        /// `https://oapi.dingtalk.com/robot/send?access_token=…` (a secret).
        url: SecretString,
        /// Sign secret (`SEC…`), when the robot uses signing.
        secret: Option<SecretString>,
    },
    /// Feishu/Lark (飞书) custom bot.
    Feishu {
        /// `https://open.feishu.cn/open-apis/bot/v2/hook/…` (a secret).
        url: SecretString,
        /// Signature secret, when the bot uses signing.
        secret: Option<SecretString>,
    },
    /// Slack incoming webhook.
    Slack {
        /// `https://hooks.slack.com/services/…` (a secret).
        url: SecretString,
    },
}

impl ReceiverKind {
    /// The `type` name.
    pub fn name(&self) -> &'static str {
        match self {
            ReceiverKind::Email { .. } => "email",
            ReceiverKind::Webhook { .. } => "webhook",
            ReceiverKind::Alertmanager { .. } => "alertmanager",
            ReceiverKind::Wecom { .. } => "wecom",
            ReceiverKind::Dingtalk { .. } => "dingtalk",
            ReceiverKind::Feishu { .. } => "feishu",
            ReceiverKind::Slack { .. } => "slack",
        }
    }

    /// The receiver's secrets (password, URL with its token, signing secret), to mask.
    pub fn secrets(&self) -> impl Iterator<Item = &SecretString> {
        let (a, b): (Option<&SecretString>, Option<&SecretString>) = match self {
            ReceiverKind::Email { password, .. } => (password.as_ref(), None),
            ReceiverKind::Webhook { url, secret }
            | ReceiverKind::Dingtalk { url, secret }
            | ReceiverKind::Feishu { url, secret } => (Some(url), secret.as_ref()),
            ReceiverKind::Wecom { url } | ReceiverKind::Slack { url } => (Some(url), None),
            ReceiverKind::Alertmanager { .. } => (None, None),
        };
        a.into_iter().chain(b)
    }
}

/// Template overrides (minijinja); `None`: the receiver type's default.
#[derive(Debug, Clone, Default)]
pub struct Templates {
    /// Subject / title line.
    pub title: Option<String>,
    /// Text (or Markdown for robots) body.
    pub body: Option<String>,
    /// HTML body (email).
    pub html: Option<String>,
}

/// A validated receiver.
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// Its name (the `receiver` metric label).
    pub name: String,
    /// Type and settings.
    pub kind: ReceiverKind,
    /// Send a notification when an alert resolves (default true).
    pub send_resolved: bool,
    /// One delivery attempt's time limit (default 10s).
    pub timeout: Duration,
    /// Keep retrying a notification this long before it is given up as rejected
    /// (default 24h).
    pub retry_for: Duration,
    /// Template overrides.
    pub templates: Templates,
}

pub(super) const RECEIVER_TYPES: &str =
    "email, webhook, alertmanager, wecom, dingtalk, feishu, slack";

fn http_url(issues: &mut Issues, key: String, text: &str) -> Option<Url> {
    match Url::parse(text.trim()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
        // The text is not repeated: it may carry a token.
        _ => {
            issues.add(key, "must be an http:// or https:// URL");
            None
        }
    }
}

pub(super) fn validate_receiver(
    issues: &mut Issues,
    name: &str,
    r: &RawReceiver,
) -> Option<ReceiverConfig> {
    use secrecy::ExposeSecret as _;
    let key = format!("alerts.receivers.{name}");
    let before = issues.0.len();
    let set: [(&str, bool); 16] = [
        ("url", r.url.is_some() || r.url_file.is_some()),
        ("secret", r.secret.is_some() || r.secret_file.is_some()),
        ("urls", r.urls.is_some()),
        ("resend_delay", r.resend_delay.is_some()),
        ("resolve_resend", r.resolve_resend.is_some()),
        ("smtp_host", r.smtp_host.is_some()),
        ("smtp_port", r.smtp_port.is_some()),
        ("tls", r.tls.is_some()),
        ("username", r.username.is_some()),
        (
            "password",
            r.password.is_some() || r.password_file.is_some(),
        ),
        ("from", r.from.is_some()),
        ("to", r.to.is_some()),
        ("templates.html", r.templates.html.is_some()),
        ("templates.title", r.templates.title.is_some()),
        ("templates.body", r.templates.body.is_some()),
        ("send_resolved", r.send_resolved.is_some()),
    ];
    let allowed: &[&str] = match r.kind.as_deref() {
        Some("email") => &[
            "smtp_host",
            "smtp_port",
            "tls",
            "username",
            "password",
            "from",
            "to",
            "templates.html",
            "templates.title",
            "templates.body",
        ],
        Some("webhook") => &["url", "secret"],
        Some("alertmanager") => &["urls", "resend_delay", "resolve_resend"],
        Some("wecom" | "slack") => &["url", "templates.title", "templates.body"],
        Some("dingtalk" | "feishu") => &["url", "secret", "templates.title", "templates.body"],
        Some(other) => {
            issues.add(
                format!("{key}.type"),
                format!("`{other}` is not a receiver type: use one of {RECEIVER_TYPES}"),
            );
            return None;
        }
        None => {
            issues.add(
                format!("{key}.type"),
                format!("required: one of {RECEIVER_TYPES}"),
            );
            return None;
        }
    };
    let kind_name = r.kind.as_deref().unwrap_or_default();
    for (field, is_set) in set {
        if is_set && field != "send_resolved" && !allowed.contains(&field) {
            issues.add(
                format!("{key}.{field}"),
                format!("not a setting of type = \"{kind_name}\""),
            );
        }
    }
    let templates = Templates {
        title: r.templates.title.clone(),
        body: r.templates.body.clone(),
        html: r.templates.html.clone(),
    };
    for (field, text) in [
        ("title", &templates.title),
        ("body", &templates.body),
        ("html", &templates.html),
    ] {
        if let Some(text) = text
            && let Err(e) = crate::config::templates::check_template(text)
        {
            issues.add(format!("{key}.templates.{field}"), e.to_string());
        }
    }
    let secret_url = |issues: &mut Issues| -> Option<SecretString> {
        let url = issues.secret(&key, "url", &r.url, &r.url_file);
        match url {
            Some(u) => http_url(issues, format!("{key}.url"), u.expose_secret()).map(|_| u),
            None => {
                issues.add(format!("{key}.url"), "required");
                None
            }
        }
    };
    let kind = match kind_name {
        "email" => {
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
                && f.parse::<lettre::message::Mailbox>().is_err()
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
                if t.parse::<lettre::message::Mailbox>().is_err() {
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
            let tls = tls?;
            ReceiverKind::Email {
                smtp_host: smtp_host?,
                smtp_port: r.smtp_port.unwrap_or(match tls {
                    SmtpTls::None => 25,
                    SmtpTls::StartTls => 587,
                    SmtpTls::Tls => 465,
                }),
                tls,
                username: r.username.clone(),
                password,
                from: from?,
                to,
            }
        }
        "webhook" => ReceiverKind::Webhook {
            url: secret_url(issues)?,
            secret: issues.secret(&key, "secret", &r.secret, &r.secret_file),
        },
        "alertmanager" => {
            let mut urls = Vec::new();
            match &r.urls {
                Some(list) if !list.is_empty() => {
                    for (i, u) in list.iter().enumerate() {
                        if let Some(u) = http_url(issues, format!("{key}.urls[{i}]"), u) {
                            urls.push(u);
                        }
                    }
                }
                _ => issues.add(
                    format!("{key}.urls"),
                    "required: the Alertmanager base URLs, e.g. [\"http://alertmanager:9093\"]",
                ),
            }
            ReceiverKind::Alertmanager {
                urls,
                resend_delay: positive(
                    issues,
                    format!("{key}.resend_delay"),
                    r.resend_delay,
                    Duration::from_secs(60),
                ),
                resolve_resend: r.resolve_resend.unwrap_or(Duration::from_secs(300)),
            }
        }
        "wecom" => ReceiverKind::Wecom {
            url: secret_url(issues)?,
        },
        "slack" => ReceiverKind::Slack {
            url: secret_url(issues)?,
        },
        "dingtalk" => ReceiverKind::Dingtalk {
            url: secret_url(issues)?,
            secret: issues.secret(&key, "secret", &r.secret, &r.secret_file),
        },
        "feishu" => ReceiverKind::Feishu {
            url: secret_url(issues)?,
            secret: issues.secret(&key, "secret", &r.secret, &r.secret_file),
        },
        _ => return None,
    };
    if issues.0.len() != before {
        return None;
    }
    Some(ReceiverConfig {
        name: name.to_owned(),
        kind,
        send_resolved: r.send_resolved.unwrap_or(true),
        timeout: positive(
            issues,
            format!("{key}.timeout"),
            r.timeout,
            Duration::from_secs(10),
        ),
        retry_for: positive(
            issues,
            format!("{key}.retry_for"),
            r.retry_for,
            Duration::from_secs(24 * 3600),
        ),
        templates,
    })
}
