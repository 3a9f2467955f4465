//! The HTTP side: both front doors (API.md §1), credential checks, the v3 envelope and the
//! gateway error shapes (API.md §2), the APIs jobwatch uses, and fault injection.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Map, Value, json};

use crate::jobs::Job;
use crate::scenario::{FaultKind, FaultRule, HostSpec, Scenario};

/// APIGW request body limit (API.md §10: 40 MB).
const MAX_BODY: usize = 40 * 1024 * 1024;

/// The v3 APIs served, with whether they change state and the APIGW method.
const APIS: &[(&str, bool, Method)] = &[
    ("fast_execute_script", true, Method::POST),
    ("get_job_instance_status", false, Method::GET),
    ("batch_get_job_instance_ip_log", false, Method::POST),
    ("get_job_instance_ip_log", false, Method::GET),
    ("get_job_instance_list", false, Method::GET),
    ("operate_job_instance", true, Method::POST),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Door {
    Apigw,
    Esb,
}

/// What to answer.
#[derive(Debug)]
enum Reply {
    /// `result:true` with `data`.
    Ok(Value),
    /// `result:false`, HTTP 200, with a Job error code (API.md §2.4) or an ESB 1306xxx code.
    JobError(i64, String),
    /// A gateway-layer error (API.md §2.2).
    Gateway {
        http: u16,
        code: i64,
        code_name: &'static str,
        message: String,
        reset_seconds: Option<u64>,
    },
    /// A body cut in the middle.
    Malformed,
    /// No answer: the connection is reset.
    Reset,
    /// A plain 404 (no such ESB component).
    NotFound,
}

/// Marks a response whose connection must be reset instead of answered.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ResetConnection;

/// Counters a test can read.
#[derive(Debug, Default)]
pub struct Stats {
    requests: Mutex<HashMap<String, u64>>,
    callbacks: Mutex<Vec<crate::callbacks::Sent>>,
}

impl Stats {
    /// The callbacks sent so far, in order.
    pub fn callbacks(&self) -> Vec<crate::callbacks::Sent> {
        self.callbacks.lock().expect("stats lock").clone()
    }

    pub(crate) fn callback_sent(&self, sent: crate::callbacks::Sent) {
        self.callbacks.lock().expect("stats lock").push(sent);
    }

    /// Requests seen for `api` (every door, faults included).
    pub fn requests(&self, api: &str) -> u64 {
        self.requests
            .lock()
            .expect("stats lock")
            .get(api)
            .copied()
            .unwrap_or(0)
    }
}

/// The emulator's state, shared by every connection.
#[derive(Debug)]
pub struct State {
    scenario: Scenario,
    jobs: Mutex<HashMap<u64, Job>>,
    next_id: AtomicU64,
    rule_hits: Mutex<Vec<u64>>,
    rng: Mutex<StdRng>,
    request_seq: AtomicU64,
    /// Request counters.
    pub stats: Stats,
}

impl State {
    /// State for `scenario`, with no jobs.
    pub fn new(scenario: Scenario) -> Self {
        let rules = scenario.faults.rules.len();
        State {
            next_id: AtomicU64::new(scenario.job.first_job_instance_id),
            rng: Mutex::new(StdRng::seed_from_u64(scenario.faults.seed)),
            rule_hits: Mutex::new(vec![0; rules]),
            jobs: Mutex::default(),
            request_seq: AtomicU64::new(0),
            stats: Stats::default(),
            scenario,
        }
    }

    /// The scenario served.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// Job `id`, as it is now (a copy).
    pub(crate) fn job(&self, id: u64) -> Option<Job> {
        self.jobs.lock().expect("jobs lock").get(&id).cloned()
    }

    /// Jobs created so far.
    pub fn jobs_created(&self) -> usize {
        self.jobs.lock().expect("jobs lock").len()
    }

    /// Creates a job instance (what `fast_execute_script` does; load harnesses call it
    /// directly to seed many at once): its hosts follow `hosts` from now. Returns its
    /// `job_instance_id` (its step instance is the id + 1).
    pub fn seed_job(
        &self,
        name: &str,
        timeout: Duration,
        hosts: Vec<crate::scenario::HostSpec>,
    ) -> u64 {
        let id = self.next_id.fetch_add(2, Ordering::SeqCst);
        let created_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let job = Job {
            id,
            step_id: id + 1,
            name: name.to_owned(),
            created: Instant::now(),
            created_ms,
            timeout,
            hosts,
            terminated: None,
            spec: self.scenario.job.clone(),
        };
        self.jobs.lock().expect("jobs lock").insert(id, job);
        id
    }

    /// When job `id` ends (epoch ms) by its hosts' timelines; `None` if unknown or hanging.
    pub fn job_end_ms(&self, id: u64) -> Option<i64> {
        self.jobs
            .lock()
            .expect("jobs lock")
            .get(&id)?
            .natural_end_ms()
    }

    /// Names of the jobs created so far, in id order.
    pub fn job_names(&self) -> Vec<String> {
        let jobs = self.jobs.lock().expect("jobs lock");
        let mut list: Vec<(&u64, &Job)> = jobs.iter().collect();
        list.sort_by_key(|(id, _)| **id);
        list.into_iter().map(|(_, j)| j.name.clone()).collect()
    }
}

fn route(method: &Method, path: &str) -> Result<(Door, &'static str, bool), Reply> {
    if let Some(rest) = path.strip_prefix("/api/c/compapi/v2/jobv3/") {
        let Some(name) = rest.strip_suffix('/') else {
            return Err(Reply::NotFound);
        };
        let Some((api, mutating, _)) = APIS.iter().find(|(a, ..)| *a == name) else {
            return Err(Reply::NotFound);
        };
        // The ESB takes POST for every API and GET for the query APIs (API.md §1.1).
        if *method != Method::POST
            && !(*method == Method::GET && !*mutating && *api != "batch_get_job_instance_ip_log")
        {
            return Err(Reply::JobError(1241017, "不支持的Http方法".into()));
        }
        return Ok((Door::Esb, api, *mutating));
    }
    // APIGW: `{prefix}/api/v3/<api>`, the prefix being e.g. `/api/bk-job/prod`.
    let not_found = || Reply::Gateway {
        http: 404,
        code: 1640401,
        code_name: "API_NOT_FOUND",
        message: format!("API not found [method=\"{method}\" path=\"{path}\"]"),
        reset_seconds: None,
    };
    let Some(index) = path.find("/api/v3/") else {
        return Err(not_found());
    };
    let name = &path[index + "/api/v3/".len()..];
    match APIS.iter().find(|(a, ..)| *a == name) {
        Some((api, mutating, m)) if m == method => Ok((Door::Apigw, api, *mutating)),
        _ => Err(not_found()),
    }
}

fn gateway_auth_error(reason: &str) -> Reply {
    Reply::Gateway {
        http: 400,
        code: 1640001,
        code_name: "INVALID_ARGS",
        message: format!("Parameters error [reason=\"{reason}\"]"),
        reset_seconds: None,
    }
}

fn check_credentials(state: &State, door: Door, creds: &Map<String, Value>) -> Result<(), Reply> {
    let auth = &state.scenario.auth;
    let get = |k: &str| creds.get(k).and_then(Value::as_str).unwrap_or("");
    let (app_code, secret, user) = (get("bk_app_code"), get("bk_app_secret"), get("bk_username"));
    let user_ok =
        !user.is_empty() && (auth.usernames.is_empty() || auth.usernames.iter().any(|u| u == user));
    match door {
        Door::Apigw => {
            if app_code.is_empty() {
                return Err(gateway_auth_error("app code cannot be empty"));
            }
            if app_code != auth.app_code || secret != auth.app_secret {
                return Err(gateway_auth_error("app code or app secret is incorrect"));
            }
            if !user_ok {
                return Err(gateway_auth_error(
                    "the user indicated by bk_username is not verified",
                ));
            }
        }
        Door::Esb => {
            if app_code != auth.app_code || secret != auth.app_secret {
                return Err(Reply::JobError(
                    1306000,
                    format!("Invalid APP Code [{app_code}] or APP Secret"),
                ));
            }
            if !user_ok {
                return Err(Reply::JobError(
                    1306000,
                    "User authentication failed: bk_username is not valid".into(),
                ));
            }
        }
    }
    Ok(())
}

/// A parameter as an integer: a JSON number or a numeric string (query strings carry text).
fn int(params: &Map<String, Value>, key: &str) -> Result<Option<i64>, Reply> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| illegal(key)),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| illegal(key)),
        Some(_) => Err(illegal(key)),
    }
}

