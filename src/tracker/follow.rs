//! An execution being followed, at rest as data. [`Follow`] holds what the next poll needs —
//! the record (whose hosts are the one copy of the host data), the job, the check and
//! platform handles, the deadline, when the next poll is due, the last progress — and
//! [`Follow::on_answer`] is one step: a poll's answer (or error) and the time in, the new
//! state and what to do next out. A step needs no runtime; the turns around it
//! ([`Follow::poll_turn`], [`Follow::end_turn`], [`Follow::logs_turn`]) make the platform
//! calls and save, and whoever schedules them (the engine in the daemon, a loop for
//! `jobwatch exec`) decides when.

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tokio::time::Instant;

use super::decide::{Observed, PollEnd, TrackedHost, decide};
use super::{ExecutionReport, Journal, Observer, TrackerEvent, detect, note_failure, save};
use crate::config::CheckConfig;
use crate::config::policy::OnDeadline;
use crate::model::{JobSnapshot, Label};
use crate::platform::{ErrorClass, JobRef, Platform, PlatformError};

/// Quick retries of one poll on a transient error, before waiting for the next scheduled
/// poll (the poll schedule itself is the long-term retry).
const CALL_RETRIES: usize = 3;

/// An execution whose job the platform has, between two polls.
pub struct Follow {
    /// The record; its hosts are the only copy of the host data.
    pub report: Box<ExecutionReport>,
    /// The job on the platform.
    pub job: JobRef,
    /// The check (shared by every execution of it).
    pub check: Arc<CheckConfig>,
    /// The platform (shared).
    pub platform: Arc<dyn Platform>,
    /// The execution's start on the monotonic clock (its deadline counts from it).
    started: Instant,
    /// When the job counts as timed out (moved by a terminate to its grace).
    deadline: Instant,
    /// When the next poll is due.
    next_poll: Instant,
    /// Polls scheduled by this process (the backoff's position).
    poll_index: u32,
    /// Follow-up polls made and left after a callback ([`Follow::hinted`]).
    follow_ups: u32,
    follow_ups_left: u32,
    /// Polls that got an answer in this process.
    answered: u32,
    /// "Job instance not found" answers in a row.
    not_found: u32,
    /// Whether `on_deadline = "terminate"` (or an operator) sent its terminate.
    terminate_sent: bool,
    /// An operator asked for a terminate (their token's name), not yet sent.
    terminate_by: Option<String>,
    /// The last change of the job or a host status (Unix ms), once an answer came.
    progress_ms: Option<i64>,
    /// Since when no poll got an answer (Unix ms).
    unanswered_since_ms: Option<i64>,
    /// When each host (by its index in the report) was first seen ended (Unix ms; 0: not
    /// yet). Empty until a host ends, so that an execution at rest whose hosts all run
    /// carries no list.
    ended_seen: Vec<i64>,
    /// The last failed poll's error, while the last poll failed.
    last_error: Option<Box<PlatformError>>,
}

/// What to do after a step.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Poll again at this instant.
    Poll(Instant),
    /// Ask the platform to stop the job now (`on_deadline = "terminate"`), then poll at
    /// this instant.
    Terminate(Instant),
    /// Polling is over: decide ([`Follow::end_turn`]).
    End(PollEnd),
}

/// What a step did.
#[derive(Debug, Clone, PartialEq)]
pub struct Stepped {
    /// Something a reader of the record sees changed: save it before acting.
    pub changed: bool,
    /// The conditions holding changed (raised or cleared).
    pub conditions_changed: bool,
    /// What to do next.
    pub next: Next,
}

