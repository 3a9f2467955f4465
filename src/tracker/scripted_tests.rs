//! The tracker's loop against a scripted platform, in paused (virtual) time: every decision
//! about when to poll, when to retry, when to give up, and when never to resubmit.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Execution, PollPolicy, Silent};
use crate::config::CheckConfig;
use crate::model::{ExecutionState, Host, JobSnapshot, TriggerStatus};
use crate::platform::bkjob::codes;
use crate::platform::{
    ErrorClass, HostLog, JobRef, Platform, PlatformError, SubmitGate, SubmitRequest,
};

type Answer<T> = Result<T, PlatformError>;

/// Answers from queues; the last answer of a queue repeats once the queue is drained.
#[derive(Default)]
struct Scripted {
    submits: Mutex<VecDeque<Answer<JobRef>>>,
    snapshots: Mutex<VecDeque<Answer<JobSnapshot>>>,
    finds: Mutex<VecDeque<Answer<Option<JobRef>>>>,
    calls: Mutex<Vec<(&'static str, Instant)>>,
}

fn next<T: Clone>(queue: &Mutex<VecDeque<T>>) -> T {
    let mut q = queue.lock().unwrap();
    if q.len() > 1 {
        q.pop_front().unwrap()
    } else {
        q.front().cloned().expect("scripted answer")
    }
}

impl Scripted {
    fn record(&self, api: &'static str) {
        self.calls.lock().unwrap().push((api, Instant::now()));
    }

    fn count(&self, api: &str) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(a, _)| *a == api)
            .count()
    }

    fn first(&self, api: &str) -> Instant {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .find(|(a, _)| *a == api)
            .expect("called")
            .1
    }
}

#[async_trait]
impl Platform for Scripted {
    fn kind(&self) -> &'static str {
        "scripted"
    }

    async fn submit(&self, _: &SubmitRequest<'_>, gate: &dyn SubmitGate) -> Answer<JobRef> {
        gate.leaving()
            .await
            .map_err(|why| crate::platform::gate_refused("fast_execute_script", &why))?;
        self.record("fast_execute_script");
        next(&self.submits)
    }

    async fn snapshot(&self, _: &JobRef) -> Answer<JobSnapshot> {
        self.record("get_job_instance_status");
        next(&self.snapshots)
    }

    async fn host_logs(&self, _: &JobRef, hosts: &[Host]) -> Answer<Vec<HostLog>> {
        self.record("batch_get_job_instance_ip_log");
        Ok(hosts
            .iter()
            .map(|h| HostLog {
                host: h.clone(),
                content: "log\n".into(),
            })
            .collect())
    }

    async fn terminate(&self, _: &JobRef) -> Answer<()> {
        self.record("operate_job_instance");
        self.snapshots
            .lock()
            .unwrap()
            .push_back(Ok(snapshot(11, &[403])));
        Ok(())
    }

    async fn find_job(&self, _: &str, _: i64) -> Answer<Option<JobRef>> {
        self.record("get_job_instance_list");
        next(&self.finds)
    }
}

fn job() -> JobRef {
    JobRef {
        step_instance_id: Some(8),
        ..JobRef::instance(7)
    }
}

fn snapshot(status: i64, hosts: &[i64]) -> JobSnapshot {
    JobSnapshot {
        status,
        label: codes::job_label(status),
        finished: codes::job_status(status).is_some_and(|s| s.finished),
        step_instance_id: Some(8),
        hosts: hosts
            .iter()
            .enumerate()
            .map(|(i, &code)| {
                let (outcome, label) = codes::host_outcome(code);
                crate::model::HostStatus {
                    host: Host::by_id(i as u64 + 1),
                    status: code,
                    outcome,
                    label,
                    exit_code: Some(0),
                    error_code: None,
                    tag: None,
                    duration: None,
                    facts: None,
                }
            })
            .collect(),
    }
}

fn transient() -> PlatformError {
    PlatformError {
        http_status: Some(502),
        ..PlatformError::transient("get_job_instance_status", "bad gateway")
    }
}

fn not_found() -> PlatformError {
    PlatformError {
        class: ErrorClass::NotFound,
        code: Some(codes::TASK_INSTANCE_NOT_EXIST),
        ..PlatformError::transient("get_job_instance_status", "作业实例不存在")
    }
}

fn check(poll: PollPolicy) -> CheckConfig {
    CheckConfig {
        account_alias: Some("root".into()),
        timeout: Duration::from_secs(60),
        log_max_bytes: 1024,
        poll,
        ..CheckConfig::new(
            "scripted",
            "scripted",
            "true",
            vec![Host::by_id(1), Host::by_id(2)],
        )
    }
}

async fn run(platform: &Arc<Scripted>, poll: PollPolicy) -> (super::ExecutionReport, Duration) {
    let check = check(poll);
    let execution = Execution::new(&check, "scripted", platform.clone());
    let start = Instant::now();
    let report = execution.run(&mut Silent).await;
    (report, start.elapsed())
}

