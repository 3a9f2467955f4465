//! Notification texts: minijinja templates over a [`NotificationView`], with defaults per
//! receiver type and per-receiver overrides (`[alerts.receivers.<name>.templates]`).
//!
//! Template context: `receiver`, `status` (`firing` when any alert fires), `firing` and
//! `resolved` (counts), `common_labels`, and `alerts`: each with `status`, `fingerprint`,
//! `labels`, `starts_at`, `ends_at` (RFC 3339), `resolution`, and `cause` (`summary`,
//! `description`, `execution_id`, `job_instance_id`, `jid` (Salt), `state`, `hosts` [`host`, `status`,
//! `status_label`, `outcome`, `exit_code`], `hosts_total`, `hosts_failed`, `log_tails`
//! [`host`, `text`, `truncated`]).

use std::collections::BTreeMap;

use serde::Serialize;

pub use crate::config::templates::TemplateError;

use super::{Alert, AlertCause, AlertStatus};
use crate::config::Templates;
use crate::time::rfc3339_ms;

/// One alert as templates see it.
#[derive(Debug, Clone, Serialize)]
pub struct AlertView {
    /// `firing` / `resolved`.
    pub status: AlertStatus,
    /// Label hash.
    pub fingerprint: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// RFC 3339.
    pub starts_at: String,
    /// RFC 3339, when resolved.
    pub ends_at: Option<String>,
    /// Why it resolved.
    pub resolution: Option<String>,
    /// The execution behind it.
    pub cause: AlertCause,
    /// The notification that carries it: a stable id and its version (a receiver that got
    /// the same id and version twice — a re-send after a lost answer — can drop the copy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notification: Option<NotificationRef>,
}

/// A notification's stable identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NotificationRef {
    /// Stable id (the outbox row).
    pub id: i64,
    /// Bumped when the waiting notification took a newer state of its alert.
    pub version: i64,
}

impl From<&Alert> for AlertView {
    fn from(a: &Alert) -> Self {
        AlertView {
            status: a.status,
            fingerprint: a.fingerprint.clone(),
            labels: a.labels.clone(),
            starts_at: rfc3339_ms(a.starts_at_ms),
            ends_at: a.ends_at_ms.map(rfc3339_ms),
            resolution: a.resolution.clone(),
            cause: a.cause.clone(),
            notification: None,
        }
    }
}

/// One notification: the alerts of one group for one receiver.
#[derive(Debug, Clone, Serialize)]
pub struct NotificationView {
    /// Receiver name.
    pub receiver: String,
    /// `firing` if any alert fires, else `resolved`.
    pub status: AlertStatus,
    /// Firing alerts.
    pub firing: usize,
    /// Resolved alerts.
    pub resolved: usize,
    /// Labels all alerts share.
    pub common_labels: BTreeMap<String, String>,
    /// The alerts, firing first.
    pub alerts: Vec<AlertView>,
}

impl NotificationView {
    /// The view of `alerts` for `receiver`.
    pub fn new(receiver: &str, alerts: &[Alert]) -> Self {
        Self::of(receiver, alerts.iter().map(|a| (a, None)))
    }

    /// The view of the notifications' alerts, each with its notification's id and version.
    pub fn for_notifications(
        receiver: &str,
        notifications: &[crate::model::outbox::Notification],
    ) -> Self {
        Self::of(
            receiver,
            notifications.iter().map(|n| {
                (
                    &n.alert,
                    Some(NotificationRef {
                        id: n.id,
                        version: n.version,
                    }),
                )
            }),
        )
    }

