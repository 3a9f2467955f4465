//! Every documented bk-job body (reference/bkjob/fixtures, vendored under tests/fixtures/bkjob)
//! goes through the adapter's decoder: responses decode to the right data, gateway errors to
//! the right class.

mod common;

use std::path::{Path, PathBuf};

use jobwatch::model::HostOutcome;
use jobwatch::platform::ErrorClass;
use jobwatch::platform::bkjob::wire::{
    self, Answer, BatchLogData, IpLogData, ListData, OperateData, StatusData, SubmitData,
};
use serde_json::Value;

/// The shared reference when this checkout sits beside it, else the vendored copy.
fn fixture_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![root.join("tests/fixtures/bkjob")];
    let shared = root.join("../shared/reference/bkjob/fixtures");
    if shared.is_dir() {
        dirs.push(shared);
    }
    dirs
}

fn fixtures(dir: &Path) -> Vec<(String, Vec<u8>)> {
    common::bkjob_fixtures(dir)
}

fn answer<'a>(api: &'static str, http_status: u16, body: &'a [u8]) -> Answer<'a> {
    Answer {
        api,
        mutating: false,
        http_status,
        rate_limit_reset: None,
        body,
    }
}

#[test]
fn the_vendored_fixtures_match_the_shared_reference() {
    let dirs = fixture_dirs();
    if let Some(shared) = dirs.get(1) {
        assert_eq!(
            fixtures(&dirs[0]),
            fixtures(shared),
            "tests/fixtures/bkjob is out of date with reference/bkjob/fixtures"
        );
    }
}

#[test]
fn every_response_fixture_decodes() {
    for dir in fixture_dirs() {
        let all = fixtures(&dir);
        assert!(
            all.len() >= 30,
            "expected the documented fixtures in {}",
            dir.display()
        );
        let mut responses = 0;
        for (name, body) in &all {
            if name.contains(".request.") || name.starts_with("callback_protocol") {
                continue;
            }
            responses += 1;
            if name.starts_with("apigw_gateway_error") {
                let status: u16 = name
                    .rsplit('_')
                    .next()
                    .unwrap()
                    .trim_end_matches(".json")
                    .parse()
                    .unwrap();
                let e =
                    wire::decode::<Value>(answer("fast_execute_script", status, body)).unwrap_err();
                let expected = if status == 429 {
                    ErrorClass::Transient
                } else {
                    ErrorClass::Permanent
                };
                assert_eq!(e.class, expected, "{name}");
                assert!(
                    e.code.is_some_and(|c| (1_600_000..1_700_000).contains(&c)),
                    "{name}: {e}"
                );
                continue;
            }
            let api = name.split('.').next().unwrap();
            match api {
                "fast_execute_script" => {
                    let d: SubmitData =
                        wire::decode(answer("fast_execute_script", 200, body)).unwrap();
                    assert_eq!(
                        (d.job_instance_id, d.step_instance_id),
                        (10000, Some(10001)),
                        "{name}"
                    );
                }
                "get_job_instance_status" => {
                    let d: StatusData =
                        wire::decode(answer("get_job_instance_status", 200, body)).unwrap();
                    let snap = d.into_snapshot(None);
                    assert!(snap.finished, "{name}");
                    assert_eq!(snap.status, 4, "{name}");
                    assert_eq!(snap.label.en, "Failed");
                    assert_eq!(snap.step_instance_id, Some(75));
                    assert_eq!(snap.hosts.len(), 1);
                    assert_eq!(snap.hosts[0].status, 9);
                    assert_eq!(snap.hosts[0].outcome, HostOutcome::Success);
                    assert_eq!(snap.hosts[0].exit_code, Some(0));
                    // The BlueKing 6.1 shape has no bk_host_id; the host is still named.
                    assert!(snap.hosts[0].host.ip.is_some());
                }
                "batch_get_job_instance_ip_log" => {
                    let d: BatchLogData =
                        wire::decode(answer("batch_get_job_instance_ip_log", 200, body)).unwrap();
                    let logs = d.into_logs();
                    assert_eq!(logs.len(), 2, "{name}");
                    assert_eq!(logs[0].host.bk_host_id, Some(101));
                    assert!(
                        logs[0].content.contains("job_start")
                            || logs[0].content.contains("FileName"),
                        "{name}"
                    );
                }
                "get_job_instance_ip_log" => {
                    let d: IpLogData =
                        wire::decode(answer("get_job_instance_ip_log", 200, body)).unwrap();
                    assert_eq!(d.host.bk_host_id, Some(101), "{name}");
                    assert!(
                        d.log_content.is_some() || d.file_logs.is_some_and(|f| f.len() == 2),
                        "{name}"
                    );
                }
                "get_job_instance_list" => {
                    let d: ListData =
                        wire::decode(answer("get_job_instance_list", 200, body)).unwrap();
                    let items = d.data.unwrap();
                    // The docs use `id`/`task_status`; the code `job_instance_id`/`status` (API.md §11.2).
                    assert_eq!(items[0].job_instance_id(), Some(100), "{name}");
                    assert_eq!(items[0].status(), Some(3), "{name}");
                    assert_eq!(d.total, Some(1));
                }
                "operate_job_instance" => {
                    let d: OperateData =
                        wire::decode(answer("operate_job_instance", 200, body)).unwrap();
                    assert_eq!(d.job_instance_id, Some(100), "{name}");
                }
                other => panic!("fixture {name}: no decoder for API {other}"),
            }
        }
        assert!(
            responses >= 20,
            "{} response fixtures in {}",
            responses,
            dir.display()
        );
    }
}
