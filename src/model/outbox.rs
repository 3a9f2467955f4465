//! The outbox vocabulary (STYLE.md #11): how a delivery attempt ended, where a stored
//! notification stands, a notification of one alert to one receiver, a receiver's own
//! re-send rhythm. Delivery itself is [`crate::notify`].

use serde::{Deserialize, Serialize};

use super::alert::{Alert, AlertStatus};

/// How one delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The receiver took it.
    Delivered,
    /// A transient failure (connection, 5xx, 429, rate-limit errcode): try again later.
    Errored(String),
    /// A permanent refusal (bad request, invalid token, sign mismatch): do not retry.
    Rejected(String),
}

impl Delivery {
    /// The `result` label: `delivered`, `errored` or `rejected`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Delivery::Delivered => "delivered",
            Delivery::Errored(_) => "errored",
            Delivery::Rejected(_) => "rejected",
        }
    }
}

/// Stored state of a notification in the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    /// Not tried yet.
    Pending,
    /// Tried, failed transiently; will be retried at `due_at`.
    Errored,
    /// Delivered.
    Delivered,
    /// Refused permanently, or given up after `retry_for`.
    Rejected,
    /// Not sent: the alert resolved before its firing notification was first attempted, and
    /// the receiver never got it firing (nothing to say, as Alertmanager does).
    Dropped,
    /// Not sent while a silence covers its alert: it waits, due at the silence's end, and is
    /// sent then if no other silence covers it (a resolve meanwhile updates or drops it, by
    /// the queueing rule).
    Silenced,
}

impl OutboxState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Errored => "errored",
            OutboxState::Delivered => "delivered",
            OutboxState::Rejected => "rejected",
            OutboxState::Dropped => "dropped",
            OutboxState::Silenced => "silenced",
        }
    }

    /// Parses a stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Errored,
            Self::Delivered,
            Self::Rejected,
            Self::Dropped,
            Self::Silenced,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

/// One notification of one alert to one receiver (a row of the outbox).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Notification {
    /// Row id.
    pub id: i64,
    /// Bumped when a pending notification takes a newer state of its alert.
    pub version: i64,
    /// Receiver name.
    pub receiver: String,
    /// Notifications with the same key go out together.
    pub group_key: String,
    /// The alert.
    pub fingerprint: String,
    /// The alert's status in this notification.
    pub status: AlertStatus,
    /// `new` (a transition) or `repeat`.
    pub kind: String,
    /// The alert as notified.
    pub alert: Alert,
    /// Unix ms.
    pub created_at_ms: i64,
    /// Not before, Unix ms.
    pub due_at_ms: i64,
    /// Attempts made.
    pub attempts: u32,
    /// Where it stands.
    pub outcome: OutboxState,
    /// The last failure, in words (never a secret).
    pub last_error: Option<String>,
    /// Unix ms.
    pub last_attempt_at_ms: Option<i64>,
    /// Unix ms.
    pub delivered_at_ms: Option<i64>,
    /// The silence that covered it when it was last due (outcome `silenced`, or sent after
    /// it ended).
    pub silenced_by: Option<String>,
}

/// How often a receiver re-sends alerts on its own (beyond a route's `repeat_interval`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Resend {
    /// Firing alerts every this many ms instead of the route's `repeat_interval`.
    pub firing_every_ms: Option<i64>,
    /// Resolved alerts every this many ms…
    pub resolved_every_ms: i64,
    /// …for this many ms after they resolved (0: never).
    pub resolved_for_ms: i64,
}

impl Resend {
    /// How often `alert` is repeated to the receiver of `target` (ms), or `None` (a resolved
    /// alert the receiver does not re-send).
    pub fn every(&self, alert: &Alert, target: &super::alert::Target) -> Option<i64> {
        match alert.status {
            AlertStatus::Firing => Some(self.firing_every_ms.unwrap_or(target.repeat_interval_ms)),
            AlertStatus::Resolved if self.resolved_for_ms > 0 => Some(self.resolved_every_ms),
            AlertStatus::Resolved => None,
        }
    }

