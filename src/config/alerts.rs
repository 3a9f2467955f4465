//! `[alerts]`: rules (which events alert, with which severity and labels), routes (labels →
//! receivers, with Alertmanager's grouping timers) and receivers (where notifications go).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use super::Issues;
use crate::model::alert::{AlertEvent, SEVERITIES};

/// `[alerts]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlerts {
    /// Extra redaction patterns (regular expressions) applied to log tails in alerts, after
    /// the built-in ones.
    #[serde(default)]
    redact: Vec<String>,
    /// Lines of log tail per failing host in an alert (default 20).
    log_tail_lines: Option<usize>,
    /// Bytes of log tail per failing host in an alert (default 2048).
    log_tail_bytes: Option<usize>,
    /// Hosts listed in an alert's host table (default 20; failing hosts first).
    max_hosts: Option<usize>,
    /// Rules, applied in order.
    #[serde(default)]
    rules: Vec<RawRule>,
    /// Routes, tried in order.
    #[serde(default)]
    routes: Vec<RawRoute>,
    /// Receivers by name.
    #[serde(default)]
    receivers: BTreeMap<String, RawReceiver>,
}

/// `[[alerts.rules]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    /// Events it applies to (default: every event).
    #[serde(default)]
    events: Vec<String>,
    /// Checks it applies to (default: every check).
    #[serde(default)]
    checks: Vec<String>,
    /// Severity to set.
    severity: Option<String>,
    /// Labels to add (static: they become part of the fingerprint).
    #[serde(default)]
    labels: BTreeMap<String, String>,
    /// `false` silences the matching events.
    enabled: Option<bool>,
}

/// `[[alerts.routes]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    /// Receiver name.
    receiver: Option<String>,
    /// Labels that must equal these values.
    #[serde(default, rename = "match")]
    match_eq: BTreeMap<String, String>,
    /// Labels that must fully match these regular expressions.
    #[serde(default)]
    match_re: BTreeMap<String, String>,
    /// Labels that make a group (default `["alertname", "check"]`).
    group_by: Option<Vec<String>>,
    #[serde(default, with = "humantime_serde")]
    group_wait: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    group_interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    repeat_interval: Option<Duration>,
    /// Go on to the next routes after a match (default false).
    #[serde(rename = "continue")]
    continue_: Option<bool>,
}

/// `[alerts.receivers.<name>]`: one flat table, fields checked per `type`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReceiver {
    #[serde(rename = "type")]
    kind: Option<String>,
    send_resolved: Option<bool>,
    #[serde(default, with = "humantime_serde")]
    timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    retry_for: Option<Duration>,
    #[serde(default)]
    templates: RawTemplates,
    // webhook, wecom, dingtalk, feishu, slack
    url: Option<SecretString>,
    url_file: Option<PathBuf>,
    // webhook (HMAC), dingtalk and feishu (sign)
    secret: Option<SecretString>,
    secret_file: Option<PathBuf>,
    // alertmanager
    urls: Option<Vec<String>>,
    #[serde(default, with = "humantime_serde")]
    resend_delay: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    resolve_resend: Option<Duration>,
    // email
    smtp_host: Option<String>,
    smtp_port: Option<u16>,
    tls: Option<String>,
    username: Option<String>,
    password: Option<SecretString>,
    password_file: Option<PathBuf>,
    /// With `tls = "none"`: send the login over the unencrypted connection anyway (default
    /// false: refused).
    allow_plaintext_auth: Option<bool>,
    from: Option<String>,
    to: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplates {
    title: Option<String>,
    body: Option<String>,
    html: Option<String>,
}

