//! A Salt platform's settings, as the configuration gives them to the adapter: the salt-api
//! endpoints, the eauth credentials and the flow control (salt/API.md §2, §3).

use std::time::Duration;

use secrecy::SecretString;
use url::Url;

pub use super::bkjob::FlowSettings;

/// Every salt-api call the adapter makes (the closed `api` label set of its metrics).
pub const APIS: [&str; 5] = [
    "local_async",
    "jobs",
    "jobs.list_jobs",
    "saltutil.find_job",
    "saltutil.term_job",
];

/// Everything the adapter needs, validated (see [`crate::config`]).
#[derive(Debug, Clone)]
pub struct SaltSettings {
    /// Platform name from config, for logs.
    pub name: String,
    /// salt-api (`rest_cherrypy`) base URLs, tried in order, e.g. `https://salt.example.com:8000`.
    pub endpoints: Vec<Url>,
    /// The eauth user.
    pub username: String,
    /// Its password (for `sharedsecret`: the master's `sharedsecret`); never logged.
    pub password: SecretString,
    /// The eauth backend: `pam`, `ldap`, `sharedsecret`, … (salt/API.md §2).
    pub eauth: String,
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
    /// Endpoint health and flow control, as for bk-job.
    pub flow: FlowSettings,
    /// Follow salt-api's event stream (`GET /events`): a minion's return to a job jobwatch
    /// submitted makes that execution's next poll due now. Default off.
    pub events: bool,
}
