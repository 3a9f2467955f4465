//! `jobwatch exec` against the bk-job emulator, through both doors: what a user sees for
//! mixed host results, trigger failures, rate limits, lost instances, deadlines, faults,
//! failover and interruption.

mod common;

use common::*;
use serde_json::Value;

fn mixed_hosts_report_every_host(door: &str) {
    let platform = emulator(THREE_HOSTS);
    let setup = config_for(&platform, door, &check("mixed", "[101, 102, 103]", ""));
    let (code, report, _) = exec_json(&setup.config, "mixed");
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["state"], "failed");
    assert_eq!(report["trigger_status"], "triggered");
    assert_eq!(report["job_status"], 4);
    let expected: [(u64, i64, &str, &str, i64, &str); 3] = [
        (101, 9, "Success", "success", 0, "all checks passed"),
        (
            102,
            310,
            "Abnormal Agent",
            "agent_error",
            0,
            "heartbeat lost",
        ),
        (
            103,
            104,
            "Non-zero Exit Code",
            "failed",
            3,
            "/data is 97% full",
        ),
    ];
    for (id, status, label, outcome, exit_code, log) in expected {
        let h = host(&report, id);
        assert_eq!(h["status"], status, "{h:#}");
        assert_eq!(h["status_label"], label);
        assert_eq!(h["outcome"], outcome);
        assert_eq!(h["exit_code"], exit_code);
        assert!(h["log"].as_str().unwrap().contains(log), "{h:#}");
        assert_eq!(h["log_error"], Value::Null);
        assert_eq!(h["ip"], format!("10.0.0.{}", id - 100));
    }
    let reason = report["reason"].as_str().unwrap();
    assert!(reason.contains("agent_error 1: 0:10.0.0.2"), "{reason}");
    assert!(
        reason.contains("104 Non-zero Exit Code, exit 3"),
        "{reason}"
    );
    assert_eq!(platform.emulator.state().jobs_created(), 1);
}

#[test]
fn apigw_three_hosts_9_310_104_exit_1_with_every_host_and_log() {
    mixed_hosts_report_every_host("apigw");
}

#[test]
fn esb_three_hosts_9_310_104_exit_1_with_every_host_and_log() {
    mixed_hosts_report_every_host("esb");
}

#[test]
fn hosts_named_by_cloud_and_ip_succeed() {
    let platform = emulator(
        THREE_HOSTS
            .replace("status = 310", "status = 9")
            .replace("status = 104", "status = 3")
            .as_str(),
    );
    let setup = config_for(
        &platform,
        "apigw",
        &check("ok", r#"["0:10.0.0.1", "0:10.0.0.2", "0:10.0.0.3"]"#, ""),
    );
    let (code, report, _) = exec_json(&setup.config, "ok");
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["state"], "succeeded");
    // The host keeps the id the platform reported.
    assert_eq!(host(&report, 101)["host"], "0:10.0.0.1 #101");
}

#[test]
fn unknown_account_is_a_trigger_failure_with_the_platforms_code_and_message() {
    let platform = emulator(THREE_HOSTS);
    let setup = config_for(
        &platform,
        "apigw",
        &check("acct", "[101]", "").replace("\"root\"", "\"nobody\""),
    );
    let (code, report, _) = exec_json(&setup.config, "acct");
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(report["state"], "trigger_failed");
    assert_eq!(report["trigger_status"], "trigger_failed");
    assert_eq!(report["trigger_code"], 1244003);
    assert_eq!(report["trigger_message"], "账号[nobody]不存在");
    assert_eq!(report["job_instance_id"], Value::Null);
    assert_eq!(platform.emulator.state().jobs_created(), 0);
}

