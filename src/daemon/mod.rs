//! `jobwatch run`: the durable sidecar. It resumes every unfinished execution, runs scheduled
//! checks, accepts work over HTTP, and on SIGTERM/SIGINT stops intake, stops following
//! (jobs keep running on their platform; the next start resumes them), waits for in-flight
//! calls up to the grace period, and exits.

pub mod callbacks;
pub mod replica;
pub mod retention;
pub mod scheduler;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::alert::Alerting;
use crate::config::{CheckConfig, Config};
use crate::model::{ExecutionState, Host, TriggerStatus};
use crate::notify::Dispatcher;
use crate::platform::{JobRef, Platform};
use crate::store::{Store, StoreError};
use crate::tracker::engine::Engine;
use crate::tracker::report::Origin;
use crate::tracker::{Execution, ExecutionReport, Follow, Phase, Silent};

/// Why the runner refused to start an execution.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No check by that name.
    #[error("no check named `{0}`")]
    UnknownCheck(String),
    /// No platform by that name.
    #[error("no platform named `{0}`")]
    UnknownPlatform(String),
    /// A watch named a check of another platform.
    #[error("check `{check}` runs on platform `{platform}`")]
    CheckPlatform {
        /// The check.
        check: String,
        /// Its platform.
        platform: String,
    },
    /// A watch on a platform whose jobs are not numbered (Salt: a jid, not a job instance).
    #[error(
        "platform `{0}` does not number its jobs: only bk-job and local jobs can be watched by job_instance_id"
    )]
    NotWatchable(String),
    /// The agent is shutting down.
    #[error("jobwatch is shutting down")]
    ShuttingDown,
    /// The execution could not be recorded, so it was not started.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What [`Runner::terminate`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Terminate {
    /// The terminate goes out with the execution's next poll (at once).
    Asked,
    /// No such execution.
    NotFound,
    /// It already ended, as this.
    Ended(ExecutionState),
    /// Its job is not on the platform yet (being submitted): nothing to stop yet.
    NotSubmitted,
    /// The platform refused or could not be reached (its words).
    PlatformRefused(String),
}

/// Overrides of a check for one API-started execution.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Targets instead of the check's.
    pub hosts: Option<Vec<Host>>,
    /// Argument string instead of the check's.
    pub params: Option<String>,
    /// Script instead of the check's (only when `api.allow_inline_scripts`).
    pub script: Option<String>,
}

/// A watch configuration's key: (configured check, or none for `watch`; platform).
type WatchKey = (Option<String>, String);

/// Starts, resumes and counts executions: triggers each in a task while it lasts, then
/// hands it to the one poll scheduler ([`Engine`]).
pub struct Runner {
    config: Arc<Config>,
    engine: Engine,
    platforms: BTreeMap<String, Arc<dyn Platform>>,
    store: Arc<dyn Store>,
    tasks: TaskTracker,
    stop: CancellationToken,
    accepting: AtomicBool,
    active: Mutex<HashMap<String, usize>>,
    alerting: Alerting,
    dispatcher: OnceLock<Arc<Dispatcher>>,
    /// One shared configuration per check (executions hold an `Arc`, not a copy).
    checks: HashMap<String, Arc<CheckConfig>>,
    /// One shared configuration per (check or `watch`, platform) for watched jobs.
    watch_checks: Mutex<HashMap<WatchKey, Arc<CheckConfig>>>,
    /// This replica's shard leases, when several replicas share the store (PostgreSQL);
    /// `None`: this process follows every execution.
    replica: Option<Arc<replica::Replica>>,
    /// bk-job callbacks (`[callbacks]`), once set at start.
    callbacks: OnceLock<callbacks::Callbacks>,
}

pub use crate::model::WATCH_CHECK;

/// A watched job's timeout when none is given: bk-job's default (API.md §3).
pub const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(7200);

impl Runner {
    /// A runner over `store` with the configured platforms.
    pub fn new(
        config: Arc<Config>,
        platforms: BTreeMap<String, Arc<dyn Platform>>,
        store: Arc<dyn Store>,
    ) -> Arc<Self> {
        let tasks = TaskTracker::new();
        let stop = CancellationToken::new();
        let replica = store
            .shards()
            .map(|s| Arc::new(replica::Replica::new(s.shard_count(), config.store.lease)));
        Arc::new_cyclic(|runner: &Weak<Runner>| Runner {
            engine: Engine::start(
                Arc::new(WeakJournal(runner.clone())),
                {
                    let runner = runner.clone();
                    Arc::new(move |report: &ExecutionReport, ended: bool| {
                        if let Some(runner) = runner.upgrade() {
                            runner.no_longer_followed(report, ended && report.state.is_final());
                        }
                    })
                },
                stop.clone(),
                &tasks,
                crate::tracker::engine::DEFAULT_POOL,
            ),
            platforms,
            store,
            tasks,
            stop,
            accepting: AtomicBool::new(true),
            active: Mutex::default(),
            alerting: Alerting::with_secrets(&config, crate::notify::secrets(&config)),
            dispatcher: OnceLock::new(),
            checks: config
                .checks
                .iter()
                .map(|c| (c.name.clone(), Arc::new(c.clone())))
                .collect(),
            watch_checks: Mutex::default(),
            replica,
            callbacks: OnceLock::new(),
            config,
        })
    }

