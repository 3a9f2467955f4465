//! Shared test harness: an in-process bk-job emulator on its own runtime, a config file
//! pointing at it, and the real `jobwatch` binary run against both.

#![allow(dead_code)]

pub mod browser;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use bkjob_emulator::{Emulator, Scenario};
use serde_json::Value;

/// The app secret every test scenario accepts; tests assert it never shows.
pub const SECRET: &str = "s3cr3t-Emulator-Token-42";

/// A running emulator and the runtime that serves it.
pub struct Platform {
    pub emulator: Emulator,
    _runtime: tokio::runtime::Runtime,
}

/// Starts an emulator with `scenario` (TOML). `[auth]` is added with [`SECRET`] unless given.
pub fn emulator(scenario: &str) -> Platform {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let text = if scenario.contains("[auth]") {
        scenario.to_owned()
    } else {
        format!("[auth]\napp_code = \"jobwatch\"\napp_secret = \"{SECRET}\"\n{scenario}")
    };
    let scenario = Scenario::from_toml(&text).expect("valid scenario");
    let emulator = runtime
        .block_on(Emulator::start("127.0.0.1:0".parse().unwrap(), scenario))
        .unwrap();
    Platform {
        emulator,
        _runtime: runtime,
    }
}

/// Three hosts ending 9, 310 and 104 (exit 3), each with a log.
pub const THREE_HOSTS: &str = r#"
[[hosts]]
bk_host_id = 101
ip = "10.0.0.1"
duration = "150ms"
status = 9
log = "disk ok\nall checks passed\n"

[[hosts]]
bk_host_id = 102
ip = "10.0.0.2"
start_after = "50ms"
duration = "100ms"
status = 310
error_code = 117
log = "GSE: agent heartbeat lost\n"

[[hosts]]
bk_host_id = 103
ip = "10.0.0.3"
duration = "250ms"
status = 104
exit_code = 3
log = "checking /data\nERROR: /data is 97% full\n"
"#;

/// A temp dir with `jobwatch.toml` holding a `bk` platform at the emulator's `door` and the
/// given checks (TOML text).
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

pub fn config_for(platform: &Platform, door: &str, checks: &str) -> Setup {
    let url = if door == "esb" {
        platform.emulator.esb_url()
    } else {
        platform.emulator.apigw_url()
    };
    config_with_endpoints(&[url], door, checks)
}

pub fn config_with_endpoints(endpoints: &[String], door: &str, checks: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("jobwatch.toml");
    let platform = bkjob_emulator::jobwatch_platform_toml(
        "bk",
        endpoints,
        door,
        "request_timeout = \"2s\"\nmax_requests_per_second = 2000",
    );
    std::fs::write(&config, format!("{platform}{checks}\n")).unwrap();
    Setup { dir, config }
}

/// A check named `name` on the `bk` platform targeting `hosts`, with fast polling.
pub fn check(name: &str, hosts: &str, extra: &str) -> String {
    format!(
        r#"
[[checks]]
name = "{name}"
platform = "bk"
script = "df -h /data"
hosts = {hosts}
account_alias = "root"
timeout = "30s"
{extra}
[checks.poll]
first_poll = "50ms"
interval = "100ms"
max_interval = "300ms"
"#
    )
}

/// The `jobwatch` binary, with no `JOBWATCH*` variable from the test's environment.
pub fn jobwatch() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jobwatch"));
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("JOBWATCH")) {
        cmd.env_remove(key);
    }
    cmd
}

/// The `jobwatch` binary with the `bk` platform's secret in its environment.
pub fn jobwatch_bk() -> Command {
    let mut cmd = jobwatch();
    cmd.env("JOBWATCH__PLATFORMS__BK__APP_SECRET", SECRET);
    cmd
}

/// Runs `jobwatch exec --output json` and returns (exit code, report, stderr).
pub fn exec_json(config: &Path, check: &str) -> (i32, Value, String) {
    let out = jobwatch_bk()
        .args(["exec", "--config"])
        .arg(config)
        .args(["--check", check, "--output", "json"])
        .output()
        .unwrap();
    parse(out)
}

pub fn parse(out: Output) -> (i32, Value, String) {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stdout.contains(SECRET) && !stderr.contains(SECRET),
        "the app secret leaked:\n{stdout}\n{stderr}"
    );
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}\nstderr:\n{stderr}"));
    (out.status.code().unwrap_or(-1), report, stderr)
}

