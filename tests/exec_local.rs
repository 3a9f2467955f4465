//! `jobwatch exec` on the local platform: real child processes, real output, real kills.

mod common;

use std::path::Path;

use common::{jobwatch, parse};

fn local_config(dir: &Path, checks: &str) -> std::path::PathBuf {
    let path = dir.join("local.toml");
    std::fs::write(
        &path,
        format!("[platforms.local]\nkind = \"local\"\n{checks}"),
    )
    .unwrap();
    path
}

fn local_check(name: &str, language: &str, script: &str, extra: &str) -> String {
    format!(
        "[[checks]]\nname = \"{name}\"\nplatform = \"local\"\nscript_language = \"{language}\"\nscript = '''\n{script}\n'''\nhosts = [\"localhost\"]\n{extra}\n[checks.poll]\nfirst_poll = \"20ms\"\ninterval = \"50ms\"\nmax_interval = \"200ms\"\n"
    )
}

fn exec(config: &Path, check: &str) -> (i32, serde_json::Value) {
    let out = jobwatch()
        .args(["exec", "--config"])
        .arg(config)
        .args(["--check", check, "--output", "json"])
        .output()
        .unwrap();
    let (code, report, _) = parse(out);
    (code, report)
}

#[test]
fn the_sample_check_of_the_readme_succeeds_with_its_real_output() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = jobwatch()
        .current_dir(root)
        .args([
            "exec",
            "--config",
            "config.example.toml",
            "--check",
            "hello-local",
            "--output",
            "json",
        ])
        .output()
        .unwrap();
    let (code, report, _) = parse(out);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["state"], "succeeded");
    assert_eq!(report["platform_kind"], "local");
    let log = report["hosts"][0]["log"].as_str().unwrap();
    let whoami = String::from_utf8(
        std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        log.contains(&format!("as {}", whoami.trim())),
        "the script's real output: {log}"
    );
    assert_eq!(report["hosts"][0]["status"], 9);
    assert_eq!(report["hosts"][0]["exit_code"], 0);
}

#[test]
fn non_zero_exit_is_104_with_the_exit_code_and_the_output_of_both_streams() {
    let dir = tempfile::tempdir().unwrap();
    let config = local_config(
        dir.path(),
        &local_check(
            "fail",
            "shell",
            "echo to-stdout\necho to-stderr >&2\nexit 7",
            "",
        ),
    );
    let (code, report) = exec(&config, "fail");
    assert_eq!(code, 1, "{report:#}");
    let host = &report["hosts"][0];
    assert_eq!(host["status"], 104);
    assert_eq!(host["status_label"], "Non-zero Exit Code");
    assert_eq!(host["exit_code"], 7);
    assert_eq!(host["log"], "to-stdout\nto-stderr\n");
    assert!(
        report["reason"].as_str().unwrap().contains("exit 7"),
        "{report:#}"
    );
}

#[test]
fn python_and_perl_scripts_run_with_their_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let checks = [
        local_check(
            "py",
            "python",
            "import sys\nprint('py args', sys.argv[1:])",
            "script_param = \"a 'b c'\"",
        ),
        local_check("pl", "4", "print('four is python')", ""),
        local_check(
            "perl",
            "perl",
            "print \"perl args @ARGV\\n\";",
            "script_param = \"x y\"",
        ),
    ]
    .join("\n");
    let config = local_config(dir.path(), &checks);
    let (code, report) = exec(&config, "py");
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["hosts"][0]["log"], "py args ['a', 'b c']\n");
    let (code, report) = exec(&config, "pl");
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["hosts"][0]["log"], "four is python\n");
    let (code, report) = exec(&config, "perl");
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["hosts"][0]["log"], "perl args x y\n");
}

#[test]
fn gb18030_output_is_decoded_and_invalid_bytes_never_crash() {
    let dir = tempfile::tempdir().unwrap();
    // "磁盘已满" in GB18030, then a line of bytes valid in neither encoding.
    let checks = [
        local_check(
            "gbk",
            "shell",
            r"printf '\264\305\305\314\322\321\302\372\n'",
            "",
        ),
        local_check("junk", "shell", r"printf 'ok \377\376\375 end\n'", ""),
    ]
    .join("\n");
    let config = local_config(dir.path(), &checks);
    let (code, report) = exec(&config, "gbk");
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["hosts"][0]["log"], "磁盘已满\n");
    let (code, report) = exec(&config, "junk");
    assert_eq!(code, 0, "{report:#}");
    let log = report["hosts"][0]["log"].as_str().unwrap();
    assert!(log.starts_with("ok ") && log.ends_with(" end\n"), "{log:?}");
}

