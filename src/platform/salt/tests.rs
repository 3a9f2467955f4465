//! The Salt adapter's decoding, against salt-api's real answers (`tests/fixtures/salt`, copied
//! from salt/API.md's captures; `80-events-sse.txt`, which API.md names but the shared
//! captures lack, was recorded here from `salt==3008.3`: `curl -N /events` while a job with
//! jobwatch's metadata ran on two minions and a third was missing, then one `find_job`).

use serde_json::{Value, json};

use super::codes;
use super::wire::{self, Answer, Probe};
use crate::model::HostOutcome;
use crate::platform::ErrorClass;

fn capture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/salt")
        .join(name);
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

fn status_of(info: &wire::JobInfo, host: &str) -> crate::model::HostStatus {
    wire::returned(host, &info.result[host])
}

#[test]
fn a_complete_job_gives_each_host_its_own_exit_code_and_raw_facts() {
    let info = wire::job_info(&capture("20-complete-GET-jobs.json")).unwrap();
    assert_eq!(info.minions, ["host-a", "host-b", "host-c"]);
    // No jobwatch metadata (the capture's job was submitted by hand): the targets are asked.
    assert_eq!(info.requested, info.minions);
    let a = status_of(&info, "host-a");
    assert_eq!(
        (a.status, a.outcome, a.exit_code),
        (codes::SUCCEEDED, HostOutcome::Success, Some(0))
    );
    let c = status_of(&info, "host-c");
    assert_eq!(
        (c.status, c.outcome, c.exit_code),
        (codes::FAILED, HostOutcome::Failed, Some(3))
    );
    assert_eq!(
        c.facts,
        Some(json!({"retcode": 3, "success": false, "return_retcode": 3}))
    );
    assert_eq!(c.host.to_string(), "host-c");
    assert_eq!(
        wire::log_of(&info.result["host-c"]),
        "start on host-c sleeping 20s\nend on host-c rc=3\n[stderr]\nstderr line from host-c\n"
    );
}

#[test]
fn a_pending_job_has_targets_and_no_result() {
    let info = wire::job_info(&capture("20-pending-GET-jobs.json")).unwrap();
    assert_eq!(info.minions.len(), 3);
    assert!(info.result.is_empty());
}

#[test]
fn salts_own_timeout_is_a_timeout_although_success_says_true() {
    let v = capture("30-cmd.run_all-timeout3.json");
    let info = wire::job_info(&v["jobs"]).unwrap();
    let host = info.result.keys().next().unwrap().clone();
    let s = status_of(&info, &host);
    assert_eq!(
        (s.status, s.outcome, s.exit_code),
        (codes::SALT_TIMEOUT, HostOutcome::Timeout, Some(1))
    );
    assert_eq!(s.facts.as_ref().unwrap()["success"], true);
    assert_eq!(s.facts.as_ref().unwrap()["retcode"], 0);
}

#[test]
fn a_string_return_is_a_salt_error_with_the_string_as_log() {
    let v = capture("30-no-such-function.json");
    let info = wire::job_info(&v["jobs"]).unwrap();
    let s = status_of(&info, "host-a");
    assert_eq!(
        (s.status, s.outcome, s.exit_code),
        (codes::SALT_ERROR, HostOutcome::Failed, Some(1))
    );
    assert_eq!(
        wire::log_of(&info.result["host-a"]),
        "'cmd.nosuch' is not available.\n"
    );
}

#[test]
fn an_expired_or_unknown_jid_is_not_found() {
    let v = capture("50-api-misc.json");
    let e = wire::job_info(&v["GET /jobs/<unknown jid>"]["body"]).unwrap_err();
    assert_eq!(e.class, ErrorClass::NotFound);
    assert!(
        e.message
            .contains("Cannot contact returner or no job with this jid"),
        "{e}"
    );
}

#[test]
fn requested_hosts_come_from_jobwatchs_metadata() {
    let v = capture("30-list-with-unknown.json");
    let mut body = v["jobs"].clone();
    body["info"][0]["Metadata"] =
        json!({"jobwatch_task": "t", "jobwatch_hosts": ["host-a", "host-zzz"]});
    let info = wire::job_info(&body).unwrap();
    assert_eq!(info.requested, ["host-a", "host-zzz"]);
    assert_eq!(info.minions, ["host-a"], "Salt drops an id without a key");
}

