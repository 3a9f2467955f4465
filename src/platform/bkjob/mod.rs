//! The bk-job (BlueKing JOB v3) adapter: both front doors (API gateway and ESB), the code
//! tables, and endpoint failover. Facts from `reference/bkjob/API.md`.
//!
//! * APIGW (API.md §1.1–1.2): `{endpoint}/api/v3/<api>`, no trailing slash; credentials only
//!   in the `X-Bkapi-Authorization` header; query APIs are `GET` with a query string.
//! * ESB: `{endpoint}/api/c/compapi/v2/jobv3/<api>/`, trailing slash; credentials in the JSON
//!   body; every API is `POST` (the ESB's current `suggest_method`, API.md §11.8).

pub mod codes;
pub mod wire;

pub use crate::config::bkjob::{APIS, BkJobSettings, Door};

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use url::Url;

use reqwest::header::{ACCEPT, CONTENT_TYPE};

use self::wire::{Answer, BatchLogData, ListData, OperateData, StatusData, SubmitData};
use crate::model::{Host, JobSnapshot};
use crate::platform::{
    HostLog, JobRef, Platform, PlatformError, SubmitGate, SubmitRequest, endpoints, transport_error,
};

/// bk-job allows at most 500 hosts per batch_get_job_instance_ip_log call (API.md §5).
pub const LOG_BATCH_MAX_HOSTS: usize = 500;

/// The query APIs: through APIGW a `GET` with the parameters (and the scope) in the query
/// string (API.md §1.2); every other API is a `POST` with a JSON body.
const QUERY_APIS: [&str; 2] = ["get_job_instance_status", "get_job_instance_list"];

/// get_job_instance_list `length` maximum (API.md §7).
const LIST_PAGE_MAX: usize = 1000;

/// The bk-job client. Cheap to share; one per configured platform.
#[derive(Debug)]
pub struct BkJob {
    settings: BkJobSettings,
    http: reqwest::Client,
    endpoints: endpoints::Endpoints,
    prepared: Prepared,
}

