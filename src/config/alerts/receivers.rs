//! `[alerts.receivers.<name>]`: one flat table per receiver. The fields every type has are
//! read here; the type's own fields are kept as written and checked by the type itself
//! (`crate::notify`, through the [`ReceiverCheck`] the application passes in).

use std::time::Duration;

use serde::Deserialize;

use crate::config::Issues;

/// `[alerts.receivers.<name>]` as written: the common fields; the rest is the type's.
#[derive(Debug, Deserialize)]
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
    /// The type's own settings, checked by the type.
    #[serde(flatten)]
    pub(super) settings: toml::Table,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTemplates {
    pub(super) title: Option<String>,
    pub(super) body: Option<String>,
    pub(super) html: Option<String>,
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

/// A receiver: its common settings, validated, and its type's own settings as written (the
/// type reads them: `crate::notify`). Its `Debug` shows the names of the type's settings only:
/// they may hold secrets.
#[derive(Clone)]
pub struct ReceiverConfig {
    /// Its name (the `receiver` metric label).
    pub name: String,
    /// Its `type` (`email`, `webhook`, …).
    pub kind: String,
    /// Send a notification when an alert resolves (default true).
    pub send_resolved: bool,
    /// One delivery attempt's time limit (default 10s).
    pub timeout: Duration,
    /// Keep retrying a notification this long before it is given up as rejected
    /// (default 24h).
    pub retry_for: Duration,
    /// Template overrides.
    pub templates: Templates,
    /// The type's own settings, as written.
    pub settings: toml::Table,
}

impl std::fmt::Debug for ReceiverConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiverConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("send_resolved", &self.send_resolved)
            .field("timeout", &self.timeout)
            .field("retry_for", &self.retry_for)
            .field("settings", &self.settings.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ReceiverConfig {
    /// The key of this receiver's table, for problems: `alerts.receivers.<name>`.
    pub fn key(&self) -> String {
        format!("alerts.receivers.{}", self.name)
    }
}

/// Checks a receiver's type-specific settings and records their problems: given by the layer
/// that knows the types (`crate::notify::check_receiver`, passed in by the application).
pub type ReceiverCheck = fn(&ReceiverConfig, &mut Issues);

/// A check that takes every receiver type as it is (reading a configuration without its
/// receivers' types; `jobwatch` itself always checks them).
pub fn no_receiver_check(_: &ReceiverConfig, _: &mut Issues) {}

pub(super) fn validate_receiver(
    issues: &mut Issues,
    name: &str,
    r: &RawReceiver,
    check: ReceiverCheck,
) -> Option<ReceiverConfig> {
    let key = format!("alerts.receivers.{name}");
    let before = issues.count();
    let kind = match r.kind.as_deref().map(str::trim) {
        Some(k) if !k.is_empty() => k.to_owned(),
        _ => {
            issues.add(format!("{key}.type"), "required: the receiver's type");
            return None;
        }
    };
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
    let receiver = ReceiverConfig {
        name: name.to_owned(),
        kind,
        send_resolved: r.send_resolved.unwrap_or(true),
        timeout: issues.positive(format!("{key}.timeout"), r.timeout, Duration::from_secs(10)),
        retry_for: issues.positive(
            format!("{key}.retry_for"),
            r.retry_for,
            Duration::from_secs(24 * 3600),
        ),
        templates,
        settings: r.settings.clone(),
    };
    check(&receiver, issues);
    (issues.count() == before).then_some(receiver)
}
