//! Why an execution ended as it did: the hosts as tracked, what the poll loop saw
//! ([`Observed`]), and [`decide`], a pure function from that to a final state and a reason a
//! person can act on.

use std::time::Duration;

use super::HostReport;
use crate::config::policy::FailWhen;
use crate::model::{ExecutionState, Host, HostOutcome, HostStatus, JobSnapshot};
use crate::platform::PlatformError;

/// A host the execution targets or the platform reported, with its latest status.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackedHost {
    /// Identity, completed from every answer.
    pub host: Host,
    /// Latest status; `None` until the platform reports the host.
    pub status: Option<HostStatus>,
}

impl TrackedHost {
    /// A tracked host from its stored report.
    pub fn from_report(h: &HostReport) -> Self {
        // What the platform's adapter said, as stored: its outcome and labels (not looked up
        // again in one platform's tables).
        let status = h.status.map(|code| HostStatus {
            host: h.identity.clone(),
            status: code,
            outcome: h.outcome,
            label: crate::model::Label {
                en: h.status_label.clone().into(),
                zh: h.status_label_zh.clone().into(),
            },
            exit_code: h.exit_code,
            error_code: h.error_code,
            tag: h.tag.clone(),
            duration: h.duration_seconds.map(Duration::from_secs_f64),
            facts: h.facts.clone(),
        });
        TrackedHost {
            host: h.identity.clone(),
            status,
        }
    }

    /// The host's outcome once the execution ended: a host never reported is `unknown` (as
    /// the report shows it, [`super::ExecutionReport::mark_unreported_unknown`]).
    pub fn end_outcome(&self) -> HostOutcome {
        self.status
            .as_ref()
            .map_or(HostOutcome::Unknown, |s| s.outcome)
    }
}

/// Why polling stopped.
#[derive(Debug, Clone, PartialEq)]
pub enum PollEnd {
    /// The platform says the job finished.
    Finished,
    /// `lost_after` consecutive "job instance not found" answers.
    NotFound {
        /// How many in a row.
        polls: u32,
    },
    /// The deadline (job timeout + slack) passed.
    DeadlinePassed {
        /// The deadline, from submit.
        deadline: Duration,
        /// With `on_deadline = "terminate"`: whether the platform confirmed the job ended
        /// within `terminate_grace` (`None`: left running).
        terminated: Option<bool>,
    },
    /// `max_attempts` answered polls without the job ending.
    AttemptsExhausted {
        /// The limit.
        attempts: u32,
    },
    /// The user stopped jobwatch; a terminate was sent.
    Cancelled,
}

/// What the poll loop saw, for [`decide`].
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    /// Why polling stopped.
    pub end: PollEnd,
    /// The last status answer, if any.
    pub last: Option<&'a JobSnapshot>,
    /// Every host.
    pub hosts: &'a [TrackedHost],
    /// The last failed poll's error, if the last poll failed.
    pub last_error: Option<&'a PlatformError>,
    /// The job status stored before this process took the execution over (a resume), when
    /// no answer came since: what the hosts' statuses were seen with.
    pub earlier_job_status: Option<i64>,
    /// When the job counts as failed.
    pub fail_when: FailWhen,
}

/// At most this many hosts are named per class in a reason.
const REASON_HOSTS_PER_CLASS: usize = 10;

fn describe_host(h: &TrackedHost) -> String {
    match &h.status {
        Some(s) => {
            let exit = s
                .exit_code
                .filter(|&c| s.outcome == HostOutcome::Failed && (c != 0 || s.status == 104))
                .map(|c| format!(", exit {c}"))
                .unwrap_or_default();
            format!("{} ({} {}{exit})", h.host, s.status, s.label.en)
        }
        None => format!("{} (not reported)", h.host),
    }
}