impl Follow {
    /// Starts following `job` for `report`, whose execution started at `started` (monotonic).
    /// A report polled before (a resume) looks again within one interval, at a random point
    /// (`spread` in 0..1): a restart with many executions in flight spreads their polls
    /// instead of sending them all at once. A new one polls after `poll.first_poll`.
    pub fn new(
        report: Box<ExecutionReport>,
        job: JobRef,
        check: Arc<CheckConfig>,
        platform: Arc<dyn Platform>,
        started: Instant,
        now: Instant,
        spread: f64,
    ) -> Self {
        let policy = &check.poll;
        let deadline =
            started + policy.deadline(Duration::from_secs(report.timeout_seconds.max(1)));
        // A resumed (or taken over) execution keeps its stored next poll when that is still
        // ahead (at most one longest interval away: the safety interval with callbacks, whose
        // net also covers a callback sent while no process listened); one due already is
        // polled within one interval, spread (`spread` in 0..1), so that many due at once do
        // not come at once.
        let stored = report.next_poll_at_ms.map(|w| {
            started + Duration::from_millis(u64::try_from(w - report.started_at_ms).unwrap_or(0))
        });
        let first_delay = if report.polls > 0 {
            match stored {
                Some(at) if at > now => (at - now).min(
                    policy
                        .safety_interval
                        .unwrap_or(policy.max_interval.max(policy.interval)),
                ),
                _ => policy
                    .interval
                    .max(policy.first_poll)
                    .mul_f64(spread.clamp(0.0, 1.0))
                    .max(policy.first_poll.min(Duration::from_millis(100))),
            }
        } else {
            policy.delay(0, 0.0)
        };
        let mut follow = Follow {
            report,
            job,
            check,
            platform,
            started,
            deadline,
            next_poll: now + first_delay,
            poll_index: 0,
            follow_ups: 0,
            follow_ups_left: 0,
            answered: 0,
            not_found: 0,
            terminate_sent: false,
            terminate_by: None,
            progress_ms: None,
            unanswered_since_ms: None,
            ended_seen: Vec::new(),
            last_error: None,
        };
        follow.report.next_poll_at_ms = Some(follow.wall_ms(follow.next_poll));
        follow
    }

    /// When the next poll is due.
    pub fn next_poll(&self) -> Instant {
        self.next_poll
    }

    /// Moves the next poll to `at` (e.g. a platform's callback says the job moved).
    pub fn set_next_poll(&mut self, at: Instant) {
        self.next_poll = at;
        self.report.next_poll_at_ms = Some(self.wall_ms(at));
    }

    /// Wall time (Unix ms) of a monotonic instant: the recorded start plus monotonic time
    /// since, so that conditions do not jump with the system clock (and tests can pause
    /// time).
    fn wall_ms(&self, at: Instant) -> i64 {
        let since = at.saturating_duration_since(self.started);
        self.report.started_at_ms + i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
    }

    /// The deadline from the start (the job's timeout + slack).
    fn deadline_after(&self) -> Duration {
        self.check
            .poll
            .deadline(Duration::from_secs(self.report.timeout_seconds.max(1)))
    }