#[test]
fn submit_answers_a_jid_or_nothing() {
    let (jid, minions) = wire::submitted("local_async", &capture("10-submit-local_async.json"))
        .unwrap()
        .unwrap();
    assert_eq!(jid.len(), 20);
    assert_eq!(minions.len(), 3);
    assert_eq!(
        wire::submitted("local_async", &capture("30-glob-no-match-submit.json")).unwrap(),
        None
    );
    let refused = wire::submitted(
        "local_async",
        &json!({"return": ["Client disabled: 'local_async'."]}),
    )
    .unwrap_err();
    assert_eq!(refused.class, ErrorClass::Permanent);
    assert!(refused.message.contains("Client disabled"));
}

#[test]
fn probe_answers_tell_running_from_silent() {
    let v = capture("45-kill-during-job.json");
    let result = v["probe find_job GET /jobs after 3s"][0].clone();
    let mut info = wire::JobInfo {
        minions: vec![],
        requested: vec![],
        result: Default::default(),
    };
    for (host, ret) in result.as_object().unwrap() {
        info.result.insert(
            host.clone(),
            json!({"return": ret, "retcode": 0, "success": true}),
        );
    }
    info.result.insert(
        "host-d".into(),
        json!({"return": {}, "retcode": 0, "success": true}),
    );
    let hosts: Vec<String> = ["host-a", "host-b", "host-d"].map(String::from).to_vec();
    let answers = wire::probe_answers(&info, &hosts);
    assert_eq!(answers["host-a"], Probe::Silent, "killed minion");
    assert_eq!(answers["host-b"], Probe::Running(3402));
    assert_eq!(answers["host-d"], Probe::NotRunning);
}

#[test]
fn http_answers_are_classified_and_html_is_never_quoted() {
    let html = b"<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0\"><title>401 Unauthorized</title>";
    let e = wire::decode(Answer {
        api: "jobs",
        mutating: false,
        http_status: 401,
        body: html,
    })
    .unwrap_err();
    assert_eq!(e.class, ErrorClass::Permanent);
    assert!(!e.message.contains("DOCTYPE"));
    let e = wire::decode(Answer {
        api: "jobs",
        mutating: false,
        http_status: 403,
        body: html,
    })
    .unwrap_err();
    assert_eq!(e.class, ErrorClass::Permanent);
    assert!(e.message.contains("HTML error page"), "{e}");
    let e = wire::decode(Answer {
        api: "local_async",
        mutating: true,
        http_status: 500,
        body: b"boom",
    })
    .unwrap_err();
    assert!(e.is_transient() && e.maybe_applied);
    let e = wire::decode(Answer {
        api: "local_async",
        mutating: true,
        http_status: 200,
        body: b"{\"ret",
    })
    .unwrap_err();
    assert!(
        e.is_transient() && e.maybe_applied,
        "a garbled answer to a submit may hide a job"
    );
    let e = wire::decode(Answer {
        api: "jobs",
        mutating: false,
        http_status: 503,
        body: b"",
    })
    .unwrap_err();
    assert!(e.is_transient() && !e.maybe_applied);
}

#[test]
fn output_salt_trimmed_is_said_in_words() {
    let entry = json!({"return": {"pid": 1, "retcode": 0, "stdout": "VALUE_TRIMMED", "stderr": ""}, "retcode": 0, "success": true});
    assert!(wire::log_of(&entry).contains("over max_event_size"));
}

