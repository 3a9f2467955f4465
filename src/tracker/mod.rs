//! Follows one execution from trigger to its true end: submit (reconciling before any
//! resubmit), poll on the check's [`PollPolicy`], decide the final state with a reason a
//! person can act on, then fetch every host's log (failing hosts first).
//!
//! Transient platform errors are retried (backon) and never make a job fail; they are kept
//! in the report. The decision itself is [`decide`], a pure function.

pub mod detect;
pub mod report;
#[cfg(test)]
mod scripted_tests;

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder, Retryable};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use self::report::{ExecutionReport, HostReport};
use crate::config::CheckConfig;
pub use crate::config::policy::{FailWhen, OnDeadline, PollPolicy};
use crate::internal_events::PlatformRequestFailed;
use crate::model::{
    ExecutionState, Host, HostOutcome, HostStatus, JobSnapshot, LogTail, TriggerStatus,
};
use crate::platform::{ErrorClass, JobRef, Platform, PlatformError, SubmitGate, SubmitRequest};

/// bk-job's `task_name` limit (API.md §3).
const TASK_NAME_MAX_CHARS: usize = 512;

/// How long a submit keeps being retried while the platform answers transiently: a blip of
/// the platform must not become a failed trigger.
const TRIGGER_RETRY_BUDGET: Duration = Duration::from_secs(60);

/// Quick retries of one poll on a transient error, before waiting for the next scheduled
/// poll (the poll loop itself is the long-term retry).
const CALL_RETRIES: usize = 3;

/// How long (in backoff sleeps) one batch of logs keeps being retried.
const LOG_RETRY_BUDGET: Duration = Duration::from_secs(20);

/// How long a cancelled execution waits for the platform to confirm the job stopped.
const CANCEL_GRACE: Duration = Duration::from_secs(10);

/// What the tracker tells its observer while it works (progress display, logs).
#[derive(Debug)]
pub enum TrackerEvent<'a> {
    /// The submit is about to leave.
    Submitting {
        /// The job's name on the platform.
        task_name: &'a str,
    },
    /// A submit failed transiently and will be retried (after reconciling when needed).
    SubmitRetry {
        /// What failed.
        error: &'a PlatformError,
    },
    /// The platform created the job.
    Triggered {
        /// The new job.
        job: &'a JobRef,
    },
    /// A status answer, with every host known so far (configured hosts not yet reported
    /// have no status).
    Snapshot {
        /// The answer.
        snapshot: &'a JobSnapshot,
        /// Every host, merged.
        hosts: &'a [TrackedHost],
    },
    /// A poll got no usable answer (after quick retries).
    PollFailed {
        /// What failed.
        error: &'a PlatformError,
    },
    /// The conditions holding changed (raised or cleared).
    Conditions {
        /// The conditions holding now (empty: all cleared).
        conditions: &'a [detect::Condition],
    },
    /// The job ended (or was given up); logs are being fetched.
    FetchingLogs {
        /// How many hosts.
        hosts: usize,
    },
}

/// Receives [`TrackerEvent`]s.
pub trait Observer: Send {
    /// Called in order, from the tracking task.
    fn on_event(&mut self, event: &TrackerEvent<'_>);
}

/// An observer that ignores everything.
pub struct Silent;

impl Observer for Silent {
    fn on_event(&mut self, _: &TrackerEvent<'_>) {}
}

/// A host the execution targets or the platform reported, with its latest status.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackedHost {
    /// Identity, completed from every answer.
    pub host: Host,
    /// Latest status; `None` until the platform reports the host.
    pub status: Option<HostStatus>,
}

impl TrackedHost {
    /// A tracked host from its stored report (status labels are looked up again).
    pub fn from_report(h: &HostReport) -> Self {
        let status = h.status.map(|code| {
            let (outcome, label) = crate::platform::bkjob::codes::host_outcome(code);
            HostStatus {
                host: h.identity.clone(),
                status: code,
                outcome,
                label,
                exit_code: h.exit_code,
                error_code: h.error_code,
                tag: h.tag.clone(),
                duration: h.duration_seconds.map(Duration::from_secs_f64),
            }
        });
        TrackedHost {
            host: h.identity.clone(),
            status,
        }
    }

    /// The host's outcome; a host never reported counts as `waiting`.
    pub fn outcome(&self) -> HostOutcome {
        self.status
            .as_ref()
            .map_or(HostOutcome::Waiting, |s| s.outcome)
    }

