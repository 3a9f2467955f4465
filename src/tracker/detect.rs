//! Conditions of a running execution, as pure functions of what was observed, the time and
//! the policy (DESIGN.md §5, STYLE.md #8). A condition never ends an execution: it keeps
//! being polled, and the condition clears when the cause goes away or the job ends.
//!
//! * `stuck`: nothing changed (job status and every host's status) for `stuck_after`; or the
//!   partition shape — every host has ended but the job still says it runs — for
//!   `straggler_after`.
//! * `stragglers`: hosts still waiting or running (bk-job 5/7) `straggler_after` after the
//!   last of the others ended; they are named.
//! * `platform_unreachable`: no poll has got an answer for `unreachable_after` (every endpoint
//!   failing transiently); cleared by the first answer.

use std::time::Duration;

pub use crate::model::condition::{Condition, ConditionKind, PastCondition};

/// Updates `log` from the conditions holding at `now_ms`: new ones are added, holding ones
/// refreshed (their detail changes as time passes), gone ones marked cleared. A condition is
/// identified by its kind and start.
pub fn update_log(log: &mut Vec<PastCondition>, holding: &[Condition], now_ms: i64) {
    for c in holding {
        match log.iter_mut().find(|p| {
            p.cleared_ms.is_none()
                && p.condition.kind == c.kind
                && p.condition.since_ms == c.since_ms
        }) {
            Some(p) => p.condition = c.clone(),
            None => log.push(PastCondition {
                condition: c.clone(),
                cleared_ms: None,
            }),
        }
    }
    for p in log.iter_mut().filter(|p| p.cleared_ms.is_none()) {
        if !holding
            .iter()
            .any(|c| c.kind == p.condition.kind && c.since_ms == p.condition.since_ms)
        {
            p.cleared_ms = Some(now_ms);
        }
    }
}

pub use crate::config::policy::DetectPolicy;

/// One host as the detectors see it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostView<'a> {
    /// As shown in reports.
    pub host: &'a str,
    /// Whether it has ended.
    pub ended: bool,
    /// When jobwatch first saw it ended (Unix ms).
    pub ended_seen_ms: Option<i64>,
}

/// What the tracker observed so far.
#[derive(Debug, Clone)]
pub struct Observation<'a> {
    /// Now (Unix ms).
    pub now_ms: i64,
    /// When the job was triggered (Unix ms).
    pub started_ms: i64,
    /// The last time the job status or a host status changed (Unix ms), if an answer came.
    pub last_progress_ms: Option<i64>,
    /// Whether the platform says the job ended.
    pub job_finished: bool,
    /// Every host.
    pub hosts: &'a [HostView<'a>],
    /// Since when no poll got an answer (Unix ms); `None` if the last poll got one.
    pub unanswered_since_ms: Option<i64>,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The conditions holding now, in [`ConditionKind::ALL`] order.
pub fn detect(o: &Observation<'_>, p: &DetectPolicy) -> Vec<Condition> {
    let mut out = Vec::new();
    if o.job_finished {
        return out;
    }
    let stragglers: Vec<&HostView<'_>> = o.hosts.iter().filter(|h| !h.ended).collect();
    let last_end = o.hosts.iter().filter_map(|h| h.ended_seen_ms).max();
    let all_ended = !o.hosts.is_empty() && stragglers.is_empty();

    // stuck
    let progress = o.last_progress_ms.unwrap_or(o.started_ms);
    if all_ended && o.now_ms - last_end.unwrap_or(progress) >= ms(p.straggler_after) {
        out.push(Condition {
            kind: ConditionKind::Stuck,
            since_ms: last_end.unwrap_or(progress),
            detail: format!(
                "every host has ended but the job still runs (for {})",
                since(o.now_ms, last_end.unwrap_or(progress))
            ),
            hosts: Vec::new(),
        });
    } else if o.now_ms - progress >= ms(p.stuck_after) {
        let mut detail = format!("no progress for {}", since(o.now_ms, progress));
        if !stragglers.is_empty() && last_end.is_some() {
            detail.push_str(&format!("; still running: {}", names(&stragglers)));
        }
        out.push(Condition {
            kind: ConditionKind::Stuck,
            since_ms: progress,
            detail,
            hosts: stragglers
                .iter()
                .filter(|_| last_end.is_some())
                .map(|h| h.host.to_owned())
                .collect(),
        });
    }

    // stragglers
    if let Some(last_end) = last_end.filter(|_| !stragglers.is_empty())
        && o.now_ms - last_end >= ms(p.straggler_after)
    {
        out.push(Condition {
            kind: ConditionKind::Stragglers,
            since_ms: last_end,
            detail: format!(
                "{} of {} hosts still running {} after the others ended: {}",
                stragglers.len(),
                o.hosts.len(),
                since(o.now_ms, last_end),
                names(&stragglers)
            ),
            hosts: stragglers.iter().map(|h| h.host.to_owned()).collect(),
        });
    }

    // platform_unreachable
    if let Some(from) = o.unanswered_since_ms
        && o.now_ms - from >= ms(p.unreachable_after)
    {
        out.push(Condition {
            kind: ConditionKind::PlatformUnreachable,
            since_ms: from,
            detail: format!("no answer from the platform for {}", since(o.now_ms, from)),
            hosts: Vec::new(),
        });
    }
    out
}