    /// One step: the answer (or the error, after quick retries) to a poll asked at `asked`,
    /// taken in at `now`; `jitter` (0..1) places the next poll within the policy's jitter.
    /// What the answer says holds from when it was asked (a platform that cannot answer
    /// has not answered since then). Pure but for the condition-change event it emits.
    pub fn on_answer(
        &mut self,
        answer: &Result<JobSnapshot, PlatformError>,
        asked: Instant,
        now: Instant,
        jitter: f64,
    ) -> Stepped {
        let check = self.check.clone();
        let policy = &check.poll;
        self.report.polls += 1;
        let polled_ms = self.wall_ms(asked);
        let mut changed = false;
        match answer {
            Ok(snapshot) => {
                self.answered += 1;
                self.not_found = 0;
                self.last_error = None;
                self.unanswered_since_ms = None;
                if self.job.step_instance_id.is_none() {
                    self.job.step_instance_id = snapshot.step_instance_id;
                }
                let moved = self
                    .report
                    .merge_snapshot(snapshot, self.job.step_instance_id);
                let hosts = &self.report.hosts;
                if hosts.iter().any(|h| h.outcome.is_final()) {
                    self.ended_seen.resize(hosts.len(), 0);
                    for (seen, h) in self.ended_seen.iter_mut().zip(hosts) {
                        if *seen == 0 && h.outcome.is_final() {
                            *seen = polled_ms;
                        }
                    }
                }
                if moved || self.progress_ms.is_none() {
                    self.progress_ms = Some(polled_ms);
                }
                if snapshot.finished {
                    let end = if self.terminate_sent {
                        PollEnd::DeadlinePassed {
                            deadline: self.deadline_after(),
                            terminated: Some(true),
                        }
                    } else {
                        PollEnd::Finished
                    };
                    return Stepped {
                        changed: moved,
                        conditions_changed: false,
                        next: Next::End(end),
                    };
                }
                changed |= moved;
            }
            Err(e) => {
                self.report.failed_polls += 1;
                if e.class == ErrorClass::NotFound {
                    self.unanswered_since_ms = None;
                    self.not_found += 1;
                    if self.not_found >= policy.lost_after {
                        self.last_error = Some(Box::new(e.clone()));
                        return Stepped {
                            changed: false,
                            conditions_changed: false,
                            next: Next::End(PollEnd::NotFound {
                                polls: self.not_found,
                            }),
                        };
                    }
                } else {
                    // Only a transient error means the platform cannot be asked; a refusal
                    // (permission, bad request) is an answer, and the deadline still
                    // decides, with the refusal in the reason.
                    if e.class == ErrorClass::Transient {
                        self.unanswered_since_ms.get_or_insert(polled_ms);
                    } else {
                        self.unanswered_since_ms = None;
                    }
                    self.not_found = 0;
                }
                self.last_error = Some(Box::new(e.clone()));
            }
        }
        let conditions_changed = self.detect(now);
        changed |= conditions_changed;
        if let Some(attempts) = policy.max_attempts.filter(|&m| self.answered >= m) {
            return Stepped {
                changed,
                conditions_changed,
                next: Next::End(PollEnd::AttemptsExhausted { attempts }),
            };
        }
        // At the deadline the job is timed out — unless the platform cannot be asked: a
        // platform fault never decides an execution; polling goes on until it answers.
        let mut terminate = false;
        if let Some(by) = self.terminate_by.take()
            && !self.terminate_sent
        {
            self.terminate_sent = true;
            self.deadline = self.deadline.min(now + policy.terminate_grace);
            self.report.terminated_by = Some(by);
            changed = true;
            terminate = true;
        }
        if now >= self.deadline && self.unanswered_since_ms.is_none() {
            match (policy.on_deadline, self.terminate_sent) {
                (OnDeadline::Leave, false) => {
                    return Stepped {
                        changed,
                        conditions_changed,
                        next: Next::End(PollEnd::DeadlinePassed {
                            deadline: self.deadline_after(),
                            terminated: None,
                        }),
                    };
                }
                (OnDeadline::Terminate, false) => {
                    self.terminate_sent = true;
                    self.deadline = now + policy.terminate_grace;
                    terminate = true;
                }
                (_, true) => {
                    return Stepped {
                        changed,
                        conditions_changed,
                        next: Next::End(PollEnd::DeadlinePassed {
                            deadline: self.deadline_after(),
                            terminated: Some(false),
                        }),
                    };
                }
            }
        }
        self.poll_index += 1;
        let delay = if self.follow_ups_left > 0 {
            self.follow_ups_left -= 1;
            self.follow_ups += 1;
            policy.follow_up_delay(self.follow_ups, jitter)
        } else {
            policy.delay(self.poll_index, jitter)
        };
        let next_poll = now + delay;
        // Past the deadline (only while the platform cannot answer), polls keep their pace.
        self.next_poll = if now < self.deadline {
            next_poll.min(self.deadline)
        } else {
            next_poll
        };
        self.report.next_poll_at_ms = Some(self.wall_ms(self.next_poll));
        Stepped {
            changed,
            conditions_changed,
            next: if terminate {
                Next::Terminate(self.next_poll)
            } else {
                Next::Poll(self.next_poll)
            },
        }
    }