#[test]
fn list_jobs_answers_newest_jid_first() {
    let v = json!({"return": [{"20261122014213006811": {}, "20261122014637588764": {}}]});
    assert_eq!(wire::listed_jids(&v).unwrap()[0], "20261122014637588764");
    assert!(
        wire::listed_jids(&json!({"return": [{}]}))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn the_password_never_shows_in_debug_output() {
    let settings = crate::config::salt::SaltSettings {
        name: "salt".into(),
        endpoints: vec!["http://127.0.0.1:8000".parse().unwrap()],
        username: "jobwatch".into(),
        password: secrecy::SecretString::from("pw-Very-Secret-99".to_owned()),
        eauth: "pam".into(),
        request_timeout: std::time::Duration::from_secs(5),
        flow: Default::default(),
        events: true,
    };
    assert!(!format!("{settings:?}").contains("pw-Very-Secret-99"));
    let salt = super::Salt::new(settings).unwrap();
    assert!(!format!("{salt:?}").contains("pw-Very-Secret-99"));
}

#[test]
fn the_vendored_captures_match_the_shared_reference() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = root.join("../shared/reference/salt/captures");
    let read = |dir: &std::path::Path| -> Vec<(std::ffi::OsString, Vec<u8>)> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .map(|e| (e.file_name(), std::fs::read(e.path()).unwrap()))
            .collect();
        files.sort();
        files
    };
    let vendored = read(&root.join("tests/fixtures/salt"));
    assert!(vendored.len() >= 25, "the captures are vendored");
    // The reference sits beside the repository on the machines this was written on.
    if shared.is_dir() {
        assert!(
            vendored == read(&shared),
            "tests/fixtures/salt is out of date with reference/salt/captures"
        );
    }
}

/// The recorded event stream's bytes, cut into chunks of `size` (a stream arrives in pieces).
fn sse_chunks(size: usize) -> Vec<Result<Vec<u8>, std::io::Error>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/salt/80-events-sse.txt");
    std::fs::read(path)
        .unwrap()
        .chunks(size)
        .map(|c| Ok(c.to_vec()))
        .collect()
}

#[tokio::test]
async fn salt_apis_event_stream_gives_one_hint_per_return_of_a_job_jobwatch_submitted() {
    use futures_util::StreamExt as _;
    for size in [7, 100, 1 << 20] {
        let events: Vec<_> = eventsource_stream::Eventsource::eventsource(
            futures_util::stream::iter(sse_chunks(size)),
        )
        .collect()
        .await;
        // new, publish, two returns; then a find_job probe's new, publish and return.
        assert_eq!(events.len(), 7, "chunks of {size}");
        let hints: Vec<_> = events
            .iter()
            .filter_map(|e| super::events::return_hint(&e.as_ref().unwrap().data))
            .collect();
        let job = crate::platform::JobRef::salt("20261130064029079273");
        assert_eq!(
            hints,
            [
                crate::platform::Hint {
                    execution_id: "0190-abc".into(),
                    job: job.clone()
                },
                crate::platform::Hint {
                    execution_id: "0190-abc".into(),
                    job
                },
            ],
            "chunks of {size}"
        );
    }
}

#[test]
fn events_that_are_not_returns_of_jobwatch_jobs_give_no_hint() {
    let hint = super::events::return_hint;
    let ret = |tag: &str, metadata: Value| {
        json!({"tag": tag, "data": {"id": "m1", "return": {}, "metadata": metadata}}).to_string()
    };
    let ours = json!({"jobwatch_task": "jobwatch:disk:0193-x"});
    assert!(hint(&ret("salt/job/2026/ret/m1", ours.clone())).is_some());
    // Another tool's job, a job without metadata, a name not jobwatch's.
    assert!(hint(&ret("salt/job/2026/ret/m1", json!({"other": 1}))).is_none());
    assert!(
        hint(&json!({"tag": "salt/job/2026/ret/m1", "data": {"id": "m1"}}).to_string()).is_none()
    );
    assert!(
        hint(&ret(
            "salt/job/2026/ret/m1",
            json!({"jobwatch_task": "backup:x"})
        ))
        .is_none()
    );
    // Not a return; an empty jid or minion; not JSON; truncated JSON.
    for tag in [
        "salt/job/2026/new",
        "salt/job//ret/m1",
        "salt/job/2026/ret/",
        "salt/auth/ret/x",
    ] {
        assert!(hint(&ret(tag, ours.clone())).is_none(), "{tag}");
    }
    assert!(hint("not json /ret/").is_none());
    let whole = ret("salt/job/2026/ret/m1", ours);
    assert!(hint(&whole[..whole.len() / 2]).is_none());
}
