//! Typed configuration: a TOML file plus environment overrides `JOBWATCH__SECTION__KEY`
//! (double underscores between levels, e.g. `JOBWATCH__PLATFORMS__BK__APP_SECRET`).
//!
//! Three steps: **parse** (`source`: TOML, the environment on top, serde into the `Raw*`
//! structs; every syntax, unknown-key and type problem with its full key), **validate** (pure;
//! every value problem at once, each naming its key), **build** (reads `script_file` and
//! `app_secret_file`). The steps' problems are reported together. Environment segments match
//! keys whatever their case (`JOBWATCH__PLATFORMS__BK__…` sets `platforms.bk`).
//!
//! Not the `config` crate: it stops at the first problem and turns every value into text
//! before serde sees it (so `timeout = -5` was reported as a string).
//!
//! Every field of the `Raw*` structs below is user documentation; `config.example.toml` shows
//! them all.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

mod alerts;
pub mod bkjob;
pub mod policy;
mod source;
pub mod templates;

pub use self::alerts::{
    AlertsConfig, Matcher, ReceiverConfig, ReceiverKind, RouteConfig, RuleConfig, SmtpTls,
    Templates, builtin_redactions,
};

use self::bkjob::{BkJobSettings, Door, FlowSettings};
use self::policy::{DetectPolicy, FailWhen, OnDeadline, PollPolicy};
use crate::model::{Host, ScriptLanguage};

/// The sample configuration, embedded: used when no `--config` is given.
pub const EMBEDDED_DEFAULT: &str = include_str!("../config.example.toml");

/// bk-job's timeout range (API.md §10: 1 s up to 259200 s by default).
const MAX_JOB_TIMEOUT: Duration = Duration::from_secs(259_200);

/// bk-job's `script_param` limit before encoding (API.md §3: 64K, non-sensitive).
const MAX_SCRIPT_PARAM_BYTES: usize = 64 * 1024;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// Job platforms by name.
    #[serde(default)]
    platforms: BTreeMap<String, RawPlatform>,
    /// Checks: a script, its targets and how to follow it.
    #[serde(default)]
    checks: Vec<RawCheck>,
    /// The daemon (`jobwatch run`).
    #[serde(default)]
    agent: RawAgent,
    /// The HTTP API and status page of the daemon.
    #[serde(default)]
    api: RawApi,
    /// Alert rules, routes and receivers.
    #[serde(default)]
    alerts: alerts::RawAlerts,
    /// What is kept, and for how long.
    #[serde(default)]
    store: RawStore,
}

/// `[store]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    /// How long ended executions and delivered or rejected notifications are kept after
    /// their last change (default 30d, at least 1h); older ones are pruned.
    #[serde(default, with = "humantime_serde")]
    retention: Option<Duration>,
}

/// `[agent]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    /// Where the SQLite database lives (default `./data`).
    data_dir: Option<PathBuf>,
    /// How long a SIGTERM/SIGINT waits for in-flight platform calls (default 10s).
    #[serde(default, with = "humantime_serde")]
    shutdown_grace: Option<Duration>,
    /// Log lines on stderr: `text` (default; colours only on a terminal) or `json` (one
    /// object a line).
    log_format: Option<LogFormat>,
}

/// How log lines are written (`[agent] log_format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines; ANSI colours only when stderr is a terminal.
    #[default]
    Text,
    /// One JSON object a line.
    Json,
}

/// `[api]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApi {
    /// Listen address (default `127.0.0.1:9464`).
    listen: Option<String>,
    /// Bearer token required by the mutating endpoints (better: `token_file` or
    /// `JOBWATCH__API__TOKEN`). Unset: no token is asked for — set one.
    token: Option<SecretString>,
    /// A file holding the token.
    token_file: Option<PathBuf>,
    /// Accept `script` in `POST /v1/executions` (default false).
    allow_inline_scripts: Option<bool>,
}

/// `[platforms.<name>]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlatform {
    /// `bkjob` or `local`.
    kind: Option<String>,
    /// bkjob: base URLs, tried in order (APIGW: up to the stage, e.g.
    /// `https://bkapi.example.com/api/bk-job/prod`; ESB: the PaaS host).
    endpoints: Option<Vec<String>>,
    /// bkjob: `apigw` (default) or `esb`.
    door: Option<String>,
    /// bkjob: `bk_app_code`.
    app_code: Option<String>,
    /// bkjob: `bk_app_secret` (better: `app_secret_file` or the environment).
    app_secret: Option<SecretString>,
    /// bkjob: a file holding the app secret (surrounding white space is trimmed).
    app_secret_file: Option<PathBuf>,
    /// bkjob: `bk_username`.
    username: Option<String>,
    /// bkjob: `bk_scope_type`, `biz` (default) or `biz_set`.
    scope_type: Option<String>,
    /// bkjob: `bk_scope_id` (business or business-set id).
    scope_id: Option<String>,
    /// bkjob: timeout of one HTTP request (default 10s).
    #[serde(default, with = "humantime_serde")]
    request_timeout: Option<Duration>,
    /// bkjob: requests in flight at once per endpoint (default 16).
    max_concurrent_requests: Option<usize>,
    /// bkjob: requests started per second per endpoint (default 20), submits not counted.
    max_requests_per_second: Option<u32>,
    /// bkjob: submits started per second per endpoint (default 10): their own budget, so
    /// that polls never hold back new jobs.
    max_submits_per_second: Option<u32>,
    /// bkjob: transport failures in a row before an endpoint is skipped (default 3).
    endpoint_failures_before_cooldown: Option<u32>,
    /// bkjob: how long a failing endpoint is skipped (default 30s).
    #[serde(default, with = "humantime_serde")]
    endpoint_cooldown: Option<Duration>,
}

/// Script language as a bk-job code (1–5) or a name.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawLanguage {
    Code(i64),
    Name(String),
}

/// A host as a CMDB id (number or digits) or `"<bk_cloud_id>:<ip>"` or `localhost`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawHost {
    Id(u64),
    Text(String),
}

