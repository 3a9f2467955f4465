//! The shared vocabulary, at the bottom of the layers: what every platform adapter speaks
//! (hosts, outcomes, snapshots, execution and trigger states), and what every part passes on
//! (the execution record in [`report`], conditions in [`condition`], the alert vocabulary in
//! [`alert`], the outbox's in [`outbox`]).
//!
//! Raw platform codes are always kept next to their normalized form, so nothing the platform
//! said is lost in translation (DESIGN.md §4).
//!
//! **One type per stage that truly differs** (STYLE.md #14). Hosts: [`Host`] (identity),
//! [`HostStatus`] (what the platform said of it in one answer), `tracker::TrackedHost`
//! (identity and latest status, as `decide` reads them at the end), [`report::HostReport`]
//! (what is stored and shown, with its log; the one copy kept while following), [`alert::HostLine`] (a row of an alert's host table, as receivers get
//! it), `tracker::detect::HostView` (what the detectors read). Delivery outcomes:
//! [`outbox::Delivery`] (how one attempt ended, with its reason), [`outbox::OutboxState`]
//! (where a stored notification stands), `store::Finish` (what to store after an attempt,
//! with the next due time).

pub mod alert;
pub mod condition;
pub mod outbox;
pub mod report;
pub mod shard;
pub mod silence;

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a platform error should be handled, whatever the platform (DESIGN.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Connect/timeout, HTTP 5xx, 429, gateway 16xxxxx and the platform's own "unavailable"
    /// codes: retried with backoff; never fails a job.
    Transient,
    /// Auth, bad request, permission, unknown account or host…: surfaced with the platform's
    /// own code and text.
    Permanent,
    /// The platform does not know the job instance (bk-job 1244006): the job may be **lost**.
    NotFound,
}

impl ErrorClass {
    /// Every class (a closed label set).
    pub const ALL: [ErrorClass; 3] = [
        ErrorClass::Transient,
        ErrorClass::Permanent,
        ErrorClass::NotFound,
    ];

    /// Bounded label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::Permanent => "permanent",
            ErrorClass::NotFound => "not_found",
        }
    }
}

/// The check name of a watched job (one started elsewhere, followed with the default poll
/// policy): no script, the job's timeout as given.
pub const WATCH_CHECK: &str = "watch";

/// Why a host, as written, is not one ([`Host::parse`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostParseError {
    /// Not an id, not `<bk_cloud_id>:<ip>`, not the local host.
    #[error("`{0}` is neither a host id nor \"<bk_cloud_id>:<ip>\"")]
    Shape(String),
    /// The control area is not a number.
    #[error("`{cloud}` in `{text}` is not a bk_cloud_id")]
    CloudId {
        /// The control area as written.
        cloud: String,
        /// The whole text.
        text: String,
    },
    /// Not a Salt minion id.
    #[error("`{0}` is not a minion id: it must be non-empty, without white space")]
    Minion(String),
    /// The IP is not an IPv4 address.
    #[error("`{ip}` in `{text}` is not an IPv4 address")]
    Ip {
        /// The IP as written.
        ip: String,
        /// The whole text.
        text: String,
    },
}

/// The names that mean the agent's own host.
pub const LOCAL_HOST_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// One target host, as the platform names it.
///
/// bk-job identifies a host either by its CMDB `bk_host_id` or by `bk_cloud_id` + `ip`
/// (API.md §3, `server` object); a status answer usually carries all three. The local
/// platform has a single host, `localhost`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema, Default)]
pub struct Host {
    /// CMDB host id (`bk_host_id`), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bk_host_id: Option<u64>,
    /// Control-area ("cloud") id (`bk_cloud_id`), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bk_cloud_id: Option<u64>,
    /// IPv4 address or, for the local platform, `localhost`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Salt minion id (the name its key was accepted under), for a Salt platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minion_id: Option<String>,
}

impl Host {
    /// A host named by its CMDB id only.
    pub fn by_id(bk_host_id: u64) -> Self {
        Host {
            bk_host_id: Some(bk_host_id),
            ..Host::default()
        }
    }

    /// A host named by control area and IP.
    pub fn by_ip(bk_cloud_id: u64, ip: impl Into<String>) -> Self {
        Host {
            bk_cloud_id: Some(bk_cloud_id),
            ip: Some(ip.into()),
            ..Host::default()
        }
    }

    /// A Salt minion, by its id.
    pub fn minion(id: impl Into<String>) -> Self {
        Host {
            minion_id: Some(id.into()),
            ..Host::default()
        }
    }