#[test]
fn host_unknown_to_the_cmdb_is_a_trigger_failure() {
    let platform = emulator(THREE_HOSTS);
    let setup = config_for(&platform, "esb", &check("cmdb", r#"["0:10.9.9.9"]"#, ""));
    let (code, report, _) = exec_json(&setup.config, "cmdb");
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(report["trigger_code"], 1243052);
}

#[test]
fn wrong_secret_is_refused_by_the_gateway_and_the_secret_never_shows() {
    let platform = emulator(&format!(
        "[auth]\napp_code = \"jobwatch\"\napp_secret = \"another\"\n{THREE_HOSTS}"
    ));
    let setup = config_for(&platform, "apigw", &check("auth", "[101]", ""));
    let (code, report, stderr) = exec_json(&setup.config, "auth");
    assert_eq!(code, 2, "{report:#}\n{stderr}");
    assert_eq!(report["trigger_code"], 1640001);
    assert!(
        report["trigger_message"]
            .as_str()
            .unwrap()
            .contains("INVALID_ARGS"),
        "{report:#}"
    );
}

#[test]
fn a_429_burst_then_success_ends_succeeded() {
    let scenario = format!(
        r#"{}
[[faults.rules]]
api = "fast_execute_script"
kind = "rate_limit"
count = 2
reset_seconds = 0
[[faults.rules]]
api = "get_job_instance_status"
kind = "rate_limit"
count = 4
reset_seconds = 0
"#,
        THREE_HOSTS
            .replace("status = 310", "status = 9")
            .replace("status = 104", "status = 9")
    );
    let platform = emulator(&scenario);
    let setup = config_for(&platform, "apigw", &check("burst", "[101, 102, 103]", ""));
    let (code, report, _) = exec_json(&setup.config, "burst");
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["state"], "succeeded");
    assert_eq!(
        platform.emulator.state().jobs_created(),
        1,
        "a 429 never reached bk-job: one submit only"
    );
    assert!(
        platform
            .emulator
            .state()
            .stats
            .requests("fast_execute_script")
            >= 3
    );
}

#[test]
fn an_instance_that_disappears_ends_lost() {
    let scenario = format!(
        "{THREE_HOSTS}\n[[faults.rules]]\napi = \"get_job_instance_status\"\nkind = \"instance_not_found\"\nnth = 2\ncount = 0\n"
    );
    let platform = emulator(&scenario.replace("duration = \"250ms\"", "duration = \"5s\""));
    let setup = config_for(&platform, "apigw", &check("gone", "[101, 102, 103]", ""));
    let (code, report, _) = exec_json(&setup.config, "gone");
    assert_eq!(code, 3, "{report:#}");
    assert_eq!(report["state"], "lost");
    assert!(
        report["reason"].as_str().unwrap().contains("1244006"),
        "{report:#}"
    );
}

#[test]
fn a_job_past_its_deadline_ends_timed_out_with_the_last_seen_host_states() {
    // Host 103 is cut off: the platform never ends it, not even at the job's timeout.
    let platform = emulator(&THREE_HOSTS.replace("exit_code = 3", "exit_code = 3\nhang = true"));
    let extra = "";
    let checks = check("stuck", "[101, 102, 103]", extra)
        .replace("timeout = \"30s\"", "timeout = \"1s\"")
        .replace(
            "max_interval = \"300ms\"",
            "max_interval = \"300ms\"\ndeadline_slack = \"500ms\"\nstraggler_after = \"300ms\"",
        );
    let setup = config_for(&platform, "apigw", &checks);
    let (code, report, _) = exec_json(&setup.config, "stuck");
    assert_eq!(code, 3, "{report:#}");
    assert_eq!(report["state"], "timed_out");
    let reason = report["reason"].as_str().unwrap();
    assert!(
        reason.contains("running 1: 0:10.0.0.3 #103 (7 Running)"),
        "{reason}"
    );
    assert_eq!(host(&report, 103)["status"], 7);
    assert_eq!(host(&report, 101)["status"], 9);
    assert!(report["duration_seconds"].as_f64().unwrap() >= 1.5);
    let log = report["condition_log"].as_array().unwrap();
    assert!(
        log.iter()
            .any(|c| c["kind"] == "stragglers"
                && c["hosts"] == serde_json::json!(["0:10.0.0.3 #103"])),
        "the cut-off host was named as a straggler: {log:#?}"
    );
}

#[test]
fn max_attempts_gives_up_as_timed_out_and_says_so() {
    let platform = emulator(&THREE_HOSTS.replace("duration = \"250ms\"", "duration = \"10s\""));
    let checks = check("classic", "[101, 102, 103]", "").replace(
        "max_interval = \"300ms\"",
        "max_interval = \"300ms\"\nmax_attempts = 3",
    );
    let setup = config_for(&platform, "apigw", &checks);
    let (code, report, _) = exec_json(&setup.config, "classic");
    assert_eq!(code, 3, "{report:#}");
    assert_eq!(report["polls"], 3);
    assert!(
        report["reason"]
            .as_str()
            .unwrap()
            .contains("gave up after 3 polls"),
        "{report:#}"
    );
}

#[test]
fn faults_on_polls_never_fail_the_job() {
    let scenario = format!(
        r#"{THREE_HOSTS}
[[faults.rules]]
api = "get_job_instance_status"
kind = "http_502"
count = 2
[[faults.rules]]
api = "get_job_instance_status"
kind = "malformed_json"
nth = 3
count = 2
[[faults.rules]]
api = "get_job_instance_status"
kind = "connection_reset"
nth = 5
count = 2
[[faults.rules]]
api = "get_job_instance_status"
kind = "envelope_error"
code = 1240002
nth = 7
[[faults.rules]]
api = "batch_get_job_instance_ip_log"
kind = "http_503"
"#
    );
    let platform = emulator(&scenario);
    let setup = config_for(&platform, "apigw", &check("faults", "[101, 102, 103]", ""));
    let (code, report, _) = exec_json(&setup.config, "faults");
    // The job really failed (310 and 104): that, and not any fault, is what is reported.
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(host(&report, 101)["status"], 9);
    assert_eq!(host(&report, 103)["exit_code"], 3);
    assert!(
        host(&report, 103)["log"]
            .as_str()
            .unwrap()
            .contains("97% full"),
        "logs fetched after a 503: {report:#}"
    );
    assert!(
        platform
            .emulator
            .state()
            .stats
            .requests("get_job_instance_status")
            >= 8
    );
}

#[test]
fn a_submit_whose_answer_is_lost_is_reconciled_not_resubmitted() {
    let scenario = format!(
        "{THREE_HOSTS}\n[[faults.rules]]\napi = \"fast_execute_script\"\nkind = \"connection_reset\"\nafter_effect = true\n"
    );
    let platform = emulator(&scenario);
    let setup = config_for(
        &platform,
        "apigw",
        &check("reconcile", "[101, 102, 103]", ""),
    );
    let (code, report, _) = exec_json(&setup.config, "reconcile");
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["trigger_status"], "triggered");
    assert_eq!(
        platform.emulator.state().jobs_created(),
        1,
        "the job must not be submitted twice"
    );
    assert_eq!(
        platform
            .emulator
            .state()
            .stats
            .requests("fast_execute_script"),
        1
    );
    assert!(
        platform
            .emulator
            .state()
            .stats
            .requests("get_job_instance_list")
            >= 1
    );
    assert_eq!(
        platform.emulator.state().job_names()[0],
        report["task_name"]
    );
}

