//! One type per observable thing: `emit()` writes the log line and moves the counter together,
//! so logs and counts never disagree (STYLE.md #3). The Prometheus registry of a later issue
//! reads the same events.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static UNKNOWN_STATUS_CODES: AtomicU64 = AtomicU64::new(0);
static PLATFORM_REQUEST_FAILURES: AtomicU64 = AtomicU64::new(0);

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
    /// Logs at WARN and counts it.
    pub fn emit(self) {
        UNKNOWN_STATUS_CODES.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            table = self.table.as_str(),
            code = self.code,
            "Platform sent a status code jobwatch does not know; kept as unknown."
        );
    }
}

/// How many unknown status codes were seen since start.
pub fn unknown_status_codes_seen() -> u64 {
    UNKNOWN_STATUS_CODES.load(Ordering::Relaxed)
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
    /// Logs (DEBUG when it will be retried, WARN otherwise) and counts it.
    pub fn emit(self) {
        PLATFORM_REQUEST_FAILURES.fetch_add(1, Ordering::Relaxed);
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

/// How many platform requests failed since start.
pub fn platform_request_failures() -> u64 {
    PLATFORM_REQUEST_FAILURES.load(Ordering::Relaxed)
}

static STORE_WRITE_FAILURES: AtomicU64 = AtomicU64::new(0);

/// An execution's state could not be written to the store.
pub struct StoreWriteFailed<'a> {
    /// The execution.
    pub execution_id: &'a str,
    /// What failed.
    pub error: &'a dyn std::fmt::Display,
}

impl StoreWriteFailed<'_> {
    /// Logs at ERROR (an operator must look: state may be lost on a crash) and counts it.
    pub fn emit(self) {
        STORE_WRITE_FAILURES.fetch_add(1, Ordering::Relaxed);
        tracing::error!(execution_id = self.execution_id, error = %self.error, "Cannot write execution state to the store.");
    }
}

/// How many store writes failed since start.
pub fn store_write_failures() -> u64 {
    STORE_WRITE_FAILURES.load(Ordering::Relaxed)
}