/// Validated `[alerts]`.
#[derive(Debug, Clone)]
pub struct AlertsConfig {
    /// Redaction patterns for log tails: built-ins first, then the configured ones.
    pub redact: Vec<regex::Regex>,
    /// Log tail per failing host: at most this many lines…
    pub log_tail_lines: usize,
    /// …and this many bytes.
    pub log_tail_bytes: usize,
    /// Hosts in an alert's host table.
    pub max_hosts: usize,
    /// Rules in order.
    pub rules: Vec<RuleConfig>,
    /// Routes in order.
    pub routes: Vec<RouteConfig>,
    /// Receivers by name.
    pub receivers: BTreeMap<String, ReceiverConfig>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            redact: builtin_redactions(),
            log_tail_lines: 20,
            log_tail_bytes: 2048,
            max_hosts: 20,
            rules: Vec::new(),
            routes: Vec::new(),
            receivers: BTreeMap::new(),
        }
    }
}

/// The built-in redactions: `key=value` / `key: value` for secret-looking keys, bearer
/// tokens, PEM private keys.
///
/// Each pattern's first group is kept, the second becomes `[REDACTED]`, and a third group,
/// when there is one, is kept after it.
pub fn builtin_redactions() -> Vec<regex::Regex> {
    [
        r#"(?i)((?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key)["']?\s*[=:]\s*)("[^"]*"|'[^']*'|\S+)"#,
        r"(?i)(bearer\s+)([A-Za-z0-9._~+/=-]+)",
        r"(?s)(-----BEGIN [A-Z ]*PRIVATE KEY-----)(.*?-----END [A-Z ]*PRIVATE KEY-----)",
        // URL userinfo: scheme://user:password@host (the `@` is kept).
        r"(?i)([a-z][a-z0-9+.-]*://[^\s:/@]*:)([^\s@/]+)(@)",
        // mysql-style `-p<password>` and `--password <value>` arguments.
        r"(^-p|\s-p)(\S+)",
        r"(?i)(--?(?:password|passwd|pass)\s+)(\S+)",
    ]
    .iter()
    .map(|p| regex::Regex::new(p).expect("built-in pattern"))
    .collect()
}

/// A validated rule.
#[derive(Debug, Clone)]
pub struct RuleConfig {
    /// Events (empty: all).
    pub events: Vec<AlertEvent>,
    /// Checks (empty: all).
    pub checks: Vec<String>,
    /// Severity to set.
    pub severity: Option<String>,
    /// Labels to add.
    pub labels: BTreeMap<String, String>,
    /// Whether matching events alert.
    pub enabled: bool,
}

/// How a route compares one label.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// Equal to.
    Equal(String, String),
    /// Fully matches.
    Regex(String, regex::Regex),
}

impl Matcher {
    /// Whether `labels` satisfy the matcher (a missing label is the empty string, as in
    /// Alertmanager).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Matcher::Equal(label, value) => labels.get(label).map_or("", String::as_str) == value,
            Matcher::Regex(label, re) => re.is_match(labels.get(label).map_or("", String::as_str)),
        }
    }
}

/// A validated route.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// Receiver name (exists).
    pub receiver: String,
    /// All must match.
    pub matchers: Vec<Matcher>,
    /// Grouping labels.
    pub group_by: Vec<String>,
    /// Wait before the first notification of a new group (default 30s).
    pub group_wait: Duration,
    /// Wait before notifying a group again about new alerts (default 5m).
    pub group_interval: Duration,
    /// Re-send a still-firing alert this often (default 4h).
    pub repeat_interval: Duration,
    /// Keep matching after this route.
    pub continue_matching: bool,
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

const RECEIVER_TYPES: &str = "email, webhook, alertmanager, wecom, dingtalk, feishu, slack";

fn positive(
    issues: &mut Issues,
    key: String,
    value: Option<Duration>,
    default: Duration,
) -> Duration {
    match value {
        Some(d) if d.is_zero() => {
            issues.add(key, "must be more than 0");
            default
        }
        Some(d) => d,
        None => default,
    }
}

fn compile(
    issues: &mut Issues,
    key: String,
    pattern: &str,
    anchored: bool,
) -> Option<regex::Regex> {
    let full = if anchored {
        format!("^(?:{pattern})$")
    } else {
        pattern.to_owned()
    };
    match regex::Regex::new(&full) {
        Ok(re) => Some(re),
        Err(e) => {
            issues.add(key, format!("not a regular expression: {e}"));
            None
        }
    }
}

