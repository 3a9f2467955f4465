//! jobwatch-bench: the load harness. Starts the bk-job emulator (in this process, one
//! thread) and a real `jobwatch run` daemon (a child process, release build, SQLite store),
//! and measures, in one run:
//!
//! 1. **ceiling**: the emulator's status endpoint under `wrk` (closed loop, keep-alive) —
//!    the loopback limit of this machine;
//! 2. **capacity**: M executions polled every second (more than can be served): status
//!    polls/s sustained, ratio to the ceiling, agent CPU (cores, CPU s per 1 000 polls);
//! 3. **scale**: N executions at a poll interval that keeps the demand at about half the
//!    capacity, jobs ending over a minute: RSS per tracked execution, peak RSS, detection
//!    latency (job end at the emulator → final state stored) p50/p99, platform requests per
//!    execution, and the time to resume all N after a `kill -9`;
//! 4. **first result**: a 1 s job, submit → final state;
//! 5. **callbacks**: bk-job callbacks on, a 5-minute safety net; executions written into
//!    the store and resumed, the harness calling back at each job's end: 100 000 all ending
//!    within a minute from a cold resume, then 1 000 000 in the steady state with 100 000
//!    ending (detection latency, requests, RSS, cores, callbacks taken per second);
//! 6. **seeded**: a million executions written into the store, resumed by one start.
//!
//! Prints a table and one JSON line. Figures depend on the machine; say which.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bkjob_emulator::{Emulator, Scenario};
use clap::Parser;
use serde_json::{Value, json};

const SECRET: &str = "bench-secret-0f3c";

#[derive(Parser, Debug)]
#[command(about = "jobwatch load harness (see the crate docs)")]
struct Args {
    /// Executions tracked in the scale phase.
    #[arg(long, default_value_t = 100_000)]
    executions: usize,
    /// Executions in the capacity phase (each polled every 200 ms: far more than the
    /// platform can serve).
    #[arg(long, default_value_t = 20_000)]
    capacity_executions: usize,
    /// Length of each measurement window, seconds.
    #[arg(long, default_value_t = 15)]
    window: u64,
    /// The jobwatch binary (default: `jobwatch` next to this one).
    #[arg(long)]
    jobwatch: Option<PathBuf>,
    /// Concurrent API calls used to register watches.
    #[arg(long, default_value_t = 32)]
    register_concurrency: usize,
    /// Executions seeded straight into the store and resumed (0: skip that phase).
    #[arg(long, default_value_t = 1_000_000)]
    seeded: usize,
    /// Executions tracked in the callbacks phase (bk-job callbacks on, 5 min safety net; 0:
    /// skip that phase).
    #[arg(long, default_value_t = 100_000)]
    callback_executions: usize,
    /// Executions tracked in the callbacks-at-scale phase: resumed as polled once, their
    /// next polls spread over the 5-minute safety net (the steady state), 100 000 of them
    /// ending over a minute (0: skip that phase).
    #[arg(long, default_value_t = 1_000_000)]
    callback_tracked: usize,
    /// Run the callbacks phases only.
    #[arg(long)]
    only_callbacks: bool,
}

/// The callbacks phases `args` asks for: every execution ending, from a cold resume; then
/// the steady state at scale.
fn callback_loads(args: &Args) -> Vec<CallbackLoad> {
    let mut loads = Vec::new();
    if args.callback_executions > 0 {
        loads.push(CallbackLoad {
            tracked: args.callback_executions,
            ending: args.callback_executions,
            steady: false,
        });
    }
    if args.callback_tracked > 0 {
        loads.push(CallbackLoad {
            tracked: args.callback_tracked,
            ending: args.callback_tracked.min(100_000),
            steady: true,
        });
    }
    loads
}

/// What a callbacks phase tracks.
#[derive(Debug, Clone, Copy)]
struct CallbackLoad {
    /// Executions in the store, resumed.
    tracked: usize,
    /// How many of them end (over one minute); the others run on.
    ending: usize,
    /// Seeded as polled once, next polls spread over the safety interval (else never polled:
    /// every first poll comes a second after the resume).
    steady: bool,
}

/// The key the callbacks phase's agent derives tokens with (the harness sends callbacks as
/// bk-job would, so it computes the same URLs).
const CALLBACK_KEY: &str = "bench-callback-key-0123456789";

/// The callbacks phase's config: check `bench` polled at 1 s, then every 5 minutes (the
/// safety net), callbacks taken on `port`.
fn write_callbacks_config(dir: &Path, url: &str, port: u16) -> anyhow::Result<PathBuf> {
    let path = dir.join("jobwatch.toml");
    let platform = bkjob_emulator::jobwatch_platform_toml(
        "bk",
        &[url.to_owned()],
        "apigw",
        &format!(
            "app_secret = \"{SECRET}\"\nrequest_timeout = \"30s\"\nmax_concurrent_requests = 64\nmax_requests_per_second = 10000000\nmax_submits_per_second = 10000000\nendpoint_failures_before_cooldown = 1000000\ncallbacks = true"
        ),
    );
    std::fs::write(
        &path,
        format!(
            r#"
{daemon}
[callbacks]
public_url = "http://127.0.0.1:{port}"
listen = "127.0.0.1:{port}"
key = "{CALLBACK_KEY}"
{platform}
[[checks]]
name = "bench"
platform = "bk"
script = "true"
hosts = [101]
account_alias = "root"
timeout = "2h"
[checks.poll]
first_poll = "1s"
safety_interval = "5m"
stuck_after = "1h"
straggler_after = "1h"
"#,
            daemon = bkjob_emulator::jobwatch_daemon_toml(&dir.join("data")),
        ),
    )?;
    Ok(path)
}

