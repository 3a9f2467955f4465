//! A bk-job platform's settings, as the configuration gives them to the adapter: the front
//! door, the endpoints, the credentials, and the flow control (API.md §1, §10).

use std::time::Duration;

use secrecy::SecretString;
use url::Url;

/// Every bk-job API the adapter calls (the closed `api` label set of its metrics).
pub const APIS: [&str; 5] = [
    "fast_execute_script",
    "get_job_instance_status",
    "batch_get_job_instance_ip_log",
    "operate_job_instance",
    "get_job_instance_list",
];

/// Which front door the endpoints are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Door {
    /// The BlueKing API gateway (`bk-job` gateway, v3 resources).
    Apigw,
    /// The legacy ESB component API.
    Esb,
}

/// Everything the adapter needs, validated (see [`crate::config`]).
#[derive(Debug, Clone)]
pub struct BkJobSettings {
    /// Platform name from config, for logs.
    pub name: String,
    /// Base URLs, tried in order. APIGW: up to the stage, e.g.
    /// `https://bkapi.example.com/api/bk-job/prod`; ESB: the PaaS host.
    pub endpoints: Vec<Url>,
    /// Front door.
    pub door: Door,
    /// `bk_app_code`.
    pub app_code: String,
    /// `bk_app_secret`; never logged.
    pub app_secret: SecretString,
    /// `bk_username` (the app must be whitelisted for it, API.md §1.2).
    pub username: String,
    /// `bk_scope_type`: `biz` or `biz_set`.
    pub scope_type: String,
    /// `bk_scope_id`.
    pub scope_id: String,
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
    /// Endpoint health and flow control.
    pub flow: FlowSettings,
    /// Whether submits ask bk-job to call back at the job's end (`callback_url`).
    pub callbacks: bool,
}

/// Flow control and health settings of a platform's endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowSettings {
    /// Requests in flight at once per endpoint (default 16).
    pub max_concurrent: usize,
    /// Requests started per second per endpoint (default 20; bk-job sets no limit itself,
    /// gateways often allow 100/s per app: API.md §10). Submits are not counted here.
    pub max_per_second: u32,
    /// Submits (`fast_execute_script`) started per second per endpoint (default 10): their
    /// own budget, with their own concurrency limit of `max_concurrent`, so that polls of
    /// many running jobs never hold back the start of new ones.
    pub max_submits_per_second: u32,
    /// Transport failures in a row before an endpoint is skipped (default 3).
    pub failures_before_cooldown: u32,
    /// How long a failing endpoint is skipped (default 30 s).
    pub cooldown: Duration,
}

impl Default for FlowSettings {
    fn default() -> Self {
        FlowSettings {
            max_concurrent: 16,
            max_per_second: 20,
            max_submits_per_second: 10,
            failures_before_cooldown: 3,
            cooldown: Duration::from_secs(30),
        }
    }
}
