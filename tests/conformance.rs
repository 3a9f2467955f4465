//! One conformance suite for every platform adapter (STYLE.md #5): the same scenarios, each
//! adapter making them happen in its own terms (a scenario file for the bk-job emulator, real
//! scripts and real kills for the local host and for a real Salt master with its minions),
//! and the same normalized expectations read from `jobwatch exec --output json`.
//!
//! A new adapter is one `impl Fleet` and one test that calls [`run_suite`]. A scenario an
//! adapter cannot express says why (`Err(reason)`), and the suite prints it.

mod common;
#[path = "common/salt.rs"]
mod salt;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// What the suite asks of every adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// Every host runs the script and exits 0.
    AllSucceed,
    /// The subject host exits 3.
    OneFailsWithExit3,
    /// The subject host is unknown to the platform.
    OneHostUnknown,
    /// The subject host is down before the job starts.
    OneHostDeadBeforeTheJob,
    /// The subject host dies while it runs the job.
    OneHostKilledMidJob,
    /// The subject host still runs at jobwatch's deadline (`on_deadline = "terminate"`).
    DeadlineThenTerminate,
    /// The submit takes effect but its answer never reaches jobwatch.
    SubmitAnswerLost,
    /// The subject host prints far more than `log_max_bytes`.
    OutputOverTheBound,
}

const ALL: [Scenario; 8] = [
    Scenario::AllSucceed,
    Scenario::OneFailsWithExit3,
    Scenario::OneHostUnknown,
    Scenario::OneHostDeadBeforeTheJob,
    Scenario::OneHostKilledMidJob,
    Scenario::DeadlineThenTerminate,
    Scenario::SubmitAnswerLost,
    Scenario::OutputOverTheBound,
];

/// How an adapter answers for an unknown host, in its own terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UnknownHostIs {
    /// The submit is refused (the platform checks its inventory first).
    TriggerFailed,
    /// The job runs on the others; the unknown host ends `agent_error`.
    AgentError,
    /// The configuration is refused before anything runs.
    ConfigRefused,
}

/// A scenario made ready by an adapter.
struct Stage {
    /// `[platforms.<name>]` and one `[[checks]]` named `conf`.
    config: String,
    /// Environment of the `jobwatch` run (secrets).
    env: Vec<(&'static str, String)>,
    /// The hosts of the check, each as `(key, value)` of its report entry (`bk_host_id`,
    /// `minion_id` or `ip`).
    hosts: Vec<(&'static str, Value)>,
    /// Index in `hosts` of the host the scenario is about.
    subject: usize,
    /// Done in a thread while `jobwatch` runs (a kill, a freeze).
    during: Option<Box<dyn FnOnce() + Send>>,
    /// Kept alive for the run (an emulator, a proxy).
    _keep: Vec<Box<dyn std::any::Any>>,
}

/// A platform under test.
trait Fleet {
    fn name(&self) -> &'static str;
    /// Makes `s` ready, or says why this platform cannot express it.
    fn stage(&mut self, s: Scenario) -> Result<Stage, &'static str>;
    /// How an unknown host shows.
    fn unknown_host_is(&self) -> UnknownHostIs;
    /// How many jobs the platform created under `task_name` (after a lost answer).
    fn jobs_named(&self, task_name: &str) -> usize;
    /// The outcome a host that dies mid-job ends with (`agent_error` or `unknown`).
    fn killed_host_outcome(&self) -> &'static str;
    /// The platform's own raw facts of the subject host, as the report keeps them beside its
    /// outcome (a bk-job status code, Salt's retcode and probe answer).
    fn raw_facts(&self, s: Scenario, subject: &Value) -> Result<(), String>;
    /// Undoes what a scenario did to the fleet (restarts a killed host).
    fn reset(&mut self) {}
}

/// The check `conf` as every adapter writes it: `script` on `hosts` with fast, fixed polls.
fn conf_check(platform: &str, hosts: &str, script: &str, extra: &str, poll_extra: &str) -> String {
    let timeout = if extra.contains("timeout") {
        ""
    } else {
        "timeout = \"60s\""
    };
    format!(
        "[[checks]]\nname = \"conf\"\nplatform = \"{platform}\"\nscript = '''\n{script}\n'''\nhosts = {hosts}\n{timeout}\n{extra}\n[checks.poll]\nfirst_poll = \"200ms\"\ninterval = \"1s\"\nbackoff_factor = 1\nmax_interval = \"1s\"\n{poll_extra}\n"
    )
}

/// The one script of the suite's real platforms: its own marker line, and what the scenario
/// asks of the host whose name is in `$1`'s list (by `$JOBWATCH_TEST_MINION` on Salt, always
/// on the local host).
fn script(action: &str) -> String {
    let action = if action.is_empty() { ":" } else { action };
    format!(
        r#"echo "conformance: hello"
echo "conformance: to stderr" >&2
me="${{{env}:-localhost}}"
if [ "$me" = "$1" ] || [ "$1" = "*" ]; then
  {action}
fi
echo "conformance: done""#,
        env = salt::MINION_ENV
    )
}

const FAIL_3: &str = r#"echo "conformance: failing"; exit 3"#;
const LONG_OUTPUT: &str = r#"for i in $(seq 1 5000); do echo "conformance: line $i of a long output, padded to be long enough"; done; echo "conformance: last line""#;

fn host_entry<'r>(report: &'r Value, (key, value): &(&str, Value)) -> &'r Value {
    report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| &h[*key] == value)
        .unwrap_or_else(|| panic!("no host with {key} = {value} in {report:#}"))
}