/// What every request through the configured door carries, built once rather than per call:
/// each endpoint's URL of each API (for APIGW query APIs with the scope already in the query
/// string), and the APIGW credentials header (marked sensitive: never printed).
struct Prepared {
    /// `urls[endpoint][i]` is the URL of `APIS[i]` on that endpoint.
    urls: Vec<Vec<Url>>,
    /// `X-Bkapi-Authorization` (APIGW only).
    auth: Option<reqwest::header::HeaderValue>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("urls", &self.urls)
            .field("auth", &self.auth.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl Prepared {
    fn new(s: &BkJobSettings) -> Result<Self, PlatformError> {
        let urls = s
            .endpoints
            .iter()
            .map(|base| {
                APIS.iter()
                    .map(|api| {
                        let base = base.as_str().trim_end_matches('/');
                        let text = match s.door {
                            Door::Apigw => format!("{base}/api/v3/{api}"),
                            Door::Esb => format!("{base}/api/c/compapi/v2/jobv3/{api}/"),
                        };
                        let mut url = Url::parse(&text).map_err(|e| {
                            PlatformError::permanent(
                                "client",
                                None,
                                format!("bad endpoint URL: {e}"),
                            )
                        })?;
                        if s.door == Door::Apigw && QUERY_APIS.contains(api) {
                            url.query_pairs_mut()
                                .append_pair("bk_scope_type", &s.scope_type)
                                .append_pair("bk_scope_id", &s.scope_id);
                        }
                        Ok(url)
                    })
                    .collect::<Result<Vec<Url>, PlatformError>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let auth = match s.door {
            Door::Apigw => {
                let text = json!({
                    "bk_app_code": s.app_code,
                    "bk_app_secret": s.app_secret.expose_secret(),
                    "bk_username": s.username,
                })
                .to_string();
                let mut value = reqwest::header::HeaderValue::from_str(&text).map_err(|_| {
                    PlatformError::permanent(
                        "client",
                        None,
                        "the app code, secret or username cannot be sent in a header",
                    )
                })?;
                value.set_sensitive(true);
                Some(value)
            }
            Door::Esb => None,
        };
        Ok(Prepared { urls, auth })
    }

    /// The URL of `api` on endpoint `i` (for APIGW query APIs with the scope in its query).
    fn url(&self, i: usize, api: &str) -> Url {
        let at = APIS.iter().position(|a| *a == api).unwrap_or(0);
        self.urls[i][at].clone()
    }
}

/// How an API is called through the configured door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    /// A query API: APIGW `GET` with a query string.
    Query,
    /// `POST` with a JSON body on both doors.
    Post,
}

impl BkJob {
    /// Builds the client. Errors only if the TLS stack cannot start.
    pub fn new(settings: BkJobSettings) -> Result<Self, PlatformError> {
        let http = crate::platform::http_client(settings.request_timeout)?;
        let endpoints = endpoints::Endpoints::new(&settings.endpoints, settings.flow.clone());
        let prepared = Prepared::new(&settings)?;
        Ok(BkJob {
            settings,
            http,
            endpoints,
            prepared,
        })
    }

    /// The request of `api` with `params` (without the scope) to endpoint `i`, from the
    /// prepared parts: APIGW queries append their parameters to the prepared URL (which has
    /// the scope); bodies get the scope (and, through ESB, the credentials).
    fn request(
        &self,
        i: usize,
        api: &'static str,
        verb: Verb,
        params: &Map<String, Value>,
    ) -> reqwest::RequestBuilder {
        let mut url = self.prepared.url(i, api);
        let s = &self.settings;
        let scoped = |extra: &[(&str, &str)]| {
            let mut body = params.clone();
            body.insert("bk_scope_type".into(), json!(s.scope_type));
            body.insert("bk_scope_id".into(), json!(s.scope_id));
            for (k, v) in extra {
                body.insert((*k).into(), json!(v));
            }
            body
        };
        match (self.settings.door, &self.prepared.auth) {
            (Door::Apigw, Some(auth)) => {
                let builder = match verb {
                    Verb::Query => {
                        {
                            let mut query = url.query_pairs_mut();
                            for (k, v) in params {
                                match v {
                                    Value::String(text) => query.append_pair(k, text),
                                    other => query.append_pair(k, &other.to_string()),
                                };
                            }
                        }
                        // GW-DOC lists Content-Type as required even without a body.
                        self.http.get(url).header(CONTENT_TYPE, "application/json")
                    }
                    // `.json()` sets Content-Type itself; setting it again would send it twice.
                    Verb::Post => self.http.post(url).json(&scoped(&[])),
                };
                builder
                    .header("X-Bkapi-Authorization", auth.clone())
                    .header(ACCEPT, "application/json")
            }
            _ => {
                let body = scoped(&[
                    ("bk_app_code", &s.app_code),
                    ("bk_app_secret", s.app_secret.expose_secret()),
                    ("bk_username", &s.username),
                ]);
                self.http
                    .post(url)
                    .header(ACCEPT, "application/json")
                    .json(&body)
            }
        }
    }

    /// Calls `api` with the endpoints' failover and flow control ([`endpoints::Endpoints::call`]).
    async fn call<T: DeserializeOwned>(
        &self,
        api: &'static str,
        verb: Verb,
        mutating: bool,
        params: Map<String, Value>,
        gate: Option<&dyn SubmitGate>,
    ) -> Result<T, PlatformError> {
        self.endpoints
            .call(&self.settings.name, api, gate, |i| {
                self.call_once(i, api, verb, mutating, &params)
            })
            .await
    }

    async fn call_once<T: DeserializeOwned>(
        &self,
        i: usize,
        api: &'static str,
        verb: Verb,
        mutating: bool,
        params: &Map<String, Value>,
    ) -> Result<T, PlatformError> {
        let response = self
            .request(i, api, verb, params)
            .send()
            .await
            .map_err(|e| transport_error(api, mutating, e))?;
        let http_status = response.status().as_u16();
        let rate_limit_reset = response
            .headers()
            .get("X-Bkapi-RateLimit-Reset")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let body = response
            .bytes()
            .await
            .map_err(|e| transport_error(api, mutating, e))?;
        wire::decode(Answer {
            api,
            mutating,
            http_status,
            rate_limit_reset,
            body: &body,
        })
    }
}

fn host_list(hosts: &[Host]) -> (&'static str, Value) {
    if hosts.iter().all(|h| h.bk_host_id.is_some()) {
        (
            "host_id_list",
            json!(
                hosts
                    .iter()
                    .filter_map(|h| h.bk_host_id)
                    .collect::<Vec<_>>()
            ),
        )
    } else {
        let list: Vec<Value> = hosts
            .iter()
            .map(|h| json!({"bk_cloud_id": h.bk_cloud_id.unwrap_or(0), "ip": h.ip}))
            .collect();
        ("ip_list", Value::Array(list))
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[async_trait]
impl Platform for BkJob {
    fn kind(&self) -> &'static str {
        "bkjob"
    }

    async fn submit(
        &self,
        r: &SubmitRequest<'_>,
        gate: &dyn SubmitGate,
    ) -> Result<JobRef, PlatformError> {
        // Hosts go by id (host_id_list) when every host has one, else by control area + IP
        // (ip_list); config refuses a mix, since bk-job ignores ip_list next to host_id_list.
        let (key, list) = host_list(&r.check.hosts);
        let mut target_server = Map::new();
        target_server.insert(key.into(), list);
        let mut body = object(json!({
            "task_name": r.task_name,
            "script_content": BASE64.encode(r.check.script.as_bytes()),
            "script_language": r.check.language.code(),
            "timeout": r.check.timeout.as_secs().max(1),
            "target_server": target_server,
            "is_param_sensitive": i32::from(r.check.param_sensitive),
        }));
        if let Some(param) = &r.check.param {
            body.insert(
                "script_param".into(),
                json!(BASE64.encode(param.as_bytes())),
            );
        }
        if let Some(account) = &r.check.account_alias {
            body.insert("account_alias".into(), json!(account));
        }
        // bk-job POSTs the job's end there (a hint: the end is still read from the status API).
        if let Some(url) = &r.callback_url {
            body.insert("callback_url".into(), json!(url));
        }
        let data: SubmitData = self
            .call("fast_execute_script", Verb::Post, true, body, Some(gate))
            .await?;
        Ok(data.into())
    }

    async fn snapshot(&self, job: &JobRef) -> Result<JobSnapshot, PlatformError> {
        let params = object(
            json!({ "job_instance_id": job.instance_id("get_job_instance_status")?, "return_ip_result": true }),
        );
        let data: StatusData = self
            .call("get_job_instance_status", Verb::Query, false, params, None)
            .await?;
        Ok(data.into_snapshot(job.step_instance_id))
    }

    async fn host_logs(&self, job: &JobRef, hosts: &[Host]) -> Result<Vec<HostLog>, PlatformError> {
        let Some(step) = job.step_instance_id else {
            return Err(PlatformError::permanent(
                "batch_get_job_instance_ip_log",
                None,
                "step instance id unknown: no status answer named the job's step",
            ));
        };
        let mut logs = Vec::with_capacity(hosts.len());
        for batch in hosts.chunks(LOG_BATCH_MAX_HOSTS) {
            let (key, list) = host_list(batch);
            let mut params = object(
                json!({ "job_instance_id": job.instance_id("batch_get_job_instance_ip_log")?, "step_instance_id": step }),
            );
            params.insert(key.into(), list);
            let data: BatchLogData = self
                .call(
                    "batch_get_job_instance_ip_log",
                    Verb::Post,
                    false,
                    params,
                    None,
                )
                .await?;
            logs.extend(data.into_logs());
        }
        Ok(logs)
    }

    async fn terminate(&self, job: &JobRef) -> Result<(), PlatformError> {
        let params = object(
            json!({ "job_instance_id": job.instance_id("operate_job_instance")?, "operation_code": 1 }),
        );
        let _: OperateData = self
            .call("operate_job_instance", Verb::Post, true, params, None)
            .await?;
        Ok(())
    }

    /// The request time limit and 30 s more (the gateway may still be forwarding a request
    /// this side gave up on).
    fn submit_settle(&self) -> Duration {
        self.settings.request_timeout + Duration::from_secs(30)
    }

    async fn find_job(
        &self,
        task_name: &str,
        since_ms: i64,
    ) -> Result<Option<JobRef>, PlatformError> {
        // The list API wants a window of at most 30 days (API.md §7); a minute of clock skew
        // on either side is allowed for.
        let start = since_ms - 60_000;
        let end = crate::time::now_ms() + 60_000;
        let mut offset = 0usize;
        loop {
            let params = object(json!({
                "create_time_start": start,
                "create_time_end": end,
                "name": task_name,
                "start": offset,
                "length": LIST_PAGE_MAX,
            }));
            let page: ListData = self
                .call("get_job_instance_list", Verb::Query, false, params, None)
                .await?;
            let items = page.data.unwrap_or_default();
            if let Some(found) = items.iter().find(|i| i.name.as_deref() == Some(task_name)) {
                return Ok(found.job_instance_id().map(|id| JobRef {
                    job_instance_id: Some(id),
                    jid: None,
                    step_instance_id: None,
                    name: found.name.clone(),
                }));
            }
            offset += items.len();
            let total = page.total.unwrap_or(0).max(0) as usize;
            if items.is_empty() || offset >= total {
                return Ok(None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(door: Door) -> BkJob {
        BkJob::new(BkJobSettings {
            name: "bk".into(),
            endpoints: vec![Url::parse("https://bkapi.example.com/api/bk-job/prod/").unwrap()],
            door,
            app_code: "jobwatch".into(),
            app_secret: secrecy::SecretString::from("top-secret-value"),
            username: "admin".into(),
            scope_type: "biz".into(),
            scope_id: "2".into(),
            request_timeout: Duration::from_secs(5),
            flow: endpoints::FlowSettings::default(),
            callbacks: false,
        })
        .unwrap()
    }

    fn build(door: Door, api: &'static str, verb: Verb, params: Value) -> reqwest::Request {
        let c = client(door);
        c.request(0, api, verb, &object(params)).build().unwrap()
    }

    fn body(req: &reqwest::Request) -> Map<String, Value> {
        let bytes = req
            .body()
            .and_then(reqwest::Body::as_bytes)
            .expect("a JSON body");
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn apigw_query_apis_are_get_with_a_query_string_and_the_auth_header() {
        let req = build(
            Door::Apigw,
            "get_job_instance_status",
            Verb::Query,
            json!({"job_instance_id": 100, "return_ip_result": true}),
        );
        assert_eq!(req.method(), reqwest::Method::GET);
        assert_eq!(
            req.url().path(),
            "/api/bk-job/prod/api/v3/get_job_instance_status"
        );
        let query: std::collections::HashMap<String, String> =
            req.url().query_pairs().into_owned().collect();
        assert_eq!(query["bk_scope_type"], "biz");
        assert_eq!(query["bk_scope_id"], "2");
        assert_eq!(query["job_instance_id"], "100");
        assert_eq!(query["return_ip_result"], "true");
        assert!(
            !req.url().as_str().contains("secret"),
            "credentials only in the header"
        );
        let auth: Value =
            serde_json::from_str(req.headers()["X-Bkapi-Authorization"].to_str().unwrap()).unwrap();
        assert_eq!(auth["bk_app_code"], "jobwatch");
        assert_eq!(auth["bk_app_secret"], "top-secret-value");
        assert_eq!(auth["bk_username"], "admin");
        assert_eq!(req.headers().get_all(CONTENT_TYPE).iter().count(), 1);
        assert_eq!(req.headers()[ACCEPT], "application/json");
    }

    #[test]
    fn apigw_post_apis_carry_one_content_type_and_no_credentials_in_the_body() {
        let req = build(
            Door::Apigw,
            "operate_job_instance",
            Verb::Post,
            json!({"job_instance_id": 100, "operation_code": 1}),
        );
        assert_eq!(req.method(), reqwest::Method::POST);
        assert_eq!(
            req.url().as_str(),
            "https://bkapi.example.com/api/bk-job/prod/api/v3/operate_job_instance"
        );
        assert_eq!(
            req.headers().get_all(CONTENT_TYPE).iter().count(),
            1,
            "Content-Type must not be sent twice"
        );
        let b = body(&req);
        assert_eq!(b["operation_code"], 1);
        assert_eq!(b["bk_scope_id"], "2");
        assert!(!b.contains_key("bk_app_secret"));
    }

    #[test]
    fn esb_posts_to_the_trailing_slash_path_with_credentials_in_the_body() {
        let req = build(
            Door::Esb,
            "get_job_instance_status",
            Verb::Query,
            json!({"job_instance_id": 100}),
        );
        assert_eq!(req.method(), reqwest::Method::POST);
        assert_eq!(
            req.url().as_str(),
            "https://bkapi.example.com/api/bk-job/prod/api/c/compapi/v2/jobv3/get_job_instance_status/"
        );
        assert!(req.headers().get("X-Bkapi-Authorization").is_none());
        assert_eq!(req.headers().get_all(CONTENT_TYPE).iter().count(), 1);
        let b = body(&req);
        assert_eq!(b["bk_app_code"], "jobwatch");
        assert_eq!(b["bk_app_secret"], "top-secret-value");
        assert_eq!(b["bk_username"], "admin");
        assert_eq!(b["job_instance_id"], 100);
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        let c = client(Door::Apigw);
        assert!(!format!("{c:?}").contains("top-secret-value"));
    }

    #[test]
    fn hosts_go_by_id_when_all_have_one_else_by_cloud_and_ip() {
        let (key, list) = host_list(&[Host::by_id(1), Host::by_id(2)]);
        assert_eq!((key, list), ("host_id_list", json!([1, 2])));
        let (key, list) = host_list(&[Host::by_ip(0, "10.0.0.1")]);
        assert_eq!(
            (key, list),
            ("ip_list", json!([{"bk_cloud_id": 0, "ip": "10.0.0.1"}]))
        );
    }
}
