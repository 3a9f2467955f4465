//! Alerts as a user receives them: a real daemon running a real failing script, a real SMTP
//! server (Debian python3-aiosmtpd), a real Alertmanager (Debian prometheus-alertmanager), and
//! a webhook receiver that verifies signatures and goes down and up across a restart.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::{Daemon, client, get_json, runtime};
use serde_json::Value;

const SMTP_PASSWORD: &str = "smtp-Pa55word-9d1c";
const WEBHOOK_SECRET: &str = "whsec-3b8f0a";
/// What the failing script prints: a secret the log tail must not carry.
const SCRIPT_SECRET: &str = "hunter2-backup-pw";

/// A check that fails while `<dir>/fail` exists (printing a secret and an error), every 1 s.
fn config(dir: &Path, alerts: &str) -> PathBuf {
    let path = dir.join("jobwatch.toml");
    let fail = dir.join("fail");
    std::fs::write(&fail, "").unwrap();
    let text = format!(
        r#"
[agent]
data_dir = "{data}"
shutdown_grace = "3s"

[api]
listen = "127.0.0.1:0"

[platforms.local]
kind = "local"

[[checks]]
name = "nightly-backup"
platform = "local"
script = '''
if [ -f "{fail}" ]; then
  echo "connecting with password={SCRIPT_SECRET}"
  echo "ERROR: /backup is 97% full"
  exit 3
fi
echo "backup ok"
'''
hosts = ["localhost"]
timeout = "30s"
every = "1s"

{alerts}
"#,
        data = dir.join("data").display(),
        fail = fail.display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn wait_for<T>(what: &str, within: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + within;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            Instant::now() < until,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn get(base: &str, path: &str) -> Value {
    let rt = runtime();
    let (status, body) = rt.block_on(get_json(base, path));
    assert_eq!(status, 200, "{path}: {body}");
    body
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_real_smtp_server_receives_the_failure_email_with_hosts_and_log_tail_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let mail = dir.path().join("mail");
    std::fs::create_dir(&mail).unwrap();
    let mut smtp = Command::new("/usr/bin/python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/smtp_sink.py"
        ))
        .arg(&mail)
        .args(["jobwatch", SMTP_PASSWORD])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 with aiosmtpd (Debian python3-aiosmtpd)");
    let mut line = String::new();
    BufReader::new(smtp.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line
        .trim()
        .strip_prefix("PORT ")
        .expect("the SMTP sink's port")
        .parse()
        .unwrap();
    let _smtp = Killed(smtp);

    let config = config(
        dir.path(),
        &format!(
            r#"
[alerts.receivers.ops-mail]
type = "email"
smtp_host = "127.0.0.1"
smtp_port = {port}
tls = "none"
allow_plaintext_auth = true     # the test server speaks no TLS
username = "jobwatch"
from = "jobwatch <jobwatch@example.com>"
to = ["ops@example.com"]

[[alerts.routes]]
receiver = "ops-mail"
group_wait = "0s"
group_interval = "1s"
"#
        ),
    );
    let mut cmd = common::jobwatch();
    cmd.env(
        "JOBWATCH__ALERTS__RECEIVERS__OPS-MAIL__PASSWORD",
        SMTP_PASSWORD,
    );
    let daemon = Daemon::start_with(cmd, &config);

    let first = wait_for("the failure email", Duration::from_secs(30), || {
        mail.join("1.done").exists().then_some(1)
    });
    let read = |ext: &str| std::fs::read_to_string(mail.join(format!("{first}.{ext}"))).unwrap();
    let (subject, text, html, raw) = (read("subject"), read("txt"), read("html"), read("eml"));
    assert!(subject.starts_with("[FIRING] ExecutionFailed"), "{subject}");
    assert!(
        subject.contains("nightly-backup") && subject.contains("did not succeed"),
        "subject names check and reason: {subject}"
    );
    assert_eq!(read("done"), "ops@example.com");
    // The per-host table and the failing host's log tail, redacted.
    assert!(
        text.contains("localhost  failed") && text.contains("exit 3"),
        "{text}"
    );
    assert!(text.contains("ERROR: /backup is 97% full"), "{text}");
    assert!(text.contains("password=[REDACTED]"), "{text}");
    assert!(
        html.contains("<table") && html.contains("<td>localhost</td>") && html.contains("<pre"),
        "{html}"
    );
    for secret in [SCRIPT_SECRET, SMTP_PASSWORD] {
        assert!(
            !raw.contains(secret) && !text.contains(secret) && !html.contains(secret),
            "{secret} leaked"
        );
    }
    let notes = serde_json::to_string(&get(&daemon.base, "/v1/notifications")).unwrap();
    assert!(!notes.contains(SMTP_PASSWORD) && !notes.contains(SCRIPT_SECRET));

    // The check recovers: one resolved email follows; the failure is not sent again.
    std::fs::remove_file(dir.path().join("fail")).unwrap();
    let resolved = wait_for("the resolved email", Duration::from_secs(30), || {
        (2..10).find(|n| {
            mail.join(format!("{n}.done")).exists()
                && std::fs::read_to_string(mail.join(format!("{n}.subject")))
                    .unwrap()
                    .starts_with("[RESOLVED]")
        })
    });
    assert_eq!(resolved, 2, "exactly one email between firing and resolved");
    let alerts = get(&daemon.base, "/v1/alerts");
    let failed = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == "ExecutionFailed")
        .unwrap();
    assert_eq!(failed["status"], "resolved", "{failed}");
}

#[test]
fn a_real_alertmanager_shows_the_alert_firing_then_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let am_config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &am_config,
        "route:\n  receiver: sink\nreceivers:\n  - name: sink\n",
    )
    .unwrap();
    let port = common::free_port();
    let am = Killed(
        Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", am_config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("am").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-alertmanager (Debian package)"),
    );
    let am_base = format!("http://127.0.0.1:{port}");
    let rt = runtime();
    wait_for("Alertmanager ready", Duration::from_secs(30), || {
        rt.block_on(async { client().get(format!("{am_base}/-/ready")).send().await.ok() })
            .filter(|r| r.status().is_success())
    });

    let config = config(
        dir.path(),
        &format!(
            r#"
[alerts.receivers.am]
type = "alertmanager"
urls = ["{am_base}"]
resend_delay = "2s"
resolve_resend = "10s"

[[alerts.routes]]
receiver = "am"
match = {{ alertname = "ExecutionFailed" }}
group_wait = "0s"
group_interval = "1s"
"#
        ),
    );
    let daemon = Daemon::start_with(common::jobwatch(), &config);
    let am_alerts = |rt: &tokio::runtime::Runtime| -> Vec<Value> {
        let (status, body) = rt.block_on(get_json(&am_base, "/api/v2/alerts"));
        assert_eq!(status, 200);
        body.as_array().cloned().unwrap_or_default()
    };
    let firing = wait_for(
        "the alert firing in Alertmanager",
        Duration::from_secs(30),
        || {
            am_alerts(&rt)
                .into_iter()
                .find(|a| a["labels"]["alertname"] == "ExecutionFailed")
        },
    );
    assert_eq!(firing["status"]["state"], "active", "{firing}");
    let labels: BTreeMap<String, String> =
        serde_json::from_value(firing["labels"].clone()).unwrap();
    let expected: BTreeMap<String, String> = [
        ("alertname", "ExecutionFailed"),
        ("check", "nightly-backup"),
        ("platform", "local"),
        ("severity", "critical"),
        ("class", "execution"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(labels, expected, "stable labels only");
    assert!(
        firing["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("did not succeed")
    );
    // endsAt is refreshed while it fires: still active well past the first endsAt (4 × 2 s).
    std::thread::sleep(Duration::from_secs(10));
    let still = am_alerts(&rt);
    assert!(
        still
            .iter()
            .any(|a| a["labels"]["alertname"] == "ExecutionFailed"
                && a["status"]["state"] == "active"),
        "{still:?}"
    );

    std::fs::remove_file(dir.path().join("fail")).unwrap();
    wait_for(
        "the alert resolved in Alertmanager",
        Duration::from_secs(30),
        || {
            (!am_alerts(&rt)
                .iter()
                .any(|a| a["labels"]["alertname"] == "ExecutionFailed"))
            .then_some(())
        },
    );
    let notes = get(&daemon.base, "/v1/notifications?receiver=am");
    let notes = notes["notifications"].as_array().unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n["status"] == "resolved" && n["outcome"] == "delivered"),
        "{notes:?}"
    );
    drop(am);
}