fn scripted(snapshots: Vec<Answer<JobSnapshot>>) -> Arc<Scripted> {
    let p = Scripted::default();
    p.submits.lock().unwrap().push_back(Ok(job()));
    p.snapshots.lock().unwrap().extend(snapshots);
    Arc::new(p)
}

#[tokio::test(start_paused = true)]
async fn the_first_poll_comes_within_a_second_of_the_submit() {
    let p = scripted(vec![Ok(snapshot(3, &[9, 9]))]);
    let (report, _) = run(&p, PollPolicy::default()).await;
    assert_eq!(report.state, ExecutionState::Succeeded);
    let gap = p.first("get_job_instance_status") - p.first("fast_execute_script");
    assert!(gap <= Duration::from_secs(1), "first poll after {gap:?}");
    assert_eq!(p.count("batch_get_job_instance_ip_log"), 1);
    assert!(report.hosts.iter().all(|h| h.log == "log\n"));
}

#[tokio::test(start_paused = true)]
async fn transient_errors_between_answers_never_fail_the_job() {
    let p = scripted(vec![
        Err(transient()),
        Err(transient()),
        Err(transient()),
        Err(transient()),
        Err(transient()),
        Ok(snapshot(2, &[7, 5])),
        Err(transient()),
        Ok(snapshot(3, &[9, 3])),
    ]);
    let (report, _) = run(&p, PollPolicy::default()).await;
    assert_eq!(report.state, ExecutionState::Succeeded, "{}", report.reason);
    assert!(report.failed_polls >= 1);
    assert_eq!(report.last_platform_error, None, "the last poll succeeded");
}

#[tokio::test(start_paused = true)]
async fn a_not_found_streak_broken_by_an_answer_is_not_lost() {
    let nf = || Err(not_found());
    let p = scripted(vec![
        nf(),
        nf(),
        Ok(snapshot(2, &[7, 7])),
        nf(),
        nf(),
        Ok(snapshot(4, &[9, 104])),
    ]);
    let (report, _) = run(
        &p,
        PollPolicy {
            lost_after: 3,
            ..PollPolicy::default()
        },
    )
    .await;
    assert_eq!(report.state, ExecutionState::Failed, "{}", report.reason);
    let p = scripted(vec![Ok(snapshot(2, &[7, 7])), nf()]);
    let (report, _) = run(
        &p,
        PollPolicy {
            lost_after: 3,
            ..PollPolicy::default()
        },
    )
    .await;
    assert_eq!(report.state, ExecutionState::Lost, "{}", report.reason);
    assert_eq!(p.count("get_job_instance_status"), 4);
    assert_eq!(
        p.count("batch_get_job_instance_ip_log"),
        0,
        "no log call for a job the platform lost"
    );
}

#[tokio::test(start_paused = true)]
async fn max_attempts_counts_only_polls_that_got_an_answer() {
    let mut answers: Vec<Answer<JobSnapshot>> = (0..6).map(|_| Err(transient())).collect();
    answers.push(Ok(snapshot(2, &[7, 7])));
    let p = scripted(answers);
    let poll = PollPolicy {
        max_attempts: Some(2),
        ..PollPolicy::default()
    };
    let (report, _) = run(&p, poll).await;
    assert_eq!(report.state, ExecutionState::TimedOut);
    assert!(
        report.reason.contains("gave up after 2 polls"),
        "{}",
        report.reason
    );
}

#[tokio::test(start_paused = true)]
async fn a_job_that_never_ends_times_out_at_its_timeout_plus_slack() {
    let p = scripted(vec![Ok(snapshot(2, &[9, 7]))]);
    let poll = PollPolicy {
        deadline_slack: Duration::from_secs(30),
        ..PollPolicy::default()
    };
    let (report, elapsed) = run(&p, poll).await;
    assert_eq!(report.state, ExecutionState::TimedOut);
    // timeout 60 s + slack 30 s; the last poll is made at the deadline itself.
    assert!(
        elapsed >= Duration::from_secs(90) && elapsed < Duration::from_secs(91),
        "{elapsed:?}"
    );
    assert!(
        report.reason.contains("running 1: #2 (7 Running)"),
        "{}",
        report.reason
    );
    // Backoff: polls thin out to the 30 s cap instead of hammering the platform.
    assert!(
        p.count("get_job_instance_status") <= 10,
        "{} polls",
        p.count("get_job_instance_status")
    );
}