fn hosts_by_outcome(hosts: &[TrackedHost], keep: impl Fn(HostOutcome) -> bool) -> String {
    let order = [
        HostOutcome::AgentError,
        HostOutcome::Failed,
        HostOutcome::Timeout,
        HostOutcome::Terminated,
        HostOutcome::Unknown,
        HostOutcome::Running,
        HostOutcome::Waiting,
        HostOutcome::Success,
    ];
    let mut parts = Vec::new();
    for outcome in order.into_iter().filter(|o| keep(*o)) {
        let of: Vec<&TrackedHost> = hosts
            .iter()
            .filter(|h| h.end_outcome() == outcome)
            .collect();
        if of.is_empty() {
            continue;
        }
        let mut named: Vec<String> = of
            .iter()
            .take(REASON_HOSTS_PER_CLASS)
            .map(|h| describe_host(h))
            .collect();
        if of.len() > REASON_HOSTS_PER_CLASS {
            named.push(format!("and {} more", of.len() - REASON_HOSTS_PER_CLASS));
        }
        parts.push(format!("{outcome} {}: {}", of.len(), named.join(", ")));
    }
    parts.join("; ")
}

fn last_seen(o: &Observed<'_>) -> String {
    let job = match (o.last, o.earlier_job_status) {
        (Some(s), _) => format!("job {} ({})", s.label.en, s.status),
        (None, Some(code)) => format!(
            "no status answer since jobwatch resumed it; before: job {} ({code})",
            crate::platform::bkjob::codes::job_label(code).en
        ),
        (None, None) if o.hosts.iter().any(|h| h.status.is_some()) => {
            "no status answer since jobwatch resumed it".to_owned()
        }
        (None, None) => "no status answer since submit".to_owned(),
    };
    let hosts = hosts_by_outcome(o.hosts, |_| true);
    let error = o
        .last_error
        .map(|e| format!("; last platform error: {e}"))
        .unwrap_or_default();
    if hosts.is_empty() {
        format!("{job}{error}")
    } else {
        format!("{job}; hosts: {hosts}{error}")
    }
}

