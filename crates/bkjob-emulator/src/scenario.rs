//! The scenario file: credentials, scope, simulated hosts and faults (TOML). The format is
//! documented in this crate's README.md; every field has a default so a scenario can be tiny.

use std::time::Duration;

use serde::Deserialize;

/// A whole scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Accepted credentials.
    #[serde(default)]
    pub auth: Auth,
    /// The one business scope the emulator serves, and its execution accounts.
    #[serde(default)]
    pub scope: Scope,
    /// Job-level timing.
    #[serde(default)]
    pub job: JobSpec,
    /// The hosts the emulator's CMDB knows, with how each behaves in every job.
    #[serde(default)]
    pub hosts: Vec<HostSpec>,
    /// Faults to inject.
    #[serde(default)]
    pub faults: Faults,
    /// How job-end callbacks (a submit's `callback_url`) are sent.
    #[serde(default)]
    pub callbacks: CallbackSpec,
}

/// `[callbacks]`: bk-job's job-end callback (its source: `JobCallbackDTO`, `CallbackListener`)
/// — one POST of `application/json` with a 15 s timeout once the job is final; on a non-200
/// answer one retry with `Content-Type: application/x-www-form-urlencoded` and the same JSON
/// text; connection errors only logged. The faults below bend that.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallbackSpec {
    /// The step list's name: `step_instances` (the source, default) or `step_instance_list`
    /// (the docs).
    pub list_name: String,
    /// Never send (an allowlist refused the URL, or the sender died).
    pub drop: bool,
    /// Wait this long after the end before sending.
    #[serde(with = "humantime_serde")]
    pub delay: Duration,
    /// Send this long *before* the status API shows the end.
    #[serde(with = "humantime_serde")]
    pub early: Duration,
    /// Send this many extra copies.
    pub duplicates: u32,
    /// Name another job instance in the body (`job_instance_id` + 1000).
    pub wrong_job_id: bool,
}

impl Default for CallbackSpec {
    fn default() -> Self {
        CallbackSpec {
            list_name: "step_instances".into(),
            drop: false,
            delay: Duration::ZERO,
            early: Duration::ZERO,
            duplicates: 0,
            wrong_job_id: false,
        }
    }
}

impl Scenario {
    /// Parses a scenario from TOML text.
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario::from_toml("").expect("the empty scenario is valid")
    }
}

/// `[auth]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// `bk_app_code` accepted.
    pub app_code: String,
    /// `bk_app_secret` accepted.
    pub app_secret: String,
    /// Accepted `bk_username`s; empty = any non-empty name.
    pub usernames: Vec<String>,
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            app_code: "jobwatch".into(),
            app_secret: "emulator-secret".into(),
            usernames: Vec::new(),
        }
    }
}

/// `[scope]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scope {
    /// `bk_scope_type`.
    #[serde(rename = "type")]
    pub scope_type: String,
    /// `bk_scope_id`.
    pub id: String,
    /// Execution account aliases that exist (anything else → 1244003).
    pub accounts: Vec<String>,
}

impl Default for Scope {
    fn default() -> Self {
        Scope {
            scope_type: "biz".into(),
            id: "2".into(),
            accounts: vec!["root".into()],
        }
    }
}

/// `[job]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobSpec {
    /// Time from creation until the step starts: before it the job is status 1 and the host
    /// list is empty (API.md §4, issue #522).
    #[serde(with = "humantime_serde")]
    pub start_after: Duration,
    /// Time a terminate takes: the job shows 10 (terminating) this long, then 11, and
    /// hosts still running end 403.
    #[serde(with = "humantime_serde")]
    pub terminate_takes: Duration,
    /// First job instance id handed out.
    pub first_job_instance_id: u64,
}

impl Default for JobSpec {
    fn default() -> Self {
        JobSpec {
            start_after: Duration::ZERO,
            terminate_takes: Duration::from_millis(100),
            first_job_instance_id: 10000,
        }
    }
}

