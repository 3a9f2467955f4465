//! The local platform, jobwatch's embedded default: runs the script on the agent's own host as
//! a real child process and reports it with bk-job's codes (API.md §9.1, §9.2), so everything
//! after the adapter cannot tell the difference.
//!
//! | what happened                         | host status | job status |
//! |---------------------------------------|-------------|------------|
//! | running                               | 7           | 2          |
//! | exit 0                                | 9           | 3          |
//! | exit ≠ 0                              | 104         | 4          |
//! | killed by a signal jobwatch did not send, or the interpreter could not start | 101 | 4 |
//! | the job's own timeout ran out (process group killed) | 102 | 4 |
//! | terminated on request (process group killed)         | 103 | 11 |
//!
//! Nothing outlives jobwatch: each script's interpreter gets a parent-death signal (SIGKILL
//! when jobwatch dies, even by `kill -9`), carries `JOBWATCH_LOCAL_RUN=<this process's work
//! directory>` in its environment (inherited by everything it starts), and its file lives in
//! that directory under `<data_dir>/local/`. At start, the directories of jobwatch processes
//! that are gone are swept: every process still carrying their mark is killed, and the
//! directories are removed. Job ids start at the process's start time in microseconds, so an
//! id from an earlier process is never taken for a job of this one (it is not found: `lost`).
//!
//! Output (stdout and stderr through one pipe, so their order is kept) is captured as bytes,
//! the last [`CAPTURE_MAX_BYTES`] kept, and decoded as UTF-8, else GB18030, else UTF-8 with
//! replacement characters: never a panic.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::model::{Host, HostStatus, JobSnapshot, ScriptLanguage};
use crate::platform::bkjob::codes;
use crate::platform::{HostLog, JobRef, Platform, PlatformError, SubmitGate, SubmitRequest};

mod orphans;

/// Bytes of output kept per job (the tail).
pub const CAPTURE_MAX_BYTES: usize = 1 << 20;

/// How long a terminated script gets between SIGTERM and SIGKILL.
const TERMINATE_GRACE: Duration = Duration::from_secs(2);

/// How long to wait for the output pipe to close after the script exited (a background
/// process the script left behind may hold it open).
const DRAIN_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
enum End {
    Exited(i32),
    Signalled(i32),
    TimedOut,
    Terminated,
    NotStarted,
}

#[derive(Debug, Default)]
struct Output {
    bytes: Vec<u8>,
    dropped: usize,
}

impl Output {
    fn push(&mut self, chunk: &[u8]) {
        self.bytes.extend_from_slice(chunk);
        if self.bytes.len() > 2 * CAPTURE_MAX_BYTES {
            let cut = self.bytes.len() - CAPTURE_MAX_BYTES;
            self.bytes.drain(..cut);
            self.dropped += cut;
        }
    }

    fn text(&self) -> String {
        let start = self.bytes.len().saturating_sub(CAPTURE_MAX_BYTES);
        let mut bytes = &self.bytes[start..];
        if self.dropped + start > 0 {
            // The cut may have split a UTF-8 sequence: skip its continuation bytes.
            let skip = bytes
                .iter()
                .take(3)
                .take_while(|b| (**b & 0xC0) == 0x80)
                .count();
            bytes = &bytes[skip..];
        }
        decode_output(bytes)
    }
}

/// Decodes captured process output: UTF-8 when valid, else GB18030 when that decodes without
/// errors (Chinese Windows and older Linux locales), else UTF-8 with U+FFFD for bad bytes.
pub fn decode_output(bytes: &[u8]) -> String {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return text.to_owned();
    }
    if let Some(text) =
        encoding_rs::GB18030.decode_without_bom_handling_and_without_replacement(bytes)
    {
        return text.into_owned();
    }
    String::from_utf8_lossy(bytes).into_owned()
}

#[derive(Debug)]
struct LocalJob {
    name: String,
    started: Instant,
    created_ms: i64,
    output: Arc<Mutex<Output>>,
    end: Mutex<Option<(End, Instant)>>,
    cancel: CancellationToken,
    /// The script's process (group) id while it runs.
    pid: Mutex<Option<u32>>,
}

impl LocalJob {
    fn snapshot(&self, step_instance_id: u64) -> JobSnapshot {
        let end = *self.end.lock().expect("local job lock");
        let (host_status, job_status, exit_code) = match end.map(|(e, _)| e) {
            None => (7, 2, None),
            Some(End::Exited(0)) => (9, 3, Some(0)),
            Some(End::Exited(code)) => (104, 4, Some(i64::from(code))),
            Some(End::Signalled(_)) | Some(End::NotStarted) => (101, 4, None),
            Some(End::TimedOut) => (102, 4, None),
            Some(End::Terminated) => (103, 11, None),
        };
        let (outcome, label) = codes::host_outcome(host_status);
        let ended_at = end.map_or_else(Instant::now, |(_, at)| at);
        JobSnapshot {
            status: job_status,
            label: codes::job_label(job_status),
            finished: end.is_some(),
            step_instance_id: Some(step_instance_id),
            hosts: vec![HostStatus {
                host: Host::localhost(),
                status: host_status,
                outcome,
                label,
                exit_code,
                error_code: None,
                tag: None,
                duration: Some(ended_at.duration_since(self.started)),
                facts: None,
            }],
        }
    }
}