/// Runs `jobwatch exec --check conf --output json` on the stage.
fn exec(stage: Stage) -> (Stage, i32, Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("jobwatch.toml");
    std::fs::write(&config, &stage.config).unwrap();
    let mut stage = stage;
    let during = stage.during.take().map(std::thread::spawn);
    let out = common::jobwatch()
        .envs(stage.env.iter().map(|(k, v)| (*k, v.as_str())))
        .args(["exec", "--config"])
        .arg(&config)
        .args(["--check", "conf", "--output", "json"])
        .output()
        .unwrap();
    if let Some(t) = during {
        t.join().unwrap();
    }
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let code = out.status.code().unwrap_or(-1);
    // A refused configuration prints no report: only its reasons, on stderr.
    let report = if stdout.trim().is_empty() && code == 78 {
        Value::Null
    } else {
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}\n{stderr}"))
    };
    for (_, secret) in &stage.env {
        assert!(
            !report.to_string().contains(secret.as_str()) && !stderr.contains(secret.as_str()),
            "a secret leaked"
        );
    }
    (stage, code, report, stderr)
}

/// The expectations of `s`, the same for every adapter. Returns what went wrong.
fn check(fleet: &mut dyn Fleet, s: Scenario, stage: Stage) -> Result<(), String> {
    let began = Instant::now();
    let (stage, code, report, stderr) = exec(stage);
    let took = began.elapsed();
    let hosts = &stage.hosts;
    let subject = &hosts[stage.subject];
    let others = || {
        hosts
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != stage.subject)
            .map(|(_, h)| h)
    };
    let ctx = || format!("{s:?} (exit {code}, {took:.1?}):\n{report:#}\n{stderr}");
    let ensure = |ok: bool, what: &str| {
        if ok {
            Ok(())
        } else {
            Err(format!("{what}: {}", ctx()))
        }
    };
    let outcome = |h: &(&str, Value)| {
        host_entry(&report, h)["outcome"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    let all_others_succeed =
        || others().all(|h| outcome(h) == "success" && host_entry(&report, h)["exit_code"] == 0);
    match s {
        Scenario::AllSucceed => {
            ensure(
                code == 0 && report["state"] == "succeeded",
                "state succeeded, exit 0",
            )?;
            for h in hosts {
                let e = host_entry(&report, h);
                ensure(
                    e["outcome"] == "success" && e["exit_code"] == 0,
                    "every host success, exit 0",
                )?;
                ensure(
                    e["log"]
                        .as_str()
                        .unwrap_or("")
                        .contains("conformance: hello"),
                    "every host's log",
                )?;
            }
        }
        Scenario::OneFailsWithExit3 => {
            ensure(
                code == 1 && report["state"] == "failed",
                "state failed, exit 1",
            )?;
            let e = host_entry(&report, subject);
            ensure(
                e["outcome"] == "failed" && e["exit_code"] == 3,
                "the failing host: failed, exit 3",
            )?;
            ensure(
                e["log"]
                    .as_str()
                    .unwrap_or("")
                    .contains("conformance: failing"),
                "the failing host's log",
            )?;
            ensure(all_others_succeed(), "the other hosts succeed")?;
            let name = e["host"].as_str().unwrap();
            ensure(
                report["reason"].as_str().unwrap_or("").contains(name),
                "the reason names the failing host",
            )?;
        }
        Scenario::OneHostUnknown => match fleet.unknown_host_is() {
            UnknownHostIs::TriggerFailed => {
                ensure(
                    code == 2 && report["state"] == "trigger_failed",
                    "trigger_failed, exit 2",
                )?;
                ensure(
                    report["trigger_code"].is_i64() && report["trigger_message"].is_string(),
                    "the platform's code and message",
                )?;
            }
            UnknownHostIs::AgentError => {
                ensure(
                    code == 1 && report["state"] == "failed",
                    "state failed, exit 1",
                )?;
                ensure(
                    outcome(subject) == "agent_error",
                    "the unknown host is agent_error",
                )?;
                ensure(all_others_succeed(), "the other hosts succeed")?;
            }
            UnknownHostIs::ConfigRefused => {
                ensure(
                    code == 78 && stderr.contains("checks[0].hosts"),
                    "config refused, naming the key",
                )?;
            }
        },
        Scenario::OneHostDeadBeforeTheJob => {
            ensure(
                code == 1 && report["state"] == "failed",
                "state failed (not timed out), exit 1",
            )?;
            ensure(
                outcome(subject) == "agent_error",
                "the dead host is agent_error",
            )?;
            ensure(all_others_succeed(), "the other hosts succeed")?;
        }
        Scenario::OneHostKilledMidJob => {
            ensure(
                code == 1 && report["state"] == "failed",
                "state failed, exit 1",
            )?;
            ensure(
                outcome(subject) == fleet.killed_host_outcome(),
                "the killed host's outcome",
            )?;
            ensure(all_others_succeed(), "the other hosts succeed")?;
        }
        Scenario::DeadlineThenTerminate => {
            ensure(
                code == 3 && report["state"] == "timed_out",
                "state timed_out, exit 3",
            )?;
            ensure(
                outcome(subject) == "terminated",
                "the host still running is terminated",
            )?;
            ensure(
                report["reason"].as_str().unwrap_or("").contains("terminat"),
                "the reason says it was terminated",
            )?;
            ensure(all_others_succeed(), "the other hosts succeed")?;
        }
        Scenario::SubmitAnswerLost => {
            ensure(
                code == 0 && report["state"] == "succeeded",
                "state succeeded, exit 0",
            )?;
            ensure(
                report["trigger_status"] == "triggered",
                "reconciled as triggered",
            )?;
            let task = report["task_name"].as_str().unwrap();
            let created = fleet.jobs_named(task);
            ensure(
                created == 1,
                &format!("one job on the platform, not {created}"),
            )?;
        }
        Scenario::OutputOverTheBound => {
            let e = host_entry(&report, subject);
            ensure(e["log_truncated"] == true, "the log is marked cut")?;
            ensure(
                e["log_bytes"].as_u64().unwrap_or(0) > 200_000,
                "the whole size is kept",
            )?;
            let log = e["log"].as_str().unwrap_or("");
            ensure(log.len() <= 4096 + 128, "the tail is bounded")?;
            ensure(
                log.contains("conformance: last line"),
                "the tail is the end of the output",
            )?;
        }
    }
    // An unknown host refused before any job has no platform facts.
    let ran = s != Scenario::OneHostUnknown || fleet.unknown_host_is() == UnknownHostIs::AgentError;
    if ran {
        fleet
            .raw_facts(s, host_entry(&report, subject))
            .map_err(|e| format!("raw facts: {e}: {}", ctx()))?;
    }
    Ok(())
}

/// Whether `entry` has `key` = `value`, said as an error otherwise.
fn has(entry: &Value, key: &str, value: Value) -> Result<(), String> {
    if entry[key] == value {
        Ok(())
    } else {
        Err(format!("{key} is {}, not {value}", entry[key]))
    }
}

/// Runs every scenario on `fleet`; fails once at the end, listing every failed scenario.
fn run_suite(fleet: &mut dyn Fleet) {
    let mut failures = Vec::new();
    for s in ALL {
        let began = Instant::now();
        match fleet.stage(s) {
            Err(why) => eprintln!("{}: {s:?}: not applicable: {why}", fleet.name()),
            Ok(stage) => {
                let result = check(fleet, s, stage);
                eprintln!(
                    "{}: {s:?}: {} in {:.1?}",
                    fleet.name(),
                    if result.is_ok() { "ok" } else { "FAILED" },
                    began.elapsed()
                );
                if let Err(e) = result {
                    failures.push(e);
                }
            }
        }
        fleet.reset();
    }
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        fleet.name(),
        failures.join("\n\n")
    );
}