#[test]
fn a_submit_refused_before_taking_effect_is_retried_once_it_is_known_absent() {
    let scenario = format!(
        "{THREE_HOSTS}\n[[faults.rules]]\napi = \"fast_execute_script\"\nkind = \"http_504\"\n"
    );
    let platform = emulator(&scenario);
    let setup = config_for(&platform, "esb", &check("retry", "[101, 102, 103]", ""));
    let (code, report, _) = exec_json(&setup.config, "retry");
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(platform.emulator.state().jobs_created(), 1);
    assert_eq!(
        platform
            .emulator
            .state()
            .stats
            .requests("fast_execute_script"),
        2
    );
}

#[test]
fn a_dead_first_endpoint_fails_over_to_the_next() {
    let platform = emulator(THREE_HOSTS);
    // A port that was free a moment ago: connections are refused.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let endpoints = [
        format!("http://{dead}/api/bk-job/prod"),
        platform.emulator.apigw_url(),
    ];
    let setup = config_with_endpoints(
        &endpoints,
        "apigw",
        &check("failover", "[101, 102, 103]", ""),
    );
    let (code, report, _) = exec_json(&setup.config, "failover");
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["failed_polls"], 0, "{report:#}");
    assert_eq!(host(&report, 102)["status"], 310);
}

