//! What alert delivery does: delivery attempts, alert transitions, the outbox's depth.

use crate::metrics;
use crate::model::alert::{Alert, AlertEvent};
use crate::model::outbox::{Delivery, OutboxState};

/// A notification attempt to a receiver ended (one group: `notifications` rows).
pub struct AlertNotificationAttempted<'a> {
    /// Receiver name (configured: a closed set).
    pub receiver: &'a str,
    /// How it ended.
    pub delivery: &'a Delivery,
    /// Notifications in the group.
    pub notifications: usize,
    /// Attempts made so far, this one included.
    pub attempts: u32,
    /// Whether the retry stage gave up (retry_for elapsed).
    pub gave_up: bool,
}

impl AlertNotificationAttempted<'_> {
    /// Logs (DEBUG delivered, WARN errored, ERROR rejected) and counts
    /// (`jobwatch_alert_notifications_total{receiver,result}`).
    pub fn emit(self) {
        let result = match self.delivery {
            Delivery::Delivered => OutboxState::Delivered,
            Delivery::Errored(_) if !self.gave_up => OutboxState::Errored,
            _ => OutboxState::Rejected,
        };
        metrics::global().alert_notification(self.receiver, result, self.notifications);
        match self.delivery {
            Delivery::Delivered => tracing::debug!(
                receiver = self.receiver,
                notifications = self.notifications,
                attempts = self.attempts,
                "Notification delivered."
            ),
            Delivery::Errored(e) if !self.gave_up => {
                tracing::warn!(receiver = self.receiver, notifications = self.notifications, attempts = self.attempts, error = %e, "Notification failed; it will be retried.")
            }
            Delivery::Errored(e) | Delivery::Rejected(e) => {
                tracing::error!(receiver = self.receiver, notifications = self.notifications, attempts = self.attempts, error = %e, "Notification rejected; it will not be retried.")
            }
        }
    }
}

/// An alert started firing or resolved (its notifications are queued in the same
/// transaction).
pub struct AlertTransition<'a> {
    /// The alert.
    pub alert: &'a Alert,
}

impl AlertTransition<'_> {
    /// Logs at INFO and counts (`jobwatch_alert_transitions_total{alertname,status}`).
    pub fn emit(self) {
        let a = self.alert;
        let alertname = a.labels.get("alertname").map_or("", String::as_str);
        if let Some(event) = AlertEvent::ALL
            .into_iter()
            .find(|e| e.alertname() == alertname)
        {
            metrics::global().alert_transition(event, a.status);
        }
        tracing::info!(
            fingerprint = %a.fingerprint,
            alertname,
            check = a.labels.get("check").map_or("", String::as_str),
            status = a.status.as_str(),
            execution_id = %a.cause.execution_id,
            "Alert {}.", a.status.as_str()
        );
    }
}

/// The notifications waiting for a receiver, measured after a delivery pass.
pub struct OutboxDepth<'a> {
    /// Receiver name (configured).
    pub receiver: &'a str,
    /// Pending or errored notifications.
    pub depth: i64,
}

impl OutboxDepth<'_> {
    /// Sets `jobwatch_alert_outbox_depth{receiver}`; logged at TRACE.
    pub fn emit(self) {
        tracing::trace!(
            receiver = self.receiver,
            depth = self.depth,
            "Outbox depth."
        );
        metrics::global().set_outbox_depth(self.receiver, self.depth);
    }
}

/// Due notifications were held back by a silence (stored `silenced`, due at its end).
pub struct NotificationsSilenced<'a> {
    /// Receiver name.
    pub receiver: &'a str,
    /// The silence.
    pub silence_id: &'a str,
    /// Its end, Unix ms.
    pub until_ms: i64,
    /// How many.
    pub notifications: usize,
}

impl NotificationsSilenced<'_> {
    /// Logs at INFO and counts (`jobwatch_alert_notifications_total{receiver,result="silenced"}`).
    pub fn emit(self) {
        metrics::global().alert_notification(
            self.receiver,
            OutboxState::Silenced,
            self.notifications,
        );
        tracing::info!(
            receiver = self.receiver,
            silence = self.silence_id,
            until = %crate::time::rfc3339_ms(self.until_ms),
            notifications = self.notifications,
            "Notifications silenced; they wait for the silence's end."
        );
    }
}
