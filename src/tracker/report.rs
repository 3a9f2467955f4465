//! The result of one execution: what `jobwatch exec --output json` prints, and its text form.

use std::fmt::Write as _;
use std::time::Duration;

use crate::config::CheckConfig;
use crate::model::{
    ExecutionState, Host, HostOutcome, HostStatus, JobSnapshot, LogTail, TriggerStatus,
};
use crate::platform::{JobRef, PlatformError};

pub use crate::model::report::{ExecutionReport, HostReport, Origin};

impl HostReport {
    /// A configured host the platform has not reported yet.
    pub fn unreported(host: Host) -> Self {
        HostReport {
            host: host.to_string(),
            identity: host,
            status: None,
            status_label: "Not reported".to_owned(),
            status_label_zh: "未上报".to_owned(),
            outcome: HostOutcome::Waiting,
            exit_code: None,
            error_code: None,
            tag: None,
            duration_seconds: None,
            log: String::new(),
            log_truncated: false,
            log_bytes: 0,
            log_error: None,
            facts: None,
        }
    }

    /// Takes in what one answer said of this host (identity fields are completed, never
    /// dropped; the log is kept). Returns whether anything a reader sees changed. Labels are
    /// copied only when the status code changed.
    pub fn update(&mut self, s: &HostStatus) -> bool {
        let mut changed = false;
        let before = (
            self.identity.bk_host_id,
            self.identity.bk_cloud_id,
            self.identity.ip.is_some(),
            self.identity.minion_id.is_some(),
        );
        self.identity.merge_from(&s.host);
        if before
            != (
                self.identity.bk_host_id,
                self.identity.bk_cloud_id,
                self.identity.ip.is_some(),
                self.identity.minion_id.is_some(),
            )
        {
            self.host = self.identity.to_string();
            changed = true;
        }
        if self.status != Some(s.status) {
            self.status = Some(s.status);
            self.status_label = s.label.en.to_string();
            self.status_label_zh = s.label.zh.to_string();
            changed = true;
        }
        let tag = s.tag.as_deref().filter(|t| !t.is_empty());
        let duration = s.duration.map(|d| d.as_secs_f64());
        if self.outcome != s.outcome
            || self.exit_code != s.exit_code
            || self.error_code != s.error_code
            || self.tag.as_deref() != tag
            || self.duration_seconds != duration
        {
            self.outcome = s.outcome;
            self.exit_code = s.exit_code;
            self.error_code = s.error_code;
            self.tag = tag.map(str::to_owned);
            self.duration_seconds = duration;
            changed = true;
        }
        if self.facts != s.facts {
            self.facts.clone_from(&s.facts);
            changed = true;
        }
        changed
    }
}

pub use crate::time::rfc3339_ms;

impl ExecutionReport {
    /// A report for an execution about to be submitted.
    pub fn new(
        execution_id: String,
        check: &CheckConfig,
        platform: &str,
        platform_kind: &str,
        task_name: &str,
    ) -> Self {
        let started_at_ms = crate::time::now_ms();
        ExecutionReport {
            execution_id,
            origin: Origin::Cli,
            scheduled_at_ms: None,
            check: check.name.clone(),
            platform: platform.to_owned(),
            platform_kind: platform_kind.to_owned(),
            task_name: task_name.to_owned(),
            trigger_status: TriggerStatus::Pending,
            trigger_code: None,
            trigger_message: None,
            submit_marked_at_ms: None,
            job_instance_id: None,
            step_instance_id: None,
            jid: None,
            job_status: None,
            job_status_label: None,
            state: ExecutionState::Pending,
            reason: String::new(),
            started_at: rfc3339_ms(started_at_ms),
            ended_at: String::new(),
            duration_seconds: 0.0,
            polls: 0,
            failed_polls: 0,
            last_platform_error: None,
            conditions: Vec::new(),
            condition_log: Vec::new(),
            hosts: check
                .hosts
                .iter()
                .map(|h| HostReport::unreported(h.clone()))
                .collect(),
            started_at_ms,
            timeout_seconds: check.timeout.as_secs(),
            logs_pending: false,
            next_poll_at_ms: None,
            terminated_by: None,
            fence: None,
        }
    }

    /// Takes in a status answer: job status, step, and every host, in place (configured
    /// hosts are matched by id or by control area + IP; hosts the platform adds — topology
    /// targets — are appended; logs are kept). Returns whether anything a reader sees
    /// changed.
    pub fn merge_snapshot(&mut self, s: &JobSnapshot, step: Option<u64>) -> bool {
        let mut changed = false;
        if self.job_status != Some(s.status) {
            self.job_status = Some(s.status);
            self.job_status_label = Some(s.label.en.to_string());
            changed = true;
        }
        if step.is_some() && self.step_instance_id != step {
            self.step_instance_id = step;
            changed = true;
        }
        for reported in &s.hosts {
            let i = match self
                .hosts
                .iter()
                .position(|h| h.identity.same_as(&reported.host))
            {
                Some(i) => i,
                None => {
                    self.hosts
                        .push(HostReport::unreported(reported.host.clone()));
                    changed = true;
                    self.hosts.len() - 1
                }
            };
            changed |= self.hosts[i].update(reported);
        }
        changed
    }

