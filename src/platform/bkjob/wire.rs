//! bk-job v3 bodies as they travel, and the pure functions that turn an HTTP answer into data
//! or a classified [`PlatformError`] (API.md §2). No I/O here: every fixture in
//! `reference/bkjob/fixtures/` goes through these functions in the tests.
//!
//! Every field the docs mark nullable is an `Option`; unknown keys are ignored, because
//! servers add fields (`job_request_id`, `request_id`, `ipv6`, …) between versions.

use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::codes;
use crate::model::{Host, HostStatus, JobSnapshot};
use crate::platform::{ErrorClass, HostLog, JobRef, PlatformError};

/// The v3 envelope (API.md §2.1). `code` is read leniently (number or numeric string).
#[derive(Debug, Deserialize)]
struct Envelope {
    result: Option<bool>,
    code: Option<Value>,
    message: Option<String>,
    code_name: Option<String>,
    /// Kept raw and decoded once into the API's own type (no intermediate `Value` tree).
    data: Option<Box<serde_json::value::RawValue>>,
}

fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// What the transport saw, for [`decode`].
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    /// The API called.
    pub api: &'static str,
    /// Whether the call changes state on the platform (a submit, a terminate).
    pub mutating: bool,
    /// HTTP status.
    pub http_status: u16,
    /// `X-Bkapi-RateLimit-Reset`, seconds, when present.
    pub rate_limit_reset: Option<u64>,
    /// The body.
    pub body: &'a [u8],
}

/// Turns one HTTP answer into the envelope's `data` (deserialized as `T`) or a classified
/// error, following API.md §2:
///
/// * non-200 with a gateway body (`code` 16xxxxx): 429 → transient (honouring
///   `X-Bkapi-RateLimit-Reset`), 5xx → transient, other 4xx → permanent;
/// * 200 with `result:false`: 1244006 → not found; GSE/service-unavailable/internal errors
///   → transient; anything else (bad request, permission, unknown account, ESB 1306xxx) →
///   permanent;
/// * a body that is not the envelope, or `data` not of the documented shape → transient,
///   because a proxy or a half-written answer is the likely cause.
pub fn decode<T: DeserializeOwned>(a: Answer<'_>) -> Result<T, PlatformError> {
    let mut err = PlatformError {
        http_status: Some(a.http_status),
        maybe_applied: a.mutating,
        ..PlatformError::transient(a.api, String::new())
    };
    let envelope: Option<Envelope> = serde_json::from_slice(a.body).ok();
    if a.http_status != 200 {
        let (code, text) = match &envelope {
            Some(e) => (
                e.code.as_ref().and_then(as_i64),
                match (&e.code_name, &e.message) {
                    (Some(name), Some(msg)) => format!("{name}: {msg}"),
                    (None, Some(msg)) => msg.clone(),
                    (Some(name), None) => name.clone(),
                    (None, None) => "no message".into(),
                },
            ),
            None => (None, format!("non-JSON answer: {}", snippet(a.body))),
        };
        err.code = code;
        err.message = text;
        match a.http_status {
            429 => {
                err.maybe_applied = false;
                err.retry_after = a.rate_limit_reset.map(Duration::from_secs);
            }
            500..=599 => {}
            _ => {
                err.class = ErrorClass::Permanent;
                err.maybe_applied = false;
            }
        }
        return Err(err);
    }
    let Some(envelope) = envelope else {
        err.message = format!(
            "malformed answer (not the JSON envelope): {}",
            snippet(a.body)
        );
        return Err(err);
    };
    let code = envelope.code.as_ref().and_then(as_i64);
    let ok = match (envelope.result, code) {
        (Some(result), Some(code)) => result && code == 0,
        (Some(result), None) => result,
        (None, Some(code)) => code == 0,
        (None, None) => {
            err.message = "malformed answer: envelope has neither `result` nor `code`".into();
            return Err(err);
        }
    };
    if !ok {
        err.code = code;
        err.message = envelope.message.unwrap_or_else(|| "no message".into());
        err.class = match code {
            Some(codes::TASK_INSTANCE_NOT_EXIST) => ErrorClass::NotFound,
            Some(c) if codes::is_transient_envelope_code(c) => ErrorClass::Transient,
            _ => ErrorClass::Permanent,
        };
        if err.class != ErrorClass::Transient {
            err.maybe_applied = false;
        }
        return Err(err);
    }
    let data = envelope
        .data
        .as_deref()
        .map_or("null", serde_json::value::RawValue::get);
    serde_json::from_str(data).map_err(|e| {
        err.message = format!("malformed `data`: {e}");
        err
    })
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(120)]).replace(['\n', '\r'], " ");
    if body.len() > 120 {
        format!("{text}…")
    } else {
        text
    }
}

