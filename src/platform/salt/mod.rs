//! SaltStack through salt-api (`rest_cherrypy`), as a job platform (salt/API.md).
//!
//! - **Auth**: `POST /login` with the eauth user, password and backend; the token (a session
//!   in salt-api's memory, one per endpoint) goes in `X-Auth-Token`. A 401 means salt-api
//!   forgot it (a restart): log in again once and repeat the call.
//! - **Submit**: `local_async` `cmd.exec_code_all` to a list target: the interpreter of the
//!   check's language runs the script as a file with its parameters as arguments (no Jinja
//!   rendering), with Salt's `timeout` and `runas` (the account alias). The job's `metadata`
//!   carries the task name (so a submit whose answer was lost is found again with
//!   `jobs.list_jobs search_metadata`, never sent twice) and the requested hosts.
//! - **Poll**: `GET /jobs/<jid>`, reading `info[0]` (never `return`): a host in `Result` has
//!   ended with `return.retcode` as its exit code; a requested host missing from `Minions`
//!   has no accepted key. Hosts not returned are probed with `local_async
//!   saltutil.find_job`, read back on a later poll ([`watch`]): a `pid` is running, `{}` twice
//!   is lost, silence twice is unreachable. Salt never gives up on a silent host: the deadline
//!   is jobwatch's.
//! - **Terminate**: `saltutil.term_job` to the hosts still running, `saltutil.kill_job` to
//!   those a probe still finds running [`watch::KILL_AFTER`] later; such hosts never return,
//!   so they are recorded terminated once a probe finds them stopped.

pub mod codes;
pub mod events;
pub mod watch;
pub mod wire;

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::header::ACCEPT;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

pub use crate::config::salt::SaltSettings;
use crate::model::{Host, JobSnapshot};
use crate::platform::{
    HostLog, JobRef, Platform, PlatformError, SubmitGate, SubmitRequest, endpoints, transport_error,
};

use self::watch::Watch;
use self::wire::Answer;

/// Jobs not polled for this long are forgotten (their probe state only).
const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// One salt-api call: a `GET` of a path, or a `POST /` of a lowstate list.
enum Call<'a> {
    Get(String),
    Post(&'a Value),
}

/// The Salt adapter: endpoints with failover and flow control, a token per endpoint, and
/// the probe state of the jobs it polls.
pub struct Salt {
    settings: SaltSettings,
    http: reqwest::Client,
    endpoints: endpoints::Endpoints,
    tokens: Vec<tokio::sync::Mutex<Option<SecretString>>>,
    watches: Mutex<HashMap<String, Watch>>,
}

impl std::fmt::Debug for Salt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Salt")
            .field("name", &self.settings.name)
            .field("endpoints", &self.endpoints)
            .field("eauth", &self.settings.eauth)
            .finish_non_exhaustive()
    }
}

impl Salt {
    /// Builds the client. Errors only if the TLS stack cannot start.
    pub fn new(settings: SaltSettings) -> Result<Self, PlatformError> {
        let http = crate::platform::http_client(settings.request_timeout)?;
        let endpoints = endpoints::Endpoints::new(&settings.endpoints, settings.flow.clone());
        let tokens = settings
            .endpoints
            .iter()
            .map(|_| tokio::sync::Mutex::new(None))
            .collect();
        Ok(Salt {
            settings,
            http,
            endpoints,
            tokens,
            watches: Mutex::new(HashMap::new()),
        })
    }

    /// Calls salt-api with failover ([`endpoints::Endpoints::call`]).
    async fn call(
        &self,
        api: &'static str,
        mutating: bool,
        call: Call<'_>,
        gate: Option<&dyn SubmitGate>,
    ) -> Result<Value, PlatformError> {
        let call = &call;
        self.endpoints
            .call(&self.settings.name, api, gate, |i| {
                self.call_once(i, api, mutating, call)
            })
            .await
    }