    /// The host's outcome once the execution ended: a host never reported is `unknown` (as
    /// the report shows it, [`ExecutionReport::mark_unreported_unknown`]).
    pub fn end_outcome(&self) -> HostOutcome {
        self.status
            .as_ref()
            .map_or(HostOutcome::Unknown, |s| s.outcome)
    }
}

/// Merges a snapshot's hosts into the tracked list: configured hosts are matched by id or by
/// control area + IP; hosts the platform adds (topology targets) are appended.
pub fn merge_hosts(tracked: &mut Vec<TrackedHost>, snapshot: &JobSnapshot) {
    for reported in &snapshot.hosts {
        match tracked.iter_mut().find(|t| t.host.same_as(&reported.host)) {
            Some(t) => {
                t.host.merge_from(&reported.host);
                t.status = Some(reported.clone());
            }
            None => tracked.push(TrackedHost {
                host: reported.host.clone(),
                status: Some(reported.clone()),
            }),
        }
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
                "the platform no longer knows the job instance (1244006, {polls} polls in a row); last seen: {}",
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

/// The monotonic instant matching the report's wall-clock start (for deadlines that survive a
/// restart).
fn started_instant(report: &ExecutionReport) -> Instant {
    let age = (crate::time::now_ms() - report.started_at_ms).max(0) as u64;
    Instant::now()
        .checked_sub(Duration::from_millis(age))
        .unwrap_or_else(Instant::now)
}

/// The platform's name for an execution: `jobwatch:<check>:<execution id>`, at most 512
/// characters (the check name is shortened if needed; the id is always whole).
pub fn task_name(check: &str, execution_id: &str) -> String {
    let room = TASK_NAME_MAX_CHARS - "jobwatch:".len() - 1 - execution_id.chars().count();
    let check: String = check.chars().take(room).collect();
    format!("jobwatch:{check}:{execution_id}")
}

/// Why a [`Journal`] could not keep a state change: the keeper's own error (the store's, in
/// the daemon), as its source.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct JournalError(pub Box<dyn std::error::Error + Send + Sync>);

/// Where an execution's state is kept as it changes: the store in the daemon, nothing for
/// `jobwatch exec`. [`Journal::save`] is called with every state change, before the side
/// effects that change causes (the submit, the log fetch).
#[async_trait::async_trait]
pub trait Journal: Send + Sync {
    /// Persists the execution's current state (insert or update by `execution_id`).
    async fn save(&self, report: &ExecutionReport) -> Result<(), JournalError>;
}

/// A journal that keeps nothing (`jobwatch exec`).
pub struct NoJournal;

#[async_trait::async_trait]
impl Journal for NoJournal {
    async fn save(&self, _: &ExecutionReport) -> Result<(), JournalError> {
        Ok(())
    }
}

static NO_JOURNAL: NoJournal = NoJournal;

/// The submit's gate: at the last moment before the request leaves, the execution is saved
/// as [`TriggerStatus::Submitting`] (once). A crash before that leaves it `pending` — it never
/// left and is submitted at the next start; a crash after leaves it `submitting` — it is
/// reconciled, never submitted again. If the mark cannot be saved, nothing is sent.
struct MarkSubmitting<'a> {
    journal: &'a dyn Journal,
    /// The execution as recorded before its submit.
    report: &'a ExecutionReport,
    /// When the mark was saved (Unix ms); 0 until then.
    marked_at_ms: std::sync::atomic::AtomicI64,
}

impl<'a> MarkSubmitting<'a> {
    fn new(journal: &'a dyn Journal, report: &'a ExecutionReport) -> Self {
        MarkSubmitting {
            journal,
            report,
            marked_at_ms: std::sync::atomic::AtomicI64::new(0),
        }
    }

    /// When the mark was saved, if it was.
    fn marked_at(&self) -> Option<i64> {
        Some(self.marked_at_ms.load(std::sync::atomic::Ordering::SeqCst)).filter(|&t| t > 0)
    }
}

#[async_trait::async_trait]
impl SubmitGate for MarkSubmitting<'_> {
    async fn leaving(&self) -> Result<(), crate::platform::GateClosed> {
        if self.marked_at().is_some() {
            return Ok(());
        }
        let now = crate::time::now_ms();
        let mut marked = self.report.clone();
        marked.trigger_status = TriggerStatus::Submitting;
        marked.submit_marked_at_ms = Some(now);
        match self.journal.save(&marked).await {
            Ok(()) => {
                self.marked_at_ms
                    .store(now.max(1), std::sync::atomic::Ordering::SeqCst);
                Ok(())
            }
            Err(e) => {
                crate::internal_events::StoreWriteFailed {
                    execution_id: &self.report.execution_id,
                    error: &e,
                }
                .emit();
                Err(crate::platform::GateClosed(format!(
                    "the submit could not be recorded first ({e})"
                )))
            }
        }
    }
}

/// One execution of a check on a platform.
pub struct Execution<'a> {
    /// The check.
    pub check: &'a CheckConfig,
    /// Its platform's name.
    pub platform_name: &'a str,
    /// Its platform.
    pub platform: Arc<dyn Platform>,
    /// Cancels the execution: a terminate is sent, then it ends `cancelled`.
    pub cancel: CancellationToken,
    /// Stops following without touching the job (shutdown): the execution stays `running`
    /// in the journal and is resumed by the next start.
    pub stop: CancellationToken,
    /// Where state changes go.
    pub journal: &'a dyn Journal,
}