/// Sends one callback as bk-job does (JSON, the source's list name) for each planned
/// `(when, job, execution)`, at its time, at most 512 in flight. Returns how many were
/// answered 200, and when each job's callback was sent (Unix ms: the harness may be late).
async fn send_callbacks(
    callbacks: std::sync::Arc<jobwatch::daemon::callbacks::Callbacks>,
    plan: Vec<(Instant, u64, String)>,
) -> anyhow::Result<(usize, std::collections::HashMap<u64, i64>)> {
    let mut sent = std::collections::HashMap::with_capacity(plan.len());
    let client = client();
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(512));
    let mut set = tokio::task::JoinSet::new();
    for (at, job, execution) in plan {
        tokio::time::sleep_until(at.into()).await;
        let permit = permits.clone().acquire_owned().await?;
        let (client, url) = (client.clone(), callbacks.url(&execution));
        set.spawn(async move {
            let at = jobwatch::time::now_ms();
            let body = json!({"job_instance_id": job, "status": 3, "step_instances": [{"step_instance_id": job + 1, "status": 3}]});
            let ok = client.post(&url).json(&body).send().await?.status().as_u16() == 200;
            drop(permit);
            anyhow::Ok((ok, job, at))
        });
    }
    let mut answered = 0;
    while let Some(r) = set.join_next().await {
        let (ok, job, at) = r??;
        answered += usize::from(ok);
        sent.insert(job, at);
    }
    Ok((answered, sent))
}