    /// Starts the delivery workers of the configured receivers (once; they stop with the
    /// runner).
    pub async fn start_alerts(&self) -> Result<(), crate::notify::BuildError> {
        let dispatcher = Dispatcher::start(
            self.store.clone(),
            &self.config.alerts,
            self.alerting.redactor().clone(),
            self.stop.clone(),
            &self.tasks,
        )
        .await?;
        dispatcher.wake();
        let _ = self.dispatcher.set(dispatcher);
        Ok(())
    }

    /// Wakes every delivery worker (a silence ended: what it held is due).
    pub fn wake_delivery(&self) {
        if let Some(d) = self.dispatcher.get() {
            d.wake();
        }
    }

    /// Records `report` with the alert changes it causes (one transaction), then wakes the
    /// delivery workers if notifications were queued.
    async fn record(
        &self,
        report: &ExecutionReport,
        insert_only: bool,
    ) -> Result<bool, StoreError> {
        let changes = self.alerting.evaluate(report);
        let recorded = self.store.record(report, &changes, insert_only).await?;
        for alert in &recorded.transitions {
            crate::internal_events::AlertTransition { alert }.emit();
        }
        if recorded.queued > 0
            && let Some(d) = self.dispatcher.get()
        {
            d.wake();
        }
        Ok(recorded.written)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Whether new work is accepted (false once shutdown began).
    pub fn accepting(&self) -> bool {
        self.accepting.load(Ordering::SeqCst)
    }

    /// Cancelled when shutdown begins.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Executions of `check` this process is following now.
    pub fn active_count(&self, check: &str) -> usize {
        self.active
            .lock()
            .expect("active lock")
            .get(check)
            .copied()
            .unwrap_or(0)
    }

    fn check_for(&self, name: &str, overrides: &Overrides) -> Result<Arc<CheckConfig>, RunError> {
        let shared = self
            .checks
            .get(name)
            .ok_or_else(|| RunError::UnknownCheck(name.to_owned()))?;
        if overrides.hosts.is_none() && overrides.params.is_none() && overrides.script.is_none() {
            return Ok(shared.clone());
        }
        let mut check = CheckConfig::clone(shared);
        if let Some(hosts) = &overrides.hosts {
            check.hosts = hosts.clone();
        }
        if let Some(params) = &overrides.params {
            check.param = Some(params.clone());
        }
        if let Some(script) = &overrides.script {
            check.script = script.clone();
        }
        Ok(Arc::new(check))
    }

    /// The shared configuration watched jobs of `check` (or of no check: `watch`, default
    /// polling) on `platform` are followed with. No hosts (they come from the job); the
    /// execution's `timeout_seconds` is the job's.
    fn watch_config(
        &self,
        platform: &str,
        check: Option<&str>,
    ) -> Result<Arc<CheckConfig>, RunError> {
        let key = (check.map(str::to_owned), platform.to_owned());
        let mut cache = self.watch_checks.lock().expect("watch checks lock");
        if let Some(c) = cache.get(&key) {
            return Ok(c.clone());
        }
        let config = match check {
            None => CheckConfig {
                timeout: DEFAULT_WATCH_TIMEOUT,
                allow_overlap: true,
                ..CheckConfig::new(WATCH_CHECK, platform, String::new(), Vec::new())
            },
            Some(name) => {
                let c = self
                    .config
                    .check(name)
                    .ok_or_else(|| RunError::UnknownCheck(name.to_owned()))?;
                if c.platform != platform {
                    return Err(RunError::CheckPlatform {
                        check: name.to_owned(),
                        platform: c.platform.clone(),
                    });
                }
                let mut watched = CheckConfig {
                    hosts: Vec::new(),
                    allow_overlap: true,
                    ..c.clone()
                };
                // A job started elsewhere carries no callback_url of ours: no callback will
                // come, so its polls keep the normal pace, not the safety interval.
                watched.poll.safety_interval = None;
                watched
            }
        };
        let config = Arc::new(config);
        cache.insert(key, config.clone());
        Ok(config)
    }

    /// Records and starts an execution of `check_name`. The record exists when this returns.
    pub async fn submit(
        self: &Arc<Self>,
        check_name: &str,
        origin: Origin,
        scheduled_at_ms: Option<i64>,
        overrides: &Overrides,
    ) -> Result<Option<ExecutionReport>, RunError> {
        if !self.accepting() {
            return Err(RunError::ShuttingDown);
        }
        let check = self.check_for(check_name, overrides)?;
        let platform = self
            .platforms
            .get(&check.platform)
            .cloned()
            .ok_or_else(|| RunError::UnknownPlatform(check.platform.clone()))?;
        let mut report = Execution::new(&check, &check.platform, platform.clone()).new_report();
        report.origin = origin;
        report.scheduled_at_ms = scheduled_at_ms;
        // With several replicas, the one holding the execution's shard follows it: this one
        // if it holds it (and claims it before the record, so that its own wake-up does not
        // start it twice), else the holder, woken by the record.
        let here = self.claim_new(&mut report);
        let recorded = self.record(&report, true).await;
        if !matches!(recorded, Ok(true)) {
            self.unclaim(here, &report);
            return match recorded {
                Err(e) => Err(e.into()),
                _ => Ok(None), // this tick is already recorded
            };
        }
        crate::internal_events::ExecutionTriggered { check: check_name }.emit();
        if here {
            self.spawn_claimed(check, platform, report.clone(), false);
        }
        Ok(Some(report))
    }

    /// Records a scheduled tick that did not run (`maintenance`: on purpose, inside a
    /// maintenance window — no alert).
    pub async fn record_skipped(
        &self,
        check_name: &str,
        scheduled_at_ms: i64,
        reason: String,
        maintenance: bool,
    ) -> Result<bool, StoreError> {
        let Some(check) = self.config.check(check_name) else {
            return Ok(false);
        };
        let Some(platform) = self.platforms.get(&check.platform).cloned() else {
            return Ok(false);
        };
        let mut report = Execution::new(check, &check.platform, platform).new_report();
        report.origin = Origin::Schedule;
        report.scheduled_at_ms = Some(scheduled_at_ms);
        report.trigger_status = if maintenance {
            TriggerStatus::Maintenance
        } else {
            TriggerStatus::Skipped
        };
        report.finish(ExecutionState::Skipped, reason, Duration::ZERO);
        report.mark_unreported_unknown();
        let inserted = self.record(&report, true).await?;
        if inserted {
            crate::internal_events::ExecutionEnded { report: &report }.emit();
        }
        Ok(inserted)
    }

    /// Starts following a job started elsewhere: with the default poll policy under the
    /// check name `watch`, or with a configured check's name, poll policy and `fail_when`
    /// (`check`, which must be on `platform_name`); `timeout` defaults to the check's.
    pub async fn watch(
        self: &Arc<Self>,
        platform_name: &str,
        job_instance_id: u64,
        timeout: Option<Duration>,
        check: Option<&str>,
    ) -> Result<ExecutionReport, RunError> {
        if !self.accepting() {
            return Err(RunError::ShuttingDown);
        }
        let platform = self
            .platforms
            .get(platform_name)
            .cloned()
            .ok_or_else(|| RunError::UnknownPlatform(platform_name.to_owned()))?;
        if platform.kind() == "salt" {
            return Err(RunError::NotWatchable(platform_name.to_owned()));
        }
        let check = self.watch_config(platform_name, check)?;
        let mut report = Execution::new(&check, platform_name, platform.clone()).new_report();
        report.timeout_seconds = timeout.unwrap_or(check.timeout).as_secs();
        report.origin = Origin::Watch;
        report.task_name = String::new();
        report.triggered(&crate::platform::JobRef::instance(job_instance_id));
        let here = self.claim_new(&mut report);
        if let Err(e) = self.record(&report, true).await {
            self.unclaim(here, &report);
            return Err(e.into());
        }
        if here {
            self.spawn_claimed(check, platform, report.clone(), true);
        }
        Ok(report)
    }

    /// Resumes every execution the store has not seen end. Returns how many. Executions that
    /// ended while their logs were being fetched are closed without those logs (saying so),
    /// which lets their outcome alerts fire.
    pub async fn resume_all(self: &Arc<Self>) -> Result<usize, StoreError> {
        if self.replica.is_some() {
            // Several replicas: each follows the executions of the shards it acquires
            // (`replica::start`).
            return Ok(0);
        }
        for report in self.store.logs_pending().await? {
            self.close_logs_pending(report, None).await?;
        }
        // In pages, so that resuming many executions never holds them all twice.
        let mut resumed = 0;
        let mut after: Option<String> = None;
        loop {
            let page = self.store.unfinished_page(after.as_deref(), 1000).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.execution_id.clone());
            for report in page {
                resumed += usize::from(self.resume_one(report));
            }
        }
        Ok(resumed)
    }