#[tokio::test(start_paused = true)]
async fn a_submit_with_an_unknown_effect_is_reconciled_and_never_resubmitted_blindly() {
    let lost_answer = PlatformError {
        maybe_applied: true,
        ..PlatformError::transient("fast_execute_script", "timed out")
    };
    // The job exists: adopted, one submit only.
    let p = scripted(vec![Ok(snapshot(3, &[9, 9]))]);
    p.submits
        .lock()
        .unwrap()
        .push_front(Err(lost_answer.clone()));
    p.finds.lock().unwrap().push_back(Ok(Some(job())));
    let (report, _) = run(&p, PollPolicy::default()).await;
    assert_eq!(report.state, ExecutionState::Succeeded);
    assert_eq!(p.count("fast_execute_script"), 1);

    // The list cannot be read for long past the trigger budget: the submit is never repeated,
    // and the execution does not end while its job may exist; once the list answers, the job
    // is adopted.
    let list_down = || Err(PlatformError::transient("get_job_instance_list", "refused"));
    let p = scripted(vec![Ok(snapshot(3, &[9, 9]))]);
    p.submits
        .lock()
        .unwrap()
        .push_front(Err(lost_answer.clone()));
    p.finds.lock().unwrap().extend((0..60).map(|_| list_down()));
    p.finds.lock().unwrap().push_back(Ok(Some(job())));
    let start = Instant::now();
    let (report, _) = run(&p, PollPolicy::default()).await;
    assert!(
        start.elapsed() > Duration::from_secs(600),
        "reconciled long past the 60 s budget"
    );
    assert_eq!(
        report.trigger_status,
        TriggerStatus::Triggered,
        "{}",
        report.reason
    );
    assert_eq!(report.state, ExecutionState::Succeeded);
    assert_eq!(p.count("fast_execute_script"), 1);

    // Interrupted while that is unknown: trigger_unknown, saying what to look for.
    let p = scripted(vec![Ok(snapshot(3, &[9, 9]))]);
    p.submits.lock().unwrap().push_front(Err(lost_answer));
    p.finds.lock().unwrap().push_back(list_down());
    let check = check(PollPolicy::default());
    let execution = Execution::new(&check, "scripted", p.clone());
    let cancel = execution.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(300)).await;
        cancel.cancel();
    });
    let report = execution.run(&mut Silent).await;
    assert_eq!(report.trigger_status, TriggerStatus::TriggerUnknown);
    assert_eq!(report.state, ExecutionState::TriggerFailed);
    assert_eq!(p.count("fast_execute_script"), 1);
    assert!(
        report.reason.contains(&report.task_name),
        "tells the user what to look for: {}",
        report.reason
    );
}

#[tokio::test(start_paused = true)]
async fn a_permanent_submit_error_is_not_retried() {
    let p = scripted(vec![Ok(snapshot(3, &[9, 9]))]);
    *p.submits.lock().unwrap() = VecDeque::from([Err(PlatformError::permanent(
        "fast_execute_script",
        Some(1244003),
        "账号[x]不存在",
    ))]);
    let (report, _) = run(&p, PollPolicy::default()).await;
    assert_eq!(report.state, ExecutionState::TriggerFailed);
    assert_eq!(report.trigger_code, Some(1244003));
    assert_eq!(p.count("fast_execute_script"), 1);
    assert_eq!(p.count("get_job_instance_status"), 0);
}

#[tokio::test(start_paused = true)]
async fn cancel_sends_one_terminate_and_waits_for_the_platform_to_confirm() {
    let p = scripted(vec![Ok(snapshot(2, &[9, 7]))]);
    let check = check(PollPolicy::default());
    let cancel = CancellationToken::new();
    let execution = Execution {
        cancel: cancel.clone(),
        ..Execution::new(&check, "scripted", p.clone())
    };
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        cancel.cancel();
    });
    let report = execution.run(&mut Silent).await;
    canceller.await.unwrap();
    assert_eq!(report.state, ExecutionState::Cancelled);
    assert_eq!(report.job_status, Some(11));
    assert_eq!(p.count("operate_job_instance"), 1);
}

/// Records the condition kinds of every saved state.
#[derive(Default)]
struct Recorder(Mutex<Vec<Vec<crate::tracker::detect::ConditionKind>>>);