fn since(now_ms: i64, from_ms: i64) -> String {
    let secs = u64::try_from((now_ms - from_ms).max(0) / 1000).unwrap_or(0);
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

fn names(hosts: &[&HostView<'_>]) -> String {
    const SHOWN: usize = 10;
    let mut list: Vec<&str> = hosts.iter().take(SHOWN).map(|h| h.host).collect();
    let more = hosts.len().saturating_sub(SHOWN);
    let extra = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    list.sort_unstable();
    format!("{}{extra}", list.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_000_000;
    const MIN: i64 = 60_000;

    fn host(name: &str, ended_at: Option<i64>) -> HostView<'_> {
        HostView {
            host: name,
            ended: ended_at.is_some(),
            ended_seen_ms: ended_at,
        }
    }

    fn policy() -> DetectPolicy {
        DetectPolicy {
            stuck_after: Duration::from_secs(10 * 60),
            straggler_after: Duration::from_secs(2 * 60),
            unreachable_after: Duration::from_secs(60),
        }
    }

    fn obs<'a>(
        now: i64,
        progress: Option<i64>,
        hosts: &'a [HostView<'a>],
        unanswered: Option<i64>,
    ) -> Observation<'a> {
        Observation {
            now_ms: now,
            started_ms: T0,
            last_progress_ms: progress,
            job_finished: false,
            hosts,
            unanswered_since_ms: unanswered,
        }
    }

    fn kinds(c: &[Condition]) -> Vec<ConditionKind> {
        c.iter().map(|c| c.kind).collect()
    }

    #[test]
    fn the_log_keeps_conditions_after_they_clear() {
        let stuck = Condition {
            kind: ConditionKind::Stuck,
            since_ms: T0,
            detail: "a".into(),
            hosts: vec![],
        };
        let mut log = Vec::new();
        update_log(&mut log, std::slice::from_ref(&stuck), T0 + MIN);
        update_log(
            &mut log,
            &[Condition {
                detail: "b".into(),
                ..stuck.clone()
            }],
            T0 + 2 * MIN,
        );
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].condition.detail, "b");
        update_log(&mut log, &[], T0 + 3 * MIN);
        assert_eq!(log[0].cleared_ms, Some(T0 + 3 * MIN));
        // The same kind again, later: a new entry.
        update_log(
            &mut log,
            &[Condition {
                since_ms: T0 + 4 * MIN,
                ..stuck
            }],
            T0 + 5 * MIN,
        );
        assert_eq!(log.len(), 2);
    }

    #[test]
    fn a_healthy_running_job_has_no_condition() {
        let hosts = [host("a", None), host("b", None)];
        assert!(detect(&obs(T0 + 5 * MIN, Some(T0 + MIN), &hosts, None), &policy()).is_empty());
    }

    #[test]
    fn the_partition_shape_names_the_cut_off_host() {
        // a and b ended at +1 min; c is still "running" because it was cut off.
        let hosts = [
            host("a", Some(T0 + MIN)),
            host("b", Some(T0 + MIN)),
            host("c", None),
        ];
        let at = |m| detect(&obs(T0 + m * MIN, Some(T0 + MIN), &hosts, None), &policy());
        assert!(at(2).is_empty(), "within straggler_after nothing is said");
        let c = at(4);
        assert_eq!(kinds(&c), vec![ConditionKind::Stragglers]);
        assert_eq!(c[0].hosts, vec!["c".to_owned()]);
        assert_eq!(c[0].since_ms, T0 + MIN);
        assert!(
            c[0].detail
                .contains("1 of 3 hosts still running 3m after the others ended: c"),
            "{}",
            c[0].detail
        );
        let c = at(12);
        assert_eq!(
            kinds(&c),
            vec![ConditionKind::Stuck, ConditionKind::Stragglers]
        );
        assert_eq!(c[0].hosts, vec!["c".to_owned()]);
        assert!(
            c[0].detail
                .contains("no progress for 11m; still running: c"),
            "{}",
            c[0].detail
        );
    }

    #[test]
    fn every_host_ended_but_the_job_runs_is_stuck() {
        let hosts = [host("a", Some(T0 + MIN)), host("b", Some(T0 + MIN))];
        assert!(detect(&obs(T0 + 2 * MIN, Some(T0 + MIN), &hosts, None), &policy()).is_empty());
        let c = detect(&obs(T0 + 4 * MIN, Some(T0 + MIN), &hosts, None), &policy());
        assert_eq!(kinds(&c), vec![ConditionKind::Stuck]);
        assert!(
            c[0].detail
                .contains("every host has ended but the job still runs")
        );
    }

    #[test]
    fn a_job_with_no_answer_yet_is_stuck_only_after_stuck_after() {
        assert!(detect(&obs(T0 + 9 * MIN, None, &[], None), &policy()).is_empty());
        assert_eq!(
            kinds(&detect(&obs(T0 + 10 * MIN, None, &[], None), &policy())),
            vec![ConditionKind::Stuck]
        );
    }

    #[test]
    fn platform_unreachable_after_its_threshold_and_never_when_finished() {
        let hosts = [host("a", None)];
        assert!(detect(&obs(T0 + 30_000, Some(T0), &hosts, Some(T0)), &policy()).is_empty());
        let c = detect(&obs(T0 + 61_000, Some(T0), &hosts, Some(T0)), &policy());
        assert_eq!(kinds(&c), vec![ConditionKind::PlatformUnreachable]);
        assert_eq!(c[0].since_ms, T0);
        let mut finished = obs(T0 + 100 * MIN, Some(T0), &hosts, Some(T0));
        finished.job_finished = true;
        assert!(
            detect(&finished, &policy()).is_empty(),
            "a finished job has no condition"
        );
    }
}
