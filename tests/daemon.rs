//! `jobwatch run` as a user runs it: a real daemon process with a real SQLite file, the bk-job
//! emulator in this process, HTTP from outside, signals and `kill -9`.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, SECRET, TOKEN, client, get_json, post, runtime};
use serde_json::Value;

fn write_config(dir: &Path, emulator: &common::Platform, checks: &str) -> PathBuf {
    let path = dir.join("jobwatch.toml");
    let platform = bkjob_emulator::jobwatch_platform_toml(
        "bk",
        &[emulator.emulator.apigw_url()],
        "apigw",
        "request_timeout = \"3s\"\nmax_requests_per_second = 2000\nmax_concurrent_requests = 64",
    );
    let text = format!(
        r#"
{daemon}
{platform}
[platforms.local]
kind = "local"

# Declared (its metric series exist) but routed nothing: no route names it.
[alerts.receivers.ops-webhook]
type = "webhook"
url = "http://127.0.0.1:9/unused"

{checks}
"#,
        daemon = bkjob_emulator::jobwatch_daemon_toml(&dir.join("data")),
    );
    std::fs::write(&path, text).unwrap();
    path
}

async fn list(base: &str, state: &str) -> Vec<Value> {
    let (status, page) = get_json(base, &format!("/v1/executions?state={state}&limit=1000")).await;
    assert_eq!(status, 200, "{page}");
    page["executions"].as_array().unwrap().clone()
}

/// Waits (bounded) until no execution is active and `expected` executions exist in history.
async fn wait_all_ended(base: &str, expected: usize, within: Duration) -> Vec<Value> {
    let until = Instant::now() + within;
    loop {
        let active = list(base, "active").await;
        let history = list(base, "history").await;
        if active.is_empty() && history.len() >= expected {
            return history;
        }
        assert!(
            Instant::now() < until,
            "{} still active, {} in history after {within:?}",
            active.len(),
            history.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn bk_check(name: &str) -> String {
    format!(
        r#"
[[checks]]
name = "{name}"
platform = "bk"
script = "echo hi"
hosts = [101, 102]
account_alias = "root"
timeout = "60s"
[checks.poll]
first_poll = "100ms"
interval = "200ms"
max_interval = "500ms"
"#
    )
}

const TWO_HOSTS: &str = r#"
[[hosts]]
bk_host_id = 101
ip = "10.0.0.1"
duration = "1500ms"
log = "one\n"
[[hosts]]
bk_host_id = 102
ip = "10.0.0.2"
duration = "2s"
log = "two\n"
"#;

#[test]
fn the_api_authenticates_validates_and_changes_nothing_on_error() {
    let platform = common::emulator(TWO_HOSTS);
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &platform, &bk_check("disk"));
        let daemon = Daemon::start(&config);
        let base = daemon.base.clone();

        let body = r#"{"check":"disk"}"#;
        let (status, err) = post(&base, "/v1/executions", body, None).await;
        assert_eq!(status, 401, "{err}");
        assert_eq!(err["error"]["code"], "unauthorized");
        assert_eq!(
            post(&base, "/v1/executions", body, Some("wrong-token"))
                .await
                .0,
            401
        );
        assert_eq!(
            post(
                &base,
                "/v1/watches",
                r#"{"platform":"bk","job_instance_id":1}"#,
                None
            )
            .await
            .0,
            401
        );
        let (status, err) = post(&base, "/v1/executions", "{not json", Some(TOKEN)).await;
        assert_eq!(status, 400, "{err}");
        assert_eq!(err["error"]["code"], "bad_request");
        assert_eq!(
            post(&base, "/v1/executions", r#"{"check":"nope"}"#, Some(TOKEN))
                .await
                .0,
            404
        );
        assert_eq!(
            post(
                &base,
                "/v1/executions",
                r#"{"check":"disk","script":"rm -rf /"}"#,
                Some(TOKEN)
            )
            .await
            .0,
            403
        );
        assert_eq!(
            post(
                &base,
                "/v1/executions",
                r#"{"check":"disk","hosts":["nohost"]}"#,
                Some(TOKEN)
            )
            .await
            .0,
            400
        );
        assert_eq!(
            post(
                &base,
                "/v1/watches",
                r#"{"platform":"nope","job_instance_id":1}"#,
                Some(TOKEN)
            )
            .await
            .0,
            404
        );
        assert!(
            list(&base, "all").await.is_empty(),
            "refused requests store nothing"
        );
        assert_eq!(platform.emulator.state().jobs_created(), 0);
        assert_eq!(get_json(&base, "/v1/executions/0000").await.0, 404);
        assert_eq!(
            get_json(&base, "/v1/executions?state=sideways").await.0,
            400
        );

        let (status, accepted) = post(
            &base,
            "/v1/executions",
            r#"{"check":"disk","params":"--fast"}"#,
            Some(TOKEN),
        )
        .await;
        assert_eq!(status, 202, "{accepted}");
        let id = accepted["execution_id"].as_str().unwrap().to_owned();
        let history = wait_all_ended(&base, 1, Duration::from_secs(30)).await;
        assert_eq!(history[0]["execution_id"], id.as_str());
        assert_eq!(history[0]["state"], "succeeded");
        let (_, full) = get_json(&base, &format!("/v1/executions/{id}")).await;
        assert_eq!(full["hosts"].as_array().unwrap().len(), 2);
        let log = common::authed()
            .get(format!("{base}/v1/executions/{id}/hosts/0:10.0.0.2/log"))
            .send()
            .await
            .unwrap();
        assert_eq!(log.status().as_u16(), 200);
        assert_eq!(log.text().await.unwrap(), "two\n");
        assert_eq!(
            get_json(&base, &format!("/v1/executions/{id}/hosts/0:10.9.9.9/log"))
                .await
                .0,
            404
        );

        // A job started elsewhere is followed to its end.
        let job = platform.emulator.state().jobs_created();
        assert_eq!(job, 1);
        let (status, watch) = post(
            &base,
            "/v1/watches",
            r#"{"platform":"bk","job_instance_id":10000}"#,
            Some(TOKEN),
        )
        .await;
        assert_eq!(status, 202, "{watch}");
        // …or as a configured check (its name and poll policy).
        let (status, as_check) = post(
            &base,
            "/v1/watches",
            r#"{"platform":"bk","job_instance_id":10000,"check":"disk"}"#,
            Some(TOKEN),
        )
        .await;
        assert_eq!(status, 202, "{as_check}");
        let (status, _) = post(
            &base,
            "/v1/watches",
            r#"{"platform":"bk","job_instance_id":10000,"check":"nope"}"#,
            Some(TOKEN),
        )
        .await;
        assert_eq!(status, 404);
        let history = wait_all_ended(&base, 3, Duration::from_secs(30)).await;
        let watched: Vec<&Value> = history.iter().filter(|e| e["origin"] == "watch").collect();
        assert_eq!(watched.len(), 2);
        assert!(
            watched
                .iter()
                .all(|w| w["state"] == "succeeded" && w["hosts"] == 2)
        );
        let mut checks: Vec<&str> = watched
            .iter()
            .map(|w| w["check"].as_str().unwrap())
            .collect();
        checks.sort();
        assert_eq!(checks, ["disk", "watch"]);

        // Every route is in the OpenAPI document.
        let (_, doc) = get_json(&base, "/openapi.json").await;
        let paths: HashSet<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for route in [
            "/healthz",
            "/readyz",
            "/metrics",
            "/openapi.json",
            "/v1/executions",
            "/v1/executions/{id}",
            "/v1/executions/{id}/hosts/{host}/log",
            "/v1/watches",
            "/v1/alerts",
            "/v1/notifications",
            "/v1/checks",
            "/v1/silences",
            "/v1/silences/{id}",
            "/v1/executions/{id}/terminate",
        ] {
            assert!(paths.contains(route), "{route} missing from /openapi.json");
        }
        assert!(
            doc["paths"]["/v1/executions"]["post"].is_object()
                && doc["paths"]["/v1/executions"]["get"].is_object()
        );
        let metrics = common::metrics_text(&base).await;
        assert!(
            metrics.contains(
                r#"jobwatch_executions_total{check="disk",outcome="succeeded",platform="bk"} 2"#
            ),
            "{metrics}"
        );
        assert!(!metrics.contains(SECRET) && !metrics.contains(TOKEN));
    });
}

#[test]
fn a_schedule_fires_on_time_and_an_overlapping_tick_is_recorded_as_skipped() {
    let platform = common::emulator(TWO_HOSTS);
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let checks = r#"
    [[checks]]
    name = "ticker"
    platform = "local"
    script = "sleep 2.5; echo done"
    hosts = ["localhost"]
    every = "1s"
    [checks.poll]
    first_poll = "50ms"
    interval = "100ms"
    max_interval = "200ms"
    "#;
        let config = write_config(dir.path(), &platform, checks);
        let daemon = Daemon::start(&config);
        let until = Instant::now() + Duration::from_secs(20);
        let (ran, skipped) = loop {
            let all = list(&daemon.base, "all").await;
            let ran: Vec<Value> = all
                .iter()
                .filter(|e| e["trigger_status"] == "triggered")
                .cloned()
                .collect();
            let skipped: Vec<Value> = all
                .iter()
                .filter(|e| e["state"] == "skipped")
                .cloned()
                .collect();
            if ran.iter().any(|e| e["state"] == "succeeded") && !skipped.is_empty() {
                break (ran, skipped);
            }
            assert!(
                Instant::now() < until,
                "no run and skip within 20 s: {all:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(
            skipped[0]["reason"]
                .as_str()
                .unwrap()
                .contains("previous run was still going"),
            "{:#?}",
            skipped[0]
        );
        for e in &ran {
            // Fires on time: started within a second of its tick, ticks on whole seconds.
            let tick = humantime::parse_rfc3339(e["scheduled_at"].as_str().unwrap()).unwrap();
            let started = humantime::parse_rfc3339(e["started_at"].as_str().unwrap()).unwrap();
            let late = started.duration_since(tick).unwrap_or_default();
            assert!(
                late < Duration::from_secs(1),
                "started {late:?} after its tick"
            );
            assert!(
                e["scheduled_at"].as_str().unwrap().ends_with(":00.000Z")
                    || e["scheduled_at"].as_str().unwrap().contains(".000Z")
            );
        }
        assert!(
            ran.iter().all(|r| skipped
                .iter()
                .all(|s| s["scheduled_at"] != r["scheduled_at"])),
            "a tick is recorded once"
        );
    });
}