pub(super) fn validate(issues: &mut Issues, raw: &RawAlerts) -> AlertsConfig {
    let mut config = AlertsConfig::default();
    for (i, p) in raw.redact.iter().enumerate() {
        if let Some(re) = compile(issues, format!("alerts.redact[{i}]"), p, false) {
            config.redact.push(re);
        }
    }
    config.log_tail_lines = raw.log_tail_lines.unwrap_or(config.log_tail_lines);
    config.log_tail_bytes = raw.log_tail_bytes.unwrap_or(config.log_tail_bytes);
    config.max_hosts = raw.max_hosts.unwrap_or(config.max_hosts);
    for (i, r) in raw.rules.iter().enumerate() {
        let key = format!("alerts.rules[{i}]");
        let mut events = Vec::new();
        for (j, e) in r.events.iter().enumerate() {
            match AlertEvent::from_name(e) {
                Some(ev) => events.push(ev),
                None => issues.add(
                    format!("{key}.events[{j}]"),
                    format!(
                        "`{e}` is not an event: use one of {}",
                        AlertEvent::ALL.map(AlertEvent::as_str).join(", ")
                    ),
                ),
            }
        }
        if let Some(s) = &r.severity
            && !SEVERITIES.contains(&s.as_str())
        {
            issues.add(
                format!("{key}.severity"),
                format!("`{s}`: use one of {}", SEVERITIES.join(", ")),
            );
        }
        for name in r.labels.keys() {
            if crate::model::alert::STABLE_LABELS.contains(&name.as_str()) || !label_name_ok(name) {
                issues.add(
                    format!("{key}.labels.{name}"),
                    "must be a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*) other than alertname, check, platform, severity, class",
                );
            }
        }
        config.rules.push(RuleConfig {
            events,
            checks: r.checks.clone(),
            severity: r.severity.clone(),
            labels: r.labels.clone(),
            enabled: r.enabled.unwrap_or(true),
        });
    }
    for (name, r) in &raw.receivers {
        if let Some(receiver) = validate_receiver(issues, name, r) {
            config.receivers.insert(name.clone(), receiver);
        }
    }
    for (i, r) in raw.routes.iter().enumerate() {
        let key = format!("alerts.routes[{i}]");
        let receiver = match &r.receiver {
            Some(name)
                if config.receivers.contains_key(name) || raw.receivers.contains_key(name) =>
            {
                name.clone()
            }
            Some(name) => {
                issues.add(
                    format!("{key}.receiver"),
                    format!("`{name}` is not a receiver (define [alerts.receivers.{name}])"),
                );
                continue;
            }
            None => {
                issues.add(format!("{key}.receiver"), "required");
                continue;
            }
        };
        let mut matchers: Vec<Matcher> = r
            .match_eq
            .iter()
            .map(|(l, v)| Matcher::Equal(l.clone(), v.clone()))
            .collect();
        for (label, pattern) in &r.match_re {
            if let Some(re) = compile(issues, format!("{key}.match_re.{label}"), pattern, true) {
                matchers.push(Matcher::Regex(label.clone(), re));
            }
        }
        let group_by = r
            .group_by
            .clone()
            .unwrap_or_else(|| vec!["alertname".into(), "check".into()]);
        config.routes.push(RouteConfig {
            receiver,
            matchers,
            group_by,
            group_wait: r.group_wait.unwrap_or(Duration::from_secs(30)),
            group_interval: positive(
                issues,
                format!("{key}.group_interval"),
                r.group_interval,
                Duration::from_secs(300),
            ),
            repeat_interval: positive(
                issues,
                format!("{key}.repeat_interval"),
                r.repeat_interval,
                Duration::from_secs(4 * 3600),
            ),
            continue_matching: r.continue_.unwrap_or(false),
        });
    }
    config
}

fn label_name_ok(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

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

fn validate_receiver(issues: &mut Issues, name: &str, r: &RawReceiver) -> Option<ReceiverConfig> {
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
            issues.add(format!("{key}.templates.{field}"), e);
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
