//! bk-job's status tables as data: job/step status (API.md §9.1) and per-host status
//! (API.md §9.2), each with the platform's English and Chinese labels, plus the
//! classification of envelope error codes (API.md §2.4).
//!
//! An unknown code is never a panic and never a success: it gets a generated label, the
//! `unknown` outcome, and an [`crate::internal_events::UnknownStatusCode`]
//! event that logs and counts it.

use crate::internal_events::{StatusTable, UnknownStatusCode};
use crate::model::{HostOutcome, Label};

/// One row of the job/step status table (API.md §9.1, `RunStatusEnum`).
#[derive(Debug, Clone, Copy)]
pub struct JobStatusInfo {
    /// The code.
    pub code: i64,
    /// The Java enum name.
    pub name: &'static str,
    /// Chinese label.
    pub zh: &'static str,
    /// English label.
    pub en: &'static str,
    /// Whether the platform counts it finished (`FINISHED_STATUS_SET`).
    pub finished: bool,
}

const fn job(
    code: i64,
    name: &'static str,
    zh: &'static str,
    en: &'static str,
    finished: bool,
) -> JobStatusInfo {
    JobStatusInfo {
        code,
        name,
        zh,
        en,
        finished,
    }
}

/// Job and step instance statuses, API.md §9.1. There is no 12.
pub const JOB_STATUSES: &[JobStatusInfo] = &[
    job(1, "BLANK", "等待执行", "Pending", false),
    job(2, "RUNNING", "正在执行", "Running", false),
    job(3, "SUCCESS", "执行成功", "Success", true),
    job(4, "FAIL", "执行失败", "Failed", true),
    job(5, "SKIPPED", "跳过", "Skipped", true),
    job(6, "IGNORE_ERROR", "忽略错误", "Ignore Error", true),
    job(7, "WAITING_USER", "等待确认", "Waiting", false),
    job(8, "TERMINATED", "手动结束", "Terminated", true),
    job(9, "ABNORMAL_STATE", "状态异常", "Abnormal", true),
    job(10, "STOPPING", "强制终止中", "Terminating", false),
    job(
        11,
        "STOP_SUCCESS",
        "强制终止成功",
        "Terminate Success",
        true,
    ),
    job(
        13,
        "CONFIRM_TERMINATED",
        "确认终止",
        "Termination Confirmed",
        true,
    ),
    job(14, "ABANDONED", "被丢弃", "Abandoned", true),
    job(15, "ROLLING_WAITING", "滚动等待", "Rolling Waiting", false),
];

/// One row of the per-host status table (API.md §9.2, `ExecuteObjectTaskStatusEnum`).
#[derive(Debug, Clone, Copy)]
pub struct HostStatusInfo {
    /// The code.
    pub code: i64,
    /// The Java enum name.
    pub name: &'static str,
    /// Chinese label.
    pub zh: &'static str,
    /// English label.
    pub en: &'static str,
    /// What the code means for jobwatch.
    pub outcome: HostOutcome,
}

const fn host(
    code: i64,
    name: &'static str,
    zh: &'static str,
    en: &'static str,
    outcome: HostOutcome,
) -> HostStatusInfo {
    HostStatusInfo {
        code,
        name,
        zh,
        en,
        outcome,
    }
}

use HostOutcome::{AgentError, Failed, Running, Success, Terminated, Timeout, Unknown, Waiting};

