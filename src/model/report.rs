//! One execution's record, end to end: what `jobwatch exec --output json` prints, what the
//! store keeps and the API shows (field names are the JSON keys). How it is filled is the
//! tracker's ([`crate::tracker::report`]).

use serde::{Deserialize, Serialize};

use super::condition::{Condition, PastCondition};
use super::{ExecutionState, Host, HostOutcome, LogTail, TriggerStatus};

/// What started an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// `jobwatch exec`.
    #[default]
    Cli,
    /// A check's schedule (`schedule` or `every`).
    Schedule,
    /// `POST /v1/executions`.
    Api,
    /// `POST /v1/watches`: a job started elsewhere, followed.
    Watch,
}

impl Origin {
    /// The snake_case name used in JSON and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Cli => "cli",
            Origin::Schedule => "schedule",
            Origin::Api => "api",
            Origin::Watch => "watch",
        }
    }
}

/// One execution, end to end: what `jobwatch exec --output json` prints and what the store
/// keeps. Field names are the JSON keys.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExecutionReport {
    /// jobwatch's id of this trigger attempt (UUIDv7: sorts by creation time).
    pub execution_id: String,
    /// What started it.
    #[serde(default)]
    pub origin: Origin,
    /// For a scheduled run, the tick it belongs to (Unix epoch ms).
    #[serde(default)]
    pub scheduled_at_ms: Option<i64>,
    /// Check name.
    pub check: String,
    /// Platform name from config.
    pub platform: String,
    /// `bkjob` or `local`.
    pub platform_kind: String,
    /// The job's name on the platform; carries the execution id.
    pub task_name: String,
    /// How far the submit got.
    pub trigger_status: TriggerStatus,
    /// The platform's code when the submit failed.
    pub trigger_code: Option<i64>,
    /// The platform's message when the submit failed.
    pub trigger_message: Option<String>,
    /// When the submit was let go to the platform (the `submitting` mark), Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submit_marked_at_ms: Option<i64>,
    /// bk-job `job_instance_id`.
    pub job_instance_id: Option<u64>,
    /// bk-job `step_instance_id`.
    pub step_instance_id: Option<u64>,
    /// Salt job id (`jid`, 20 digits: it does not fit `job_instance_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jid: Option<String>,
    /// Last raw job status (API.md §9.1).
    pub job_status: Option<i64>,
    /// Its English label.
    pub job_status_label: Option<String>,
    /// Final state.
    pub state: ExecutionState,
    /// Why, in words a person can act on.
    pub reason: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// RFC 3339, UTC.
    pub ended_at: String,
    /// Seconds from start to end.
    pub duration_seconds: f64,
    /// Status polls made.
    pub polls: u32,
    /// Polls that got no usable answer (after quick retries).
    pub failed_polls: u32,
    /// The last poll error, when the last poll failed.
    pub last_platform_error: Option<String>,
    /// Conditions holding now (stuck, stragglers, platform unreachable); empty once ended.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Every condition that held during the run, with when it cleared.
    #[serde(default)]
    pub condition_log: Vec<PastCondition>,
    /// Every host.
    pub hosts: Vec<HostReport>,
    /// Start, Unix epoch ms.
    #[serde(default)]
    pub started_at_ms: i64,
    /// The job's own timeout, seconds (the deadline is counted from `started_at_ms`).
    #[serde(default)]
    pub timeout_seconds: u64,
    /// The end is recorded and the hosts' logs are being fetched: outcome alerts wait for
    /// them, so that they carry the log tails.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub logs_pending: bool,
    /// While it is followed: when the next status poll is due (Unix ms), as of the last saved
    /// change (a time in the past means "due now").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_poll_at_ms: Option<i64>,
    /// The token name of the operator who asked to terminate the job (`POST
    /// /v1/executions/{id}/terminate`), once the terminate was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminated_by: Option<String>,
    /// The shard lease this replica follows the execution under (several replicas on
    /// PostgreSQL; `None` with SQLite or when not followed here). Never stored or shown.
    #[serde(skip)]
    pub fence: Option<super::shard::Fence>,
}

impl ExecutionReport {
    /// Seconds it took, or has taken so far at `now_ms` while it has not ended.
    pub fn elapsed_seconds(&self, now_ms: i64) -> f64 {
        if self.state.is_final() {
            self.duration_seconds
        } else {
            ((now_ms - self.started_at_ms).max(0) as f64) / 1000.0
        }
    }

    /// The platform's name of its job: the Salt jid, else the job instance id, else empty.
    pub fn job_text(&self) -> String {
        match (&self.jid, self.job_instance_id) {
            (Some(jid), _) => jid.clone(),
            (None, Some(id)) => id.to_string(),
            (None, None) => String::new(),
        }
    }
}

/// One host's result.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HostReport {
    /// `"<bk_cloud_id>:<ip>"` (+ ` #<bk_host_id>`), `#<bk_host_id>` or `localhost`.
    pub host: String,
    /// Identity fields.
    #[serde(flatten)]
    pub identity: Host,
    /// Raw host status (API.md §9.2); null when the platform never reported the host.
    pub status: Option<i64>,
    /// English label of `status`.
    pub status_label: String,
    /// Chinese label of `status`.
    pub status_label_zh: String,
    /// Normalized outcome.
    pub outcome: HostOutcome,
    /// Script exit code.
    pub exit_code: Option<i64>,
    /// Raw agent (GSE) error code.
    pub error_code: Option<i64>,
    /// `job_success`/`job_fail` tag.
    pub tag: Option<String>,
    /// Seconds the host spent.
    pub duration_seconds: Option<f64>,
    /// Log tail (bounded by the check's `log_max_bytes`).
    pub log: String,
    /// Whether the head of the log was cut.
    pub log_truncated: bool,
    /// Size of the whole log in bytes.
    pub log_bytes: usize,
    /// Why there is no log, when there is none.
    pub log_error: Option<String>,
    /// What the platform said of the host beyond `status`, verbatim (Salt: `retcode`,
    /// `success`, the inner `return.retcode`, the last probe's answer); absent for bk-job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts: Option<serde_json::Value>,
}

impl HostReport {
    /// Attaches the log tail.
    pub fn set_log(&mut self, tail: LogTail) {
        self.log = tail.text;
        self.log_truncated = tail.truncated;
        self.log_bytes = tail.total_bytes;
        self.log_error = None;
    }
}