// ---------------------------------------------------------------------------------------
// The local host.

struct Local;

impl Fleet for Local {
    fn name(&self) -> &'static str {
        "local"
    }

    fn stage(&mut self, s: Scenario) -> Result<Stage, &'static str> {
        let (hosts, action, extra) = match s {
            Scenario::AllSucceed => (r#"["localhost"]"#, String::new(), ""),
            Scenario::OneFailsWithExit3 => (r#"["localhost"]"#, FAIL_3.into(), ""),
            Scenario::OneHostUnknown => (r#"["localhost", "0:10.9.9.9"]"#, String::new(), ""),
            Scenario::OutputOverTheBound => (
                r#"["localhost"]"#,
                LONG_OUTPUT.into(),
                "log_max_bytes = 4096",
            ),
            Scenario::OneHostDeadBeforeTheJob | Scenario::OneHostKilledMidJob => {
                return Err(
                    "the local platform's one host is jobwatch's own: it cannot be down while jobwatch runs",
                );
            }
            Scenario::DeadlineThenTerminate => {
                return Err(
                    "the local platform kills the script's process group at the job's timeout itself (102): jobwatch's deadline never comes first",
                );
            }
            Scenario::SubmitAnswerLost => {
                return Err(
                    "a local submit is a call in the same process: its answer cannot be lost",
                );
            }
        };
        let script = script(&action).replace("\"$1\"", "\"localhost\"");
        Ok(Stage {
            config: format!(
                "[platforms.local]\nkind = \"local\"\n{}",
                conf_check("local", hosts, &script, extra, "")
            ),
            env: vec![],
            hosts: vec![("ip", json!("localhost"))],
            subject: 0,
            during: None,
            _keep: vec![],
        })
    }

    fn unknown_host_is(&self) -> UnknownHostIs {
        UnknownHostIs::ConfigRefused
    }

    fn jobs_named(&self, _: &str) -> usize {
        unreachable!("no lost answers on the local platform")
    }

    fn killed_host_outcome(&self) -> &'static str {
        unreachable!("no killed hosts on the local platform")
    }

    fn raw_facts(&self, s: Scenario, subject: &Value) -> Result<(), String> {
        // The local platform speaks bk-job's codes (9 success, 104 failed).
        has(
            subject,
            "status",
            json!(if s == Scenario::OneFailsWithExit3 {
                104
            } else {
                9
            }),
        )
    }
}