    /// One call to endpoint `i`, logged in first when it has no token, and once more after
    /// a 401 (salt-api forgets its sessions when it restarts).
    async fn call_once(
        &self,
        i: usize,
        api: &'static str,
        mutating: bool,
        call: &Call<'_>,
    ) -> Result<Value, PlatformError> {
        let mut token = self.token(i, None).await?;
        for attempt in 0..2 {
            let url = self.endpoints.url(i);
            let request = match call {
                Call::Get(path) => self.http.get(join(url, path)),
                Call::Post(body) => self.http.post(url.clone()).json(body),
            };
            let (http_status, body) = send(
                api,
                mutating,
                request.header("X-Auth-Token", token.expose_secret()),
            )
            .await?;
            if http_status == 401 && attempt == 0 {
                tracing::debug!(platform = %self.settings.name, endpoint = i, "salt-api forgot the token; logging in again.");
                token = self.token(i, Some(&token)).await?;
                continue;
            }
            return wire::decode(Answer {
                api,
                mutating,
                http_status,
                body: &body,
            });
        }
        unreachable!("the loop returns on its second attempt")
    }

    /// The token of endpoint `i`: the one held, unless it is `stale` (refused with 401), else
    /// a fresh one. One login at a time per endpoint; requests share the token.
    async fn token(
        &self,
        i: usize,
        stale: Option<&SecretString>,
    ) -> Result<SecretString, PlatformError> {
        let mut held = self.tokens[i].lock().await;
        if let Some(t) = held.as_ref()
            && stale.is_none_or(|s| s.expose_secret() != t.expose_secret())
        {
            return Ok(t.clone());
        }
        let fresh = self.login(i).await?;
        *held = Some(fresh.clone());
        Ok(fresh)
    }

    /// `POST /login`: a fresh token from endpoint `i`. A refusal is permanent and says which
    /// settings to check (the body, an HTML page, is not quoted).
    async fn login(&self, i: usize) -> Result<SecretString, PlatformError> {
        let api = "login";
        let s = &self.settings;
        let request = self
            .http
            .post(join(self.endpoints.url(i), "login"))
            .json(&json!({
                "username": s.username,
                "password": s.password.expose_secret(),
                "eauth": s.eauth,
            }));
        let (http_status, body) = send(api, false, request).await?;
        if http_status == 401 {
            return Err(PlatformError {
                http_status: Some(401),
                ..PlatformError::permanent(
                    api,
                    None,
                    format!(
                        "salt-api refused the login of `{}` with eauth `{}`: check username, password and the master's external_auth",
                        s.username, s.eauth
                    ),
                )
            });
        }
        let v = wire::decode(Answer {
            api,
            mutating: false,
            http_status,
            body: &body,
        })?;
        wire::first_return(api, false, &v)?
            .get("token")
            .and_then(Value::as_str)
            .map(|t| SecretString::from(t.to_owned()))
            .ok_or_else(|| PlatformError::transient(api, "salt-api's login answer has no token"))
    }

    /// `local_async` of `fun` with `arg` to the minions `hosts`; the new jid.
    async fn local_async(
        &self,
        api: &'static str,
        fun: &str,
        hosts: &[String],
        arg: Value,
    ) -> Result<String, PlatformError> {
        let body = json!([{
            "client": "local_async",
            "tgt": hosts,
            "tgt_type": "list",
            "fun": fun,
            "arg": arg,
        }]);
        let v = self.call(api, true, Call::Post(&body), None).await?;
        match wire::submitted(api, &v)? {
            Some((jid, _)) => Ok(jid),
            None => Err(PlatformError::permanent(
                api,
                None,
                "none of the hosts has an accepted key",
            )),
        }
    }

    /// `GET /jobs/<jid>`, decoded.
    async fn job_info(&self, jid: &str) -> Result<wire::JobInfo, PlatformError> {
        let v = self
            .call("jobs", false, Call::Get(format!("jobs/{jid}")), None)
            .await?;
        wire::job_info(&v)
    }

    fn jid<'j>(&self, api: &'static str, job: &'j JobRef) -> Result<&'j str, PlatformError> {
        job.jid.as_deref().ok_or_else(|| {
            PlatformError::permanent(api, None, format!("job {job} is not a Salt job (no jid)"))
        })
    }

    /// The probe state of `jid` (new at `now` if unknown), taken out while a poll works on it.
    fn take_watch(&self, jid: &str, now: Instant) -> Watch {
        let mut watches = self.watches.lock().expect("salt watches lock");
        match watches.remove(jid) {
            Some(w) => w,
            None => {
                watches.retain(|_, w| now.duration_since(w.touched) < FORGET_AFTER);
                Watch::new(now)
            }
        }
    }

