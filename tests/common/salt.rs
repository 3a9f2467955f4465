//! A real Salt deployment for one test: `salt-master`, `salt-api` (rest_cherrypy) and a few
//! `salt-minion`s from the virtualenv `scripts/test.sh` builds (`salt==3008.3`, salt/API.md
//! §1), on loopback ports chosen here, each in a process group of its own, in a temp dir.
//! Stopping (or dropping) signals exactly those process groups: nothing else is touched.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The eauth user of the tests (`sharedsecret`: its password is the master's secret).
pub const USER: &str = "jobwatch";
/// The master's `sharedsecret`: the tests pass it through the environment; it must never show.
pub const PASSWORD: &str = "salt-Shared-Secret-51";

/// The variable every minion's scripts find their minion id in.
pub const MINION_ENV: &str = "JOBWATCH_TEST_MINION";

/// The virtualenv holding Salt: `$JOBWATCH_SALT_VENV`, else `target/salt-venv`.
pub fn venv() -> PathBuf {
    std::env::var_os("JOBWATCH_SALT_VENV").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/salt-venv"),
        PathBuf::from,
    )
}

/// The user the tests run as (the daemons run as it too: Salt checks `user`).
fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A running deployment.
pub struct Salt {
    pub root: tempfile::TempDir,
    /// The salt-api base URL.
    pub api: String,
    publish_port: u16,
    ret_port: u16,
    master: Option<Child>,
    salt_api: Option<Child>,
    minions: BTreeMap<String, Child>,
}

fn spawn(program: &str, config_dir: &Path, log: &Path, env: &[(&str, &str)]) -> Child {
    let bin = venv().join("bin").join(program);
    assert!(
        bin.exists(),
        "{} is missing: scripts/test.sh installs Salt into {} (or set JOBWATCH_SALT_VENV)",
        bin.display(),
        venv().display()
    );
    let log = std::fs::File::create(log).unwrap();
    Command::new(bin)
        .arg("-c")
        .arg(config_dir)
        .args(["-l", "warning"])
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        // Its own process group: stopping it signals the group, and nothing else.
        .process_group(0)
        .spawn()
        .unwrap()
}

/// Signals the process group of `child` (the daemon and the workers it forked).
fn signal_group(child: &Child, signal: libc::c_int) {
    // SAFETY: kill(2) on the process group this test created (`process_group(0)`).
    unsafe { libc::kill(-(child.id() as libc::pid_t), signal) };
}

/// Whether any process of the group of `child` is left (zombies aside: kill(0) answers for
/// them too, so a group that only has its leader reaped counts as gone).
fn group_alive(child: &Child) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(-(child.id() as libc::pid_t), 0) == 0 }
}

