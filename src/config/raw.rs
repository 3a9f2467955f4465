//! The file as written: the `Raw*` structs serde reads (unknown keys refused). Every field
//! is user documentation; `config.example.toml` shows them all.

use super::*;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    /// Job platforms by name.
    #[serde(default)]
    pub(super) platforms: BTreeMap<String, RawPlatform>,
    /// Checks: a script, its targets and how to follow it.
    #[serde(default)]
    pub(super) checks: Vec<RawCheck>,
    /// The daemon (`jobwatch run`).
    #[serde(default)]
    pub(super) agent: RawAgent,
    /// The HTTP API and status page of the daemon.
    #[serde(default)]
    pub(super) api: RawApi,
    /// Alert rules, routes and receivers.
    #[serde(default)]
    pub(super) alerts: alerts::RawAlerts,
    /// What is kept, and for how long.
    #[serde(default)]
    pub(super) store: RawStore,
    /// Where bk-job's job-end callbacks come in.
    #[serde(default)]
    pub(super) callbacks: RawCallbacks,
}

/// `[callbacks]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCallbacks {
    /// The base URL bk-job must reach (e.g. `https://jobwatch.example.com:9464`); unset:
    /// no callbacks.
    pub(super) public_url: Option<String>,
    /// A listener of their own (default: the API's).
    pub(super) listen: Option<String>,
    /// The key the per-execution callback tokens are derived with (better: `key_file` or
    /// `JOBWATCH__CALLBACKS__KEY`; default: `<data_dir>/callback.key`, made at first start).
    pub(super) key: Option<SecretString>,
    /// A file holding the key.
    pub(super) key_file: Option<PathBuf>,
}

/// `[store]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    /// How long ended executions and delivered or rejected notifications are kept after
    /// their last change (default 30d, at least 1h); older ones are pruned.
    #[serde(default, with = "humantime_serde")]
    pub(super) retention: Option<Duration>,
    /// `sqlite://` (default: `jobwatch.sqlite3` under `data_dir`) or `postgres://user@host/db`
    /// (several replicas share it; no password in the URL).
    pub(super) url: Option<String>,
    /// The PostgreSQL password (from the environment: `JOBWATCH__STORE__PASSWORD`).
    pub(super) password: Option<SecretString>,
    /// A file holding the PostgreSQL password.
    pub(super) password_file: Option<PathBuf>,
    /// How long a replica's shard lease lasts without renewal (default 15s, 3s–10m).
    #[serde(default, with = "humantime_serde")]
    pub(super) lease: Option<Duration>,
}

/// `[agent]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAgent {
    /// Where the SQLite database lives (default `./data`).
    pub(super) data_dir: Option<PathBuf>,
    /// How long a SIGTERM/SIGINT waits for in-flight platform calls (default 10s).
    #[serde(default, with = "humantime_serde")]
    pub(super) shutdown_grace: Option<Duration>,
    /// Log lines on stderr: `text` (default; colours only on a terminal) or `json` (one
    /// object a line).
    pub(super) log_format: Option<LogFormat>,
}

/// `[api]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApi {
    /// Listen address (default `127.0.0.1:9464`).
    pub(super) listen: Option<String>,
    /// An `admin` token named `token` (better: `token_file` or `JOBWATCH__API__TOKEN`; more
    /// tokens and other roles: `[api.tokens.<name>]`). No token at all: every route is
    /// open — set one.
    pub(super) token: Option<SecretString>,
    /// A file holding the token.
    pub(super) token_file: Option<PathBuf>,
    /// Named tokens with a role each (`[api.tokens.<name>]`).
    #[serde(default)]
    pub(super) tokens: BTreeMap<String, RawApiToken>,
    /// Accept `script` in `POST /v1/executions` (default false).
    pub(super) allow_inline_scripts: Option<bool>,
    /// A PEM certificate chain: the listener speaks HTTPS (with `tls_key_file`); both files
    /// are read again when they change.
    pub(super) tls_cert_file: Option<PathBuf>,
    /// The PEM private key of `tls_cert_file`.
    pub(super) tls_key_file: Option<PathBuf>,
    /// The URL of a job instance in the platform's own UI, by platform name; `{job_instance_id}`,
    /// `{scope_id}` and `{jid}` are filled in (e.g.
    /// `https://job.example.com/biz/{scope_id}/execute/task/{job_instance_id}`).
    #[serde(default)]
    pub(super) job_links: BTreeMap<String, String>,
}

/// `[api.tokens.<name>]`: one bearer token; its name is what the logs say.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApiToken {
    /// `metrics` (only `/metrics`), `read` (every GET and the pages), `run` (and start
    /// executions and watches) or `admin` (and silences, terminate).
    pub(super) role: Option<String>,
    /// The token (better: `token_file`, or `JOBWATCH__API__TOKENS__<NAME>__TOKEN`).
    pub(super) token: Option<SecretString>,
    /// A file holding the token (surrounding white space is trimmed).
    pub(super) token_file: Option<PathBuf>,
}