    /// An operator (`by`: their token's name) asked to terminate the job: the next poll's step
    /// sends the platform's terminate (once), notes `terminated_by` in the record, and gives
    /// the job the check's `terminate_grace` to end (else it ends timed out, "terminate did
    /// not take").
    pub fn terminate_asked(&mut self, by: String) {
        self.terminate_by = Some(by);
    }

    /// A hint that the job may have ended (a callback): if the poll it asks for does not see
    /// the end yet, [`HINT_POLLS`] polls follow at the normal pace before the safety interval,
    /// so a callback sent before the status API shows the end costs about one interval.
    ///
    /// [`HINT_POLLS`]: crate::config::policy::HINT_POLLS
    pub fn hinted(&mut self) {
        self.follow_ups = 0;
        self.follow_ups_left = crate::config::policy::HINT_POLLS;
    }

    /// Runs the detectors at `now`; returns whether the conditions holding changed.
    fn detect(&mut self, now: Instant) -> bool {
        let now_ms = self.wall_ms(now);
        let views: Vec<detect::HostView<'_>> = self
            .report
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| detect::HostView {
                host: &h.host,
                ended: h.outcome.is_final(),
                ended_seen_ms: self.ended_seen.get(i).copied().filter(|&at| at != 0),
            })
            .collect();
        let observation = detect::Observation {
            now_ms,
            started_ms: self.report.started_at_ms,
            last_progress_ms: self.progress_ms,
            job_finished: false,
            hosts: &views,
            unanswered_since_ms: self.unanswered_since_ms,
        };
        let conditions = detect::detect(&observation, &self.check.poll.detect);
        drop(views);
        detect::update_log(&mut self.report.condition_log, &conditions, now_ms);
        let same = conditions
            .iter()
            .map(|c| (c.kind, c.since_ms, &c.hosts))
            .eq(self
                .report
                .conditions
                .iter()
                .map(|c| (c.kind, c.since_ms, &c.hosts)));
        if same {
            return false;
        }
        let kinds = |c: &[detect::Condition]| c.iter().map(|c| c.kind).collect::<Vec<_>>();
        crate::internal_events::ConditionsChanged {
            check: &self.check.name,
            execution_id: &self.report.execution_id,
            before: &kinds(&self.report.conditions),
            after: &kinds(&conditions),
        }
        .emit();
        self.report.conditions = conditions;
        true
    }

    /// Takes in an answer that came outside the schedule (after a cancel's terminate).
    pub fn take_in(&mut self, snapshot: &JobSnapshot) {
        self.answered += 1;
        self.report
            .merge_snapshot(snapshot, self.job.step_instance_id);
    }

    /// The end of polling: conditions cleared, the final state and its reason decided
    /// ([`decide`]) at `now`. Returns whether the hosts' logs are to be fetched (not for a
    /// job the platform no longer knows); the record then says so (`logs_pending`).
    pub fn end(&mut self, end: &PollEnd, now: Instant) -> bool {
        let held: Vec<detect::ConditionKind> =
            self.report.conditions.iter().map(|c| c.kind).collect();
        if !held.is_empty() {
            crate::internal_events::ConditionsChanged {
                check: &self.check.name,
                execution_id: &self.report.execution_id,
                before: &held,
                after: &[],
            }
            .emit();
        }
        let now_ms = self.wall_ms(now);
        self.report.conditions.clear();
        detect::update_log(&mut self.report.condition_log, &[], now_ms);
        self.report.last_platform_error = self.last_error.as_ref().map(ToString::to_string);
        self.report.next_poll_at_ms = None;
        let hosts: Vec<TrackedHost> = self
            .report
            .hosts
            .iter()
            .map(TrackedHost::from_report)
            .collect();
        // The last answer this process saw: its job status is in the record.
        let last = (self.answered > 0)
            .then_some(self.report.job_status)
            .flatten()
            .map(|status| JobSnapshot {
                status,
                label: Label {
                    en: self
                        .report
                        .job_status_label
                        .clone()
                        .unwrap_or_default()
                        .into(),
                    zh: "".into(),
                },
                finished: matches!(end, PollEnd::Finished),
                step_instance_id: self.job.step_instance_id,
                hosts: Vec::new(),
            });
        let observed = Observed {
            end: end.clone(),
            last: last.as_ref(),
            hosts: &hosts,
            last_error: self.last_error.as_deref(),
            earlier_job_status: self.report.job_status.filter(|_| last.is_none()),
            fail_when: self.check.fail_when,
        };
        let (state, reason) = decide(&observed);
        self.report
            .finish(state, reason, now.saturating_duration_since(self.started));
        self.report.mark_unreported_unknown();
        let fetch = !matches!(end, PollEnd::NotFound { .. });
        self.report.logs_pending = fetch;
        fetch
    }

    /// One poll: the status call (quick retries on transient errors), then `called` (the
    /// engine frees the call's place in its pool there: a slow store never holds back other
    /// executions' polls), the step, a save when something a reader sees changed, and the
    /// terminate the step asks for. Returns the end when polling is over.
    pub async fn poll_turn(
        &mut self,
        journal: &dyn Journal,
        observer: &mut dyn Observer,
        called: impl FnOnce() + Send,
    ) -> Option<PollEnd> {
        let asked = Instant::now();
        let answer = snapshot_with_retries(&*self.platform, &self.job, &self.report.platform).await;
        called();
        if let Err(e) = &answer {
            note_failure(&self.report.platform, e, None);
            observer.on_event(&TrackerEvent::PollFailed { error: e });
        }
        let stepped = self.on_answer(&answer, asked, Instant::now(), rand::random_range(0.0..1.0));
        if let Ok(snapshot) = &answer {
            observer.on_event(&TrackerEvent::Snapshot {
                snapshot,
                hosts: &self.report.hosts,
            });
        }
        if stepped.conditions_changed {
            observer.on_event(&TrackerEvent::Conditions {
                conditions: &self.report.conditions,
            });
        }
        // The end is saved by `end_turn`, with its decision.
        if stepped.changed && !matches!(stepped.next, Next::End(_)) {
            save(journal, &self.report).await;
        }
        match stepped.next {
            Next::Poll(_) => None,
            Next::Terminate(_) => {
                if let Err(e) = self.platform.terminate(&self.job).await {
                    note_failure(&self.report.platform, &e, None);
                }
                None
            }
            Next::End(end) => Some(end),
        }
    }

    /// Decides the end ([`Follow::end`]) and records it before any log is fetched. Returns
    /// whether the logs are to be fetched ([`Follow::logs_turn`]).
    pub async fn end_turn(&mut self, end: &PollEnd, journal: &dyn Journal) -> bool {
        let fetch = self.end(end, Instant::now());
        save(journal, &self.report).await;
        fetch
    }

    /// Fetches every host's log ([`super::logs::fetch_logs`]), then `called` (as for
    /// [`Follow::poll_turn`]), and records them.
    pub async fn logs_turn(
        &mut self,
        journal: &dyn Journal,
        observer: &mut dyn Observer,
        called: impl FnOnce() + Send,
    ) {
        observer.on_event(&TrackerEvent::FetchingLogs {
            hosts: self.report.hosts.len(),
        });
        super::logs::fetch_logs(
            &*self.platform,
            &self.job,
            self.check.log_max_bytes,
            &mut self.report,
        )
        .await;
        called();
        self.report.logs_pending = false;
        save(journal, &self.report).await;
    }
}

/// One status call, retried [`CALL_RETRIES`] times on a transient error (honouring the
/// platform's `retry_after`).
async fn snapshot_with_retries(
    platform: &dyn Platform,
    job: &JobRef,
    platform_name: &str,
) -> Result<JobSnapshot, PlatformError> {
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(2))
        .with_max_times(CALL_RETRIES)
        .with_jitter();
    (|| platform.snapshot(job))
        .retry(backoff)
        .when(PlatformError::is_transient)
        .adjust(|e: &PlatformError, d| d.map(|d| e.retry_after.map_or(d, |r| r.max(d))))
        .notify(|e: &PlatformError, d| note_failure(platform_name, e, Some(d)))
        .await
}
