//! Alertmanager API v2: `POST <url>/api/v2/alerts` to every listed Alertmanager with a JSON
//! array of alerts (`labels`, `annotations`, `startsAt`, `endsAt`, `generatorURL`).
//!
//! A firing alert is pushed with `endsAt` = now + 4 × `resend_delay` and re-pushed every
//! `resend_delay` (the retry stage's [`super::Resend`]), so Alertmanager keeps it firing
//! exactly as long as jobwatch does, and lets it expire if jobwatch dies. A resolved alert
//! is pushed with `endsAt` = the moment it resolved, and re-pushed for `resolve_resend`
//! (default 5m) in case an Alertmanager missed it. Labels are the alert's stable labels,
//! so Alertmanager's fingerprint is stable too.
//!
//! **Answer**: every Alertmanager 2xx → delivered; any 408/425/429/5xx or connection
//! failure → retried (to all: Alertmanager deduplicates); otherwise a 4xx → rejected.

use std::time::Duration;

use url::Url;

use super::http::{classify_status, post_json};
use super::{Delivery, Notifier};
use crate::alert::AlertStatus;
use crate::alert::render::NotificationView;
use crate::time::rfc3339_ms;

/// `type = "alertmanager"`: `urls`, `resend_delay` (default 1m), `resolve_resend` (default 5m).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    urls: Option<Vec<String>>,
    #[serde(default, with = "humantime_serde")]
    resend_delay: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    resolve_resend: Option<Duration>,
}

/// An Alertmanager receiver's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Every Alertmanager of the cluster (each gets every alert).
    pub urls: Vec<Url>,
    /// Firing alerts are re-pushed this often (`endsAt` = 4 × this ahead).
    pub resend_delay: Duration,
    /// Resolved alerts are re-pushed for this long after they resolve.
    pub resolve_resend: Duration,
}

impl Settings {
    /// Reads and checks them (no templates: Alertmanager renders its own).
    pub fn read(
        receiver: &crate::config::ReceiverConfig,
        issues: &mut crate::config::Issues,
    ) -> Option<Self> {
        let key = receiver.key();
        let raw: Raw = super::read_settings(receiver, issues, &[])?;
        let mut urls = Vec::new();
        match &raw.urls {
            Some(list) if !list.is_empty() => {
                for (i, u) in list.iter().enumerate() {
                    if let Some(u) = issues.http_url(format!("{key}.urls[{i}]"), u) {
                        urls.push(u);
                    }
                }
            }
            _ => issues.add(
                format!("{key}.urls"),
                "required: the Alertmanager base URLs, e.g. [\"http://alertmanager:9093\"]",
            ),
        }
        let resend_delay = issues.positive(
            format!("{key}.resend_delay"),
            raw.resend_delay,
            Duration::from_secs(60),
        );
        let resolve_resend = raw.resolve_resend.unwrap_or(Duration::from_secs(300));
        (!urls.is_empty()).then_some(Settings {
            urls,
            resend_delay,
            resolve_resend,
        })
    }
}

/// An Alertmanager receiver.
pub struct Alertmanager {
    client: reqwest::Client,
    urls: Vec<Url>,
    resend_delay: Duration,
}

impl Alertmanager {
    /// To every Alertmanager in `urls`.
    pub fn new(client: reqwest::Client, urls: Vec<Url>, resend_delay: Duration) -> Self {
        Alertmanager {
            client,
            urls,
            resend_delay,
        }
    }

    /// The API v2 body for `view` at `now_ms`.
    pub fn body(&self, view: &NotificationView, now_ms: i64) -> serde_json::Value {
        let ahead = i64::try_from(self.resend_delay.as_millis() * 4).unwrap_or(i64::MAX / 2);
        let alerts: Vec<serde_json::Value> = view
            .alerts
            .iter()
            .map(|a| {
                let ends_at = match (a.status, &a.ends_at) {
                    (AlertStatus::Resolved, Some(ends)) => ends.clone(),
                    _ => rfc3339_ms(now_ms + ahead),
                };
                let mut annotations = serde_json::json!({
                    "summary": a.cause.summary,
                    "description": a.cause.description,
                    "execution_id": a.cause.execution_id,
                    "state": a.cause.state.as_str(),
                    "hosts_failed": format!("{} of {}", a.cause.hosts_failed, a.cause.hosts_total),
                });
                if let Some(job) = a.cause.job_instance_id {
                    annotations["job_instance_id"] = job.to_string().into();
                }
                if let Some(jid) = &a.cause.jid {
                    annotations["jid"] = jid.clone().into();
                }
                if let Some(r) = &a.resolution {
                    annotations["resolution"] = r.clone().into();
                }
                serde_json::json!({
                    "labels": a.labels,
                    "annotations": annotations,
                    "startsAt": a.starts_at,
                    "endsAt": ends_at,
                })
            })
            .collect();
        serde_json::Value::Array(alerts)
    }
}

#[async_trait::async_trait]
impl Notifier for Alertmanager {
    async fn notify(&self, view: &NotificationView) -> Delivery {
        let body = serde_json::to_vec(&self.body(view, crate::time::now_ms())).unwrap_or_default();
        let mut errored = Vec::new();
        let mut rejected = Vec::new();
        for (i, base) in self.urls.iter().enumerate() {
            let url = format!("{}/api/v2/alerts", base.as_str().trim_end_matches('/'));
            let d = match post_json(&self.client, &url, &[], body.clone()).await {
                Ok(answer) => classify_status(&answer).unwrap_or(Delivery::Delivered),
                Err(d) => d,
            };
            match d {
                Delivery::Delivered => {}
                Delivery::Errored(e) => errored.push(format!("urls[{i}]: {e}")),
                Delivery::Rejected(e) => rejected.push(format!("urls[{i}]: {e}")),
            }
        }
        if !errored.is_empty() {
            errored.extend(rejected);
            Delivery::Errored(errored.join("; "))
        } else if !rejected.is_empty() {
            Delivery::Rejected(rejected.join("; "))
        } else {
            Delivery::Delivered
        }
    }
}
