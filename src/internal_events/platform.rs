//! What the platforms do: requests (counted, with latency), failures (logged), status codes
//! the tables do not know.

use std::time::Duration;

use crate::metrics;
use crate::model::ErrorClass;

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
        metrics::global().unknown_status_code(self.table);
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
    /// How the error is handled.
    pub class: ErrorClass,
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
                platform = self.platform, api = self.api, class = self.class.as_str(), error = %self.error,
                retry_in_ms = delay.as_millis() as u64, "Platform request failed; retrying."
            ),
            None => tracing::warn!(
                platform = self.platform, api = self.api, class = self.class.as_str(), error = %self.error,
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
    /// `None`: it got an answer; else how its error is handled.
    pub result: Option<ErrorClass>,
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
            result = self.result.map_or("ok", ErrorClass::as_str),
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

/// A platform's event stream was opened (`up`) or ended (Salt's `GET /events`).
#[derive(Debug)]
pub struct EventStreamUp<'a> {
    /// Platform name from config.
    pub platform: &'a str,
    /// Whether it is open now.
    pub up: bool,
}

impl EventStreamUp<'_> {
    /// Sets `jobwatch_event_stream_up{platform}` (1 open, 0 not); the opening is logged at
    /// INFO (its failures are the caller's to say, with their reason).
    pub fn emit(self) {
        if self.up {
            tracing::info!(
                platform = self.platform,
                "Following the platform's event stream."
            );
        }
        metrics::global().event_stream_up(self.platform, self.up);
    }
}

/// A platform's event stream hinted that an execution's job may have moved.
#[derive(Debug)]
pub struct PlatformHint<'a> {
    /// Platform name from config.
    pub platform: &'a str,
    /// The execution.
    pub execution_id: &'a str,
    /// The platform's id of the job the event is about (Salt: the jid).
    pub job: &'a str,
}

impl PlatformHint<'_> {
    /// Counts it (`jobwatch_platform_hints_total{platform}`); logged at DEBUG.
    pub fn emit(self) {
        tracing::debug!(
            platform = self.platform,
            execution_id = self.execution_id,
            job = self.job,
            "Event stream: polling now."
        );
        metrics::global().platform_hint(self.platform);
    }
}
