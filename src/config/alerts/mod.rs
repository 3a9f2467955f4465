//! `[alerts]`: rules (which events alert, with which severity and labels), routes (labels →
//! receivers, with Alertmanager's grouping timers) and receivers (where notifications go).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::Issues;

mod receivers;

use self::receivers::{RawReceiver, validate_receiver};
pub use self::receivers::{ReceiverCheck, ReceiverConfig, Templates, no_receiver_check};
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

pub(super) fn validate(issues: &mut Issues, raw: &RawAlerts, check: ReceiverCheck) -> AlertsConfig {
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
        if let Some(receiver) = validate_receiver(issues, name, r, check) {
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
            group_interval: issues.positive(
                format!("{key}.group_interval"),
                r.group_interval,
                Duration::from_secs(300),
            ),
            repeat_interval: issues.positive(
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
