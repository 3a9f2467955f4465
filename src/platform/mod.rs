//! One adapter per job platform behind one trait (DESIGN.md §4): submit a script to hosts,
//! take a snapshot of a job, fetch host logs, terminate. Everything after the adapter speaks
//! the normalized [`model`](crate::model).

pub mod bkjob;
pub mod endpoints;
pub mod local;
pub mod salt;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::model::{Host, JobSnapshot};

/// What to run, where, as the platform is asked for it: the check (its script, language,
/// parameters, hosts, execution account and timeout — overrides of one execution already
/// applied) under the job's name on the platform.
#[derive(Debug, Clone)]
pub struct SubmitRequest<'a> {
    /// The job's name on the platform; carries jobwatch's execution id so an execution can be
    /// found again (bk-job `task_name`, ≤ 512 characters).
    pub task_name: &'a str,
    /// What to run and where.
    pub check: &'a crate::config::CheckConfig,
    /// Where the platform should report the job's end (bk-job `callback_url`), when the
    /// daemon takes callbacks for this platform.
    pub callback_url: Option<String>,
}

/// A job instance the platform created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRef {
    /// bk-job `job_instance_id` (the local platform numbers its own); `None` on Salt.
    pub job_instance_id: Option<u64>,
    /// Salt job id (`jid`); `None` elsewhere.
    pub jid: Option<String>,
    /// bk-job `step_instance_id` of the (only) step, once known.
    pub step_instance_id: Option<u64>,
    /// The instance's name on the platform.
    pub name: Option<String>,
}

impl JobRef {
    /// Whether `other` names the same job (by `job_instance_id` and `jid`; the step and the
    /// name aside).
    pub fn same_job(&self, other: &JobRef) -> bool {
        self.job_instance_id == other.job_instance_id && self.jid == other.jid
    }

    /// A job instance known by its number (bk-job, local).
    pub fn instance(job_instance_id: u64) -> Self {
        JobRef {
            job_instance_id: Some(job_instance_id),
            jid: None,
            step_instance_id: None,
            name: None,
        }
    }

    /// A Salt job, by its jid.
    pub fn salt(jid: impl Into<String>) -> Self {
        JobRef {
            job_instance_id: None,
            jid: Some(jid.into()),
            step_instance_id: None,
            name: None,
        }
    }

    /// The job a stored execution names (its jid, else its job instance and step), if it got
    /// one.
    pub fn of_report(report: &crate::model::report::ExecutionReport) -> Option<Self> {
        match (&report.jid, report.job_instance_id) {
            (Some(jid), _) => Some(JobRef::salt(jid.clone())),
            (None, Some(id)) => Some(JobRef {
                step_instance_id: report.step_instance_id,
                ..JobRef::instance(id)
            }),
            (None, None) => None,
        }
    }

    /// The job instance number, or a permanent error for `api` when the reference has none
    /// (a Salt job handed to another adapter: a wiring error, said, not a panic).
    pub fn instance_id(&self, api: &'static str) -> Result<u64, PlatformError> {
        self.job_instance_id.ok_or_else(|| {
            PlatformError::permanent(api, None, format!("job {self} has no job_instance_id"))
        })
    }
}

/// `job_instance_id <n>` or `jid <jid>`.
impl fmt::Display for JobRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.jid, self.job_instance_id) {
            (Some(jid), _) => write!(f, "jid {jid}"),
            (None, Some(id)) => write!(f, "job_instance_id {id}"),
            (None, None) => f.write_str("job ?"),
        }
    }
}

/// The log of one host, as the platform returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLog {
    /// The host, as the platform named it in the answer.
    pub host: Host,
    /// The log text (already decoded).
    pub content: String,
}

pub use crate::model::ErrorClass;

