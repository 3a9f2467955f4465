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
