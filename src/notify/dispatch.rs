//! The retry stage, one for every receiver type: a worker per receiver takes the due
//! notifications from the outbox, sends each group once through the receiver's
//! [`Notifier`], and stores the outcome. Rejected → never retried.
//!
//! **A receiver that does not answer is down, not each notification**: an errored attempt
//! marks the receiver down, and nothing else is sent to it until a *probe* — the oldest due
//! group, sent again after [`probe_delay`] (1 s doubling to [`PROBE_MAX`], jittered down to
//! half) — gets through. A dead receiver thus costs one request per backoff step, whatever
//! is waiting; once it answers again, everything pending goes out at once (within
//! [`PROBE_MAX`] of its return). A notification still failing `retry_for` after it was
//! queued is rejected.
//!
//! Per alert and receiver, notifications go out in the order they were queued (a firing
//! before the resolved that follows it), each rendered with the alert as it is at send
//! time, and carrying its stable id and version.
//!
//! A due notification that a current silence covers is not sent: it is stored `silenced`,
//! due again at the silence's end (the latest end when several cover it), and looked at again
//! then — sent if nothing covers it any more. Expiring a silence makes what it held due at
//! once (`Store::expire_silence`).
//!
//! Workers are independent (a dead receiver never delays another), wake when a state change
//! queued something, and otherwise sleep until the next due notification or the next
//! repeat scan. Notifications waiting at shutdown stay in the outbox and are sent after the
//! next start.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Delivery, Notification, Notifier, Resend};
use crate::alert::render::NotificationView;
use crate::config::AlertsConfig;
use crate::internal_events::{AlertNotificationAttempted, NotificationsSilenced};
use crate::model::silence::Silences;
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

/// The longest wait between two probes of a receiver that is down.
pub const PROBE_MAX: Duration = Duration::from_secs(30);

/// The wait before the next probe after `failures` failed attempts in a row: 1 s doubling to
/// [`PROBE_MAX`], times `0.5 + r / 2` (`r` in [0, 1): jitter that only shortens).
pub fn probe_delay(failures: u32, r: f64) -> Duration {
    let step = Duration::from_secs(1)
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(PROBE_MAX);
    step.mul_f64(0.5 + r.clamp(0.0, 1.0) / 2.0)
}