/// An error from a platform call, classified, with the platform's code and text, and never a
/// secret (URLs are printed without query strings; credentials never enter the message).
#[derive(Debug, Clone, thiserror::Error)]
pub struct PlatformError {
    /// How to handle it.
    pub class: ErrorClass,
    /// The API called, e.g. `fast_execute_script`.
    pub api: &'static str,
    /// The platform's own error code (bk-job envelope `code`, or gateway `16xxxxx`), if any.
    pub code: Option<i64>,
    /// HTTP status, when an HTTP answer came back.
    pub http_status: Option<u16>,
    /// What happened, in words (the platform's message when it gave one).
    pub message: String,
    /// Whether a request that changes state may have taken effect although no success
    /// answer came back (a timeout or reset after sending, a 5xx, a garbled answer).
    pub maybe_applied: bool,
    /// How long the platform asked us to wait (bk-job gateway `X-Bkapi-RateLimit-Reset`).
    pub retry_after: Option<Duration>,
}

impl fmt::Display for PlatformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.api)?;
        match (self.code, self.http_status) {
            (Some(code), Some(http)) if http != 200 => write!(f, "HTTP {http}, code {code}: ")?,
            (Some(code), _) => write!(f, "code {code}: ")?,
            (None, Some(http)) => write!(f, "HTTP {http}: ")?,
            (None, None) => {}
        }
        write!(f, "{} ({})", self.message, self.class.as_str())
    }
}

impl PlatformError {
    /// A transient error that surely did not take effect (nothing reached the platform).
    pub fn transient(api: &'static str, message: impl Into<String>) -> Self {
        PlatformError {
            class: ErrorClass::Transient,
            api,
            code: None,
            http_status: None,
            message: message.into(),
            maybe_applied: false,
            retry_after: None,
        }
    }

    /// A permanent error.
    pub fn permanent(api: &'static str, code: Option<i64>, message: impl Into<String>) -> Self {
        PlatformError {
            class: ErrorClass::Permanent,
            code,
            ..PlatformError::transient(api, message)
        }
    }

    /// Whether the error is worth retrying.
    pub fn is_transient(&self) -> bool {
        self.class == ErrorClass::Transient
    }
}

/// Told when a submit is about to leave, so that the caller can record durably that it may
/// have left: an execution without that mark surely never reached the platform and may be
/// submitted after a crash; one with it is reconciled, never submitted again.
#[async_trait]
pub trait SubmitGate: Send + Sync {
    /// Called once per endpoint attempt, right before the request is sent. An error keeps
    /// the request from leaving.
    async fn leaving(&self) -> Result<(), GateClosed>;
}

/// A gate that records nothing (tests, tools).
pub struct NoGate;

#[async_trait]
impl SubmitGate for NoGate {
    async fn leaving(&self) -> Result<(), GateClosed> {
        Ok(())
    }
}

/// Why a [`SubmitGate`] kept a submit from leaving (the caller's words, e.g. the store's error).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct GateClosed(pub String);

/// The error a submit returns when its gate refused to let it leave: nothing was sent.
pub fn gate_refused(api: &'static str, why: &GateClosed) -> PlatformError {
    PlatformError::transient(api, format!("not sent: {why}"))
}

/// A job platform: the four questions every adapter answers (DESIGN.md §4).
///
/// Adapters classify their errors and never retry by themselves; the tracker owns retries,
/// budgets and deadlines.
#[async_trait]
pub trait Platform: Send + Sync {
    /// `bkjob` or `local`: a bounded label.
    fn kind(&self) -> &'static str;

    /// Submits a script. An error with [`ErrorClass::Transient`] and `maybe_applied` means a
    /// job may exist anyway: reconcile with [`Platform::find_job`] before submitting again.
    ///
    /// `gate` is told at the last moment before the request leaves (after every rate and
    /// concurrency limit let it go); if it refuses, nothing is sent and the error is transient
    /// with `maybe_applied = false`.
    async fn submit(
        &self,
        request: &SubmitRequest<'_>,
        gate: &dyn SubmitGate,
    ) -> Result<JobRef, PlatformError>;

    /// The job's status and every host's status.
    async fn snapshot(&self, job: &JobRef) -> Result<JobSnapshot, PlatformError>;