/// `[[checks]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    /// Unique name: letters, digits, `-`, `_`, `.`.
    name: Option<String>,
    /// A key of `[platforms]`.
    platform: Option<String>,
    /// The script text (or `script_file`).
    script: Option<String>,
    /// A file holding the script, relative to the working directory.
    script_file: Option<PathBuf>,
    /// 1–5 or shell, bat, perl, python, powershell (default shell).
    script_language: Option<RawLanguage>,
    /// The argument string, passed as one unit.
    script_param: Option<String>,
    /// Ask the platform to mask the parameters (default false).
    #[serde(default)]
    param_sensitive: bool,
    /// Targets.
    #[serde(default)]
    hosts: Vec<RawHost>,
    /// bkjob: execution account alias (required there).
    account_alias: Option<String>,
    /// The job's own timeout (default 2h, bk-job's default; at most 72h).
    #[serde(default, with = "humantime_serde")]
    timeout: Option<Duration>,
    /// Bytes of log kept per host, the tail (default 65536).
    log_max_bytes: Option<usize>,
    /// How to follow the job.
    #[serde(default)]
    poll: RawPoll,
    /// Run by itself on this cron expression (UTC; 5 fields, or 6 with seconds first).
    schedule: Option<String>,
    /// Run by itself every this long (on multiples of the period since the epoch).
    #[serde(default, with = "humantime_serde")]
    every: Option<Duration>,
    /// Start a scheduled run even while the previous one is going (default false: the tick
    /// is recorded as skipped).
    #[serde(default)]
    allow_overlap: bool,
    /// With a schedule: also run once as soon as the daemon starts (default false), so that
    /// a check every hour shows a result now.
    #[serde(default)]
    run_on_start: bool,
    /// When the job counts as failed: `"any"` host (default), `"count >= N"` hosts, or
    /// `"ratio > R"` of the hosts (R from 0 to 1).
    fail_when: Option<String>,
}

/// `[checks.poll]`; see [`PollPolicy`] for each field's meaning and default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPoll {
    #[serde(default, with = "humantime_serde")]
    first_poll: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    interval: Option<Duration>,
    backoff_factor: Option<f64>,
    #[serde(default, with = "humantime_serde")]
    max_interval: Option<Duration>,
    jitter: Option<f64>,
    max_attempts: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    deadline_slack: Option<Duration>,
    lost_after: Option<u32>,
    on_deadline: Option<String>,
    #[serde(default, with = "humantime_serde")]
    terminate_grace: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    stuck_after: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    straggler_after: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    unreachable_after: Option<Duration>,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Platforms by name.
    pub platforms: BTreeMap<String, PlatformConfig>,
    /// Checks, in file order.
    pub checks: Vec<CheckConfig>,
    /// The daemon.
    pub agent: AgentConfig,
    /// Its HTTP API.
    pub api: ApiConfig,
    /// Alerts.
    pub alerts: AlertsConfig,
    /// Retention.
    pub store: StoreConfig,
}

/// A validated `[store]`.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// How long ended executions and finished notifications are kept (default 30 days).
    pub retention: Duration,
}

/// The default `[store] retention`: 30 days.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// A validated `[agent]`.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// SQLite database directory.
    pub data_dir: PathBuf,
    /// Shutdown grace period.
    pub shutdown_grace: Duration,
    /// How log lines are written.
    pub log_format: LogFormat,
}

/// A validated `[api]`.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Listen address.
    pub listen: std::net::SocketAddr,
    /// Bearer token for mutating endpoints.
    pub token: Option<SecretString>,
    /// Accept inline scripts over the API.
    pub allow_inline_scripts: bool,
}

/// A validated platform.
#[derive(Debug, Clone)]
pub enum PlatformConfig {
    /// bk-job through APIGW or ESB.
    BkJob(Box<BkJobSettings>),
    /// Scripts run on this host.
    Local,
}

impl PlatformConfig {
    /// `bkjob` or `local`.
    pub fn kind(&self) -> &'static str {
        match self {
            PlatformConfig::BkJob(_) => "bkjob",
            PlatformConfig::Local => "local",
        }
    }
}

/// A validated check.
#[derive(Debug, Clone)]
pub struct CheckConfig {
    /// Name.
    pub name: String,
    /// Platform name (a key of [`Config::platforms`]).
    pub platform: String,
    /// Script text.
    pub script: String,
    /// Language.
    pub language: ScriptLanguage,
    /// Argument string.
    pub param: Option<String>,
    /// Mask parameters on the platform.
    pub param_sensitive: bool,
    /// Targets.
    pub hosts: Vec<Host>,
    /// Execution account alias.
    pub account_alias: Option<String>,
    /// The job's own timeout.
    pub timeout: Duration,
    /// Log bytes kept per host.
    pub log_max_bytes: usize,
    /// Poll policy.
    pub poll: PollPolicy,
    /// When it runs by itself, if it does.
    pub schedule: Option<crate::schedule::Schedule>,
    /// Whether a scheduled run may start while the previous one is going.
    pub allow_overlap: bool,
    /// With a schedule: run once when the daemon starts, too.
    pub run_on_start: bool,
    /// When the job counts as failed.
    pub fail_when: FailWhen,
}

impl CheckConfig {
    /// A check with the documented defaults: shell, no parameters, timeout 2 h (bk-job's
    /// default), 64 KiB of log per host, default polling, no schedule, `fail_when = "any"`.
    pub fn new(
        name: impl Into<String>,
        platform: impl Into<String>,
        script: impl Into<String>,
        hosts: Vec<Host>,
    ) -> Self {
        CheckConfig {
            name: name.into(),
            platform: platform.into(),
            script: script.into(),
            language: ScriptLanguage::Shell,
            param: None,
            param_sensitive: false,
            hosts,
            account_alias: None,
            timeout: Duration::from_secs(7200),
            log_max_bytes: 64 * 1024,
            poll: PollPolicy::default(),
            schedule: None,
            allow_overlap: false,
            run_on_start: false,
            fail_when: FailWhen::Any,
        }
    }
}

impl Config {
    /// The check named `name`.
    pub fn check(&self, name: &str) -> Option<&CheckConfig> {
        self.checks.iter().find(|c| c.name == name)
    }
}