/// Per-host statuses, API.md §9.2. Success ⇔ 9 or 3; finished ⇔ not 5 or 7.
pub const HOST_STATUSES: &[HostStatusInfo] = &[
    host(0, "UNKNOWN_ERROR", "未知错误", "Unknown Error", Unknown),
    host(1, "AGENT_ERROR", "Agent 异常", "Abnormal Agent", AgentError),
    host(
        2,
        "INVALID_EXECUTE_OBJECT",
        "无效执行对象",
        "Invalid Execute Object",
        Failed,
    ),
    host(
        3,
        "LAST_SUCCESS",
        "上次已成功",
        "Successful Last Time",
        Success,
    ),
    host(5, "WAITING", "等待执行", "Waiting", Waiting),
    host(7, "RUNNING", "正在执行", "Running", Running),
    host(9, "SUCCESS", "执行成功", "Success", Success),
    host(11, "FAILED", "执行失败", "Failed", Failed),
    host(
        12,
        "SUBMIT_FAILED",
        "任务下发失败",
        "Task send failed",
        Failed,
    ),
    host(13, "TASK_TIMEOUT", "任务超时", "Task Timeout", Timeout),
    host(15, "LOG_ERROR", "任务日志错误", "Error in Log", Failed),
    host(
        16,
        "GSE_SCRIPT_TIMEOUT",
        "GSE脚本日志超时",
        "Script Log Timeout",
        Timeout,
    ),
    host(
        17,
        "GSE_FILE_TIMEOUT",
        "GSE文件日志超时",
        "File Log Timeout",
        Timeout,
    ),
    host(
        18,
        "AGENT_NOT_INSTALLED",
        "Agent 未安装",
        "Agent not installed",
        AgentError,
    ),
    host(
        101,
        "SCRIPT_FAILED",
        "脚本执行失败",
        "Script Execution Failed",
        Failed,
    ),
    host(
        102,
        "SCRIPT_TIMEOUT",
        "脚本执行超时",
        "Script Execution Timeout",
        Timeout,
    ),
    host(
        103,
        "SCRIPT_TERMINATE",
        "脚本执行被终止",
        "Script Execution Terminated",
        Terminated,
    ),
    host(
        104,
        "SCRIPT_NOT_ZERO_EXIT_CODE",
        "脚本返回码非零",
        "Non-zero Exit Code",
        Failed,
    ),
    host(
        202,
        "COPYFILE_FAILED",
        "文件传输失败",
        "File Transmission Failed",
        Failed,
    ),
    host(
        203,
        "COPYFILE_SOURCE_FILE_NOT_EXIST",
        "源文件不存在",
        "Source File Not Exists",
        Failed,
    ),
    host(
        301,
        "FILE_ERROR_UNCLASSIFIED",
        "文件任务系统错误",
        "Unclassified File Failure",
        Failed,
    ),
    host(
        303,
        "GSE_TIMEOUT",
        "文件任务超时",
        "File Transmission Timeout",
        Timeout,
    ),
    host(
        310,
        "GSE_AGENT_ERROR",
        "Agent 异常",
        "Abnormal Agent",
        AgentError,
    ),
    host(
        311,
        "GSE_USER_ERROR",
        "用户名不存在",
        "User not exist",
        Failed,
    ),
    host(
        312,
        "GSE_USER_PWD_ERROR",
        "用户密码错误",
        "User password incorrect",
        Failed,
    ),
    host(
        320,
        "GSE_FILE_ERROR",
        "文件获取失败",
        "File pull failed",
        Failed,
    ),
    host(
        321,
        "GSE_FILE_SIZE_EXCEED",
        "文件超出限制",
        "File size exceeds limit",
        Failed,
    ),
    host(
        329,
        "GSE_FILE_TASK_ERROR",
        "文件传输错误",
        "File Transmission Error",
        Failed,
    ),
    host(
        399,
        "GSE_TASK_ERROR",
        "任务执行出错",
        "Execution Error",
        Failed,
    ),
    host(
        403,
        "GSE_TASK_TERMINATE_SUCCESS",
        "任务强制终止成功",
        "Force Terminated",
        Terminated,
    ),
    host(
        404,
        "GSE_TASK_TERMINATE_FAILED",
        "任务强制终止失败",
        "Force Terminate Failed",
        Failed,
    ),
    host(500, "UNKNOWN", "未知状态", "Unknown", Unknown),
];

/// The row for job/step status `code`, if the table has it.
pub fn job_status(code: i64) -> Option<&'static JobStatusInfo> {
    JOB_STATUSES.iter().find(|s| s.code == code)
}

/// The row for host status `code`, if the table has it.
pub fn host_status(code: i64) -> Option<&'static HostStatusInfo> {
    HOST_STATUSES.iter().find(|s| s.code == code)
}