/// `data` of fast_execute_script (API.md §3).
#[derive(Debug, Deserialize)]
pub struct SubmitData {
    /// The new job instance.
    pub job_instance_id: u64,
    /// Its name.
    pub job_instance_name: Option<String>,
    /// Its one step.
    pub step_instance_id: Option<u64>,
}

impl From<SubmitData> for JobRef {
    fn from(d: SubmitData) -> Self {
        JobRef {
            job_instance_id: Some(d.job_instance_id),
            jid: None,
            step_instance_id: d.step_instance_id,
            name: d.job_instance_name,
        }
    }
}

/// `data` of get_job_instance_status (API.md §4).
#[derive(Debug, Deserialize)]
pub struct StatusData {
    /// Server-side `isFinishedStatus(job.status)`.
    pub finished: Option<bool>,
    /// The job.
    pub job_instance: StatusJob,
    /// Its steps; null/empty before they exist.
    pub step_instance_list: Option<Vec<StatusStep>>,
}

/// `job_instance` of a status answer.
#[derive(Debug, Deserialize)]
pub struct StatusJob {
    /// Job id.
    pub job_instance_id: Option<u64>,
    /// Job status, API.md §9.1.
    pub status: i64,
    /// Name.
    pub name: Option<String>,
}

/// One entry of `step_instance_list`.
#[derive(Debug, Deserialize)]
pub struct StatusStep {
    /// Step id.
    pub step_instance_id: Option<u64>,
    /// Step status, API.md §9.1.
    pub status: Option<i64>,
    /// Per-host results; null unless `return_ip_result=true`, empty before the step started.
    pub step_ip_result_list: Option<Vec<IpResult>>,
}

/// One entry of `step_ip_result_list`.
#[derive(Debug, Deserialize)]
pub struct IpResult {
    /// CMDB id (absent in BlueKing 6.1-era answers).
    pub bk_host_id: Option<u64>,
    /// IP.
    pub ip: Option<String>,
    /// Control area.
    pub bk_cloud_id: Option<u64>,
    /// Host status, API.md §9.2.
    pub status: i64,
    /// `job_success`/`job_fail` tag.
    pub tag: Option<String>,
    /// Script exit code.
    pub exit_code: Option<i64>,
    /// Raw GSE code, API.md §9.3.
    pub error_code: Option<i64>,
    /// Milliseconds.
    pub total_time: Option<i64>,
}

impl StatusData {
    /// The normalized snapshot. The step reported is `step_instance_id` when given and
    /// present, else the last step that has host results, else the first step.
    pub fn into_snapshot(self, step_instance_id: Option<u64>) -> JobSnapshot {
        let status = self.job_instance.status;
        let finished = self
            .finished
            .unwrap_or_else(|| codes::job_status(status).is_some_and(|s| s.finished));
        let mut steps = self.step_instance_list.unwrap_or_default();
        let index = step_instance_id
            .and_then(|id| steps.iter().position(|s| s.step_instance_id == Some(id)))
            .or_else(|| {
                steps.iter().rposition(|s| {
                    s.step_ip_result_list
                        .as_ref()
                        .is_some_and(|l| !l.is_empty())
                })
            })
            .or(if steps.is_empty() { None } else { Some(0) });
        let step = index.map(|i| steps.swap_remove(i));
        let hosts = step
            .as_ref()
            .and_then(|s| s.step_ip_result_list.as_ref())
            .map(|list| list.iter().map(IpResult::to_host_status).collect())
            .unwrap_or_default();
        JobSnapshot {
            status,
            label: codes::job_label(status),
            finished,
            step_instance_id: step.and_then(|s| s.step_instance_id).or(step_instance_id),
            hosts,
        }
    }
}

impl IpResult {
    fn to_host_status(&self) -> HostStatus {
        let (outcome, label) = codes::host_outcome(self.status);
        HostStatus {
            host: Host {
                bk_host_id: self.bk_host_id,
                bk_cloud_id: self.bk_cloud_id,
                ip: self.ip.clone(),
                minion_id: None,
            },
            status: self.status,
            outcome,
            label,
            exit_code: self.exit_code,
            error_code: self.error_code,
            tag: self.tag.clone(),
            duration: self
                .total_time
                .filter(|&t| t >= 0)
                .map(|t| Duration::from_millis(t as u64)),
            facts: None,
        }
    }
}