/// A webhook receiver that verifies each signature and can be down (503).
#[derive(Default)]
struct Hook {
    up: AtomicBool,
    /// (fingerprint, status) of every verified delivery.
    received: Mutex<Vec<(String, String)>>,
    bad_signatures: Mutex<usize>,
}

/// Whether the request carries a valid, fresh signature of `body` (the documented scheme,
/// recomputed here independently).
fn signed(headers: &HeaderMap, body: &[u8]) -> bool {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (ts, sig) = (
        header("x-jobwatch-timestamp"),
        header("x-jobwatch-signature"),
    );
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    mac.update(ts.as_bytes());
    mac.update(body);
    let expected = hex::decode(sig.strip_prefix("sha256=").unwrap_or("")).unwrap_or_default();
    let age = chrono::Utc::now().timestamp() - ts.parse::<i64>().unwrap_or(0);
    mac.verify_slice(&expected).is_ok() && (0..300).contains(&age)
}

async fn hook(State(h): State<Arc<Hook>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if !h.up.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    if !signed(&headers, &body) {
        *h.bad_signatures.lock().unwrap() += 1;
        return StatusCode::UNAUTHORIZED;
    }
    let doc: Value = serde_json::from_slice(&body).unwrap();
    for a in doc["alerts"].as_array().unwrap() {
        h.received.lock().unwrap().push((
            a["fingerprint"].as_str().unwrap().to_owned(),
            a["status"].as_str().unwrap().to_owned(),
        ));
    }
    StatusCode::OK
}