enum Trigger {
    Triggered(JobRef),
    Failed(PlatformError),
    Unknown(PlatformError),
    Cancelled,
    /// Shutdown while retrying: the execution stays `pending` and is reconciled at the next
    /// start (a submit may have left).
    Stopped,
}

/// How long (at most) between reconcile attempts of a resumed execution whose submit may have
/// left, while the platform cannot answer.
const RECONCILE_MAX_DELAY: Duration = Duration::from_secs(30);

impl<'a> Execution<'a> {
    /// An execution with fresh cancel and stop tokens and no journal.
    pub fn new(
        check: &'a CheckConfig,
        platform_name: &'a str,
        platform: Arc<dyn Platform>,
    ) -> Self {
        Execution {
            check,
            platform_name,
            platform,
            cancel: CancellationToken::new(),
            stop: CancellationToken::new(),
            journal: &NO_JOURNAL,
        }
    }

    fn note_failure(&self, e: &PlatformError, retry_in: Option<Duration>) {
        PlatformRequestFailed {
            platform: self.platform_name,
            api: e.api,
            class: e.class,
            error: e,
            retry_in,
        }
        .emit();
    }

    /// Submits, retrying transient failures; a failure that may have created a job is
    /// reconciled through [`Platform::find_job`] before any resubmit, and never resubmitted
    /// while that stays unknown.
    async fn trigger(
        &self,
        request: &SubmitRequest<'_>,
        gate: &dyn SubmitGate,
        since_ms: i64,
        observer: &mut dyn Observer,
    ) -> Trigger {
        let give_up_at = Instant::now() + TRIGGER_RETRY_BUDGET;
        let backoff_builder = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(500))
            .with_max_delay(Duration::from_secs(10))
            .without_max_times()
            .with_jitter();
        let mut backoff = backoff_builder.build();
        let mut must_reconcile = false;
        loop {
            let error = if must_reconcile {
                match self.platform.find_job(request.task_name, since_ms).await {
                    Ok(Some(job)) => return Trigger::Triggered(job),
                    Ok(None) => {
                        // The platform answered: it is reachable again, so the next
                        // attempt waits the minimum, not an ever-growing delay.
                        must_reconcile = false;
                        backoff = backoff_builder.build();
                        continue;
                    }
                    Err(e) => e,
                }
            } else {
                observer.on_event(&TrackerEvent::Submitting {
                    task_name: request.task_name,
                });
                match self.platform.submit(request, gate).await {
                    Ok(job) => return Trigger::Triggered(job),
                    Err(e) if e.class != ErrorClass::Transient => {
                        self.note_failure(&e, None);
                        return Trigger::Failed(e);
                    }
                    Err(e) => {
                        must_reconcile = e.maybe_applied;
                        e
                    }
                }
            };
            // The whole budget is used: the last wait is cut to what is left of it, rather
            // than giving up early because the next backoff step would overshoot.
            let left = give_up_at.saturating_duration_since(Instant::now());
            let delay = backoff
                .next()
                .map(|d| d.min(left))
                .filter(|_| !left.is_zero());
            let Some(delay) = delay else {
                self.note_failure(&error, None);
                if !must_reconcile {
                    return Trigger::Failed(error);
                }
                // The budget is spent but a submit may have created a job: never end while
                // that is unknown. Ask until the platform answers.
                return match Box::pin(self.reconcile(request.task_name, since_ms)).await {
                    Some(Some(job)) => Trigger::Triggered(job),
                    Some(None) => Trigger::Failed(PlatformError {
                        message: format!(
                            "{}; the platform confirmed no job was created",
                            error.message
                        ),
                        ..error
                    }),
                    None if self.stop.is_cancelled() => Trigger::Stopped,
                    None => Trigger::Unknown(error),
                };
            };
            let delay = error.retry_after.map_or(delay, |r| r.max(delay));
            self.note_failure(&error, Some(delay));
            observer.on_event(&TrackerEvent::SubmitRetry { error: &error });
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.cancel.cancelled() => return Trigger::Cancelled,
                () = self.stop.cancelled() => return Trigger::Stopped,
            }
        }
    }

    async fn snapshot_with_retries(&self, job: &JobRef) -> Result<JobSnapshot, PlatformError> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(2))
            .with_max_times(CALL_RETRIES)
            .with_jitter();
        (|| self.platform.snapshot(job))
            .retry(backoff)
            .when(PlatformError::is_transient)
            .adjust(|e: &PlatformError, d| d.map(|d| e.retry_after.map_or(d, |r| r.max(d))))
            .notify(|e: &PlatformError, d| self.note_failure(e, Some(d)))
            .await
    }

    /// A new execution's first record: `pending`, with a fresh id and its task name.
    pub fn new_report(&self) -> ExecutionReport {
        let execution_id = uuid::Uuid::now_v7().to_string();
        let task = task_name(&self.check.name, &execution_id);
        ExecutionReport::new(
            execution_id,
            self.check,
            self.platform_name,
            self.platform.kind(),
            &task,
        )
    }

    fn request<'r>(&'r self, report: &'r ExecutionReport) -> SubmitRequest<'r> {
        SubmitRequest {
            task_name: &report.task_name,
            check: self.check,
        }
    }

    async fn save(&self, report: &ExecutionReport) -> bool {
        match self.journal.save(report).await {
            Ok(()) => true,
            Err(e) => {
                crate::internal_events::StoreWriteFailed {
                    execution_id: &report.execution_id,
                    error: &e,
                }
                .emit();
                false
            }
        }
    }

    /// Runs a new execution to its end and returns the report. Never panics on platform
    /// input; every end has a state and a reason.
    pub async fn run(&self, observer: &mut dyn Observer) -> ExecutionReport {
        let report = self.new_report();
        self.start(report, observer).await
    }

    /// Runs `report` (from [`Execution::new_report`], never submitted): records it, submits,
    /// follows. If it cannot be recorded, nothing is submitted.
    ///
    /// The report is boxed before the future is made, so that it is not stored in each
    /// nested state of the future (many thousands of executions wait at once).
    pub fn start<'s>(
        &'s self,
        report: ExecutionReport,
        observer: &'s mut dyn Observer,
    ) -> impl Future<Output = ExecutionReport> + 's {
        let report = Box::new(report);
        async move { *self.start_boxed(report, observer).await }
    }

    async fn start_boxed(
        &self,
        mut report: Box<ExecutionReport>,
        observer: &mut dyn Observer,
    ) -> Box<ExecutionReport> {
        // A new execution starts now, in this process (its record was made a moment ago): its
        // deadline counts from this instant, on the same clock as its polls.
        let started = Instant::now();
        if !self.save(&report).await {
            let elapsed = started.elapsed();
            report.finish(
                ExecutionState::TriggerFailed,
                "the execution could not be recorded before its submit, so nothing was submitted"
                    .into(),
                elapsed,
            );
            return report;
        }
        self.submit_and_follow(report, observer, started).await
    }

    /// Submits a recorded `pending` execution (its submit surely never left), then follows;
    /// `started` is the execution's start on the monotonic clock.
    async fn submit_and_follow(
        &self,
        mut report: Box<ExecutionReport>,
        observer: &mut dyn Observer,
        started: Instant,
    ) -> Box<ExecutionReport> {
        let request = self.request(&report);
        let gate = MarkSubmitting::new(self.journal, &report);
        // Reconciling looks for the job from the execution's start on (a resumed one was
        // accepted before the restart).
        let since_ms = report.started_at_ms.min(crate::time::now_ms());
        // Boxed: the trigger's retry state lives on the heap only while it runs, so a
        // followed execution at rest stays small (many thousands are at rest at once).
        let outcome = Box::pin(self.trigger(&request, &gate, since_ms, observer)).await;
        let marked_at = gate.marked_at();
        if let Some(at) = marked_at {
            report.submit_marked_at_ms = Some(at);
            if report.trigger_status == TriggerStatus::Pending {
                report.trigger_status = TriggerStatus::Submitting;
            }
        }
        let job = match outcome {
            Trigger::Triggered(job) => job,
            Trigger::Failed(e) => {
                report.trigger_failed(TriggerStatus::TriggerFailed, &e, started.elapsed());
                self.save(&report).await;
                return report;
            }
            Trigger::Unknown(e) => {
                report.trigger_failed(TriggerStatus::TriggerUnknown, &e, started.elapsed());
                self.save(&report).await;
                return report;
            }
            Trigger::Cancelled => {
                report.finish(
                    ExecutionState::Cancelled,
                    "interrupted before the platform accepted the job".into(),
                    started.elapsed(),
                );
                self.save(&report).await;
                return report;
            }
            Trigger::Stopped => return report,
        };
        report.triggered(&job);
        self.save(&report).await;
        observer.on_event(&TrackerEvent::Triggered { job: &job });
        self.follow(report, job, observer, started).await
    }

    /// Resumes a stored execution that had not ended (after a restart or a takeover):
    ///
    /// * `pending`: its submit never left (the mark [`TriggerStatus::Submitting`] is written
    ///   before it leaves): it is submitted now.
    /// * `submitting` or `trigger_unknown`: the submit may have left. It is reconciled through
    ///   [`Platform::find_job`] (its `task_name` carries the execution id) — the job found is
    ///   adopted, or the execution ends `trigger_failed` "not found on the platform". It is
    ///   never submitted again. While the platform cannot answer, reconciling goes on (until
    ///   stopped).
    /// * triggered and `running`: polling goes on; the deadline still counts from the start.
    /// * anything final is returned as it is.
    pub fn resume<'s>(
        &'s self,
        report: ExecutionReport,
        observer: &'s mut dyn Observer,
    ) -> impl Future<Output = ExecutionReport> + 's {
        let report = Box::new(report);
        async move { *self.resume_boxed(report, observer).await }
    }

    async fn resume_boxed(
        &self,
        mut report: Box<ExecutionReport>,
        observer: &mut dyn Observer,
    ) -> Box<ExecutionReport> {
        if report.state.is_final() {
            return report;
        }
        // Started in an earlier process: the start is rebuilt from the wall clock.
        let started = started_instant(&report);
        if let (TriggerStatus::Triggered, Some(id)) =
            (report.trigger_status, report.job_instance_id)
        {
            let job = JobRef {
                job_instance_id: id,
                step_instance_id: report.step_instance_id,
                name: None,
            };
            return self.follow(report, job, observer, started).await;
        }
        if report.trigger_status == TriggerStatus::Pending {
            return self.submit_and_follow(report, observer, started).await;
        }
        // Marked: the submit was let go at a known time. If the platform has no job even
        // once that submit can no longer create one, it never did: submit again.
        // (The mark time stays when a resume turns `submitting` into `trigger_unknown`, so a
        // second restart during the wait still knows it.)
        let marked_at = report
            .submit_marked_at_ms
            .or((report.trigger_status == TriggerStatus::Submitting)
                .then_some(report.started_at_ms));
        // Whether the submit left is unknown until the platform says.
        if report.trigger_status != TriggerStatus::TriggerUnknown {
            report.trigger_status = TriggerStatus::TriggerUnknown;
            self.save(&report).await;
        }
        let mut found = self
            .reconcile(&report.task_name, report.started_at_ms)
            .await;
        if let (Some(None), Some(marked_at)) = (&found, marked_at) {
            let settled_at = marked_at
                + i64::try_from(self.platform.submit_settle().as_millis()).unwrap_or(i64::MAX);
            let wait = Duration::from_millis((settled_at - crate::time::now_ms()).max(0) as u64);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.stop.cancelled() => return report,
                () = self.cancel.cancelled() => return report,
            }
            found = self
                .reconcile(&report.task_name, report.started_at_ms)
                .await;
            if let Some(None) = found {
                tracing::info!(
                    execution_id = %report.execution_id,
                    task_name = %report.task_name,
                    "The submit never reached the platform (no job once it could no longer create one); submitting it now."
                );
                report.trigger_status = TriggerStatus::Pending;
                report.submit_marked_at_ms = None;
                self.save(&report).await;
                return self.submit_and_follow(report, observer, started).await;
            }
        }
        let job = match found {
            Some(Some(job)) => job,
            Some(None) => {
                report.trigger_status = TriggerStatus::TriggerFailed;
                report.trigger_message = Some("not found on the platform".into());
                let elapsed = started.elapsed();
                report.finish(
                    ExecutionState::TriggerFailed,
                    format!(
                        "not found on the platform: the submit of \"{}\" had left when jobwatch stopped, but the platform has no such job; it was not submitted again",
                        report.task_name
                    ),
                    elapsed,
                );
                report.mark_unreported_unknown();
                self.save(&report).await;
                return report;
            }
            None => return report,
        };
        report.triggered(&job);
        self.save(&report).await;
        observer.on_event(&TrackerEvent::Triggered { job: &job });
        self.follow(report, job, observer, started).await
    }

    /// Looks for the job of an execution whose submit may have left, for as long as the
    /// platform cannot answer: `Some(Some(job))` found, `Some(None)` the platform has no such
    /// job, `None` interrupted (stop or cancel) first.
    async fn reconcile(&self, task_name: &str, since_ms: i64) -> Option<Option<JobRef>> {
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(500))
            .with_max_delay(RECONCILE_MAX_DELAY)
            .without_max_times()
            .with_jitter()
            .build();
        loop {
            match self.platform.find_job(task_name, since_ms).await {
                Ok(found) => return Some(found),
                Err(e) => {
                    let delay = backoff.next().unwrap_or(RECONCILE_MAX_DELAY);
                    self.note_failure(&e, Some(delay));
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = self.stop.cancelled() => return None,
                        () = self.cancel.cancelled() => return None,
                    }
                }
            }
        }
    }

    /// Polls a triggered job to its end, saving every change, then fetches the logs;
    /// `started` is the execution's start on the monotonic clock (its deadline counts from it).
    async fn follow(
        &self,
        mut report: Box<ExecutionReport>,
        mut job: JobRef,
        observer: &mut dyn Observer,
        started: Instant,
    ) -> Box<ExecutionReport> {
        let check = self.check;
        let report_started_ms = report.started_at_ms;
        let policy = &check.poll;
        let deadline_after = policy.deadline(Duration::from_secs(report.timeout_seconds.max(1)));
        let deadline = started + deadline_after;
        let mut hosts: Vec<TrackedHost> =
            report.hosts.iter().map(TrackedHost::from_report).collect();
        let mut last: Option<JobSnapshot> = None;
        let mut last_error: Option<PlatformError> = None;
        let mut answered = 0u32;
        let mut not_found = 0u32;
        let mut poll_index = 0u32;
        // A resumed execution (it was polled before) looks again within one interval, at a
        // random point: a restart with many executions in flight spreads their polls instead
        // of sending them all at once.
        let first_delay = if report.polls > 0 {
            policy
                .interval
                .max(policy.first_poll)
                .mul_f64(rand::random_range(0.0..1.0))
                .max(policy.first_poll.min(Duration::from_millis(100)))
        } else {
            policy.delay(0, 0.0)
        };
        let mut next_poll = Instant::now() + first_delay;
        // What the detectors need: the last change, when each host was first seen ended,
        // and since when no poll got an answer.
        let mut progress_ms: Option<i64> = None;
        let mut ended_seen: std::collections::HashMap<String, i64> =
            std::collections::HashMap::new();
        let mut unanswered_since: Option<i64> = None;
        let mut deadline = deadline;
        let mut terminate_sent = false;
        // Wall time of this execution: its recorded start plus monotonic time since, so
        // conditions do not jump with the system clock (and tests can pause time).
        let now_ms =
            || report_started_ms + i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let end = loop {
            // Past the deadline (only while the platform cannot answer), polls keep their pace.
            let wake = if Instant::now() < deadline {
                next_poll.min(deadline)
            } else {
                next_poll
            };
            tokio::select! {
                () = tokio::time::sleep_until(wake) => {}
                () = self.cancel.cancelled() => break PollEnd::Cancelled,
                () = self.stop.cancelled() => {
                    self.save(&report).await;
                    return report;
                }
            }
            report.polls += 1;
            let polled_ms = now_ms();
            match Box::pin(self.snapshot_with_retries(&job)).await {
                Ok(snapshot) => {
                    answered += 1;
                    not_found = 0;
                    last_error = None;
                    unanswered_since = None;
                    if job.step_instance_id.is_none() {
                        job.step_instance_id = snapshot.step_instance_id;
                    }
                    let before = hosts.clone();
                    merge_hosts(&mut hosts, &snapshot);
                    for h in hosts.iter().filter(|h| h.outcome().is_final()) {
                        ended_seen.entry(h.host.to_string()).or_insert(polled_ms);
                    }
                    observer.on_event(&TrackerEvent::Snapshot {
                        snapshot: &snapshot,
                        hosts: &hosts,
                    });
                    let changed = hosts != before || report.job_status != Some(snapshot.status);
                    if changed || progress_ms.is_none() {
                        progress_ms = Some(polled_ms);
                    }
                    report.record_snapshot(&snapshot, &hosts, job.step_instance_id);
                    let finished = snapshot.finished;
                    last = Some(snapshot);
                    if finished {
                        break if terminate_sent {
                            PollEnd::DeadlinePassed {
                                deadline: deadline_after,
                                terminated: Some(true),
                            }
                        } else {
                            PollEnd::Finished
                        };
                    }
                    if changed {
                        self.save(&report).await;
                    }
                }
                Err(e) => {
                    report.failed_polls += 1;
                    self.note_failure(&e, None);
                    observer.on_event(&TrackerEvent::PollFailed { error: &e });
                    if e.class == ErrorClass::NotFound {
                        unanswered_since = None;
                        not_found += 1;
                        if not_found >= policy.lost_after {
                            last_error = Some(e);
                            break PollEnd::NotFound { polls: not_found };
                        }
                    } else {
                        // Only a transient error means the platform cannot be asked; a
                        // refusal (permission, bad request) is an answer, and the deadline
                        // still decides, with the refusal in the reason.
                        if e.class == ErrorClass::Transient {
                            unanswered_since.get_or_insert(polled_ms);
                        } else {
                            unanswered_since = None;
                        }
                        not_found = 0;
                    }
                    last_error = Some(e);
                }
            }
            let views: Vec<detect::HostView> = hosts
                .iter()
                .map(|h| {
                    let key = h.host.to_string();
                    detect::HostView {
                        ended: h.outcome().is_final(),
                        ended_seen_ms: ended_seen.get(&key).copied(),
                        host: key,
                    }
                })
                .collect();
            let observation = detect::Observation {
                now_ms: now_ms(),
                started_ms: report_started_ms,
                last_progress_ms: progress_ms,
                job_finished: false,
                hosts: &views,
                unanswered_since_ms: unanswered_since,
            };
            let conditions = detect::detect(&observation, &policy.detect);
            detect::update_log(&mut report.condition_log, &conditions, observation.now_ms);
            if conditions
                .iter()
                .map(|c| (c.kind, c.since_ms, &c.hosts))
                .ne(report
                    .conditions
                    .iter()
                    .map(|c| (c.kind, c.since_ms, &c.hosts)))
            {
                let kinds = |c: &[detect::Condition]| c.iter().map(|c| c.kind).collect::<Vec<_>>();
                crate::internal_events::ConditionsChanged {
                    check: &check.name,
                    execution_id: &report.execution_id,
                    before: &kinds(&report.conditions),
                    after: &kinds(&conditions),
                }
                .emit();
                report.conditions = conditions;
                observer.on_event(&TrackerEvent::Conditions {
                    conditions: &report.conditions,
                });
                self.save(&report).await;
            }
            if let Some(attempts) = policy.max_attempts.filter(|&m| answered >= m) {
                break PollEnd::AttemptsExhausted { attempts };
            }
            // At the deadline the job is timed out — unless the platform cannot be asked: a
            // platform fault never decides an execution; polling goes on until it answers.
            if Instant::now() >= deadline && unanswered_since.is_none() {
                match (policy.on_deadline, terminate_sent) {
                    (OnDeadline::Leave, _) => {
                        break PollEnd::DeadlinePassed {
                            deadline: deadline_after,
                            terminated: None,
                        };
                    }
                    (OnDeadline::Terminate, false) => {
                        if let Err(e) = self.platform.terminate(&job).await {
                            self.note_failure(&e, None);
                        }
                        terminate_sent = true;
                        deadline = Instant::now() + policy.terminate_grace;
                    }
                    (OnDeadline::Terminate, true) => {
                        break PollEnd::DeadlinePassed {
                            deadline: deadline_after,
                            terminated: Some(false),
                        };
                    }
                }
            }
            poll_index += 1;
            next_poll = Instant::now() + policy.delay(poll_index, rand::random_range(0.0..1.0));
        };
        let held: Vec<detect::ConditionKind> = report.conditions.iter().map(|c| c.kind).collect();
        if !held.is_empty() {
            crate::internal_events::ConditionsChanged {
                check: &check.name,
                execution_id: &report.execution_id,
                before: &held,
                after: &[],
            }
            .emit();
        }
        report.conditions.clear();
        detect::update_log(&mut report.condition_log, &[], now_ms());
        if end == PollEnd::Cancelled {
            Box::pin(self.stop_after_cancel(&job, &mut hosts, &mut last)).await;
        }
        if let Some(s) = &last {
            report.record_snapshot(s, &hosts, job.step_instance_id);
        }
        report.last_platform_error = last_error.as_ref().map(ToString::to_string);
        let observed = Observed {
            end: end.clone(),
            last: last.as_ref(),
            hosts: &hosts,
            last_error: last_error.as_ref(),
            earlier_job_status: report.job_status.filter(|_| last.is_none()),
            fail_when: check.fail_when,
        };
        let (state, reason) = decide(&observed);
        report.finish(state, reason, started.elapsed());
        report.mark_unreported_unknown();
        // The end is recorded before the logs are fetched.
        let fetch = !matches!(end, PollEnd::NotFound { .. });
        report.logs_pending = fetch;
        self.save(&report).await;
        if fetch {
            observer.on_event(&TrackerEvent::FetchingLogs { hosts: hosts.len() });
            Box::pin(self.fetch_logs(&job, &mut report)).await;
            report.logs_pending = false;
            self.save(&report).await;
        }
        report
    }

    /// After a cancel: sends a terminate (once) and polls until the platform confirms the
    /// job ended or [`CANCEL_GRACE`] passes.
    async fn stop_after_cancel(
        &self,
        job: &JobRef,
        hosts: &mut Vec<TrackedHost>,
        last: &mut Option<JobSnapshot>,
    ) {
        if let Err(e) = self.platform.terminate(job).await {
            self.note_failure(&e, None);
        }
        let until = Instant::now() + CANCEL_GRACE;
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Ok(snapshot) = self.platform.snapshot(job).await {
                merge_hosts(hosts, &snapshot);
                let finished = snapshot.finished;
                *last = Some(snapshot);
                if finished {
                    return;
                }
            }
        }
    }

    /// Fetches the logs of every host, failing hosts first, in batches of at most 500, each
    /// batch retried for up to [`LOG_RETRY_BUDGET`]; a batch that still fails marks its hosts with the error and
    /// the others are still fetched.
    async fn fetch_logs(&self, job: &JobRef, report: &mut ExecutionReport) {
        let limit = self.check.log_max_bytes;
        let mut order: Vec<usize> = (0..report.hosts.len()).collect();
        order.sort_by_key(|&i| !report.hosts[i].outcome.is_failure());
        for batch in order.chunks(crate::platform::bkjob::LOG_BATCH_MAX_HOSTS) {
            let targets: Vec<Host> = batch
                .iter()
                .map(|&i| report.hosts[i].identity.clone())
                .collect();
            let backoff = ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(200))
                .with_max_delay(Duration::from_secs(2))
                .without_max_times()
                .with_total_delay(Some(LOG_RETRY_BUDGET))
                .with_jitter();
            let fetched = (|| self.platform.host_logs(job, &targets))
                .retry(backoff)
                .when(PlatformError::is_transient)
                .notify(|e: &PlatformError, d| self.note_failure(e, Some(d)))
                .await;
            match fetched {
                Ok(logs) => {
                    for &i in batch {
                        let host = &mut report.hosts[i];
                        match logs.iter().find(|l| l.host.same_as(&host.identity)) {
                            Some(log) => host.set_log(LogTail::bounded(&log.content, limit)),
                            None => {
                                host.log_error =
                                    Some("the platform returned no log for this host".into())
                            }
                        }
                    }
                }
                Err(e) => {
                    self.note_failure(&e, None);
                    for &i in batch {
                        report.hosts[i].log_error = Some(e.to_string());
                    }
                }
            }
        }
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
            },
            status,
            outcome,
            label,
            exit_code,
            error_code: None,
            tag: None,
            duration: None,
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

    fn tracked(snapshot: &JobSnapshot, configured: &[&str]) -> Vec<TrackedHost> {
        let mut hosts = configured
            .iter()
            .map(|ip| TrackedHost {
                host: Host::by_ip(0, *ip),
                status: None,
            })
            .collect();
        merge_hosts(&mut hosts, snapshot);
        hosts
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
    fn not_found_is_lost() {
        let (state, reason) = decide(&observed(PollEnd::NotFound { polls: 3 }, None, &[]));
        assert_eq!(state, ExecutionState::Lost);
        assert!(reason.contains("1244006"), "{reason}");
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

    #[test]
    fn task_name_is_bounded_and_keeps_the_id() {
        let id = "0193a1b2-0000-7000-8000-000000000000";
        let name = task_name(&"x".repeat(600), id);
        assert_eq!(name.chars().count(), TASK_NAME_MAX_CHARS);
        assert!(name.ends_with(id));
        assert_eq!(task_name("disk", id), format!("jobwatch:disk:{id}"));
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