#[test]
fn the_jobs_own_timeout_kills_the_whole_process_group_as_102() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("grandchild.pid");
    let script = format!(
        "sleep 300 &\necho $! > {}\necho started\nwait",
        pid_file.display()
    );
    let config = local_config(
        dir.path(),
        &local_check("slow", "shell", &script, "timeout = \"1s\""),
    );
    let (code, report) = exec(&config, "slow");
    assert_eq!(code, 1, "{report:#}");
    let host = &report["hosts"][0];
    assert_eq!(host["status"], 102);
    assert_eq!(host["outcome"], "timeout");
    assert!(
        host["log"].as_str().unwrap().contains("started"),
        "{host:#}"
    );
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The background `sleep` was in the script's process group: it must be dead (gone, or a
    // zombie waiting for init to reap it). SIGKILL is delivered asynchronously, so allow the
    // kernel a moment to finish the job.
    let running = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while running() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(!running(), "grandchild {pid} survived the timeout");
}

#[test]
fn a_missing_interpreter_is_101_with_the_reason_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let config = local_config(dir.path(), &local_check("bat", "bat", "echo hi", ""));
    let (code, report) = exec(&config, "bat");
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["hosts"][0]["status"], 101);
    assert!(
        report["hosts"][0]["log"]
            .as_str()
            .unwrap()
            .contains("no interpreter for bat"),
        "{report:#}"
    );
}

#[test]
fn a_long_log_keeps_its_tail_and_says_it_was_cut() {
    let dir = tempfile::tempdir().unwrap();
    let config = local_config(
        dir.path(),
        &local_check(
            "long",
            "shell",
            "for i in $(seq 1 5000); do echo \"line $i\"; done",
            "log_max_bytes = 1024",
        ),
    );
    let (code, report) = exec(&config, "long");
    assert_eq!(code, 0, "{report:#}");
    let host = &report["hosts"][0];
    assert_eq!(host["log_truncated"], true);
    assert!(host["log_bytes"].as_u64().unwrap() > 40_000);
    let log = host["log"].as_str().unwrap();
    assert!(log.starts_with("[jobwatch: first "), "{log}");
    assert!(log.ends_with("line 5000\n"));
    assert!(log.len() < 1200);
}

#[test]
fn a_bad_config_exits_78_naming_every_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = local_config(
        dir.path(),
        "[[checks]]\nname = \"x\"\nplatform = \"nowhere\"\nhosts = []\n[checks.poll]\njitter = 5.0\n",
    );
    let out = jobwatch()
        .args(["exec", "--config"])
        .arg(&config)
        .args(["--check", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for key in [
        "checks[0].platform",
        "checks[0].script",
        "checks[0].hosts",
        "checks[0].poll.jitter",
    ] {
        assert!(stderr.contains(key), "{key} missing from:\n{stderr}");
    }
    let out = jobwatch()
        .args(["config", "check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let out = jobwatch()
        .args(["exec", "--check", "no-such-check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("hello-local"),
        "names the known checks"
    );
}

#[test]
fn text_output_shows_the_host_table_log_lines_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let config = local_config(
        dir.path(),
        &local_check("txt", "shell", "echo one\necho two\nexit 2", ""),
    );
    let out = jobwatch()
        .args(["exec", "--config"])
        .arg(&config)
        .args(["--check", "txt"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("HOST") && text.contains("STATUS") && text.contains("EXIT"),
        "{text}"
    );
    assert!(
        text.contains("localhost  104 Non-zero Exit Code  failed"),
        "{text}"
    );
    assert!(text.contains("one\ntwo\n"), "{text}");
    assert!(
        text.contains("FAILED: 1 of 1 hosts did not succeed"),
        "{text}"
    );
    // Without a terminal, progress goes to stderr as plain lines.
    assert!(String::from_utf8_lossy(&out.stderr).contains("host localhost: 104"));
}

#[test]
fn sigterm_stops_the_script_and_reports_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("started");
    let script = format!("touch {}\nsleep 300\necho never", marker.display());
    let config = local_config(dir.path(), &local_check("long", "shell", &script, ""));
    let child = jobwatch()
        .args(["exec", "--config"])
        .arg(&config)
        .args(["--check", "long", "--output", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !marker.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the script never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let (code, report, _) = parse(child.wait_with_output().unwrap());
    assert_eq!(code, 130, "{report:#}");
    assert_eq!(report["state"], "cancelled");
    assert_eq!(
        report["hosts"][0]["status"], 103,
        "the script was terminated: {report:#}"
    );
    assert!(
        !report["hosts"][0]["log"]
            .as_str()
            .unwrap()
            .contains("never")
    );
}