impl Dispatcher {
    /// Starts one worker per receiver on `tasks`; they stop when `stop` is cancelled.
    /// `redactor` masks secrets in stored errors. Waiting notifications of receivers no longer
    /// configured are rejected first.
    pub async fn start(
        store: Arc<dyn Store>,
        config: &AlertsConfig,
        redactor: Arc<crate::alert::Redactor>,
        stop: CancellationToken,
        tasks: &TaskTracker,
    ) -> Result<Arc<Self>, super::BuildError> {
        let known: Vec<String> = config.receivers.keys().cloned().collect();
        match store.reject_orphans(&known, crate::time::now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                notifications = n,
                "Notifications for receivers no longer configured were rejected."
            ),
            Err(e) => tracing::error!(error = %e, "Cannot check the outbox for removed receivers."),
        }
        let mut wakers = Vec::new();
        for receiver in config.receivers.values() {
            let named = |e| super::BuildError::Receiver {
                name: receiver.name.clone(),
                source: Box::new(e),
            };
            let settings = super::Settings::of(receiver).map_err(named)?;
            let notifier = settings.build(receiver).map_err(named)?;
            let wake = Arc::new(Notify::new());
            wakers.push(wake.clone());
            let worker = Worker {
                name: receiver.name.clone(),
                notifier,
                store: store.clone(),
                resend: settings.resend(),
                retry_for_ms: receiver.retry_for.as_millis() as i64,
                // A notifier bounds each request by the receiver's timeout; this bounds the
                // whole attempt (Alertmanager: one request per URL).
                attempt_limit: receiver.timeout * 4 + Duration::from_secs(5),
                redactor: redactor.clone(),
                wake,
                stop: stop.clone(),
                down: None,
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
    redactor: Arc<crate::alert::Redactor>,
    wake: Arc<Notify>,
    stop: CancellationToken,
    /// While the receiver is down: failed attempts in a row, and when to probe it next.
    down: Option<(u32, tokio::time::Instant)>,
}

impl Worker {
    async fn run(mut self) {
        loop {
            if let Err(e) = self.pass().await {
                tracing::error!(receiver = %self.name, error = %e, "Cannot read or update the outbox; retrying shortly.");
            }
            let sleep = match self.down {
                // Down: nothing is sent before the probe.
                Some((_, probe_at)) => probe_at
                    .saturating_duration_since(tokio::time::Instant::now())
                    .min(REPEAT_SCAN),
                None => {
                    let now = crate::time::now_ms();
                    let next = self.store.next_due(&self.name).await.ok().flatten();
                    let mut sleep = REPEAT_SCAN;
                    if let Some(due) = next {
                        sleep =
                            sleep.min(Duration::from_millis(u64::try_from(due - now).unwrap_or(0)));
                    }
                    sleep
                }
            };
            tokio::select! {
                () = self.stop.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(sleep) => {}
            }
        }
    }

    async fn pass(&mut self) -> Result<(), StoreError> {
        self.store
            .enqueue_repeats(&self.name, self.resend, crate::time::now_ms())
            .await?;
        if self
            .down
            .is_some_and(|(_, probe_at)| tokio::time::Instant::now() < probe_at)
        {
            return Ok(());
        }
        loop {
            let now = crate::time::now_ms();
            let due = self.store.due_notifications(&self.name, now, BATCH).await?;
            let full = due.len() == BATCH as usize;
            // Read once a batch: a silence made or expired meanwhile counts from the next.
            let silences = if due.is_empty() {
                Silences::default()
            } else {
                Silences(self.store.current_silences(now).await?)
            };
            let (held, due) = hold_silenced(due, &silences, now);
            for ((silence_id, until_ms), group) in held {
                let ids: Vec<(i64, i64)> = group.iter().map(|n| (n.id, n.version)).collect();
                self.store
                    .finish_notifications(
                        &ids,
                        &Finish::Silenced {
                            until_ms,
                            silence_id: silence_id.clone(),
                        },
                        now,
                    )
                    .await?;
                NotificationsSilenced {
                    receiver: &self.name,
                    silence_id: &silence_id,
                    until_ms,
                    notifications: group.len(),
                }
                .emit();
            }
            let mut groups: BTreeMap<String, Vec<Notification>> = BTreeMap::new();
            for n in due {
                groups.entry(n.group_key.clone()).or_default().push(n);
            }
            for group in groups.into_values() {
                if self.stop.is_cancelled() {
                    return Ok(());
                }
                if !self.send(group).await? {
                    // Down: the rest waits for the next probe.
                    return Ok(());
                }
            }
            if !full {
                break;
            }
        }
        let depth = self.store.outbox_depth(&self.name).await?;
        crate::internal_events::OutboxDepth {
            receiver: &self.name,
            depth,
        }
        .emit();
        Ok(())
    }

    /// Sends one group and stores the outcome; returns whether the receiver answered (false:
    /// it is down until the next probe).
    async fn send(&mut self, group: Vec<Notification>) -> Result<bool, StoreError> {
        let view = NotificationView::for_notifications(&self.name, &group);
        let delivery = tokio::time::timeout(self.attempt_limit, self.notifier.notify(&view))
            .await
            .unwrap_or_else(|_| {
                Delivery::Errored(format!("no answer within {:?}", self.attempt_limit))
            });
        let delivery = match delivery {
            Delivery::Delivered => Delivery::Delivered,
            Delivery::Errored(e) => Delivery::Errored(self.redactor.redact(&e)),
            Delivery::Rejected(e) => Delivery::Rejected(self.redactor.redact(&e)),
        };
        let now = crate::time::now_ms();
        let attempts = group.iter().map(|n| n.attempts).max().unwrap_or(0) + 1;
        let queued_at = group.iter().map(|n| n.created_at_ms).min().unwrap_or(now);
        // The receiver's health first: an errored attempt marks it down until the probe.
        let answered = !matches!(delivery, Delivery::Errored(_));
        let probe_in = if answered {
            self.down = None;
            Duration::ZERO
        } else {
            let failures = self.down.map_or(0, |(f, _)| f) + 1;
            let wait = probe_delay(failures, rand::random_range(0.0..1.0));
            self.down = Some((failures, tokio::time::Instant::now() + wait));
            wait
        };
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
                due_at_ms: now + probe_in.as_millis() as i64,
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
        Ok(answered)
    }
}

/// Notifications held back, by the silence (id, end) that covers them.
type Held = BTreeMap<(String, i64), Vec<Notification>>;

/// Splits due notifications into those a current silence covers — by silence and its end,
/// the one ending last when several cover one — and those to send.
fn hold_silenced(
    due: Vec<Notification>,
    silences: &Silences,
    now_ms: i64,
) -> (Held, Vec<Notification>) {
    let mut held = Held::new();
    let mut send = Vec::with_capacity(due.len());
    for n in due {
        match silences.covering(&n.alert.labels, now_ms) {
            Some(s) => held
                .entry((s.id.clone(), s.ends_at_ms))
                .or_default()
                .push(n),
            None => send.push(n),
        }
    }
    (held, send)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_back_off_to_thirty_seconds_and_jitter_only_shortens() {
        assert_eq!(probe_delay(1, 0.999_999).as_millis(), 999);
        assert_eq!(probe_delay(1, 0.0), Duration::from_millis(500));
        assert_eq!(probe_delay(3, 0.999_999).as_secs(), 3);
        for failures in 6..100 {
            let d = probe_delay(failures, 0.999_999);
            assert!(
                d <= PROBE_MAX && d >= PROBE_MAX / 2 - Duration::from_millis(1),
                "{d:?}"
            );
        }
    }
}