/// `data` of batch_get_job_instance_ip_log (API.md §5).
#[derive(Debug, Deserialize)]
pub struct BatchLogData {
    /// 1 script, 2 file.
    pub log_type: Option<i64>,
    /// Script step logs; null when nothing was found.
    pub script_task_logs: Option<Vec<ScriptLog>>,
    /// File step logs; null when nothing was found.
    pub file_task_logs: Option<Vec<FileTaskLog>>,
}

/// A host reference inside log answers.
#[derive(Debug, Deserialize)]
pub struct IpRef {
    /// CMDB id.
    pub bk_host_id: Option<u64>,
    /// Upstream docs' typo for `bk_host_id` in one file-log example (API.md §11.1).
    pub host_id: Option<u64>,
    /// Control area.
    pub bk_cloud_id: Option<u64>,
    /// IP.
    pub ip: Option<String>,
}

impl IpRef {
    fn host(&self) -> Host {
        Host {
            bk_host_id: self.bk_host_id.or(self.host_id),
            bk_cloud_id: self.bk_cloud_id,
            ip: self.ip.clone(),
            minion_id: None,
        }
    }
}

/// One `script_task_logs` entry.
#[derive(Debug, Deserialize)]
pub struct ScriptLog {
    /// The host.
    #[serde(flatten)]
    pub host: IpRef,
    /// Whole log for the current `execute_count`; plain text.
    pub log_content: Option<String>,
}

/// One `file_task_logs` entry.
#[derive(Debug, Deserialize)]
pub struct FileTaskLog {
    /// The host.
    #[serde(flatten)]
    pub host: IpRef,
    /// Its file transfers.
    pub file_logs: Option<Vec<FileLog>>,
}

/// One file transfer (API.md §5); only the fields jobwatch shows.
#[derive(Debug, Deserialize)]
pub struct FileLog {
    /// 0 upload (source side), 1 download (target side).
    pub mode: Option<i64>,
    /// Source path.
    pub src_path: Option<String>,
    /// Target path.
    pub dest_path: Option<String>,
    /// Transfer status (API.md §9.4).
    pub status: Option<i64>,
    /// Log text.
    pub log_content: Option<String>,
}

impl BatchLogData {
    /// One [`HostLog`] per host in the answer; file transfers are joined one per line.
    pub fn into_logs(self) -> Vec<HostLog> {
        let mut logs: Vec<HostLog> = self
            .script_task_logs
            .unwrap_or_default()
            .into_iter()
            .map(|l| HostLog {
                host: l.host.host(),
                content: l.log_content.unwrap_or_default(),
            })
            .collect();
        for f in self.file_task_logs.unwrap_or_default() {
            let content = f
                .file_logs
                .unwrap_or_default()
                .into_iter()
                .filter_map(|l| l.log_content)
                .collect::<Vec<_>>()
                .join("\n");
            logs.push(HostLog {
                host: f.host.host(),
                content,
            });
        }
        logs
    }
}

/// `data` of get_job_instance_ip_log (API.md §6).
#[derive(Debug, Deserialize)]
pub struct IpLogData {
    /// The host.
    #[serde(flatten)]
    pub host: IpRef,
    /// Script log.
    pub log_content: Option<String>,
    /// File transfers.
    pub file_logs: Option<Vec<FileLog>>,
}

/// `data` of get_job_instance_list (API.md §7): a page.
#[derive(Debug, Deserialize)]
pub struct ListData {
    /// Offset.
    pub start: Option<i64>,
    /// Page size.
    pub length: Option<i64>,
    /// Total matches.
    pub total: Option<i64>,
    /// Items.
    pub data: Option<Vec<ListItem>>,
}

/// One job in a list page. The code emits `job_instance_id`/`status`/`type`, every doc
/// example `id`/`task_status`/`task_type` (API.md §11.2): both are read.
#[derive(Debug, Deserialize)]
pub struct ListItem {
    /// Job id (code's key).
    pub job_instance_id: Option<u64>,
    /// Job id (docs' key).
    pub id: Option<u64>,
    /// Name.
    pub name: Option<String>,
    /// Status (code's key).
    pub status: Option<i64>,
    /// Status (docs' key).
    pub task_status: Option<i64>,
    /// Creation time, epoch ms.
    pub create_time: Option<i64>,
}

impl ListItem {
    /// The job id, whichever key carried it.
    pub fn job_instance_id(&self) -> Option<u64> {
        self.job_instance_id.or(self.id)
    }

    /// The status, whichever key carried it.
    pub fn status(&self) -> Option<i64> {
        self.status.or(self.task_status)
    }
}