/// The final state and its reason, from what was observed. Pure.
///
/// * finished and every host succeeded → `succeeded`;
/// * finished otherwise → `failed`, naming failing hosts by class (agent error, failed —
///   non-zero exit and the like —, timeout, terminated, unknown), or the job status when
///   no host failed (a job ended abnormally without host results);
/// * not found `lost_after` times → `lost`; deadline or attempts → `timed_out` with the last
///   seen host states; cancelled → `cancelled`.
pub fn decide(o: &Observed<'_>) -> (ExecutionState, String) {
    match &o.end {
        PollEnd::Finished => {
            let Some(last) = o.last else {
                return (
                    ExecutionState::Failed,
                    "the job ended without a status answer".into(),
                );
            };
            let total = o.hosts.len();
            let failing = o
                .hosts
                .iter()
                .filter(|h| h.end_outcome() != HostOutcome::Success)
                .count();
            let job = format!("job {} ({})", last.label.en, last.status);
            if total == 0 {
                return (
                    ExecutionState::Failed,
                    format!("the job ended with no host reported ({job})"),
                );
            }
            if failing == 0 {
                return (
                    ExecutionState::Succeeded,
                    format!("all {total} host(s) succeeded ({job})"),
                );
            }
            let detail = hosts_by_outcome(o.hosts, |outcome| outcome != HostOutcome::Success);
            if o.fail_when.fails(failing, total) {
                (
                    ExecutionState::Failed,
                    format!("{failing} of {total} hosts did not succeed ({job}) — {detail}"),
                )
            } else {
                (
                    ExecutionState::Succeeded,
                    format!(
                        "{failing} of {total} hosts did not succeed, within fail_when = \"{}\" ({job}) — {detail}",
                        o.fail_when.describe()
                    ),
                )
            }
        }
        PollEnd::NotFound { polls } => (
            ExecutionState::Lost,
            format!(
                "the platform no longer knows the job ({}, {polls} polls in a row); last seen: {}",
                // bk-job says 1244006; Salt's job cache says it in words (in the last error).
                o.last_error
                    .and_then(|e| e.code)
                    .map_or_else(|| "not found".to_owned(), |c| c.to_string()),
                last_seen(o)
            ),
        ),
        PollEnd::DeadlinePassed {
            deadline,
            terminated,
        } => {
            let action = match terminated {
                None => "",
                Some(true) => {
                    "; jobwatch terminated it (on_deadline = \"terminate\") and the platform confirmed the end"
                }
                Some(false) => {
                    "; jobwatch asked the platform to terminate it (on_deadline = \"terminate\"), which was not confirmed within terminate_grace"
                }
            };
            (
                ExecutionState::TimedOut,
                format!(
                    "not ended {} after submit (the job's timeout + slack){action}; last seen: {}",
                    humantime::format_duration(*deadline),
                    last_seen(o)
                ),
            )
        }
        PollEnd::AttemptsExhausted { attempts } => (
            ExecutionState::TimedOut,
            format!(
                "gave up after {attempts} polls (poll.max_attempts) with the job not ended; last seen: {}",
                last_seen(o)
            ),
        ),
        PollEnd::Cancelled => (
            ExecutionState::Cancelled,
            format!("interrupted; terminate sent; last seen: {}", last_seen(o)),
        ),
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Label;

    fn host_status(ip: &str, status: i64, exit_code: Option<i64>) -> HostStatus {
        let (outcome, label) = crate::platform::bkjob::codes::host_outcome(status);
        HostStatus {
            host: Host {
                bk_host_id: None,
                bk_cloud_id: Some(0),
                ip: Some(ip.into()),
                minion_id: None,
            },
            status,
            outcome,
            label,
            exit_code,
            error_code: None,
            tag: None,
            duration: None,
            facts: None,
        }
    }

    fn snapshot(status: i64, finished: bool, hosts: Vec<HostStatus>) -> JobSnapshot {
        JobSnapshot {
            status,
            label: Label {
                en: format!("S{status}").into(),
                zh: "".into(),
            },
            finished,
            step_instance_id: Some(1),
            hosts,
        }
    }

    /// The hosts as an execution of `configured` hosts tracks them after `snapshot` (through
    /// the record, as the tracker does).
    fn tracked(snapshot: &JobSnapshot, configured: &[&str]) -> Vec<TrackedHost> {
        let hosts = configured.iter().map(|ip| Host::by_ip(0, *ip)).collect();
        let check = crate::config::CheckConfig::new("c", "p", "true", hosts);
        let mut report = super::super::ExecutionReport::new("e".into(), &check, "p", "bkjob", "t");
        report.merge_snapshot(snapshot, None);
        report.hosts.iter().map(TrackedHost::from_report).collect()
    }

    fn observed<'a>(
        end: PollEnd,
        last: Option<&'a JobSnapshot>,
        hosts: &'a [TrackedHost],
    ) -> Observed<'a> {
        Observed {
            end,
            last,
            hosts,
            last_error: None,
            earlier_job_status: None,
            fail_when: FailWhen::Any,
        }
    }

    #[test]
    fn all_hosts_success_is_succeeded() {
        let s = snapshot(
            3,
            true,
            vec![
                host_status("10.0.0.1", 9, Some(0)),
                host_status("10.0.0.2", 3, Some(0)),
            ],
        );
        let hosts = tracked(&s, &["10.0.0.1", "10.0.0.2"]);
        let (state, reason) = decide(&observed(PollEnd::Finished, Some(&s), &hosts));
        assert_eq!(state, ExecutionState::Succeeded);
        assert!(reason.contains("all 2 host(s)"), "{reason}");
    }

    #[test]
    fn failure_reason_names_hosts_by_class() {
        let s = snapshot(
            4,
            true,
            vec![
                host_status("10.0.0.1", 9, Some(0)),
                host_status("10.0.0.2", 310, None),
                host_status("10.0.0.3", 104, Some(3)),
            ],
        );
        let hosts = tracked(&s, &["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
        let (state, reason) = decide(&observed(PollEnd::Finished, Some(&s), &hosts));
        assert_eq!(state, ExecutionState::Failed);
        assert!(reason.contains("2 of 3 hosts"), "{reason}");
        assert!(
            reason.contains("agent_error 1: 0:10.0.0.2 (310 Abnormal Agent)"),
            "{reason}"
        );
        assert!(
            reason.contains("failed 1: 0:10.0.0.3 (104 Non-zero Exit Code, exit 3)"),
            "{reason}"
        );
        assert!(
            !reason.contains("10.0.0.1"),
            "successful hosts are not failures: {reason}"
        );
    }

    #[test]
    fn a_configured_host_the_platform_never_reported_is_not_a_success() {
        let s = snapshot(3, true, vec![host_status("10.0.0.1", 9, Some(0))]);
        let hosts = tracked(&s, &["10.0.0.1", "10.0.0.9"]);
        let (state, reason) = decide(&observed(PollEnd::Finished, Some(&s), &hosts));
        assert_eq!(state, ExecutionState::Failed);
        assert!(reason.contains("0:10.0.0.9 (not reported)"), "{reason}");
    }

    #[test]
    fn an_unknown_host_code_fails_the_job_even_if_the_job_says_success() {
        let s = snapshot(3, true, vec![host_status("10.0.0.1", 777, None)]);
        let hosts = tracked(&s, &["10.0.0.1"]);
        let (state, reason) = decide(&observed(PollEnd::Finished, Some(&s), &hosts));
        assert_eq!(state, ExecutionState::Failed);
        assert!(reason.contains("777"), "{reason}");
    }

    #[test]
    fn deadline_and_attempts_are_timed_out_with_last_seen_hosts() {
        let s = snapshot(
            2,
            false,
            vec![
                host_status("10.0.0.1", 9, Some(0)),
                host_status("10.0.0.2", 7, None),
            ],
        );
        let hosts = tracked(&s, &["10.0.0.1", "10.0.0.2"]);
        let (state, reason) = decide(&observed(
            PollEnd::DeadlinePassed {
                deadline: Duration::from_secs(70),
                terminated: None,
            },
            Some(&s),
            &hosts,
        ));
        assert_eq!(state, ExecutionState::TimedOut);
        assert!(reason.contains("1m 10s"), "{reason}");
        assert!(
            reason.contains("running 1: 0:10.0.0.2 (7 Running)"),
            "{reason}"
        );
        let (state, reason) = decide(&observed(
            PollEnd::AttemptsExhausted { attempts: 5 },
            Some(&s),
            &hosts,
        ));
        assert_eq!(state, ExecutionState::TimedOut);
        assert!(reason.contains("5 polls"), "{reason}");
    }

    #[test]
    fn not_found_is_lost_with_the_platforms_code_when_it_has_one() {
        let (state, reason) = decide(&observed(PollEnd::NotFound { polls: 3 }, None, &[]));
        assert_eq!(state, ExecutionState::Lost);
        assert!(reason.contains("(not found, 3 polls in a row)"), "{reason}");
        let bkjob = PlatformError {
            class: crate::model::ErrorClass::NotFound,
            ..PlatformError::permanent("get_job_instance_status", Some(1244006), "not exist")
        };
        let (state, reason) = decide(&Observed {
            last_error: Some(&bkjob),
            ..observed(PollEnd::NotFound { polls: 3 }, None, &[])
        });
        assert_eq!(state, ExecutionState::Lost);
        assert!(reason.contains("(1244006, 3 polls in a row)"), "{reason}");
    }

    #[test]
    fn fail_when_parses_and_counts() {
        assert_eq!(FailWhen::parse("any"), Ok(FailWhen::Any));
        assert_eq!(FailWhen::parse("count >= 3"), Ok(FailWhen::CountAtLeast(3)));
        assert_eq!(FailWhen::parse("ratio>0.1"), Ok(FailWhen::RatioAbove(0.1)));
        for bad in ["count >= 0", "ratio > 1", "ratio > -1", "most", "count > 2"] {
            assert!(FailWhen::parse(bad).is_err(), "{bad}");
        }
        assert!(FailWhen::Any.fails(1, 100));
        assert!(!FailWhen::CountAtLeast(3).fails(2, 100));
        assert!(FailWhen::CountAtLeast(3).fails(3, 100));
        assert!(!FailWhen::RatioAbove(0.1).fails(10, 100));
        assert!(FailWhen::RatioAbove(0.1).fails(11, 100));
    }

    /// Every "<class> <n>: …" part of a reason.
    fn classes_in(reason: &str) -> Vec<(String, usize)> {
        let re = regex::Regex::new(
            r"\b(agent_error|failed|timeout|terminated|unknown|running|waiting|success) (\d+): ",
        )
        .unwrap();
        re.captures_iter(reason)
            .map(|c| (c[1].to_owned(), c[2].parse().unwrap()))
            .collect()
    }

    #[test]
    fn every_reason_agrees_with_the_hosts_shown_beside_it() {
        let ended = |ip: &str, code: i64, exit: Option<i64>| host_status(ip, code, exit);
        let host_sets: Vec<(&str, Vec<HostStatus>, Vec<&str>)> = vec![
            (
                "all ok",
                vec![ended("10.0.0.1", 9, Some(0)), ended("10.0.0.2", 9, Some(0))],
                vec![],
            ),
            (
                "mixed",
                vec![
                    ended("10.0.0.1", 9, Some(0)),
                    ended("10.0.0.2", 310, None),
                    ended("10.0.0.3", 104, Some(3)),
                ],
                vec![],
            ),
            (
                "one never reported",
                vec![ended("10.0.0.1", 9, Some(0))],
                vec!["10.0.0.9"],
            ),
            ("running", vec![ended("10.0.0.1", 7, None)], vec![]),
            (
                "running and unreported",
                vec![ended("10.0.0.1", 7, None)],
                vec!["10.0.0.9"],
            ),
            ("none reported", vec![], vec!["10.0.0.9"]),
        ];
        let ends = [
            PollEnd::Finished,
            PollEnd::NotFound { polls: 3 },
            PollEnd::DeadlinePassed {
                deadline: Duration::from_secs(90),
                terminated: None,
            },
            PollEnd::DeadlinePassed {
                deadline: Duration::from_secs(90),
                terminated: Some(false),
            },
            PollEnd::AttemptsExhausted { attempts: 5 },
            PollEnd::Cancelled,
        ];
        for (name, reported, unreported) in &host_sets {
            let finished = reported.iter().all(|h| h.outcome.is_final());
            let s = snapshot(if finished { 3 } else { 2 }, finished, reported.clone());
            let mut configured: Vec<&str> = reported
                .iter()
                .map(|h| h.host.ip.as_deref().unwrap())
                .collect();
            configured.extend(unreported);
            let hosts = tracked(&s, &configured);
            for end in &ends {
                // This process saw the snapshot, or (a resume) saw nothing since: the hosts
                // keep the statuses stored before.
                for (last, earlier) in [(Some(&s), None), (None, Some(2)), (None, None)] {
                    if *end == PollEnd::Finished && last.is_none() {
                        continue;
                    }
                    let o = Observed {
                        earlier_job_status: earlier,
                        ..observed(end.clone(), last, &hosts)
                    };
                    let (state, reason) = decide(&o);
                    let context = format!("{name} / {end:?} / last {}: {reason}", last.is_some());
                    // What the report shows beside the reason.
                    let shown: Vec<HostOutcome> =
                        hosts.iter().map(TrackedHost::end_outcome).collect();
                    for (class, n) in classes_in(&reason) {
                        let count = shown.iter().filter(|o| o.to_string() == class).count();
                        assert_eq!(count, n, "{class} counted wrong: {context}");
                    }
                    let named: Vec<String> =
                        classes_in(&reason).into_iter().map(|(c, _)| c).collect();
                    for outcome in shown.iter().filter(|o| **o != HostOutcome::Success) {
                        if state != ExecutionState::Succeeded || !reason.starts_with("all ") {
                            assert!(
                                named.contains(&outcome.to_string()),
                                "a {outcome} host is not in the reason: {context}"
                            );
                        }
                    }
                    if reason.contains("no status answer since submit") {
                        assert!(hosts.iter().all(|h| h.status.is_none()), "{context}");
                    }
                    if state == ExecutionState::Succeeded && reason.starts_with("all ") {
                        assert!(
                            shown.iter().all(|o| *o == HostOutcome::Success),
                            "{context}"
                        );
                    }
                }
            }
        }
    }
}