/// `[platforms.<name>]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPlatform {
    /// `bkjob`, `salt` or `local`.
    pub(super) kind: Option<String>,
    /// bkjob: base URLs, tried in order (APIGW: up to the stage, e.g.
    /// `https://bkapi.example.com/api/bk-job/prod`; ESB: the PaaS host).
    pub(super) endpoints: Option<Vec<String>>,
    /// bkjob: `apigw` (default) or `esb`.
    pub(super) door: Option<String>,
    /// bkjob: `bk_app_code`.
    pub(super) app_code: Option<String>,
    /// bkjob: `bk_app_secret` (better: `app_secret_file` or the environment).
    pub(super) app_secret: Option<SecretString>,
    /// bkjob: a file holding the app secret (surrounding white space is trimmed).
    pub(super) app_secret_file: Option<PathBuf>,
    /// bkjob: `bk_username`; salt: the eauth user.
    pub(super) username: Option<String>,
    /// salt: the eauth password (better: `password_file` or the environment).
    pub(super) password: Option<SecretString>,
    /// salt: a file holding the password (surrounding white space is trimmed).
    pub(super) password_file: Option<PathBuf>,
    /// salt: the eauth backend (`pam`, `ldap`, `sharedsecret`, …).
    pub(super) eauth: Option<String>,
    /// bkjob: `bk_scope_type`, `biz` (default) or `biz_set`.
    pub(super) scope_type: Option<String>,
    /// bkjob: `bk_scope_id` (business or business-set id).
    pub(super) scope_id: Option<String>,
    /// bkjob: timeout of one HTTP request (default 10s).
    #[serde(default, with = "humantime_serde")]
    pub(super) request_timeout: Option<Duration>,
    /// bkjob: requests in flight at once per endpoint (default 16).
    pub(super) max_concurrent_requests: Option<usize>,
    /// bkjob: requests started per second per endpoint (default 20), submits not counted.
    pub(super) max_requests_per_second: Option<u32>,
    /// bkjob: submits started per second per endpoint (default 10): their own budget, so
    /// that polls never hold back new jobs.
    pub(super) max_submits_per_second: Option<u32>,
    /// bkjob: transport failures in a row before an endpoint is skipped (default 3).
    pub(super) endpoint_failures_before_cooldown: Option<u32>,
    /// bkjob: how long a failing endpoint is skipped (default 30s).
    #[serde(default, with = "humantime_serde")]
    pub(super) endpoint_cooldown: Option<Duration>,
    /// bkjob: ask bk-job to call back at each job's end (needs `[callbacks] public_url`).
    pub(super) callbacks: Option<bool>,
    /// salt: follow salt-api's event stream (`GET /events`) for minions' returns.
    pub(super) events: Option<bool>,
}

/// Script language as a bk-job code (1–5) or a name.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawLanguage {
    Code(i64),
    Name(String),
}

/// A host as a CMDB id (number or digits) or `"<bk_cloud_id>:<ip>"` or `localhost`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawHost {
    Id(u64),
    Text(String),
}

/// `[[checks]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCheck {
    /// Unique name: letters, digits, `-`, `_`, `.`.
    pub(super) name: Option<String>,
    /// A key of `[platforms]`.
    pub(super) platform: Option<String>,
    /// The script text (or `script_file`).
    pub(super) script: Option<String>,
    /// A file holding the script, relative to the working directory.
    pub(super) script_file: Option<PathBuf>,
    /// 1–5 or shell, bat, perl, python, powershell (default shell).
    pub(super) script_language: Option<RawLanguage>,
    /// The argument string, passed as one unit.
    pub(super) script_param: Option<String>,
    /// Ask the platform to mask the parameters (default false).
    #[serde(default)]
    pub(super) param_sensitive: bool,
    /// Targets.
    #[serde(default)]
    pub(super) hosts: Vec<RawHost>,
    /// bkjob: execution account alias (required there).
    pub(super) account_alias: Option<String>,
    /// The job's own timeout (default 2h, bk-job's default; at most 72h).
    #[serde(default, with = "humantime_serde")]
    pub(super) timeout: Option<Duration>,
    /// Bytes of log kept per host, the tail (default 65536).
    pub(super) log_max_bytes: Option<usize>,
    /// How to follow the job.
    #[serde(default)]
    pub(super) poll: RawPoll,
    /// Run by itself on this cron expression (UTC; 5 fields, or 6 with seconds first).
    pub(super) schedule: Option<String>,
    /// Run by itself every this long (on multiples of the period since the epoch).
    #[serde(default, with = "humantime_serde")]
    pub(super) every: Option<Duration>,
    /// Start a scheduled run even while the previous one is going (default false: the tick
    /// is recorded as skipped).
    #[serde(default)]
    pub(super) allow_overlap: bool,
    /// With a schedule: also run once as soon as the daemon starts (default false), so that
    /// a check every hour shows a result now.
    #[serde(default)]
    pub(super) run_on_start: bool,
    /// Maintenance windows: `[{ schedule = "0 2 * * SUN", duration = "2h" }]` (cron, UTC).
    /// A scheduled tick inside one is recorded skipped with that reason: no run, no alert.
    #[serde(default)]
    pub(super) maintenance: Vec<RawMaintenance>,
    /// When the job counts as failed: `"any"` host (default), `"count >= N"` hosts, or
    /// `"ratio > R"` of the hosts (R from 0 to 1).
    pub(super) fail_when: Option<String>,
}

/// One maintenance window of a check.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMaintenance {
    /// When it opens: a cron expression (UTC).
    pub(super) schedule: Option<String>,
    /// How long it stays open (at least 1m).
    #[serde(default, with = "humantime_serde")]
    pub(super) duration: Option<Duration>,
}

/// `[checks.poll]`; see [`PollPolicy`] for each field's meaning and default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPoll {
    #[serde(default, with = "humantime_serde")]
    pub(super) first_poll: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(super) interval: Option<Duration>,
    pub(super) backoff_factor: Option<f64>,
    #[serde(default, with = "humantime_serde")]
    pub(super) max_interval: Option<Duration>,
    pub(super) jitter: Option<f64>,
    pub(super) max_attempts: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    pub(super) deadline_slack: Option<Duration>,
    pub(super) lost_after: Option<u32>,
    pub(super) on_deadline: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub(super) terminate_grace: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(super) stuck_after: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(super) straggler_after: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(super) unreachable_after: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(super) safety_interval: Option<Duration>,
}