/// The environment variable that marks every process of a local job with the work directory
/// of the jobwatch process that started it.
pub const RUN_MARK: &str = "JOBWATCH_LOCAL_RUN";

/// The local platform. Jobs live in memory for the life of the process.
#[derive(Debug)]
pub struct Local {
    jobs: Mutex<HashMap<u64, Arc<LocalJob>>>,
    next_id: AtomicU64,
    /// The first id of this process: lower ids belong to earlier processes.
    first_id: u64,
    /// This process's work directory (script files), `<data_dir>/local/<pid>-<start>`.
    work_dir: PathBuf,
}

impl Local {
    /// A platform with no jobs, keeping its script files under `<root>` (created if needed:
    /// `<data_dir>/local`). Sweeps first what jobwatch processes that are gone left there:
    /// their still-running scripts are killed and their files removed.
    pub fn new(root: &Path) -> Result<Self, PlatformError> {
        let fail = |what: &str, e: std::io::Error| {
            PlatformError::permanent(
                "local",
                None,
                format!("cannot prepare {what} {}: {e}", root.display()),
            )
        };
        std::fs::create_dir_all(root).map_err(|e| fail("the local work directory", e))?;
        let swept = orphans::sweep(root);
        if swept.processes > 0 || swept.dirs > 0 {
            tracing::warn!(
                processes = swept.processes,
                dirs = swept.dirs,
                "Local scripts left by a jobwatch process that is gone were stopped and their files removed."
            );
        }
        let work_dir = root.join(orphans::own_tag());
        std::fs::create_dir_all(&work_dir).map_err(|e| fail("the local work directory", e))?;
        let first_id = u64::try_from(crate::time::now_ms())
            .unwrap_or(0)
            .saturating_mul(1000)
            .max(1);
        Ok(Local {
            jobs: Mutex::default(),
            next_id: AtomicU64::new(first_id),
            first_id,
            work_dir,
        })
    }

    fn job(&self, api: &'static str, job: &JobRef) -> Result<Arc<LocalJob>, PlatformError> {
        let id = job.instance_id(api)?;
        self.jobs
            .lock()
            .expect("local jobs lock")
            .get(&id)
            .cloned()
            .ok_or_else(|| {
                let why = if id < self.first_id {
                    format!(
                        "local job {id} was started by an earlier jobwatch process: local jobs live in jobwatch's memory and end with it"
                    )
                } else {
                    format!("no local job {id}")
                };
                PlatformError {
                    class: crate::platform::ErrorClass::NotFound,
                    code: Some(codes::TASK_INSTANCE_NOT_EXIST),
                    ..PlatformError::transient(api, why)
                }
            })
    }
}

/// The interpreter for `language` on this machine, first found on `PATH`.
fn interpreter(language: ScriptLanguage) -> Result<(PathBuf, &'static str), String> {
    let (candidates, ext): (&[&str], &str) = match language {
        ScriptLanguage::Shell => (&["bash", "sh"], "sh"),
        ScriptLanguage::Python => (&["python3", "python"], "py"),
        ScriptLanguage::Perl => (&["perl"], "pl"),
        ScriptLanguage::Powershell => (&["pwsh", "powershell"], "ps1"),
        ScriptLanguage::Bat => (&["cmd.exe"], "bat"),
    };
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in candidates {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok((candidate, ext));
            }
        }
    }
    Err(format!(
        "no interpreter for {} on this host (looked for {} on PATH)",
        language.name(),
        candidates.join(", ")
    ))
}

fn write_script(dir: &Path, id: u64, ext: &str, script: &str) -> std::io::Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(format!("job-{id}.{ext}"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o700)
        .open(&path)?;
    file.write_all(script.as_bytes())?;
    Ok(path)
}

fn signal_group(pid: u32, signal: libc::c_int) {
    // SAFETY: killpg has no memory-safety preconditions; a stale pid only yields ESRCH.
    unsafe {
        libc::killpg(pid as libc::pid_t, signal);
    }
}

fn end_of(status: ExitStatus) -> End {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => End::Exited(code),
        (None, Some(sig)) => End::Signalled(sig),
        (None, None) => End::Signalled(0),
    }
}

