//! Follows one execution from trigger to its true end: submit (reconciling before any
//! resubmit, [`trigger`]), poll on the check's [`PollPolicy`] ([`follow`]: the execution at
//! rest as data and one step per answer), decide the final state with a reason a person can
//! act on ([`decide()`], pure), then fetch every host's log, failing hosts first ([`logs`]).
//! In the daemon one scheduler ([`engine`]) drives every followed execution; `jobwatch
//! exec` drives its one execution with [`Execution::run`].
//!
//! Transient platform errors are retried (backon) and never make a job fail; they are kept
//! in the report.

pub mod decide;
pub mod detect;
pub mod engine;
pub mod follow;
pub mod logs;
pub mod report;
#[cfg(test)]
mod scripted_tests;
pub mod trigger;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use self::decide::{Observed, PollEnd, TrackedHost, decide};
pub use self::follow::Follow;
pub use self::report::{ExecutionReport, HostReport};
pub use self::trigger::Phase;
use crate::config::CheckConfig;
pub use crate::config::policy::{FailWhen, OnDeadline, PollPolicy};
use crate::internal_events::PlatformRequestFailed;
use crate::model::JobSnapshot;
use crate::platform::{JobRef, Platform, PlatformError, SubmitRequest};

/// bk-job's `task_name` limit (API.md §3).
const TASK_NAME_MAX_CHARS: usize = 512;

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
        /// Every host, merged (configured hosts not yet reported have no status).
        hosts: &'a [HostReport],
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

/// The monotonic instant matching the report's wall-clock start (for deadlines that survive a
/// restart).
pub(crate) fn started_instant(report: &ExecutionReport) -> Instant {
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

pub use crate::model::execution_id_of_task;

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

    /// The URL the platform should call back at the job's end, if the daemon takes
    /// callbacks for the execution's platform (`[callbacks]`); `None` by default.
    fn callback_url(&self, _report: &ExecutionReport) -> Option<String> {
        None
    }
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

/// Emits a failed platform call (log line + metric); `retry_in` when it is retried.
pub(crate) fn note_failure(platform: &str, e: &PlatformError, retry_in: Option<Duration>) {
    PlatformRequestFailed {
        platform,
        api: e.api,
        class: e.class,
        error: e,
        retry_in,
    }
    .emit();
}

/// Saves through `journal`; a failure is emitted ([`emit_write_failure`]) and returned as
/// false.
pub(crate) async fn save(journal: &dyn Journal, report: &ExecutionReport) -> bool {
    match journal.save(report).await {
        Ok(()) => true,
        Err(e) => {
            emit_write_failure(&report.execution_id, &e);
            false
        }
    }
}

/// The journal's refusal of a write because the execution is no longer this process's to
/// write (several replicas: its shard moved to another replica, which follows it from what is
/// stored). Expected when shards move: not a store failure.
#[derive(Debug, thiserror::Error)]
#[error("execution {0} moved to another replica (its shard's lease is held elsewhere now)")]
pub struct MovedAway(pub String);

/// Emits a write the journal did not keep: a store failure (`StoreWriteFailed`: logged at
/// ERROR and counted), or, for an execution that moved to another replica ([`MovedAway`]),
/// a DEBUG line only.
pub(crate) fn emit_write_failure(execution_id: &str, e: &JournalError) {
    if e.0.is::<MovedAway>() {
        tracing::debug!(execution_id, error = %e, "Write dropped: the execution moved to another replica.");
        return;
    }
    crate::internal_events::StoreWriteFailed {
        execution_id,
        error: e,
    }
    .emit();
}

/// One execution of a check on a platform, driven in this task (`jobwatch exec`, tests); the
/// daemon uses its parts: [`Execution::trigger_new`], [`Execution::trigger_resumed`], then
/// [`engine::Engine`].
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
        note_failure(self.platform_name, e, retry_in);
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
            callback_url: self.journal.callback_url(report),
        }
    }

    /// Runs a new execution to its end and returns the report. Never panics on platform
    /// input; every end has a state and a reason.
    pub async fn run(&self, observer: &mut dyn Observer) -> ExecutionReport {
        let report = self.new_report();
        self.start(report, observer).await
    }

    /// Runs `report` (from [`Execution::new_report`], never submitted) to its end: records
    /// it, submits, follows. If it cannot be recorded, nothing is submitted.
    pub async fn start(
        &self,
        report: ExecutionReport,
        observer: &mut dyn Observer,
    ) -> ExecutionReport {
        let phase = Box::pin(self.trigger_new(Box::new(report), observer)).await;
        *self.follow(phase, observer).await
    }

    /// Resumes a stored execution that had not ended and runs it to its end (see
    /// [`Execution::trigger_resumed`]).
    pub async fn resume(
        &self,
        report: ExecutionReport,
        observer: &mut dyn Observer,
    ) -> ExecutionReport {
        let phase = Box::pin(self.trigger_resumed(Box::new(report), observer)).await;
        *self.follow(phase, observer).await
    }

    /// Polls a triggered job to its end in this task, saving every change, then fetches the
    /// logs. Stop leaves it as saved; cancel sends a terminate and ends it `cancelled`.
    async fn follow(&self, phase: Phase, observer: &mut dyn Observer) -> Box<ExecutionReport> {
        let (report, job, started) = match phase {
            Phase::Done(report) => return report,
            Phase::Follow {
                report,
                job,
                started,
            } => (report, job, started),
        };
        let mut follow = Follow::new(
            report,
            job,
            Arc::new(self.check.clone()),
            self.platform.clone(),
            started,
            Instant::now(),
            rand::random_range(0.0..1.0),
        );
        let end = loop {
            tokio::select! {
                () = tokio::time::sleep_until(follow.next_poll()) => {}
                () = self.cancel.cancelled() => break PollEnd::Cancelled,
                () = self.stop.cancelled() => {
                    save(self.journal, &follow.report).await;
                    return follow.report;
                }
            }
            if let Some(end) = Box::pin(follow.poll_turn(self.journal, observer, || {})).await {
                break end;
            }
        };
        if end == PollEnd::Cancelled {
            self.stop_after_cancel(&mut follow).await;
        }
        if follow.end_turn(&end, self.journal).await {
            Box::pin(follow.logs_turn(self.journal, observer, || {})).await;
        }
        follow.report
    }

    /// After a cancel: sends a terminate (once) and polls until the platform confirms the
    /// job ended or [`CANCEL_GRACE`] passes.
    async fn stop_after_cancel(&self, follow: &mut Follow) {
        if let Err(e) = self.platform.terminate(&follow.job).await {
            self.note_failure(&e, None);
        }
        let until = Instant::now() + CANCEL_GRACE;
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Ok(snapshot) = self.platform.snapshot(&follow.job).await {
                follow.take_in(&snapshot);
                if snapshot.finished {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_name_is_bounded_and_keeps_the_id() {
        let id = "0193a1b2-0000-7000-8000-000000000000";
        let name = task_name(&"x".repeat(600), id);
        assert_eq!(name.chars().count(), TASK_NAME_MAX_CHARS);
        assert!(name.ends_with(id));
        assert_eq!(task_name("disk", id), format!("jobwatch:disk:{id}"));
        assert_eq!(execution_id_of_task(&name), Some(id));
        assert_eq!(execution_id_of_task(&task_name("a:b", id)), Some(id));
        for other in ["disk", "jobwatch:disk", "jobwatch:disk:", "other:disk:x"] {
            assert_eq!(execution_id_of_task(other), None, "{other}");
        }
    }
}