fn serve_hook(rt: &tokio::runtime::Runtime, up: bool) -> (Arc<Hook>, String) {
    let state = Arc::new(Hook::default());
    state.up.store(up, Ordering::SeqCst);
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(state.clone());
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move { axum::serve(listener, app).await });
    (state, format!("http://{addr}/hook"))
}

#[test]
fn a_dead_webhook_gets_its_alert_after_recovery_across_a_restart_without_blocking_others() {
    let rt = runtime();
    let (dead, dead_url) = serve_hook(&rt, false);
    let (alive, alive_url) = serve_hook(&rt, true);
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        &format!(
            r#"
[alerts.receivers.dead]
type = "webhook"
url = "{dead_url}"
secret = "{WEBHOOK_SECRET}"

[alerts.receivers.alive]
type = "webhook"
url = "{alive_url}"
secret = "{WEBHOOK_SECRET}"

[[alerts.routes]]
receiver = "dead"
match = {{ alertname = "ExecutionFailed" }}
group_wait = "0s"
group_interval = "1s"
continue = true

[[alerts.routes]]
receiver = "alive"
match = {{ alertname = "ExecutionFailed" }}
group_wait = "0s"
group_interval = "1s"
"#
        ),
    );
    let daemon = Daemon::start_with(common::jobwatch(), &config);
    // The live receiver is not held up by the dead one.
    wait_for(
        "the live receiver's delivery",
        Duration::from_secs(30),
        || (!alive.received.lock().unwrap().is_empty()).then_some(()),
    );
    // The dead one's notification is errored, with the reason stored and shown.
    let errored = wait_for("an errored notification", Duration::from_secs(30), || {
        let notes = get(&daemon.base, "/v1/notifications?receiver=dead");
        notes["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["outcome"] == "errored")
            .cloned()
    });
    assert!(
        errored["last_error"].as_str().unwrap().contains("503"),
        "{errored}"
    );
    assert!(errored["attempts"].as_u64().unwrap() >= 1);
    let fingerprint = errored["fingerprint"].as_str().unwrap().to_owned();

    // The agent dies; the receiver comes back; the agent restarts and delivers.
    drop(daemon); // kill -9
    dead.up.store(true, Ordering::SeqCst);
    let daemon = Daemon::start_with(common::jobwatch(), &config);
    wait_for(
        "the delivery after recovery",
        Duration::from_secs(30),
        || (!dead.received.lock().unwrap().is_empty()).then_some(()),
    );
    let delivered = wait_for("the outcome recorded", Duration::from_secs(10), || {
        let notes = get(&daemon.base, "/v1/notifications?receiver=dead");
        notes["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == errored["id"] && n["outcome"] == "delivered")
            .cloned()
    });
    assert!(delivered["attempts"].as_u64().unwrap() >= 2, "{delivered}");
    assert!(delivered["last_error"].is_null());

    // Recovery of the check resolves the alert at both receivers.
    std::fs::remove_file(dir.path().join("fail")).unwrap();
    for hook in [&dead, &alive] {
        wait_for("the resolved notification", Duration::from_secs(30), || {
            hook.received
                .lock()
                .unwrap()
                .iter()
                .any(|(_, s)| s == "resolved")
                .then_some(())
        });
    }
    for hook in [&dead, &alive] {
        let received = hook.received.lock().unwrap().clone();
        let firing = received
            .iter()
            .filter(|(f, s)| *f == fingerprint && s == "firing")
            .count();
        assert!(
            (1..=2).contains(&firing),
            "at most one duplicate: {received:?}"
        );
        assert_eq!(*hook.bad_signatures.lock().unwrap(), 0);
    }
}

/// One alert delivered: (fingerprint, status, notification id, version, arrival).
type Arrival = (String, String, i64, i64, Instant);

/// A webhook receiver that counts every request (answered 503 while down) and records, in
/// arrival order, each alert delivered with its notification id and version.
#[derive(Default)]
struct Recorder {
    up: AtomicBool,
    requests: Mutex<Vec<Instant>>,
    delivered: Mutex<Vec<Arrival>>,
    problems: Mutex<Vec<String>>,
}

async fn record(State(h): State<Arc<Recorder>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    h.requests.lock().unwrap().push(Instant::now());
    if !h.up.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let ids = headers
        .get("x-jobwatch-notifications")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let key = headers
        .get("x-jobwatch-idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if key != jobwatch::notify::webhook::idempotency_key(&ids) || !key.starts_with("jw-") {
        h.problems
            .lock()
            .unwrap()
            .push(format!("idempotency key {key:?} for {ids:?}"));
    }
    if !signed(&headers, &body) {
        h.problems.lock().unwrap().push("bad signature".into());
        return StatusCode::UNAUTHORIZED;
    }
    let doc: Value = serde_json::from_slice(&body).unwrap();
    for a in doc["alerts"].as_array().unwrap() {
        let (id, version) = (
            a["notification"]["id"].as_i64().unwrap_or(-1),
            a["notification"]["version"].as_i64().unwrap_or(-1),
        );
        if !ids.split(',').any(|i| i == format!("{id}.{version}")) {
            h.problems
                .lock()
                .unwrap()
                .push(format!("{id}.{version} not in the header {ids:?}"));
        }
        h.delivered.lock().unwrap().push((
            a["fingerprint"].as_str().unwrap().to_owned(),
            a["status"].as_str().unwrap().to_owned(),
            id,
            version,
            Instant::now(),
        ));
    }
    StatusCode::OK
}

/// Starts a [`Recorder`] webhook on `rt` (up when `up`); it and its URL.
fn serve_recorder(rt: &tokio::runtime::Runtime, up: bool) -> (Arc<Recorder>, String) {
    let hook = Arc::new(Recorder::default());
    hook.up.store(up, Ordering::SeqCst);
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(record))
        .with_state(hook.clone());
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    rt.spawn(async move { axum::serve(listener, app).await });
    (hook, url)
}