#[test]
fn the_local_platform_passes_the_conformance_suite() {
    run_suite(&mut Local);
}

// ---------------------------------------------------------------------------------------
// The bk-job emulator: each scenario is a scenario file (it runs no scripts).

struct BkJob {
    last: Option<Arc<common::Platform>>,
}

fn emulator_host(id: u64, body: &str) -> String {
    format!(
        "[[hosts]]\nbk_host_id = {id}\nip = \"10.0.0.{}\"\n{body}\n",
        id - 100
    )
}

const OK_HOST: &str =
    "duration = \"300ms\"\nstatus = 9\nlog = \"conformance: hello\\nconformance: done\\n\"";

impl Fleet for BkJob {
    fn name(&self) -> &'static str {
        "bk-job emulator"
    }

    fn stage(&mut self, s: Scenario) -> Result<Stage, &'static str> {
        let subject = match s {
            Scenario::AllSucceed | Scenario::SubmitAnswerLost => OK_HOST.to_owned(),
            Scenario::OneFailsWithExit3 => "duration = \"400ms\"\nstatus = 104\nexit_code = 3\nlog = \"conformance: hello\\nconformance: failing\\n\"".into(),
            Scenario::OneHostUnknown => String::new(),
            Scenario::OneHostDeadBeforeTheJob => "duration = \"0ms\"\nstatus = 310\nerror_code = 117\nlog = \"GSE: agent heartbeat lost\\n\"".into(),
            Scenario::OneHostKilledMidJob => "duration = \"1500ms\"\nstatus = 310\nerror_code = 117\nlog = \"conformance: hello\\n\"".into(),
            Scenario::DeadlineThenTerminate => "duration = \"300ms\"\nstatus = 9\nhang = true\nlog = \"conformance: hello\\n\"".into(),
            Scenario::OutputOverTheBound => {
                let mut log: String = (1..=5000).map(|i| format!("conformance: line {i} of a long output, padded to be long enough\\n")).collect();
                log.push_str("conformance: last line\\n");
                format!("duration = \"300ms\"\nstatus = 9\nlog = \"{log}\"")
            }
        };
        let mut scenario = emulator_host(101, OK_HOST);
        if s != Scenario::OneHostUnknown {
            scenario.push_str(&emulator_host(102, &subject));
        }
        if s == Scenario::SubmitAnswerLost {
            scenario.push_str("[[faults.rules]]\napi = \"fast_execute_script\"\nkind = \"connection_reset\"\nafter_effect = true\n");
        }
        if s == Scenario::DeadlineThenTerminate {
            scenario.push_str("[job]\nterminate_takes = \"200ms\"\n");
        }
        let platform = Arc::new(common::emulator(&scenario));
        let (extra, poll_extra) = match s {
            Scenario::DeadlineThenTerminate => (
                "timeout = \"2s\"",
                "deadline_slack = \"1s\"\non_deadline = \"terminate\"",
            ),
            Scenario::OutputOverTheBound => ("log_max_bytes = 4096", ""),
            _ => ("", ""),
        };
        let check = conf_check("bk", "[101, 102]", "echo conformance", extra, poll_extra)
            .replace("[checks.poll]", "account_alias = \"root\"\n[checks.poll]");
        let config = bkjob_emulator::jobwatch_platform_toml(
            "bk",
            &[platform.emulator.apigw_url()],
            "apigw",
            "request_timeout = \"2s\"",
        );
        self.last = Some(platform.clone());
        Ok(Stage {
            config: format!("{config}{check}"),
            env: vec![(
                "JOBWATCH__PLATFORMS__BK__APP_SECRET",
                common::SECRET.to_owned(),
            )],
            hosts: vec![("bk_host_id", json!(101)), ("bk_host_id", json!(102))],
            subject: 1,
            during: None,
            _keep: vec![Box::new(platform)],
        })
    }

    fn unknown_host_is(&self) -> UnknownHostIs {
        UnknownHostIs::TriggerFailed
    }

    fn jobs_named(&self, task_name: &str) -> usize {
        let state = self.last.as_ref().unwrap().emulator.state();
        state.job_names().iter().filter(|n| *n == task_name).count()
    }

    fn killed_host_outcome(&self) -> &'static str {
        "agent_error"
    }

    fn raw_facts(&self, s: Scenario, subject: &Value) -> Result<(), String> {
        let status = match s {
            Scenario::OneFailsWithExit3 => 104,
            Scenario::OneHostDeadBeforeTheJob | Scenario::OneHostKilledMidJob => 310,
            Scenario::DeadlineThenTerminate => 403,
            _ => 9,
        };
        has(subject, "status", json!(status))
    }
}

