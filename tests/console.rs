//! The operator's console against a live daemon: maintenance windows, `jobwatch ctl`, the
//! pages (the browser tests are in `tests/browser.rs`).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Daemon, get_json, runtime};
use serde_json::Value;

/// A local-platform daemon config with `checks` (TOML) and an `[api]` on a free port.
fn local_config(dir: &Path, checks: &str) -> PathBuf {
    let path = dir.join("jobwatch.toml");
    std::fs::write(
        &path,
        format!(
            "[agent]\ndata_dir = \"{}\"\nshutdown_grace = \"3s\"\n[api]\nlisten = \"127.0.0.1:0\"\n[platforms.local]\nkind = \"local\"\n{checks}",
            dir.join("data").display()
        ),
    )
    .unwrap();
    path
}

async fn executions_of(base: &str, check: &str) -> Vec<Value> {
    let (status, page) = get_json(base, &format!("/v1/executions?check={check}&limit=1000")).await;
    assert_eq!(status, 200, "{page}");
    page["executions"].as_array().unwrap().clone()
}

#[test]
fn ticks_inside_a_maintenance_window_are_recorded_skipped_with_the_window_and_alert_nothing() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    // `quiet` is always inside a window (one opens every second and lasts a minute); `busy`
    // has a window that never opens this year (29 February 2027 does not exist).
    let config = local_config(
        dir.path(),
        "[[checks]]\nname = \"quiet\"\nplatform = \"local\"\nscript = \"exit 1\"\nhosts = [\"localhost\"]\nevery = \"1s\"\nrun_on_start = true\nmaintenance = [{ schedule = \"* * * * * *\", duration = \"1m\" }]\n\
         [[checks]]\nname = \"busy\"\nplatform = \"local\"\nscript = \"exit 1\"\nhosts = [\"localhost\"]\nevery = \"1s\"\nmaintenance = [{ schedule = \"0 0 29 2 *\", duration = \"1h\" }]\n",
    );
    let daemon = Daemon::start_with(common::jobwatch(), &config);
    rt.block_on(async {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let quiet = executions_of(&daemon.base, "quiet").await;
            let busy = executions_of(&daemon.base, "busy").await;
            let busy_failed = busy.iter().filter(|e| e["state"] == "failed").count();
            if quiet.len() >= 3 && busy_failed >= 2 {
                for e in &quiet {
                    assert_eq!(e["state"], "skipped", "{e:#}");
                    assert_eq!(e["origin"], "schedule", "no run at start either: {e:#}");
                    assert_eq!(e["trigger_status"], "maintenance", "{e:#}");
                    let reason = e["reason"].as_str().unwrap();
                    assert!(
                        reason.starts_with("inside a maintenance window (* * * * * * for 1m): "),
                        "{reason}"
                    );
                }
                break;
            }
            assert!(Instant::now() < until, "quiet: {quiet:#?}\nbusy: {busy:#?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // busy's failures fire an alert; quiet's skipped ticks none.
        let (_, alerts) = get_json(&daemon.base, "/v1/alerts").await;
        let checks: Vec<&str> = alerts["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["labels"]["check"].as_str().unwrap_or(""))
            .collect();
        assert!(checks.contains(&"busy"), "{alerts:#}");
        assert!(!checks.contains(&"quiet"), "{alerts:#}");
    });
}

/// `jobwatch ctl` with the daemon's server and `token`: exit code, stdout, stderr.
fn ctl(base: &str, token: Option<&str>, args: &[&str]) -> (i32, String, String) {
    let mut cmd = common::jobwatch();
    cmd.args(["ctl", "--server", base]);
    if let Some(t) = token {
        cmd.env("JOBWATCH_TOKEN", t);
    }
    let out = cmd.args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ctl_json(base: &str, args: &[&str]) -> Value {
    let mut all = vec!["--output", "json"];
    all.extend_from_slice(args);
    let (code, out, err) = ctl(base, Some(common::TOKEN), &all);
    assert_eq!(code, 0, "ctl {args:?}: {err}");
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("ctl {args:?} printed no JSON ({e}): {out}"))
}

fn ctl_table(base: &str, args: &[&str]) -> String {
    let (code, out, err) = ctl(base, Some(common::TOKEN), args);
    assert_eq!(code, 0, "ctl {args:?}: {err}");
    out
}

/// The table row that starts with `first` (a cell), split on runs of 3+ spaces.
fn row<'a>(table: &'a str, first: &str) -> Vec<&'a str> {
    table
        .lines()
        .find(|l| l.split("   ").next() == Some(first))
        .unwrap_or_else(|| panic!("no row {first} in:\n{table}"))
        .split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