/// A daemon config in `dir`: local checks, each `(name, file)` failing while `file` exists,
/// every second; their ExecutionFailed alerts go to the webhook at `url` at once, grouped by
/// check.
fn failing_checks_config(dir: &Path, checks: &[(&str, &Path)], url: &str) -> PathBuf {
    let checks: String = checks
        .iter()
        .map(|(name, file)| {
            format!(
                "[[checks]]\nname = \"{name}\"\nplatform = \"local\"\nscript = 'test ! -f \"{}\"'\nhosts = [\"localhost\"]\nevery = \"1s\"\n",
                file.display()
            )
        })
        .collect();
    let config = dir.join("jobwatch.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[agent]
data_dir = "{data}"
[api]
listen = "127.0.0.1:0"
[platforms.local]
kind = "local"
{checks}
[alerts.receivers.hook]
type = "webhook"
url = "{url}"
secret = "{WEBHOOK_SECRET}"
[[alerts.routes]]
receiver = "hook"
match = {{ alertname = "ExecutionFailed" }}
group_by = ["alertname", "check"]
group_wait = "0s"
group_interval = "1s"
"#,
            data = dir.join("data").display()
        ),
    )
    .unwrap();
    config
}

#[test]
fn a_receiver_back_after_an_outage_gets_everything_in_order_within_a_minute_and_was_only_probed() {
    let rt = runtime();
    let (hook, url) = serve_recorder(&rt, false);
    let dir = tempfile::tempdir().unwrap();
    let fail = dir.path().join("fail");
    std::fs::write(&fail, "").unwrap();
    let config = failing_checks_config(
        dir.path(),
        &[("db", &fail), ("web", &fail), ("cache", &fail)],
        &url,
    );
    let daemon = Daemon::start_with(common::jobwatch(), &config);
    let firing = |status: &str| {
        get(&daemon.base, "/v1/alerts")["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["status"] == status && a["labels"]["alertname"] == "ExecutionFailed")
            .count()
    };
    wait_for("three alerts firing", Duration::from_secs(30), || {
        (firing("firing") == 3).then_some(())
    });
    wait_for("a first attempt", Duration::from_secs(30), || {
        (!hook.requests.lock().unwrap().is_empty()).then_some(())
    });
    // The checks recover while the receiver is still down: the alerts resolve unseen.
    std::fs::remove_file(&fail).unwrap();
    wait_for("three alerts resolved", Duration::from_secs(30), || {
        (firing("resolved") == 3).then_some(())
    });
    // Down a while longer: six notifications wait, but the receiver is only probed.
    let down_since = *hook.requests.lock().unwrap().first().unwrap();
    std::thread::sleep(Duration::from_secs(8));
    let down_for = down_since.elapsed();
    let probes = hook.requests.lock().unwrap().len();
    // 1 s doubling (jittered down to half): at most ~log2 of the outage, plus the first try.
    assert!(
        probes <= 8,
        "{probes} requests in {down_for:?} while down: one per notification, not one per probe"
    );
    assert!(hook.delivered.lock().unwrap().is_empty());

    let back = Instant::now();
    hook.up.store(true, Ordering::SeqCst);
    let until = Instant::now() + Duration::from_secs(60);
    while hook.delivered.lock().unwrap().len() < 6 {
        assert!(
            Instant::now() < until,
            "not everything delivered within 60 s: {:?}\noutbox: {:#}",
            hook.delivered.lock().unwrap(),
            get(&daemon.base, "/v1/notifications?receiver=hook")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let delivered = hook.delivered.lock().unwrap().clone();
    let last = delivered.iter().map(|d| d.4).max().unwrap();
    assert!(
        last.duration_since(back) <= Duration::from_secs(60),
        "took {:?}",
        last.duration_since(back)
    );
    // Each alert: firing, then resolved — both, in order, once each.
    let fingerprints: std::collections::BTreeSet<&String> =
        delivered.iter().map(|d| &d.0).collect();
    assert_eq!(fingerprints.len(), 3, "{delivered:?}");
    for fp in fingerprints {
        let seq: Vec<&str> = delivered
            .iter()
            .filter(|d| &d.0 == fp)
            .map(|d| d.1.as_str())
            .collect();
        assert_eq!(seq, ["firing", "resolved"], "{fp}: {delivered:?}");
    }
    let ids: std::collections::BTreeSet<(i64, i64)> =
        delivered.iter().map(|d| (d.2, d.3)).collect();
    assert_eq!(
        ids.len(),
        6,
        "every notification carries its own id and version: {delivered:?}"
    );
    assert!(
        hook.problems.lock().unwrap().is_empty(),
        "{:?}",
        hook.problems.lock().unwrap()
    );
    // Delivered means recorded so: nothing waits.
    wait_for("an empty outbox", Duration::from_secs(10), || {
        let notes = get(&daemon.base, "/v1/notifications?receiver=hook");
        notes["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["outcome"] == "delivered")
            .then_some(())
    });
    drop(daemon);
}

#[test]
fn a_silenced_alert_is_recorded_silenced_and_sent_when_the_silence_is_expired_if_still_firing() {
    let rt = runtime();
    let (hook, url) = serve_recorder(&rt, true);
    // db and web fail while `fail` exists, cache while `fail-cache` does.
    let dir = tempfile::tempdir().unwrap();
    let fail = dir.path().join("fail");
    let fail_cache = dir.path().join("fail-cache");
    let config = failing_checks_config(
        dir.path(),
        &[("db", &fail), ("web", &fail), ("cache", &fail_cache)],
        &url,
    );
    let daemon = Daemon::start_with(common::jobwatch(), &config);
    // The daemon is killed and started again below: its base URL changes.
    let base_now = std::cell::RefCell::new(daemon.base.clone());
    let base = base_now.borrow().clone();

    // A silence for db and cache, made before anything fails. A run token may not.
    let body =
        r#"{"matchers":["check=~\"db|cache\""],"duration":"1h","comment":"disk swap on db-01"}"#;
    let (status, refused) = rt.block_on(common::post(&base, "/v1/silences", body, Some("wrong")));
    assert_eq!(status, 401, "{refused}");
    let (status, silence) = rt.block_on(common::post(
        &base,
        "/v1/silences",
        body,
        Some(common::TOKEN),
    ));
    assert_eq!(status, 201, "{silence}");
    assert_eq!(silence["state"], "active");
    assert_eq!(
        silence["created_by"], "token",
        "the author defaults to the token's name"
    );
    let silence_id = silence["id"].as_str().unwrap().to_owned();
    std::fs::write(&fail, "").unwrap();
    std::fs::write(&fail_cache, "").unwrap();

    let fingerprint_of = |check: &str| -> Option<String> {
        get(&base_now.borrow(), "/v1/alerts")["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["labels"]["check"] == check && a["status"] == "firing")
            .map(|a| a["fingerprint"].as_str().unwrap().to_owned())
    };
    let notifications =
        || get(&base_now.borrow(), "/v1/notifications?receiver=hook")["notifications"].clone();
    let outcome_of = |fp: &str| -> Vec<(String, Option<String>)> {
        notifications()
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["fingerprint"] == fp)
            .map(|n| {
                (
                    n["outcome"].as_str().unwrap().to_owned(),
                    n["silenced_by"].as_str().map(str::to_owned),
                )
            })
            .collect()
    };
    let (db, web, cache) = wait_for("three alerts firing", Duration::from_secs(30), || {
        Some((
            fingerprint_of("db")?,
            fingerprint_of("web")?,
            fingerprint_of("cache")?,
        ))
    });
    let delivered = |fp: &str| {
        hook.delivered
            .lock()
            .unwrap()
            .iter()
            .filter(|d| d.0 == fp)
            .count()
    };
    wait_for("web's firing delivered", Duration::from_secs(30), || {
        (delivered(&web) > 0).then_some(())
    });
    for fp in [&db, &cache] {
        wait_for("the silenced notification", Duration::from_secs(30), || {
            (outcome_of(fp) == [("silenced".to_owned(), Some(silence_id.clone()))]).then_some(())
        });
    }
    assert_eq!(
        delivered(&db) + delivered(&cache),
        0,
        "a silenced alert was sent"
    );
    let metrics = rt.block_on(common::metrics_text(&base));
    assert!(
        metrics
            .contains("jobwatch_alert_notifications_total{receiver=\"hook\",result=\"silenced\"}"),
        "{metrics}"
    );

    // cache recovers under the silence: its firing was never sent, so nothing will be.
    std::fs::remove_file(&fail_cache).unwrap();
    wait_for("cache resolved", Duration::from_secs(30), || {
        fingerprint_of("cache").is_none().then_some(())
    });
    wait_for(
        "cache's notification dropped",
        Duration::from_secs(10),
        || {
            (outcome_of(&cache)
                .iter()
                .map(|o| o.0.as_str())
                .collect::<Vec<_>>()
                == ["dropped"])
            .then_some(())
        },
    );

    // kill -9 while db's notification waits silenced: after the next start it still waits,
    // though db keeps failing every second.
    drop(daemon);
    let daemon = Daemon::start_with(common::jobwatch(), &config);
    *base_now.borrow_mut() = daemon.base.clone();
    let base = daemon.base.clone();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        delivered(&db),
        0,
        "a silenced alert was sent after a restart"
    );
    assert_eq!(
        outcome_of(&db),
        [("silenced".to_owned(), Some(silence_id.clone()))],
        "still held after kill -9"
    );

    // Expired by hand: db, still firing, is sent at once; cache stays unsent.
    let expired_at = Instant::now();
    let (status, expired): (u16, Value) = rt.block_on(async {
        let response = common::authed()
            .delete(format!("{base}/v1/silences/{silence_id}"))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    });
    assert_eq!(status, 200, "{expired}");
    assert_eq!(expired["state"], "expired");
    assert_eq!(expired["expired_by"], "token");
    wait_for(
        "db's firing delivered after the silence",
        Duration::from_secs(15),
        || (delivered(&db) > 0).then_some(()),
    );
    assert!(
        expired_at.elapsed() < Duration::from_secs(10),
        "sent {:?} after the silence ended",
        expired_at.elapsed()
    );
    let db_outcomes = outcome_of(&db);
    assert_eq!(
        db_outcomes[db_outcomes.len() - 1],
        ("delivered".to_owned(), Some(silence_id.clone())),
        "the log still says which silence held it: {db_outcomes:?}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        delivered(&cache),
        0,
        "a resolved alert's silenced firing was sent"
    );
    assert!(hook.problems.lock().unwrap().is_empty());
    // The silence is listed as expired; the active list is empty.
    let active = get(&base, "/v1/silences?state=active");
    assert_eq!(active["silences"].as_array().unwrap().len(), 0, "{active}");
    drop(daemon);
}