    /// The notifications carried, as `id.version` joined by commas (a header value).
    pub fn notification_ids(&self) -> String {
        self.alerts
            .iter()
            .filter_map(|a| a.notification)
            .map(|n| format!("{}.{}", n.id, n.version))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn of<'a>(
        receiver: &str,
        alerts: impl Iterator<Item = (&'a Alert, Option<NotificationRef>)>,
    ) -> Self {
        let mut views: Vec<AlertView> = alerts
            .map(|(a, n)| AlertView {
                notification: n,
                ..AlertView::from(a)
            })
            .collect();
        views.sort_by_key(|a| (a.status != AlertStatus::Firing, a.fingerprint.clone()));
        let firing = views
            .iter()
            .filter(|a| a.status == AlertStatus::Firing)
            .count();
        let mut common_labels = views.first().map(|a| a.labels.clone()).unwrap_or_default();
        for a in &views {
            common_labels.retain(|k, v| a.labels.get(k) == Some(v));
        }
        NotificationView {
            receiver: receiver.to_owned(),
            status: if firing > 0 {
                AlertStatus::Firing
            } else {
                AlertStatus::Resolved
            },
            firing,
            resolved: views.len() - firing,
            common_labels,
            alerts: views,
        }
    }
}

/// Default subject/title: status, first alert's summary, how many more.
pub const DEFAULT_TITLE: &str = "[{{ status | upper }}] {{ alerts[0].labels.alertname }}: {{ alerts[0].cause.summary }}{% if alerts | length > 1 %} (+{{ alerts | length - 1 }} more){% endif %}";

/// Default plain-text body (email text part).
pub const DEFAULT_TEXT: &str = r#"{% for a in alerts %}{{ a.status | upper }} {{ a.labels.alertname }} ({{ a.labels.severity }})
{{ a.cause.summary }}
Check: {{ a.labels.check }}   Platform: {{ a.labels.platform }}
Execution: {{ a.cause.execution_id }}{% if a.cause.job_instance_id %}   Job instance: {{ a.cause.job_instance_id }}{% endif %}{% if a.cause.jid %}   Salt jid: {{ a.cause.jid }}{% endif %}   State: {{ a.cause.state }}
Since: {{ a.starts_at }}{% if a.ends_at %}   Resolved: {{ a.ends_at }} ({{ a.resolution }}){% endif %}
{% if a.cause.hosts %}
Hosts ({{ a.cause.hosts_failed }} of {{ a.cause.hosts_total }} not succeeded):
{% for h in a.cause.hosts %}  {{ h.host }}  {{ h.outcome }}  status {{ h.status if h.status is not none else "-" }} {{ h.status_label }}  exit {{ h.exit_code if h.exit_code is not none else "-" }}
{% endfor %}{% if a.cause.hosts | length < a.cause.hosts_total %}  … {{ a.cause.hosts_total - a.cause.hosts | length }} more
{% endif %}{% endif %}{% for t in a.cause.log_tails %}
--- log tail of {{ t.host }}{% if t.truncated %} (earlier output left out){% endif %} ---
{{ t.text }}
{% endfor %}
{% endfor %}"#;

/// Default Markdown body (chat robots).
pub const DEFAULT_MARKDOWN: &str = r#"{% for a in alerts %}**{{ a.status | upper }}** {{ a.labels.alertname }} ({{ a.labels.severity }})
{{ a.cause.summary }}
- check: {{ a.labels.check }}, platform: {{ a.labels.platform }}
- execution: {{ a.cause.execution_id }}{% if a.cause.job_instance_id %}, job instance {{ a.cause.job_instance_id }}{% endif %}{% if a.cause.jid %}, Salt jid {{ a.cause.jid }}{% endif %}, {{ a.cause.state }}
{% if a.ends_at %}- resolved {{ a.ends_at }}: {{ a.resolution }}
{% endif %}{% for h in a.cause.hosts if h.outcome != "success" %}- {{ h.host }}: {{ h.outcome }} {{ h.status_label }}{% if h.exit_code is not none %} (exit {{ h.exit_code }}){% endif %}
{% endfor %}{% for t in a.cause.log_tails[:3] %}
`{{ t.host }}`:
```
{{ t.text }}
```
{% endfor %}
{% endfor %}"#;

/// Default HTML body (email).
pub const DEFAULT_HTML: &str = r#"<!doctype html><html><body style="font-family: sans-serif">
{% for a in alerts %}<h3 style="color: {{ '#b00020' if a.status == 'firing' else '#1b5e20' }}">{{ a.status | upper }} {{ a.labels.alertname }} ({{ a.labels.severity }})</h3>
<p>{{ a.cause.summary }}</p>
<p>Check <b>{{ a.labels.check }}</b> on <b>{{ a.labels.platform }}</b>; execution <code>{{ a.cause.execution_id }}</code>{% if a.cause.job_instance_id %}, job instance {{ a.cause.job_instance_id }}{% endif %}{% if a.cause.jid %}, Salt jid {{ a.cause.jid }}{% endif %}, state {{ a.cause.state }}; since {{ a.starts_at }}{% if a.ends_at %}; resolved {{ a.ends_at }} ({{ a.resolution }}){% endif %}.</p>
{% if a.cause.hosts %}<table border="1" cellpadding="4" cellspacing="0">
<tr><th>host</th><th>outcome</th><th>status</th><th>exit code</th></tr>
{% for h in a.cause.hosts %}<tr><td>{{ h.host }}</td><td>{{ h.outcome }}</td><td>{{ h.status if h.status is not none else "-" }} {{ h.status_label }}</td><td>{{ h.exit_code if h.exit_code is not none else "-" }}</td></tr>
{% endfor %}</table>
<p>{{ a.cause.hosts_failed }} of {{ a.cause.hosts_total }} hosts did not succeed.</p>{% endif %}
{% for t in a.cause.log_tails %}<p>Log tail of <b>{{ t.host }}</b>{% if t.truncated %} (earlier output left out){% endif %}:</p>
<pre style="background: #f4f4f4; padding: 6px">{{ t.text }}</pre>
{% endfor %}<hr>
{% endfor %}</body></html>"#;

/// Which body a receiver type uses by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyStyle {
    /// Plain text (email).
    Text,
    /// Markdown (robots).
    Markdown,
}

