//! The alert vocabulary (Alertmanager's terms): the events that alert, an alert's stored
//! state, its cause, status and routing targets. The semantics (when an alert fires or
//! resolves, routes) are in [`crate::alert`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::condition::ConditionKind;
use super::{ExecutionState, HostOutcome};

/// Allowed `severity` values.
pub const SEVERITIES: [&str; 3] = ["critical", "warning", "info"];

/// The labels every alert has (rules may add static ones).
pub const STABLE_LABELS: [&str; 5] = ["alertname", "check", "platform", "severity", "class"];

/// What can alert (config name = `as_str`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertEvent {
    /// The submit was refused; no job instance exists.
    TriggerFailed,
    /// The job ended and too many hosts failed (`fail_when`).
    Failed,
    /// The deadline passed before the job ended.
    TimedOut,
    /// The platform no longer knows the job instance.
    Lost,
    /// Hosts failed, but fewer than `fail_when` tolerates (k-of-N): the execution succeeded.
    HostsFailed,
    /// A running job stopped progressing.
    Stuck,
    /// Some hosts lag far behind the others.
    Stragglers,
    /// The platform has not answered for a while.
    PlatformUnreachable,
    /// A scheduled tick did not run.
    Skipped,
}

impl AlertEvent {
    /// Every event.
    pub const ALL: [AlertEvent; 9] = [
        AlertEvent::TriggerFailed,
        AlertEvent::Failed,
        AlertEvent::TimedOut,
        AlertEvent::Lost,
        AlertEvent::HostsFailed,
        AlertEvent::Stuck,
        AlertEvent::Stragglers,
        AlertEvent::PlatformUnreachable,
        AlertEvent::Skipped,
    ];

    /// The config name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertEvent::TriggerFailed => "trigger_failed",
            AlertEvent::Failed => "failed",
            AlertEvent::TimedOut => "timed_out",
            AlertEvent::Lost => "lost",
            AlertEvent::HostsFailed => "hosts_failed",
            AlertEvent::Stuck => "stuck",
            AlertEvent::Stragglers => "stragglers",
            AlertEvent::PlatformUnreachable => "platform_unreachable",
            AlertEvent::Skipped => "skipped",
        }
    }

    /// Parses a config name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == name)
    }

    /// The `alertname` label.
    pub fn alertname(self) -> &'static str {
        match self {
            AlertEvent::TriggerFailed => "TriggerFailed",
            AlertEvent::Failed => "ExecutionFailed",
            AlertEvent::TimedOut => "ExecutionTimedOut",
            AlertEvent::Lost => "ExecutionLost",
            AlertEvent::HostsFailed => "HostsFailed",
            AlertEvent::Stuck => "ExecutionStuck",
            AlertEvent::Stragglers => "HostStragglers",
            AlertEvent::PlatformUnreachable => "PlatformUnreachable",
            AlertEvent::Skipped => "ScheduleSkipped",
        }
    }

    /// The `class` label: `trigger`, `execution`, `hosts`, `condition` or `schedule`.
    pub fn class(self) -> &'static str {
        match self {
            AlertEvent::TriggerFailed => "trigger",
            AlertEvent::Failed | AlertEvent::TimedOut | AlertEvent::Lost => "execution",
            AlertEvent::HostsFailed => "hosts",
            AlertEvent::Stuck | AlertEvent::Stragglers | AlertEvent::PlatformUnreachable => {
                "condition"
            }
            AlertEvent::Skipped => "schedule",
        }
    }

    /// Severity unless a rule sets another.
    pub fn default_severity(self) -> &'static str {
        match self {
            AlertEvent::TriggerFailed
            | AlertEvent::Failed
            | AlertEvent::TimedOut
            | AlertEvent::Lost
            | AlertEvent::PlatformUnreachable => "critical",
            AlertEvent::HostsFailed
            | AlertEvent::Stuck
            | AlertEvent::Stragglers
            | AlertEvent::Skipped => "warning",
        }
    }

    /// The condition an event stands for (`stuck`, `stragglers`, `platform_unreachable`).
    pub fn condition(self) -> Option<ConditionKind> {
        match self {
            AlertEvent::Stuck => Some(ConditionKind::Stuck),
            AlertEvent::Stragglers => Some(ConditionKind::Stragglers),
            AlertEvent::PlatformUnreachable => Some(ConditionKind::PlatformUnreachable),
            _ => None,
        }
    }
}

/// One host in an alert's host table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HostLine {
    /// As shown in reports.
    pub host: String,
    /// Raw platform status, if any.
    pub status: Option<i64>,
    /// Its English label.
    pub status_label: String,
    /// Normalized outcome (`success`, `failed`, …).
    pub outcome: HostOutcome,
    /// Script exit code.
    pub exit_code: Option<i64>,
}

/// A failing host's log tail, bounded and redacted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogTailView {
    /// The host.
    pub host: String,
    /// The last lines.
    pub text: String,
    /// Whether earlier output was left out.
    pub truncated: bool,
}

/// Why an alert fires: the execution that caused (or last refreshed) it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AlertCause {
    /// One line: names the check and the reason.
    pub summary: String,
    /// The reason in full.
    pub description: String,
    /// The execution.
    pub execution_id: String,
    /// Its job instance, if one exists.
    pub job_instance_id: Option<u64>,
    /// Its Salt job id, on a Salt platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jid: Option<String>,
    /// Its state when the alert was raised.
    pub state: ExecutionState,
    /// RFC 3339 start of the execution.
    pub started_at: String,
    /// Hosts, failing first, at most `alerts.max_hosts`.
    pub hosts: Vec<HostLine>,
    /// How many hosts the execution had.
    pub hosts_total: usize,
    /// How many of them did not succeed.
    pub hosts_failed: usize,
    /// Log tails of failing hosts (bounded, redacted).
    pub log_tails: Vec<LogTailView>,
}

/// Firing or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// Held by at least one holder.
    Firing,
    /// Held by none.
    Resolved,
}

impl AlertStatus {
    /// `firing` / `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }

    /// Parses a stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "firing" => Some(AlertStatus::Firing),
            "resolved" => Some(AlertStatus::Resolved),
            _ => None,
        }
    }
}

/// Where an alert goes: one receiver of one matching route, with the route's timers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Target {
    /// Receiver name.
    pub receiver: String,
    /// Route index + grouping label values: notifications with the same key go out together.
    pub group_key: String,
    /// Route `group_wait`, ms.
    pub group_wait_ms: i64,
    /// Route `group_interval`, ms.
    pub group_interval_ms: i64,
    /// Route `repeat_interval`, ms.
    pub repeat_interval_ms: i64,
    /// The receiver wants resolved notifications.
    #[serde(default = "yes")]
    pub send_resolved: bool,
}

fn yes() -> bool {
    true
}

/// An alert's stored state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Alert {
    /// Hash of `labels`.
    pub fingerprint: String,
    /// Stable labels.
    pub labels: BTreeMap<String, String>,
    /// Firing or resolved.
    pub status: AlertStatus,
    /// Who holds it (empty when resolved).
    pub holders: Vec<String>,
    /// When it (last) started firing, Unix ms.
    pub starts_at_ms: i64,
    /// When it resolved, Unix ms.
    pub ends_at_ms: Option<i64>,
    /// Last change, Unix ms.
    pub updated_at_ms: i64,
    /// The latest cause.
    pub cause: AlertCause,
    /// Why it resolved.
    pub resolution: Option<String>,
    /// Where it is routed (as of its latest change).
    pub targets: Vec<Target>,
}
