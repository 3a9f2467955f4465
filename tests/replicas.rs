//! Several replicas on one real PostgreSQL (a throwaway cluster per test): the real
//! `jobwatch` binary, the bk-job emulator, `kill -9`, a database outage. Default limits
//! (lease, platform rates) unless a test says otherwise.

mod common;
#[path = "common/postgres.rs"]
mod postgres;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Daemon, TOKEN, get_json, metric, post, runtime};
use serde_json::Value;

/// Every host runs `duration`, then succeeds.
fn hosts(duration: &str) -> String {
    format!(
        r#"
[[hosts]]
bk_host_id = 101
ip = "10.0.0.1"
duration = "{duration}"
log = "one\n"
[[hosts]]
bk_host_id = 102
ip = "10.0.0.2"
duration = "{duration}"
log = "two\n"
"#
    )
}

/// A replica's configuration: the emulator with default limits, the shared database, and
/// `checks`; its own data directory (unused by the store: the database holds everything).
fn replica_config(dir: &Path, platform: &common::Platform, url: &str, checks: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("jobwatch.toml");
    let platform =
        bkjob_emulator::jobwatch_platform_toml("bk", &[platform.emulator.apigw_url()], "apigw", "");
    let text = format!(
        "{daemon}\n[store]\nurl = \"{url}\"\n\n{platform}\n{checks}\n",
        daemon = bkjob_emulator::jobwatch_daemon_toml(&dir.join("data")),
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn check(name: &str, extra: &str) -> String {
    format!(
        r#"
[[checks]]
name = "{name}"
platform = "bk"
script = "echo hi"
hosts = [101, 102]
account_alias = "root"
timeout = "300s"
{extra}
[checks.poll]
first_poll = "500ms"
interval = "1s"
max_interval = "2s"
"#
    )
}

/// Starts a replica (the password comes from the environment, never the file).
fn start(config: &Path) -> Daemon {
    let mut cmd = common::jobwatch_bk();
    cmd.env("JOBWATCH__STORE__PASSWORD", postgres::PASSWORD)
        .env("RUST_LOG", "jobwatch=info");
    let daemon = Daemon::start_with(cmd, config);
    assert!(
        daemon
            .printed
            .iter()
            .all(|l| !l.contains(postgres::PASSWORD)),
        "the database password leaked"
    );
    daemon
}

/// A throwaway PostgreSQL with database `jobwatch`, an emulator whose hosts run `duration`,
/// and the configurations of `n` replicas with `checks`.
struct Cluster {
    pg: postgres::Postgres,
    platform: common::Platform,
    configs: Vec<PathBuf>,
    _root: tempfile::TempDir,
}

impl Cluster {
    fn new(n: usize, duration: &str, checks: &str) -> Cluster {
        let pg = postgres::Postgres::start();
        let url = pg.database("jobwatch");
        let platform = common::emulator(&hosts(duration));
        let root = tempfile::tempdir().unwrap();
        let configs = (0..n)
            .map(|i| replica_config(&root.path().join(format!("r{i}")), &platform, &url, checks))
            .collect();
        Cluster {
            pg,
            platform,
            configs,
            _root: root,
        }
    }

    /// Starts every replica.
    fn start_all(&self) -> Vec<Daemon> {
        self.configs.iter().map(|c| start(c)).collect()
    }
}

/// POSTs an execution of check `fleet` to `base`; returns its id once accepted.
async fn post_one(base: &str) -> String {
    let (status, body) = post(base, "/v1/executions", r#"{"check":"fleet"}"#, Some(TOKEN)).await;
    assert_eq!(status, 202, "{body}");
    body["execution_id"].as_str().unwrap().to_owned()
}

/// POSTs `n` executions of check `fleet`, round-robin over `bases`; returns their ids.
async fn post_many(bases: &[&str], n: usize) -> HashSet<String> {
    let mut accepted = HashSet::new();
    for i in 0..n {
        accepted.insert(post_one(bases[i % bases.len()]).await);
    }
    accepted
}

/// Waits (at most 2 minutes) until `replicas` each hold an equal share of the 256 shards.
async fn wait_balanced(replicas: &[Daemon]) {
    let share = 256 / replicas.len() as u32;
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        let mut held = Vec::new();
        for r in replicas {
            held.push(shards_held(&r.base).await);
        }
        if held.iter().all(|&h| h == share) {
            return;
        }
        assert!(Instant::now() < until, "not balanced: {held:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every execution, read from `base` page by page.
async fn all_executions(base: &str, state: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = get_json(
            base,
            &format!("/v1/executions?state={state}&limit=1000{cursor}"),
        )
        .await;
        assert_eq!(status, 200, "{page}");
        let rows = page["executions"].as_array().unwrap().clone();
        let done = rows.len() < 1000;
        if let Some(last) = rows.last() {
            cursor = format!("&cursor={}", last["execution_id"].as_str().unwrap());
        }
        all.extend(rows);
        if done {
            return all;
        }
    }
}

/// What a replica's `/metrics` says it holds (`jobwatch_shards_held`).
async fn shards_held(base: &str) -> u32 {
    metric(base, "jobwatch_shards_held").await as u32
}

/// Waits (at most 2 minutes) until `base` lists no active execution; `after` says since
/// what, for the failure.
async fn wait_none_active(base: &str, after: &str) {
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, page) = get_json(base, "/v1/executions?state=active&limit=1").await;
        if status == 200 && page["executions"].as_array().is_some_and(|a| a.is_empty()) {
            return;
        }
        assert!(
            Instant::now() < until,
            "executions still active 2 min {after}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Checks the platform's truth against what the replicas recorded: every job belongs to
/// exactly one execution (no job submitted twice), and every execution that reached the
/// platform ended as its job did. Returns the detection delays (ms) of the jobs: when
/// jobwatch recorded the end minus when the job ended on the platform.
async fn assert_true_ends(
    base: &str,
    platform: &common::Platform,
    accepted: &HashSet<String>,
) -> Vec<i64> {
    let history = all_executions(base, "history").await;
    let ids: HashSet<String> = history
        .iter()
        .map(|e| e["execution_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(accepted.is_subset(&ids), "an accepted execution was lost");
    let names = platform.emulator.state().job_names();
    let unique: HashSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "a job was submitted twice");
    let mut delays = Vec::new();
    let mut by_task: HashMap<String, String> = HashMap::new();
    for e in &history {
        let id = e["execution_id"].as_str().unwrap();
        let (_, full) = get_json(base, &format!("/v1/executions/{id}")).await;
        let task = full["task_name"].as_str().unwrap().to_owned();
        match full["trigger_status"].as_str().unwrap() {
            "triggered" => {
                assert_eq!(full["state"], "succeeded", "{full:#}");
                assert!(names.contains(&task), "triggered but no such job: {full:#}");
                let job = full["job_instance_id"].as_u64().unwrap();
                let ended = chrono_ms(full["ended_at"].as_str().unwrap());
                if let Some(end) = platform.emulator.state().job_end_ms(job) {
                    delays.push(ended - end);
                }
            }
            "trigger_failed" => {
                assert!(
                    !names.contains(&task),
                    "a job exists for an execution called not found: {full:#}"
                );
            }
            "skipped" => {}
            other => panic!("unexpected trigger status {other}: {full:#}"),
        }
        by_task.insert(task, id.to_owned());
    }
    assert!(
        names.iter().all(|n| by_task.contains_key(n)),
        "a job on the platform belongs to no execution"
    );
    delays
}

fn chrono_ms(rfc3339: &str) -> i64 {
    jobwatch::time::parse_rfc3339_ms(rfc3339).unwrap_or_else(|| panic!("not a time: {rfc3339}"))
}

#[test]
fn three_replicas_one_killed_every_15s_lose_and_duplicate_nothing() {
    let c = Cluster::new(3, "12s", &check("fleet", ""));
    let (platform, configs) = (&c.platform, &c.configs);
    runtime().block_on(async {
        let mut replicas: Vec<Option<Daemon>> = configs.iter().map(|c| Some(start(c))).collect();
        let mut bases: Vec<String> = replicas
            .iter()
            .map(|d| d.as_ref().unwrap().base.clone())
            .collect();
        let begun = Instant::now();
        let mut accepted = HashSet::new();
        let mut next_kill = begun + Duration::from_secs(15);
        let mut restart: Option<(usize, Instant)> = None;
        let mut victim = 0;
        let mut kills = 0;
        let mut sent = 0;
        // 1 000 executions POSTed round-robin to the live replicas (about 25 a second), while
        // one replica is killed every 15 s and started again 5 s later — until every
        // execution has ended.
        loop {
            let now = Instant::now();
            if now >= next_kill && restart.is_none() {
                let d = replicas[victim].take().unwrap();
                d.signal(libc::SIGKILL);
                drop(d);
                kills += 1;
                restart = Some((victim, now + Duration::from_secs(5)));
                next_kill = now + Duration::from_secs(15);
            }
            if let Some((i, at)) = restart
                && now >= at
            {
                let d = start(&configs[i]);
                bases[i] = d.base.clone();
                replicas[i] = Some(d);
                restart = None;
                victim = (victim + 1) % 3;
            }
            if sent < 1000 {
                let live: Vec<usize> = (0..3).filter(|i| replicas[*i].is_some()).collect();
                let i = live[sent % live.len()];
                accepted.insert(post_one(&bases[i]).await);
                sent += 1;
                tokio::time::sleep(Duration::from_millis(40)).await;
                continue;
            }
            // All sent: the run goes on (kills included) until nothing is active.
            let any = (0..3).find(|i| replicas[*i].is_some()).unwrap();
            let (_, page) = get_json(&bases[any], "/v1/executions?state=active&limit=1").await;
            if page["executions"].as_array().is_some_and(|a| a.is_empty()) {
                break;
            }
            assert!(
                begun.elapsed() < Duration::from_secs(400),
                "executions still active after 400 s"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert_eq!(accepted.len(), 1000);
        assert!(kills >= 3, "only {kills} kills during the run");
        for (i, r) in replicas.iter_mut().enumerate() {
            if r.is_none() {
                *r = Some(start(&configs[i]));
                bases[i] = r.as_ref().unwrap().base.clone();
            }
        }
        let delays = assert_true_ends(&bases[0], platform, &accepted).await;
        assert_eq!(
            delays.len(),
            1000,
            "every execution reached the platform once"
        );
        let mut sorted = delays.clone();
        sorted.sort_unstable();
        eprintln!(
            "{kills} kills in {:?}; detection delay over the run: median {} ms, worst {} ms",
            begun.elapsed(),
            sorted[sorted.len() / 2],
            sorted[sorted.len() - 1]
        );

        // Then one last kill, with no kill after it: the executions of the dead replica are
        // followed again within the lease (15 s) plus one poll interval (2 s at most here).
        // Slack: the takeover jitter (0.5 s) and the default rate limit (20 requests a
        // second per replica) working through what was taken over (1.5 s).
        tokio::time::sleep(Duration::from_secs(12)).await; // balanced again
        let last = post_many(&[&bases[0], &bases[1], &bases[2]], 60).await;
        tokio::time::sleep(Duration::from_secs(8)).await;
        replicas[0].take().unwrap().signal(libc::SIGKILL);
        let killed_at = jobwatch::now_ms();
        wait_none_active(&bases[1], "after the last kill").await;
        let mut all = accepted.clone();
        all.extend(last.iter().cloned());
        let delays = assert_true_ends(&bases[1], platform, &all).await;
        assert_eq!(delays.len(), 1060);
        let mut worst = 0;
        for id in &last {
            let (_, full) = get_json(&bases[1], &format!("/v1/executions/{id}")).await;
            let job = full["job_instance_id"].as_u64().unwrap();
            let end = platform.emulator.state().job_end_ms(job).unwrap();
            // From when it could first be seen ended with its replica dead.
            worst = worst.max(chrono_ms(full["ended_at"].as_str().unwrap()) - end.max(killed_at));
        }
        eprintln!("after the last kill: worst detection delay {worst} ms");
        assert!(
            worst <= 15_000 + 2_000 + 2_000,
            "an execution of the dead replica waited {worst} ms to be followed again"
        );
    });
}

#[test]
fn every_tick_of_a_2s_schedule_is_recorded_once_and_submitted_at_most_once_by_three_replicas() {
    let c = Cluster::new(3, "300ms", &check("beat", "every = \"2s\""));
    let (platform, configs) = (&c.platform, &c.configs);
    runtime().block_on(async {
        let mut replicas = c.start_all();
        let begun = Instant::now();
        // Two minutes; the second replica is killed at one minute and started 5 s later.
        tokio::time::sleep(Duration::from_secs(60)).await;
        replicas[1].signal(libc::SIGKILL);
        tokio::time::sleep(Duration::from_secs(5)).await;
        replicas[1] = start(&configs[1]);
        tokio::time::sleep(Duration::from_secs(120).saturating_sub(begun.elapsed())).await;
        for r in &replicas {
            r.signal(libc::SIGTERM);
        }
        for r in &mut replicas {
            let _ = r.child.wait();
        }
        // Read back through a fresh replica (any answers for all).
        let reader = start(&configs[0]);
        let all = all_executions(&reader.base, "all").await;
        let mut ticks: Vec<i64> = all
            .iter()
            .filter(|e| e["check"] == "beat")
            .map(|e| chrono_ms(e["scheduled_at"].as_str().expect("a scheduled execution")))
            .collect();
        ticks.sort_unstable();
        let distinct: HashSet<i64> = ticks.iter().copied().collect();
        assert_eq!(distinct.len(), ticks.len(), "a tick was recorded twice");
        assert!(
            ticks.len() >= 55,
            "only {} ticks in two minutes",
            ticks.len()
        );
        for pair in ticks.windows(2) {
            assert_eq!(
                pair[1] - pair[0],
                2_000,
                "a tick is missing between {pair:?}"
            );
        }
        // Each tick submitted at most once: one job per triggered execution, no job twice.
        let names = platform.emulator.state().job_names();
        let unique: HashSet<&String> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "a tick was submitted twice");
        let triggered = all
            .iter()
            .filter(|e| e["check"] == "beat" && e["job_instance_id"].is_u64())
            .count();
        assert_eq!(triggered, names.len());
        let skipped = all
            .iter()
            .filter(|e| e["trigger_status"] == "skipped")
            .count();
        eprintln!(
            "{} ticks: {} submitted, {skipped} skipped",
            ticks.len(),
            names.len()
        );
    });
}

#[test]
fn postgresql_down_for_30s_loses_nothing_and_readiness_says_so() {
    // Jobs that end while the database is down.
    let c = Cluster::new(2, "8s", &check("fleet", ""));
    let (pg, platform) = (&c.pg, &c.platform);
    runtime().block_on(async {
        let replicas = c.start_all();
        // Both hold shards before the work comes.
        tokio::time::sleep(Duration::from_secs(12)).await;
        let accepted = post_many(&[&replicas[0].base, &replicas[1].base], 60).await;
        // Submitted and followed, then the database goes away for 30 s.
        tokio::time::sleep(Duration::from_secs(3)).await;
        pg.stop();
        let down = Instant::now();
        // New work is refused with a status a client retries, not a 500.
        let (status, body) = post(
            &replicas[0].base,
            "/v1/executions",
            r#"{"check":"fleet"}"#,
            Some(TOKEN),
        )
        .await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
        let mut unready = [false, false];
        while down.elapsed() < Duration::from_secs(30) {
            for (i, r) in replicas.iter().enumerate() {
                let answer = common::client()
                    .get(format!("{}/readyz", r.base))
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await
                    .unwrap();
                if answer.status() == 503 {
                    unready[i] = true;
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert_eq!(
            unready,
            [true, true],
            "readiness stayed true while the store was down"
        );
        pg.start_again();
        wait_none_active(&replicas[0].base, "after the database came back").await;
        for r in &replicas {
            let (status, _) = get_json(&r.base, "/readyz").await;
            assert_eq!(status, 200, "ready again");
        }
        let delays = assert_true_ends(&replicas[0].base, platform, &accepted).await;
        assert_eq!(
            delays.len(),
            60,
            "every execution reached the platform once"
        );
    });
}

#[test]
fn two_replicas_following_100_000_executions_write_only_their_leases() {
    // Polled every 10 minutes: what is measured is what following costs the database, not
    // what polling costs the emulator on a 2-core machine.
    let slow = r#"
[[checks]]
name = "fleet"
platform = "bk"
script = "echo hi"
hosts = [101]
account_alias = "root"
timeout = "7200s"
[checks.poll]
first_poll = "1s"
interval = "600s"
max_interval = "600s"
"#;
    let c = Cluster::new(2, "1h", slow);
    let (pg, platform) = (&c.pg, &c.platform);
    const N: usize = 100_000;
    runtime().block_on(async {
        let store = jobwatch::store::PgStore::open(&pg.settings("jobwatch")).await.unwrap();
        let check = jobwatch::config::CheckConfig {
            timeout: Duration::from_secs(7200),
            ..jobwatch::config::CheckConfig::new("fleet", "bk", "echo hi", vec![jobwatch::model::Host::by_id(101)])
        };
        let host = platform.emulator.state().scenario().hosts[0].clone();
        // What the platform says of a running job, as jobwatch reads it: the seeded
        // executions start from it, so that following them changes nothing.
        let bk = jobwatch::platform::bkjob::BkJob::new(jobwatch::platform::bkjob::BkJobSettings {
            name: "bk".into(),
            endpoints: vec![platform.emulator.apigw_url().parse().unwrap()],
            door: jobwatch::platform::bkjob::Door::Apigw,
            app_code: "jobwatch".into(),
            app_secret: common::SECRET.to_owned().into(),
            username: "admin".into(),
            scope_type: "biz".into(),
            scope_id: "2".into(),
            request_timeout: Duration::from_secs(5),
            flow: Default::default(),
            callbacks: false,
        })
        .unwrap();
        let probe = platform.emulator.state().seed_job("probe", Duration::from_secs(7200), vec![host.clone()]);
        let running = jobwatch::platform::Platform::snapshot(
            &bk,
            &jobwatch::platform::JobRef { step_instance_id: Some(probe + 1), ..jobwatch::platform::JobRef::instance(probe) },
        )
        .await
        .unwrap();
        assert!(!running.finished);
        let mut left = N;
        while left > 0 {
            let n = left.min(10_000);
            left -= n;
            let batch: Vec<_> = (0..n)
                .map(|_| {
                    let job = platform.emulator.state().seed_job(
                        "seeded",
                        Duration::from_secs(7200),
                        vec![host.clone()],
                    );
                    let mut r = jobwatch::tracker::ExecutionReport::new(
                        uuid::Uuid::now_v7().to_string(),
                        &check,
                        "bk",
                        "bkjob",
                        "",
                    );
                    r.origin = jobwatch::tracker::report::Origin::Watch;
                    r.triggered(&jobwatch::platform::JobRef {
                        step_instance_id: Some(job + 1),
                        ..jobwatch::platform::JobRef::instance(job)
                    });
                    r.merge_snapshot(&running, Some(job + 1));
                    r.polls = 1;
                    r
                })
                .collect();
            store.insert_many(&batch).await.unwrap();
        }
        let replicas = c.start_all();
        // Wait until the two hold half the shards each and follow everything.
        wait_balanced(&replicas).await;
        // Loading after a balance takes a few seconds; then a quiet minute is measured.
        tokio::time::sleep(Duration::from_secs(15)).await;
        let polls = || platform.emulator.state().stats.requests("get_job_instance_status");
        let polls_before = polls();
        let before: HashMap<String, i64> = store.table_writes().await.unwrap().into_iter().collect();
        let window = Duration::from_secs(60);
        tokio::time::sleep(window).await;
        let after: HashMap<String, i64> = store.table_writes().await.unwrap().into_iter().collect();
        let polled = polls() - polls_before;
        let delta = |t: &str| after.get(t).copied().unwrap_or(0) - before.get(t).copied().unwrap_or(0);
        let (executions, shards, replicas_rows) = (delta("executions"), delta("shards"), delta("replicas"));
        // A renewal every third of the 15 s lease (± 20 %): at most 60 s / 4 s = 15 per
        // replica, each updating the replica's 128 shards and its heartbeat.
        let per_window_max = 2 * 15 * (128 + 1);
        eprintln!(
            "{N} executions followed by 2 replicas; in {window:?}: {polled} polls, and the database wrote {executions} execution rows, {shards} shard rows, {replicas_rows} heartbeat rows"
        );
        assert!(polled > 1000, "the executions were not being polled ({polled} polls)");
        assert_eq!(executions, 0, "nothing changed, yet execution rows were written");
        assert!(
            shards + replicas_rows <= per_window_max,
            "{shards} shard and {replicas_rows} heartbeat writes in {window:?} (at most {per_window_max})"
        );
        assert!(shards >= 2 * 10 * 128, "the leases were not renewed: {shards} shard writes");
        drop(replicas);
    });
}

#[test]
fn a_replica_that_stops_cleanly_hands_its_shards_over_at_once() {
    let c = Cluster::new(2, "1s", &check("fleet", ""));
    runtime().block_on(async {
        let mut replicas = c.start_all();
        wait_balanced(&replicas).await;
        // SIGTERM: the stopping replica gives its shards up as it exits; the other takes
        // them at its next renewal (every third of the 15 s lease), not when the lease would
        // have expired.
        replicas[0].signal(libc::SIGTERM);
        let stopped = Instant::now();
        assert!(replicas[0].child.wait().unwrap().success());
        while shards_held(&replicas[1].base).await != 256 {
            assert!(
                stopped.elapsed() < Duration::from_secs(10),
                "the shards were not handed over before their leases would have expired"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!("handed over in {:?}", stopped.elapsed());
    });
}

/// The zombie: a replica frozen (SIGSTOP) past its lease while its executions run, then woken
/// while another holds its shards. Whatever it had in flight is refused by the fence: every
/// execution still ends with its true state and no job is submitted twice.
#[test]
fn a_replica_frozen_past_its_lease_writes_nothing_stale_when_it_wakes() {
    let c = Cluster::new(2, "6s", &check("fleet", ""));
    let platform = &c.platform;
    runtime().block_on(async {
        let replicas = c.start_all();
        wait_balanced(&replicas).await;
        let accepted = post_many(&[&replicas[0].base, &replicas[1].base], 80).await;
        // Frozen mid-run (submits and polls in flight) for longer than its lease; the other
        // takes its shards over meanwhile.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        replicas[0].signal(libc::SIGSTOP);
        let frozen = Instant::now();
        while shards_held(&replicas[1].base).await != 256 {
            assert!(
                frozen.elapsed() < Duration::from_secs(30),
                "the frozen replica's shards were not taken over"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        replicas[0].signal(libc::SIGCONT);
        wait_none_active(&replicas[1].base, "after the frozen replica woke").await;
        // Awake, it rebalances and takes its share again, from what is stored.
        let until = Instant::now() + Duration::from_secs(60);
        while shards_held(&replicas[0].base).await != 128 {
            assert!(
                Instant::now() < until,
                "the woken replica never got shards again"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // It knew its leases were gone (lost, not renewed) before writing anything.
        let lost = metric(
            &replicas[0].base,
            r#"jobwatch_shard_changes_total{change="lost"}"#,
        )
        .await;
        assert!(lost >= 128.0, "the woken replica lost {lost} shards");
        let delays = assert_true_ends(&replicas[1].base, platform, &accepted).await;
        assert_eq!(
            delays.len(),
            80,
            "every execution reached the platform once"
        );
    });
}

/// A bk-job callback reaching a replica that does not follow the execution is passed on
/// (`NOTIFY jobwatch_poll`) to the one that does: every end is known within a second of its
/// callback, with polling slowed to the 5-minute safety net.
#[test]
fn a_callback_to_any_replica_reaches_the_one_that_follows_the_execution() {
    let checks = r#"
[[checks]]
name = "fleet"
platform = "bk"
script = "echo hi"
hosts = [101, 102]
account_alias = "root"
timeout = "300s"
[checks.poll]
first_poll = "500ms"
safety_interval = "5m"
"#;
    let cluster = Cluster::new(2, "5s", checks);
    // Every callback goes to replica 0 (bk-job calls one public URL); both share the key.
    let port = common::free_port();
    for (i, config) in cluster.configs.iter().enumerate() {
        let mut text = std::fs::read_to_string(config).unwrap();
        text = text.replacen(
            "[store]",
            &format!(
                "[callbacks]\npublic_url = \"http://127.0.0.1:{port}\"\nkey = \"shared-callback-key-0123456789\"\n\n[store]"
            ),
            1,
        );
        text = text.replacen("kind = \"bkjob\"", "kind = \"bkjob\"\ncallbacks = true", 1);
        if i == 0 {
            text = text.replacen(
                "listen = \"127.0.0.1:0\"",
                &format!("listen = \"127.0.0.1:{port}\""),
                1,
            );
        }
        std::fs::write(config, text).unwrap();
    }
    let replicas = cluster.start_all();
    runtime().block_on(async {
        wait_balanced(&replicas).await;
        let bases: Vec<&str> = replicas.iter().map(|r| r.base.as_str()).collect();
        // Twelve executions: each replica follows about half of them.
        let ids = post_many(&bases, 12).await;
        let mut ended = Vec::new();
        for id in &ids {
            ended.push(common::wait_ended(bases[0], id, Duration::from_secs(60)).await);
        }
        let sent = cluster.platform.emulator.state().stats.callbacks();
        assert_eq!(sent.len(), 12, "{sent:?}");
        for e in &ended {
            assert_eq!(e["state"], "succeeded", "{e:#}");
            let job = e["job_instance_id"].as_u64().unwrap();
            let callback = sent.iter().find(|s| s.job_instance_id == job).unwrap();
            let stored = common::ended_ms(e);
            // The end's time is the follower's clock rebuilt from the stored start (an
            // execution taken over from the replica that recorded it): a few ms of skew.
            let late = stored - callback.at_ms;
            assert!(
                (-50..=1000).contains(&late),
                "stored {late} ms after its callback: {e:#}"
            );
        }
    });
}