async fn supervise(
    job: Arc<LocalJob>,
    mut child: tokio::process::Child,
    script: PathBuf,
    timeout: Duration,
    drained: oneshot::Receiver<()>,
) {
    let pid = child.id();
    let end = tokio::select! {
        status = child.wait() => status.map_or(End::Signalled(0), end_of),
        () = tokio::time::sleep(timeout) => {
            if let Some(pid) = pid { signal_group(pid, libc::SIGKILL); }
            let _ = child.wait().await;
            End::TimedOut
        }
        () = job.cancel.cancelled() => {
            if let Some(pid) = pid { signal_group(pid, libc::SIGTERM); }
            if tokio::time::timeout(TERMINATE_GRACE, child.wait()).await.is_err() {
                if let Some(pid) = pid { signal_group(pid, libc::SIGKILL); }
                let _ = child.wait().await;
            }
            End::Terminated
        }
    };
    let _ = tokio::time::timeout(DRAIN_GRACE, drained).await;
    let note = match end {
        End::Signalled(sig) => Some(format!("\n[jobwatch: script killed by signal {sig}]\n")),
        End::TimedOut => Some(format!(
            "\n[jobwatch: timeout of {}s reached; process group killed]\n",
            timeout.as_secs()
        )),
        End::Terminated => Some("\n[jobwatch: terminated on request]\n".to_owned()),
        _ => None,
    };
    if let Some(note) = note {
        job.output
            .lock()
            .expect("output lock")
            .push(note.as_bytes());
    }
    let _ = std::fs::remove_file(&script);
    *job.end.lock().expect("local job lock") = Some((end, Instant::now()));
}

fn spawn(
    interpreter: &Path,
    script: &Path,
    args: &[String],
    work_dir: &Path,
    output: Arc<Mutex<Output>>,
) -> std::io::Result<(tokio::process::Child, oneshot::Receiver<()>)> {
    let (mut reader, writer) = std::io::pipe()?;
    let mut command = tokio::process::Command::new(interpreter);
    command
        .arg(script)
        .args(args)
        .env(RUN_MARK, work_dir)
        .stdin(Stdio::null())
        .stdout(writer.try_clone()?)
        .stderr(writer)
        .process_group(0);
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe calls (prctl, getppid, _exit).
    let parent = std::process::id();
    unsafe {
        command.pre_exec(move || orphans::die_with_parent(parent));
    }
    let child = command.spawn()?;
    let (done, drained) = oneshot::channel();
    // A plain thread, not spawn_blocking: a pipe held open by a leftover background process
    // must not keep the runtime from shutting down.
    std::thread::Builder::new()
        .name("jobwatch-local-output".into())
        .spawn(move || {
            let mut chunk = [0u8; 8192];
            loop {
                match reader.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => output.lock().expect("output lock").push(&chunk[..n]),
                }
            }
            let _ = done.send(());
        })?;
    Ok((child, drained))
}

/// Local jobs cannot be followed by another process: when the platform goes away (jobwatch
/// exits), scripts still running are stopped (SIGTERM to their process group) rather than
/// left behind untracked.
impl Drop for Local {
    fn drop(&mut self) {
        let jobs = self
            .jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for job in jobs.values() {
            let running = job.end.lock().map(|e| e.is_none()).unwrap_or(false);
            if let (true, Ok(Some(pid))) = (running, job.pid.lock().map(|p| *p)) {
                signal_group(pid, libc::SIGTERM);
            }
        }
        // The interpreters already opened their scripts; the files are not needed any more.
        let _ = std::fs::remove_dir_all(&self.work_dir);
    }
}

#[async_trait]
impl Platform for Local {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn submit(
        &self,
        r: &SubmitRequest<'_>,
        gate: &dyn SubmitGate,
    ) -> Result<JobRef, PlatformError> {
        if let Some(other) = r.check.hosts.iter().find(|h| !h.is_local()) {
            return Err(PlatformError::permanent(
                "fast_execute_script",
                Some(1243052),
                format!("the local platform runs only on localhost, not on {other}"),
            ));
        }
        gate.leaving()
            .await
            .map_err(|why| crate::platform::gate_refused("fast_execute_script", &why))?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let job = Arc::new(LocalJob {
            name: r.task_name.to_owned(),
            started: Instant::now(),
            created_ms: crate::time::now_ms(),
            output: Arc::default(),
            end: Mutex::new(None),
            cancel: CancellationToken::new(),
            pid: Mutex::new(None),
        });
        let args = match &r.check.param {
            Some(p) => shell_words::split(p)
                .unwrap_or_else(|_| p.split_whitespace().map(str::to_owned).collect()),
            None => Vec::new(),
        };
        let started = interpreter(r.check.language).and_then(|(interp, ext)| {
            let script = write_script(&self.work_dir, id, ext, &r.check.script)
                .map_err(|e| format!("cannot write the script file: {e}"))?;
            match spawn(&interp, &script, &args, &self.work_dir, job.output.clone()) {
                Ok((child, drained)) => Ok((child, drained, script)),
                Err(e) => {
                    let _ = std::fs::remove_file(&script);
                    Err(format!("cannot start {}: {e}", interp.display()))
                }
            }
        });
        match started {
            Ok((child, drained, script)) => {
                *job.pid.lock().expect("local job lock") = child.id();
                tokio::spawn(supervise(
                    job.clone(),
                    child,
                    script,
                    r.check.timeout,
                    drained,
                ));
            }
            Err(why) => {
                job.output
                    .lock()
                    .expect("output lock")
                    .push(format!("[jobwatch: {why}]\n").as_bytes());
                *job.end.lock().expect("local job lock") = Some((End::NotStarted, Instant::now()));
            }
        }
        self.jobs.lock().expect("local jobs lock").insert(id, job);
        Ok(JobRef {
            step_instance_id: Some(id),
            name: Some(r.task_name.to_owned()),
            ..JobRef::instance(id)
        })
    }

