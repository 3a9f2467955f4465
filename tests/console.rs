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