    /// Closes an execution that ended while its logs were being fetched, without those logs
    /// (saying so), which lets its outcome alerts fire.
    pub(crate) async fn close_logs_pending(
        &self,
        mut report: ExecutionReport,
        fence: Option<crate::model::shard::Fence>,
    ) -> Result<(), StoreError> {
        report.logs_pending = false;
        report.fence = fence;
        for h in report
            .hosts
            .iter_mut()
            .filter(|h| h.log.is_empty() && h.log_error.is_none())
        {
            h.log_error = Some("not fetched: jobwatch stopped while fetching the logs".into());
        }
        self.record(&report, false).await.map(|_| ())
    }

    /// Resumes following one stored execution. Returns false when its platform is no
    /// longer configured (it stays as stored) or it is already followed here.
    pub(crate) fn resume_one(self: &Arc<Self>, report: ExecutionReport) -> bool {
        let Some(platform) = self.platforms.get(&report.platform).cloned() else {
            tracing::error!(execution_id = %report.execution_id, platform = %report.platform, "Cannot resume: its platform is no longer configured.");
            return false;
        };
        // A watch resumes with its check's policy (or, that check gone, the default
        // one); hosts and timeout are the job's, in the report.
        let check = match self.checks.get(&report.check) {
            Some(c) if report.origin != Origin::Watch => Ok(c.clone()),
            Some(_) => self.watch_config(&report.platform, Some(&report.check)),
            None => self.watch_config(&report.platform, None),
        };
        let check = match check {
            Ok(c) => c,
            Err(_) => self
                .watch_config(&report.platform, None)
                .expect("the default watch configuration always exists"),
        };
        if let Some(r) = &self.replica
            && !r.begin(&report.execution_id)
        {
            return false;
        }
        self.spawn_claimed(check, platform, report, true);
        true
    }

