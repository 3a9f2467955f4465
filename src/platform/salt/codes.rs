//! jobwatch's codes for what Salt says of a job and its hosts. Salt has no status codes of its
//! own: a host has returned (with its `retcode`) or it has not, and only a probe tells running,
//! gone and unreachable apart (salt/API.md §4). These codes name those cases so that a Salt
//! host is stored and shown like a bk-job one — a code, its labels, its outcome — while the
//! raw facts (`retcode`, `success`, the probe's answer) are kept beside it
//! ([`crate::model::HostStatus::facts`]).

use std::borrow::Cow;

use crate::model::{HostOutcome, Label};

/// In `info[0].Minions`, not in `Result`, no probe answer yet.
pub const NOT_RETURNED: i64 = 1;
/// Not returned; the last `saltutil.find_job` probe found the job's process (a `pid`).
pub const RUNNING: i64 = 2;
/// Returned, `return.retcode` 0.
pub const SUCCEEDED: i64 = 3;
/// Returned, `return.retcode` not 0.
pub const FAILED: i64 = 4;
/// Returned a string, not a script result: a Salt-level error (a missing function, a
/// refused `runas`, …); the string is the host's log (salt/API.md §3, "Other edge results").
pub const SALT_ERROR: i64 = 5;
/// Returned after Salt's own `timeout` killed the script (`Timed out after N seconds` with
/// inner `retcode` 1, while the outer `success` says true: salt/API.md §6.5).
pub const SALT_TIMEOUT: i64 = 6;
/// Requested but absent from the job's `Minions`: no accepted key (list targeting drops
/// unknown ids silently).
pub const NO_KEY: i64 = 7;
/// Not returned and silent to two probes in a row: the minion is down or cut off (bk-job's
/// 310 class).
pub const UNREACHABLE: i64 = 8;
/// Not returned, and two probes in a row found the minion alive but not running the job: it
/// never got it, restarted, or lost the result (Salt never replays a job).
pub const LOST: i64 = 9;
/// `saltutil.term_job` sent; the job's process still runs.
pub const TERMINATING: i64 = 10;
/// Stopped by jobwatch (`term_job`, then `kill_job`): Salt never reports such a host.
pub const TERMINATED: i64 = 11;

/// Job: some host has not ended.
pub const JOB_RUNNING: i64 = 2;
/// Job: every host succeeded.
pub const JOB_SUCCEEDED: i64 = 3;
/// Job: every host ended, some did not succeed.
pub const JOB_FAILED: i64 = 4;
/// Job: jobwatch terminated it and every host ended.
pub const JOB_TERMINATED: i64 = 5;

fn label(en: &'static str, zh: &'static str) -> Label {
    Label {
        en: Cow::Borrowed(en),
        zh: Cow::Borrowed(zh),
    }
}

/// The outcome and labels of host code `code` (an unknown code is `unknown`, never success).
pub fn host_outcome(code: i64) -> (HostOutcome, Label) {
    match code {
        NOT_RETURNED => (HostOutcome::Running, label("Not returned yet", "尚未返回")),
        RUNNING => (HostOutcome::Running, label("Running", "执行中")),
        SUCCEEDED => (HostOutcome::Success, label("Returned, exit 0", "执行成功")),
        FAILED => (
            HostOutcome::Failed,
            label("Returned, non-zero exit", "执行失败"),
        ),
        SALT_ERROR => (HostOutcome::Failed, label("Salt error", "Salt 执行错误")),
        SALT_TIMEOUT => (
            HostOutcome::Timeout,
            label("Timed out (Salt's timeout)", "执行超时"),
        ),
        NO_KEY => (
            HostOutcome::AgentError,
            label("No accepted minion key", "Minion 未注册"),
        ),
        UNREACHABLE => (
            HostOutcome::AgentError,
            label("Minion unreachable", "Minion 无响应"),
        ),
        LOST => (
            HostOutcome::Unknown,
            label("Result lost (minion not running the job)", "结果丢失"),
        ),
        TERMINATING => (HostOutcome::Running, label("Terminating", "终止中")),
        TERMINATED => (HostOutcome::Terminated, label("Terminated", "已终止")),
        other => (
            HostOutcome::Unknown,
            Label {
                en: Cow::Owned(format!("Unknown Salt host code {other}")),
                zh: Cow::Owned(format!("未知状态 {other}")),
            },
        ),
    }
}

/// The labels of job code `code`.
pub fn job_label(code: i64) -> Label {
    match code {
        JOB_RUNNING => label("Running", "正在执行"),
        JOB_SUCCEEDED => label("Succeeded", "执行成功"),
        JOB_FAILED => label("Failed", "执行失败"),
        JOB_TERMINATED => label("Terminated", "强制终止"),
        other => Label {
            en: Cow::Owned(format!("Unknown Salt job code {other}")),
            zh: Cow::Owned(format!("未知状态 {other}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_label_and_only_a_clean_exit_is_success() {
        for code in 1..=11 {
            let (outcome, label) = host_outcome(code);
            assert!(!label.en.starts_with("Unknown Salt"), "{code}");
            assert_eq!(outcome == HostOutcome::Success, code == SUCCEEDED, "{code}");
        }
        assert_eq!(host_outcome(99).0, HostOutcome::Unknown);
        assert_eq!(job_label(99).en, "Unknown Salt job code 99");
    }
}