    /// Checks a Salt minion id as written in config or a request: not empty, no white space
    /// or control characters (Salt's list targeting takes ids verbatim).
    pub fn parse_minion(text: &str) -> Result<Self, HostParseError> {
        let id = text.trim();
        if id.is_empty() || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(HostParseError::Minion(text.to_owned()));
        }
        Ok(Host::minion(id))
    }

    /// The agent's own host (the local platform's only target).
    pub fn localhost() -> Self {
        Host {
            ip: Some("localhost".into()),
            ..Host::default()
        }
    }

    /// Parses a host as people write it in config and API requests: a CMDB host id
    /// (`"101"`), `"<bk_cloud_id>:<ip>"` (IPv4, e.g. `"0:10.0.0.1"`), or one of
    /// [`LOCAL_HOST_NAMES`] for the agent itself. The error says what was wrong.
    pub fn parse(text: &str) -> Result<Self, HostParseError> {
        let text = text.trim();
        if let Ok(id) = text.parse::<u64>() {
            return Ok(Host::by_id(id));
        }
        if LOCAL_HOST_NAMES.contains(&text) {
            return Ok(Host::localhost());
        }
        let Some((cloud, ip)) = text.split_once(':') else {
            return Err(HostParseError::Shape(text.to_owned()));
        };
        let cloud: u64 = cloud.trim().parse().map_err(|_| HostParseError::CloudId {
            cloud: cloud.to_owned(),
            text: text.to_owned(),
        })?;
        let ip: std::net::Ipv4Addr = ip.trim().parse().map_err(|_| HostParseError::Ip {
            ip: ip.to_owned(),
            text: text.to_owned(),
        })?;
        Ok(Host::by_ip(cloud, ip.to_string()))
    }

    /// Whether the host is the agent itself (named by one of [`LOCAL_HOST_NAMES`], no id).
    pub fn is_local(&self) -> bool {
        self.bk_host_id.is_none()
            && self
                .ip
                .as_deref()
                .is_some_and(|ip| LOCAL_HOST_NAMES.contains(&ip))
    }

    /// Whether `self` and `other` name the same machine: same minion id or host id when both
    /// have one, else same control area and IP.
    pub fn same_as(&self, other: &Host) -> bool {
        if let (Some(a), Some(b)) = (&self.minion_id, &other.minion_id) {
            return a == b;
        }
        if let (Some(a), Some(b)) = (self.bk_host_id, other.bk_host_id) {
            return a == b;
        }
        match (&self.ip, &other.ip) {
            (Some(a), Some(b)) => {
                a == b && self.bk_cloud_id.unwrap_or(0) == other.bk_cloud_id.unwrap_or(0)
            }
            _ => false,
        }
    }

    /// Fills the identity fields this host lacks from `other` (which names the same machine).
    pub fn merge_from(&mut self, other: &Host) {
        self.bk_host_id = self.bk_host_id.or(other.bk_host_id);
        self.bk_cloud_id = self.bk_cloud_id.or(other.bk_cloud_id);
        if self.ip.is_none() {
            self.ip.clone_from(&other.ip);
        }
        if self.minion_id.is_none() {
            self.minion_id.clone_from(&other.minion_id);
        }
    }
}

/// `"<bk_cloud_id>:<ip>"` when the IP is known (plus ` #<bk_host_id>` when that is known too),
/// else `"#<bk_host_id>"`; `localhost` for the local platform; the minion id for Salt.
impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(id) = &self.minion_id {
            return f.write_str(id);
        }
        match (&self.ip, self.bk_cloud_id, self.bk_host_id) {
            (Some(ip), None, None) => write!(f, "{ip}"),
            (Some(ip), cloud, None) => write!(f, "{}:{ip}", cloud.unwrap_or(0)),
            (Some(ip), cloud, Some(id)) => write!(f, "{}:{ip} #{id}", cloud.unwrap_or(0)),
            (None, _, Some(id)) => write!(f, "#{id}"),
            (None, _, None) => write!(f, "?"),
        }
    }
}

