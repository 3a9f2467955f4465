//! bk-job callbacks end to end: the real daemon, the emulator sending callbacks as bk-job
//! does (with its faults), polling slowed to a 5-minute safety net. A callback is a hint:
//! it makes the end known at once; a missing, forged, duplicated, late or wrong-id one
//! changes nothing.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Daemon, ended_ms, get_json, metric, post, runtime, wait_ended};
use serde_json::Value;

/// One host that runs `duration`, and the emulator's `[callbacks]` table.
fn emulator(duration: &str, callbacks: &str) -> common::Platform {
    common::emulator(&format!(
        "[[hosts]]\nbk_host_id = 101\nip = \"10.0.0.1\"\nduration = \"{duration}\"\nstatus = 9\nlog = \"done\\n\"\n{callbacks}"
    ))
}

/// A daemon config: the emulator's `bk` platform with `callbacks = true`, callbacks taken
/// on a listener of their own, and the check `job` with `poll` settings.
fn config(dir: &Path, platform: &common::Platform, job: &str, poll: &str) -> (PathBuf, u16) {
    let callback_port = common::free_port();
    let bk = bkjob_emulator::jobwatch_platform_toml(
        "bk",
        &[platform.emulator.apigw_url()],
        "apigw",
        "request_timeout = \"3s\"\ncallbacks = true",
    );
    let text = format!(
        "{daemon}\n[callbacks]\npublic_url = \"http://127.0.0.1:{callback_port}\"\nlisten = \"127.0.0.1:{callback_port}\"\n{bk}\n[[checks]]\nname = \"job\"\nplatform = \"bk\"\nscript = \"true\"\nhosts = [101]\naccount_alias = \"root\"\n{job}\n[checks.poll]\nfirst_poll = \"200ms\"\ninterval = \"500ms\"\n{poll}\n",
        daemon = bkjob_emulator::jobwatch_daemon_toml(&dir.join("data")),
    );
    let path = dir.join("jobwatch.toml");
    std::fs::write(&path, text).unwrap();
    (path, callback_port)
}

/// Starts a daemon on a fresh config (see [`config`]) and runs the check `job` once to its
/// end: the emulator, the daemon, the ended execution.
fn run_job(
    platform: &common::Platform,
    job: &str,
    poll: &str,
) -> (Daemon, Value, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = config(dir.path(), platform, job, poll);
    let daemon = Daemon::start(&config);
    let e = runtime().block_on(async {
        let id = start_job(&daemon).await;
        wait_ended(&daemon.base, &id, Duration::from_secs(30)).await
    });
    assert_eq!(e["state"], "succeeded", "{e:#}");
    (daemon, e, dir)
}

async fn start_job(daemon: &Daemon) -> String {
    common::start_execution(&daemon.base, "job").await
}

/// Execution `id` once its logs are fetched too (an ended execution's logs are fetched after
/// its end is recorded), at most 10 s on.
async fn settled(base: &str, id: &str) -> Value {
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, r) = get_json(base, &format!("/v1/executions/{id}")).await;
        let ended = r["state"] != "pending" && r["state"] != "running";
        if (ended && r["logs_pending"] != true) || std::time::Instant::now() > until {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn with_callbacks_a_jobs_end_is_stored_within_a_second_of_its_callback() {
    // Polls: 0.2 s, then every 5 minutes: only the callback can tell the end of a 5 s job
    // soon.
    let platform = emulator("5s", "");
    let (daemon, e, _dir) = run_job(&platform, "timeout = \"10m\"", "");
    let sent = platform.emulator.state().stats.callbacks();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        (sent[0].content_type, sent[0].answer),
        ("application/json", Some(200))
    );
    // (Both times are whole milliseconds of the wall clock: a few ms either way.)
    let late = ended_ms(&e) - sent[0].at_ms;
    assert!(
        (-3..=1000).contains(&late),
        "stored {late} ms after the callback"
    );
    assert!(e["polls"].as_u64().unwrap() <= 5, "{e:#}");
    let accepted = runtime().block_on(metric(
        &daemon.base,
        "jobwatch_callbacks_total{result=\"accepted\"}",
    ));
    assert_eq!(accepted, 1.0);
    // The end is still read from the status API, then the logs (fetched once the end is
    // recorded).
    let id = e["execution_id"].as_str().unwrap();
    let logged = runtime().block_on(settled(&daemon.base, id));
    assert_eq!(logged["hosts"][0]["log"], "done\n", "{logged:#}");
}

