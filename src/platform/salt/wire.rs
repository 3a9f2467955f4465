//! What salt-api answers, decoded into jobwatch's terms (salt/API.md §3, §4): the HTTP
//! status and body of one call, the submit's `jid`, a job's `info[0]`, one returned host, a
//! probe's answers. Pure functions: bytes in, values or a classified error out.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::codes;
use crate::model::{Host, HostStatus};
use crate::platform::{ErrorClass, PlatformError};

/// The metadata key carrying jobwatch's task name (with its execution id): found again by
/// `jobs.list_jobs search_metadata` after a crash between submit and answer.
pub const TASK_KEY: &str = "jobwatch_task";
/// The metadata key carrying the requested minion ids, so that a host Salt dropped (no
/// accepted key) is known at every poll, by any process.
pub const HOSTS_KEY: &str = "jobwatch_hosts";

/// The text Salt puts in place of an output over `max_event_size` (1 MiB by default).
pub const VALUE_TRIMMED: &str = "VALUE_TRIMMED";

/// One HTTP answer of salt-api.
pub struct Answer<'a> {
    /// The salt-api call, for errors and metrics.
    pub api: &'static str,
    /// Whether the call changes state (a submit, a terminate).
    pub mutating: bool,
    /// HTTP status.
    pub http_status: u16,
    /// The body.
    pub body: &'a [u8],
}

/// The JSON body of a 2xx answer, or the error it is: 401 is `Unauthorized` (the caller
/// logs in again; its body is HTML, never quoted), other 4xx are permanent refusals, 5xx and
/// garbled bodies are transient (and may have taken effect for a mutating call).
pub fn decode(a: Answer<'_>) -> Result<Value, PlatformError> {
    let base = PlatformError {
        http_status: Some(a.http_status),
        ..PlatformError::transient(a.api, "")
    };
    match a.http_status {
        200..=299 => serde_json::from_slice(a.body).map_err(|e| PlatformError {
            maybe_applied: a.mutating,
            message: format!("salt-api answered HTTP {} with no JSON: {e}", a.http_status),
            ..base.clone()
        }),
        401 => Err(PlatformError {
            class: ErrorClass::Permanent,
            message:
                "not authorized (salt-api forgot the token, or the eauth credentials are refused)"
                    .into(),
            ..base
        }),
        status @ 400..=499 => Err(PlatformError {
            class: ErrorClass::Permanent,
            message: format!("salt-api refused the request: {}", text_of(a.body)),
            http_status: Some(status),
            ..base
        }),
        status => Err(PlatformError {
            maybe_applied: a.mutating,
            message: format!("salt-api failed: {}", text_of(a.body)),
            http_status: Some(status),
            ..base
        }),
    }
}

/// A short, safe rendering of an error body: JSON's `return`/`message`, the message of
/// CherryPy's HTML error page (its first `<p>`: "Client disabled: 'local_async'. Add to
/// 'netapi_enable_clients' …"), or plain text; at most 200 characters, never markup.
fn text_of(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.starts_with('<') {
        let message = text
            .split_once("<p>")
            .and_then(|(_, rest)| rest.split_once("</p>"))
            .map(|(p, _)| strip_tags(p))
            .filter(|m| !m.trim().is_empty());
        return match message {
            Some(m) => m.trim().chars().take(200).collect(),
            None => "(an HTML error page)".into(),
        };
    }
    let text = match serde_json::from_str::<Value>(text) {
        Ok(v) => v.get("return").or_else(|| v.get("message")).map_or_else(
            || v.to_string(),
            |r| r.as_str().map_or_else(|| r.to_string(), str::to_owned),
        ),
        Err(_) => text.to_owned(),
    };
    text.chars().take(200).collect()
}

/// `html` without its tags and with the common entities decoded.
fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn garbled(api: &'static str, mutating: bool, what: impl Into<String>) -> PlatformError {
    PlatformError {
        maybe_applied: mutating,
        ..PlatformError::transient(api, format!("unexpected salt-api answer: {}", what.into()))
    }
}

/// `return[0]` of an answer.
pub fn first_return<'v>(
    api: &'static str,
    mutating: bool,
    v: &'v Value,
) -> Result<&'v Value, PlatformError> {
    v.get("return")
        .and_then(|r| r.get(0))
        .ok_or_else(|| garbled(api, mutating, "no `return[0]`"))
}

