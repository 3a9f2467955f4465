//! One type per observable thing: `emit()` writes the log line and moves the counter together,
//! so logs and counts never disagree (STYLE.md #3). The Prometheus registry of a later issue
//! reads the same events.

use std::time::Duration;

use crate::metrics;

/// Which platform code table a code was looked up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusTable {
    /// Job or step status (bk-job API.md §9.1).
    Job,
    /// Per-host status (bk-job API.md §9.2).
    Host,
}

impl StatusTable {
    /// Bounded label value.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusTable::Job => "job",
            StatusTable::Host => "host",
        }
    }
}

/// A platform answered with a status code jobwatch's tables do not have.
#[derive(Debug)]
pub struct UnknownStatusCode {
    /// The table it was looked up in.
    pub table: StatusTable,
    /// The code as received.
    pub code: i64,
}

impl UnknownStatusCode {
    /// Logs at WARN and counts it (`jobwatch_unknown_status_codes_total`).
    pub fn emit(self) {
        metrics::global().unknown_status_code(self.table.as_str());
        tracing::warn!(
            table = self.table.as_str(),
            code = self.code,
            "Platform sent a status code jobwatch does not know; kept as unknown."
        );
    }
}

/// How many unknown status codes were seen since start (both tables).
pub fn unknown_status_codes_seen() -> u64 {
    metrics::global().unknown_status_codes()
}

/// A platform API call failed (after classification; retries are separate events).
pub struct PlatformRequestFailed<'a> {
    /// Platform name from config.
    pub platform: &'a str,
    /// API name, e.g. `get_job_instance_status`.
    pub api: &'static str,
    /// `transient`, `permanent` or `not_found`.
    pub class: &'static str,
    /// The error, already free of secrets.
    pub error: &'a dyn std::fmt::Display,
    /// Delay before the next try, when it will be retried.
    pub retry_in: Option<Duration>,
}

impl PlatformRequestFailed<'_> {
    /// Logs (DEBUG when it will be retried, WARN otherwise). The request itself is counted
    /// by [`PlatformRequestDone`].
    pub fn emit(self) {
        match self.retry_in {
            Some(delay) => tracing::debug!(
                platform = self.platform, api = self.api, class = self.class, error = %self.error,
                retry_in_ms = delay.as_millis() as u64, "Platform request failed; retrying."
            ),
            None => tracing::warn!(
                platform = self.platform, api = self.api, class = self.class, error = %self.error,
                "Platform request failed."
            ),
        }
    }
}

/// One platform request ended (any result).
#[derive(Debug)]
pub struct PlatformRequestDone<'a> {
    /// Platform name from config.
    pub platform: &'a str,
    /// Index of the endpoint in the configured list.
    pub endpoint: usize,
    /// API name.
    pub api: &'static str,
    /// `ok`, `transient`, `permanent` or `not_found`.
    pub result: &'static str,
    /// Latency.
    pub elapsed: Duration,
}

impl PlatformRequestDone<'_> {
    /// Counts it and observes its latency (`jobwatch_platform_requests_total`,
    /// `jobwatch_platform_request_duration_seconds`); logged at TRACE.
    pub fn emit(self) {
        tracing::trace!(
            platform = self.platform,
            endpoint = self.endpoint,
            api = self.api,
            result = self.result,
            elapsed_ms = self.elapsed.as_millis() as u64,
            "Platform request done."
        );
        metrics::global().platform_request(
            self.platform,
            self.endpoint,
            self.api,
            self.result,
            self.elapsed.as_secs_f64(),
        );
    }
}

/// An execution's state could not be written to the store.
pub struct StoreWriteFailed<'a> {
    /// The execution.
    pub execution_id: &'a str,
    /// What failed.
    pub error: &'a dyn std::fmt::Display,
}

impl StoreWriteFailed<'_> {
    /// Logs at ERROR (an operator must look: state may be lost on a crash) and counts it
    /// (`jobwatch_store_write_failures_total`).
    pub fn emit(self) {
        metrics::global().store_write_failed();
        tracing::error!(execution_id = self.execution_id, error = %self.error, "Cannot write execution state to the store.");
    }
}

/// A notification attempt to a receiver ended (one group: `notifications` rows).
pub struct AlertNotificationAttempted<'a> {
    /// Receiver name (configured: a closed set).
    pub receiver: &'a str,
    /// How it ended.
    pub delivery: &'a crate::model::outbox::Delivery,
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
        use crate::model::outbox::Delivery;
        let result = if self.gave_up {
            "rejected"
        } else {
            self.delivery.as_str()
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
    pub alert: &'a crate::model::alert::Alert,
}

impl AlertTransition<'_> {
    /// Logs at INFO and counts (`jobwatch_alert_transitions_total{alertname,status}`).
    pub fn emit(self) {
        let a = self.alert;
        let alertname = a.labels.get("alertname").map_or("", String::as_str);
        metrics::global().alert_transition(alertname, a.status.as_str());
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