fn text<'a>(params: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    params
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn illegal(key: &str) -> Reply {
    Reply::JobError(1241005, format!("请求参数[{key}]不合法"))
}

fn missing(key: &str) -> Reply {
    Reply::JobError(1241004, format!("请求参数[{key}]缺失"))
}

fn check_scope(state: &State, params: &Map<String, Value>) -> Result<(), Reply> {
    let scope = &state.scenario.scope;
    let (scope_type, scope_id) = match (text(params, "bk_scope_type"), params.get("bk_scope_id")) {
        (Some(t), Some(id)) => (
            t.to_owned(),
            id.as_str().map_or_else(|| id.to_string(), str::to_owned),
        ),
        _ => match int(params, "bk_biz_id")? {
            Some(biz) => ("biz".to_owned(), biz.to_string()),
            None => return Err(missing("bk_scope_type")),
        },
    };
    if scope_type != scope.scope_type || scope_id != scope.id {
        return Err(Reply::JobError(
            1243051,
            format!("资源范围不存在：{scope_type}:{scope_id}"),
        ));
    }
    Ok(())
}

fn job_id(params: &Map<String, Value>) -> Result<u64, Reply> {
    match int(params, "job_instance_id")? {
        Some(id) if id >= 1 => Ok(id as u64),
        _ => Err(Reply::JobError(
            1241007,
            "请求参数[job_instance_id]缺失或不合法".into(),
        )),
    }
}