    /// Whether this process follows the new execution `report` (claimed: a wake-up about
    /// it finds it followed); with several replicas, sets its fence when its shard is held.
    fn claim_new(&self, report: &mut ExecutionReport) -> bool {
        let Some(r) = &self.replica else {
            return true;
        };
        report.fence = r.fence(&report.execution_id);
        report.fence.is_some() && r.begin(&report.execution_id)
    }

    /// The shard lease, when several replicas share the store.
    pub fn replicated_lease(&self) -> Option<Duration> {
        self.replica.as_ref().map(|_| self.config.store.lease)
    }

    /// Gives back the claim [`Self::claim_new`] took (`claimed`) on a new execution that was
    /// not recorded after all.
    fn unclaim(&self, claimed: bool, report: &ExecutionReport) {
        if claimed && let Some(r) = &self.replica {
            r.end(&report.execution_id);
        }
    }

    /// Executions of `check` running now: on every replica when several share the store
    /// (the store counts), else this process's.
    pub async fn running_count(&self, check: &str) -> usize {
        if self.replica.is_some() {
            match self.store.active_count(check).await {
                Ok(n) => return usize::try_from(n).unwrap_or(usize::MAX),
                Err(e) => {
                    tracing::warn!(check, error = %e, "Cannot count the running executions in the store; counting this replica's.");
                }
            }
        }
        self.active_count(check)
    }

    /// Starts (or resumes) following `report`, claimed for this process ([`Self::claim_new`],
    /// [`Self::resume_one`]): a triggered one goes straight to the engine; one to submit or
    /// reconcile gets a task while its trigger lasts.
    fn spawn_claimed(
        self: &Arc<Self>,
        check: Arc<CheckConfig>,
        platform: Arc<dyn Platform>,
        report: ExecutionReport,
        resume: bool,
    ) {
        *self
            .active
            .lock()
            .expect("active lock")
            .entry(report.check.clone())
            .or_insert(0) += 1;
        crate::internal_events::ActiveExecutions {
            check: &report.check,
            count: self.active_count(&report.check),
        }
        .emit();
        let report = Box::new(report);
        let report = if resume {
            match Phase::resumed(report) {
                Ok(phase) => return self.follow(check, platform, phase),
                Err(report) => report,
            }
        } else {
            report
        };
        let runner = self.clone();
        self.tasks.spawn(async move {
            let journal: &dyn crate::tracker::Journal = runner.as_ref();
            let execution = Execution {
                stop: runner.stop.clone(),
                journal,
                ..Execution::new(&check, &check.platform, platform.clone())
            };
            let phase = if resume {
                execution.trigger_resumed(report, &mut Silent).await
            } else {
                execution.trigger_new(report, &mut Silent).await
            };
            runner.follow(check, platform, phase);
        });
    }

    /// Hands a triggered execution to the engine; an ended (or stopped) one is done, and so
    /// is one whose shard this replica no longer holds.
    fn follow(&self, check: Arc<CheckConfig>, platform: Arc<dyn Platform>, phase: Phase) {
        match phase {
            Phase::Follow { report, .. } | Phase::Done(report) if !self.still_held(&report) => {
                self.let_go(&report)
            }
            Phase::Follow {
                report,
                job,
                started,
            } => self.engine.follow(Follow::new(
                report,
                job,
                check,
                platform,
                started,
                tokio::time::Instant::now(),
                rand::random_range(0.0..1.0),
            )),
            Phase::Done(report) => self.finished(&report),
        }
    }

