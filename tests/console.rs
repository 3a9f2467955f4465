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
    // The table form of terminate, on a second stuck run.
    let again = ctl_table(base, &["run", "stuck-job"]);
    let again = again.trim();
    let until = Instant::now() + Duration::from_secs(30);
    let out = loop {
        let (code, out, err) = ctl(base, Some(common::TOKEN), &["terminate", again]);
        if code == 0 {
            break out;
        }
        // Being submitted yet (409): not on the platform for a moment.
        assert!(err.contains("not on the platform yet"), "{err}");
        assert!(Instant::now() < until, "{err}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        out.starts_with(&format!("terminate asked for {again} (by token): ")),
        "{out}"
    );

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

    // Every change was logged with the token's name, never its value; so was a refusal.
    let (code, _, _) = ctl(base, Some("run-but-wrong"), &["run", "nightly-ok"]);
    assert_eq!(code, 1);
    std::thread::sleep(Duration::from_millis(300));
    let log = console.daemon.log.lock().unwrap().join("\n");
    let changes: Vec<&str> = log.lines().filter(|l| l.contains("API change")).collect();
    for (path, status) in [
        ("/v1/executions", "202"),
        (&*format!("/v1/executions/{stuck_id}/terminate"), "202"),
        ("/v1/silences", "201"),
        (&*format!("/v1/silences/{new_id}"), "200"),
        ("/v1/executions", "401"),
    ] {
        assert!(
            changes.iter().any(|l| {
                let who = if status == "401" {
                    "token=\"-\""
                } else {
                    "token=\"token\""
                };
                l.contains(&format!("path=\"{path}\""))
                    && l.contains(&format!("status={status}"))
                    && l.contains(who)
            }),
            "no audit line for {path} {status}:\n{}",
            changes.join("\n")
        );
    }
    assert!(!log.contains(common::TOKEN), "a token's value was logged");
    assert!(
        !log.contains("run-but-wrong"),
        "a refused token's value was logged"
    );

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

/// A self-signed certificate for 127.0.0.1 and its key (PEM files `<name>.crt`, `<name>.key`
/// in `dir`), made by the openssl command.
fn certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
        ])
        .args([
            "-subj",
            &format!("/CN=jobwatch-test-{name}"),
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .args([
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "keyUsage=digitalSignature",
            "-addext",
            "extendedKeyUsage=serverAuth",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// A client that trusts only `cert` and opens a new connection for every request.
fn trusting(cert: &Path) -> reqwest::Client {
    jobwatch::install_crypto_provider();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&std::fs::read(cert).unwrap()).unwrap()])
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

#[test]
fn the_listener_speaks_https_and_takes_a_renewed_certificate_without_a_restart() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let (cert_a, key_a) = certificate(dir.path(), "a");
    let (cert_b, key_b) = certificate(dir.path(), "b");
    let (served_cert, served_key) = (dir.path().join("served.crt"), dir.path().join("served.key"));
    std::fs::copy(&cert_a, &served_cert).unwrap();
    std::fs::copy(&key_a, &served_key).unwrap();
    let config = local_config(
        dir.path(),
        "[[checks]]\nname = \"a\"\nplatform = \"local\"\nscript = \"true\"\nhosts = [\"localhost\"]\n",
    );
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "listen = \"127.0.0.1:0\"",
        &format!(
            "listen = \"127.0.0.1:0\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"",
            served_cert.display(),
            served_key.display()
        ),
    );
    std::fs::write(&config, text).unwrap();
    let daemon = Daemon::start_with(common::jobwatch(), &config);
    assert!(
        daemon.base.starts_with("https://127.0.0.1:"),
        "{}",
        daemon.base
    );
    let plain = daemon.base.replacen("https://", "http://", 1);
    rt.block_on(async {
        let ok = |client: reqwest::Client, url: String| async move {
            match client.get(url).send().await {
                Ok(r) => Some(r.status().as_u16()),
                Err(e) => {
                    let mut text = e.to_string();
                    let mut source = std::error::Error::source(&e);
                    while let Some(s) = source {
                        text.push_str(&format!(": {s}"));
                        source = s.source();
                    }
                    eprintln!("request failed: {text}");
                    None
                }
            }
        };
        let healthz = format!("{}/healthz", daemon.base);
        assert_eq!(ok(trusting(&cert_a), healthz.clone()).await, Some(200));
        assert_eq!(
            ok(trusting(&cert_b), healthz.clone()).await,
            None,
            "b is not served yet"
        );
        assert_eq!(
            ok(common::client(), format!("{plain}/healthz")).await,
            None,
            "no plain HTTP"
        );
        // Renewed: the new pair is served to new connections within a few seconds.
        std::fs::copy(&cert_b, &served_cert).unwrap();
        std::fs::copy(&key_b, &served_key).unwrap();
        let until = Instant::now() + Duration::from_secs(15);
        while ok(trusting(&cert_b), healthz.clone()).await != Some(200) {
            assert!(
                Instant::now() < until,
                "the renewed certificate is not served 15 s later"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(
            ok(trusting(&cert_a), healthz.clone()).await,
            None,
            "a is no longer served"
        );
        // A broken renewal is refused: the previous pair goes on.
        std::fs::write(&served_cert, "-----BEGIN CERTIFICATE-----\nbroken\n").unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(ok(trusting(&cert_b), healthz.clone()).await, Some(200));
        // jobwatch ctl reaches it with the CA given.
        let (code, out, err) = {
            let out = common::jobwatch()
                .args(["ctl", "--server", &daemon.base, "--cacert"])
                .arg(&cert_b)
                .args(["--output", "json", "get", "checks"])
                .env("JOBWATCH_TOKEN", common::TOKEN)
                .output()
                .unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        };
        assert_eq!(code, Some(0), "{err}");
        assert!(out.contains("\"checks\""), "{out}");
        // The API behind it is the same, tokens and all.
        let resp = trusting(&cert_b)
            .get(format!("{}/v1/executions", daemon.base))
            .bearer_auth(common::TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
    });
    drop(daemon);

    // A key that is not the certificate's refuses to start, saying so.
    std::fs::copy(&cert_a, &served_cert).unwrap();
    std::fs::copy(&key_b, &served_key).unwrap();
    let out = common::jobwatch()
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot serve HTTPS") && err.contains("does not belong"),
        "{err}"
    );
}