/// `[[hosts]]`: one CMDB host and how it behaves in every job that targets it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    /// CMDB id.
    pub bk_host_id: u64,
    /// Control area.
    #[serde(default)]
    pub bk_cloud_id: u64,
    /// IPv4.
    pub ip: String,
    /// Waiting (5) this long after the step starts.
    #[serde(default, with = "humantime_serde")]
    pub start_after: Duration,
    /// Running (7) this long, then final.
    #[serde(default = "default_duration", with = "humantime_serde")]
    pub duration: Duration,
    /// Final host status (API.md §9.2); default 9.
    #[serde(default = "default_status")]
    pub status: i64,
    /// Exit code reported at the end (default 0; null while running).
    #[serde(default)]
    pub exit_code: i64,
    /// GSE error code reported at the end (default 0).
    #[serde(default)]
    pub error_code: i64,
    /// `tag`.
    #[serde(default)]
    pub tag: String,
    /// Log text, returned once the host started.
    #[serde(default)]
    pub log: String,
    /// Never ends by itself, not even at the job's timeout (a host cut off by a partition:
    /// the job stays running); only a terminate ends it.
    #[serde(default)]
    pub hang: bool,
    /// With `hang`: the partition heals this long after the host started; the host then
    /// ends with its `status` (the platform learns the end late).
    #[serde(default, with = "humantime_serde")]
    pub heal_after: Option<Duration>,
}

fn default_duration() -> Duration {
    Duration::from_millis(200)
}

fn default_status() -> i64 {
    9
}

/// `[faults]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Added to every answer.
    #[serde(with = "humantime_serde")]
    pub latency: Duration,
    /// Share of requests (0–1) that get a random transient fault (502, 503, 429 or a reset),
    /// before they take effect.
    pub failure_ratio: f64,
    /// Seed of the random faults (same seed, same faults for the same request order).
    pub seed: u64,
    /// Scripted faults.
    pub rules: Vec<FaultRule>,
    /// Windows in which a listener (an endpoint) is down: connections refused, open ones
    /// dropped (a gateway node gone, a leader moved).
    pub outages: Vec<Outage>,
}

/// `[[faults.outages]]`: listener `listener` is down from `from` until `until` (since start).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outage {
    /// Index of the listener (`--listen` order; 0 for the first).
    #[serde(default)]
    pub listener: usize,
    /// Start of the outage, since the emulator started.
    #[serde(with = "humantime_serde")]
    pub from: Duration,
    /// End of the outage; absent: down for good.
    #[serde(default, with = "humantime_serde")]
    pub until: Option<Duration>,
}

/// A scripted fault: requests number `nth` .. `nth + count - 1` to `api` get `kind`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// API name (e.g. `get_job_instance_status`) or `*` for every API.
    #[serde(default = "any_api")]
    pub api: String,
    /// What happens.
    pub kind: FaultKind,
    /// First request hit, 1-based, counted per API (per rule for `*`).
    #[serde(default = "one")]
    pub nth: u64,
    /// How many requests are hit; 0 = every request from `nth` on.
    #[serde(default = "one")]
    pub count: u64,
    /// For a state-changing API: let the request take effect, then fail its answer (the
    /// caller cannot tell whether it worked).
    #[serde(default)]
    pub after_effect: bool,
    /// `envelope_error`: the code.
    pub code: Option<i64>,
    /// `envelope_error`: the message.
    pub message: Option<String>,
    /// `latency`: the delay.
    #[serde(default, with = "humantime_serde")]
    pub delay: Option<Duration>,
    /// `rate_limit`: seconds in `X-Bkapi-RateLimit-Reset` (default 1).
    pub reset_seconds: Option<u64>,
}

fn any_api() -> String {
    "*".into()
}

fn one() -> u64 {
    1
}

/// Fault kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// HTTP 500 with a gateway-style body.
    #[serde(rename = "http_500")]
    Http500,
    /// HTTP 502 `BAD_GATEWAY` (1650200).
    #[serde(rename = "http_502")]
    Http502,
    /// HTTP 503.
    #[serde(rename = "http_503")]
    Http503,
    /// HTTP 504 `REQUEST_BACKEND_TIMEOUT` (1650401).
    #[serde(rename = "http_504")]
    Http504,
    /// HTTP 429 `RATE_LIMIT_RESTRICTION` (1642902) with the `X-Bkapi-RateLimit-*` headers.
    RateLimit,
    /// HTTP 200 with a body cut in the middle.
    MalformedJson,
    /// The connection is reset (TCP RST) without an answer.
    ConnectionReset,
    /// `result:false`, code 1244006: the job instance does not exist.
    InstanceNotFound,
    /// `result:false` with `code` and `message` of the rule.
    EnvelopeError,
    /// The answer is delayed by `delay`.
    Latency,
}