    /// Whether `report` is still this replica's to follow (always, with one process).
    fn still_held(&self, report: &ExecutionReport) -> bool {
        match (&self.replica, report.fence) {
            (Some(r), Some(f)) => r.holds(f),
            _ => true,
        }
    }

    /// An execution this replica lets go unended (its shard moved): it is no longer counted
    /// here; its next holder follows it from what is stored.
    fn let_go(&self, report: &ExecutionReport) {
        self.no_longer_followed(report, false);
    }

    /// An execution this process no longer follows: ended, or left for the next start.
    fn finished(&self, report: &ExecutionReport) {
        self.no_longer_followed(report, report.state.is_final());
    }

    fn no_longer_followed(&self, report: &ExecutionReport, ended: bool) {
        if let Some(r) = &self.replica {
            r.end(&report.execution_id);
        }
        if ended {
            crate::internal_events::ExecutionEnded { report }.emit();
        }
        let mut active = self.active.lock().expect("active lock");
        let count = active.entry(report.check.clone()).or_insert(1);
        *count = count.saturating_sub(1);
        crate::internal_events::ActiveExecutions {
            check: &report.check,
            count: *count,
        }
        .emit();
    }

    /// Takes bk-job callbacks from now on (set once, at start).
    pub fn set_callbacks(&self, callbacks: callbacks::Callbacks) {
        let _ = self.callbacks.set(callbacks);
    }

    /// The callbacks taken, if any.
    pub fn callbacks(&self) -> Option<&callbacks::Callbacks> {
        self.callbacks.get()
    }

    /// A hint that `execution_id`'s job may have ended (a bk-job callback): a poll now where
    /// it is followed — here, or, with several replicas, on the replica that follows it
    /// (announced through the store; a failed announcement leaves it to the safety net).
    pub fn hint(self: &Arc<Self>, execution_id: &str, job_instance_id: Option<u64>) {
        match &self.replica {
            Some(replica) if !replica.follows(execution_id) => {
                let runner = self.clone();
                let id = execution_id.to_owned();
                self.tasks.spawn(async move {
                    if let Some(shards) = runner.store.shards()
                        && let Err(e) = shards.announce_poll(&id, job_instance_id).await
                    {
                        tracing::debug!(execution_id = %id, error = %e, "Cannot pass a callback on to the replica that follows it.");
                    }
                });
            }
            _ => self.poll_now(execution_id, job_instance_id.map(JobRef::instance)),
        }
    }

    /// Follows every platform's event stream ([`Platform::follow_hints`]; Salt with
    /// `events = true`) until shutdown: each hint asks for a poll now where the execution is
    /// followed here (with several replicas each follows the stream itself, so nothing is
    /// passed on).
    pub fn follow_platform_hints(self: &Arc<Self>) {
        for platform in self.platforms.values() {
            let (platform, runner) = (platform.clone(), Arc::downgrade(self));
            let stop = self.stop.clone();
            self.tasks.spawn(async move {
                let on_hint = move |hint: crate::platform::Hint| {
                    if let Some(runner) = runner.upgrade() {
                        runner.poll_now(&hint.execution_id, Some(hint.job));
                    }
                };
                platform.follow_hints(&on_hint, &stop).await;
            });
        }
    }

    /// Asks the platform to stop execution `id`'s job, for `by` (a token's name). Where the
    /// execution is followed here, its next poll (at once) sends the terminate and the record
    /// notes `terminated_by` ([`Follow::terminate_asked`]); with several replicas, one
    /// followed elsewhere is terminated from here and the replica that follows it is asked
    /// to poll now (the record does not name who asked; the log does).
    pub async fn terminate(self: &Arc<Self>, id: &str, by: &str) -> Result<Terminate, RunError> {
        let Some(report) = self.store.get(id).await? else {
            return Ok(Terminate::NotFound);
        };
        if report.state.is_final() {
            return Ok(Terminate::Ended(report.state));
        }
        let Some(job) = JobRef::of_report(&report) else {
            return Ok(Terminate::NotSubmitted);
        };
        match &self.replica {
            Some(replica) if !replica.follows(id) => {
                let Some(platform) = self.platforms.get(&report.platform) else {
                    return Err(RunError::UnknownPlatform(report.platform.clone()));
                };
                if let Err(e) = platform.terminate(&job).await {
                    return Ok(Terminate::PlatformRefused(e.to_string()));
                }
                self.hint(id, report.job_instance_id);
            }
            _ => self.engine.terminate(id, by),
        }
        Ok(Terminate::Asked)
    }

    /// Asks for a status poll of `execution_id` now (see [`Engine::poll_now`]).
    pub fn poll_now(&self, execution_id: &str, job: Option<JobRef>) {
        self.engine.poll_now(execution_id, job);
    }

    /// Shutdown: stop intake, stop following, wait for the tasks up to `grace`. Returns
    /// whether every task finished in time.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.accepting.store(false, Ordering::SeqCst);
        self.stop.cancel();
        self.tasks.close();
        tokio::time::timeout(grace, self.tasks.wait()).await.is_ok()
    }
}