#[test]
fn with_every_callback_dropped_the_safety_net_still_finds_the_end() {
    let platform = emulator("2s", "[callbacks]\ndrop = true\n");
    run_job(&platform, "timeout = \"10m\"", "safety_interval = \"3s\"");
    assert!(platform.emulator.state().stats.callbacks().is_empty());
}

#[test]
fn a_callback_naming_another_job_instance_changes_nothing() {
    // The job ends at 5 s; the only poll after the callback is the one at the deadline
    // (12 s): had the wrong-id callback been taken, the end would be known at once.
    let platform = emulator("5s", "[callbacks]\nwrong_job_id = true\n");
    let (_daemon, e, _dir) = run_job(&platform, "timeout = \"10s\"", "deadline_slack = \"2s\"");
    let sent = platform.emulator.state().stats.callbacks();
    assert_eq!(sent.len(), 1);
    let waited = ended_ms(&e) - sent[0].at_ms;
    assert!(
        waited >= 3000,
        "the end was known {waited} ms after a callback about another job"
    );
}

#[test]
fn duplicated_late_and_forged_callbacks_change_nothing() {
    let platform = emulator("1500ms", "[callbacks]\nduplicates = 2\ndelay = \"300ms\"\n");
    let dir = tempfile::tempdir().unwrap();
    let (config, port) = config(dir.path(), &platform, "timeout = \"10m\"", "");
    let daemon = Daemon::start(&config);
    runtime().block_on(async {
        let id = start_job(&daemon).await;
        // Forged while it runs: a wrong token, an unknown execution.
        let callbacks = format!("http://127.0.0.1:{port}");
        for path in [
            format!("/v1/callbacks/bkjob/{id}/00000000000000000000000000000000"),
            "/v1/callbacks/bkjob/no-such-execution/00000000000000000000000000000000".into(),
        ] {
            let (status, _) = post(
                &callbacks,
                &path,
                r#"{"job_instance_id": 1, "status": 3}"#,
                None,
            )
            .await;
            assert_eq!(status, 200, "answered 200 whatever it is");
        }
        // (Submitted or not yet: a busy machine may not have sent the submit by now.)
        let (_, running) = get_json(&daemon.base, &format!("/v1/executions/{id}")).await;
        assert!(
            running["state"] == "running" || running["state"] == "pending",
            "a forged callback ends nothing: {running:#}"
        );
        wait_ended(&daemon.base, &id, Duration::from_secs(20)).await;
        let e = settled(&daemon.base, &id).await;
        assert_eq!(e["state"], "succeeded", "{e:#}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let sent = platform.emulator.state().stats.callbacks();
        assert_eq!(sent.len(), 3, "the callback and two copies: {sent:?}");
        // Late: the right URL again, after the end, as JSON and as bk-job's form retry.
        let url = sent[0].url.clone();
        let body = sent[0].body.clone();
        for content_type in ["application/json", "application/x-www-form-urlencoded"] {
            let response = common::client()
                .post(&url)
                .header("Content-Type", content_type)
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 200);
        }
        let (_, after) = get_json(&daemon.base, &format!("/v1/executions/{id}")).await;
        assert_eq!(after, e, "nothing changed after the end");
        assert_eq!(
            metric(&daemon.base, "jobwatch_callbacks_total{result=\"forged\"}").await,
            2.0
        );
        assert_eq!(
            metric(
                &daemon.base,
                "jobwatch_callbacks_total{result=\"accepted\"}"
            )
            .await,
            5.0
        );
        // The job was submitted once, with its callback URL.
        assert_eq!(platform.emulator.state().jobs_created(), 1);
        assert!(
            url.starts_with(&format!("{callbacks}/v1/callbacks/bkjob/{id}/")),
            "{url}"
        );
    });
}