fn with_job<T>(
    state: &State,
    params: &Map<String, Value>,
    f: impl FnOnce(&mut Job) -> Result<T, Reply>,
) -> Result<T, Reply> {
    let id = job_id(params)?;
    let mut jobs = state.jobs.lock().expect("jobs lock");
    match jobs.get_mut(&id) {
        Some(job) => f(job),
        None => Err(Reply::JobError(1244006, "作业实例不存在".into())),
    }
}

/// Resolves `target_server` (or a log request's host lists) against the scenario's CMDB.
fn resolve_hosts(state: &State, server: &Map<String, Value>) -> Result<Vec<HostSpec>, Reply> {
    let known = &state.scenario.hosts;
    let mut out = Vec::new();
    if let Some(ids) = server
        .get("host_id_list")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
    {
        for id in ids {
            let id = id.as_u64().ok_or_else(|| illegal("host_id_list"))?;
            match known.iter().find(|h| h.bk_host_id == id) {
                Some(h) => out.push(h.clone()),
                None => {
                    return Err(Reply::JobError(
                        1243053,
                        format!("主机ID在 CMDB 中不存在: {id}"),
                    ));
                }
            }
        }
    } else if let Some(ips) = server.get("ip_list").and_then(Value::as_array) {
        for ip in ips {
            let cloud = ip
                .get("bk_cloud_id")
                .and_then(Value::as_u64)
                .ok_or_else(|| missing("ip_list.bk_cloud_id"))?;
            let addr = ip
                .get("ip")
                .and_then(Value::as_str)
                .ok_or_else(|| missing("ip_list.ip"))?
                .trim();
            match known
                .iter()
                .find(|h| h.bk_cloud_id == cloud && h.ip == addr)
            {
                Some(h) => out.push(h.clone()),
                None => {
                    return Err(Reply::JobError(
                        1243052,
                        format!("IP（含管控区域ID）在 CMDB 中不存在: {cloud}:{addr}"),
                    ));
                }
            }
        }
    }
    Ok(out)
}