/// What a host's raw status means, the same for every platform (DESIGN.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HostOutcome {
    /// The script ran and the platform counts it a success (bk-job 9, 3).
    Success,
    /// The script ran, or was sent, and failed (non-zero exit, send failure, file error, …).
    Failed,
    /// The host's agent was down or missing (bk-job 1, 18, 310).
    AgentError,
    /// The script or the task ran out of time (bk-job 13, 16, 17, 102, 303).
    Timeout,
    /// The script was stopped on request (bk-job 103, 403).
    Terminated,
    /// Not started yet (bk-job 5).
    Waiting,
    /// Still running (bk-job 7).
    Running,
    /// A code the platform calls unknown, or one jobwatch does not know: ended, never a success.
    Unknown,
}

impl HostOutcome {
    /// Whether the host is done (every outcome but `waiting` and `running`).
    pub fn is_final(self) -> bool {
        !matches!(self, HostOutcome::Waiting | HostOutcome::Running)
    }

    /// Whether the host ended in anything but success.
    pub fn is_failure(self) -> bool {
        self.is_final() && self != HostOutcome::Success
    }

    /// The snake_case name used in JSON and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            HostOutcome::Success => "success",
            HostOutcome::Failed => "failed",
            HostOutcome::AgentError => "agent_error",
            HostOutcome::Timeout => "timeout",
            HostOutcome::Terminated => "terminated",
            HostOutcome::Waiting => "waiting",
            HostOutcome::Running => "running",
            HostOutcome::Unknown => "unknown",
        }
    }
}

impl fmt::Display for HostOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A label pair for a platform code: English and Chinese, as the platform's own i18n files
/// spell them, or a generated text for a code jobwatch does not know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Label {
    /// English label (borrowed from the code tables for known codes: no allocation per poll).
    pub en: std::borrow::Cow<'static, str>,
    /// Chinese label.
    pub zh: std::borrow::Cow<'static, str>,
}

/// One host as seen in one status snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct HostStatus {
    /// The host, with every identity field the platform returned.
    pub host: Host,
    /// The raw per-host status code (bk-job API.md §9.2).
    pub status: i64,
    /// What `status` means.
    pub outcome: HostOutcome,
    /// The platform's label for `status`.
    pub label: Label,
    /// Script exit code, when the platform reports one.
    pub exit_code: Option<i64>,
    /// Raw agent error code (bk-job `error_code`, GSE code, API.md §9.3).
    pub error_code: Option<i64>,
    /// Value set by the script's `job_success`/`job_fail` helper (bk-job `tag`).
    pub tag: Option<String>,
    /// Time the host spent, when reported.
    pub duration: Option<Duration>,
    /// What the platform said of the host beyond its code, verbatim, when its own words do
    /// not fit a code (Salt: `retcode`, `success`, the probe's answer); `None` for bk-job,
    /// whose codes are the facts.
    pub facts: Option<serde_json::Value>,
}

/// A platform's answer about one job instance at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSnapshot {
    /// The raw job status (bk-job API.md §9.1).
    pub status: i64,
    /// The platform's label for `status`.
    pub label: Label,
    /// Whether the platform says the job has ended (bk-job `finished`).
    pub finished: bool,
    /// The step whose hosts are reported (bk-job fast jobs have exactly one).
    pub step_instance_id: Option<u64>,
    /// Every host the platform reported; empty before the step started (API.md §4).
    pub hosts: Vec<HostStatus>,
}

/// How far the trigger (the submit) of an execution got (DESIGN.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TriggerStatus {
    /// Recorded; its submit has surely not left yet (after a crash it is submitted then).
    Pending,
    /// The submit was let go to the platform (recorded at the last moment before it left);
    /// no answer yet. After a crash it is reconciled, never submitted again.
    Submitting,
    /// The platform accepted it and returned a job instance.
    Triggered,
    /// The platform refused it (its code and message are kept), or it could not be reached.
    TriggerFailed,
    /// The submit left but its answer is unknown; it must be reconciled, never resubmitted blindly.
    TriggerUnknown,
    /// A scheduled tick that did not submit (the previous run was still going, or the agent
    /// was down at that time); the reason says which.
    Skipped,
    /// A scheduled tick inside one of the check's maintenance windows: not submitted, on
    /// purpose (its state is `skipped`; it causes no alert). The reason names the window.
    Maintenance,
}

impl TriggerStatus {
    /// The snake_case name used in JSON, the store and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerStatus::Pending => "pending",
            TriggerStatus::Submitting => "submitting",
            TriggerStatus::Triggered => "triggered",
            TriggerStatus::TriggerFailed => "trigger_failed",
            TriggerStatus::TriggerUnknown => "trigger_unknown",
            TriggerStatus::Skipped => "skipped",
            TriggerStatus::Maintenance => "maintenance",
        }
    }
}