#[test]
fn logs_are_fetched_in_batches_of_at_most_500_hosts() {
    let mut scenario = String::new();
    let mut ids = Vec::new();
    for i in 0..1100u64 {
        let status = if i % 100 == 7 { 104 } else { 9 };
        scenario.push_str(&format!(
            "[[hosts]]\nbk_host_id = {}\nip = \"10.1.{}.{}\"\nduration = \"100ms\"\nstatus = {status}\nexit_code = {}\nlog = \"host {i}\\n\"\n",
            1000 + i,
            i / 250,
            i % 250,
            u64::from(status != 9)
        ));
        ids.push((1000 + i).to_string());
    }
    let platform = emulator(&scenario);
    let setup = config_for(
        &platform,
        "apigw",
        &check("fleet", &format!("[{}]", ids.join(", ")), ""),
    );
    let (code, report, _) = exec_json(&setup.config, "fleet");
    assert_eq!(code, 1);
    let hosts = report["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 1100);
    assert!(
        hosts
            .iter()
            .all(|h| h["log"].as_str().unwrap().starts_with("host ")),
        "every host has its log"
    );
    assert_eq!(
        platform
            .emulator
            .state()
            .stats
            .requests("batch_get_job_instance_ip_log"),
        3
    );
    assert!(
        report["reason"]
            .as_str()
            .unwrap()
            .contains("11 of 1100 hosts"),
        "{}",
        report["reason"]
    );
}

#[test]
fn sigterm_terminates_the_job_and_reports_cancelled() {
    let platform = emulator(&THREE_HOSTS.replace("exit_code = 3", "exit_code = 3\nhang = true"));
    let setup = config_for(
        &platform,
        "apigw",
        &check("interrupt", "[101, 102, 103]", ""),
    );
    let child = jobwatch_bk()
        .args(["exec", "--config"])
        .arg(&setup.config)
        .args(["--check", "interrupt", "--output", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the job is being followed (the emulator has seen status polls), then SIGTERM.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while platform
        .emulator
        .state()
        .stats
        .requests("get_job_instance_status")
        < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "jobwatch never polled"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let (code, report, _) = parse(child.wait_with_output().unwrap());
    assert_eq!(code, 130, "{report:#}");
    assert_eq!(report["state"], "cancelled");
    assert_eq!(
        report["job_status"], 11,
        "the platform confirmed the terminate: {report:#}"
    );
    assert_eq!(host(&report, 103)["status"], 403);
    assert_eq!(
        platform
            .emulator
            .state()
            .stats
            .requests("operate_job_instance"),
        1
    );
}

#[test]
fn the_trigger_failure_stories_exit_2_with_the_platforms_code_and_transient_ones_are_retried() {
    let platform = emulator(include_str!(
        "../crates/bkjob-emulator/scenarios/trigger-failures.toml"
    ));
    let checks = [
        check("invalid", "[101]", ""),
        check("retried", "[101]", ""),
        check("account", "[101]", "").replace("\"root\"", "\"nobody\""),
        check("cmdb", r#"["0:10.9.9.9"]"#, ""),
    ]
    .join("\n");
    let setup = config_for(&platform, "apigw", &checks);
    // 1st submit: hosts not in the business.
    let (code, report, _) = exec_json(&setup.config, "invalid");
    assert_eq!(
        (code, &report["trigger_code"]),
        (2, &Value::from(1244002)),
        "{report:#}"
    );
    assert!(
        report["reason"].as_str().unwrap().contains("主机无效"),
        "{report:#}"
    );
    // 2nd submit: an internal error, retried; the 3rd goes through.
    let (code, report, _) = exec_json(&setup.config, "retried");
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["trigger_status"], "triggered");
    let (code, report, _) = exec_json(&setup.config, "account");
    assert_eq!(
        (code, &report["trigger_code"]),
        (2, &Value::from(1244003)),
        "{report:#}"
    );
    let (code, report, _) = exec_json(&setup.config, "cmdb");
    assert_eq!(
        (code, &report["trigger_code"]),
        (2, &Value::from(1243052)),
        "{report:#}"
    );
    assert_eq!(platform.emulator.state().jobs_created(), 1);
}

/// `config.example.toml` with its commented bk-job platform and collector check uncommented,
/// as the README tells a user to, and the endpoint filled in.
fn uncommented_example(endpoint: &str) -> String {
    let text = include_str!("../config.example.toml");
    let mut out = Vec::new();
    let mut in_block = false;
    let mut previous = "";
    for line in text.lines() {
        let starts_block = line == "# [platforms.bk]"
            || (line == "# [[checks]]" && previous.contains("collector check"));
        if starts_block {
            in_block = true;
        }
        if in_block && !line.starts_with("# ") {
            in_block = false;
        }
        out.push(if in_block {
            line.trim_start_matches("# ").to_owned()
        } else {
            line.to_owned()
        });
        previous = line;
    }
    out.join("\n")
        .replace("https://bkapi.example.com/api/bk-job/prod", endpoint)
}

#[test]
fn the_readme_bk_example_works_when_uncommented() {
    let platform = emulator(THREE_HOSTS);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("my.toml");
    let text = uncommented_example(&platform.emulator.apigw_url())
        .replace("./data", &dir.path().join("data").display().to_string());
    assert!(text.contains("\n[platforms.bk]\n"), "{text}");
    assert!(text.contains("\nname = \"collector-check\"\n"), "{text}");
    std::fs::write(&config, text).unwrap();
    // From the repository root, as in the README (script_file is relative to it).
    let root = env!("CARGO_MANIFEST_DIR");
    let check = jobwatch_bk()
        .current_dir(root)
        .args(["config", "check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "{stderr}");
    let out = jobwatch_bk()
        .current_dir(root)
        .args(["exec", "--config"])
        .arg(&config)
        .args(["--check", "collector-check", "--output", "json"])
        .output()
        .unwrap();
    let (code, report, stderr) = parse(out);
    assert_eq!(
        report["trigger_status"], "triggered",
        "{report:#}\n{stderr}"
    );
    assert_eq!(
        code, 1,
        "the emulator's hosts end 9, 310 and 104: {report:#}"
    );
    assert_eq!(report["hosts"].as_array().unwrap().len(), 3);
}
