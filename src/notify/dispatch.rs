//! The retry stage, one for every receiver type: a worker per receiver takes the due
//! notifications from the outbox, sends each group once through the receiver's
//! [`Notifier`], and stores the outcome. Errored → the group is due again after a backon
//! exponential backoff (1 s doubling to 5 min, with jitter) until `retry_for` has passed
//! since the notification was queued, then it is rejected; Rejected → never retried.
//!
//! Workers are independent (a dead receiver never delays another), wake when a state change
//! queued something, and otherwise sleep until the next due notification or the next
//! repeat scan. Notifications waiting at shutdown stay in the outbox and are sent after the
//! next start.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use backon::BackoffBuilder as _;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Delivery, Notification, Notifier, Resend};
use crate::alert::Alert;
use crate::alert::render::NotificationView;
use crate::config::AlertsConfig;
use crate::internal_events::AlertNotificationAttempted;
use crate::store::{Finish, Store, StoreError};

/// How often a worker looks for alerts to repeat when nothing else wakes it.
const REPEAT_SCAN: Duration = Duration::from_secs(5);
/// Notifications taken per pass.
const BATCH: u32 = 200;

/// The delivery workers of all receivers.
pub struct Dispatcher {
    wakers: Vec<Arc<Notify>>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("receivers", &self.wakers.len())
            .finish()
    }
}

/// The delay before attempt `attempts + 1` after `attempts` failed ones (backon: 1 s
/// doubling to 5 min, with jitter).
pub fn backoff(attempts: u32) -> Duration {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(Duration::from_secs(300))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
        .nth(attempts.saturating_sub(1) as usize)
        .unwrap_or(Duration::from_secs(300))
}

impl Dispatcher {
    /// Starts one worker per receiver on `tasks`; they stop when `stop` is cancelled.
    /// `secrets` are masked in stored errors. Waiting notifications of receivers no longer
    /// configured are rejected first.
    pub async fn start(
        store: Arc<dyn Store>,
        config: &AlertsConfig,
        secrets: Vec<String>,
        stop: CancellationToken,
        tasks: &TaskTracker,
    ) -> Result<Arc<Self>, String> {
        let known: Vec<String> = config.receivers.keys().cloned().collect();
        match store.reject_orphans(&known, crate::now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                notifications = n,
                "Notifications for receivers no longer configured were rejected."
            ),
            Err(e) => tracing::error!(error = %e, "Cannot check the outbox for removed receivers."),
        }
        let mut wakers = Vec::new();
        for receiver in config.receivers.values() {
            let notifier =
                super::build(receiver).map_err(|e| format!("receiver {}: {e}", receiver.name))?;
            let wake = Arc::new(Notify::new());
            wakers.push(wake.clone());
            let worker = Worker {
                name: receiver.name.clone(),
                notifier,
                store: store.clone(),
                resend: Resend::of(receiver),
                retry_for_ms: receiver.retry_for.as_millis() as i64,
                // A notifier bounds each request by the receiver's timeout; this bounds the
                // whole attempt (Alertmanager: one request per URL).
                attempt_limit: receiver.timeout * 4 + Duration::from_secs(5),
                secrets: secrets.clone(),
                wake,
                stop: stop.clone(),
            };
            tasks.spawn(worker.run());
        }
        Ok(Arc::new(Dispatcher { wakers }))
    }

    /// Something was queued: every worker looks now.
    pub fn wake(&self) {
        for w in &self.wakers {
            w.notify_one();
        }
    }
}

struct Worker {
    name: String,
    notifier: Arc<dyn Notifier>,
    store: Arc<dyn Store>,
    resend: Resend,
    retry_for_ms: i64,
    attempt_limit: Duration,
    secrets: Vec<String>,
    wake: Arc<Notify>,
    stop: CancellationToken,
}

impl Worker {
    async fn run(self) {
        loop {
            if let Err(e) = self.pass().await {
                tracing::error!(receiver = %self.name, error = %e, "Cannot read or update the outbox; retrying shortly.");
            }
            let now = crate::now_ms();
            let next = self.store.next_due(&self.name).await.ok().flatten();
            let mut sleep = REPEAT_SCAN;
            if let Some(due) = next {
                sleep = sleep.min(Duration::from_millis(u64::try_from(due - now).unwrap_or(0)));
            }
            tokio::select! {
                () = self.stop.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(sleep) => {}
            }
        }
    }

    async fn pass(&self) -> Result<(), StoreError> {
        self.store
            .enqueue_repeats(&self.name, self.resend, crate::now_ms())
            .await?;
        loop {
            let due = self
                .store
                .due_notifications(&self.name, crate::now_ms(), BATCH)
                .await?;
            let full = due.len() == BATCH as usize;
            let mut groups: BTreeMap<String, Vec<Notification>> = BTreeMap::new();
            for n in due {
                groups.entry(n.group_key.clone()).or_default().push(n);
            }
            for group in groups.into_values() {
                if self.stop.is_cancelled() {
                    return Ok(());
                }
                self.send(group).await?;
            }
            if !full {
                break;
            }
        }
        let depth = self.store.outbox_depth(&self.name).await?;
        crate::metrics::global().set_outbox_depth(&self.name, depth);
        Ok(())
    }

    fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in &self.secrets {
            out = out.replace(s.as_str(), "[REDACTED]");
        }
        out
    }

    async fn send(&self, group: Vec<Notification>) -> Result<(), StoreError> {
        let alerts: Vec<Alert> = group.iter().map(|n| n.alert.clone()).collect();
        let view = NotificationView::new(&self.name, &alerts);
        let delivery = tokio::time::timeout(self.attempt_limit, self.notifier.notify(&view))
            .await
            .unwrap_or_else(|_| {
                Delivery::Errored(format!("no answer within {:?}", self.attempt_limit))
            });
        let delivery = match delivery {
            Delivery::Delivered => Delivery::Delivered,
            Delivery::Errored(e) => Delivery::Errored(self.scrub(&e)),
            Delivery::Rejected(e) => Delivery::Rejected(self.scrub(&e)),
        };
        let now = crate::now_ms();
        let attempts = group.iter().map(|n| n.attempts).max().unwrap_or(0) + 1;
        let queued_at = group.iter().map(|n| n.created_at_ms).min().unwrap_or(now);
        let mut gave_up = false;
        let finish = match &delivery {
            Delivery::Delivered => Finish::Delivered,
            Delivery::Rejected(error) => Finish::Rejected {
                error: error.clone(),
            },
            Delivery::Errored(error) if now - queued_at >= self.retry_for_ms => {
                gave_up = true;
                Finish::Rejected {
                    error: format!(
                        "gave up after {attempts} attempts over {}: {error}",
                        humantime::format_duration(Duration::from_secs(
                            ((now - queued_at) / 1000) as u64
                        ))
                    ),
                }
            }
            Delivery::Errored(error) => Finish::Errored {
                due_at_ms: now + backoff(attempts).as_millis() as i64,
                error: error.clone(),
            },
        };
        let ids: Vec<(i64, i64)> = group.iter().map(|n| (n.id, n.version)).collect();
        self.store.finish_notifications(&ids, &finish, now).await?;
        AlertNotificationAttempted {
            receiver: &self.name,
            delivery: &delivery,
            notifications: group.len(),
            attempts,
            gave_up,
        }
        .emit();
        Ok(())
    }
}