/// Where an execution is in its life (DESIGN.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionState {
    /// Not yet submitted.
    Pending,
    /// Submitted; the job has not ended.
    Running,
    /// Every host succeeded.
    Succeeded,
    /// The job ended and at least one host did not succeed.
    Failed,
    /// The deadline (job timeout + slack) or the poll budget ran out before the job ended.
    TimedOut,
    /// The platform no longer knows the job instance (bk-job 1244006; a jid Salt's job cache
    /// no longer has).
    Lost,
    /// Stopped on request (the user interrupted jobwatch).
    Cancelled,
    /// The platform refused the submit; no job instance exists.
    TriggerFailed,
    /// A scheduled tick that was not run (see [`TriggerStatus::Skipped`]).
    Skipped,
}

impl ExecutionState {
    /// Whether the state is an end state (never left once reached).
    pub fn is_final(self) -> bool {
        !matches!(self, ExecutionState::Pending | ExecutionState::Running)
    }

    /// Every state, for closed label sets and parsing.
    pub const ALL: [ExecutionState; 9] = [
        ExecutionState::Pending,
        ExecutionState::Running,
        ExecutionState::Succeeded,
        ExecutionState::Failed,
        ExecutionState::TimedOut,
        ExecutionState::Lost,
        ExecutionState::Cancelled,
        ExecutionState::TriggerFailed,
        ExecutionState::Skipped,
    ];

    /// The state named `name` (its snake_case name), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The snake_case name used in JSON and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionState::Pending => "pending",
            ExecutionState::Running => "running",
            ExecutionState::Succeeded => "succeeded",
            ExecutionState::Failed => "failed",
            ExecutionState::TimedOut => "timed_out",
            ExecutionState::Lost => "lost",
            ExecutionState::Cancelled => "cancelled",
            ExecutionState::TriggerFailed => "trigger_failed",
            ExecutionState::Skipped => "skipped",
        }
    }
}

impl fmt::Display for ExecutionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A script language, by bk-job's code (API.md §9.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScriptLanguage {
    /// 1
    Shell,
    /// 2
    Bat,
    /// 3
    Perl,
    /// 4
    Python,
    /// 5
    Powershell,
}

impl ScriptLanguage {
    /// Every language, in code order.
    pub const ALL: [ScriptLanguage; 5] = [
        ScriptLanguage::Shell,
        ScriptLanguage::Bat,
        ScriptLanguage::Perl,
        ScriptLanguage::Python,
        ScriptLanguage::Powershell,
    ];

    /// bk-job's `script_language` code, 1–5.
    pub fn code(self) -> i64 {
        match self {
            ScriptLanguage::Shell => 1,
            ScriptLanguage::Bat => 2,
            ScriptLanguage::Perl => 3,
            ScriptLanguage::Python => 4,
            ScriptLanguage::Powershell => 5,
        }
    }

    /// The lower-case name used in config (`shell`, `bat`, `perl`, `python`, `powershell`).
    pub fn name(self) -> &'static str {
        match self {
            ScriptLanguage::Shell => "shell",
            ScriptLanguage::Bat => "bat",
            ScriptLanguage::Perl => "perl",
            ScriptLanguage::Python => "python",
            ScriptLanguage::Powershell => "powershell",
        }
    }

    /// The program that runs a script file of this language on a Unix host, for platforms
    /// that take an interpreter and a script text (Salt `cmd.exec_code_all`); `None` for
    /// `bat` and `powershell`.
    pub fn interpreter(self) -> Option<&'static str> {
        match self {
            ScriptLanguage::Shell => Some("bash"),
            ScriptLanguage::Perl => Some("perl"),
            ScriptLanguage::Python => Some("python3"),
            ScriptLanguage::Bat | ScriptLanguage::Powershell => None,
        }
    }

    /// The language with bk-job code `code`, if any.
    pub fn from_code(code: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.code() == code)
    }

    /// The language named `name` (case-insensitive), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|l| l.name().eq_ignore_ascii_case(name.trim()))
    }
}

/// A log text kept for a host, bounded: the tail is kept and a cut is marked.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LogTail {
    /// The kept text; when `truncated`, it starts with a marker line naming the bytes dropped.
    pub text: String,
    /// Whether the head of the log was dropped.
    pub truncated: bool,
    /// Size of the whole log in bytes (UTF-8), before the cut.
    pub total_bytes: usize,
}

