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
mod checks;
mod issues;
mod platforms;
pub mod policy;
mod raw;
pub mod salt;
mod source;
pub mod templates;
#[cfg(test)]
mod tests;
mod validate;

pub use self::alerts::{
    AlertsConfig, Matcher, ReceiverCheck, ReceiverConfig, RouteConfig, RuleConfig, Templates,
    builtin_redactions, no_receiver_check,
};
pub use self::issues::Issues;

use self::bkjob::{BkJobSettings, Door, FlowSettings};
use self::checks::*;
use self::platforms::*;
use self::policy::{DetectPolicy, FailWhen, OnDeadline, PollPolicy};
use self::raw::*;
use self::salt::SaltSettings;
use self::validate::*;
use crate::model::{Host, ScriptLanguage};

/// The sample configuration, embedded: used when no `--config` is given.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../config.example.toml");

/// bk-job's timeout range (API.md §10: 1 s up to 259200 s by default).
const MAX_JOB_TIMEOUT: Duration = Duration::from_secs(259_200);

/// bk-job's `script_param` limit before encoding (API.md §3: 64K, non-sensitive).
const MAX_SCRIPT_PARAM_BYTES: usize = 64 * 1024;

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
    /// bk-job job-end callbacks.
    pub callbacks: CallbacksConfig,
}

/// A validated `[callbacks]`: where bk-job's job-end callbacks come in. Off unless
/// `public_url` is set and a bk-job platform says `callbacks = true`.
#[derive(Debug, Clone, Default)]
pub struct CallbacksConfig {
    /// The base URL bk-job reaches jobwatch at; each submit's `callback_url` is
    /// `<public_url>/v1/callbacks/bkjob/<execution id>/<token>`.
    pub public_url: Option<Url>,
    /// A listener for callbacks alone; `None`: the API's listener serves them.
    pub listen: Option<std::net::SocketAddr>,
    /// The key tokens are derived with; `None`: `<data_dir>/callback.key` (made at first
    /// start, mode 0600). Replicas sharing a database must share it.
    pub key: Option<SecretString>,
}

/// A validated `[store]`.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// How long ended executions and finished notifications are kept (default 30 days).
    pub retention: Duration,
    /// Where executions are kept.
    pub backend: StoreBackend,
    /// How long a shard lease lasts without renewal (PostgreSQL; renewed every third of
    /// it). A dead replica's executions are followed again by another within this plus one
    /// poll interval.
    pub lease: Duration,
}

/// The default `[store] lease`.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);

/// Where executions are kept (`[store] url`).
#[derive(Debug, Clone)]
pub enum StoreBackend {
    /// `jobwatch.sqlite3` under `agent.data_dir`: one process.
    Sqlite,
    /// A PostgreSQL database shared by any number of replicas.
    Postgres {
        /// `postgres://user@host:port/db[?sslmode=…]`, without a password.
        url: String,
        /// From `password` (the environment) or `password_file`.
        password: Option<SecretString>,
    },
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
    /// The bearer tokens (`api.token` is the `admin` one named `token`), in name order.
    /// None at all: every route is open.
    pub tokens: Vec<ApiToken>,
    /// Accept inline scripts over the API.
    pub allow_inline_scripts: bool,
    /// HTTPS on the listener: the PEM certificate chain and key files.
    pub tls: Option<TlsFiles>,
    /// Links to a job instance in a platform's own UI, by platform name (a template with
    /// `{job_instance_id}`, `{scope_id}`, `{jid}`).
    pub job_links: BTreeMap<String, String>,
}

impl ApiConfig {
    /// Whether `/metrics` needs a token: some token has the `metrics` role.
    pub fn metrics_guarded(&self) -> bool {
        self.tokens.iter().any(|t| t.role == Role::Metrics)
    }
}

/// The certificate chain and private key of the HTTPS listener (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// What a token may do; each role may do what the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// `GET /metrics` only (Prometheus' `authorization`).
    Metrics,
    /// Every GET route and the pages.
    Read,
    /// And start executions (`POST /v1/executions`) and watches.
    Run,
    /// And silences, terminate.
    Admin,
}

impl Role {
    /// The configured name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Metrics => "metrics",
            Role::Read => "read",
            Role::Run => "run",
            Role::Admin => "admin",
        }
    }

    /// Parses a configured name.
    pub fn from_name(name: &str) -> Option<Role> {
        [Role::Metrics, Role::Read, Role::Run, Role::Admin]
            .into_iter()
            .find(|r| r.as_str() == name)
    }
}

/// One API token: its name (what logs say), its role and its value (never shown).
#[derive(Debug, Clone)]
pub struct ApiToken {
    /// The name: `token` for `api.token`, else the key of `[api.tokens.<name>]`.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The bearer value.
    pub secret: SecretString,
}

/// A validated platform.
#[derive(Debug, Clone)]
pub enum PlatformConfig {
    /// bk-job through APIGW or ESB.
    BkJob(Box<BkJobSettings>),
    /// SaltStack through salt-api.
    Salt(Box<SaltSettings>),
    /// Scripts run on this host.
    Local,
}

impl PlatformConfig {
    /// `bkjob` or `local`.
    pub fn kind(&self) -> &'static str {
        match self {
            PlatformConfig::BkJob(_) => "bkjob",
            PlatformConfig::Salt(_) => "salt",
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
    /// Maintenance windows: scheduled ticks inside one are recorded skipped.
    pub maintenance: Vec<crate::schedule::Maintenance>,
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
            maintenance: Vec::new(),
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
/// (normally `std::env::vars()`), then validates and builds it; receivers' own settings are
/// checked by `check` (the application passes `crate::notify::check_receiver`).
pub fn load_checked(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    check: ReceiverCheck,
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
    load_text_checked(&text, &source_name, env, check)
}

/// [`load_text_checked`] without checking the receivers' own settings.
pub fn load_text(
    text: &str,
    source_name: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    load_text_checked(text, source_name, env, no_receiver_check)
}

/// Like [`load_checked`], from TOML `text`; `source_name` names it in errors. Every problem is
/// reported at once: a TOML syntax error (by position, never quoting the line), each unknown
/// key and wrong type (by full key, naming the environment variable it came from), then every
/// value problem (receivers' own settings through `check`).
pub fn load_text_checked(
    text: &str,
    source_name: &str,
    env: impl IntoIterator<Item = (String, String)>,
    check: ReceiverCheck,
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
    match validate(raw, check) {
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