fn fast_execute_script(state: &Arc<State>, p: &Map<String, Value>) -> Result<Value, Reply> {
    check_scope(state, p)?;
    let content = text(p, "script_content");
    if content.is_none() && int(p, "script_version_id")?.is_none() && text(p, "script_id").is_none()
    {
        return Err(missing("script_version_id|script_id|script_content"));
    }
    if let Some(c) = content {
        let decoded = BASE64.decode(c).map_err(|_| illegal("script_content"))?;
        String::from_utf8(decoded).map_err(|_| illegal("script_content"))?;
        if !matches!(int(p, "script_language")?, Some(1..=5)) {
            return Err(illegal("script_language"));
        }
    }
    if let Some(param) = text(p, "script_param") {
        BASE64.decode(param).map_err(|_| illegal("script_param"))?;
    }
    let timeout = int(p, "timeout")?.unwrap_or(7200);
    if !(1..=259_200).contains(&timeout) {
        return Err(illegal("timeout"));
    }
    let name = text(p, "task_name")
        .unwrap_or("API Quick execution script")
        .to_owned();
    if name.chars().count() > 512 {
        return Err(illegal("task_name"));
    }
    match (text(p, "account_alias"), int(p, "account_id")?) {
        (None, None) => return Err(missing("account_id|account_alias")),
        (Some(alias), None) if !state.scenario.scope.accounts.iter().any(|a| a == alias) => {
            return Err(Reply::JobError(1244003, format!("账号[{alias}]不存在")));
        }
        _ => {}
    }
    let Some(server) = p.get("target_server").and_then(Value::as_object) else {
        return Err(missing("target_server"));
    };
    let hosts = resolve_hosts(state, server)?;
    if hosts.is_empty() {
        return Err(Reply::JobError(1244001, "主机为空".into()));
    }
    let id = state.seed_job(&name, Duration::from_secs(timeout as u64), hosts);
    if let Some(url) = text(p, "callback_url") {
        crate::callbacks::send_at_end(state.clone(), id, url.to_owned());
    }
    Ok(json!({ "job_instance_name": name, "job_instance_id": id, "step_instance_id": id + 1 }))
}

fn bool_param(p: &Map<String, Value>, key: &str) -> bool {
    match p.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

fn get_job_instance_status(state: &State, p: &Map<String, Value>) -> Result<Value, Reply> {
    check_scope(state, p)?;
    let scope = &state.scenario.scope;
    let ip_result = bool_param(p, "return_ip_result");
    with_job(state, p, |job| {
        Ok(job.status_data(Instant::now(), &scope.scope_type, &scope.id, ip_result))
    })
}

fn step_matches(job: &Job, p: &Map<String, Value>) -> Result<(), Reply> {
    match int(p, "step_instance_id")? {
        Some(s) if s as u64 == job.step_id => Ok(()),
        Some(_) => Err(Reply::JobError(1244007, "作业步骤实例不存在".into())),
        None => Err(Reply::JobError(
            1241007,
            "请求参数[step_instance_id]缺失或不合法".into(),
        )),
    }
}

fn batch_get_job_instance_ip_log(state: &State, p: &Map<String, Value>) -> Result<Value, Reply> {
    check_scope(state, p)?;
    let ids = p
        .get("host_id_list")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty());
    let ips = p
        .get("ip_list")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty());
    let count = ids.or(ips).map_or(0, Vec::len);
    if count == 0 || count > 500 {
        return Err(Reply::JobError(
            1241007,
            "请求参数[host_id_list/ip_list]缺失或不合法".into(),
        ));
    }
    with_job(state, p, |job| {
        step_matches(job, p)?;
        let now = Instant::now();
        let wanted = |h: &HostSpec| match (ids, ips) {
            (Some(ids), _) => ids.iter().any(|v| v.as_u64() == Some(h.bk_host_id)),
            (None, Some(ips)) => ips.iter().any(|v| {
                v.get("bk_cloud_id").and_then(Value::as_u64) == Some(h.bk_cloud_id)
                    && v.get("ip").and_then(Value::as_str).map(str::trim) == Some(h.ip.as_str())
            }),
            _ => false,
        };
        let logs: Vec<Value> = job
            .hosts
            .iter()
            .filter(|h| wanted(h))
            .map(|h| {
                json!({
                    "bk_host_id": h.bk_host_id,
                    "host_id": h.bk_host_id,
                    "bk_cloud_id": h.bk_cloud_id,
                    "ip": h.ip,
                    "ipv6": Value::Null,
                    "log_content": job.log_of(h, now),
                })
            })
            .collect();
        let mut data =
            json!({ "job_instance_id": job.id, "step_instance_id": job.step_id, "log_type": 1 });
        // Nothing found: the key is left unset (API.md §5).
        if !logs.is_empty() {
            data["script_task_logs"] = Value::Array(logs);
        }
        Ok(data)
    })
}