/// One problem, with the key it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Dotted key, e.g. `checks[0].hosts[2]` or `platforms.bk.endpoints`.
    pub key: String,
    /// What is wrong and what would be right.
    pub message: String,
}

/// Why a configuration was refused: every issue found, or why it could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or is not valid TOML of the right shape.
    #[error("cannot read configuration {source_name}: {message}")]
    Parse {
        /// File path or "embedded default".
        source_name: String,
        /// The parser's words.
        message: String,
    },
    /// Values are wrong.
    #[error("configuration {source_name} is invalid:\n{}", list(.issues))]
    Invalid {
        /// File path or "embedded default".
        source_name: String,
        /// Every problem found.
        issues: Vec<ConfigIssue>,
    },
}

fn list(issues: &[ConfigIssue]) -> String {
    issues
        .iter()
        .map(|i| format!("  - {}: {}", i.key, i.message))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Loads `path` (or the embedded sample when `None`) with environment overrides from `env`
/// (normally `std::env::vars()`), then validates and builds it.
pub fn load(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let source_name = path.map_or_else(
        || "embedded default".to_owned(),
        |p| p.display().to_string(),
    );
    let text = match path {
        Some(p) => std::fs::read_to_string(p).map_err(|e| ConfigError::Parse {
            source_name: source_name.clone(),
            message: e.to_string(),
        })?,
        None => EMBEDDED_DEFAULT.to_owned(),
    };
    load_text(&text, &source_name, env)
}

/// Like [`load`], from TOML `text`; `source_name` names it in errors. Every problem is
/// reported at once: a TOML syntax error (by position, never quoting the line), each unknown
/// key and wrong type (by full key, naming the environment variable it came from), then every
/// value problem.
pub fn load_text(
    text: &str,
    source_name: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let invalid = |issues| ConfigError::Invalid {
        source_name: source_name.to_owned(),
        issues,
    };
    let table = source::parse_toml(text).map_err(|issue| invalid(vec![issue]))?;
    let mut shape_issues = Vec::new();
    let mut layered = source::overlay_env(table, env, &mut shape_issues);
    let raw: Option<RawConfig> = source::deserialize(&mut layered, &mut shape_issues);
    let Some(raw) = raw else {
        return Err(invalid(shape_issues));
    };
    match validate(raw) {
        Ok(config) if shape_issues.is_empty() => Ok(config),
        Ok(_) => Err(invalid(shape_issues)),
        Err(value_issues) => {
            // A key already reported as unreadable is not reported again as missing.
            let related = |k: &str| {
                shape_issues.iter().any(|s| {
                    s.key == k
                        || s.key.starts_with(&format!("{k}["))
                        || s.key.starts_with(&format!("{k}."))
                })
            };
            let value_issues: Vec<ConfigIssue> = value_issues
                .into_iter()
                .filter(|i| !related(&i.key))
                .map(|mut i| {
                    layered.blame(&mut i);
                    i
                })
                .collect();
            shape_issues.extend(value_issues);
            Err(invalid(shape_issues))
        }
    }
}

#[derive(Default)]
struct Issues(Vec<ConfigIssue>);

impl Issues {
    fn add(&mut self, key: impl fmt::Display, message: impl Into<String>) {
        self.0.push(ConfigIssue {
            key: key.to_string(),
            message: message.into(),
        });
    }

    fn required<'a, T>(&mut self, key: impl fmt::Display, value: &'a Option<T>) -> Option<&'a T> {
        if value.is_none() {
            self.add(key, "required");
        }
        value.as_ref()
    }

    /// A secret given inline (`<field>`) or in a file (`<field>_file`, surrounding white
    /// space trimmed); `None` when neither is set or on an issue (recorded).
    fn secret(
        &mut self,
        key: &str,
        field: &str,
        inline: &Option<SecretString>,
        file: &Option<PathBuf>,
    ) -> Option<SecretString> {
        match (inline, file) {
            (Some(secret), None) => Some(secret.clone()),
            (None, Some(path)) => match std::fs::read_to_string(path) {
                Ok(text) if !text.trim().is_empty() => {
                    Some(SecretString::from(text.trim().to_owned()))
                }
                Ok(_) => {
                    self.add(
                        format!("{key}.{field}_file"),
                        format!("{} is empty", path.display()),
                    );
                    None
                }
                Err(e) => {
                    self.add(
                        format!("{key}.{field}_file"),
                        format!("cannot read {}: {e}", path.display()),
                    );
                    None
                }
            },
            (Some(_), Some(_)) => {
                self.add(
                    format!("{key}.{field}"),
                    format!("set either {field} or {field}_file, not both"),
                );
                None
            }
            (None, None) => None,
        }
    }

    fn non_empty(&mut self, key: impl fmt::Display, value: &Option<String>) -> Option<String> {
        match value.as_deref().map(str::trim) {
            Some("") => {
                self.add(key, "must not be empty");
                None
            }
            Some(v) => Some(v.to_owned()),
            None => {
                self.add(key, "required");
                None
            }
        }
    }
}

fn validate(raw: RawConfig) -> Result<Config, Vec<ConfigIssue>> {
    let mut issues = Issues::default();
    let mut platforms = BTreeMap::new();
    for (name, p) in &raw.platforms {
        if let Some(platform) = validate_platform(&mut issues, name, p) {
            platforms.insert(name.clone(), platform);
        }
    }
    let mut checks: Vec<CheckConfig> = Vec::new();
    for (i, c) in raw.checks.iter().enumerate() {
        if let Some(check) = validate_check(&mut issues, &format!("checks[{i}]"), c, &raw.platforms)
        {
            if checks.iter().any(|other| other.name == check.name) {
                issues.add(
                    format!("checks[{i}].name"),
                    format!("`{}` is used by another check", check.name),
                );
            }
            checks.push(check);
        }
    }
    let agent = AgentConfig {
        data_dir: raw
            .agent
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("./data")),
        shutdown_grace: raw.agent.shutdown_grace.unwrap_or(Duration::from_secs(10)),
        log_format: raw.agent.log_format.unwrap_or_default(),
    };
    let retention = raw.store.retention.unwrap_or(DEFAULT_RETENTION);
    if retention < Duration::from_secs(3600) {
        issues.add("store.retention", "must be at least 1h");
    }
    let store = StoreConfig { retention };
    let api = validate_api(&mut issues, &raw.api);
    let alerts = alerts::validate(&mut issues, &raw.alerts);
    match api {
        Some(api) if issues.0.is_empty() => Ok(Config {
            platforms,
            checks,
            agent,
            api,
            alerts,
            store,
        }),
        _ => Err(issues.0),
    }
}