    fn put_watch(&self, jid: &str, mut w: Watch, now: Instant) {
        w.touched = now;
        self.watches
            .lock()
            .expect("salt watches lock")
            .insert(jid.to_owned(), w);
    }

    /// Reads back the probe in flight, sends `kill_job` when due, and a new probe when due.
    /// Probe failures are logged and retried at a later poll: they never fail the poll.
    async fn probe(&self, jid: &str, w: &mut Watch, pending: &BTreeSet<String>, now: Instant) {
        if let Some(sent) = w.read_due(now).cloned() {
            match self.job_info(&sent.jid).await {
                Ok(info) => w.answered(&wire::probe_answers(&info, &sent.hosts), pending),
                Err(e) => {
                    tracing::debug!(platform = %self.settings.name, jid, error = %e, "Cannot read the probe back yet.");
                    w.give_up_stale_probe(now);
                }
            }
        }
        let kill = w.kill_due(now);
        if !kill.is_empty()
            && let Err(e) = self
                .local_async(
                    "saltutil.term_job",
                    "saltutil.kill_job",
                    &kill,
                    json!([jid]),
                )
                .await
        {
            tracing::warn!(platform = %self.settings.name, jid, error = %e, "saltutil.kill_job failed.");
        }
        if !pending.is_empty() && w.probe_due(now) {
            let hosts: Vec<String> = pending.iter().cloned().collect();
            match self
                .local_async(
                    "saltutil.find_job",
                    "saltutil.find_job",
                    &hosts,
                    json!([jid]),
                )
                .await
            {
                Ok(probe) => w.sent(probe, hosts, now),
                Err(e) => {
                    tracing::debug!(platform = %self.settings.name, jid, error = %e, "Cannot send the probe.")
                }
            }
        }
    }
}

/// Sends `request` (asking for JSON) and reads the whole answer: its HTTP status and body.
async fn send(
    api: &'static str,
    mutating: bool,
    request: reqwest::RequestBuilder,
) -> Result<(u16, Vec<u8>), PlatformError> {
    let response = request
        .header(ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| transport_error(api, mutating, e))?;
    let http_status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .map_err(|e| transport_error(api, mutating, e))?;
    Ok((http_status, Vec::from(body)))
}

/// `base` joined with `path` (the base may end in `/` or not).
fn join(base: &url::Url, path: &str) -> url::Url {
    let mut url = base.clone();
    let joined = format!("{}/{}", base.path().trim_end_matches('/'), path);
    url.set_path(&joined);
    url
}

/// The minion ids of `hosts` (hosts parsed for a Salt platform always have one).
fn minion_ids(hosts: &[Host]) -> Vec<String> {
    hosts
        .iter()
        .map(|h| h.minion_id.clone().unwrap_or_else(|| h.to_string()))
        .collect()
}

/// The hosts not yet returned: requested, targeted, not in `Result`.
fn not_returned(info: &wire::JobInfo) -> BTreeSet<String> {
    info.requested
        .iter()
        .filter(|h| info.minions.contains(h) && !info.result.contains_key(*h))
        .cloned()
        .collect()
}