#[async_trait]
impl crate::tracker::Journal for Recorder {
    async fn save(&self, report: &super::ExecutionReport) -> Result<(), super::JournalError> {
        self.0
            .lock()
            .unwrap()
            .push(report.conditions.iter().map(|c| c.kind).collect());
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_platform_is_a_condition_never_a_time_out_and_the_truth_comes_after() {
    use crate::tracker::detect::ConditionKind;
    // One answer, then the platform is down well past the deadline (60 s timeout + 60 s
    // slack), then it answers again: the job had succeeded.
    let mut answers: Vec<Answer<JobSnapshot>> = vec![Ok(snapshot(2, &[7, 7]))];
    answers.extend((0..40).map(|_| Err(transient())));
    answers.push(Ok(snapshot(3, &[9, 9])));
    let p = scripted(answers);
    let check = check(PollPolicy::default());
    let recorder = Recorder::default();
    let execution = Execution {
        journal: &recorder,
        ..Execution::new(&check, "scripted", p.clone())
    };
    let start = Instant::now();
    let report = execution.run(&mut Silent).await;
    assert!(
        start.elapsed() > Duration::from_secs(120),
        "the deadline passed while the platform was down"
    );
    assert_eq!(report.state, ExecutionState::Succeeded, "{}", report.reason);
    assert!(report.conditions.is_empty());
    let saved = recorder.0.lock().unwrap();
    assert!(
        saved
            .iter()
            .any(|c| c.contains(&ConditionKind::PlatformUnreachable)),
        "{saved:?}"
    );
    assert!(
        saved.last().unwrap().is_empty(),
        "cleared in the last saved state"
    );
}

#[tokio::test(start_paused = true)]
async fn on_deadline_terminate_stops_the_job_and_ends_timed_out() {
    let p = scripted(vec![Ok(snapshot(2, &[9, 7]))]);
    let poll = PollPolicy {
        on_deadline: crate::tracker::OnDeadline::Terminate,
        ..PollPolicy::default()
    };
    let (report, _) = run(&p, poll).await;
    assert_eq!(report.state, ExecutionState::TimedOut);
    assert_eq!(p.count("operate_job_instance"), 1);
    assert!(
        report.reason.contains("jobwatch terminated it"),
        "{}",
        report.reason
    );
    assert_eq!(report.job_status, Some(11));
}

#[tokio::test(start_paused = true)]
async fn fail_when_lets_a_few_host_failures_pass() {
    let p = scripted(vec![Ok(snapshot(4, &[9, 104]))]);
    let check = CheckConfig {
        fail_when: crate::tracker::FailWhen::CountAtLeast(2),
        ..check(PollPolicy::default())
    };
    let report = Execution::new(&check, "scripted", p.clone())
        .run(&mut Silent)
        .await;
    assert_eq!(report.state, ExecutionState::Succeeded);
    assert!(
        report
            .reason
            .contains("1 of 2 hosts did not succeed, within fail_when = \"count >= 2\""),
        "{}",
        report.reason
    );
    let check = CheckConfig {
        fail_when: crate::tracker::FailWhen::RatioAbove(0.4),
        ..check
    };
    let p = scripted(vec![Ok(snapshot(4, &[9, 104]))]);
    let report = Execution::new(&check, "scripted", p).run(&mut Silent).await;
    assert_eq!(report.state, ExecutionState::Failed, "1 of 2 is above 40 %");
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    /// One scripted answer to a status poll.
    #[derive(Debug, Clone)]
    enum Step {
        Snapshot { job: i64, hosts: [i64; 2] },
        Transient,
        Permanent,
        NotFound,
    }

    fn answer(step: &Step) -> Answer<JobSnapshot> {
        match step {
            Step::Snapshot { job, hosts } => Ok(snapshot(*job, hosts)),
            Step::Transient => Err(transient()),
            Step::Permanent => Err(PlatformError::permanent(
                "get_job_instance_status",
                Some(9900403),
                "no permission",
            )),
            Step::NotFound => Err(not_found()),
        }
    }

    fn host_code() -> impl Strategy<Value = i64> {
        prop::sample::select(vec![5, 7, 9, 3, 104, 310, 102, 103, 403, 0, 500, 777])
    }

    fn job_code() -> impl Strategy<Value = i64> {
        prop::sample::select(vec![1, 2, 3, 4, 7, 10, 11, 13, 15, 99])
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (job_code(), host_code(), host_code()).prop_map(|(job, a, b)| Step::Snapshot { job, hosts: [a, b] }),
            3 => Just(Step::Transient),
            1 => Just(Step::Permanent),
            1 => Just(Step::NotFound),
        ]
    }

    /// The last answer repeats: it must let the execution end (a snapshot or not-found; a
    /// platform that never answers keeps an execution active by design).
    fn last() -> impl Strategy<Value = Step> {
        prop_oneof![
            (job_code(), host_code(), host_code())
                .prop_map(|(job, a, b)| Step::Snapshot { job, hosts: [a, b] }),
            Just(Step::NotFound),
        ]
    }

    /// Keeps every saved state.
    #[derive(Default)]
    struct States(Mutex<Vec<ExecutionState>>);

    #[async_trait]
    impl crate::tracker::Journal for States {
        async fn save(
            &self,
            report: &super::super::ExecutionReport,
        ) -> Result<(), crate::tracker::JournalError> {
            self.0.lock().unwrap().push(report.state);
            Ok(())
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        #[test]
        fn the_tracker_keeps_its_promises(steps in prop::collection::vec(step(), 0..25), end in last()) {
            let mut answers: Vec<Answer<JobSnapshot>> = steps.iter().map(answer).collect();
            answers.push(answer(&end));
            let runtime = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
            let states = States::default();
            let report = runtime.block_on(async {
                let p = scripted(answers);
                let check = check(PollPolicy::default());
                Execution { journal: &states, ..Execution::new(&check, "scripted", p) }.run(&mut Silent).await
            });
            // Every execution ends, with a reason.
            prop_assert!(report.state.is_final(), "{:?}", report.state);
            prop_assert!(!report.reason.is_empty());
            // A final state is never left: after the first final save, every save repeats it.
            let saved = states.0.lock().unwrap();
            if let Some(first_final) = saved.iter().position(|s| s.is_final()) {
                prop_assert!(saved[first_final..].iter().all(|s| *s == saved[first_final]), "{saved:?}");
            }
            prop_assert_eq!(saved.last().copied(), Some(report.state));
            // Only a finished job with a host that did not succeed is `failed`: never a fault.
            if report.state == ExecutionState::Failed {
                let finished = report.job_status.is_some_and(|s| codes::job_status(s).is_some_and(|j| j.finished));
                prop_assert!(finished, "failed without a finished job: {}", report.reason);
                prop_assert!(
                    report.hosts.iter().any(|h| h.outcome != crate::model::HostOutcome::Success),
                    "{}",
                    report.reason
                );
            }
            if report.state == ExecutionState::Succeeded {
                prop_assert!(report.hosts.iter().all(|h| h.outcome == crate::model::HostOutcome::Success));
            }
            prop_assert!(report.conditions.is_empty(), "conditions are cleared at the end");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_permanent_poll_error_is_not_unreachable_and_the_deadline_still_decides() {
    let refused = PlatformError::permanent(
        "get_job_instance_status",
        Some(9900403),
        "用户(admin)权限不足",
    );
    let p = scripted(vec![Ok(snapshot(2, &[7, 7])), Err(refused)]);
    let (report, elapsed) = run(&p, PollPolicy::default()).await;
    assert_eq!(report.state, ExecutionState::TimedOut, "{}", report.reason);
    assert!(elapsed < Duration::from_secs(121), "{elapsed:?}");
    assert!(
        report.reason.contains("9900403"),
        "the refusal is in the reason: {}",
        report.reason
    );
    assert!(report.condition_log.iter().all(|c| c.condition.kind != crate::tracker::detect::ConditionKind::PlatformUnreachable));
}

/// Records each save's trigger status with how many submits the platform had seen by then;
/// refuses saves of `submitting` while `refuse_mark` is set.
struct MarkJournal {
    platform: Arc<Scripted>,
    saves: Mutex<Vec<(TriggerStatus, usize)>>,
    refuse_mark: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl super::Journal for MarkJournal {
    async fn save(&self, report: &super::ExecutionReport) -> Result<(), super::JournalError> {
        if report.trigger_status == TriggerStatus::Submitting
            && self.refuse_mark.load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(super::JournalError("disk full".into()));
        }
        self.saves.lock().unwrap().push((
            report.trigger_status,
            self.platform.count("fast_execute_script"),
        ));
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn the_submitting_mark_is_saved_before_the_submit_leaves_and_without_it_nothing_leaves() {
    let p = scripted(vec![Ok(snapshot(3, &[9, 9]))]);
    let journal = MarkJournal {
        platform: p.clone(),
        saves: Mutex::default(),
        refuse_mark: std::sync::atomic::AtomicBool::new(false),
    };
    let check = check(PollPolicy::default());
    let execution = Execution {
        journal: &journal,
        ..Execution::new(&check, "scripted", p.clone())
    };
    let report = execution.run(&mut Silent).await;
    assert_eq!(report.state, ExecutionState::Succeeded);
    let saves = journal.saves.lock().unwrap().clone();
    assert_eq!(
        saves[0],
        (TriggerStatus::Pending, 0),
        "recorded first: {saves:?}"
    );
    assert_eq!(
        saves[1],
        (TriggerStatus::Submitting, 0),
        "marked before the submit left: {saves:?}"
    );
    assert_eq!(saves[2].0, TriggerStatus::Triggered);

    // The mark cannot be written: nothing is sent (the store is retried like a platform
    // blip, within the trigger budget), and the execution ends trigger_failed, not unknown.
    let p = scripted(vec![Ok(snapshot(3, &[9, 9]))]);
    let journal = MarkJournal {
        platform: p.clone(),
        saves: Mutex::default(),
        refuse_mark: std::sync::atomic::AtomicBool::new(true),
    };
    let execution = Execution {
        journal: &journal,
        ..Execution::new(&check, "scripted", p.clone())
    };
    let report = execution.run(&mut Silent).await;
    assert_eq!(p.count("fast_execute_script"), 0);
    assert_eq!(
        report.state,
        ExecutionState::TriggerFailed,
        "{}",
        report.reason
    );
    assert!(
        report.reason.contains("could not be recorded"),
        "{}",
        report.reason
    );
}

#[tokio::test(start_paused = true)]
async fn a_resumed_pending_execution_is_submitted_and_a_submitting_one_reconciled() {
    let check = check(PollPolicy::default());
    // pending: it never left; submitted now.
    let p = scripted(vec![Ok(snapshot(3, &[9, 9]))]);
    let execution = Execution::new(&check, "scripted", p.clone());
    let report = execution.new_report();
    let report = execution.resume(report, &mut Silent).await;
    assert_eq!(report.state, ExecutionState::Succeeded, "{}", report.reason);
    assert_eq!(p.count("fast_execute_script"), 1);
    assert_eq!(p.count("get_job_instance_list"), 0);

    // submitting: it may have left; found on the platform, adopted, never resubmitted.
    let p = scripted(vec![Ok(snapshot(3, &[9, 9]))]);
    p.finds.lock().unwrap().push_back(Ok(Some(job())));
    let execution = Execution::new(&check, "scripted", p.clone());
    let mut report = execution.new_report();
    report.trigger_status = TriggerStatus::Submitting;
    let report = execution.resume(report, &mut Silent).await;
    assert_eq!(report.state, ExecutionState::Succeeded, "{}", report.reason);
    assert_eq!(p.count("fast_execute_script"), 0);
    assert_eq!(p.count("get_job_instance_list"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_marked_submit_the_platform_never_got_is_submitted_again_once_it_could_no_longer_land() {
    let check = check(PollPolicy::default());
    // Not found at resume, still not found once the submit could no longer create a job
    // (the platform's settle time after the mark): it never reached the platform.
    let p = scripted(vec![Ok(snapshot(3, &[9, 9]))]);
    p.finds.lock().unwrap().extend([Ok(None), Ok(None)]);
    let execution = Execution::new(&check, "scripted", p.clone());
    let mut report = execution.new_report();
    report.trigger_status = TriggerStatus::Submitting;
    report.submit_marked_at_ms = Some(crate::time::now_ms());
    // The mark is wall-clock time, which runs on while the test clock is paused: the wait
    // is the settle time less the wall time already gone (and the mark's millisecond).
    let marked = std::time::Instant::now();
    let started = Instant::now();
    let report = execution.resume(report, &mut Silent).await;
    let gone = marked.elapsed() + Duration::from_millis(1);
    assert_eq!(report.state, ExecutionState::Succeeded, "{}", report.reason);
    assert_eq!(p.count("get_job_instance_list"), 2);
    assert_eq!(p.count("fast_execute_script"), 1, "submitted again, once");
    assert!(
        p.first("fast_execute_script") - started + gone >= p.submit_settle(),
        "not before the first submit could no longer land"
    );

    // The same after a second restart during the wait: the resume had saved it
    // `trigger_unknown`, and the mark time still tells.
    let p = scripted(vec![Ok(snapshot(3, &[9, 9]))]);
    p.finds.lock().unwrap().extend([Ok(None), Ok(None)]);
    let execution = Execution::new(&check, "scripted", p.clone());
    let mut report = execution.new_report();
    report.trigger_status = TriggerStatus::TriggerUnknown;
    report.submit_marked_at_ms = Some(crate::time::now_ms());
    let report = execution.resume(report, &mut Silent).await;
    assert_eq!(report.state, ExecutionState::Succeeded, "{}", report.reason);
    assert_eq!(p.count("fast_execute_script"), 1);

    // Found on the second look (the first submit landed late): adopted, not submitted.
    let p = scripted(vec![Ok(snapshot(3, &[9, 9]))]);
    p.finds.lock().unwrap().extend([Ok(None), Ok(Some(job()))]);
    let execution = Execution::new(&check, "scripted", p.clone());
    let mut report = execution.new_report();
    report.trigger_status = TriggerStatus::Submitting;
    report.submit_marked_at_ms = Some(crate::time::now_ms());
    let report = execution.resume(report, &mut Silent).await;
    assert_eq!(report.state, ExecutionState::Succeeded, "{}", report.reason);
    assert_eq!(p.count("fast_execute_script"), 0);
}

/// The state machine itself, step by step: no runtime, no platform call, time given.
mod steps {
    use super::*;
    use crate::tracker::follow::{Follow, Next};
    use crate::tracker::{OnDeadline, PollEnd};

    /// A step with the answer asked and taken in at `at`.
    fn step(
        f: &mut Follow,
        answer: &Result<JobSnapshot, PlatformError>,
        at: Instant,
    ) -> crate::tracker::follow::Stepped {
        f.on_answer(answer, at, at, 0.0)
    }

    fn follow(poll: PollPolicy) -> (Follow, Instant) {
        let check = Arc::new(check(poll));
        let execution = Execution::new(&check, "scripted", Arc::new(Scripted::default()));
        let mut report = Box::new(execution.new_report());
        report.triggered(&job());
        let t0 = Instant::now();
        let f = Follow::new(
            report,
            job(),
            check.clone(),
            execution.platform.clone(),
            t0,
            t0,
            0.5,
        );
        (f, t0)
    }

    #[test]
    fn an_unchanged_answer_is_not_saved_and_a_change_is() {
        let (mut f, t0) = follow(PollPolicy::default());
        let first = step(
            &mut f,
            &Ok(snapshot(2, &[7, 7])),
            t0 + Duration::from_secs(1),
        );
        assert!(first.changed, "the first answer moves the hosts");
        let again = step(
            &mut f,
            &Ok(snapshot(2, &[7, 7])),
            t0 + Duration::from_secs(2),
        );
        assert!(!again.changed, "nothing a reader sees changed: no write");
        let moved = step(
            &mut f,
            &Ok(snapshot(2, &[9, 7])),
            t0 + Duration::from_secs(3),
        );
        assert!(moved.changed);
        assert_eq!(f.report.polls, 3);
        assert_eq!(
            f.report.hosts[0].outcome,
            crate::model::HostOutcome::Success
        );
        assert_eq!(
            f.report.hosts.len(),
            2,
            "hosts are kept once, matched by id"
        );
    }

    #[test]
    fn the_next_poll_follows_the_policy_and_is_stored() {
        let poll = PollPolicy {
            interval: Duration::from_secs(5),
            backoff_factor: 1.0,
            jitter: 0.0,
            ..PollPolicy::default()
        };
        let (mut f, t0) = follow(poll);
        let now = t0 + Duration::from_secs(1);
        let s = step(&mut f, &Ok(snapshot(2, &[7, 7])), now);
        assert_eq!(s.next, Next::Poll(now + Duration::from_secs(5)));
        assert_eq!(
            f.report.next_poll_at_ms,
            Some(f.report.started_at_ms + 6_000),
            "next_poll_at is the wall time of the next poll"
        );
    }

    #[test]
    fn a_finished_answer_ends_and_decides_with_its_hosts() {
        let (mut f, t0) = follow(PollPolicy::default());
        let s = step(
            &mut f,
            &Ok(snapshot(4, &[9, 104])),
            t0 + Duration::from_secs(1),
        );
        assert_eq!(s.next, Next::End(PollEnd::Finished));
        assert!(f.end(&PollEnd::Finished, t0 + Duration::from_secs(1)));
        assert_eq!(f.report.state, ExecutionState::Failed);
        assert!(
            f.report.reason.contains("1 of 2 hosts"),
            "{}",
            f.report.reason
        );
        assert!(f.report.logs_pending);
        assert_eq!(f.report.next_poll_at_ms, None);
    }

    #[test]
    fn not_found_ends_only_after_lost_after_in_a_row_and_fetches_no_logs() {
        let (mut f, t0) = follow(PollPolicy::default());
        let lost_after = f.check.poll.lost_after;
        let mut now = t0;
        for i in 1..lost_after {
            now += Duration::from_secs(1);
            let s = step(&mut f, &Err(not_found()), now);
            assert!(matches!(s.next, Next::Poll(_)), "poll {i}: {:?}", s.next);
        }
        now += Duration::from_secs(1);
        let s = step(&mut f, &Err(not_found()), now);
        assert_eq!(s.next, Next::End(PollEnd::NotFound { polls: lost_after }));
        assert!(!f.end(&PollEnd::NotFound { polls: lost_after }, now));
        assert_eq!(f.report.state, ExecutionState::Lost);
    }

    #[test]
    fn past_the_deadline_an_unreachable_platform_keeps_it_polling_and_an_answer_times_it_out() {
        let (mut f, t0) = follow(PollPolicy::default());
        let late = t0 + Duration::from_secs(3600);
        let s = step(&mut f, &Err(transient()), late);
        assert!(matches!(s.next, Next::Poll(_)), "{:?}", s.next);
        assert!(s.changed, "the platform_unreachable condition is raised");
        let s = step(
            &mut f,
            &Ok(snapshot(2, &[7, 7])),
            late + Duration::from_secs(1),
        );
        assert!(
            matches!(
                s.next,
                Next::End(PollEnd::DeadlinePassed {
                    terminated: None,
                    ..
                })
            ),
            "{:?}",
            s.next
        );
    }

    #[test]
    fn on_deadline_terminate_asks_once_then_ends_after_the_grace() {
        let poll = PollPolicy {
            on_deadline: OnDeadline::Terminate,
            ..PollPolicy::default()
        };
        let (mut f, t0) = follow(poll);
        let grace = f.check.poll.terminate_grace;
        let late = t0 + Duration::from_secs(3600);
        let s = step(&mut f, &Ok(snapshot(2, &[7, 7])), late);
        assert!(matches!(s.next, Next::Terminate(_)), "{:?}", s.next);
        let s = step(&mut f, &Ok(snapshot(2, &[7, 7])), late + grace);
        assert!(
            matches!(
                s.next,
                Next::End(PollEnd::DeadlinePassed {
                    terminated: Some(false),
                    ..
                })
            ),
            "{:?}",
            s.next
        );
    }

    #[test]
    fn the_decision_uses_what_the_platform_said_of_each_host_not_bk_jobs_tables() {
        // A platform (not bk-job) whose host code 0 means success, with its own label.
        let (mut f, t0) = follow(PollPolicy::default());
        let mut answer = snapshot(3, &[9, 9]);
        for h in &mut answer.hosts {
            h.status = 0;
            h.label = crate::model::Label {
                en: "Done".into(),
                zh: "完成".into(),
            };
        }
        let s = step(&mut f, &Ok(answer), t0 + Duration::from_secs(1));
        assert_eq!(s.next, Next::End(PollEnd::Finished));
        f.end(&PollEnd::Finished, t0 + Duration::from_secs(1));
        assert_eq!(
            f.report.state,
            ExecutionState::Succeeded,
            "{}",
            f.report.reason
        );
        assert_eq!(f.report.hosts[0].status_label, "Done");
    }

    #[test]
    fn a_resumed_execution_polls_within_one_interval() {
        let poll = PollPolicy::default();
        let interval = poll.interval.max(poll.first_poll);
        let check = Arc::new(check(poll));
        let execution = Execution::new(&check, "scripted", Arc::new(Scripted::default()));
        let mut report = Box::new(execution.new_report());
        report.triggered(&job());
        report.polls = 4;
        let t0 = Instant::now();
        for spread in [0.0, 0.5, 1.0] {
            let f = Follow::new(
                report.clone(),
                job(),
                check.clone(),
                execution.platform.clone(),
                t0,
                t0,
                spread,
            );
            assert!(f.next_poll() <= t0 + interval, "{spread}");
        }
    }

    /// An execution polled `polls` times, resumed 60 s after its start under `poll`: when
    /// its next poll comes, by the next poll stored (ms after the start) and the resume's
    /// `spread`; with the start and the resume.
    fn resumed(poll: PollPolicy, polls: u32) -> (impl Fn(i64, f64) -> Instant, Instant, Instant) {
        let check = Arc::new(check(poll));
        let execution = Execution::new(&check, "scripted", Arc::new(Scripted::default()));
        let mut report = Box::new(execution.new_report());
        let platform = execution.platform.clone();
        report.triggered(&job());
        report.polls = polls;
        let started_at_ms = report.started_at_ms;
        let started = Instant::now();
        let now = started + Duration::from_secs(60);
        let follow = move |next_poll_at_ms: i64, spread: f64| {
            let mut r = report.clone();
            r.next_poll_at_ms = Some(started_at_ms + next_poll_at_ms);
            Follow::new(
                r,
                job(),
                check.clone(),
                platform.clone(),
                started,
                now,
                spread,
            )
            .next_poll()
        };
        (follow, started, now)
    }

    /// Taken over by another replica (or resumed), an execution keeps the next poll it had,
    /// when that is still ahead: a move does not poll everything at once.
    #[test]
    fn a_taken_over_execution_keeps_its_stored_next_poll_when_still_ahead() {
        let poll = PollPolicy::default();
        let (follow, started, now) = resumed(poll.clone(), 4);
        // 60 s after the start, the stored next poll is at 67 s: polled then, whatever the spread.
        assert_eq!(follow(67_000, 0.0), started + Duration::from_secs(67));
        assert_eq!(follow(67_000, 1.0), started + Duration::from_secs(67));
        // Due already (stored before now): within one interval, spread.
        assert!(follow(30_000, 0.5) <= now + poll.interval.max(poll.first_poll));
        // Never further than the longest interval away.
        assert_eq!(
            follow(3_600_000, 0.0),
            now + poll.max_interval.max(poll.interval)
        );
    }

    #[test]
    fn with_callbacks_a_resumed_execution_keeps_its_safety_poll_up_to_the_safety_interval() {
        let poll = PollPolicy {
            safety_interval: Some(crate::config::policy::DEFAULT_SAFETY_INTERVAL),
            ..PollPolicy::default()
        };
        let (follow, started, now) = resumed(poll, 1);
        // A restart of many executions does not poll them all within 30 s: each keeps its
        // safety poll (4 minutes on here), and none waits longer than the safety interval.
        assert_eq!(follow(300_000, 0.5), started + Duration::from_secs(300));
        assert_eq!(
            follow(3_600_000, 0.5),
            now + crate::config::policy::DEFAULT_SAFETY_INTERVAL
        );
    }
}