fn get_job_instance_ip_log(state: &State, p: &Map<String, Value>) -> Result<Value, Reply> {
    check_scope(state, p)?;
    let host_id = int(p, "bk_host_id")?;
    let cloud = int(p, "bk_cloud_id")?;
    let ip = text(p, "ip").map(str::trim);
    with_job(state, p, |job| {
        step_matches(job, p)?;
        let host = job.hosts.iter().find(|h| match (host_id, cloud, ip) {
            (Some(id), ..) => h.bk_host_id as i64 == id,
            (None, Some(c), Some(ip)) => h.bk_cloud_id as i64 == c && h.ip == ip,
            _ => false,
        });
        let Some(h) = host else {
            return Err(Reply::JobError(
                1241007,
                "请求参数[bk_host_id]缺失或不合法".into(),
            ));
        };
        Ok(json!({
            "log_type": 1,
            "bk_host_id": h.bk_host_id,
            "bk_cloud_id": h.bk_cloud_id,
            "ip": h.ip,
            "log_content": job.log_of(h, Instant::now()),
        }))
    })
}

fn get_job_instance_list(state: &State, p: &Map<String, Value>) -> Result<Value, Reply> {
    check_scope(state, p)?;
    let start = int(p, "create_time_start")?.ok_or_else(|| missing("create_time_start"))?;
    let end = int(p, "create_time_end")?.ok_or_else(|| missing("create_time_end"))?;
    if end <= start {
        return Err(Reply::JobError(
            1241007,
            "请求参数[create_time_end]缺失或不合法".into(),
        ));
    }
    if end - start > 30 * 24 * 3600 * 1000 {
        return Err(Reply::JobError(1241002, "请求参数不合法".into()));
    }
    let offset = int(p, "start")?.unwrap_or(0).max(0) as usize;
    let length = int(p, "length")?.unwrap_or(20);
    if !(1..=1000).contains(&length) {
        return Err(illegal("length"));
    }
    let by_id = int(p, "job_instance_id")?;
    let name = text(p, "name");
    let scope = &state.scenario.scope;
    let now = Instant::now();
    let jobs = state.jobs.lock().expect("jobs lock");
    let mut matched: Vec<&Job> = jobs
        .values()
        .filter(|j| match by_id {
            Some(id) => j.id as i64 == id,
            None => {
                (start..=end).contains(&j.created_ms) && name.is_none_or(|n| j.name.contains(n))
            }
        })
        .collect();
    matched.sort_by_key(|j| std::cmp::Reverse(j.id));
    let page: Vec<Value> = matched
        .iter()
        .skip(offset)
        .take(length as usize)
        .map(|j| j.list_item(now, &scope.scope_type, &scope.id))
        .collect();
    Ok(json!({ "start": offset, "length": length, "total": matched.len(), "data": page }))
}

fn operate_job_instance(state: &State, p: &Map<String, Value>) -> Result<Value, Reply> {
    check_scope(state, p)?;
    let code = int(p, "operation_code")?.ok_or_else(|| missing("operation_code"))?;
    with_job(state, p, |job| {
        let status = job.state_at(Instant::now()).0;
        match code {
            1 if matches!(status, 2 | 7) => {
                job.terminated = Some(Instant::now());
                Ok(json!({ "job_instance_id": job.id }))
            }
            1 if status == 10 => Err(Reply::JobError(
                1244015,
                "任务正在终止中，请不要重复操作".into(),
            )),
            1 => Err(Reply::JobError(1241003, "不支持的操作".into())),
            2 => Err(Reply::JobError(
                1241015,
                "不支持的操作，请勿重复启动作业".into(),
            )),
            _ => Err(Reply::JobError(1241002, "请求参数不合法".into())),
        }
    })
}

fn dispatch(state: &Arc<State>, api: &str, p: &Map<String, Value>) -> Reply {
    let result = match api {
        "fast_execute_script" => fast_execute_script(state, p),
        "get_job_instance_status" => get_job_instance_status(state, p),
        "batch_get_job_instance_ip_log" => batch_get_job_instance_ip_log(state, p),
        "get_job_instance_ip_log" => get_job_instance_ip_log(state, p),
        "get_job_instance_list" => get_job_instance_list(state, p),
        "operate_job_instance" => operate_job_instance(state, p),
        _ => return Reply::NotFound,
    };
    result.map_or_else(|r| r, Reply::Ok)
}