fn validate_api(issues: &mut Issues, a: &RawApi) -> Option<ApiConfig> {
    let listen = a.listen.as_deref().unwrap_or("127.0.0.1:9464");
    let listen = match listen.parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            issues.add(
                "api.listen",
                format!("`{listen}` is not an address like 127.0.0.1:9464"),
            );
            None
        }
    };
    let token = issues.secret("api", "token", &a.token, &a.token_file);
    Some(ApiConfig {
        listen: listen?,
        token,
        allow_inline_scripts: a.allow_inline_scripts.unwrap_or(false),
    })
}

fn validate_platform(issues: &mut Issues, name: &str, p: &RawPlatform) -> Option<PlatformConfig> {
    let key = format!("platforms.{name}");
    match p.kind.as_deref() {
        Some("local") => {
            let bkjob_only = [
                ("endpoints", p.endpoints.is_some()),
                ("door", p.door.is_some()),
                ("app_code", p.app_code.is_some()),
                ("app_secret", p.app_secret.is_some()),
                ("app_secret_file", p.app_secret_file.is_some()),
                ("username", p.username.is_some()),
                ("scope_type", p.scope_type.is_some()),
                ("scope_id", p.scope_id.is_some()),
                ("request_timeout", p.request_timeout.is_some()),
                (
                    "max_concurrent_requests",
                    p.max_concurrent_requests.is_some(),
                ),
                (
                    "max_requests_per_second",
                    p.max_requests_per_second.is_some(),
                ),
                ("max_submits_per_second", p.max_submits_per_second.is_some()),
                (
                    "endpoint_failures_before_cooldown",
                    p.endpoint_failures_before_cooldown.is_some(),
                ),
                ("endpoint_cooldown", p.endpoint_cooldown.is_some()),
            ];
            for (field, set) in bkjob_only {
                if set {
                    issues.add(format!("{key}.{field}"), "only for kind = \"bkjob\"");
                }
            }
            Some(PlatformConfig::Local)
        }
        Some("bkjob") => {
            validate_bkjob(issues, &key, name, p).map(|s| PlatformConfig::BkJob(Box::new(s)))
        }
        Some(other) => {
            issues.add(
                format!("{key}.kind"),
                format!("`{other}` is not a platform kind: use \"bkjob\" or \"local\""),
            );
            None
        }
        None => {
            issues.add(
                format!("{key}.kind"),
                format!(
                    "required: \"bkjob\" or \"local\" (note: JOBWATCH__PLATFORMS__{}__* environment variables define this platform too)",
                    name.to_uppercase()
                ),
            );
            None
        }
    }
}

fn validate_bkjob(
    issues: &mut Issues,
    key: &str,
    name: &str,
    p: &RawPlatform,
) -> Option<BkJobSettings> {
    let before = issues.0.len();
    let mut endpoints = Vec::new();
    match &p.endpoints {
        None => issues.add(format!("{key}.endpoints"), "required: a list of base URLs"),
        Some(list) if list.is_empty() => issues.add(
            format!("{key}.endpoints"),
            "must list at least one base URL",
        ),
        Some(list) => {
            for (i, e) in list.iter().enumerate() {
                match Url::parse(e.trim()) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                        endpoints.push(u)
                    }
                    Ok(_) => issues.add(
                        format!("{key}.endpoints[{i}]"),
                        "must be an http:// or https:// URL",
                    ),
                    Err(err) => {
                        issues.add(format!("{key}.endpoints[{i}]"), format!("not a URL: {err}"))
                    }
                }
            }
        }
    }
    let door = match p.door.as_deref().unwrap_or("apigw") {
        "apigw" => Some(Door::Apigw),
        "esb" => Some(Door::Esb),
        other => {
            issues.add(
                format!("{key}.door"),
                format!("`{other}` is not a door: use \"apigw\" or \"esb\""),
            );
            None
        }
    };
    let app_code = issues.non_empty(format!("{key}.app_code"), &p.app_code);
    let app_secret = issues.secret(key, "app_secret", &p.app_secret, &p.app_secret_file);
    if p.app_secret.is_none() && p.app_secret_file.is_none() {
        issues.add(
            format!("{key}.app_secret"),
            format!(
                "required: set app_secret_file, or JOBWATCH__PLATFORMS__{}__APP_SECRET",
                name.to_uppercase()
            ),
        );
    }
    let username = issues.non_empty(format!("{key}.username"), &p.username);
    let scope_type = p.scope_type.clone().unwrap_or_else(|| "biz".into());
    if !matches!(scope_type.as_str(), "biz" | "biz_set") {
        issues.add(
            format!("{key}.scope_type"),
            format!("`{scope_type}` is not a scope type: use \"biz\" or \"biz_set\""),
        );
    }
    let scope_id = issues.non_empty(format!("{key}.scope_id"), &p.scope_id);
    let request_timeout = p.request_timeout.unwrap_or(Duration::from_secs(10));
    let d = FlowSettings::default();
    let flow = FlowSettings {
        max_concurrent: p.max_concurrent_requests.unwrap_or(d.max_concurrent),
        max_per_second: p.max_requests_per_second.unwrap_or(d.max_per_second),
        max_submits_per_second: p.max_submits_per_second.unwrap_or(d.max_submits_per_second),
        failures_before_cooldown: p
            .endpoint_failures_before_cooldown
            .unwrap_or(d.failures_before_cooldown),
        cooldown: p.endpoint_cooldown.unwrap_or(d.cooldown),
    };
    for (field, zero) in [
        ("max_concurrent_requests", flow.max_concurrent == 0),
        ("max_requests_per_second", flow.max_per_second == 0),
        ("max_submits_per_second", flow.max_submits_per_second == 0),
        (
            "endpoint_failures_before_cooldown",
            flow.failures_before_cooldown == 0,
        ),
    ] {
        if zero {
            issues.add(format!("{key}.{field}"), "must be at least 1");
        }
    }
    if request_timeout.is_zero() {
        issues.add(format!("{key}.request_timeout"), "must be more than 0s");
    }
    if issues.0.len() > before {
        return None;
    }
    Some(BkJobSettings {
        name: name.to_owned(),
        endpoints,
        door: door?,
        app_code: app_code?,
        app_secret: app_secret?,
        username: username?,
        scope_type,
        scope_id: scope_id?,
        request_timeout,
        flow,
    })
}

