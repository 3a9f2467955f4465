//! The trigger: an execution's submit, with the durable `submitting` mark written just
//! before it leaves, retries of transient failures, and the reconcile (through
//! [`crate::platform::Platform::find_job`], by task name) of every submit that may have created a job — on a
//! failure and after a restart — before anything is submitted again.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::time::Instant;

use super::{Execution, ExecutionReport, Journal, Observer, TrackerEvent, save, started_instant};
use crate::model::{ExecutionState, TriggerStatus};
use crate::platform::{ErrorClass, JobRef, PlatformError, SubmitGate, SubmitRequest};

/// How long a submit keeps being retried while the platform answers transiently: a blip of
/// the platform must not become a failed trigger.
const TRIGGER_RETRY_BUDGET: Duration = Duration::from_secs(60);

/// How long (at most) between reconcile attempts of a resumed execution whose submit may have
/// left, while the platform cannot answer.
const RECONCILE_MAX_DELAY: Duration = Duration::from_secs(30);

/// Where the trigger left an execution.
pub enum Phase {
    /// The platform has the job: follow it from `started` (the execution's start on the
    /// monotonic clock).
    Follow {
        /// The record, `running`.
        report: Box<ExecutionReport>,
        /// The job.
        job: JobRef,
        /// The execution's start.
        started: Instant,
    },
    /// Nothing to follow: ended (trigger failed, cancelled) or stopped by shutdown (left as
    /// recorded, for the next start).
    Done(Box<ExecutionReport>),
}

impl Phase {
    /// A stored execution that needs no trigger: already triggered (`Ok(Follow)`, its start
    /// rebuilt from the wall clock) or final (`Ok(Done)`); otherwise the report back.
    pub fn resumed(report: Box<ExecutionReport>) -> Result<Phase, Box<ExecutionReport>> {
        if report.state.is_final() {
            return Ok(Phase::Done(report));
        }
        let Some(job) = JobRef::of_report(&report) else {
            return Err(report);
        };
        match report.trigger_status {
            TriggerStatus::Triggered => Ok(Phase::Follow {
                started: started_instant(&report),
                job,
                report,
            }),
            _ => Err(report),
        }
    }
}

/// The submit's gate: at the last moment before the request leaves, the execution is saved
/// as [`TriggerStatus::Submitting`] (once). A crash before that leaves it `pending` — it never
/// left and is submitted at the next start; a crash after leaves it `submitting` — it is
/// reconciled, never submitted again. If the mark cannot be saved, nothing is sent.
pub(super) struct MarkSubmitting<'a> {
    journal: &'a dyn Journal,
    /// The execution as recorded before its submit.
    report: &'a ExecutionReport,
    /// When the mark was saved (Unix ms); 0 until then.
    marked_at_ms: std::sync::atomic::AtomicI64,
}

impl<'a> MarkSubmitting<'a> {
    pub(super) fn new(journal: &'a dyn Journal, report: &'a ExecutionReport) -> Self {
        MarkSubmitting {
            journal,
            report,
            marked_at_ms: std::sync::atomic::AtomicI64::new(0),
        }
    }

    /// When the mark was saved, if it was.
    pub(super) fn marked_at(&self) -> Option<i64> {
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
                super::emit_write_failure(&self.report.execution_id, &e);
                Err(crate::platform::GateClosed(format!(
                    "the submit could not be recorded first ({e})"
                )))
            }
        }
    }
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

impl Execution<'_> {
    /// Submits, retrying transient failures; a failure that may have created a job is
    /// reconciled through [`crate::platform::Platform::find_job`] before any resubmit, and never resubmitted
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
    /// Records `report` (from [`Execution::new_report`], never submitted) and submits it.
    /// If it cannot be recorded, nothing is submitted.
    pub async fn trigger_new(
        &self,
        mut report: Box<ExecutionReport>,
        observer: &mut dyn Observer,
    ) -> Phase {
        // A new execution started when its record was made (`started_at_ms`, a moment ago,
        // maybe longer on a busy machine): its deadline and duration count from then, on the
        // monotonic clock its polls use, so `ended_at` is the wall time the end was seen.
        let started = started_instant(&report);
        if !save(self.journal, &report).await {
            let elapsed = started.elapsed();
            report.finish(
                ExecutionState::TriggerFailed,
                "the execution could not be recorded before its submit, so nothing was submitted"
                    .into(),
                elapsed,
            );
            return Phase::Done(report);
        }
        self.submit(report, observer, started).await
    }

    /// Submits a recorded `pending` execution (its submit surely never left); `started` is
    /// the execution's start on the monotonic clock.
    async fn submit(
        &self,
        mut report: Box<ExecutionReport>,
        observer: &mut dyn Observer,
        started: Instant,
    ) -> Phase {
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
                save(self.journal, &report).await;
                return Phase::Done(report);
            }
            Trigger::Unknown(e) => {
                report.trigger_failed(TriggerStatus::TriggerUnknown, &e, started.elapsed());
                save(self.journal, &report).await;
                return Phase::Done(report);
            }
            Trigger::Cancelled => {
                report.finish(
                    ExecutionState::Cancelled,
                    "interrupted before the platform accepted the job".into(),
                    started.elapsed(),
                );
                save(self.journal, &report).await;
                return Phase::Done(report);
            }
            Trigger::Stopped => return Phase::Done(report),
        };
        self.adopt(report, job, started, observer).await
    }

    /// Resumes a stored execution that had not ended (after a restart or a takeover):
    ///
    /// * `pending`: its submit never left (the mark [`TriggerStatus::Submitting`] is written
    ///   before it leaves): it is submitted now.
    /// * `submitting` or `trigger_unknown`: the submit may have left. It is reconciled through
    ///   [`crate::platform::Platform::find_job`] (its `task_name` carries the execution id) — the job found is
    ///   adopted, or the execution ends `trigger_failed` "not found on the platform". It is
    ///   never submitted again. While the platform cannot answer, reconciling goes on (until
    ///   stopped).
    /// * triggered and `running`: polling goes on ([`Phase::resumed`]); the deadline still
    ///   counts from the start.
    /// * anything final is returned as it is.
    pub async fn trigger_resumed(
        &self,
        report: Box<ExecutionReport>,
        observer: &mut dyn Observer,
    ) -> Phase {
        let report = match Phase::resumed(report) {
            Ok(phase) => return phase,
            Err(report) => report,
        };
        let mut report = report;
        // Started in an earlier process: the start is rebuilt from the wall clock.
        let started = started_instant(&report);
        if report.trigger_status == TriggerStatus::Pending {
            return self.submit(report, observer, started).await;
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
            save(self.journal, &report).await;
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
                () = self.stop.cancelled() => return Phase::Done(report),
                () = self.cancel.cancelled() => return Phase::Done(report),
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
                save(self.journal, &report).await;
                return self.submit(report, observer, started).await;
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
                save(self.journal, &report).await;
                return Phase::Done(report);
            }
            None => return Phase::Done(report),
        };
        self.adopt(report, job, started, observer).await
    }

    /// Records that the platform has `job` for `report` and hands it on to be followed.
    async fn adopt(
        &self,
        mut report: Box<ExecutionReport>,
        job: JobRef,
        started: Instant,
        observer: &mut dyn Observer,
    ) -> Phase {
        report.triggered(&job);
        save(self.journal, &report).await;
        observer.on_event(&TrackerEvent::Triggered { job: &job });
        Phase::Follow {
            report,
            job,
            started,
        }
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
}