    /// At the end, a host the platform never reported is `unknown`, not `waiting`.
    pub fn mark_unreported_unknown(&mut self) {
        for h in self.hosts.iter_mut().filter(|h| h.status.is_none()) {
            h.outcome = HostOutcome::Unknown;
        }
    }

    /// Records the accepted submit.
    pub fn triggered(&mut self, job: &JobRef) {
        self.trigger_status = TriggerStatus::Triggered;
        self.job_instance_id = job.job_instance_id;
        self.jid.clone_from(&job.jid);
        self.step_instance_id = job.step_instance_id;
        self.state = ExecutionState::Running;
    }

    /// Records a submit that failed (or whose effect stayed unknown).
    pub fn trigger_failed(&mut self, status: TriggerStatus, e: &PlatformError, elapsed: Duration) {
        self.trigger_status = status;
        self.trigger_code = e.code;
        self.trigger_message = Some(e.message.clone());
        let reason = match status {
            TriggerStatus::TriggerUnknown => format!(
                "the submit may have created a job but that could not be confirmed ({e}); look for task_name \"{}\" on the platform before running again",
                self.task_name
            ),
            _ => match e.code {
                Some(code) => format!("the platform refused the job: code {code}: {}", e.message),
                None => format!("the platform could not be reached to submit the job: {e}"),
            },
        };
        self.finish(ExecutionState::TriggerFailed, reason, elapsed);
        self.mark_unreported_unknown();
    }

    /// Records the final state.
    pub fn finish(&mut self, state: ExecutionState, reason: String, elapsed: Duration) {
        self.state = state;
        self.reason = reason;
        self.duration_seconds = elapsed.as_secs_f64();
        self.ended_at = rfc3339_ms(self.started_at_ms + elapsed.as_millis() as i64);
    }

    /// The report for people: a header, the per-host table, the last log lines of each host
    /// (failing hosts first), and the reason.
    pub fn to_text(&self, log_lines: usize) -> String {
        let mut out = String::new();
        let job = match (&self.jid, self.job_instance_id) {
            (Some(jid), _) => format!("jid {jid}"),
            (None, Some(id)) => format!("job_instance_id {id}"),
            (None, None) => "job_instance_id -".to_owned(),
        };
        let _ = writeln!(
            out,
            "check {}  platform {} ({})  execution {}",
            self.check, self.platform, self.platform_kind, self.execution_id
        );
        let _ = writeln!(
            out,
            "trigger {}  {job}  job status {}  polls {} ({} failed)  {:.1}s",
            self.trigger_status.as_str(),
            match (&self.job_status, &self.job_status_label) {
                (Some(c), Some(l)) => format!("{c} {l}"),
                _ => "-".to_owned(),
            },
            self.polls,
            self.failed_polls,
            self.duration_seconds
        );
        if (self.job_instance_id.is_some() || self.jid.is_some()) && !self.hosts.is_empty() {
            let rows: Vec<[String; 5]> = self
                .hosts
                .iter()
                .map(|h| {
                    [
                        h.host.clone(),
                        match h.status {
                            Some(s) => format!("{s} {}", h.status_label),
                            None => h.status_label.clone(),
                        },
                        h.outcome.to_string(),
                        h.exit_code.map_or_else(|| "-".into(), |c| c.to_string()),
                        h.duration_seconds
                            .map_or_else(|| "-".into(), |d| format!("{d:.1}s")),
                    ]
                })
                .collect();
            let header = ["HOST", "STATUS", "OUTCOME", "EXIT", "TIME"];
            let widths: Vec<usize> = (0..5)
                .map(|i| {
                    rows.iter()
                        .map(|r| r[i].chars().count())
                        .chain([header[i].len()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let line = |cells: [&str; 5]| {
                let mut l = String::new();
                for (i, c) in cells.iter().enumerate() {
                    let _ = write!(l, "{c:<w$}  ", w = widths[i]);
                }
                l.trim_end().to_owned()
            };
            let _ = writeln!(out, "\n{}", line(header));
            for r in &rows {
                let _ = writeln!(out, "{}", line([&r[0], &r[1], &r[2], &r[3], &r[4]]));
            }
            let mut order: Vec<&HostReport> = self.hosts.iter().collect();
            order.sort_by_key(|h| !h.outcome.is_failure());
            for h in order {
                if h.log.is_empty() && h.log_error.is_none() {
                    continue;
                }
                let _ = writeln!(out, "\n--- {} ({}) last log lines ---", h.host, h.outcome);
                if let Some(e) = &h.log_error {
                    let _ = writeln!(out, "[no log: {e}]");
                }
                let tail = LogTail {
                    text: h.log.clone(),
                    truncated: h.log_truncated,
                    total_bytes: h.log_bytes,
                };
                for l in tail.last_lines(log_lines) {
                    let _ = writeln!(out, "{l}");
                }
            }
        }
        let _ = writeln!(
            out,
            "\n{}: {}",
            self.state.as_str().to_uppercase(),
            self.reason
        );
        out
    }
}