/// Parses one host: a CMDB id, `"<bk_cloud_id>:<ip>"` (IPv4), or `localhost`.
fn parse_host(raw: &RawHost) -> Result<Host, String> {
    match raw {
        RawHost::Id(id) => Ok(Host::by_id(*id)),
        RawHost::Text(text) => Host::parse(text),
    }
}

fn validate_check(
    issues: &mut Issues,
    key: &str,
    c: &RawCheck,
    platforms: &BTreeMap<String, RawPlatform>,
) -> Option<CheckConfig> {
    let before = issues.0.len();
    let name = issues.non_empty(format!("{key}.name"), &c.name);
    if let Some(n) = &name
        && !n
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'))
    {
        issues.add(
            format!("{key}.name"),
            format!("`{n}`: use letters, digits, '-', '_' and '.' only"),
        );
    }
    let platform = issues
        .required(format!("{key}.platform"), &c.platform)
        .cloned();
    let kind = platform.as_ref().and_then(|p| match platforms.get(p) {
        Some(raw) => raw.kind.clone(),
        None => {
            let known: Vec<&str> = platforms.keys().map(String::as_str).collect();
            issues.add(
                format!("{key}.platform"),
                format!("`{p}` is not a platform (known: {})", known.join(", ")),
            );
            None
        }
    });
    let script = match (&c.script, &c.script_file) {
        (Some(s), None) => Some(s.clone()),
        (None, Some(file)) => match std::fs::read_to_string(file) {
            Ok(s) => Some(s),
            Err(e) => {
                issues.add(
                    format!("{key}.script_file"),
                    format!("cannot read {}: {e}", file.display()),
                );
                None
            }
        },
        (Some(_), Some(_)) => {
            issues.add(
                format!("{key}.script"),
                "set either script or script_file, not both",
            );
            None
        }
        (None, None) => {
            issues.add(format!("{key}.script"), "required (or script_file)");
            None
        }
    };
    if script.as_deref().is_some_and(|s| s.trim().is_empty()) {
        issues.add(format!("{key}.script"), "must not be empty");
    }
    let language = match &c.script_language {
        None => Some(ScriptLanguage::Shell),
        Some(RawLanguage::Code(code)) => ScriptLanguage::from_code(*code).or_else(|| {
            issues.add(format!("{key}.script_language"), format!("{code} is not a script language code (1–5)"));
            None
        }),
        Some(RawLanguage::Name(name)) => ScriptLanguage::from_name(name)
            .or_else(|| name.trim().parse().ok().and_then(ScriptLanguage::from_code))
            .or_else(|| {
                issues.add(
                    format!("{key}.script_language"),
                    format!("`{name}` is not a script language: shell, bat, perl, python, powershell or 1–5"),
                );
                None
            }),
    };
    if c.script_param
        .as_ref()
        .is_some_and(|p| p.len() > MAX_SCRIPT_PARAM_BYTES)
    {
        issues.add(
            format!("{key}.script_param"),
            "longer than bk-job's 64 KiB limit",
        );
    }
    let mut hosts = Vec::new();
    if c.hosts.is_empty() {
        issues.add(format!("{key}.hosts"), "must list at least one host");
    }
    for (i, h) in c.hosts.iter().enumerate() {
        match parse_host(h) {
            Ok(host) => hosts.push(host),
            Err(e) => issues.add(format!("{key}.hosts[{i}]"), e),
        }
    }
    match kind.as_deref() {
        Some("local") if hosts.iter().any(|h| !h.is_local()) => {
            issues.add(
                format!("{key}.hosts"),
                "the local platform runs only on \"localhost\"",
            );
        }
        Some("bkjob") => {
            let with_id = hosts.iter().filter(|h| h.bk_host_id.is_some()).count();
            if with_id != 0 && with_id != hosts.len() {
                issues.add(
                    format!("{key}.hosts"),
                    "name every host by id or every host by \"<bk_cloud_id>:<ip>\": bk-job ignores ip_list next to host_id_list",
                );
            }
            if hosts.iter().any(Host::is_local) {
                issues.add(format!("{key}.hosts"), "\"localhost\" is for the local platform; name bk-job hosts by id or \"<bk_cloud_id>:<ip>\"");
            }
            if c.account_alias
                .as_deref()
                .is_none_or(|a| a.trim().is_empty())
            {
                issues.add(
                    format!("{key}.account_alias"),
                    "required for a bkjob platform (e.g. \"root\")",
                );
            }
        }
        _ => {}
    }
    let timeout = c.timeout.unwrap_or(Duration::from_secs(7200));
    if timeout < Duration::from_secs(1) || timeout > MAX_JOB_TIMEOUT {
        issues.add(
            format!("{key}.timeout"),
            "must be from 1s to 72h (bk-job's range)",
        );
    }
    let log_max_bytes = c.log_max_bytes.unwrap_or(64 * 1024);
    if log_max_bytes < 256 {
        issues.add(format!("{key}.log_max_bytes"), "must be at least 256");
    }
    let poll = validate_poll(issues, &format!("{key}.poll"), &c.poll);
    let fail_when = match c.fail_when.as_deref().map(FailWhen::parse) {
        None => FailWhen::Any,
        Some(Ok(f)) => f,
        Some(Err(e)) => {
            issues.add(format!("{key}.fail_when"), e);
            FailWhen::Any
        }
    };
    let schedule = match (&c.schedule, c.every) {
        (Some(_), Some(_)) => {
            issues.add(
                format!("{key}.schedule"),
                "set either schedule or every, not both",
            );
            None
        }
        (Some(text), None) => match crate::schedule::Schedule::cron(text) {
            Ok(s) => Some(s),
            Err(e) => {
                issues.add(format!("{key}.schedule"), e);
                None
            }
        },
        (None, Some(period)) if period < Duration::from_secs(1) => {
            issues.add(format!("{key}.every"), "must be at least 1s");
            None
        }
        (None, Some(period)) => Some(crate::schedule::Schedule::Every(period)),
        (None, None) => None,
    };
    if c.run_on_start && schedule.is_none() && c.schedule.is_none() && c.every.is_none() {
        issues.add(
            format!("{key}.run_on_start"),
            "only for a scheduled check (set schedule or every)",
        );
    }
    if issues.0.len() > before {
        return None;
    }
    Some(CheckConfig {
        name: name?,
        platform: platform?,
        script: script?,
        language: language?,
        param: c.script_param.clone().filter(|p| !p.is_empty()),
        param_sensitive: c.param_sensitive,
        hosts,
        account_alias: c.account_alias.clone().map(|a| a.trim().to_owned()),
        timeout,
        log_max_bytes,
        poll,
        schedule,
        allow_overlap: c.allow_overlap,
        run_on_start: c.run_on_start,
        fail_when,
    })
}