/// Callbacks taken per second for `seconds`, 64 senders in a closed loop (right tokens, for
/// executions not followed: the route's whole path, the poll it asks for aside).
async fn callback_ceiling(
    callbacks: std::sync::Arc<jobwatch::daemon::callbacks::Callbacks>,
    seconds: u64,
) -> anyhow::Result<f64> {
    let client = client();
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let (client, callbacks) = (client.clone(), callbacks.clone());
        set.spawn(async move {
            let mut n = 0u64;
            while Instant::now() < until {
                let url = callbacks.url(&uuid_v7());
                let body = r#"{"job_instance_id": 1, "status": 3, "step_instances": []}"#;
                let resp = client
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                if resp.status().as_u16() == 200 {
                    n += 1;
                }
            }
            anyhow::Ok(n)
        });
    }
    let mut total = 0;
    while let Some(r) = set.join_next().await {
        total += r??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

/// Detection latencies (ms) of the ended executions of check `bench` in the store under
/// `data`: stored end − the job's end at the emulator.
fn detection_latencies(
    rt: &tokio::runtime::Runtime,
    data: &Path,
    emulator: &Emulator,
) -> anyhow::Result<Vec<f64>> {
    latencies_since(rt, data, &|job| emulator.state().job_end_ms(job))
}

/// Latencies (ms) of the ended executions of check `bench` in the store under `data`:
/// stored end − `since(job)`, for the jobs it gives a time (Unix ms), sorted.
fn latencies_since(
    rt: &tokio::runtime::Runtime,
    data: &Path,
    since: &dyn Fn(u64) -> Option<i64>,
) -> anyhow::Result<Vec<f64>> {
    let store = rt.block_on(jobwatch::store::SqliteStore::open(data))?;
    let mut latencies = Vec::new();
    let mut cursor = None;
    loop {
        let page = rt.block_on(jobwatch::store::Store::list(
            &store,
            &jobwatch::store::ListQuery {
                which: jobwatch::store::Which::History,
                check: Some("bench".into()),
                limit: 1000,
                cursor: cursor.clone(),
            },
        ))?;
        for r in &page {
            let (Some(job), Some(ended)) = (r.job_instance_id, parse_ms(&r.ended_at)) else {
                continue;
            };
            if let Some(at) = since(job) {
                latencies.push((ended - at) as f64);
            }
        }
        if page.len() < 1000 {
            break;
        }
        cursor = page.last().map(|r| r.execution_id.clone());
    }
    latencies.sort_by(f64::total_cmp);
    Ok(latencies)
}

/// A callbacks phase: `load.tracked` executions (API-started, written into the store and
/// resumed) on a platform with callbacks and a 5-minute safety net, `load.ending` of them
/// ending over a minute, the harness calling back as bk-job would at each end. Returns its
/// JSON and its rows.
fn callbacks_phase(
    load: CallbackLoad,
    binary: &Path,
    emulator: &Emulator,
    dir: &Path,
    all_requests: &dyn Fn() -> u64,
) -> anyhow::Result<(Value, Vec<String>)> {
    let CallbackLoad {
        tracked: n,
        ending,
        steady,
    } = load;
    eprintln!(
        "jobwatch-bench: callbacks ({n} executions, {ending} ending, 5 min safety net, a callback at each end)…"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let host = emulator.state().scenario().hosts[0].clone();
    let cb_dir = dir.join(format!("callbacks-{n}"));
    std::fs::create_dir_all(&cb_dir)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = write_callbacks_config(&cb_dir, &emulator.apigw_url(), port)?;
    let callbacks = std::sync::Arc::new(jobwatch::daemon::callbacks::Callbacks::new(
        url::Url::parse(&format!("http://127.0.0.1:{port}"))?,
        secrecy::SecretString::from(CALLBACK_KEY.to_owned()),
    ));
    // The executions are API-started ones, written straight into the store (as the seeded
    // phase does) and resumed at start: a watch would not take callbacks (a job started
    // elsewhere carries no callback URL of ours), and its polls keep the normal pace.
    // Seeding takes about 1 s per 20 000, the resume about 1 s per 50 000.
    let ends_from = Instant::now() + Duration::from_secs_f64(n as f64 / 7_000.0 + 20.0);
    let runs_on = Duration::from_secs(3 * 3600);
    let seeded_at_ms = jobwatch::time::now_ms();
    let check = jobwatch::config::CheckConfig {
        timeout: Duration::from_secs(7200),
        ..jobwatch::config::CheckConfig::new(
            "bench",
            "bk",
            String::new(),
            vec![jobwatch::model::Host::by_id(101)],
        )
    };
    let store = rt.block_on(jobwatch::store::SqliteStore::open(&cb_dir.join("data")))?;
    let seeding = Instant::now();
    let mut pairs = Vec::with_capacity(n);
    let mut ends = std::collections::HashMap::with_capacity(n);
    let mut left = n;
    while left > 0 {
        let batch_n = left.min(20_000);
        let batch: Vec<_> = (0..batch_n)
            .map(|i| {
                let k = n - left + i;
                let job = if k < ending {
                    let end =
                        ends_from + Duration::from_millis((k as u64 * 60_000) / ending as u64);
                    let job = seed(
                        emulator,
                        &host,
                        end.saturating_duration_since(Instant::now()),
                    );
                    ends.insert(job, end);
                    job
                } else {
                    seed(emulator, &host, runs_on)
                };
                let mut r =
                    jobwatch::tracker::ExecutionReport::new(uuid_v7(), &check, "bk", "bkjob", "");
                r.origin = jobwatch::tracker::report::Origin::Api;
                r.triggered(&jobwatch::platform::JobRef::instance(job));
                if steady {
                    // Polled once already; the next safety poll somewhere in the next 5 min.
                    r.polls = 1;
                    r.job_status = Some(2);
                    r.next_poll_at_ms = Some(seeded_at_ms + (k as i64 * 300_000) / n as i64);
                }
                if k < ending {
                    pairs.push((job, r.execution_id.clone()));
                }
                r
            })
            .collect();
        left -= batch_n;
        rt.block_on(store.insert_many(&batch))?;
    }
    drop(store);
    let reg_s = seeding.elapsed().as_secs_f64();
    let requests_before = all_requests();
    let agent = Agent::start(binary, &config)?;
    std::thread::sleep(Duration::from_secs(3));
    let (cpu0, rss_tracked, _) = agent.usage();
    if Instant::now() > ends_from {
        eprintln!("jobwatch-bench: warning: seeding and resume took longer than planned");
    }
    let mut plan: Vec<(Instant, u64, String)> = pairs
        .into_iter()
        .map(|(job, execution)| (ends[&job], job, execution))
        .collect();
    plan.sort_by_key(|(at, ..)| *at);
    let sending = Instant::now();
    let (answered, sent) = rt.block_on(send_callbacks(callbacks.clone(), plan))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while rt.block_on(active_count(&agent.base)) > n - ending {
        if Instant::now() > deadline {
            bail!("executions still active long after their callbacks");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (cpu1, _, peak) = agent.usage();
    let cpu_cores = (cpu1 - cpu0) / sending.elapsed().as_secs_f64();
    let requests = all_requests() - requests_before;
    let requests_per_execution = requests as f64 / ending.max(1) as f64;
    let requests_per_s = requests as f64 / sending.elapsed().as_secs_f64();
    let ceiling = if steady {
        f64::NAN
    } else {
        rt.block_on(callback_ceiling(callbacks, 5))?
    };
    drop(agent);
    let latencies = detection_latencies(&rt, &cb_dir.join("data"), emulator)?;
    let (p50, p99, max) = (
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN),
    );
    // The agent's own part: from the moment the harness sent the callback (it may send late
    // when its core is busy) to the end stored.
    let from_callback = latencies_since(&rt, &cb_dir.join("data"), &|job| sent.get(&job).copied())?;
    let (cb_p50, cb_p99, cb_max) = (
        percentile(&from_callback, 0.5),
        percentile(&from_callback, 0.99),
        from_callback.last().copied().unwrap_or(f64::NAN),
    );
    let mut rows = Vec::new();
    if steady {
        rows.push(format!(
            "| {n} tracked with callbacks (resumed as polled once, safety polls spread over 5 min), {ending} ending over a minute | RSS {} MiB 3 s after the resume, peak {} MiB; {} cores while they end; detection p50 {} ms, p99 {} ms, max {} ms ({} measured), from the callback sent p50 {} ms, p99 {} ms, max {} ms; {} platform requests/s | ≤ 1 GiB RSS, ≤ 1 core, p99 ≤ 1 s |",
            round(rss_tracked, 1),
            round(peak, 1),
            round(cpu_cores, 2),
            round(p50, 0),
            round(p99, 0),
            round(max, 0),
            latencies.len(),
            round(cb_p50, 0),
            round(cb_p99, 0),
            round(cb_max, 0),
            round(requests_per_s, 0),
        ));
        let result = json!({
            "executions": n,
            "ending": ending,
            "seeding_s": round(reg_s, 1),
            "callbacks_answered_200": answered,
            "detection_latency_ms": {"p50": round(p50, 0), "p99": round(p99, 0), "max": round(max, 0), "measured": latencies.len()},
            "callback_to_stored_ms": {"p50": round(cb_p50, 0), "p99": round(cb_p99, 0), "max": round(cb_max, 0)},
            "platform_requests_per_s": round(requests_per_s, 0),
            "rss_after_resume_mib": round(rss_tracked, 1),
            "peak_rss_mib": round(peak, 1),
            "agent_cpu_cores": round(cpu_cores, 2),
        });
        return Ok((result, rows));
    }
    rows.push(format!(
        "| detection with callbacks, job end → final state stored, {n} tracked (5 min safety net) | p50 {} ms, p99 {} ms, max {} ms ({} measured; {answered} callbacks answered 200); from the callback sent p50 {} ms, p99 {} ms, max {} ms | p99 ≤ 250 ms |",
        round(p50, 0),
        round(p99, 0),
        round(max, 0),
        latencies.len(),
        round(cb_p50, 0),
        round(cb_p99, 0),
        round(cb_max, 0),
    ));
    rows.push(format!(
        "| platform requests per execution with callbacks (jobs of 20–80 s, logs included) | {} | ≤ 4 for a 10-minute job |",
        round(requests_per_execution, 2)
    ));
    rows.push(format!(
        "| agent with callbacks, {n} tracked (resumed from the store) | RSS {} MiB 3 s after the resume, peak {} MiB, {} cores while the jobs end | — |",
        round(rss_tracked, 1),
        round(peak, 1),
        round(cpu_cores, 2)
    ));
    rows.push(format!(
        "| callbacks taken per second (64 senders, closed loop) | {} /s; the harness sent {} /s at the busiest (a minute's ends) | ≥ the send rate |",
        round(ceiling, 0),
        round(ending as f64 / 60.0, 0)
    ));
    let result = json!({
        "executions": n,
        "seeding_s": round(reg_s, 1),
        "callbacks_answered_200": answered,
        "detection_latency_ms": {"p50": round(p50, 0), "p99": round(p99, 0), "max": round(max, 0), "measured": latencies.len()},
        "callback_to_stored_ms": {"p50": round(cb_p50, 0), "p99": round(cb_p99, 0), "max": round(cb_max, 0)},
        "requests_per_execution": round(requests_per_execution, 2),
        "rss_after_resume_mib": round(rss_tracked, 1),
        "peak_rss_mib": round(peak, 1),
        "agent_cpu_cores": round(cpu_cores, 2),
        "callbacks_per_s_ceiling": round(ceiling, 0),
    });
    Ok((result, rows))
}

/// The core the emulator (this process) runs on; wrk and the agent get [`LOAD_CPU`], so that
/// the ratio to the ceiling compares like with like.
const EMULATOR_CPU: usize = 0;
/// The core of the load generator: wrk for the ceiling, then the agent.
const LOAD_CPU: usize = 1;

/// Pins the calling thread (and the threads it starts after) to `cpu`. Async-signal-safe
/// (one system call), so it may run between fork and exec.
fn pin(cpu: usize) -> std::io::Result<()> {
    // SAFETY: cpu_set_t is plain data; CPU_ZERO/CPU_SET only write into it; the syscall
    // reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether this machine has the two cores pinning needs.
fn pinned() -> bool {
    std::thread::available_parallelism().map_or(0, |n| n.get()) >= 2
}

/// Makes `command`'s process run on [`LOAD_CPU`] (when pinning) and die with the harness.
fn load_process(command: &mut Command) {
    let pinning = pinned();
    // SAFETY: prctl and sched_setaffinity are async-signal-safe system calls.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(command, move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if pinning {
                pin(LOAD_CPU)?;
            }
            Ok(())
        });
    }
}