    /// Logs of `hosts` (adapters batch as the platform requires; bk-job: ≤ 500 a call).
    async fn host_logs(&self, job: &JobRef, hosts: &[Host]) -> Result<Vec<HostLog>, PlatformError>;

    /// Asks the platform to stop the job. Asynchronous on bk-job: keep polling until finished.
    async fn terminate(&self, job: &JobRef) -> Result<(), PlatformError>;

    /// How long after a submit left it may still create a job on the platform (a request
    /// the platform took keeps running after the sender is gone): a submit that left is
    /// resubmitted only if the platform still has no such job this long after it left.
    /// Default 60 s.
    fn submit_settle(&self) -> Duration {
        Duration::from_secs(60)
    }

    /// Finds a job created with `task_name` no earlier than `since_ms` (Unix epoch ms), to
    /// reconcile a submit whose answer was lost. `Ok(None)`: the platform has no such job.
    async fn find_job(
        &self,
        task_name: &str,
        since_ms: i64,
    ) -> Result<Option<JobRef>, PlatformError>;

    /// Follows the platform's own stream of job events until `stop`, handing `on_hint` each
    /// sign that a job jobwatch submitted may have moved (Salt: a minion's return on
    /// salt-api's `GET /events`, when the platform has `events = true`). A hint is never the
    /// truth: the execution is polled. Reconnects by itself; returns at once where there is
    /// no such stream (the default).
    async fn follow_hints(
        &self,
        _on_hint: &(dyn Fn(Hint) + Send + Sync),
        _stop: &CancellationToken,
    ) {
    }
}

/// A sign from the platform's event stream that an execution's job may have moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    /// The execution (from the job's name on the platform, [`crate::tracker::task_name`]).
    pub execution_id: String,
    /// The job the event is about: the poll is only asked for while this is the job
    /// followed.
    pub job: JobRef,
}

/// A transport failure, classified: a connect failure never reached the platform; a timeout
/// or a broken connection after sending may have (for a mutating call). The URL is dropped
/// from the text: it is the configured endpoint and may carry credentials in userinfo.
pub(crate) fn transport_error(
    api: &'static str,
    mutating: bool,
    e: reqwest::Error,
) -> PlatformError {
    let connect = e.is_connect();
    let what = if connect {
        "cannot connect"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_body() || e.is_decode() {
        "answer broken off"
    } else {
        "request failed"
    };
    let e = e.without_url();
    let mut message = format!("{what}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    PlatformError {
        maybe_applied: mutating && !connect,
        ..PlatformError::transient(api, message)
    }
}

/// The HTTP client of a platform adapter: `request_timeout` per request (connect: at most
/// 10 s of it), idle connections kept 50 s, rustls. Errors only if the TLS stack cannot start.
pub(crate) fn http_client(request_timeout: Duration) -> Result<reqwest::Client, PlatformError> {
    crate::tls::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(request_timeout)
        .connect_timeout(request_timeout.min(Duration::from_secs(10)))
        .pool_idle_timeout(Duration::from_secs(50))
        .user_agent(concat!("jobwatch/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| {
            PlatformError::permanent("client", None, format!("cannot build HTTP client: {e}"))
        })
}

/// Builds the adapter for a configured platform; the local platform keeps its script files
/// under `<data_dir>/local` (and sweeps what a process that is gone left there).
pub fn build(
    config: &crate::config::PlatformConfig,
    data_dir: &std::path::Path,
) -> Result<std::sync::Arc<dyn Platform>, PlatformError> {
    Ok(match config {
        crate::config::PlatformConfig::BkJob(settings) => {
            std::sync::Arc::new(bkjob::BkJob::new(settings.as_ref().clone())?)
        }
        crate::config::PlatformConfig::Salt(settings) => {
            std::sync::Arc::new(salt::Salt::new(settings.as_ref().clone())?)
        }
        crate::config::PlatformConfig::Local => {
            std::sync::Arc::new(local::Local::new(&data_dir.join("local"))?)
        }
    })
}