fn validate_poll(issues: &mut Issues, key: &str, p: &RawPoll) -> PollPolicy {
    let d = PollPolicy::default();
    let interval = p.interval.unwrap_or(d.interval);
    let policy = PollPolicy {
        first_poll: p.first_poll.unwrap_or(d.first_poll),
        interval,
        backoff_factor: p.backoff_factor.unwrap_or(d.backoff_factor),
        max_interval: p.max_interval.unwrap_or(d.max_interval.max(interval)),
        jitter: p.jitter.unwrap_or(d.jitter),
        max_attempts: p.max_attempts,
        deadline_slack: p.deadline_slack.unwrap_or(d.deadline_slack),
        lost_after: p.lost_after.unwrap_or(d.lost_after),
        on_deadline: match p.on_deadline.as_deref() {
            None | Some("leave") => OnDeadline::Leave,
            Some("terminate") => OnDeadline::Terminate,
            Some(other) => {
                issues.add(
                    format!("{key}.on_deadline"),
                    format!("`{other}`: use \"leave\" or \"terminate\""),
                );
                OnDeadline::Leave
            }
        },
        terminate_grace: p.terminate_grace.unwrap_or(d.terminate_grace),
        detect: DetectPolicy {
            stuck_after: p.stuck_after.unwrap_or(d.detect.stuck_after),
            straggler_after: p.straggler_after.unwrap_or(d.detect.straggler_after),
            unreachable_after: p.unreachable_after.unwrap_or(d.detect.unreachable_after),
        },
    };
    for (name, value) in [
        ("stuck_after", policy.detect.stuck_after),
        ("straggler_after", policy.detect.straggler_after),
        ("unreachable_after", policy.detect.unreachable_after),
    ] {
        if value.is_zero() {
            issues.add(format!("{key}.{name}"), "must be more than 0s");
        }
    }
    if policy.first_poll.is_zero() {
        issues.add(format!("{key}.first_poll"), "must be more than 0s");
    }
    if policy.interval.is_zero() {
        issues.add(format!("{key}.interval"), "must be more than 0s");
    }
    if policy.max_interval < policy.interval {
        issues.add(
            format!("{key}.max_interval"),
            "must not be less than interval",
        );
    }
    if !(1.0..=10.0).contains(&policy.backoff_factor) {
        issues.add(
            format!("{key}.backoff_factor"),
            "must be from 1 (fixed interval) to 10",
        );
    }
    if !(0.0..1.0).contains(&policy.jitter) {
        issues.add(
            format!("{key}.jitter"),
            "must be from 0 up to (not including) 1",
        );
    }
    if policy.max_attempts == Some(0) {
        issues.add(
            format!("{key}.max_attempts"),
            "must be at least 1 (or left out: no limit but the deadline)",
        );
    }
    if policy.lost_after == 0 {
        issues.add(format!("{key}.lost_after"), "must be at least 1");
    }
    policy
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        load_text(
            text,
            "test",
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    const BK: &str = r#"
        [platforms.bk]
        kind = "bkjob"
        endpoints = ["http://127.0.0.1:1/api/bk-job/prod"]
        app_code = "jobwatch"
        username = "admin"
        scope_id = "2"

        [[checks]]
        name = "disk"
        platform = "bk"
        script = "df -h"
        hosts = ["0:10.0.0.1", "0:10.0.0.2"]
        account_alias = "root"
        timeout = "10m"
        [checks.poll]
        interval = "20s"
        max_attempts = 5
    "#;

    #[test]
    fn the_embedded_default_is_valid() {
        let config = load(None, []).unwrap();
        assert!(!config.checks.is_empty());
        assert!(
            config
                .checks
                .iter()
                .all(|c| config.platforms.contains_key(&c.platform))
        );
    }

    #[test]
    fn secret_comes_from_the_environment_and_never_shows() {
        let config = load_str(
            BK,
            &[("JOBWATCH__PLATFORMS__BK__APP_SECRET", "hunter2-very-secret")],
        )
        .unwrap();
        let check = config.check("disk").unwrap();
        assert_eq!(check.poll.max_attempts, Some(5));
        assert_eq!(check.poll.interval, Duration::from_secs(20));
        assert_eq!(check.timeout, Duration::from_secs(600));
        let PlatformConfig::BkJob(bk) = &config.platforms["bk"] else {
            panic!("bkjob expected")
        };
        assert_eq!(bk.door, Door::Apigw);
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn alert_problems_are_reported_with_their_keys_and_secrets_never_show() {
        let text = r#"
            [platforms.local]
            kind = "local"
            [alerts]
            redact = ["(unclosed"]
            [[alerts.rules]]
            events = ["exploded"]
            severity = "urgent"
            labels = { check = "x", "bad-name" = "y" }
            [[alerts.routes]]
            receiver = "nobody"
            [[alerts.routes]]
            receiver = "mail"
            match_re = { check = "db-(" }
            group_interval = "0s"
            [alerts.receivers.mail]
            type = "email"
            smtp_host = "smtp.example.com"
            tls = "sometimes"
            from = "not an address"
            url = "http://x"
            [alerts.receivers.hook]
            type = "webhook"
            url = "ftp://token-abc@x/"
            [alerts.receivers.bot]
            type = "dingtalk"
            url = "https://oapi.dingtalk.com/robot/send?access_token=tok-123456"
            [alerts.receivers.bot.templates]
            body = "{% for %}"
            [alerts.receivers.pager]
            type = "pagerduty"
        "#;
        let Err(ConfigError::Invalid { issues, .. }) = load_str(text, &[]) else {
            panic!("must be invalid")
        };
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        for expected in [
            "alerts.redact[0]",
            "alerts.rules[0].events[0]",
            "alerts.rules[0].severity",
            "alerts.rules[0].labels.check",
            "alerts.rules[0].labels.bad-name",
            "alerts.routes[0].receiver",
            "alerts.routes[1].match_re.check",
            "alerts.routes[1].group_interval",
            "alerts.receivers.mail.tls",
            "alerts.receivers.mail.from",
            "alerts.receivers.mail.to",
            "alerts.receivers.mail.url",
            "alerts.receivers.hook.url",
            "alerts.receivers.bot.templates.body",
            "alerts.receivers.pager.type",
        ] {
            assert!(keys.contains(&expected), "missing {expected} in {keys:?}");
        }
        let all = format!("{issues:?}");
        assert!(
            !all.contains("token-abc") && !all.contains("tok-123456"),
            "{all}"
        );

        let ok = load_str(
            r#"
            [platforms.local]
            kind = "local"
            [alerts.receivers.bot]
            type = "dingtalk"
            url_file = "/nonexistent/jobwatch-test"
            [[alerts.routes]]
            receiver = "bot"
        "#,
            &[(
                "JOBWATCH__ALERTS__RECEIVERS__HOOK__URL",
                "https://hooks.example.com/T/B/s3cret-path",
            )],
        );
        let Err(ConfigError::Invalid { issues, .. }) = ok else {
            panic!("the unreadable url_file and the env-only receiver without type are issues")
        };
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        assert!(keys.contains(&"alerts.receivers.bot.url_file"), "{keys:?}");
        assert!(keys.contains(&"alerts.receivers.hook.type"), "{keys:?}");
        assert!(!format!("{issues:?}").contains("s3cret-path"));
    }

    #[test]
    fn alert_receivers_get_their_documented_defaults() {
        let config = load_str(
            r#"
            [platforms.local]
            kind = "local"
            [alerts.receivers.am]
            type = "alertmanager"
            urls = ["http://127.0.0.1:9093"]
            [alerts.receivers.mail]
            type = "email"
            smtp_host = "smtp.example.com"
            from = "jobwatch@example.com"
            to = ["ops@example.com"]
            username = "jobwatch"
            [[alerts.routes]]
            receiver = "am"
        "#,
            &[("JOBWATCH__ALERTS__RECEIVERS__MAIL__PASSWORD", "smtp-pw-991")],
        )
        .unwrap();
        let am = &config.alerts.receivers["am"];
        let ReceiverKind::Alertmanager {
            resend_delay,
            resolve_resend,
            ..
        } = &am.kind
        else {
            panic!("alertmanager")
        };
        assert_eq!(
            (*resend_delay, *resolve_resend),
            (Duration::from_secs(60), Duration::from_secs(300))
        );
        assert_eq!(
            (am.timeout, am.retry_for, am.send_resolved),
            (Duration::from_secs(10), Duration::from_secs(86_400), true)
        );
        let ReceiverKind::Email { smtp_port, tls, .. } = &config.alerts.receivers["mail"].kind
        else {
            panic!("email")
        };
        assert_eq!((*smtp_port, *tls), (587, SmtpTls::StartTls));
        let route = &config.alerts.routes[0];
        assert_eq!(route.group_by, ["alertname", "check"]);
        assert_eq!(
            (
                route.group_wait,
                route.group_interval,
                route.repeat_interval
            ),
            (
                Duration::from_secs(30),
                Duration::from_secs(300),
                Duration::from_secs(14_400)
            )
        );
        assert!(!format!("{config:?}").contains("smtp-pw-991"));
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_key() {
        let text = r#"
            [platforms.bk]
            kind = "bkjob"
            endpoints = ["ftp://x"]
            door = "side"
            username = "admin"
            scope_id = "2"

            [[checks]]
            name = "bad name!"
            platform = "nope"
            script = "true"
            script_language = "cobol"
            hosts = ["10.0.0.1", "0:999.1.1.1"]
            timeout = "100d"
            [checks.poll]
            jitter = 2.0
        "#;
        let Err(ConfigError::Invalid { issues, .. }) = load_str(text, &[]) else {
            panic!("must be invalid")
        };
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        for expected in [
            "platforms.bk.endpoints[0]",
            "platforms.bk.door",
            "platforms.bk.app_code",
            "platforms.bk.app_secret",
            "checks[0].name",
            "checks[0].platform",
            "checks[0].script_language",
            "checks[0].hosts[0]",
            "checks[0].hosts[1]",
            "checks[0].timeout",
            "checks[0].poll.jitter",
        ] {
            assert!(keys.contains(&expected), "missing {expected} in {keys:?}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let text = format!("{BK}\n[platforms.extra]\nkind = \"local\"\ncolour = \"blue\"\n");
        let err = load_str(&text, &[("JOBWATCH__PLATFORMS__BK__APP_SECRET", "x")]).unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }

    #[test]
    fn bkjob_hosts_must_not_mix_ids_and_ips() {
        let text = BK.replace(
            r#"hosts = ["0:10.0.0.1", "0:10.0.0.2"]"#,
            r#"hosts = [101, "0:10.0.0.2"]"#,
        );
        let err = load_str(&text, &[("JOBWATCH__PLATFORMS__BK__APP_SECRET", "x")]).unwrap_err();
        assert!(err.to_string().contains("checks[0].hosts"), "{err}");
    }

    fn issues_of(text: &str, env: &[(&str, &str)]) -> Vec<ConfigIssue> {
        match load_str(text, env) {
            Err(ConfigError::Invalid { issues, .. }) => issues,
            other => panic!("must be invalid: {other:?}"),
        }
    }

    #[test]
    fn shape_problems_are_all_reported_with_full_keys_and_the_type_found() {
        let text = BK.replace(
            r#"timeout = "10m""#,
            "timeout = -5\nlog_max_bytes = \"big\"\nbogus = 1\nfail_when = \"most\"",
        ) + "\n[agent]\ncolour = \"blue\"\n";
        let issues = issues_of(&text, &[("JOBWATCH__PLATFORMS__BK__APP_SECRET", "x")]);
        let find = |key: &str| {
            issues
                .iter()
                .find(|i| i.key == key)
                .unwrap_or_else(|| panic!("no issue for {key} in {issues:#?}"))
        };
        assert!(
            find("checks[0].timeout").message.contains("integer"),
            "{issues:#?}"
        );
        assert!(
            find("checks[0].log_max_bytes").message.contains("string"),
            "{issues:#?}"
        );
        assert!(
            find("checks[0].bogus").message.contains("unknown field"),
            "{issues:#?}"
        );
        assert!(
            find("agent.colour").message.contains("unknown field"),
            "{issues:#?}"
        );
        // Value problems are reported with the shape problems, at once.
        find("checks[0].fail_when");
        let timeout = issues
            .iter()
            .filter(|i| i.key == "checks[0].timeout")
            .count();
        assert_eq!(timeout, 1, "a key is reported once: {issues:#?}");
    }

    #[test]
    fn a_bad_environment_override_names_its_variable() {
        let issues = issues_of(
            BK,
            &[
                ("JOBWATCH__PLATFORMS__BK__APP_SECRET", "x"),
                ("JOBWATCH__AGENT__SHUTDOWN_GRACE", "soon"),
                ("JOBWATCH__CHECKS__0__POLL__MAX_ATTEMPTS", "many"),
                ("JOBWATCH__CHECKS__7__TIMEOUT", "1m"),
                ("JOBWATCH__API__LISTEN", "nope"),
            ],
        );
        let text = format!("{issues:#?}");
        let grace = issues
            .iter()
            .find(|i| i.key == "agent.shutdown_grace")
            .expect(&text);
        assert!(
            grace.message.contains("JOBWATCH__AGENT__SHUTDOWN_GRACE"),
            "{text}"
        );
        let attempts = issues
            .iter()
            .find(|i| i.key == "checks[0].poll.max_attempts")
            .expect(&text);
        assert!(
            attempts
                .message
                .contains("JOBWATCH__CHECKS__0__POLL__MAX_ATTEMPTS"),
            "{text}"
        );
        assert!(
            issues
                .iter()
                .any(|i| i.key == "JOBWATCH__CHECKS__7__TIMEOUT"),
            "{text}"
        );
        let listen = issues.iter().find(|i| i.key == "api.listen").expect(&text);
        assert!(listen.message.contains("JOBWATCH__API__LISTEN"), "{text}");
    }

    #[test]
    fn environment_values_keep_their_text_and_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let secret_file = dir.path().join("secret");
        std::fs::write(&secret_file, "from-the-file").unwrap();
        let text = BK.replace(
            "scope_id = \"2\"",
            &format!(
                "scope_id = \"2\"\napp_secret_file = \"{}\"",
                secret_file.display()
            ),
        );
        // A secret of digits stays text, leading zeros included; the environment replaces
        // the file's app_secret_file (README: uncomment the example, export the secret).
        let config = load_str(&text, &[("JOBWATCH__PLATFORMS__BK__APP_SECRET", "007123")]).unwrap();
        let PlatformConfig::BkJob(bk) = &config.platforms["bk"] else {
            panic!("bk is bkjob")
        };
        use secrecy::ExposeSecret;
        assert_eq!(bk.app_secret.expose_secret(), "007123");
        let config = load_str(
            BK,
            &[
                ("JOBWATCH__PLATFORMS__BK__APP_SECRET", "x"),
                ("JOBWATCH__CHECKS__0__POLL__MAX_ATTEMPTS", "9"),
            ],
        )
        .unwrap();
        assert_eq!(config.checks[0].poll.max_attempts, Some(9));
    }

    #[test]
    fn a_toml_syntax_error_names_key_and_line_and_never_quotes_a_secret() {
        for (line, secret) in [
            (
                "app_secret = \"hunter2-unterminated",
                "hunter2-unterminated",
            ),
            ("app_secret = hunter2unquoted", "hunter2unquoted"),
            (
                "app_secret = \"hunter2-then-junk\" junk",
                "hunter2-then-junk",
            ),
        ] {
            let text = BK.replace(
                "app_code = \"jobwatch\"",
                &format!("app_code = \"jobwatch\"\n{line}"),
            );
            let err = load_str(&text, &[]).unwrap_err().to_string();
            assert!(!err.contains(secret), "the secret shows: {err}");
            assert!(err.contains("platforms.bk.app_secret"), "{err}");
            assert!(err.contains("line 6"), "{err}");
        }
        let text = "[api]\ntoken = 123456\n";
        let err = load_str(text, &[]).unwrap_err().to_string();
        assert!(err.contains("api.token"), "{err}");
        assert!(!err.contains("123456"), "the secret shows: {err}");
    }

    #[test]
    fn smtp_refuses_a_password_over_plain_text_unless_told_so() {
        let mail = "[alerts.receivers.m]\ntype = \"email\"\nsmtp_host = \"127.0.0.1\"\ntls = \"none\"\nusername = \"u\"\nfrom = \"a@example.com\"\nto = [\"b@example.com\"]\n";
        let env = [("JOBWATCH__ALERTS__RECEIVERS__M__PASSWORD", "pw-9")];
        let issues = issues_of(mail, &env);
        assert!(
            issues
                .iter()
                .any(|i| i.key == "alerts.receivers.m.tls" && i.message.contains("unencrypted")),
            "{issues:#?}"
        );
        assert!(!format!("{issues:?}").contains("pw-9"));
        load_str(&format!("{mail}allow_plaintext_auth = true\n"), &env).unwrap();
        load_str(mail, &[]).unwrap();
    }
}