/// The host entry whose `bk_host_id` is `id`.
pub fn host(report: &Value, id: u64) -> &Value {
    report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["bk_host_id"] == id)
        .unwrap_or_else(|| panic!("no host {id} in {report:#}"))
}

/// The API token the test daemons run with.
pub const TOKEN: &str = "test-token-0123456789";

/// A running daemon and where it listens.
pub struct Daemon {
    pub child: Child,
    pub base: String,
    /// How many unfinished executions it resumed at start.
    pub resumed: usize,
    /// What it printed on stderr up to where it listens (that line included).
    pub printed: Vec<String>,
    /// Every line it printed on stderr so far.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Daemon {
    pub fn start(config: &Path) -> Daemon {
        Self::start_with(jobwatch_bk(), config)
    }

    /// Starts `jobwatch run` from `cmd` (with its environment) and waits — at most 60 s —
    /// for the line saying where it listens; a daemon that exits or hangs before fails the
    /// test with what it printed.
    pub fn start_with(mut cmd: Command, config: &Path) -> Daemon {
        let mut child = cmd
            .args(["run", "--config"])
            .arg(config)
            .env("JOBWATCH__API__TOKEN", TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = log.clone();
        // Reads every line, so the daemon never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                kept.lock().unwrap().push(line.clone());
                if tx.send(line).is_err() {
                    // Nobody waits any more: keep draining.
                    continue;
                }
            }
        });
        let until = std::time::Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        let (base, resumed) = loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let found = jobwatch::daemon::parse_listening_line(&line);
                    seen.push(line);
                    if let Some(found) = found {
                        break found;
                    }
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "the daemon did not say where it listens ({e}); it printed:\n{}",
                        seen.join("\n")
                    );
                }
            }
        };
        Daemon {
            child,
            base,
            resumed,
            printed: seen,
            log,
        }
    }

    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port free right now (bound, read back, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub fn client() -> reqwest::Client {
    jobwatch::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A client that sends [`TOKEN`] with every request.
pub fn authed() -> reqwest::Client {
    jobwatch::install_crypto_provider();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&format!("Bearer {TOKEN}")).unwrap(),
    );
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .default_headers(headers)
        .build()
        .unwrap()
}