#[test]
fn the_bkjob_emulator_passes_the_conformance_suite() {
    run_suite(&mut BkJob { last: None });
}

// ---------------------------------------------------------------------------------------
// A real Salt master, salt-api and three minions.

struct SaltFleet {
    salt: Arc<std::sync::Mutex<salt::Salt>>,
    restart: Option<&'static str>,
}

/// A TCP proxy in front of `upstream` that forwards everything, except that the answer to
/// the first request containing `needle` is swallowed and its connection closed once the
/// upstream has answered: the request took effect, its sender never hears of it.
struct AnswerDropper {
    url: String,
    dropped: Arc<AtomicUsize>,
}

fn answer_dropper(upstream: SocketAddr, needle: &'static [u8]) -> AnswerDropper {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let dropped = Arc::new(AtomicUsize::new(0));
    let armed = Arc::new(AtomicBool::new(true));
    let counter = dropped.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(upstream) else {
                continue;
            };
            let drop_this = Arc::new(AtomicBool::new(false));
            let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (flag, arm) = (drop_this.clone(), armed.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                let mut window: Vec<u8> = Vec::new();
                while let Ok(n) = c_in.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    window.extend_from_slice(&buf[..n]);
                    if window.windows(needle.len()).any(|w| w == needle)
                        && arm.swap(false, Ordering::SeqCst)
                    {
                        flag.store(true, Ordering::SeqCst);
                    }
                    let keep = window.len().saturating_sub(needle.len());
                    window.drain(..keep);
                    if s_out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = s_out.shutdown(std::net::Shutdown::Write);
            });
            let (mut s_in, mut c_out, counter) = (server, client, counter.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                while let Ok(n) = s_in.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if drop_this.load(Ordering::SeqCst) {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let _ = c_out.shutdown(std::net::Shutdown::Both);
                        return;
                    }
                    if c_out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = c_out.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    AnswerDropper { url, dropped }
}