/// The compiled templates of one receiver.
#[derive(Debug)]
pub struct Renderer {
    env: minijinja::Environment<'static>,
}

/// Rendered texts.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// Subject / title.
    pub title: String,
    /// Text or Markdown body.
    pub body: String,
    /// HTML body.
    pub html: String,
}

impl Renderer {
    /// The receiver's templates: overrides, else the defaults for `style`.
    pub fn new(templates: &Templates, style: BodyStyle) -> Result<Self, TemplateError> {
        let mut env = crate::config::templates::environment();
        let body_default = match style {
            BodyStyle::Text => DEFAULT_TEXT,
            BodyStyle::Markdown => DEFAULT_MARKDOWN,
        };
        for (name, text) in [
            (
                "title.txt",
                templates.title.as_deref().unwrap_or(DEFAULT_TITLE),
            ),
            (
                "body.txt",
                templates.body.as_deref().unwrap_or(body_default),
            ),
            (
                "body.html",
                templates.html.as_deref().unwrap_or(DEFAULT_HTML),
            ),
        ] {
            env.add_template_owned(name, text.to_owned())
                .map_err(|source| TemplateError {
                    name: name.into(),
                    source,
                })?;
        }
        Ok(Renderer { env })
    }

    /// Renders all three texts. A failing template (e.g. a filter error at run time) is
    /// reported as an error value; the caller treats it as a rejected notification.
    pub fn render(&self, view: &NotificationView) -> Result<Rendered, TemplateError> {
        let one = |name: &str| -> Result<String, TemplateError> {
            self.env
                .get_template(name)
                .and_then(|t| t.render(view))
                .map_err(|source| TemplateError {
                    name: name.into(),
                    source,
                })
        };
        Ok(Rendered {
            title: one("title.txt")?
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned(),
            body: one("body.txt")?,
            html: one("body.html")?,
        })
    }
}