impl LogTail {
    /// Keeps the last `max_bytes` bytes of `text` (cut on a character boundary, then at the
    /// next line start when one is near) and marks the cut.
    pub fn bounded(text: &str, max_bytes: usize) -> Self {
        let total_bytes = text.len();
        if total_bytes <= max_bytes {
            return LogTail {
                text: text.to_owned(),
                truncated: false,
                total_bytes,
            };
        }
        let mut start = total_bytes - max_bytes;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        // Prefer to start at a line boundary if one is within the first 256 bytes kept.
        if let Some(nl) = text[start..]
            .find('\n')
            .filter(|&i| i < 256 && start + i + 1 < total_bytes)
        {
            start += nl + 1;
        }
        let text = format!(
            "[jobwatch: first {start} of {total_bytes} bytes not shown]\n{}",
            &text[start..]
        );
        LogTail {
            text,
            truncated: true,
            total_bytes,
        }
    }

    /// The last `n` lines of the kept text.
    pub fn last_lines(&self, n: usize) -> Vec<&str> {
        let lines: Vec<&str> = self.text.lines().collect();
        lines[lines.len().saturating_sub(n)..].to_vec()
    }
}

/// The execution id in a platform job's name as the tracker gives it
/// (`jobwatch:<check>:<execution id>`, `tracker::task_name`); `None` for any other name.
pub fn execution_id_of_task(name: &str) -> Option<&str> {
    let (_, id) = name.strip_prefix("jobwatch:")?.rsplit_once(':')?;
    (!id.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_by_id_or_by_cloud_and_ip() {
        let full = Host {
            bk_host_id: Some(101),
            bk_cloud_id: Some(0),
            ip: Some("10.0.0.1".into()),
            minion_id: None,
        };
        assert!(Host::by_id(101).same_as(&full));
        assert!(Host::by_ip(0, "10.0.0.1").same_as(&full));
        assert!(!Host::by_ip(1, "10.0.0.1").same_as(&full));
        assert!(!Host::by_id(102).same_as(&full));
        assert_eq!(full.to_string(), "0:10.0.0.1 #101");
        assert_eq!(Host::by_id(7).to_string(), "#7");
    }

    #[test]
    fn hosts_parse_as_people_write_them() {
        assert_eq!(Host::parse(" 101 "), Ok(Host::by_id(101)));
        assert_eq!(Host::parse("0:10.0.0.1"), Ok(Host::by_ip(0, "10.0.0.1")));
        assert_eq!(Host::parse("127.0.0.1"), Ok(Host::localhost()));
        assert!(Host::parse("localhost").unwrap().is_local());
        assert!(
            Host::parse("localhost")
                .unwrap()
                .same_as(&Host::localhost())
        );
        assert!(!Host::by_ip(0, "10.0.0.1").is_local());
        assert!(
            Host::parse("0:999.1.1.1")
                .unwrap_err()
                .to_string()
                .contains("not an IPv4 address")
        );
        assert!(
            Host::parse("x:10.0.0.1")
                .unwrap_err()
                .to_string()
                .contains("not a bk_cloud_id")
        );
        assert!(
            Host::parse("10.0.0.1")
                .unwrap_err()
                .to_string()
                .contains("neither a host id")
        );
    }

    #[test]
    fn log_tail_keeps_the_end_and_marks_the_cut() {
        let log: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        let tail = LogTail::bounded(&log, 100);
        assert!(tail.truncated);
        assert_eq!(tail.total_bytes, log.len());
        assert!(tail.text.starts_with("[jobwatch: first "));
        assert!(tail.text.ends_with("line 999\n"));
        assert!(tail.text.len() < 100 + 64);
        // Multi-byte characters are never split.
        let zh = "错误".repeat(100);
        let tail = LogTail::bounded(&zh, 31);
        assert!(tail.text.ends_with("错误"));
        let short = LogTail::bounded("ok\n", 100);
        assert!(!short.truncated);
        assert_eq!(short.text, "ok\n");
    }

    #[test]
    fn script_languages_by_code_and_name() {
        for lang in ScriptLanguage::ALL {
            assert_eq!(ScriptLanguage::from_code(lang.code()), Some(lang));
            assert_eq!(ScriptLanguage::from_name(lang.name()), Some(lang));
        }
        assert_eq!(
            ScriptLanguage::from_name("Python"),
            Some(ScriptLanguage::Python)
        );
        assert_eq!(ScriptLanguage::from_code(6), None);
    }
}