impl Fleet for SaltFleet {
    fn name(&self) -> &'static str {
        "salt"
    }

    fn stage(&mut self, s: Scenario) -> Result<Stage, &'static str> {
        let guard = self.salt.lock().unwrap();
        let mut api = guard.api.clone();
        let mut keep: Vec<Box<dyn std::any::Any>> = Vec::new();
        let mut during: Option<Box<dyn FnOnce() + Send>> = None;
        let (hosts, action, subject_host, extra, poll_extra) = match s {
            Scenario::AllSucceed => (["host-a", "host-b"], String::new(), "host-b", "", ""),
            Scenario::OneFailsWithExit3 => (["host-a", "host-b"], FAIL_3.into(), "host-b", "", ""),
            Scenario::OneHostUnknown => (
                ["host-a", "host-nokey"],
                String::new(),
                "host-nokey",
                "",
                "",
            ),
            Scenario::OneHostDeadBeforeTheJob => {
                drop(guard);
                self.salt.lock().unwrap().kill_minion("host-c");
                self.restart = Some("host-c");
                return self.stage_with(
                    ["host-a", "host-c"],
                    String::new(),
                    "host-c",
                    "",
                    "",
                    None,
                    Vec::new(),
                    None,
                );
            }
            Scenario::OneHostKilledMidJob => {
                let salt = self.salt.clone();
                during = Some(Box::new(move || {
                    // Once host-c runs the job, kill it (its minion and the job's process).
                    wait_until_running(&salt, "host-c");
                    salt.lock().unwrap().kill_minion("host-c");
                }));
                self.restart = Some("host-c");
                (
                    ["host-a", "host-c"],
                    "sleep 20".to_owned(),
                    "host-c",
                    "",
                    "",
                )
            }
            Scenario::DeadlineThenTerminate => {
                let salt = self.salt.clone();
                during = Some(Box::new(move || {
                    // Freeze the job's process on host-b: Salt's own timeout lives in it, so
                    // the job runs on past jobwatch's deadline (a hung job).
                    let jid = wait_until_running(&salt, "host-b");
                    let pid = salt
                        .lock()
                        .unwrap()
                        .job_pid("host-b", &jid)
                        .expect("host-b runs the job");
                    // SAFETY: kill(2) on a process of the minion this test started.
                    unsafe { libc::kill(pid as libc::pid_t, libc::SIGSTOP) };
                }));
                (
                    ["host-a", "host-b"],
                    "sleep 30".to_owned(),
                    "host-b",
                    "timeout = \"6s\"",
                    "deadline_slack = \"2s\"\non_deadline = \"terminate\"",
                )
            }
            Scenario::SubmitAnswerLost => {
                let upstream: SocketAddr = api.trim_start_matches("http://").parse().unwrap();
                let proxy = answer_dropper(upstream, b"cmd.exec_code_all");
                api = proxy.url.clone();
                keep.push(Box::new(proxy.dropped.clone()));
                (["host-a", "host-b"], String::new(), "host-b", "", "")
            }
            Scenario::OutputOverTheBound => (
                ["host-a", "host-b"],
                LONG_OUTPUT.into(),
                "host-b",
                "log_max_bytes = 4096",
                "",
            ),
        };
        drop(guard);
        self.stage_with(
            hosts,
            action,
            subject_host,
            extra,
            poll_extra,
            during,
            keep,
            Some(api),
        )
    }

    fn unknown_host_is(&self) -> UnknownHostIs {
        UnknownHostIs::AgentError
    }

    fn jobs_named(&self, task_name: &str) -> usize {
        self.salt.lock().unwrap().jobs_named(task_name).len()
    }

    fn killed_host_outcome(&self) -> &'static str {
        "agent_error"
    }

    fn raw_facts(&self, s: Scenario, subject: &Value) -> Result<(), String> {
        // jobwatch's Salt codes (platform/salt/codes.rs), and Salt's own words beside them.
        let facts = &subject["facts"];
        match s {
            Scenario::OneFailsWithExit3 => {
                has(subject, "status", json!(4))?;
                has(facts, "retcode", json!(3))?;
                has(facts, "return_retcode", json!(3))?;
                has(facts, "success", json!(false))
            }
            Scenario::OneHostUnknown => has(subject, "status", json!(7)),
            Scenario::OneHostDeadBeforeTheJob | Scenario::OneHostKilledMidJob => {
                has(subject, "status", json!(8))?;
                has(facts, "probe", json!("no answer"))
            }
            Scenario::DeadlineThenTerminate => {
                has(subject, "status", json!(11))?;
                has(facts, "probe", json!({"running": false}))
            }
            _ => {
                has(subject, "status", json!(3))?;
                has(facts, "return_retcode", json!(0))
            }
        }
    }

    fn reset(&mut self) {
        if let Some(id) = self.restart.take() {
            let mut salt = self.salt.lock().unwrap();
            salt.start_minion(id);
            salt.wait_answering(&[id], Duration::from_secs(60));
        }
    }
}

impl SaltFleet {
    #[allow(clippy::too_many_arguments)]
    fn stage_with(
        &mut self,
        hosts: [&str; 2],
        action: String,
        subject: &str,
        extra: &str,
        poll_extra: &str,
        during: Option<Box<dyn FnOnce() + Send>>,
        keep: Vec<Box<dyn std::any::Any>>,
        api: Option<String>,
    ) -> Result<Stage, &'static str> {
        let salt = self.salt.lock().unwrap();
        let api = api.unwrap_or_else(|| salt.api.clone());
        let platform = salt.platform_toml().replace(&salt.api, &api);
        let list = format!("[\"{}\", \"{}\"]", hosts[0], hosts[1]);
        let script = script(&action).replace("\"$1\"", &format!("\"{subject}\""));
        let check = conf_check("salt", &list, &script, extra, poll_extra);
        Ok(Stage {
            config: format!("{platform}{check}"),
            env: vec![(
                "JOBWATCH__PLATFORMS__SALT__PASSWORD",
                salt::PASSWORD.to_owned(),
            )],
            hosts: hosts.iter().map(|h| ("minion_id", json!(h))).collect(),
            subject: hosts.iter().position(|h| *h == subject).unwrap(),
            during,
            _keep: keep,
        })
    }
}