pub async fn post(base: &str, path: &str, body: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = client()
        .post(format!("{base}{path}"))
        .header("Content-Type", "application/json")
        .body(body.to_owned());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Starts an execution of `check` through `POST /v1/executions` (with [`TOKEN`]) on the
/// daemon at `base`; its id.
pub async fn start_execution(base: &str, check: &str) -> String {
    let body = serde_json::json!({ "check": check }).to_string();
    let (status, accepted) = post(base, "/v1/executions", &body, Some(TOKEN)).await;
    assert_eq!(status, 202, "{accepted}");
    accepted["execution_id"].as_str().unwrap().to_owned()
}

/// Waits (bounded, polling the API every 50 ms) until execution `id` has ended; returns it.
pub async fn wait_ended(base: &str, id: &str, within: Duration) -> Value {
    let until = std::time::Instant::now() + within;
    loop {
        let (status, e) = get_json(base, &format!("/v1/executions/{id}")).await;
        assert_eq!(status, 200, "{e}");
        if e["state"] != "pending" && e["state"] != "running" {
            return e;
        }
        assert!(std::time::Instant::now() < until, "{id} did not end: {e:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A daemon's `/metrics` text.
pub async fn metrics_text(base: &str) -> String {
    client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of the series `series` (name and labels, as exposed) on a daemon's `/metrics`.
pub async fn metric(base: &str, series: &str) -> f64 {
    let text = metrics_text(base).await;
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{series} ")))
        .unwrap_or_else(|| panic!("{series} is not exposed"));
    line.rsplit(' ').next().unwrap().parse::<f64>().unwrap()
}

/// When an ended execution's end was stored, epoch ms (its start plus its duration).
pub fn ended_ms(e: &Value) -> i64 {
    e["started_at_ms"].as_i64().unwrap() + (e["duration_seconds"].as_f64().unwrap() * 1000.0) as i64
}

/// `GET base+path` with [`TOKEN`]: status and JSON body (`Null` when not JSON).
pub async fn get_json(base: &str, path: &str) -> (u16, Value) {
    let resp = client()
        .get(format!("{base}{path}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The documented bk-job bodies in `dir` (`*.json`), by file name, sorted.
pub fn bkjob_fixtures(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut list: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    list.sort();
    list
}

/// An in-process daemon API over a real SQLite file (no schedule runs, the local platform,
/// one check `a`, the API token [`TOKEN`]); `extra` is more TOML, written right after the
/// token in `[api]` (it may open other tables).
pub struct InProcessApi {
    pub router: axum::Router,
    pub store: std::sync::Arc<dyn jobwatch::store::Store>,
    pub runner: std::sync::Arc<jobwatch::daemon::Runner>,
    _dir: tempfile::TempDir,
}

impl InProcessApi {
    /// A router over a fresh store, with the token [`TOKEN`] (and `extra` TOML right after it
    /// in `[api]`).
    pub fn start(rt: &tokio::runtime::Runtime, extra: &str) -> InProcessApi {
        Self::start_text(rt, &format!("token = \"{TOKEN}\"\n{extra}"))
    }

    /// A router without any token (every route open).
    pub fn start_without_token(rt: &tokio::runtime::Runtime) -> InProcessApi {
        Self::start_text(rt, "")
    }

    fn start_text(rt: &tokio::runtime::Runtime, api: &str) -> InProcessApi {
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[agent]\ndata_dir = \"{}\"\n[api]\n{api}\n[platforms.local]\nkind = \"local\"\n[[checks]]\nname = \"a\"\nplatform = \"local\"\nscript = \"true\"\nhosts = [\"localhost\"]\n",
            dir.path().display()
        );
        let config = Arc::new(jobwatch::config::load_text(&text, "test", Vec::new()).unwrap());
        rt.block_on(async {
            let store: Arc<dyn jobwatch::store::Store> = Arc::new(
                jobwatch::store::SqliteStore::open(dir.path())
                    .await
                    .unwrap(),
            );
            let mut platforms = std::collections::BTreeMap::new();
            platforms.insert(
                "local".to_owned(),
                jobwatch::platform::build(&config.platforms["local"], dir.path()).unwrap(),
            );
            let metrics = jobwatch::metrics::global();
            let runner = jobwatch::daemon::Runner::new(config.clone(), platforms, store.clone());
            let router =
                jobwatch::api::router(jobwatch::api::AppState::new(runner.clone(), metrics));
            InProcessApi {
                router,
                store,
                runner,
                _dir: dir,
            }
        })
    }

    /// How many executions are stored.
    pub async fn count(&self) -> usize {
        self.store
            .list(&jobwatch::store::ListQuery {
                which: jobwatch::store::Which::All,
                check: None,
                limit: 1000,
                cursor: None,
            })
            .await
            .unwrap()
            .len()
    }

    /// Sends one request with `headers` through the router: status, headers and body text.
    pub async fn call_with(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, axum::http::HeaderMap, String) {
        use tower::ServiceExt as _;
        let mut req = axum::http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(axum::body::Body::from(body.to_owned())).unwrap();
        let response = self.router.clone().oneshot(req).await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
            .await
            .unwrap();
        (
            status,
            headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    /// Sends one request through the router (no process, no socket): status and body.
    pub async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: &str,
    ) -> (u16, Value) {
        use tower::ServiceExt as _;
        let mut req = axum::http::Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let req = req
            .header("Content-Type", "application/json")
            .body(axum::body::Body::from(body.to_owned()))
            .unwrap();
        let response = self.router.clone().oneshot(req).await.unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

/// The hosts of the console's mixed history: 101 succeeds, 102 loses its agent (310), 103
/// fails (exit 3), 104 never ends.
pub const CONSOLE_HOSTS: &str = r#"
[[hosts]]
bk_host_id = 101
ip = "10.0.0.1"
duration = "100ms"
status = 9
log = "disk ok\nall checks passed\n"

[[hosts]]
bk_host_id = 102
ip = "10.0.0.2"
duration = "100ms"
status = 310
error_code = 117
log = "GSE: agent heartbeat lost\n"

[[hosts]]
bk_host_id = 103
ip = "10.0.0.3"
duration = "150ms"
status = 104
exit_code = 3
log = "checking /data\nERROR: /data is 97% full\n"

[[hosts]]
bk_host_id = 104
ip = "10.0.0.4"
duration = "100ms"
status = 7
hang = true
log = "waiting for the lock…\n"
"#;

/// A daemon on the bk-job emulator with a mixed history, as an operator meets it:
/// `nightly-ok` succeeded (three times), `disk-check` failed with a 310 host, `stuck-job`
/// runs with no progress (stuck), `bad-account` failed to trigger (1244003), `muted`
/// failed under a silence. Each check runs every hour (the first at start).
pub struct Console {
    pub platform: Platform,
    pub setup: Setup,
    pub daemon: Daemon,
    /// The silence covering `muted`.
    pub silence_id: String,
}

impl Console {
    pub fn start(rt: &tokio::runtime::Runtime) -> Console {
        let platform = emulator(CONSOLE_HOSTS);
        let every = "every = \"1h\"\nrun_on_start = true";
        let checks = [
            check("nightly-ok", "[\"0:10.0.0.1\"]", every),
            check(
                "disk-check",
                "[\"0:10.0.0.1\", \"0:10.0.0.2\", \"0:10.0.0.3\"]",
                every,
            ),
            check("stuck-job", "[\"0:10.0.0.4\"]", every)
                + "stuck_after = \"1s\"\nstraggler_after = \"1s\"\n",
            check("bad-account", "[\"0:10.0.0.1\"]", every)
                .replace("account_alias = \"root\"", "account_alias = \"nobody\""),
            check("muted", "[\"0:10.0.0.3\"]", "every = \"1h\""),
        ]
        .concat()
        .replace("timeout = \"30s\"", "timeout = \"1h\"");
        let setup = config_for(&platform, "apigw", "");
        let dir = setup.dir.path().to_owned();
        let text = std::fs::read_to_string(&setup.config).unwrap();
        std::fs::write(
            &setup.config,
            format!(
                "{}\n{text}\n{checks}\n[api.job_links]\nbk = \"https://job.example.com/biz/{{scope_id}}/execute/task/{{job_instance_id}}\"\n",
                bkjob_emulator::jobwatch_daemon_toml(&dir.join("data"))
            ),
        )
        .unwrap();
        let daemon = Daemon::start(&setup.config);
        let base = daemon.base.clone();
        let silence_id = rt.block_on(async {
            let body = r#"{"matchers":["check=\"muted\""],"duration":"2h","comment":"known: /data cleanup tonight","created_by":"alice"}"#;
            let (status, silence) = post(&base, "/v1/silences", body, Some(TOKEN)).await;
            assert_eq!(status, 201, "{silence}");
            start_execution(&base, "muted").await;
            for _ in 0..2 {
                start_execution(&base, "nightly-ok").await;
            }
            silence["id"].as_str().unwrap().to_owned()
        });
        let console = Console {
            platform,
            setup,
            daemon,
            silence_id,
        };
        console.wait_settled(rt);
        console
    }

    /// Waits (at most 60 s) until every check shows its intended status.
    fn wait_settled(&self, rt: &tokio::runtime::Runtime) {
        let want = [
            ("nightly-ok", "succeeded"),
            ("disk-check", "failed"),
            ("stuck-job", "stuck"),
            ("bad-account", "trigger_failed"),
            ("muted", "failed"),
        ];
        let until = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let (_, board) = rt.block_on(get_json(&self.daemon.base, "/v1/checks"));
            let status = |name: &str| -> Option<String> {
                board["checks"]
                    .as_array()?
                    .iter()
                    .find(|c| c["name"] == name)
                    .and_then(|c| c["status"].as_str().map(str::to_owned))
            };
            let ok_runs = board["checks"]
                .as_array()
                .and_then(|l| l.iter().find(|c| c["name"] == "nightly-ok"))
                .map_or(0, |c| {
                    c["recent"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|o| o["state"] == "succeeded")
                        .count()
                });
            let firing = |name: &str| {
                board["checks"]
                    .as_array()
                    .and_then(|l| l.iter().find(|c| c["name"] == name))
                    .is_some_and(|c| !c["firing"].as_array().unwrap().is_empty())
            };
            if want.iter().all(|(n, s)| status(n).as_deref() == Some(*s))
                && ok_runs == 3
                && firing("disk-check")
                && firing("muted")
            {
                return;
            }
            assert!(
                std::time::Instant::now() < until,
                "the mixed history did not settle in 60 s: {board:#}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