#[test]
fn sigterm_exits_cleanly_within_the_grace_and_a_restart_resumes_the_work() {
    let platform = common::emulator(&TWO_HOSTS.replace("duration = \"2s\"", "duration = \"4s\""));
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &platform, &bk_check("disk"));
        let mut daemon = Daemon::start(&config);
        for _ in 0..5 {
            assert_eq!(
                post(
                    &daemon.base,
                    "/v1/executions",
                    r#"{"check":"disk"}"#,
                    Some(TOKEN)
                )
                .await
                .0,
                202
            );
        }
        let until = Instant::now() + Duration::from_secs(10);
        while platform.emulator.state().jobs_created() < 5 {
            assert!(Instant::now() < until, "the jobs were never submitted");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        daemon.signal(libc::SIGTERM);
        let sent = Instant::now();
        let status = loop {
            if let Some(status) = daemon.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                sent.elapsed() < Duration::from_secs(7),
                "not down within the 5 s grace (+2 s)"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(status.code(), Some(0));
        drop(daemon);
        let daemon = Daemon::start(&config);
        assert_eq!(
            daemon.resumed, 5,
            "the work in flight at SIGTERM is resumed"
        );
        let history = wait_all_ended(&daemon.base, 5, Duration::from_secs(30)).await;
        assert!(
            history.iter().all(|e| e["state"] == "succeeded"),
            "{history:#?}"
        );
        assert_eq!(
            platform.emulator.state().jobs_created(),
            5,
            "resumed, never resubmitted"
        );
    });
}