#[test]
fn the_documented_body_shape_is_taken_too() {
    let platform = emulator("5s", "[callbacks]\nlist_name = \"step_instance_list\"\n");
    let (_daemon, e, _dir) = run_job(&platform, "timeout = \"10m\"", "");
    let sent = platform.emulator.state().stats.callbacks();
    assert!(
        sent[0].body.contains("\"step_instance_list\""),
        "{}",
        sent[0].body
    );
    // (Both times are whole milliseconds of the wall clock: a few ms either way.)
    let late = ended_ms(&e) - sent[0].at_ms;
    assert!(
        (-3..=1000).contains(&late),
        "stored {late} ms after the callback"
    );
}

#[test]
fn a_callback_sent_before_the_status_api_shows_the_end_costs_about_one_interval() {
    // The callback comes at 6.5 s, 1.5 s before the end; the poll it asks for still sees the
    // job running, and the fast polls that follow it see the end — not the 5-minute safety
    // net.
    let platform = emulator("8s", "[callbacks]\nearly = \"1500ms\"\n");
    let (_daemon, e, _dir) = run_job(&platform, "timeout = \"10m\"", "");
    let sent = platform.emulator.state().stats.callbacks();
    let late = ended_ms(&e) - sent[0].at_ms;
    assert!(
        (1000..=5000).contains(&late),
        "stored {late} ms after an early callback"
    );
}

#[test]
fn a_job_one_and_a_half_safety_intervals_long_costs_four_platform_requests() {
    // A 10-minute job with the default 5-minute safety net, scaled down: a 3 s job, a 2 s
    // safety interval. The first poll, one safety poll, the callback's poll, one log fetch.
    let platform = emulator("3s", "");
    run_job(&platform, "timeout = \"10m\"", "safety_interval = \"2s\"");
    let stats = &platform.emulator.state().stats;
    let (polls, logs) = (
        stats.requests("get_job_instance_status"),
        stats.requests("batch_get_job_instance_ip_log"),
    );
    assert_eq!(stats.requests("fast_execute_script"), 1);
    assert!(polls + logs <= 4, "{polls} polls and {logs} log fetches");
}

#[test]
fn jobwatch_exec_on_a_platform_with_callbacks_keeps_the_normal_pace() {
    // `exec` has no listener: no callback_url is sent, and its polls are not slowed to the
    // daemon's safety interval.
    let platform = emulator("2s", "");
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = config(dir.path(), &platform, "timeout = \"10m\"", "");
    let (code, report, _) = common::exec_json(&config, "job");
    assert_eq!(
        (code, report["state"].as_str()),
        (0, Some("succeeded")),
        "{report:#}"
    );
    let took = report["duration_seconds"].as_f64().unwrap();
    assert!(took < 5.0, "a 2 s job took {took} s");
    assert!(
        platform.emulator.state().stats.callbacks().is_empty(),
        "no callback_url sent"
    );
}

#[test]
fn a_watched_job_keeps_the_normal_pace_on_a_platform_with_callbacks() {
    // A job started elsewhere carries no callback URL of ours: its polls are not slowed to
    // the safety interval.
    let platform = emulator("2s", "");
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = config(dir.path(), &platform, "timeout = \"10m\"", "");
    let daemon = Daemon::start(&config);
    let state = platform.emulator.state();
    let hosts = state.scenario().hosts.clone();
    let job = state.seed_job("started elsewhere", Duration::from_secs(600), hosts);
    runtime().block_on(async {
        let body = format!(r#"{{"platform": "bk", "job_instance_id": {job}, "check": "job"}}"#);
        let (status, accepted) =
            post(&daemon.base, "/v1/watches", &body, Some(common::TOKEN)).await;
        assert_eq!(status, 202, "{accepted}");
        let id = accepted["execution_id"].as_str().unwrap();
        let e = wait_ended(&daemon.base, id, Duration::from_secs(15)).await;
        assert_eq!(e["state"], "succeeded", "{e:#}");
    });
}