#[test]
fn ctl_answers_every_subcommand_in_both_formats_against_a_live_daemon() {
    let rt = runtime();
    let console = common::Console::start(&rt);
    let base = console.daemon.base.as_str();

    // get checks
    let board = ctl_json(base, &["get", "checks"]);
    assert_eq!(board["totals"]["checks"], 5, "{board:#}");
    let table = ctl_table(base, &["get", "checks"]);
    assert_eq!(row(&table, "disk-check")[2], "failed", "{table}");
    assert_eq!(row(&table, "stuck-job")[2], "stuck", "{table}");
    assert_eq!(row(&table, "bad-account")[2], "trigger_failed", "{table}");
    let ok = row(&table, "nightly-ok");
    assert_eq!(ok[2], "succeeded");
    assert!(ok.contains(&"100%") && ok.last() == Some(&"+++"), "{ok:?}");
    assert!(table.contains("5 check(s) in all"), "{table}");
    let failed_only = ctl_json(base, &["get", "checks", "--status", "failed"]);
    let names: Vec<&str> = failed_only["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["disk-check", "muted"], "worst first, then by name");
    assert_eq!(
        failed_only["totals"]["checks"], 5,
        "totals are over every row"
    );

    // get executions
    let page = ctl_json(base, &["get", "executions", "--check", "nightly-ok"]);
    let runs = page["executions"].as_array().unwrap();
    assert_eq!(runs.len(), 3, "{page:#}");
    assert!(runs.iter().all(|e| e["state"] == "succeeded"));
    let failed = ctl_json(base, &["get", "executions", "--state", "failed"]);
    let checks: std::collections::BTreeSet<&str> = failed["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        checks.into_iter().collect::<Vec<_>>(),
        ["disk-check", "muted"]
    );
    let table = ctl_table(base, &["get", "executions", "--state", "active"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "a header and the stuck job: {table}");
    assert!(
        lines[0].starts_with("EXECUTION")
            && lines[1].contains("stuck-job")
            && lines[1].contains("running")
    );
    let stuck_id = lines[1].split_whitespace().next().unwrap().to_owned();

    // describe execution
    let disk_id = failed["executions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["check"] == "disk-check")
        .unwrap()["execution_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let full = ctl_json(base, &["describe", "execution", &disk_id]);
    assert_eq!(full["hosts"].as_array().unwrap().len(), 3);
    let text = ctl_table(base, &["describe", "execution", &disk_id]);
    assert!(text.contains("State          failed"), "{text}");
    let host_rows: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("HOST"))
        .skip(1)
        .take(3)
        .collect();
    assert!(
        host_rows[0].starts_with("0:10.0.0.2") || host_rows[0].starts_with("0:10.0.0.3"),
        "failing hosts first: {text}"
    );
    assert!(text.contains("310"), "{text}");
    assert!(host_rows[2].starts_with("0:10.0.0.1"), "{text}");

    // logs
    let log = ctl_table(base, &["logs", &disk_id, "0:10.0.0.3"]);
    assert_eq!(log, "checking /data\nERROR: /data is 97% full\n");
    let log = ctl_json(base, &["logs", &disk_id, "0:10.0.0.3"]);
    assert_eq!(log["log"], "checking /data\nERROR: /data is 97% full\n");
    let (code, _, err) = ctl(base, Some(common::TOKEN), &["logs", &disk_id, "0:10.9.9.9"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("refused (404)"), "{err}");

    // run
    let id = ctl_table(base, &["run", "nightly-ok"]);
    let id = id.trim();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    let accepted = ctl_json(base, &["run", "nightly-ok"]);
    assert!(accepted["execution_id"].is_string(), "{accepted}");

    // terminate: the stuck job ends as the platform reports it, and says who asked.
    let asked = ctl_json(base, &["terminate", &stuck_id]);
    assert_eq!(asked["terminated_by"], "token", "{asked}");
    let until = Instant::now() + Duration::from_secs(30);
    let ended = loop {
        let e = ctl_json(base, &["describe", "execution", &stuck_id]);
        if e["state"] != "running" {
            break e;
        }
        assert!(
            Instant::now() < until,
            "not ended 30 s after the terminate: {e:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(ended["terminated_by"], "token", "{ended:#}");
    let (code, _, err) = ctl(base, Some(common::TOKEN), &["terminate", &stuck_id]);
    assert_eq!(code, 1);
    assert!(err.contains("already ended"), "{err}");
    let text = ctl_table(base, &["describe", "execution", &stuck_id]);
    assert!(text.contains("Terminated by  token"), "{text}");

    // silence list / add / expire
    let list = ctl_json(base, &["silence", "list"]);
    assert_eq!(list["silences"][0]["id"], console.silence_id.as_str());
    let table = ctl_table(base, &["silence", "list"]);
    let r = row(&table, &console.silence_id);
    assert_eq!(r[1], "active");
    assert_eq!(r[2], "check=\"muted\"");
    assert!(
        r.contains(&"alice") && r.contains(&"known: /data cleanup tonight"),
        "{r:?}"
    );
    let made = ctl_json(
        base,
        &[
            "silence",
            "add",
            "check=~disk-.*",
            "severity!=info",
            "--duration",
            "30m",
            "--comment",
            "replacing the disk",
        ],
    );
    assert_eq!(
        made["matchers_text"],
        "check=~\"disk-.*\", severity!=\"info\""
    );
    assert_eq!(made["created_by"], "token");
    let new_id = ctl_table(
        base,
        &[
            "silence",
            "add",
            "check=bad-account",
            "--comment",
            "account being created",
            "--author",
            "bob",
        ],
    );
    let new_id = new_id.trim().to_owned();
    let active = ctl_json(base, &["silence", "list", "--state", "active"]);
    assert_eq!(active["silences"].as_array().unwrap().len(), 3);
    let expired = ctl_json(base, &["silence", "expire", &new_id]);
    assert_eq!(expired[0]["state"], "expired");
    let out = ctl_table(base, &["silence", "expire", made["id"].as_str().unwrap()]);
    assert_eq!(out, format!("{} expired\n", made["id"].as_str().unwrap()));
    let active = ctl_json(base, &["silence", "list", "--state", "active"]);
    assert_eq!(active["silences"].as_array().unwrap().len(), 1);
    let (code, _, err) = ctl(
        base,
        Some(common::TOKEN),
        &["silence", "add", "check=~.*", "--comment", "everything"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("every alert"), "{err}");

    // Without a token: refused, nothing shown; an unreachable server is another exit code.
    let (code, out, err) = ctl(base, None, &["get", "checks"]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(err.contains("refused (401)"), "{err}");
    let (code, _, err) = ctl(
        &format!("http://127.0.0.1:{}", common::free_port()),
        Some(common::TOKEN),
        &["get", "checks"],
    );
    assert_eq!(code, 69, "{err}");
    assert!(err.contains("cannot reach"), "{err}");
    assert!(!err.contains(common::TOKEN));
}