#[test]
fn kill_9_with_200_executions_in_flight_loses_and_duplicates_nothing() {
    let platform = common::emulator(
        &TWO_HOSTS
            .replace("1500ms", "1s")
            .replace("\"2s\"", "\"1500ms\""),
    );
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &platform, &bk_check("fleet"));
        let daemon = Daemon::start(&config);
        let base = daemon.base.clone();
        let posts: Vec<_> = (0..200)
            .map(|_| {
                let base = base.clone();
                tokio::spawn(async move {
                    post(&base, "/v1/executions", r#"{"check":"fleet"}"#, Some(TOKEN)).await
                })
            })
            .collect();
        // All 200 are accepted (recorded), then the daemon is killed while they are being
        // submitted and polled.
        let mut accepted = HashSet::new();
        for p in posts {
            let (status, body) = p.await.unwrap();
            assert_eq!(status, 202, "{body}");
            accepted.insert(body["execution_id"].as_str().unwrap().to_owned());
        }
        assert_eq!(accepted.len(), 200);
        daemon.signal(libc::SIGKILL);
        let submitted_before_kill = platform.emulator.state().jobs_created();
        drop(daemon);
        let daemon = Daemon::start(&config);
        assert!(
            daemon.resumed >= 100,
            "the kill left only {} executions in flight ({submitted_before_kill} submitted)",
            daemon.resumed
        );
        let all = list(&daemon.base, "all").await;
        assert!(
            all.len() >= accepted.len(),
            "every accepted execution was recorded before its 202"
        );
        let history = wait_all_ended(&daemon.base, all.len(), Duration::from_secs(60)).await;
        let ids: HashSet<String> = history
            .iter()
            .map(|e| e["execution_id"].as_str().unwrap().to_owned())
            .collect();
        assert!(accepted.is_subset(&ids), "an accepted execution was lost");

        // The platform's truth: each job belongs to exactly one execution, and each triggered
        // execution ended as its job did.
        let names = platform.emulator.state().job_names();
        let unique: HashSet<&String> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "a job was submitted twice");
        let mut by_task: HashMap<String, &Value> = HashMap::new();
        for e in &history {
            let (_, full) = get_json(
                &daemon.base,
                &format!("/v1/executions/{}", e["execution_id"].as_str().unwrap()),
            )
            .await;
            let task = full["task_name"].as_str().unwrap().to_owned();
            match e["trigger_status"].as_str().unwrap() {
                "triggered" => {
                    assert_eq!(e["state"], "succeeded", "{e:#}");
                    assert!(
                        names.contains(&task),
                        "triggered but no such job on the platform: {e:#}"
                    );
                }
                "trigger_failed" => {
                    assert!(
                        e["reason"]
                            .as_str()
                            .unwrap()
                            .contains("not found on the platform"),
                        "{e:#}"
                    );
                    assert!(
                        !names.contains(&task),
                        "a job exists for an execution called not found: {e:#}"
                    );
                }
                other => panic!("unexpected trigger status {other}: {e:#}"),
            }
            by_task.insert(task, e);
        }
        assert!(
            names.iter().all(|n| by_task.contains_key(n)),
            "a job on the platform belongs to no execution"
        );
        let reconciled = history.iter().filter(|e| e["trigger_status"] == "trigger_failed").count();
        eprintln!(
            "{} executions ({} accepted before the kill, {} resumed): {} triggered, {reconciled} never reached the platform",
            history.len(),
            accepted.len(),
            daemon.resumed,
            history.len() - reconciled
        );
    });
}