/// SIGTERM to each group, then SIGKILL to what is left after `grace`; reaps the leaders.
fn stop_all(children: &mut [Child], grace: Duration) {
    for c in children.iter() {
        signal_group(c, libc::SIGTERM);
    }
    let until = Instant::now() + grace;
    for c in children.iter_mut() {
        loop {
            let _ = c.try_wait();
            if !group_alive(c) || Instant::now() >= until {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    for c in children.iter_mut() {
        if group_alive(c) {
            signal_group(c, libc::SIGKILL);
        }
        let _ = c.wait();
    }
}

impl Salt {
    /// Starts a master, salt-api and `minions`, and waits until every minion answers
    /// `test.ping` through salt-api.
    pub fn start(minions: &[&str]) -> Salt {
        let root = tempfile::Builder::new()
            .prefix("jobwatch-salt-")
            .tempdir()
            .unwrap();
        let user = current_user();
        let (publish_port, ret_port, api_port) = (
            crate::common::free_port(),
            crate::common::free_port(),
            crate::common::free_port(),
        );
        let master_dir = root.path().join("master");
        std::fs::create_dir_all(&master_dir).unwrap();
        std::fs::write(
            master_dir.join("master"),
            format!(
                r#"root_dir: {root}
interface: 127.0.0.1
publish_port: {publish_port}
ret_port: {ret_port}
user: {user}
auto_accept: True
worker_threads: 3
netapi_enable_clients: [local, local_async, runner]
rest_cherrypy:
  host: 127.0.0.1
  port: {api_port}
  disable_ssl: True
sharedsecret: {PASSWORD}
external_auth:
  sharedsecret:
    {USER}: ['.*', '@runner', '@jobs']
keep_jobs_seconds: 3600
job_cache_store_endtime: True
gather_job_timeout: 5
log_file: {root}/master.log
api_logfile: {root}/api.log
"#,
                root = master_dir.display()
            ),
        )
        .unwrap();
        let master = spawn(
            "salt-master",
            &master_dir,
            &master_dir.join("master.out"),
            &[],
        );
        let salt_api = spawn("salt-api", &master_dir, &master_dir.join("api.out"), &[]);
        let mut salt = Salt {
            api: format!("http://127.0.0.1:{api_port}"),
            root,
            publish_port,
            ret_port,
            master: Some(master),
            salt_api: Some(salt_api),
            minions: BTreeMap::new(),
        };
        for id in minions {
            salt.start_minion(id);
        }
        salt.wait_answering(minions, Duration::from_secs(90));
        salt
    }

    /// Starts (or restarts) minion `id`.
    pub fn start_minion(&mut self, id: &str) {
        let dir = self.root.path().join(id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("minion"),
            format!(
                r#"id: {id}
root_dir: {root}
master: 127.0.0.1
master_port: {ret}
publish_port: {publish}
user: {user}
acceptance_wait_time: 1
random_reauth_delay: 0
recon_default: 500
recon_max: 2000
log_file: {root}/minion.log
"#,
                root = dir.display(),
                ret = self.ret_port,
                publish = self.publish_port,
                user = current_user()
            ),
        )
        .unwrap();
        // Scripts see which minion runs them (the minion's environment is theirs), so one
        // script can behave differently per host.
        let child = spawn(
            "salt-minion",
            &dir,
            &dir.join("minion.out"),
            &[(MINION_ENV, id)],
        );
        if let Some(mut old) = self.minions.insert(id.to_owned(), child) {
            stop_all(std::slice::from_mut(&mut old), Duration::from_secs(10));
        }
    }

    /// SIGKILLs minion `id` and every process it forked (its jobs too): a host that dies.
    pub fn kill_minion(&mut self, id: &str) {
        let mut child = self.minions.remove(id).expect("a running minion");
        signal_group(&child, libc::SIGKILL);
        let _ = child.wait();
    }

    /// Stops salt-api and starts it again: the sessions it held (jobwatch's token) are gone.
    pub fn restart_api(&mut self) {
        if let Some(mut old) = self.salt_api.take() {
            stop_all(std::slice::from_mut(&mut old), Duration::from_secs(15));
        }
        let dir = self.root.path().join("master");
        self.salt_api = Some(spawn("salt-api", &dir, &dir.join("api-restarted.out"), &[]));
        let until = Instant::now() + Duration::from_secs(60);
        let rt = crate::common::runtime();
        while rt.block_on(self.lowstate(json!([{"client": "runner", "fun": "jobs.list_jobs", "search_function": "none.such"}]))).is_err() {
            assert!(Instant::now() < until, "salt-api did not come back:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Deletes job `jid` from the master's job cache (what `keep_jobs_seconds` does when it
    /// expires). Returns whether it was there.
    pub fn forget_job(&self, jid: &str) -> bool {
        let mut found = false;
        for file in walk(self.root.path(), &[]) {
            if file.file_name().is_some_and(|n| n == "jid")
                && std::fs::read_to_string(&file).is_ok_and(|t| t.trim() == jid)
                && let Some(dir) = file.parent()
            {
                std::fs::remove_dir_all(dir).unwrap();
                found = true;
            }
        }
        found
    }

    /// The pid of job `jid` on minion `id` (`saltutil.find_job`), if it runs it.
    pub fn job_pid(&self, id: &str, jid: &str) -> Option<i64> {
        let rt = crate::common::runtime();
        let v = rt
            .block_on(self.lowstate(json!([{"client": "local", "tgt": [id], "tgt_type": "list", "fun": "saltutil.find_job", "arg": [jid], "timeout": 5}])))
            .ok()?;
        v["return"][0][id]["pid"].as_i64()
    }

    /// The jids of the jobs whose jobwatch task name is `task` (`jobs.list_jobs`).
    pub fn jobs_named(&self, task: &str) -> Vec<String> {
        let rt = crate::common::runtime();
        let v = rt
            .block_on(self.lowstate(json!([{"client": "runner", "fun": "jobs.list_jobs", "search_metadata": {"jobwatch_task": task}}])))
            .unwrap();
        v["return"][0]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The jids of running `cmd.exec_code_all` jobs on minion `id` (`saltutil.running`).
    pub fn running_jids(&self, id: &str) -> Vec<String> {
        let rt = crate::common::runtime();
        let Ok(v) = rt.block_on(self.lowstate(json!([{"client": "local", "tgt": [id], "tgt_type": "list", "fun": "saltutil.running", "timeout": 5}]))) else {
            return Vec::new();
        };
        v["return"][0][id]
            .as_array()
            .map(|jobs| {
                jobs.iter()
                    .filter(|j| j["fun"] == "cmd.exec_code_all")
                    .filter_map(|j| j["jid"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until salt-api logs in and each of `ids` answers `test.ping`.
    pub fn wait_answering(&self, ids: &[&str], within: Duration) {
        let rt = crate::common::runtime();
        let until = Instant::now() + within;
        let mut last = String::new();
        while Instant::now() < until {
            match rt.block_on(self.ping(ids)) {
                Ok(answered) if ids.iter().all(|id| answered.contains(&id.to_string())) => return,
                Ok(answered) => last = format!("answered: {answered:?}"),
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!(
            "Salt did not come up within {within:?} ({last}); logs in {}:\n{}",
            self.root.path().display(),
            self.logs()
        );
    }

    async fn ping(&self, ids: &[&str]) -> Result<Vec<String>, String> {
        let v = self
            .lowstate(json!([{"client": "local", "tgt": ids, "tgt_type": "list", "fun": "test.ping", "timeout": 3}]))
            .await?;
        Ok(v["return"][0]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(_, ok)| **ok == json!(true))
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Logs in and posts one lowstate list to salt-api (what an operator would do with curl).
    pub async fn lowstate(&self, body: Value) -> Result<Value, String> {
        let client = crate::common::client();
        let login: Value = client
            .post(format!("{}/login", self.api))
            .header("Accept", "application/json")
            .json(&json!({"username": USER, "password": PASSWORD, "eauth": "sharedsecret"}))
            .send()
            .await
            .map_err(|e| format!("login: {e}"))?
            .json()
            .await
            .map_err(|e| format!("login answer: {e}"))?;
        let token = login["return"][0]["token"]
            .as_str()
            .ok_or_else(|| format!("no token in {login}"))?
            .to_owned();
        client
            .post(format!("{}/", self.api))
            .header("Accept", "application/json")
            .header("X-Auth-Token", token)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("post: {e}"))?
            .json()
            .await
            .map_err(|e| format!("answer: {e}"))
    }

    /// The `[platforms.salt]` table for this deployment (the password comes from the
    /// environment: `JOBWATCH__PLATFORMS__SALT__PASSWORD`).
    pub fn platform_toml(&self) -> String {
        format!(
            "[platforms.salt]\nkind = \"salt\"\nendpoints = [\"{}\"]\nusername = \"{USER}\"\neauth = \"sharedsecret\"\nrequest_timeout = \"10s\"\n",
            self.api
        )
    }

    /// The tails of every log, for a failure message.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for entry in walk(self.root.path(), &["pki", "cache"]) {
            let name = entry.to_string_lossy();
            if name.ends_with(".log") || name.ends_with(".out") {
                let text = std::fs::read_to_string(&entry).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                out.push_str(&format!("--- {name}\n"));
                for l in tail.into_iter().rev() {
                    out.push_str(l);
                    out.push('\n');
                }
            }
        }
        out
    }

    /// Stops everything this deployment started: minions, salt-api and the master.
    pub fn stop(&mut self) {
        let mut children: Vec<Child> = std::mem::take(&mut self.minions).into_values().collect();
        children.extend(self.salt_api.take());
        children.extend(self.master.take());
        stop_all(&mut children, Duration::from_secs(15));
    }
}

/// The files under `dir`, except in the folders `skip` names.
fn walk(dir: &Path, skip: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                if !skip.iter().any(|s| p.ends_with(s)) {
                    out.extend(walk(&p, skip));
                }
            } else {
                out.push(p);
            }
        }
    }
    out
}

impl Drop for Salt {
    fn drop(&mut self) {
        self.stop();
    }
}
