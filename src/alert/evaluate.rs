//! Which alerts a saved execution takes or releases (see the module note of [`super`]), and
//! their cause: the execution, its host table and bounded, redacted log tails.

use super::*;
use crate::model::report::{ExecutionReport, Origin};
use crate::model::{ExecutionState, HostOutcome};

/// The holder of outcome and schedule alerts: the check's latest ended execution.
const CHECK_HOLDER: &str = "check";

/// How an alert family is held (see the module note).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Outcome,
    Condition,
    Schedule,
}

impl AlertEvent {
    fn family(self) -> Family {
        match self.class() {
            "condition" => Family::Condition,
            "schedule" => Family::Schedule,
            _ => Family::Outcome,
        }
    }
}

impl Alerting {
    /// The alert changes a saved `report` causes (see the module note). Empty for most
    /// saves of a running execution.
    pub fn evaluate(&self, report: &ExecutionReport) -> Vec<AlertChange> {
        let mut changes = Vec::new();
        let state = report.state;
        for event in AlertEvent::ALL {
            let (holder, holds, relevant) = match event.family() {
                Family::Outcome => {
                    // Once the failing hosts' logs are in (they go into the alert).
                    let ended = state.is_final()
                        && !report.logs_pending
                        && !matches!(state, ExecutionState::Skipped | ExecutionState::Cancelled);
                    let holds = ended && self.outcome_holds(event, report);
                    // Only health resolves: a success lets go of every outcome alert it does
                    // not hold; another failure leaves the others firing.
                    let relevant = holds || (ended && state == ExecutionState::Succeeded);
                    (CHECK_HOLDER.to_owned(), holds, relevant)
                }
                Family::Condition => {
                    let kind = event.condition().expect("condition event");
                    let holds =
                        !state.is_final() && report.conditions.iter().any(|c| c.kind == kind);
                    // Only an execution that ever had the condition can hold its alert.
                    let relevant = report
                        .condition_log
                        .iter()
                        .any(|c| c.condition.kind == kind)
                        || holds;
                    (report.execution_id.clone(), holds, relevant)
                }
                Family::Schedule => {
                    // A tick skipped on purpose (a maintenance window) says nothing either way.
                    if report.trigger_status == crate::model::TriggerStatus::Maintenance {
                        continue;
                    }
                    let skipped = state == ExecutionState::Skipped;
                    let later_tick_runs =
                        state == ExecutionState::Pending && report.origin == Origin::Schedule;
                    (CHECK_HOLDER.to_owned(), skipped, skipped || later_tick_runs)
                }
            };
            if !relevant {
                continue;
            }
            let Some(labels) = self.labels(event, report) else {
                continue;
            };
            let targets = self.route(&labels);
            changes.push(AlertChange {
                fingerprint: fingerprint(&labels),
                labels,
                holder,
                cause: holds.then(|| self.cause(event, report)),
                note: resolution_note(event, report),
                targets,
            });
        }
        changes
    }

    fn outcome_holds(&self, event: AlertEvent, r: &ExecutionReport) -> bool {
        match event {
            AlertEvent::TriggerFailed => r.state == ExecutionState::TriggerFailed,
            AlertEvent::Failed => r.state == ExecutionState::Failed,
            AlertEvent::TimedOut => r.state == ExecutionState::TimedOut,
            AlertEvent::Lost => r.state == ExecutionState::Lost,
            AlertEvent::HostsFailed => {
                r.state == ExecutionState::Succeeded
                    && r.hosts.iter().any(|h| h.outcome != HostOutcome::Success)
            }
            _ => false,
        }
    }

    /// The cause of `event` as `report` shows it.
    pub fn cause(&self, event: AlertEvent, r: &ExecutionReport) -> AlertCause {
        let failed: Vec<_> = r
            .hosts
            .iter()
            .filter(|h| h.outcome != HostOutcome::Success)
            .collect();
        let condition = event
            .condition()
            .and_then(|k| r.conditions.iter().find(|c| c.kind == k));
        let description = self.redact(match condition {
            Some(c) => &c.detail,
            None => &r.reason,
        });
        let what = match event {
            AlertEvent::TriggerFailed => "could not start a job",
            AlertEvent::Failed => "failed",
            AlertEvent::TimedOut => "timed out",
            AlertEvent::Lost => "lost its job",
            AlertEvent::HostsFailed => "succeeded with failed hosts",
            AlertEvent::Stuck => "is stuck",
            AlertEvent::Stragglers => "waits on straggling hosts",
            AlertEvent::PlatformUnreachable => "cannot reach its platform",
            AlertEvent::Skipped => "skipped a scheduled run",
        };
        let summary = truncate(
            &format!("check {} on {} {what}: {description}", r.check, r.platform),
            240,
        );
        let mut hosts: Vec<&crate::tracker::report::HostReport> = failed.clone();
        hosts.extend(r.hosts.iter().filter(|h| h.outcome == HostOutcome::Success));
        let hosts = hosts
            .into_iter()
            .take(self.config.max_hosts)
            .map(|h| HostLine {
                host: h.host.clone(),
                status: h.status,
                status_label: h.status_label.clone(),
                outcome: h.outcome,
                exit_code: h.exit_code,
            })
            .collect();
        let log_tails = failed
            .iter()
            .filter(|h| !h.log.is_empty())
            .take(self.config.max_hosts.min(10))
            .map(|h| self.log_tail(&h.host, &h.log, h.log_truncated))
            .collect();
        AlertCause {
            summary,
            description,
            execution_id: r.execution_id.clone(),
            job_instance_id: r.job_instance_id,
            jid: r.jid.clone(),
            state: r.state,
            started_at: r.started_at.clone(),
            hosts,
            hosts_total: r.hosts.len(),
            hosts_failed: failed.len(),
            log_tails,
        }
    }

    /// The last `log_tail_lines` lines of `log`, redacted, then cut to `log_tail_bytes`
    /// from the head at a character boundary.
    fn log_tail(&self, host: &str, log: &str, already_cut: bool) -> LogTailView {
        let lines: Vec<&str> = log.lines().collect();
        let keep = self.config.log_tail_lines.max(1);
        // Redact a few lines more than kept, so that a multi-line secret cut at the top of
        // the window is still recognised.
        let window = lines[lines.len().saturating_sub(keep + 5)..].join("\n");
        let redacted = self.redact(&window);
        let rlines: Vec<&str> = redacted.lines().collect();
        let mut text = rlines[rlines.len().saturating_sub(keep)..].join("\n");
        let mut truncated = already_cut || lines.len() > keep;
        let max = self.config.log_tail_bytes.max(16);
        if text.len() > max {
            let mut start = text.len() - max;
            while !text.is_char_boundary(start) {
                start += 1;
            }
            text = text[start..].to_owned();
            truncated = true;
        }
        LogTailView {
            host: host.to_owned(),
            text,
            truncated,
        }
    }
}

fn resolution_note(event: AlertEvent, r: &ExecutionReport) -> String {
    match event.family() {
        Family::Condition if r.state.is_final() => {
            format!("execution {} ended {}", r.execution_id, r.state.as_str())
        }
        Family::Condition => format!("cleared in execution {}", r.execution_id),
        Family::Schedule => format!("a later tick runs (execution {})", r.execution_id),
        Family::Outcome => format!(
            "execution {} of check {} ended {}",
            r.execution_id,
            r.check,
            r.state.as_str()
        ),
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max_chars - 1).collect();
    out.push('…');
    out
}