#[async_trait]
impl Platform for Salt {
    fn kind(&self) -> &'static str {
        "salt"
    }

    /// salt-api's event stream, when `events = true` ([`events`]).
    async fn follow_hints(
        &self,
        on_hint: &(dyn Fn(crate::platform::Hint) + Send + Sync),
        stop: &tokio_util::sync::CancellationToken,
    ) {
        if self.settings.events {
            self.follow_events(on_hint, stop).await;
        }
    }

    async fn submit(
        &self,
        request: &SubmitRequest<'_>,
        gate: &dyn SubmitGate,
    ) -> Result<JobRef, PlatformError> {
        let api = "local_async";
        let check = request.check;
        let interpreter = check.language.interpreter().ok_or_else(|| {
            PlatformError::permanent(
                api,
                None,
                format!("{} scripts do not run through Salt", check.language.name()),
            )
        })?;
        let args = match &check.param {
            Some(p) => shell_words::split(p)
                .map_err(|e| PlatformError::permanent(api, None, format!("script_param: {e}")))?,
            None => Vec::new(),
        };
        let hosts = minion_ids(&check.hosts);
        let mut kwarg = json!({ "args": args, "timeout": check.timeout.as_secs() });
        if let Some(account) = check.account_alias.as_deref().filter(|a| !a.is_empty()) {
            kwarg["runas"] = json!(account);
        }
        let body = json!([{
            "client": "local_async",
            "tgt": hosts,
            "tgt_type": "list",
            "fun": "cmd.exec_code_all",
            "arg": [interpreter, check.script],
            "kwarg": kwarg,
            "metadata": { wire::TASK_KEY: request.task_name, wire::HOSTS_KEY: hosts },
        }]);
        let v = self.call(api, true, Call::Post(&body), Some(gate)).await?;
        match wire::submitted(api, &v)? {
            Some((jid, _minions)) => Ok(JobRef {
                name: Some(request.task_name.to_owned()),
                ..JobRef::salt(jid)
            }),
            None => Err(PlatformError::permanent(
                api,
                None,
                format!(
                    "no minion with an accepted key among {}: Salt started nothing",
                    hosts.join(", ")
                ),
            )),
        }
    }

    async fn snapshot(&self, job: &JobRef) -> Result<JobSnapshot, PlatformError> {
        let jid = self.jid("jobs", job)?;
        let info = self.job_info(jid).await?;
        let now = Instant::now();
        let mut w = self.take_watch(jid, now);
        let pending = not_returned(&info);
        self.probe(jid, &mut w, &pending, now).await;
        let mut hosts = Vec::new();
        let mut listed: Vec<&String> = info.requested.iter().collect();
        listed.extend(info.minions.iter().filter(|m| !info.requested.contains(m)));
        for host in listed {
            hosts.push(if let Some(entry) = info.result.get(host) {
                wire::returned(host, entry)
            } else if !info.minions.contains(host) {
                wire::status(host, codes::NO_KEY, None, None)
            } else {
                let (code, facts) = w.pending(host);
                wire::status(host, code, None, facts)
            });
        }
        let finished = hosts.iter().all(|h| h.outcome.is_final());
        let status = if !finished {
            codes::JOB_RUNNING
        } else if hosts.iter().any(|h| h.status == codes::TERMINATED) {
            codes::JOB_TERMINATED
        } else if hosts.iter().all(|h| h.status == codes::SUCCEEDED) {
            codes::JOB_SUCCEEDED
        } else {
            codes::JOB_FAILED
        };
        if finished {
            self.watches.lock().expect("salt watches lock").remove(jid);
        } else {
            self.put_watch(jid, w, now);
        }
        Ok(JobSnapshot {
            status,
            label: codes::job_label(status),
            finished,
            step_instance_id: None,
            hosts,
        })
    }

    async fn host_logs(&self, job: &JobRef, hosts: &[Host]) -> Result<Vec<HostLog>, PlatformError> {
        let jid = self.jid("jobs", job)?;
        let info = self.job_info(jid).await?;
        Ok(minion_ids(hosts)
            .into_iter()
            .filter_map(|h| {
                let entry = info.result.get(&h)?;
                Some(HostLog {
                    content: wire::log_of(entry),
                    host: Host::minion(h),
                })
            })
            .collect())
    }

    async fn terminate(&self, job: &JobRef) -> Result<(), PlatformError> {
        let jid = self.jid("saltutil.term_job", job)?;
        let info = self.job_info(jid).await?;
        let pending = not_returned(&info);
        if pending.is_empty() {
            return Ok(());
        }
        let hosts: Vec<String> = pending.iter().cloned().collect();
        self.local_async(
            "saltutil.term_job",
            "saltutil.term_job",
            &hosts,
            json!([jid]),
        )
        .await?;
        let now = Instant::now();
        let mut w = self.take_watch(jid, now);
        w.terminating(pending, now);
        self.put_watch(jid, w, now);
        Ok(())
    }

    async fn find_job(
        &self,
        task_name: &str,
        _since_ms: i64,
    ) -> Result<Option<JobRef>, PlatformError> {
        // The task name carries the execution id: any job with it is this execution's.
        let body = json!([{
            "client": "runner",
            "fun": "jobs.list_jobs",
            "search_metadata": { wire::TASK_KEY: task_name },
        }]);
        let v = self
            .call("jobs.list_jobs", false, Call::Post(&body), None)
            .await?;
        Ok(wire::listed_jids(&v)?.into_iter().next().map(|jid| JobRef {
            name: Some(task_name.to_owned()),
            ..JobRef::salt(jid)
        }))
    }
}

#[cfg(test)]
mod tests;
