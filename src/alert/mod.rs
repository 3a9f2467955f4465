//! Alert semantics: which events alert, their stable labels and fingerprint, when an alert
//! fires and when it resolves, and which receivers it is routed to.
//!
//! Everything here is a pure function of (execution report, configuration, now). The store
//! applies the resulting [`AlertChange`]s in the same transaction as the execution's state
//! change ([`crate::store::Store::record`]), and queues a notification per routed receiver on
//! each transition (the outbox); [`crate::notify`] delivers.
//!
//! **Model** (Alertmanager's): an alert is identified by its labels (`alertname`, `check`,
//! `platform`, `severity`, `class`, plus static rule labels) → a [`fingerprint`]. It is
//! *firing* while at least one *holder* holds it, *resolved* once none does:
//! * outcome alerts (`trigger_failed`, `failed`, `timed_out`, `lost`, `hosts_failed`) are held
//!   for the check by its failing executions, and resolve on health: when a later execution
//!   of the check **succeeds** (`hosts_failed`: succeeds with every host). Another failure
//!   (trigger failed, lost, timed out) keeps them firing and raises its own. `cancelled`
//!   changes nothing.
//! * condition alerts (`stuck`, `stragglers`, `platform_unreachable`) are held by each
//!   running execution that has the condition; they resolve when the last one clears it or
//!   ends.
//! * `skipped` (a scheduled tick that did not run: overlap, or missed while jobwatch was down)
//!   is held until a later tick of the check runs.

pub mod render;

pub use crate::model::alert::{
    Alert, AlertCause, AlertEvent, AlertStatus, HostLine, LogTailView, SEVERITIES, STABLE_LABELS,
    Target,
};

use std::collections::BTreeMap;

use sha2::Digest as _;

use crate::config::{AlertsConfig, Config};
use crate::model::{ExecutionState, HostOutcome};
use crate::tracker::ExecutionReport;
use crate::tracker::report::Origin;

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

/// The fingerprint of a label set: the first 16 hex digits of SHA-256 over the sorted
/// `name=value` pairs, each followed by a 0xff byte (stable across restarts and versions).
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    let mut hash = sha2::Sha256::new();
    for (name, value) in labels {
        hash.update(name.as_bytes());
        hash.update(b"=");
        hash.update(value.as_bytes());
        hash.update([0xff]);
    }
    hex::encode(&hash.finalize()[..8])
}

/// One holder taking or releasing one alert.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertChange {
    /// The alert.
    pub fingerprint: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Execution id, or the check for outcome/schedule alerts.
    pub holder: String,
    /// `Some` = hold with this cause; `None` = release.
    pub cause: Option<AlertCause>,
    /// Why it is released (shown when it resolves).
    pub note: String,
    /// Routed receivers.
    pub targets: Vec<Target>,
}

/// What applying a change did.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// Nothing to write.
    Unchanged,
    /// Stored detail changed (holders, cause), no transition.
    Updated(Alert),
    /// It started firing: notify.
    Fired(Alert),
    /// It resolved: notify.
    Resolved(Alert),
}

/// Applies `change` to the stored alert `prev` at `now_ms`.
pub fn apply(prev: Option<Alert>, change: &AlertChange, now_ms: i64) -> Applied {
    match (prev, &change.cause) {
        (None, None) => Applied::Unchanged,
        (prev, Some(cause)) => {
            let was_firing = prev
                .as_ref()
                .is_some_and(|a| a.status == AlertStatus::Firing);
            let mut alert = prev.unwrap_or_else(|| Alert {
                fingerprint: change.fingerprint.clone(),
                labels: change.labels.clone(),
                status: AlertStatus::Resolved,
                holders: Vec::new(),
                starts_at_ms: now_ms,
                ends_at_ms: None,
                updated_at_ms: now_ms,
                cause: cause.clone(),
                resolution: None,
                targets: Vec::new(),
            });
            if was_firing
                && alert.holders.contains(&change.holder)
                && alert.cause == *cause
                && alert.targets == change.targets
            {
                return Applied::Unchanged;
            }
            if !alert.holders.contains(&change.holder) {
                alert.holders.push(change.holder.clone());
            }
            alert.cause = cause.clone();
            alert.targets = change.targets.clone();
            alert.updated_at_ms = now_ms;
            if was_firing {
                Applied::Updated(alert)
            } else {
                alert.status = AlertStatus::Firing;
                alert.starts_at_ms = now_ms;
                alert.ends_at_ms = None;
                alert.resolution = None;
                Applied::Fired(alert)
            }
        }
        (Some(mut alert), None) => {
            let before = alert.holders.len();
            alert.holders.retain(|h| h != &change.holder);
            if alert.holders.len() == before {
                return Applied::Unchanged;
            }
            alert.updated_at_ms = now_ms;
            if alert.holders.is_empty() && alert.status == AlertStatus::Firing {
                alert.status = AlertStatus::Resolved;
                alert.ends_at_ms = Some(now_ms);
                alert.resolution = Some(change.note.clone());
                alert.targets = change.targets.clone();
                Applied::Resolved(alert)
            } else {
                Applied::Updated(alert)
            }
        }
    }
}