/// What a `local_async` submit answered: the jid and the minions Salt expects to answer.
/// `{}` (no jid) means no requested host has an accepted key.
pub fn submitted(
    api: &'static str,
    v: &Value,
) -> Result<Option<(String, Vec<String>)>, PlatformError> {
    let r = first_return(api, true, v)?;
    match r {
        Value::Object(m) if m.is_empty() => Ok(None),
        Value::Object(m) => {
            let jid = m
                .get("jid")
                .and_then(Value::as_str)
                .filter(|j| !j.is_empty())
                .ok_or_else(|| garbled(api, true, "no `jid`"))?;
            let minions = strings(m.get("minions"));
            Ok(Some((jid.to_owned(), minions)))
        }
        // A string return is Salt's refusal ("Client disabled: …", "Authentication failure …").
        Value::String(s) => Err(PlatformError::permanent(
            api,
            None,
            format!(
                "Salt refused the job: {}",
                s.chars().take(300).collect::<String>()
            ),
        )),
        _ => Err(garbled(api, true, "`return[0]` is not an object")),
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// `info[0]` of `GET /jobs/<jid>` (read this, never `return`: salt/API.md §3).
#[derive(Debug, Clone, PartialEq)]
pub struct JobInfo {
    /// The minions Salt targeted (`Minions`).
    pub minions: Vec<String>,
    /// The minion ids jobwatch asked for (`Metadata.jobwatch_hosts`); `Minions` for a job
    /// jobwatch did not submit.
    pub requested: Vec<String>,
    /// Every host that has returned, as Salt stored it (`Result`).
    pub result: Map<String, Value>,
}

/// Decodes `GET /jobs/<jid>`. A job the cache does not know (expired after
/// `keep_jobs_seconds`, or never stored) answers HTTP 200 with `Error` and is `NotFound`.
pub fn job_info(v: &Value) -> Result<JobInfo, PlatformError> {
    const API: &str = "jobs";
    let info = v
        .get("info")
        .and_then(|i| i.get(0))
        .and_then(Value::as_object)
        .ok_or_else(|| garbled(API, false, "no `info[0]`"))?;
    let result = info
        .get("Result")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(error) = info.get("Error").and_then(Value::as_str)
        && result.is_empty()
    {
        return Err(PlatformError {
            class: ErrorClass::NotFound,
            ..PlatformError::transient(
                API,
                format!("Salt's job cache does not know the job: {error}"),
            )
        });
    }
    let minions = strings(info.get("Minions"));
    let requested = match info.get("Metadata").and_then(|m| m.get(HOSTS_KEY)) {
        Some(hosts) => strings(Some(hosts)),
        None => minions.clone(),
    };
    Ok(JobInfo {
        minions,
        requested,
        result,
    })
}

/// Raw facts of one returned host: the outer `retcode` and `success`, the script's own
/// `return.retcode`.
fn returned_facts(entry: &Value) -> Value {
    json!({
        "retcode": entry.get("retcode"),
        "success": entry.get("success"),
        "return_retcode": entry.get("return").and_then(|r| r.get("retcode")),
    })
}

/// A host's status from its `Result` entry: the exit code is `return.retcode` (the outer
/// `retcode` and `success` lie after Salt's own timeout); a string `return` is a Salt error.
pub fn returned(host: &str, entry: &Value) -> HostStatus {
    let ret = entry.get("return");
    let (code, exit_code) = match ret {
        Some(Value::Object(r)) => {
            let inner = r.get("retcode").and_then(Value::as_i64);
            let stdout = r.get("stdout").and_then(Value::as_str).unwrap_or("");
            match inner {
                Some(0) => (codes::SUCCEEDED, Some(0)),
                Some(1) if salt_timed_out(stdout) => (codes::SALT_TIMEOUT, Some(1)),
                Some(rc) => (codes::FAILED, Some(rc)),
                None => (
                    codes::SALT_ERROR,
                    entry.get("retcode").and_then(Value::as_i64),
                ),
            }
        }
        _ => (
            codes::SALT_ERROR,
            entry.get("retcode").and_then(Value::as_i64),
        ),
    };
    status(host, code, exit_code, Some(returned_facts(entry)))
}

/// Whether a `cmd.*` stdout is Salt's own timeout message (`… Timed out after N seconds`).
fn salt_timed_out(stdout: &str) -> bool {
    stdout
        .rsplit_once("Timed out after ")
        .is_some_and(|(_, tail)| {
            tail.ends_with(" seconds") && tail[..tail.len() - 8].bytes().all(|b| b.is_ascii_digit())
        })
}

/// A host's status from one of jobwatch's [`codes`].
pub fn status(host: &str, code: i64, exit_code: Option<i64>, facts: Option<Value>) -> HostStatus {
    let (outcome, label) = codes::host_outcome(code);
    HostStatus {
        host: Host::minion(host),
        status: code,
        outcome,
        label,
        exit_code,
        error_code: None,
        tag: None,
        duration: None,
        facts,
    }
}

/// The log of a returned host: `stdout`, then `stderr` under a marker line; a string return
/// as it is; Salt's `VALUE_TRIMMED` said in words.
pub fn log_of(entry: &Value) -> String {
    let trimmed = |s: &str| {
        if s == VALUE_TRIMMED {
            "[jobwatch: Salt dropped this output: it was over max_event_size (1 MiB by default) and Salt sent VALUE_TRIMMED instead]".to_owned()
        } else {
            s.to_owned()
        }
    };
    match entry.get("return") {
        Some(Value::Object(r)) => {
            let stdout = r
                .get("stdout")
                .and_then(Value::as_str)
                .map(trimmed)
                .unwrap_or_default();
            let stderr = r
                .get("stderr")
                .and_then(Value::as_str)
                .map(trimmed)
                .unwrap_or_default();
            let mut log = stdout;
            if !stderr.is_empty() {
                if !log.is_empty() && !log.ends_with('\n') {
                    log.push('\n');
                }
                log.push_str("[stderr]\n");
                log.push_str(&stderr);
            }
            if !log.is_empty() && !log.ends_with('\n') {
                log.push('\n');
            }
            log
        }
        Some(Value::String(s)) => format!("{}\n", trimmed(s)),
        Some(other) => format!("{other}\n"),
        None => String::new(),
    }
}

/// What a `saltutil.find_job` probe said of one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// A dict with a `pid`: the host runs the job.
    Running(i64),
    /// `{}`: the host is alive and does not run the job.
    NotRunning,
    /// No answer in the probe's `Result`.
    Silent,
}

impl Probe {
    /// The probe's answer as stored in a host's facts.
    pub fn fact(&self) -> Value {
        match self {
            Probe::Running(pid) => json!({"running": true, "pid": pid}),
            Probe::NotRunning => json!({"running": false}),
            Probe::Silent => json!("no answer"),
        }
    }
}

/// The probe answers of `hosts` from `GET /jobs/<probe jid>`'s `info[0].Result`.
pub fn probe_answers(info: &JobInfo, hosts: &[String]) -> BTreeMap<String, Probe> {
    hosts
        .iter()
        .map(|h| {
            let answer = match info.result.get(h).and_then(|e| e.get("return")) {
                Some(Value::Object(r)) => match r.get("pid").and_then(Value::as_i64) {
                    Some(pid) => Probe::Running(pid),
                    None => Probe::NotRunning,
                },
                // A string or anything else came back: the minion is alive.
                Some(_) => Probe::NotRunning,
                None => Probe::Silent,
            };
            (h.clone(), answer)
        })
        .collect()
}

/// The jids `jobs.list_jobs` returned (`return[0]` is keyed by jid), newest first.
pub fn listed_jids(v: &Value) -> Result<Vec<String>, PlatformError> {
    let api = "jobs.list_jobs";
    let mut jids: Vec<String> = match first_return(api, false, v)? {
        Value::Object(m) => m.keys().cloned().collect(),
        Value::String(s) => {
            return Err(PlatformError::permanent(
                api,
                None,
                format!(
                    "Salt refused the lookup: {}",
                    s.chars().take(300).collect::<String>()
                ),
            ));
        }
        _ => return Err(garbled(api, false, "`return[0]` is not an object")),
    };
    jids.sort_unstable_by(|a, b| b.cmp(a));
    Ok(jids)
}