    /// Whether a repeat of `alert` is due at `now_ms`, given the receiver's notifications of
    /// it: the newest one's creation (`last`), how many wait, how many firing ones of this
    /// episode it got (`saw_firing`). A resolved alert is re-sent only to a receiver that got
    /// it firing; nothing is repeated while one waits.
    pub fn repeat_due(
        alert: &Alert,
        last: Option<i64>,
        waiting: i64,
        saw_firing: i64,
        every_ms: i64,
        now_ms: i64,
    ) -> bool {
        match last {
            _ if waiting > 0 => false,
            _ if alert.status == AlertStatus::Resolved && saw_firing == 0 => false,
            None => alert.status == AlertStatus::Firing,
            Some(l) => now_ms - l >= every_ms,
        }
    }
}

/// The notification of an alert to a receiver that waits (pending or errored), newest first,
/// as the queueing rule reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiting {
    /// Its id.
    pub id: i64,
    /// The status it says.
    pub status: AlertStatus,
    /// Attempts so far.
    pub attempts: u32,
    /// When it is due (Unix ms).
    pub due_at_ms: i64,
}

/// What queueing a notification of an alert's new state does, given the one that waits
/// ([`queue_plan`]): the one rule both stores carry out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueuePlan {
    /// Nothing (a resolved alert to a receiver without `send_resolved`).
    Skip,
    /// The waiting one takes the new state (same status, or not yet due).
    Update(i64),
    /// A firing the receiver never got resolved before it was due: dropped when the
    /// receiver never got this episode's firing before (nothing to send), else updated.
    DropUnlessSeen(i64),
    /// A new notification, due no earlier than `not_before` (after the waiting one, in
    /// order) nor its group's time.
    Insert {
        /// Unix ms.
        not_before: Option<i64>,
    },
}

/// The queueing rule (as Alertmanager's): the latest waiting notification of the alert and
/// receiver, **not yet due** (still in its group's wait), takes the new state — except a
/// firing one the receiver never got, dropped when the alert resolves before it was due.
/// Once due (attempted, or held back because the receiver is down), what it says is kept: a
/// change of status is a new notification after it, sent only after it (both, in order);
/// the same status takes the newer details.
pub fn queue_plan(
    status: AlertStatus,
    send_resolved: bool,
    waiting: Option<Waiting>,
    now_ms: i64,
) -> QueuePlan {
    if status == AlertStatus::Resolved && !send_resolved {
        return QueuePlan::Skip;
    }
    let Some(w) = waiting else {
        return QueuePlan::Insert { not_before: None };
    };
    let same_status = w.status == status;
    let not_yet_due = w.attempts == 0 && w.due_at_ms > now_ms;
    if not_yet_due && !same_status && status == AlertStatus::Resolved {
        QueuePlan::DropUnlessSeen(w.id)
    } else if not_yet_due || same_status {
        QueuePlan::Update(w.id)
    } else {
        QueuePlan::Insert {
            not_before: Some(w.due_at_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(status: AlertStatus, attempts: u32, due_at_ms: i64) -> Option<Waiting> {
        Some(Waiting {
            id: 7,
            status,
            attempts,
            due_at_ms,
        })
    }

    #[test]
    fn a_waiting_notification_takes_the_new_state_until_it_is_due() {
        use AlertStatus::{Firing, Resolved};
        let now = 1_000;
        assert_eq!(queue_plan(Resolved, false, None, now), QueuePlan::Skip);
        assert_eq!(
            queue_plan(Firing, true, None, now),
            QueuePlan::Insert { not_before: None }
        );
        // Still in its group's wait: takes the newer state; a firing resolved before it was
        // ever sent may be dropped.
        assert_eq!(
            queue_plan(Firing, true, waiting(Firing, 0, 2_000), now),
            QueuePlan::Update(7)
        );
        assert_eq!(
            queue_plan(Resolved, true, waiting(Firing, 0, 2_000), now),
            QueuePlan::DropUnlessSeen(7)
        );
        // Due (or attempted): the same status takes the newer details; another status comes
        // after it, in order.
        assert_eq!(
            queue_plan(Firing, true, waiting(Firing, 2, 500), now),
            QueuePlan::Update(7)
        );
        assert_eq!(
            queue_plan(Resolved, true, waiting(Firing, 1, 500), now),
            QueuePlan::Insert {
                not_before: Some(500)
            }
        );
    }
}