/// The alert rules, routes and redactions of a configuration, ready to evaluate reports.
/// Its `Debug` leaves the secrets out.
#[derive(Clone, Default)]
pub struct Alerting {
    config: AlertsConfig,
    /// Configured secret values, masked wherever they appear in log tails.
    secrets: Vec<String>,
}

impl std::fmt::Debug for Alerting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerting")
            .field("config", &self.config)
            .field(
                "secrets",
                &format_args!("[{} redacted]", self.secrets.len()),
            )
            .finish()
    }
}

impl Alerting {
    /// From a validated configuration.
    pub fn new(config: &Config) -> Self {
        use secrecy::ExposeSecret as _;
        let mut secrets: Vec<String> = Vec::new();
        for p in config.platforms.values() {
            if let crate::config::PlatformConfig::BkJob(s) = p {
                secrets.push(s.app_secret.expose_secret().to_owned());
            }
        }
        if let Some(t) = &config.api.token {
            secrets.push(t.expose_secret().to_owned());
        }
        for r in config.alerts.receivers.values() {
            use crate::config::ReceiverKind as K;
            match &r.kind {
                K::Email { password, .. } => {
                    secrets.extend(password.iter().map(|p| p.expose_secret().to_owned()))
                }
                K::Webhook { url, secret }
                | K::Dingtalk { url, secret }
                | K::Feishu { url, secret } => {
                    secrets.push(url.expose_secret().to_owned());
                    secrets.extend(secret.iter().map(|p| p.expose_secret().to_owned()));
                }
                K::Wecom { url } | K::Slack { url } => secrets.push(url.expose_secret().to_owned()),
                K::Alertmanager { .. } => {}
            }
        }
        secrets.retain(|s| s.len() >= 4);
        Alerting {
            config: config.alerts.clone(),
            secrets,
        }
    }

    /// The configured secret values (to mask in stored errors).
    pub fn secrets(&self) -> &[String] {
        &self.secrets
    }

    /// Masks secret-looking parts of `text`: the configured secrets, the built-in and the
    /// configured redaction patterns (the first group is kept, the rest of the match becomes
    /// `[REDACTED]`, except a third group, kept after it).
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "[REDACTED]");
            }
        }
        for re in &self.config.redact {
            out = re
                .replace_all(&out, |c: &regex::Captures<'_>| {
                    let group = |i: usize| c.get(i).map_or("", |m| m.as_str());
                    match c.len() {
                        0..=2 => "[REDACTED]".to_owned(),
                        3 => format!("{}[REDACTED]", group(1)),
                        _ => format!("{}[REDACTED]{}", group(1), group(3)),
                    }
                })
                .into_owned();
        }
        out
    }

    /// The labels of `event` for `report`, or `None` when a rule disables it.
    pub fn labels(
        &self,
        event: AlertEvent,
        report: &ExecutionReport,
    ) -> Option<BTreeMap<String, String>> {
        let mut severity = event.default_severity().to_owned();
        let mut extra = BTreeMap::new();
        for rule in &self.config.rules {
            let applies = (rule.events.is_empty() || rule.events.contains(&event))
                && (rule.checks.is_empty() || rule.checks.contains(&report.check));
            if !applies {
                continue;
            }
            if !rule.enabled {
                return None;
            }
            if let Some(s) = &rule.severity {
                severity = s.clone();
            }
            extra.extend(rule.labels.clone());
        }
        let mut labels = extra;
        labels.insert("alertname".into(), event.alertname().into());
        labels.insert("check".into(), report.check.clone());
        labels.insert("platform".into(), report.platform.clone());
        labels.insert("severity".into(), severity);
        labels.insert("class".into(), event.class().into());
        Some(labels)
    }

    /// The receivers `labels` are routed to: routes in order, the first match wins unless
    /// it says `continue`.
    pub fn route(&self, labels: &BTreeMap<String, String>) -> Vec<Target> {
        let mut targets = Vec::new();
        for (i, route) in self.config.routes.iter().enumerate() {
            if !route.matchers.iter().all(|m| m.matches(labels)) {
                continue;
            }
            let group: Vec<String> = route
                .group_by
                .iter()
                .map(|l| format!("{l}={:?}", labels.get(l).map_or("", String::as_str)))
                .collect();
            targets.push(Target {
                receiver: route.receiver.clone(),
                group_key: format!("{i}:{{{}}}", group.join(",")),
                group_wait_ms: millis(route.group_wait),
                group_interval_ms: millis(route.group_interval),
                repeat_interval_ms: millis(route.repeat_interval),
                send_resolved: self
                    .config
                    .receivers
                    .get(&route.receiver)
                    .is_none_or(|r| r.send_resolved),
            });
            if !route.continue_matching {
                break;
            }
        }
        targets
    }

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

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max_chars - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests;