/// Waits until minion `id` runs a `cmd.exec_code_all` job; returns its jid.
fn wait_until_running(salt: &std::sync::Mutex<salt::Salt>, id: &str) -> String {
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        if let Some(jid) = salt.lock().unwrap().running_jids(id).into_iter().next() {
            return jid;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{id} never ran the job");
}

#[test]
fn real_salt_passes_the_conformance_suite() {
    let started = Instant::now();
    let salt = salt::Salt::start(&["host-a", "host-b", "host-c"]);
    eprintln!(
        "salt: master, salt-api and 3 minions up in {:.1?}",
        started.elapsed()
    );
    let salt = Arc::new(std::sync::Mutex::new(salt));
    let mut fleet = SaltFleet {
        salt: salt.clone(),
        restart: None,
    };
    run_suite(&mut fleet);
    salt_failure_modes(&salt);
    let stopping = Instant::now();
    salt.lock().unwrap().stop();
    eprintln!("salt: stopped in {:.1?}", stopping.elapsed());
}

/// A stage of `action` on the second of `hosts`, through the deployment's own salt-api.
fn plain(fleet: &mut SaltFleet, hosts: [&str; 2], action: &str) -> Stage {
    let subject = hosts[1];
    fleet
        .stage_with(
            hosts,
            action.into(),
            subject,
            "",
            "",
            None,
            Vec::new(),
            None,
        )
        .unwrap()
}

/// Runs `stage` and asserts how it ended (`what` says which case); the report.
fn ends(stage: Stage, code: i32, state: &str, what: &str) -> Value {
    let began = Instant::now();
    let (_, exit, report, stderr) = exec(stage);
    assert_eq!(
        (exit, report["state"].as_str()),
        (code, Some(state)),
        "{what}:\n{report:#}\n{stderr}"
    );
    eprintln!("salt: {what}: ok in {:.1?}", began.elapsed());
    report
}

/// Salt's own failure modes beyond the suite: salt-api restarted mid-job (its sessions die:
/// jobwatch logs in again and the job ends true), a job the master's cache forgets (`lost`,
/// never `succeeded`), a wrong password and minions without keys (trigger failures that say
/// why), and the daemon killed mid-job.
fn salt_failure_modes(salt: &Arc<std::sync::Mutex<salt::Salt>>) {
    let mut fleet = SaltFleet {
        salt: salt.clone(),
        restart: None,
    };
    let mut stage = plain(&mut fleet, ["host-a", "host-b"], "sleep 6");
    let restarter = salt.clone();
    stage.during = Some(Box::new(move || {
        wait_until_running(&restarter, "host-b");
        restarter.lock().unwrap().restart_api();
    }));
    ends(stage, 0, "succeeded", "salt-api restarted mid-job");

    let mut stage = plain(&mut fleet, ["host-a", "host-b"], "sleep 10");
    let forgetter = salt.clone();
    stage.during = Some(Box::new(move || {
        let jid = wait_until_running(&forgetter, "host-b");
        assert!(
            forgetter.lock().unwrap().forget_job(&jid),
            "job {jid} in the master's cache"
        );
    }));
    let report = ends(stage, 3, "lost", "a job the master's cache forgets");
    assert!(
        report["reason"].as_str().unwrap().contains("job cache"),
        "{report:#}"
    );

    let mut stage = plain(&mut fleet, ["host-a", "host-b"], "");
    stage.env = vec![(
        "JOBWATCH__PLATFORMS__SALT__PASSWORD",
        "wrong-Password-77".to_owned(),
    )];
    let report = ends(stage, 2, "trigger_failed", "a wrong password");
    let message = report["trigger_message"].as_str().unwrap();
    assert!(
        message.contains("refused the login of `jobwatch` with eauth `sharedsecret`"),
        "{message}"
    );

    let stage = plain(&mut fleet, ["host-nokey-1", "host-nokey-2"], "");
    let report = ends(stage, 2, "trigger_failed", "no minion with a key");
    let message = report["trigger_message"].as_str().unwrap();
    assert!(
        message.contains("no minion with an accepted key among host-nokey-1, host-nokey-2"),
        "{message}"
    );
    the_daemon_killed_mid_job_resumes_by_jid(salt);
    salt_events_tell_the_end_at_once(salt);
    sigterm_stops_the_salt_job(&mut fleet);
}

/// SIGTERM to `jobwatch exec` while a Salt job runs: `saltutil.term_job` stops it (Salt's job
/// process ends the script with it), the host is recorded terminated, the run is
/// `cancelled` (exit 130).
fn sigterm_stops_the_salt_job(fleet: &mut SaltFleet) {
    let began = Instant::now();
    let stage = plain(fleet, ["host-a", "host-b"], "sleep 30");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("jobwatch.toml");
    std::fs::write(&config, &stage.config).unwrap();
    let child = common::jobwatch()
        .envs(stage.env.iter().map(|(k, v)| (*k, v.as_str())))
        .args(["exec", "--config"])
        .arg(&config)
        .args(["--check", "conf", "--output", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let jid = wait_until_running(&fleet.salt, "host-b");
    // SAFETY: kill(2) on the child this test started.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(
        (out.status.code(), report["state"].as_str()),
        (Some(130), Some("cancelled")),
        "{report:#}"
    );
    assert_eq!(
        host_entry(&report, &("minion_id", json!("host-b")))["outcome"],
        "terminated",
        "{report:#}"
    );
    assert_eq!(
        fleet.salt.lock().unwrap().job_pid("host-b", &jid),
        None,
        "the job no longer runs on host-b"
    );
    eprintln!("salt: SIGTERM stops the job: ok in {:.1?}", began.elapsed());
}

/// A daemon config under `dir` for `salt`'s platform (with `platform_extra` lines) and
/// `check`; its path.
fn salt_daemon_config(
    salt: &Arc<std::sync::Mutex<salt::Salt>>,
    dir: &std::path::Path,
    platform_extra: &str,
    check: &str,
) -> std::path::PathBuf {
    let config = dir.join("jobwatch.toml");
    let platform = salt.lock().unwrap().platform_toml() + platform_extra;
    let daemon = bkjob_emulator::jobwatch_daemon_toml(&dir.join("data"));
    std::fs::write(&config, format!("{daemon}\n{platform}{check}")).unwrap();
    config
}

/// `jobwatch run` with `config`, the Salt password in its environment.
fn start_salt_daemon(config: &std::path::Path) -> common::Daemon {
    let mut cmd = common::jobwatch();
    cmd.env("JOBWATCH__PLATFORMS__SALT__PASSWORD", salt::PASSWORD);
    common::Daemon::start_with(cmd, config)
}

/// `jobwatch run` on a Salt platform, `kill -9`ed while a job runs and started again: the
/// execution is resumed by its stored jid, ends true, and Salt ran one job.
fn the_daemon_killed_mid_job_resumes_by_jid(salt: &Arc<std::sync::Mutex<salt::Salt>>) {
    let began = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let check = conf_check(
        "salt",
        r#"["host-a", "host-b"]"#,
        &script("sleep 6").replace("\"$1\"", "\"host-b\""),
        "",
        "",
    );
    let config = salt_daemon_config(salt, dir.path(), "", &check);
    let start = || start_salt_daemon(&config);
    let daemon = start();
    let rt = common::runtime();
    let id = rt.block_on(common::start_execution(&daemon.base, "conf"));
    wait_until_running(salt, "host-b");
    daemon.signal(libc::SIGKILL);
    drop(daemon);
    let daemon = start();
    assert_eq!(daemon.resumed, 1, "the execution in flight is resumed");
    let until = Instant::now() + Duration::from_secs(60);
    let ended = loop {
        let (status, e) = rt.block_on(common::get_json(
            &daemon.base,
            &format!("/v1/executions/{id}"),
        ));
        assert_eq!(status, 200, "{e}");
        if e["state"] != "pending" && e["state"] != "running" {
            break e;
        }
        assert!(Instant::now() < until, "{id} did not end: {e:#}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(ended["state"], "succeeded", "{ended:#}");
    assert!(ended["jid"].is_string(), "{ended:#}");
    let task = ended["task_name"].as_str().unwrap();
    assert_eq!(
        salt.lock().unwrap().jobs_named(task).len(),
        1,
        "one job on Salt"
    );
    eprintln!(
        "salt: the daemon killed mid-job resumes by jid: ok in {:.1?}",
        began.elapsed()
    );
}

/// `jobwatch run` following salt-api's event stream (`events = true`) with polls 30 s apart:
/// each minion's return makes the poll due now, so a 3 s job is known ended within seconds,
/// not at the 30 s poll; after salt-api restarts (its tokens die) the stream is opened again
/// and the next job's end comes as fast.
fn salt_events_tell_the_end_at_once(salt: &Arc<std::sync::Mutex<salt::Salt>>) {
    let began = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let check = "[[checks]]\nname = \"conf\"\nplatform = \"salt\"\nscript = \"sleep 3; echo done\"\nhosts = [\"host-a\", \"host-b\"]\ntimeout = \"2m\"\n[checks.poll]\nfirst_poll = \"1s\"\ninterval = \"30s\"\nmax_interval = \"30s\"\n";
    let config = salt_daemon_config(salt, dir.path(), "events = true\n", check);
    let daemon = start_salt_daemon(&config);
    let rt = common::runtime();
    let stream_up = || {
        let until = Instant::now() + Duration::from_secs(60);
        while rt.block_on(common::metric(
            &daemon.base,
            "jobwatch_event_stream_up{platform=\"salt\"}",
        )) != 1.0
        {
            assert!(Instant::now() < until, "the event stream never opened");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let run = |what: &str| {
        let id = rt.block_on(common::start_execution(&daemon.base, "conf"));
        let e = rt.block_on(common::wait_ended(
            &daemon.base,
            &id,
            Duration::from_secs(60),
        ));
        assert_eq!(e["state"], "succeeded", "{what}: {e:#}");
        // 3 s of script and Salt's own start; the next poll after the first was 30 s away.
        let took = e["duration_seconds"].as_f64().unwrap();
        assert!(
            took < 12.0,
            "{what}: the end was stored {took} s after the start: {e:#}"
        );
        assert!(e["polls"].as_u64().unwrap() <= 4, "{what}: {e:#}");
    };
    stream_up();
    run("events");
    let hints = rt.block_on(common::metric(
        &daemon.base,
        "jobwatch_platform_hints_total{platform=\"salt\"}",
    ));
    assert!(hints >= 2.0, "a hint per host's return: {hints}");
    salt.lock().unwrap().restart_api();
    stream_up();
    run("events after salt-api restarted");
    eprintln!(
        "salt: the event stream tells the end at once: ok in {:.1?}",
        began.elapsed()
    );
}