/// Label of job status `code`; an unknown code gets a generated label and is counted.
pub fn job_label(code: i64) -> Label {
    match job_status(code) {
        Some(s) => Label {
            en: s.en.into(),
            zh: s.zh.into(),
        },
        None => {
            UnknownStatusCode {
                table: StatusTable::Job,
                code,
            }
            .emit();
            Label {
                en: format!("Unrecognised job status {code}").into(),
                zh: format!("未识别的作业状态 {code}").into(),
            }
        }
    }
}

/// Outcome and label of host status `code`; an unknown code is `unknown` (terminal, never a
/// success, as bk-job's own enum decodes it: API.md §9.2) and is counted.
pub fn host_outcome(code: i64) -> (HostOutcome, Label) {
    match host_status(code) {
        Some(s) => (
            s.outcome,
            Label {
                en: s.en.into(),
                zh: s.zh.into(),
            },
        ),
        None => {
            UnknownStatusCode {
                table: StatusTable::Host,
                code,
            }
            .emit();
            (
                HostOutcome::Unknown,
                Label {
                    en: format!("Unrecognised host status {code}").into(),
                    zh: format!("未识别的主机状态 {code}").into(),
                },
            )
        }
    }
}

/// bk-job's "job instance not found" (API.md §2.4 `TASK_INSTANCE_NOT_EXIST`).
pub const TASK_INSTANCE_NOT_EXIST: i64 = 1244006;

/// Envelope codes that say the platform itself is momentarily unwell rather than that the
/// request is wrong: GSE down, service unavailable, internal error, log service failure
/// (API.md §2.4). Retried; they never fail a job.
pub fn is_transient_envelope_code(code: i64) -> bool {
    matches!(code, 1210001 | 1240001 | 1240002 | 1246001)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_have_unique_codes() {
        for (i, a) in JOB_STATUSES.iter().enumerate() {
            assert!(
                JOB_STATUSES[i + 1..].iter().all(|b| b.code != a.code),
                "duplicate job status {}",
                a.code
            );
        }
        for (i, a) in HOST_STATUSES.iter().enumerate() {
            assert!(
                HOST_STATUSES[i + 1..].iter().all(|b| b.code != a.code),
                "duplicate host status {}",
                a.code
            );
        }
    }

    #[test]
    fn finished_job_statuses_match_the_api() {
        // API.md §4: `finished` is true for 3,4,5,6,8,9,11,13,14 and false for 1,2,7,10,15.
        let finished: Vec<i64> = JOB_STATUSES
            .iter()
            .filter(|s| s.finished)
            .map(|s| s.code)
            .collect();
        assert_eq!(finished, vec![3, 4, 5, 6, 8, 9, 11, 13, 14]);
        assert!(job_status(12).is_none());
    }

    #[test]
    fn host_success_and_finished_sets_match_the_api() {
        // API.md §9.2: success ⇔ {9, 3}; finished ⇔ not {5, 7}.
        for s in HOST_STATUSES {
            assert_eq!(
                s.outcome == Success,
                matches!(s.code, 3 | 9),
                "code {}",
                s.code
            );
            assert_eq!(
                s.outcome.is_final(),
                !matches!(s.code, 5 | 7),
                "code {}",
                s.code
            );
        }
        assert_eq!(host_outcome(310).0, HostOutcome::AgentError);
        assert_eq!(host_outcome(104).0, HostOutcome::Failed);
        assert_eq!(host_outcome(104).1.en, "Non-zero Exit Code");
        assert_eq!(host_outcome(102).0, HostOutcome::Timeout);
    }

    #[test]
    fn unknown_codes_are_kept_labelled_and_never_success() {
        let before = crate::internal_events::unknown_status_codes_seen();
        let (outcome, label) = host_outcome(777);
        assert_eq!(outcome, HostOutcome::Unknown);
        assert!(outcome.is_failure());
        assert!(label.en.contains("777"));
        assert!(job_label(12).en.contains("12"));
        assert!(crate::internal_events::unknown_status_codes_seen() >= before + 2);
    }
}