/// The daemon's journal: every state change is stored with the alert changes it causes.
#[async_trait::async_trait]
impl crate::tracker::Journal for Runner {
    /// A store that cannot be reached is waited for (retried with backoff) while the write
    /// can still matter: with several replicas while the execution's lease is trusted, else
    /// up to [`UNREACHABLE_WAIT`]; not after shutdown began. A write refused because the
    /// shard moved lets the shard go here.
    /// `<public_url>/v1/callbacks/bkjob/<execution id>/<token>` when callbacks are set and
    /// the execution's platform is a bk-job one with `callbacks = true`.
    fn callback_url(&self, report: &ExecutionReport) -> Option<String> {
        let callbacks = self.callbacks.get()?;
        match self.config.platforms.get(&report.platform)? {
            crate::config::PlatformConfig::BkJob(s) if s.callbacks => {
                Some(callbacks.url(&report.execution_id))
            }
            _ => None,
        }
    }

    async fn save(&self, report: &ExecutionReport) -> Result<(), crate::tracker::JournalError> {
        let since = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(100);
        loop {
            match self.record(report, false).await {
                Ok(_) => return Ok(()),
                Err(StoreError::Fenced { shard, epoch, .. }) => {
                    if let Some(r) = &self.replica {
                        r.fenced(self, crate::model::shard::Fence { shard, epoch });
                    }
                    return Err(crate::tracker::JournalError(Box::new(
                        crate::tracker::MovedAway(report.execution_id.clone()),
                    )));
                }
                Err(e) if e.is_unreachable() && !self.stop.is_cancelled() => {
                    let may_wait = match (&self.replica, report.fence) {
                        (Some(r), Some(f)) => r.holds(f),
                        _ => since.elapsed() < UNREACHABLE_WAIT,
                    };
                    if !may_wait {
                        return Err(e.into());
                    }
                    tracing::debug!(execution_id = %report.execution_id, error = %e, "The store is unreachable; the write waits.");
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = self.stop.cancelled() => return Err(e.into()),
                    }
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// How long a state change waits for a store that cannot be reached (one process, or an
/// execution not under a lease).
pub const UNREACHABLE_WAIT: Duration = Duration::from_secs(30);

/// The engine's journal: the runner, while it lives (the runner owns the engine).
struct WeakJournal(Weak<Runner>);

#[async_trait::async_trait]
impl crate::tracker::Journal for WeakJournal {
    async fn save(&self, report: &ExecutionReport) -> Result<(), crate::tracker::JournalError> {
        match self.0.upgrade() {
            Some(runner) => crate::tracker::Journal::save(runner.as_ref(), report).await,
            None => Err(crate::tracker::JournalError(
                "jobwatch is shutting down".into(),
            )),
        }
    }

    fn callback_url(&self, report: &ExecutionReport) -> Option<String> {
        crate::tracker::Journal::callback_url(self.0.upgrade()?.as_ref(), report)
    }
}

/// The line `jobwatch run` prints on stderr once it serves (scripts and tests wait for it):
/// `jobwatch: listening on http://<addr>/ (<n> execution(s) resumed)`.
pub fn listening_line(addr: std::net::SocketAddr, tls: bool, resumed: usize) -> String {
    let scheme = if tls { "https" } else { "http" };
    format!("jobwatch: listening on {scheme}://{addr}/ ({resumed} execution(s) resumed)")
}

/// Reads a [`listening_line`]: the base URL (no trailing slash) and how many executions were
/// resumed; `None` for any other line.
pub fn parse_listening_line(line: &str) -> Option<(String, usize)> {
    let rest = line.strip_prefix("jobwatch: listening on ")?;
    let mut words = rest.split_whitespace();
    let base = words.next()?.trim_end_matches('/').to_owned();
    let resumed = words.next()?.trim_start_matches('(').parse().ok()?;
    Some((base, resumed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn seventeen_minutes_down_records_the_newest_ten_ticks_and_counts_the_rest_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[agent]\ndata_dir = \"{}\"\n[platforms.local]\nkind = \"local\"\n[[checks]]\nname = \"beat\"\nplatform = \"local\"\nscript = \"true\"\nhosts = [\"localhost\"]\nevery = \"1m\"\n",
            dir.path().display()
        );
        let config = Arc::new(crate::config::load_text(&text, "test", Vec::new()).unwrap());
        let store: Arc<dyn Store> =
            Arc::new(crate::store::SqliteStore::open(dir.path()).await.unwrap());
        let mut platforms = BTreeMap::new();
        platforms.insert(
            "local".to_owned(),
            crate::platform::build(&config.platforms["local"], dir.path()).unwrap(),
        );
        let runner = Runner::new(config.clone(), platforms, store.clone());
        const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z, a tick
        const MINUTE: i64 = 60_000;
        assert!(
            runner
                .record_skipped("beat", T0, "the last tick before the outage".into(), false)
                .await
                .unwrap()
        );
        let schedule = config.check("beat").unwrap().schedule.clone().unwrap();
        scheduler::record_missed(&runner, "beat", &schedule, T0 + 17 * MINUTE + 30_000).await;
        // A restart 3 s later finds nothing more to record, and contradicts nothing.
        scheduler::record_missed(&runner, "beat", &schedule, T0 + 17 * MINUTE + 33_000).await;
        let all = store
            .list(&crate::store::ListQuery {
                which: crate::store::Which::All,
                check: Some("beat".into()),
                limit: 100,
                cursor: None,
            })
            .await
            .unwrap();
        let mut missed: Vec<&ExecutionReport> = all
            .iter()
            .filter(|r| r.reason.contains("not running at the scheduled time"))
            .collect();
        missed.sort_by_key(|r| r.scheduled_at_ms);
        let ticks: Vec<i64> = missed.iter().filter_map(|r| r.scheduled_at_ms).collect();
        let expected: Vec<i64> = (8..=17).map(|m| T0 + m * MINUTE).collect();
        assert_eq!(ticks, expected, "the newest ten are recorded");
        assert!(
            missed[0].reason.contains("; 7 earlier tick(s)"),
            "{}",
            missed[0].reason
        );
        assert!(missed[1..].iter().all(|r| !r.reason.contains("earlier")));
    }

    /// A platform whose jobs all run until the test ends: it answers every poll after
    /// `latency`, counts the answers, and notes the runtime's live tasks at each poll and
    /// how many polls were answered when a submit arrived.
    #[derive(Default)]
    struct Fleet {
        latency: Duration,
        answered: std::sync::atomic::AtomicUsize,
        max_alive_tasks: std::sync::atomic::AtomicUsize,
        answered_at_submit: Mutex<Option<usize>>,
    }

    #[async_trait::async_trait]
    impl Platform for Fleet {
        fn kind(&self) -> &'static str {
            "fleet"
        }

        async fn submit(
            &self,
            _: &crate::platform::SubmitRequest<'_>,
            gate: &dyn crate::platform::SubmitGate,
        ) -> Result<crate::platform::JobRef, crate::platform::PlatformError> {
            gate.leaving()
                .await
                .map_err(|why| crate::platform::gate_refused("fast_execute_script", &why))?;
            *self.answered_at_submit.lock().unwrap() = Some(self.answered.load(Ordering::SeqCst));
            Ok(job(1))
        }

        async fn snapshot(
            &self,
            _: &crate::platform::JobRef,
        ) -> Result<crate::model::JobSnapshot, crate::platform::PlatformError> {
            let alive = tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks();
            self.max_alive_tasks.fetch_max(alive, Ordering::SeqCst);
            tokio::time::sleep(self.latency).await;
            self.answered.fetch_add(1, Ordering::SeqCst);
            Ok(crate::model::JobSnapshot {
                status: 2,
                label: crate::platform::bkjob::codes::job_label(2),
                finished: false,
                step_instance_id: Some(1),
                hosts: Vec::new(),
            })
        }

        async fn host_logs(
            &self,
            _: &crate::platform::JobRef,
            _: &[Host],
        ) -> Result<Vec<crate::platform::HostLog>, crate::platform::PlatformError> {
            Ok(Vec::new())
        }

        async fn terminate(
            &self,
            _: &crate::platform::JobRef,
        ) -> Result<(), crate::platform::PlatformError> {
            Ok(())
        }

        async fn find_job(
            &self,
            _: &str,
            _: i64,
        ) -> Result<Option<crate::platform::JobRef>, crate::platform::PlatformError> {
            Ok(None)
        }
    }

    fn job(id: u64) -> crate::platform::JobRef {
        crate::platform::JobRef {
            step_instance_id: Some(1),
            ..crate::platform::JobRef::instance(id)
        }
    }

    /// A runner over a real SQLite file whose platform `fleet` is `fleet`, with check `c`.
    async fn fleet_runner(
        dir: &std::path::Path,
        fleet: Arc<Fleet>,
    ) -> (Arc<Runner>, Arc<CheckConfig>) {
        let text = format!(
            "[agent]\ndata_dir = \"{}\"\n[platforms.fleet]\nkind = \"local\"\n[[checks]]\nname = \"c\"\nplatform = \"fleet\"\nscript = \"true\"\nhosts = [\"localhost\"]\n",
            dir.display()
        );
        let config = Arc::new(crate::config::load_text(&text, "test", Vec::new()).unwrap());
        let store: Arc<dyn Store> = Arc::new(crate::store::SqliteStore::open(dir).await.unwrap());
        let mut platforms: BTreeMap<String, Arc<dyn Platform>> = BTreeMap::new();
        platforms.insert("fleet".to_owned(), fleet);
        let runner = Runner::new(config, platforms, store);
        let check = runner.checks["c"].clone();
        (runner, check)
    }

    /// `n` executions of `check` already running on the platform (as the engine gets them
    /// from a resume: job status known, so an unchanged answer writes nothing), all due at
    /// `due`.
    fn followed(
        runner: &Runner,
        check: &Arc<CheckConfig>,
        n: usize,
        due: tokio::time::Instant,
    ) -> Vec<String> {
        let platform = runner.platforms["fleet"].clone();
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let mut report =
                Box::new(Execution::new(check, "fleet", platform.clone()).new_report());
            report.triggered(&job(i as u64 + 10));
            report.job_status = Some(2);
            report.job_status_label = Some("Running".into());
            report.hosts.clear();
            let now = tokio::time::Instant::now();
            let started = now;
            let mut f = Follow::new(
                report,
                job(i as u64 + 10),
                check.clone(),
                platform.clone(),
                started,
                now,
                0.0,
            );
            f.set_next_poll(due);
            ids.push(f.report.execution_id.clone());
            runner.engine.follow(f);
        }
        ids
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_poll_asked_for_now_comes_now_and_only_for_that_execution() {
        let dir = tempfile::tempdir().unwrap();
        let fleet = Arc::new(Fleet::default());
        let (runner, check) = fleet_runner(dir.path(), fleet.clone()).await;
        let in_an_hour = tokio::time::Instant::now() + Duration::from_secs(3600);
        let ids = followed(&runner, &check, 3, in_an_hour);
        runner.poll_now(&ids[1], None);
        runner.poll_now("no-such-execution", None);
        let until = std::time::Instant::now() + Duration::from_secs(30);
        while fleet.answered.load(Ordering::SeqCst) == 0 {
            assert!(
                std::time::Instant::now() < until,
                "the poll asked for never came"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The one asked for, polled once; the others wait for their hour.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(fleet.answered.load(Ordering::SeqCst), 1);
        assert!(runner.shutdown(Duration::from_secs(10)).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ten_thousand_followed_executions_hold_no_task_each() {
        let dir = tempfile::tempdir().unwrap();
        let fleet = Arc::new(Fleet::default());
        let (runner, check) = fleet_runner(dir.path(), fleet.clone()).await;
        let before = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        let due = tokio::time::Instant::now() + Duration::from_millis(200);
        followed(&runner, &check, 10_000, due);
        // Every execution is polled at least twice (the default policy's next poll is 1 s on).
        let until = std::time::Instant::now() + Duration::from_secs(120);
        while fleet.answered.load(Ordering::SeqCst) < 20_000 {
            assert!(std::time::Instant::now() < until, "the polls never came");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let max = fleet.max_alive_tasks.load(Ordering::SeqCst);
        let bound =
            before + crate::tracker::engine::DEFAULT_POOL + crate::tracker::engine::SAVING_ROOM + 2;
        assert!(
            max <= bound,
            "{max} live tasks while 10 000 executions were followed (bound: pool {} + saving {} + the engine + {before} before)",
            crate::tracker::engine::DEFAULT_POOL,
            crate::tracker::engine::SAVING_ROOM
        );
        assert!(runner.shutdown(Duration::from_secs(10)).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_submit_is_not_delayed_by_twenty_thousand_polls_due_at_the_same_moment() {
        let dir = tempfile::tempdir().unwrap();
        let fleet = Arc::new(Fleet {
            latency: Duration::from_millis(20),
            ..Fleet::default()
        });
        let (runner, check) = fleet_runner(dir.path(), fleet.clone()).await;
        let due = tokio::time::Instant::now() + Duration::from_millis(500);
        followed(&runner, &check, 20_000, due);
        // The moment they fall due: the first answers come in.
        let until = std::time::Instant::now() + Duration::from_secs(60);
        while fleet.answered.load(Ordering::SeqCst) == 0 {
            assert!(std::time::Instant::now() < until, "the polls never came");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        runner
            .submit("c", Origin::Api, None, &Overrides::default())
            .await
            .unwrap();
        let until = std::time::Instant::now() + Duration::from_secs(60);
        let answered = loop {
            if let Some(n) = *fleet.answered_at_submit.lock().unwrap() {
                break n;
            }
            assert!(std::time::Instant::now() < until, "the submit never left");
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        assert!(
            answered < 1_000,
            "the submit left after {answered} of the 20 000 due polls were answered"
        );
        assert!(runner.shutdown(Duration::from_secs(10)).await);
    }

    #[test]
    fn the_listening_line_reads_back() {
        let addr = "127.0.0.1:9464".parse().unwrap();
        let line = super::listening_line(addr, false, 3);
        assert_eq!(
            line,
            "jobwatch: listening on http://127.0.0.1:9464/ (3 execution(s) resumed)"
        );
        assert_eq!(
            super::parse_listening_line(&line),
            Some(("http://127.0.0.1:9464".to_owned(), 3))
        );
        assert_eq!(super::parse_listening_line("jobwatch: shutting down"), None);
    }
}