    async fn snapshot(&self, job: &JobRef) -> Result<JobSnapshot, PlatformError> {
        let api = "get_job_instance_status";
        Ok(self.job(api, job)?.snapshot(job.instance_id(api)?))
    }

    async fn host_logs(
        &self,
        job: &JobRef,
        _hosts: &[Host],
    ) -> Result<Vec<HostLog>, PlatformError> {
        let local = self.job("batch_get_job_instance_ip_log", job)?;
        let content = local.output.lock().expect("output lock").text();
        Ok(vec![HostLog {
            host: Host::localhost(),
            content,
        }])
    }

    async fn terminate(&self, job: &JobRef) -> Result<(), PlatformError> {
        self.job("operate_job_instance", job)?.cancel.cancel();
        Ok(())
    }

    /// Local jobs are created in this process: one that did not appear never will.
    fn submit_settle(&self) -> Duration {
        Duration::ZERO
    }

    async fn find_job(
        &self,
        task_name: &str,
        since_ms: i64,
    ) -> Result<Option<JobRef>, PlatformError> {
        let jobs = self.jobs.lock().expect("local jobs lock");
        Ok(jobs
            .iter()
            .find(|(_, j)| j.name == task_name && j.created_ms >= since_ms)
            .map(|(id, j)| JobRef {
                step_instance_id: Some(*id),
                name: Some(j.name.clone()),
                ..JobRef::instance(*id)
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(script: &str) -> crate::config::CheckConfig {
        crate::config::CheckConfig {
            timeout: Duration::from_secs(10),
            ..crate::config::CheckConfig::new("t", "local", script, vec![Host::localhost()])
        }
    }

    #[tokio::test]
    async fn a_job_of_an_earlier_process_is_not_found_and_its_id_never_reused() {
        let root = tempfile::tempdir().unwrap();
        let gate = crate::platform::NoGate;
        let first = Local::new(root.path()).unwrap();
        let old = first
            .submit(
                &SubmitRequest {
                    task_name: "t",
                    check: &check("echo old"),
                    callback_url: None,
                },
                &gate,
            )
            .await
            .unwrap();
        drop(first);
        tokio::time::sleep(Duration::from_millis(2)).await;
        let second = Local::new(root.path()).unwrap();
        let new = second
            .submit(
                &SubmitRequest {
                    task_name: "t",
                    check: &check("echo new"),
                    callback_url: None,
                },
                &gate,
            )
            .await
            .unwrap();
        assert_ne!(new.job_instance_id, old.job_instance_id);
        let e = second.snapshot(&old).await.unwrap_err();
        assert_eq!(e.class, crate::platform::ErrorClass::NotFound);
        assert!(e.message.contains("earlier jobwatch process"), "{e}");
    }

    #[test]
    fn decodes_utf8_then_gb18030_then_lossy() {
        assert_eq!(decode_output("成功 ok".as_bytes()), "成功 ok");
        let (gbk, _, _) = encoding_rs::GB18030.encode("磁盘已满");
        assert_eq!(decode_output(&gbk), "磁盘已满");
        let garbage = [b'o', b'k', 0xFF, 0xFF, 0xFF];
        let text = decode_output(&garbage);
        assert!(text.starts_with("ok"));
    }

    #[test]
    fn capture_keeps_the_tail_without_splitting_characters() {
        let mut out = Output::default();
        for _ in 0..(3 * CAPTURE_MAX_BYTES / 3) {
            out.push("错".as_bytes());
        }
        out.push(b"END");
        let text = out.text();
        assert!(text.ends_with("END"));
        assert!(
            text.starts_with('错'),
            "a split character must be skipped, not decoded as garbage"
        );
        assert!(text.len() <= CAPTURE_MAX_BYTES);
    }
}