fn page_rows(html: &str, table: &str) -> HashSet<String> {
    let start = html
        .find(&format!("<table id=\"{table}\">"))
        .unwrap_or_else(|| panic!("no table {table} in {html}"));
    let end = start + html[start..].find("</table>").unwrap();
    html[start..end]
        .split("data-execution-id=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_owned())
        .collect()
}

#[test]
fn every_execution_is_in_exactly_one_of_active_and_history_at_every_instant() {
    let platform = common::emulator(
        &TWO_HOSTS
            .replace("1500ms", "300ms")
            .replace("\"2s\"", "\"700ms\""),
    );
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &platform, &bk_check("flow"));
        let daemon = Daemon::start(&config);
        let base = daemon.base.clone();
        let poster = {
            let base = base.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for _ in 0..30 {
                    let (status, body) =
                        post(&base, "/v1/executions", r#"{"check":"flow"}"#, Some(TOKEN)).await;
                    assert_eq!(status, 202);
                    ids.push(body["execution_id"].as_str().unwrap().to_owned());
                    tokio::time::sleep(Duration::from_millis(40)).await;
                }
                ids
            })
        };
        let mut seen_both = 0;
        let mut checks = 0;
        let mut known: HashSet<String> = HashSet::new();
        while !poster.is_finished() || !list(&base, "active").await.is_empty() {
            let html = common::authed()
                .get(format!("{base}/executions"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let (active, history) = (page_rows(&html, "active"), page_rows(&html, "history"));
            assert!(active.is_disjoint(&history), "an execution in both lists");
            let on_page: HashSet<String> = active.union(&history).cloned().collect();
            assert!(
                known.is_subset(&on_page),
                "an execution vanished from both lists"
            );
            known = on_page;
            seen_both += usize::from(!active.is_empty() && !history.is_empty());
            // The API's lists agree with each execution's own state.
            for e in list(&base, "active").await {
                assert!(e["state"] == "pending" || e["state"] == "running", "{e:#}");
            }
            checks += 1;
        }
        let ids = poster.await.unwrap();
        assert!(
            seen_both > 0 && checks > 5,
            "the test saw executions start and end ({checks} checks)"
        );
        let html = common::authed()
            .get(format!("{base}/executions"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let api_history: HashSet<String> = list(&base, "history")
            .await
            .iter()
            .map(|e| e["execution_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            page_rows(&html, "history"),
            api_history,
            "the page and the API agree"
        );
        assert!(page_rows(&html, "active").is_empty());
        assert!(ids.iter().all(|id| api_history.contains(id)));
    });
}

#[test]
fn ticks_missed_while_the_agent_was_down_are_recorded_as_skipped() {
    let platform = common::emulator(TWO_HOSTS);
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let checks = r#"
[[checks]]
name = "beat"
platform = "local"
script = "echo beat"
hosts = ["localhost"]
every = "1s"
"#;
        let config = write_config(dir.path(), &platform, checks);
        let mut daemon = Daemon::start(&config);
        let until = Instant::now() + Duration::from_secs(10);
        while !list(&daemon.base, "history")
            .await
            .iter()
            .any(|e| e["state"] == "succeeded")
        {
            assert!(Instant::now() < until, "no scheduled run");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        daemon.signal(libc::SIGTERM);
        assert_eq!(daemon.child.wait().unwrap().code(), Some(0));
        drop(daemon);
        // The agent is down across at least two ticks.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let daemon = Daemon::start(&config);
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let all = list(&daemon.base, "history").await;
            let missed: Vec<Value> = all
                .into_iter()
                .filter(|e| {
                    e["state"] == "skipped"
                        && e["reason"]
                            .as_str()
                            .unwrap()
                            .contains("not running at the scheduled time")
                })
                .collect();
            // The daemon records missed ticks one by one: wait for the ones asserted below.
            if missed.len() >= 2 {
                break;
            }
            assert!(
                Instant::now() < until,
                "missed ticks were not recorded: {missed:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let all = list(&daemon.base, "all").await;
        let ticks: Vec<&str> = all
            .iter()
            .filter_map(|e| e["scheduled_at"].as_str())
            .collect();
        let unique: HashSet<&&str> = ticks.iter().collect();
        assert_eq!(unique.len(), ticks.len(), "every tick is recorded once");
    });
}

#[test]
fn a_partition_shows_stuck_and_the_cut_off_host_then_heals_to_the_true_end() {
    // Hosts 101 and 102 end fast; 103 is cut off: the platform keeps it "running" (and the
    // job at 2) until the partition heals.
    let scenario = r#"
[[hosts]]
bk_host_id = 101
ip = "10.0.0.1"
duration = "200ms"
[[hosts]]
bk_host_id = 102
ip = "10.0.0.2"
duration = "300ms"
[[hosts]]
bk_host_id = 103
ip = "10.0.0.3"
hang = true
heal_after = "5s"
status = 9
log = "back\n"
"#;
    let platform = common::emulator(scenario);
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let check = bk_check("part")
            .replace("hosts = [101, 102]", "hosts = [101, 102, 103]")
            .replace(
                "max_interval = \"500ms\"",
                "max_interval = \"500ms\"\nstuck_after = \"1s\"\nstraggler_after = \"1s\"",
            );
        let config = write_config(dir.path(), &platform, &check);
        let daemon = Daemon::start(&config);
        let base = daemon.base.clone();
        let (status, accepted) =
            post(&base, "/v1/executions", r#"{"check":"part"}"#, Some(TOKEN)).await;
        assert_eq!(status, 202);
        let id = accepted["execution_id"].as_str().unwrap().to_owned();
        let until = Instant::now() + Duration::from_secs(30);
        // Each response is checked by itself; across responses only the sound direction is
        // used: states only move forward, so if the last read (the GET) says running, the
        // earlier list and page reads must have had it active.
        let (mut seen_in_get, mut seen_in_list, mut seen_on_page) = (false, false, false);
        let mut seen_alert_on_page = false;
        let final_report = loop {
            let active_list = list(&base, "active").await;
            let html = common::authed().get(format!("{base}/executions")).send().await.unwrap().text().await.unwrap();
            let alerts_page = common::authed().get(format!("{base}/alerts")).send().await.unwrap().text().await.unwrap();
            let (_, e) = get_json(&base, &format!("/v1/executions/{id}")).await;
            let (active, history) = (page_rows(&html, "active"), page_rows(&html, "history"));
            assert!(active.contains(&id) ^ history.contains(&id), "in exactly one list at every instant");
            let running = e["state"] == "running" || e["state"] == "pending";
            if running {
                assert!(active.contains(&id), "running now, so active on the earlier page");
                assert!(active_list.iter().any(|x| x["execution_id"] == id.as_str()), "running now, so in the earlier active list");
            }
            let kinds: Vec<&str> = e["conditions"].as_array().unwrap().iter().map(|c| c["kind"].as_str().unwrap()).collect();
            if kinds == ["stuck", "stragglers"] {
                assert!(running, "a condition never ends the execution");
                for c in e["conditions"].as_array().unwrap() {
                    assert_eq!(c["hosts"], serde_json::json!(["0:10.0.0.3 #103"]), "{c:#}");
                }
                seen_in_get = true;
            }
            seen_in_list |= active_list
                .iter()
                .any(|x| x["execution_id"] == id.as_str() && x["conditions"] == serde_json::json!(["stuck", "stragglers"]));
            seen_on_page |= html.contains("stragglers: 1 of 3 hosts still running");
            seen_alert_on_page |= alerts_page.contains("data-alertname=\"ExecutionStuck\" data-check=\"part\" data-status=\"firing\"")
                && alerts_page.contains("data-alertname=\"HostStragglers\" data-check=\"part\" data-status=\"firing\"");
            if !running {
                break e;
            }
            assert!(Instant::now() < until, "never ended: {e:#}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(seen_in_get && seen_in_list && seen_on_page, "shown by the API ({seen_in_get}), the list ({seen_in_list}) and the page ({seen_on_page})");
        assert_eq!(final_report["state"], "succeeded", "{final_report:#}");
        assert_eq!(
            final_report["conditions"],
            serde_json::json!([]),
            "cleared at the end"
        );
        assert_eq!(common::host(&final_report, 103)["status"], 9);
        // The conditions' alerts fired while they held (shown on the page) and resolved
        // with the true end.
        assert!(seen_alert_on_page, "the stuck and stragglers alerts were shown firing");
        let (_, alerts) = get_json(&base, "/v1/alerts").await;
        for name in ["ExecutionStuck", "HostStragglers"] {
            let a = alerts["alerts"].as_array().unwrap().iter().find(|a| a["labels"]["alertname"] == name && a["labels"]["check"] == "part").unwrap_or_else(|| panic!("{name}: {alerts:#}"));
            assert_eq!(a["status"], "resolved", "{a:#}");
            assert!(a["resolution"].as_str().unwrap().contains("ended succeeded"), "{a:#}");
        }
    });
}

#[test]
fn live_metrics_pass_promtool_and_carry_every_family() {
    let platform = common::emulator(TWO_HOSTS);
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let checks = format!(
            "{}\n{}",
            bk_check("disk"),
            bk_check("acct").replace("\"root\"", "\"nobody\"")
        );
        let config = write_config(dir.path(), &platform, &checks);
        let daemon = Daemon::start(&config);
        let base = daemon.base.clone();
        assert_eq!(
            post(&base, "/v1/executions", r#"{"check":"disk"}"#, Some(TOKEN))
                .await
                .0,
            202
        );
        assert_eq!(
            post(&base, "/v1/executions", r#"{"check":"acct"}"#, Some(TOKEN))
                .await
                .0,
            202
        );
        wait_all_ended(&base, 2, Duration::from_secs(30)).await;
        let text = common::metrics_text(&base).await;

        let mut promtool = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("promtool (Debian package `prometheus`; scripts/test.sh installs it)");
        std::io::Write::write_all(promtool.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
        let out = promtool.wait_with_output().unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && said.trim().is_empty(),
            "promtool check metrics:\n{said}\n{text}"
        );

        for family in [
            "jobwatch_executions_total",
            "jobwatch_execution_duration_seconds",
            "jobwatch_active_executions",
            "jobwatch_host_results_total",
            "jobwatch_trigger_failures_total",
            "jobwatch_platform_requests_total",
            "jobwatch_platform_request_duration_seconds",
            "jobwatch_conditions",
            "jobwatch_last_success_timestamp_seconds",
            "jobwatch_last_trigger_timestamp_seconds",
            "jobwatch_build_info",
            "jobwatch_alert_notifications_total",
            "jobwatch_alert_outbox_depth",
        ] {
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "{family} missing:\n{text}"
            );
        }
        assert!(
            text.contains(
                r#"jobwatch_trigger_failures_total{check="acct",code="1244003",platform="bk"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"jobwatch_host_results_total{check="disk",outcome="success"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"jobwatch_conditions{check="disk",condition="stuck"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"endpoint="0""#) && text.contains(r#"result="ok""#),
            "{text}"
        );
        // Closed label sets: no job id, host, URL or error text.
        // (Label values are quoted; a job id as a label would read `="10000"`.)
        for leak in [
            "10.0.0.1",
            "=\"10000\"",
            "=\"10001\"",
            "http://",
            "账号",
            SECRET,
            TOKEN,
        ] {
            assert!(!text.contains(leak), "`{leak}` in /metrics:\n{text}");
        }
    });
}

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn dashboard_queries() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards/jobwatch.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            queries.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    queries
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards");
    for args in [
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts.test.yml"],
    ] {
        let out = std::process::Command::new("promtool")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("promtool");
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_real_prometheus_scraping_the_agent_answers_every_dashboard_query() {
    let platform = common::emulator(TWO_HOSTS);
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let checks = format!("{}\n{}", bk_check("disk"), bk_check("acct").replace("\"root\"", "\"nobody\""));
        let config = write_config(dir.path(), &platform, &checks);
        let daemon = Daemon::start(&config);
        let base = daemon.base.clone();
        let target = base.trim_start_matches("http://").to_owned();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let prom_config = dir.path().join("prometheus.yml");
        std::fs::write(
            &prom_config,
            format!(
                "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\nscrape_configs:\n  - job_name: jobwatch\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )
        .unwrap();
        let _prometheus = Killed(
            std::process::Command::new("prometheus")
                .arg(format!("--config.file={}", prom_config.display()))
                .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("prometheus (Debian package `prometheus`; scripts/test.sh installs it)"),
        );
        let prom = format!("http://127.0.0.1:{port}");
        let query = |q: String| {
            let prom = prom.clone();
            async move {
                let resp = client().get(format!("{prom}/api/v1/query")).query(&[("query", q.as_str())]).send().await;
                match resp {
                    Ok(r) => r.json::<Value>().await.unwrap_or(Value::Null),
                    Err(_) => Value::Null,
                }
            }
        };
        assert_eq!(post(&base, "/v1/executions", r#"{"check":"disk"}"#, Some(TOKEN)).await.0, 202);
        assert_eq!(post(&base, "/v1/executions", r#"{"check":"acct"}"#, Some(TOKEN)).await.0, 202);
        wait_all_ended(&base, 2, Duration::from_secs(30)).await;
        // Wait (bounded) until Prometheus has scraped the ended executions a few times.
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            let v = query(r#"count_over_time(jobwatch_executions_total{outcome="succeeded"}[1m]) >= 3"#.to_owned()).await;
            let enough = v["data"]["result"].as_array().is_some_and(|r| !r.is_empty());
            let done = query(r#"jobwatch_executions_total{check="disk",outcome="succeeded"} == 1"#.to_owned()).await;
            if enough && done["data"]["result"].as_array().is_some_and(|r| !r.is_empty()) {
                break;
            }
            assert!(Instant::now() < until, "Prometheus never scraped the agent: {v}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        for q in dashboard_queries() {
            let q = q.replace("$__rate_interval", "1m").replace("$check", ".*");
            let v = query(q.clone()).await;
            assert_eq!(v["status"], "success", "{q}: {v}");
            assert!(v["data"]["result"].as_array().is_some_and(|r| !r.is_empty()), "no data for the dashboard query {q}: {v}");
        }
        let up = query(r#"up{job="jobwatch"}"#.to_owned()).await;
        assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
    });
}

/// Whether `pid` is a live process (a zombie counts as dead).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    })
}

#[test]
fn local_scripts_do_not_outlive_the_daemon() {
    let platform = common::emulator(TWO_HOSTS);
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("script.pid");
        let checks = format!(
            "[[checks]]\nname = \"long\"\nplatform = \"local\"\nscript = '''\necho $$ > {}\nsleep 300\n'''\nhosts = [\"localhost\"]\n",
            pid_file.display()
        );
        let config = write_config(dir.path(), &platform, &checks);
        let mut daemon = Daemon::start(&config);
        assert_eq!(post(&daemon.base, "/v1/executions", r#"{"check":"long"}"#, Some(TOKEN)).await.0, 202);
        let until = Instant::now() + Duration::from_secs(10);
        let pid: i32 = loop {
            if let Some(pid) = std::fs::read_to_string(&pid_file).ok().and_then(|t| t.trim().parse().ok()) {
                break pid;
            }
            assert!(Instant::now() < until, "the script never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(alive(pid));
        daemon.signal(libc::SIGTERM);
        assert_eq!(daemon.child.wait().unwrap().code(), Some(0));
        let until = Instant::now() + Duration::from_secs(5);
        while alive(pid) && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!alive(pid), "the local script {pid} outlived the daemon");
        let left = files_under(&dir.path().join("data").join("local"));
        assert!(left.is_empty(), "temporary files left after SIGTERM: {left:?}");
    });
}

/// [`write_config`] with the platform's **default** rate and concurrency limits.
fn write_config_default_limits(dir: &Path, emulator: &common::Platform, checks: &str) -> PathBuf {
    let path = write_config(dir, emulator, checks);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .filter(|l| {
            !l.starts_with("max_requests_per_second") && !l.starts_with("max_concurrent_requests")
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn executions_accepted_during_repeated_kill_9_all_reach_the_platform_exactly_once() {
    let platform = common::emulator(
        &TWO_HOSTS
            .replace("1500ms", "800ms")
            .replace("\"2s\"", "\"1s\""),
    );
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let check = bk_check("intake")
            .replace("first_poll = \"100ms\"", "first_poll = \"500ms\"")
            .replace("interval = \"200ms\"", "interval = \"1s\"")
            .replace("max_interval = \"500ms\"", "max_interval = \"2s\"");
        let config = write_config_default_limits(dir.path(), &platform, &check);
        let mut accepted = HashSet::new();
        // Four rounds: a burst of POSTs, kill -9 as soon as the burst is accepted (most
        // submits still waiting for their slot), restart. Each restart resumes the earlier
        // rounds' executions while the next burst arrives.
        for round in 0..4 {
            let daemon = Daemon::start(&config);
            let posts: Vec<_> = (0..30)
                .map(|_| {
                    let base = daemon.base.clone();
                    tokio::spawn(async move {
                        post(&base, "/v1/executions", r#"{"check":"intake"}"#, Some(TOKEN)).await
                    })
                })
                .collect();
            for p in posts {
                let (status, body) = p.await.unwrap();
                assert_eq!(status, 202, "round {round}: {body}");
                accepted.insert(body["execution_id"].as_str().unwrap().to_owned());
            }
            daemon.signal(libc::SIGKILL);
            drop(daemon);
        }
        assert_eq!(accepted.len(), 120);
        let before_last_start = platform.emulator.state().jobs_created();
        assert!(
            before_last_start < accepted.len(),
            "every kill came after all submits had left ({before_last_start}): the test proves nothing"
        );
        let daemon = Daemon::start(&config);
        let history = wait_all_ended(&daemon.base, accepted.len(), Duration::from_secs(120)).await;
        let names = platform.emulator.state().job_names();
        let unique: HashSet<&String> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "a job was submitted twice");
        assert_eq!(names.len(), accepted.len(), "every accepted execution reached the platform once");
        let mut ended = 0;
        for e in history.iter().filter(|e| accepted.contains(e["execution_id"].as_str().unwrap())) {
            assert_eq!(e["trigger_status"], "triggered", "{e:#}");
            assert_eq!(e["state"], "succeeded", "{e:#}");
            let (_, full) = get_json(
                &daemon.base,
                &format!("/v1/executions/{}", e["execution_id"].as_str().unwrap()),
            )
            .await;
            assert!(names.contains(&full["task_name"].as_str().unwrap().to_owned()), "{full:#}");
            ended += 1;
        }
        assert_eq!(ended, accepted.len());
    });
}

use common::wait_ended;

#[test]
fn a_local_job_stopped_at_shutdown_is_lost_never_taken_for_a_new_one() {
    let platform = common::emulator(TWO_HOSTS);
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let checks = r#"
[[checks]]
name = "slow"
platform = "local"
script = "sleep 20; echo slow done"
hosts = ["localhost"]
[checks.poll]
first_poll = "100ms"
interval = "200ms"
max_interval = "500ms"

[[checks]]
name = "quick"
platform = "local"
script = "echo quick done"
hosts = ["localhost"]
[checks.poll]
first_poll = "50ms"
interval = "100ms"
"#;
        let config = write_config(dir.path(), &platform, checks);
        let mut daemon = Daemon::start(&config);
        let (status, body) = post(
            &daemon.base,
            "/v1/executions",
            r#"{"check":"slow"}"#,
            Some(TOKEN),
        )
        .await;
        assert_eq!(status, 202, "{body}");
        let slow = body["execution_id"].as_str().unwrap().to_owned();
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, e) = get_json(&daemon.base, &format!("/v1/executions/{slow}")).await;
            if e["state"] == "running" && e["polls"].as_u64().unwrap_or(0) > 0 {
                break;
            }
            assert!(Instant::now() < until, "the slow job never ran: {e:#}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        daemon.signal(libc::SIGTERM);
        assert_eq!(daemon.child.wait().unwrap().code(), Some(0));
        drop(daemon);
        let daemon = Daemon::start(&config);
        assert_eq!(daemon.resumed, 1);
        // New local jobs start at once; before, they reused the ids 1, 2, … of the stopped one.
        let mut quick = Vec::new();
        for _ in 0..10 {
            let (status, body) = post(
                &daemon.base,
                "/v1/executions",
                r#"{"check":"quick"}"#,
                Some(TOKEN),
            )
            .await;
            assert_eq!(status, 202, "{body}");
            quick.push(body["execution_id"].as_str().unwrap().to_owned());
        }
        let e = wait_ended(&daemon.base, &slow, Duration::from_secs(30)).await;
        assert_eq!(e["state"], "lost", "{e:#}");
        assert!(
            e["reason"].as_str().unwrap().contains("no longer knows"),
            "{e:#}"
        );
        let log = e["hosts"][0]["log"].as_str().unwrap_or("");
        assert!(
            !log.contains("quick done"),
            "another job's log was taken: {e:#}"
        );
        let mut ids = HashSet::new();
        for id in &quick {
            let q = wait_ended(&daemon.base, id, Duration::from_secs(30)).await;
            assert_eq!(q["state"], "succeeded", "{q:#}");
            assert!(
                ids.insert(q["job_instance_id"].as_u64().unwrap()),
                "an id was reused"
            );
        }
        assert!(
            !ids.contains(&e["job_instance_id"].as_u64().unwrap()),
            "the stopped job's id was reused"
        );
    });
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.filter_map(Result::ok) {
            let path = e.path();
            if path.is_dir() {
                found.extend(files_under(&path));
            } else {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn after_kill_9_no_local_script_process_or_file_is_left_once_restarted() {
    let platform = common::emulator(TWO_HOSTS);
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let checks = format!(
            "[[checks]]\nname = \"long\"\nplatform = \"local\"\nscript = '''\nsleep 300 &\necho $$ $! > {}\nwait\n'''\nhosts = [\"localhost\"]\n",
            pids.display()
        );
        let config = write_config(dir.path(), &platform, &checks);
        let daemon = Daemon::start(&config);
        let daemon_pid = daemon.child.id();
        assert_eq!(post(&daemon.base, "/v1/executions", r#"{"check":"long"}"#, Some(TOKEN)).await.0, 202);
        let until = Instant::now() + Duration::from_secs(10);
        let (script, child): (i32, i32) = loop {
            let text = std::fs::read_to_string(&pids).unwrap_or_default();
            let nums: Vec<i32> = text.split_whitespace().filter_map(|t| t.parse().ok()).collect();
            if nums.len() == 2 {
                break (nums[0], nums[1]);
            }
            assert!(Instant::now() < until, "the script never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(alive(script) && alive(child));
        let local = dir.path().join("data").join("local");
        assert!(!files_under(&local).is_empty(), "the script file lives under data_dir/local");
        daemon.signal(libc::SIGKILL);
        drop(daemon);
        let _daemon = Daemon::start(&config);
        let until = Instant::now() + Duration::from_secs(5);
        while (alive(script) || alive(child)) && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!alive(script), "the script {script} outlived the daemon's kill -9 and restart");
        assert!(!alive(child), "the script's child {child} outlived the daemon's kill -9 and restart");
        assert_eq!(files_under(&local), Vec::<PathBuf>::new(), "temporary files were left");
        let prefix = format!("jobwatch-{daemon_pid}-");
        let in_tmp: Vec<_> = std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .collect();
        assert!(in_tmp.is_empty(), "files left in the system temp directory: {in_tmp:?}");
    });
}

#[test]
fn logs_are_plain_off_a_terminal_json_when_asked_and_the_sample_runs_at_start() {
    let platform = common::emulator(TWO_HOSTS);
    let dir = tempfile::tempdir().unwrap();
    let checks = r#"
[[checks]]
name = "hourly"
platform = "local"
script = "echo hello"
hosts = ["localhost"]
every = "1h"
run_on_start = true
"#;
    let config = write_config(dir.path(), &platform, checks);
    for format in ["text", "json"] {
        let text = std::fs::read_to_string(&config).unwrap();
        let text = match text.find("log_format") {
            Some(_) => text.replace(
                "log_format = \"text\"",
                &format!("log_format = \"{format}\""),
            ),
            None => text.replace(
                "[agent]\n",
                &format!("[agent]\nlog_format = \"{format}\"\n"),
            ),
        };
        std::fs::write(&config, text).unwrap();
        let daemon = Daemon::start(&config);
        let (lines, base) = (daemon.printed.clone(), daemon.base.clone());
        let logged: Vec<&String> = lines
            .iter()
            .filter(|l| !l.starts_with("jobwatch: "))
            .collect();
        assert!(!logged.is_empty(), "no log line at all: {lines:#?}");
        for line in &logged {
            assert!(
                !line.contains('\u{1b}'),
                "ANSI colours off a terminal: {line:?}"
            );
            if format == "json" {
                let v: Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not one JSON object a line ({e}): {line}"));
                assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
            }
        }
        // The hourly check ran at start: the page is not empty for an hour.
        let history = runtime().block_on(async {
            let until = Instant::now() + Duration::from_secs(10);
            loop {
                let h = list(&base, "history").await;
                if !h.is_empty() || Instant::now() > until {
                    break h;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        assert!(
            history
                .iter()
                .any(|e| e["check"] == "hourly" && e["state"] == "succeeded"),
            "{history:#?}"
        );
        drop(daemon);
    }
}

#[test]
fn every_api_error_is_json_as_documented_and_echoes_little() {
    let platform = common::emulator(TWO_HOSTS);
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &platform, &bk_check("disk"));
        let daemon = Daemon::start(&config);
        let base = &daemon.base;
        let http = common::authed();
        let long_host = "h".repeat(20_000);
        let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
            (
                "405",
                http.delete(format!("{base}/v1/executions")),
                405,
                "method_not_allowed",
            ),
            (
                "405 on an id",
                http.post(format!("{base}/v1/executions/x")),
                405,
                "method_not_allowed",
            ),
            (
                "413",
                http.post(format!("{base}/v1/executions"))
                    .bearer_auth(TOKEN)
                    .header("Content-Type", "application/json")
                    .body(vec![b' '; 3 << 20]),
                413,
                "payload_too_large",
            ),
            (
                "limit=-1",
                http.get(format!("{base}/v1/executions?limit=-1")),
                400,
                "bad_request",
            ),
            (
                "limit=abc",
                http.get(format!("{base}/v1/executions?limit=abc")),
                400,
                "bad_request",
            ),
            (
                "cursor=bogus",
                http.get(format!("{base}/v1/executions?cursor=bogus")),
                400,
                "bad_request",
            ),
            (
                "cursor=0",
                http.get(format!("{base}/v1/executions?cursor=0")),
                400,
                "bad_request",
            ),
            (
                "notifications limit",
                http.get(format!("{base}/v1/notifications?limit=x")),
                400,
                "bad_request",
            ),
            (
                "undecodable id",
                http.get(format!("{base}/v1/executions/%FF%FE")),
                400,
                "bad_request",
            ),
            (
                "undecodable host",
                http.get(format!(
                    "{base}/v1/executions/0193a1b2-0000-7000-8000-000000000000/hosts/%FF/log"
                )),
                400,
                "bad_request",
            ),
            (
                "20 KB host",
                http.post(format!("{base}/v1/executions"))
                    .bearer_auth(TOKEN)
                    .json(&serde_json::json!({"check": "disk", "hosts": [long_host]})),
                400,
                "bad_request",
            ),
            (
                "20 KB check",
                http.post(format!("{base}/v1/executions"))
                    .bearer_auth(TOKEN)
                    .json(&serde_json::json!({"check": long_host})),
                404,
                "not_found",
            ),
            (
                "20 KB id",
                http.get(format!("{base}/v1/executions/{long_host}")),
                404,
                "not_found",
            ),
        ];
        for (what, request, status, code) in cases {
            let response = request.send().await.unwrap();
            assert_eq!(response.status().as_u16(), status, "{what}");
            let text = response.text().await.unwrap();
            let body: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text:?}"));
            assert_eq!(body["error"]["code"], code, "{what}: {body}");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(!message.is_empty(), "{what}");
            assert!(
                text.len() < 1000,
                "{what}: {} bytes echoed back",
                text.len()
            );
        }
        // A good cursor pages; nothing was stored by any refusal.
        let (status, page) = get_json(
            base,
            "/v1/executions?cursor=0193a1b2-0000-7000-8000-000000000000",
        )
        .await;
        assert_eq!(status, 200, "{page}");
        assert!(list(base, "all").await.is_empty());
    });
}

#[test]
fn every_documented_metric_family_is_there_at_the_first_scrape_with_series_at_zero() {
    let platform = common::emulator(TWO_HOSTS);
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &platform, &bk_check("disk"));
        let daemon = Daemon::start(&config);
        let text = common::metrics_text(&daemon.base).await;
        // The README's metrics list is the documentation: every name in it is exposed.
        let readme = include_str!("../README.md");
        let section = readme
            .split("### Metrics")
            .nth(1)
            .and_then(|s| s.split("\n### ").next())
            .expect("README has a Metrics section");
        let names: HashSet<&str> = section
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("jobwatch_"))
            .collect();
        assert!(names.len() >= 15, "{names:?}");
        for name in &names {
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} is documented but not exposed at the first scrape"
            );
            assert!(
                text.lines().any(|l| l.starts_with(name) && !l.starts_with('#')),
                "{name} has no series at the first scrape"
            );
        }
        for series in [
            r#"jobwatch_platform_requests_total{api="fast_execute_script",endpoint="0",platform="bk",result="ok"} 0"#,
            r#"jobwatch_platform_requests_total{api="get_job_instance_status",endpoint="0",platform="bk",result="transient"} 0"#,
            r#"jobwatch_alert_notifications_total{receiver="ops-webhook",result="delivered"} 0"#,
            r#"jobwatch_executions_total{check="disk",outcome="failed",platform="bk"} 0"#,
        ] {
            assert!(text.contains(series), "missing {series}");
        }
    });
}

#[test]
fn the_executions_page_shows_true_totals_and_pages_through_history() {
    let platform = common::emulator(TWO_HOSTS);
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let checks = "[[checks]]\nname = \"quick\"\nplatform = \"local\"\nscript = \"true\"\nhosts = [\"localhost\"]\n[checks.poll]\nfirst_poll = \"50ms\"\ninterval = \"100ms\"\n";
        let config = write_config(dir.path(), &platform, checks);
        let daemon = Daemon::start(&config);
        for _ in 0..130 {
            let (status, body) = post(&daemon.base, "/v1/executions", r#"{"check":"quick"}"#, Some(TOKEN)).await;
            assert_eq!(status, 202, "{body}");
        }
        wait_all_ended(&daemon.base, 130, Duration::from_secs(60)).await;
        let page = |path: String| {
            let base = daemon.base.clone();
            async move { common::authed().get(format!("{base}{path}")).send().await.unwrap().text().await.unwrap() }
        };
        let first = page("/executions".into()).await;
        assert!(
            first.contains("History (<span id=\"history-total\">130</span>, 100 shown)"),
            "{first}"
        );
        assert_eq!(page_rows(&first, "history").len(), 100);
        let older = first
            .split("id=\"older\" href=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("an older-page link")
            .to_owned();
        let second = page(older).await;
        let rows = page_rows(&second, "history");
        assert_eq!(rows.len(), 30, "the rest of the history");
        assert!(rows.is_disjoint(&page_rows(&first, "history")));
        assert!(!second.contains("id=\"older\""), "the last page has no older link");
        let (status, _) = get_json(&daemon.base, "/executions?before=nonsense").await;
        assert_eq!(status, 400);
        // Of one check: its own totals and pages.
        let of_check = page("/executions?check=quick".into()).await;
        assert!(of_check.contains("<span id=\"history-total\">130</span>, 100 shown"), "{of_check}");
        let none = page("/executions?check=other".into()).await;
        assert!(none.contains("<span id=\"history-total\">0</span>"), "{none}");
    });
}