/// CPU seconds (user + system) this process (the emulator) has used.
fn own_cpu_seconds() -> f64 {
    cpu_seconds(std::process::id())
}

/// CPU seconds (user + system) of process `pid`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `(comm)`: state is field 3; utime 14, stime 15.
    let after = stat.rsplit_once(')').map_or("", |(_, a)| a);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (field(11) + field(12)) / ticks
}

const SCENARIO: &str = r#"
[auth]
app_code = "jobwatch"
app_secret = "bench-secret-0f3c"

[[hosts]]
bk_host_id = 101
ip = "10.0.0.1"
duration = "1s"
status = 9
log = "ok\n"
"#;

/// A running daemon.
struct Agent {
    child: Child,
    base: String,
    resumed: usize,
    listening_after: Duration,
}

impl Agent {
    fn start(binary: &Path, config: &Path) -> anyhow::Result<Agent> {
        let started = Instant::now();
        let mut command = Command::new(binary);
        load_process(&mut command);
        let mut child = command
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
        let (base, resumed) = loop {
            let Some(line) = lines.next() else {
                bail!("the daemon exited before listening")
            };
            let line = line?;
            if let Some(found) = jobwatch::daemon::parse_listening_line(&line) {
                break found;
            }
        };
        let listening_after = started.elapsed();
        std::thread::spawn(move || for _ in lines {});
        Ok(Agent {
            child,
            base,
            resumed,
            listening_after,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// (user + system CPU seconds, RSS MiB, peak RSS MiB).
    fn usage(&self) -> (f64, f64, f64) {
        let pid = self.pid();
        let cpu = cpu_seconds(pid);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let kb = |key: &str| -> f64 {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0)
        };
        (cpu, kb("VmRSS:") / 1024.0, kb("VmHWM:") / 1024.0)
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The agent's config: check `bench` polled every `interval` without jitter (with the default
/// 10 % jitter the gap between two polls reaches 1.1 × the interval, and the detection p99
/// that jitter alone predicts is 1.035 × the interval: the target, interval + 100 ms, is about
/// the agent's own lateness), and check `first` with the default poll policy.
fn write_config(dir: &Path, url: &str, interval: Duration) -> anyhow::Result<PathBuf> {
    let path = dir.join("jobwatch.toml");
    let i = format!("{}ms", interval.as_millis());
    let platform = bkjob_emulator::jobwatch_platform_toml(
        "bk",
        &[url.to_owned()],
        "apigw",
        &format!(
            "app_secret = \"{SECRET}\"\nrequest_timeout = \"30s\"\nmax_concurrent_requests = 64\nmax_requests_per_second = 10000000\nmax_submits_per_second = 10000000\nendpoint_failures_before_cooldown = 1000000"
        ),
    );
    std::fs::write(
        &path,
        format!(
            r#"
{daemon}
{platform}
[[checks]]
name = "bench"
platform = "bk"
script = "true"
hosts = [101]
account_alias = "root"
timeout = "2h"
[checks.poll]
first_poll = "{i}"
interval = "{i}"
backoff_factor = 1.0
max_interval = "{i}"
jitter = 0.0
stuck_after = "1h"
straggler_after = "1h"

[[checks]]
name = "first"
platform = "bk"
script = "sleep 1"
hosts = [101]
account_alias = "root"
timeout = "1m"
"#,
            daemon = bkjob_emulator::jobwatch_daemon_toml(&dir.join("data")),
        ),
    )?;
    Ok(path)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(256)
        .build()
        .expect("client")
}

/// Registers a watch for each job id, `concurrency` at a time. Returns the seconds taken.
async fn watch_all(base: &str, ids: Vec<u64>, concurrency: usize) -> anyhow::Result<f64> {
    Ok(watch_all_ids(base, ids, concurrency).await?.0)
}

/// Registers a watch for each job id, `concurrency` at a time. Returns the seconds taken and
/// each job id with its execution id.
async fn watch_all_ids(
    base: &str,
    ids: Vec<u64>,
    concurrency: usize,
) -> anyhow::Result<(f64, Vec<(u64, String)>)> {
    let started = Instant::now();
    let client = client();
    let mut set = tokio::task::JoinSet::new();
    let url = format!("{base}/v1/watches");
    let mut pairs = Vec::with_capacity(ids.len());
    for id in ids {
        if set.len() >= concurrency
            && let Some(r) = set.join_next().await
        {
            pairs.push(r??);
        }
        let (client, url) = (client.clone(), url.clone());
        set.spawn(async move {
            let body = json!({"platform": "bk", "job_instance_id": id, "check": "bench"});
            let resp = client.post(&url).json(&body).send().await?;
            if resp.status().as_u16() != 202 {
                bail!("watch {id}: HTTP {}", resp.status());
            }
            let v: Value = resp.json().await?;
            let execution = v["execution_id"]
                .as_str()
                .context("execution_id")?
                .to_owned();
            anyhow::Ok((id, execution))
        });
    }
    while let Some(r) = set.join_next().await {
        pairs.push(r??);
    }
    Ok((started.elapsed().as_secs_f64(), pairs))
}

fn seed(emulator: &Emulator, host: &bkjob_emulator::scenario::HostSpec, duration: Duration) -> u64 {
    let mut h = host.clone();
    h.duration = duration;
    emulator
        .state()
        .seed_job("bench", Duration::from_secs(7200), vec![h])
}

/// The emulator's status endpoint under wrk: requests/s.
fn ceiling(
    emulator: &Emulator,
    host: &bkjob_emulator::scenario::HostSpec,
    seconds: u64,
) -> anyhow::Result<f64> {
    let id = seed(emulator, host, Duration::from_secs(3600));
    let url = format!(
        "{}/api/v3/get_job_instance_status?bk_scope_type=biz&bk_scope_id=2&job_instance_id={id}&return_ip_result=true",
        emulator.apigw_url()
    );
    let auth = json!({"bk_app_code": "jobwatch", "bk_app_secret": SECRET, "bk_username": "admin"});
    let mut wrk = Command::new("wrk");
    load_process(&mut wrk);
    let out = wrk
        .args(["-t1", "-c64", &format!("-d{seconds}s")])
        .args(["-H", &format!("X-Bkapi-Authorization: {auth}")])
        .args(["-H", "Content-Type: application/json"])
        .arg(&url)
        .output()
        .context("wrk (Debian package `wrk`; scripts/bench.sh installs it)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("Non-2xx") {
        bail!("wrk saw errors: {text}");
    }
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk output: {text}"))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn parse_ms(rfc3339: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|d| d.timestamp_millis())
}

/// Executions of check `bench` followed now (`jobwatch_active_executions`: the true count,
/// where a page of `/v1/executions` stops at 1 000); `usize::MAX` when the agent does not
/// answer.
async fn active_count(base: &str) -> usize {
    let Ok(resp) = client().get(format!("{base}/metrics")).send().await else {
        return usize::MAX;
    };
    let text = resp.text().await.unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("jobwatch_active_executions{check=\"bench\"} "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(usize::MAX, |v| v as usize)
}

/// A UUIDv7 execution id, as jobwatch makes them.
fn uuid_v7() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    let r: u128 = rand::random();
    let v = (u128::from(ms & 0xFFFF_FFFF_FFFF) << 80)
        | (0x7u128 << 76)
        | ((r >> 52) & 0xFFF) << 64
        | (0b10u128 << 62)
        | (r & 0x3FFF_FFFF_FFFF_FFFF);
    let h = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    jobwatch::install_crypto_provider();
    // The emulator (this process: every thread started from here on) on one core, wrk and
    // the agent on the other.
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let pinning = pinned();
    if pinning {
        pin(EMULATOR_CPU).context("pinning the emulator")?;
    }
    let binary = match &args.jobwatch {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("jobwatch"),
    };
    let emulator_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("emulator")
        .enable_all()
        .build()?;
    let emulator = emulator_rt.block_on(Emulator::start(
        "127.0.0.1:0".parse()?,
        Scenario::from_toml(SCENARIO)?,
    ))?;
    let host = emulator.state().scenario().hosts[0].clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let url = emulator.apigw_url();
    let polls = || emulator.state().stats.requests("get_job_instance_status");
    let all_requests = || {
        [
            "fast_execute_script",
            "get_job_instance_status",
            "batch_get_job_instance_ip_log",
            "get_job_instance_ip_log",
            "get_job_instance_list",
            "operate_job_instance",
        ]
        .iter()
        .map(|a| emulator.state().stats.requests(a))
        .sum::<u64>()
    };

    if args.only_callbacks {
        let dir = std::env::temp_dir().join(format!("jobwatch-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        println!("| figure | measured | target |");
        println!("|---|---|---|");
        let mut results = Vec::new();
        for load in callback_loads(&args) {
            let (result, rows) = callbacks_phase(load, &binary, &emulator, &dir, &all_requests)?;
            for row in rows {
                println!("{row}");
            }
            results.push(result);
        }
        let _ = std::fs::remove_dir_all(&dir);
        println!(
            "{}",
            json!({"date": chrono::Utc::now().format("%Y-%m-%d").to_string(), "callbacks": results})
        );
        return Ok(());
    }
    eprintln!("jobwatch-bench: ceiling (wrk, {} s)…", args.window);
    let emulator_cpu0 = own_cpu_seconds();
    let ceiling_started = Instant::now();
    let ceiling = ceiling(&emulator, &host, args.window)?;
    let ceiling_emulator_cores =
        (own_cpu_seconds() - emulator_cpu0) / ceiling_started.elapsed().as_secs_f64();

    // Capacity: every execution polled every 200 ms, more than the platform can serve.
    eprintln!(
        "jobwatch-bench: capacity ({} executions polled every 200 ms)…",
        args.capacity_executions
    );
    let dir = std::env::temp_dir().join(format!("jobwatch-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cap_dir = dir.join("capacity");
    std::fs::create_dir_all(&cap_dir)?;
    let config = write_config(&cap_dir, &url, Duration::from_millis(200))?;
    let agent = Agent::start(&binary, &config)?;
    let ids: Vec<u64> = (0..args.capacity_executions)
        .map(|_| seed(&emulator, &host, Duration::from_secs(3600)))
        .collect();
    let reg_seconds = rt.block_on(watch_all(&agent.base, ids, args.register_concurrency))?;
    let registration_rate = args.capacity_executions as f64 / reg_seconds;
    std::thread::sleep(Duration::from_secs(3));
    let (cpu0, _, _) = agent.usage();
    let emulator_cpu0 = own_cpu_seconds();
    let (p0, t0) = (polls(), Instant::now());
    std::thread::sleep(Duration::from_secs(args.window));
    let (cpu1, _, _) = agent.usage();
    let (p1, elapsed) = (polls(), t0.elapsed().as_secs_f64());
    let capacity_emulator_cores = (own_cpu_seconds() - emulator_cpu0) / elapsed;
    agent.kill();
    let capacity = (p1 - p0) as f64 / elapsed;
    let cpu_cores = (cpu1 - cpu0) / elapsed;
    let cpu_per_1000 = (cpu1 - cpu0) / ((p1 - p0) as f64 / 1000.0);

    // Scale: N executions, demand about half the capacity, jobs ending over a minute.
    let n = args.executions;
    let interval_s = ((n as f64 / (0.5 * capacity)).ceil() as u64).max(1);
    let interval = Duration::from_secs(interval_s);
    eprintln!("jobwatch-bench: scale ({n} executions polled every {interval_s} s)…");
    let scale_dir = dir.join("scale");
    std::fs::create_dir_all(&scale_dir)?;
    let config = write_config(&scale_dir, &url, interval)?;
    let agent = Agent::start(&binary, &config)?;
    std::thread::sleep(Duration::from_secs(1));
    let (_, rss_base, _) = agent.usage();
    let requests_before = all_requests();
    // Every job ends after registration and the restart: base + up to 60 s.
    let registration_estimate = n as f64 / registration_rate.max(1.0);
    let ends_from = Instant::now() + Duration::from_secs_f64(registration_estimate * 1.5 + 30.0);
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let end = ends_from + Duration::from_millis((i as u64 * 60_000) / n as u64);
        ids.push(seed(
            &emulator,
            &host,
            end.saturating_duration_since(Instant::now()),
        ));
    }
    let reg_seconds_scale = rt.block_on(watch_all(
        &agent.base,
        ids.clone(),
        args.register_concurrency,
    ))?;
    std::thread::sleep(Duration::from_secs(2));
    let (_, rss_tracked, peak_first) = agent.usage();
    // kill -9, restart, time until every execution is resumed.
    drop(agent);
    let agent = Agent::start(&binary, &config)?;
    let resume_seconds = agent.listening_after.as_secs_f64();
    let resumed = agent.resumed;
    if Instant::now() > ends_from {
        eprintln!(
            "jobwatch-bench: warning: registration and restart took longer than planned; early jobs' latency includes the restart"
        );
    }
    std::thread::sleep(Duration::from_secs(3));
    let (cpu_s0, _, peak_resume) = agent.usage();
    let scale_started = Instant::now();
    // Wait for every job to end and every execution to be final.
    let last_end = ends_from + Duration::from_secs(60);
    std::thread::sleep(last_end.saturating_duration_since(Instant::now()));
    let deadline = Instant::now() + interval * 3 + Duration::from_secs(120);
    while rt.block_on(active_count(&agent.base)) != 0 {
        if Instant::now() > deadline {
            bail!("executions still active long after their jobs ended");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (cpu_s1, _, peak_second) = agent.usage();
    let scale_cpu_cores = (cpu_s1 - cpu_s0) / scale_started.elapsed().as_secs_f64();
    let requests_per_execution = (all_requests() - requests_before) as f64 / n as f64;

    // Detection latency, from the store.
    let latencies = detection_latencies(&rt, &scale_dir.join("data"), &emulator)?;
    let (p50, p99, max) = (
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN),
    );

    // First result of a job that ends in 1 s (default poll policy), once the agent is idle
    // (the ended executions' log fetches are done: no platform request for 2 s).
    let idle_by = Instant::now() + Duration::from_secs(300);
    let mut seen = all_requests();
    loop {
        std::thread::sleep(Duration::from_secs(2));
        let now = all_requests();
        if now == seen || Instant::now() > idle_by {
            break;
        }
        seen = now;
    }
    let mut first = Vec::new();
    for _ in 0..3 {
        let v: Value = rt.block_on(async {
            let resp = client()
                .post(format!("{}/v1/executions", agent.base))
                .json(&json!({"check": "first"}))
                .send()
                .await?;
            anyhow::Ok(resp.json().await?)
        })?;
        let id = v["execution_id"]
            .as_str()
            .context("execution_id")?
            .to_owned();
        let until = Instant::now() + Duration::from_secs(30);
        let report = loop {
            let r: Value = rt.block_on(async {
                anyhow::Ok(
                    client()
                        .get(format!("{}/v1/executions/{id}", agent.base))
                        .send()
                        .await?
                        .json()
                        .await?,
                )
            })?;
            if r["state"] != "pending" && r["state"] != "running" {
                break r;
            }
            if Instant::now() > until {
                bail!("the 1 s job never ended");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let (Some(s), Some(e)) = (
            report["started_at"].as_str().and_then(parse_ms),
            report["ended_at"].as_str().and_then(parse_ms),
        ) else {
            bail!("no start/end in {report}");
        };
        first.push((e - s) as f64 / 1000.0);
    }
    let first_result = first.iter().copied().fold(0.0, f64::max);
    let peak = peak_first.max(peak_second);
    drop(agent);

    // Callbacks: bk-job calls back at each job's end; polling is the safety net.
    let mut callbacks = Vec::new();
    let mut callback_rows = Vec::new();
    for load in callback_loads(&args) {
        let (result, rows) = callbacks_phase(load, &binary, &emulator, &dir, &all_requests)?;
        callbacks.push(result);
        callback_rows.extend(rows);
    }
    if callbacks.is_empty() {
        callback_rows.push(
            "| callbacks | skipped (--callback-executions 0 --callback-tracked 0) | |".to_owned(),
        );
    }

    // Seeded: executions written straight into a fresh store (jobs running on the
    // emulator), then one start resumes them all.
    let seeded = if args.seeded > 0 {
        eprintln!(
            "jobwatch-bench: seeded ({} executions in the store, resumed)…",
            args.seeded
        );
        let seeded_dir = dir.join("seeded");
        std::fs::create_dir_all(&seeded_dir)?;
        let config = write_config(&seeded_dir, &url, Duration::from_secs(60))?;
        let check = jobwatch::config::CheckConfig {
            timeout: Duration::from_secs(7200),
            ..jobwatch::config::CheckConfig::new(
                "bench",
                "bk",
                String::new(),
                vec![jobwatch::model::Host::by_id(101)],
            )
        };
        let store = rt.block_on(jobwatch::store::SqliteStore::open(&seeded_dir.join("data")))?;
        let mut left = args.seeded;
        while left > 0 {
            let n = left.min(20_000);
            left -= n;
            let batch: Vec<_> = (0..n)
                .map(|_| {
                    let id = seed(&emulator, &host, Duration::from_secs(3600));
                    let mut r = jobwatch::tracker::ExecutionReport::new(
                        uuid_v7(),
                        &check,
                        "bk",
                        "bkjob",
                        "",
                    );
                    r.origin = jobwatch::tracker::report::Origin::Watch;
                    r.triggered(&jobwatch::platform::JobRef::instance(id));
                    r.polls = 1;
                    r
                })
                .collect();
            rt.block_on(store.insert_many(&batch))?;
        }
        drop(store);
        let agent = Agent::start(&binary, &config)?;
        let resume_s = agent.listening_after.as_secs_f64();
        let resumed = agent.resumed;
        std::thread::sleep(Duration::from_secs(3));
        let (_, rss, peak) = agent.usage();
        drop(agent);
        Some((resumed, resume_s, rss, peak))
    } else {
        None
    };
    let _ = std::fs::remove_dir_all(&dir);

    let rss_per_execution_kb = (rss_tracked - rss_base) * 1024.0 / n as f64;
    let target_latency_ms = interval_s as f64 * 1000.0 + 100.0;
    let result = json!({
        "date": chrono::Utc::now().format("%Y-%m-%d").to_string(),
        "machine": {
            "cpus": cpus,
            "cpu_model": std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default().lines()
                .find_map(|l| l.strip_prefix("model name")).map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned()),
        },
        "pinned": pinning,
        "ceiling_polls_per_s": round(ceiling, 0),
        "ceiling_emulator_cpu_cores": round(ceiling_emulator_cores, 2),
        "capacity": {
            "executions": args.capacity_executions,
            "polls_per_s": round(capacity, 0),
            "ratio_to_ceiling": round(capacity / ceiling, 3),
            "agent_cpu_cores": round(cpu_cores, 2),
            "emulator_cpu_cores": round(capacity_emulator_cores, 2),
            "cpu_seconds_per_1000_polls": round(cpu_per_1000, 4),
            "watch_registrations_per_s": round(registration_rate, 0),
        },
        "scale": {
            "executions": n,
            "poll_interval_s": interval_s,
            "watch_registration_s": round(reg_seconds_scale, 1),
            "rss_baseline_mib": round(rss_base, 1),
            "rss_tracking_mib": round(rss_tracked, 1),
            "rss_per_execution_kib": round(rss_per_execution_kb, 2),
            "peak_rss_mib": round(peak, 1),
            "peak_rss_by_phase_mib": {
                "registration": round(peak_first, 1),
                "resume": round(peak_resume, 1),
                "resume_and_jobs_ending": round(peak_second, 1),
            },
            "agent_cpu_cores": round(scale_cpu_cores, 2),
            "detection_latency_ms": {"p50": round(p50, 0), "p99": round(p99, 0), "max": round(max, 0), "measured": latencies.len()},
            "requests_per_execution": round(requests_per_execution, 2),
            "resume_seconds": round(resume_seconds, 2),
            "resumed": resumed,
        },
        "first_result_s": round(first_result, 3),
        "callbacks": callbacks,
        "seeded": seeded.map(|(resumed, resume_s, rss, peak)| json!({
            "executions": args.seeded,
            "resumed": resumed,
            "resume_seconds": round(resume_s, 2),
            "rss_mib": round(rss, 1),
            "peak_rss_mib": round(peak, 1),
        })),
        "targets": {
            "rss_per_execution_le_1kib": rss_per_execution_kb <= 1.0,
            "peak_rss_100k_le_160mib": peak <= 160.0 && n >= 100_000,
            "polls_ge_0_8_ceiling": capacity >= 0.8 * ceiling,
            "agent_le_1_core": cpu_cores <= 1.0,
            "detection_p99_le_interval_plus_100ms": p99 <= target_latency_ms,
            "resume_100k_le_1_5s": resume_seconds <= 1.5 && resumed >= 100_000,
            "seeded_1m_le_1gib_resume_le_15s": seeded.is_some_and(|(resumed, resume_s, _, peak)| {
                resumed >= 1_000_000 && resume_s <= 15.0 && peak <= 1024.0
            }),
            "first_result_le_1_5s": first_result <= 1.5,
        },
    });
    let date = chrono::Utc::now().format("%Y-%m-%d");
    println!(
        "jobwatch-bench {date}: emulator on core {EMULATOR_CPU}, wrk and the agent on core {LOAD_CPU}{}",
        if pinning {
            ""
        } else {
            " (NOT pinned: fewer than 2 cores)"
        }
    );
    println!("| figure | measured | target |");
    println!("|---|---|---|");
    println!(
        "| RSS per tracked execution at rest | {} KiB ({} MiB → {} MiB with {n}) | ≤ 1 KiB |",
        round(rss_per_execution_kb, 2),
        round(rss_base, 1),
        round(rss_tracked, 1)
    );
    println!(
        "| peak RSS, {n} tracked (incl. resume after kill -9) | {} MiB (registering {}, resume {}, resume and every job ending {}) | ≤ 160 MiB |",
        round(peak, 1),
        round(peak_first, 1),
        round(peak_resume, 1),
        round(peak_second, 1)
    );
    println!(
        "| status polls/s vs wrk ceiling, same pinned endpoint | {} / {} = {} × at {} agent cores ({} CPU s per 1 000 polls; emulator {} cores, {} under wrk) | ≥ 0.8 × at ≤ 1 core |",
        round(capacity, 0),
        round(ceiling, 0),
        round(capacity / ceiling, 3),
        round(cpu_cores, 2),
        round(cpu_per_1000, 4),
        round(capacity_emulator_cores, 2),
        round(ceiling_emulator_cores, 2)
    );
    println!(
        "| resume of {resumed} after kill -9 to all following | {} s | ≤ 1.5 s |",
        round(resume_seconds, 2)
    );
    println!(
        "| detection p99, job end → final state stored (poll every {interval_s} s) | p50 {} ms, p99 {} ms, max {} ms ({} measured) | ≤ {} ms |",
        round(p50, 0),
        round(p99, 0),
        round(max, 0),
        latencies.len(),
        target_latency_ms
    );
    match seeded {
        Some((resumed, resume_s, rss, peak)) => println!(
            "| {} tracked executions (seeded in the store, resumed) | {resumed} resumed in {} s; RSS {} MiB, peak {} MiB | ≤ 1 GiB RSS, resume ≤ 15 s |",
            args.seeded,
            round(resume_s, 2),
            round(rss, 1),
            round(peak, 1)
        ),
        None => println!("| seeded executions | skipped (--seeded 0) | |"),
    }
    println!(
        "| platform requests per execution (jobs of 1–2 min, logs included) | {} | — |",
        round(requests_per_execution, 2)
    );
    println!(
        "| first result of a 1 s job | {} s | ≤ 1.5 s |",
        round(first_result, 3)
    );
    for row in callback_rows {
        println!("{row}");
    }
    println!("{result}");
    Ok(())
}