fn fault_reply(rule: Option<&FaultRule>, kind: FaultKind) -> Reply {
    let gw = |http, code, code_name, message: &str| Reply::Gateway {
        http,
        code,
        code_name,
        message: message.into(),
        reset_seconds: None,
    };
    match kind {
        FaultKind::Http500 => gw(
            500,
            1650000,
            "INTERNAL_SERVER_ERROR",
            "Internal Server Error",
        ),
        FaultKind::Http502 => gw(502, 1650200, "BAD_GATEWAY", "Bad Gateway"),
        FaultKind::Http503 => gw(503, 1650300, "SERVICE_UNAVAILABLE", "Service Unavailable"),
        FaultKind::Http504 => gw(
            504,
            1650401,
            "REQUEST_BACKEND_TIMEOUT",
            "Request backend service timeout",
        ),
        FaultKind::RateLimit => Reply::Gateway {
            http: 429,
            code: 1642902,
            code_name: "RATE_LIMIT_RESTRICTION",
            message: "API rate limit exceeded by stage strategy".into(),
            reset_seconds: Some(rule.and_then(|r| r.reset_seconds).unwrap_or(1)),
        },
        FaultKind::MalformedJson => Reply::Malformed,
        FaultKind::ConnectionReset => Reply::Reset,
        FaultKind::InstanceNotFound => Reply::JobError(1244006, "作业实例不存在".into()),
        FaultKind::EnvelopeError => Reply::JobError(
            rule.and_then(|r| r.code).unwrap_or(1240002),
            rule.and_then(|r| r.message.clone())
                .unwrap_or_else(|| "内部服务器异常".into()),
        ),
        FaultKind::Latency => Reply::NotFound, // never used as a reply
    }
}

/// The fault for this request, if any, and the extra latency. Counts every request.
fn pick_fault(state: &State, api: &str) -> (Option<(Option<FaultRule>, FaultKind)>, Duration) {
    let n = {
        let mut requests = state.stats.requests.lock().expect("stats lock");
        let count = requests.entry(api.to_owned()).or_insert(0);
        *count += 1;
        *count
    };
    let faults = &state.scenario.faults;
    let mut delay = faults.latency;
    let mut chosen = None;
    let mut hits = state.rule_hits.lock().expect("rule lock");
    for (i, rule) in faults.rules.iter().enumerate() {
        if rule.api != "*" && rule.api != api {
            continue;
        }
        hits[i] += 1;
        let k = if rule.api == "*" { hits[i] } else { n };
        let hit = k >= rule.nth && (rule.count == 0 || k < rule.nth + rule.count);
        if !hit {
            continue;
        }
        if rule.kind == FaultKind::Latency {
            delay += rule.delay.unwrap_or(Duration::from_secs(1));
        } else if chosen.is_none() {
            chosen = Some((Some(rule.clone()), rule.kind));
        }
    }
    drop(hits);
    if chosen.is_none() && faults.failure_ratio > 0.0 {
        let mut rng = state.rng.lock().expect("rng lock");
        if rng.random_range(0.0..1.0) < faults.failure_ratio {
            let kinds = [
                FaultKind::Http502,
                FaultKind::Http503,
                FaultKind::RateLimit,
                FaultKind::ConnectionReset,
            ];
            chosen = Some((None, kinds[rng.random_range(0..kinds.len())]));
        }
    }
    (chosen, delay)
}

fn respond(door: Door, reply: Reply, request_id: &str) -> Response<Full<Bytes>> {
    let json_response = |status: u16, body: Value| {
        Response::builder()
            .status(status)
            .header("Content-Type", "application/json")
            .header("X-Bkapi-Request-ID", request_id)
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("static response parts")
    };
    let envelope = |mut body: Value| {
        match door {
            Door::Apigw => body["job_request_id"] = json!(request_id),
            Door::Esb => body["request_id"] = json!(request_id),
        }
        body
    };
    match reply {
        Reply::Ok(data) => {
            let mut body = json!({ "result": true, "code": 0, "data": data });
            if door == Door::Esb {
                body["message"] = json!("success");
            }
            json_response(200, envelope(body))
        }
        Reply::JobError(code, message) => json_response(
            200,
            envelope(json!({ "result": false, "code": code, "message": message, "data": null })),
        ),
        Reply::Gateway {
            http,
            code,
            code_name,
            message,
            reset_seconds,
        } => {
            let mut response = json_response(
                http,
                json!({ "code_name": code_name, "message": message, "result": false, "data": null, "code": code }),
            );
            if let Some(reset) = reset_seconds {
                let headers = response.headers_mut();
                headers.insert("X-Bkapi-RateLimit-Limit", 100.into());
                headers.insert("X-Bkapi-RateLimit-Remaining", 0.into());
                headers.insert("X-Bkapi-RateLimit-Reset", reset.into());
                headers.insert(
                    "X-Bkapi-RateLimit-Plugin",
                    "bk-rate-limit".parse().expect("header value"),
                );
            }
            response
        }
        Reply::Malformed => Response::builder()
            .status(200)
            .header("Content-Type", "application/json")
            .body(Full::new(Bytes::from_static(
                br#"{"result": true, "code": 0, "data": {"finished": tr"#,
            )))
            .expect("static response parts"),
        Reply::NotFound => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::from_static(b"404 page not found")))
            .expect("static response parts"),
        Reply::Reset => {
            let mut response = Response::new(Full::new(Bytes::new()));
            response.extensions_mut().insert(ResetConnection);
            response
        }
    }
}