/// `data` of operate_job_instance (API.md §8).
#[derive(Debug, Deserialize)]
pub struct OperateData {
    /// The job operated on.
    pub job_instance_id: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(http_status: u16, body: &str) -> Answer<'_> {
        Answer {
            api: "get_job_instance_status",
            mutating: false,
            http_status,
            rate_limit_reset: None,
            body: body.as_bytes(),
        }
    }

    #[test]
    fn envelope_errors_are_classified() {
        let not_found =
            r#"{"result":false,"code":1244006,"message":"作业实例不存在","job_request_id":"x"}"#;
        let e = decode::<StatusData>(answer(200, not_found)).unwrap_err();
        assert_eq!(e.class, ErrorClass::NotFound);
        assert_eq!(e.code, Some(1244006));

        let internal = r#"{"result":false,"code":1240002,"message":"内部服务器异常"}"#;
        assert_eq!(
            decode::<StatusData>(answer(200, internal))
                .unwrap_err()
                .class,
            ErrorClass::Transient
        );

        let account = r#"{"result":false,"code":1244003,"message":"账号[nobody]不存在"}"#;
        let e = decode::<SubmitData>(Answer {
            mutating: true,
            ..answer(200, account)
        })
        .unwrap_err();
        assert_eq!(e.class, ErrorClass::Permanent);
        assert!(!e.maybe_applied);
        assert!(e.to_string().contains("1244003") && e.to_string().contains("账号[nobody]不存在"));

        let esb = r#"{"result":false,"code":"1306000","message":"Invalid APP Code"}"#;
        assert_eq!(
            decode::<StatusData>(answer(200, esb)).unwrap_err().code,
            Some(1306000)
        );
    }

    #[test]
    fn gateway_errors_are_classified() {
        let limited = r#"{"code_name":"RATE_LIMIT_RESTRICTION","message":"API rate limit exceeded by stage strategy","result":false,"data":null,"code":1642902}"#;
        let e = decode::<SubmitData>(Answer {
            mutating: true,
            rate_limit_reset: Some(3),
            ..answer(429, limited)
        })
        .unwrap_err();
        assert_eq!(e.class, ErrorClass::Transient);
        assert!(
            !e.maybe_applied,
            "a 429 was refused by the gateway: it did not reach bk-job"
        );
        assert_eq!(e.retry_after, Some(Duration::from_secs(3)));
        assert_eq!(e.code, Some(1642902));

        let perm = r#"{"code":1640301,"data":null,"code_name":"APP_NO_PERMISSION","message":"App has no permission to the resource","result":false}"#;
        assert_eq!(
            decode::<StatusData>(answer(403, perm)).unwrap_err().class,
            ErrorClass::Permanent
        );

        let e = decode::<SubmitData>(Answer {
            mutating: true,
            ..answer(502, "<html>bad gateway</html>")
        })
        .unwrap_err();
        assert_eq!(e.class, ErrorClass::Transient);
        assert!(
            e.maybe_applied,
            "a 502 on a submit leaves its effect unknown"
        );
    }

    #[test]
    fn malformed_answers_are_transient_never_success() {
        for body in [
            "{not json",
            "",
            "[]",
            r#"{"result":true,"code":0,"data":{"finished":true}}"#,
        ] {
            let e = decode::<StatusData>(answer(200, body)).unwrap_err();
            assert_eq!(e.class, ErrorClass::Transient, "body {body:?}");
        }
    }

    #[test]
    fn in_progress_status_with_null_fields() {
        let body = r#"{"result":true,"code":0,"data":{"finished":false,
            "job_instance":{"job_instance_id":5,"status":2,"name":"x","start_time":null,"end_time":null,"total_time":null},
            "step_instance_list":[{"step_instance_id":6,"status":2,"step_ip_result_list":[
              {"bk_host_id":1,"ip":"10.0.0.1","bk_cloud_id":0,"status":7,"tag":null,"exit_code":null,"error_code":115,"total_time":null},
              {"bk_host_id":2,"ip":"10.0.0.2","bk_cloud_id":0,"status":888,"tag":null,"exit_code":null,"error_code":null,"total_time":null}]}]}}"#;
        let snap = decode::<StatusData>(answer(200, body))
            .unwrap()
            .into_snapshot(None);
        assert!(!snap.finished);
        assert_eq!(snap.step_instance_id, Some(6));
        assert_eq!(snap.hosts[0].outcome, crate::model::HostOutcome::Running);
        assert_eq!(snap.hosts[1].outcome, crate::model::HostOutcome::Unknown);
        assert_eq!(snap.hosts[1].status, 888);
    }
}