fn query_map(query: Option<&str>) -> Map<String, Value> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect()
}

/// Answers one request. Never fails: every problem is an answer in the platform's own shape.
pub(crate) async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let seq = state.request_seq.fetch_add(1, Ordering::Relaxed);
    let request_id = format!("{:016x}{:016x}", std::process::id(), seq);
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = query_map(req.uri().query());
    let (door, api, mutating) = match route(&method, &path) {
        Ok(r) => r,
        Err(reply) => return Ok(respond(Door::Apigw, reply, &request_id)),
    };
    let auth_header = req
        .headers()
        .get("X-Bkapi-Authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            let reply = Reply::Gateway {
                http: 413,
                code: 1641301,
                code_name: "BODY_SIZE_LIMIT_RESTRICTION",
                message: "Request body size too large".into(),
                reset_seconds: None,
            };
            return Ok(respond(door, reply, &request_id));
        }
    };
    let params: Map<String, Value> = if method == Method::GET {
        query
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(map)) => map,
            _ => {
                return Ok(respond(
                    door,
                    Reply::JobError(1241022, "请求体格式不正确".into()),
                    &request_id,
                ));
            }
        }
    };
    let creds = match door {
        // The bk-job gateway takes credentials only from the header (API.md §1.2).
        Door::Apigw => auth_header
            .and_then(|h| serde_json::from_str::<Map<String, Value>>(&h).ok())
            .unwrap_or_default(),
        Door::Esb => params.clone(),
    };
    if let Err(reply) = check_credentials(&state, door, &creds) {
        return Ok(respond(door, reply, &request_id));
    }
    let (fault, delay) = pick_fault(&state, api);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let reply = match fault {
        Some((rule, kind)) if !(mutating && rule.as_ref().is_some_and(|r| r.after_effect)) => {
            fault_reply(rule.as_ref(), kind)
        }
        Some((rule, kind)) => {
            let _ = dispatch(&state, api, &params);
            fault_reply(rule.as_ref(), kind)
        }
        None => dispatch(&state, api, &params),
    };
    Ok(respond(door, reply, &request_id))
}

/// Whether a response asks for its connection to be reset.
pub(crate) fn wants_reset(response: &Response<Full<Bytes>>) -> bool {
    response.extensions().get::<ResetConnection>().is_some()
}

/// The address a test should use for each door.
pub fn base_urls(addr: SocketAddr) -> (String, String) {
    (
        format!("http://{addr}/api/bk-job/prod"),
        format!("http://{addr}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_follow_each_door() {
        assert!(matches!(
            route(
                &Method::GET,
                "/api/bk-job/prod/api/v3/get_job_instance_status"
            ),
            Ok((Door::Apigw, _, false))
        ));
        assert!(matches!(
            route(&Method::POST, "/api/v3/get_job_instance_status"),
            Err(Reply::Gateway { http: 404, .. })
        ));
        assert!(matches!(
            route(&Method::GET, "/api/v3/get_job_instance_status/"),
            Err(Reply::Gateway { http: 404, .. })
        ));
        assert!(matches!(
            route(
                &Method::POST,
                "/api/c/compapi/v2/jobv3/fast_execute_script/"
            ),
            Ok((Door::Esb, _, true))
        ));
        assert!(matches!(
            route(&Method::POST, "/api/c/compapi/v2/jobv3/fast_execute_script"),
            Err(Reply::NotFound)
        ));
        assert!(matches!(
            route(
                &Method::GET,
                "/api/c/compapi/v2/jobv3/get_job_instance_status/"
            ),
            Ok((Door::Esb, _, false))
        ));
    }
}
