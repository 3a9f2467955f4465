//! What the local platform does so that no script outlives jobwatch: a parent-death signal
//! for each interpreter, and at start a sweep of what jobwatch processes that are gone left
//! behind (their marked processes and their script files). Linux `/proc`; elsewhere the sweep
//! finds nothing.

use std::path::Path;

use super::RUN_MARK;

/// `<pid>-<start time in clock ticks since boot>`: names this process uniquely across pid
/// reuse (the name of its work directory).
pub fn own_tag() -> String {
    let pid = std::process::id();
    format!("{pid}-{}", start_ticks(pid).unwrap_or(0))
}

/// The start time of `pid` (field 22 of `/proc/<pid>/stat`), `None` if there is no such
/// process (or it is a zombie).
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields are read after the
    // last ')'. Field 3 is the state, field 22 the start time.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// Whether the jobwatch process a work directory is named after (`<pid>-<ticks>`) still runs.
fn owner_alive(tag: &str) -> bool {
    let Some((pid, ticks)) = tag.split_once('-') else {
        return false;
    };
    match (pid.parse::<u32>(), ticks.parse::<u64>()) {
        (Ok(pid), Ok(ticks)) => start_ticks(pid) == Some(ticks),
        _ => false,
    }
}

/// What a sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Processes killed.
    pub processes: usize,
    /// Work directories removed.
    pub dirs: usize,
}

/// Kills every process marked with a work directory under `root` whose jobwatch process is
/// gone, and removes those directories. Directories of live jobwatch processes (another
/// `jobwatch exec` with the same data directory) are left alone.
pub fn sweep(root: &Path) -> Swept {
    let mut swept = Swept::default();
    let Ok(entries) = std::fs::read_dir(root) else {
        return swept;
    };
    let own = own_tag();
    let dead: Vec<std::path::PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name != own && !owner_alive(&name)
        })
        .map(|e| e.path())
        .collect();
    if dead.is_empty() {
        return swept;
    }
    let marks: Vec<Vec<u8>> = dead
        .iter()
        .map(|d| {
            let mut mark = format!("{RUN_MARK}=").into_bytes();
            mark.extend_from_slice(d.as_os_str().as_encoded_bytes());
            mark
        })
        .collect();
    let me = std::process::id();
    if let Ok(procs) = std::fs::read_dir("/proc") {
        for entry in procs.filter_map(Result::ok) {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if pid == me {
                continue;
            }
            let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
                continue;
            };
            if environ
                .split(|b| *b == 0)
                .any(|var| marks.iter().any(|m| var == m.as_slice()))
            {
                // SAFETY: kill(2) has no memory-safety preconditions.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGKILL);
                }
                swept.processes += 1;
            }
        }
    }
    for dir in dead {
        let removed = if dir.is_dir() {
            std::fs::remove_dir_all(&dir)
        } else {
            std::fs::remove_file(&dir)
        };
        if removed.is_ok() {
            swept.dirs += 1;
        }
    }
    swept
}

/// Runs in the forked child before exec: SIGKILL when the parent (jobwatch) dies, and exit at
/// once if it already died before this was set.
pub fn die_with_parent(parent: u32) -> std::io::Result<()> {
    // SAFETY: prctl(PR_SET_PDEATHSIG), getppid and _exit are async-signal-safe.
    unsafe {
        #[cfg(target_os = "linux")]
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::getppid() as u32 != parent {
            libc::_exit(1);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_made_up_one_is_not() {
        assert!(owner_alive(&own_tag()));
        assert!(!owner_alive(&format!("{}-1", std::process::id())));
        assert!(!owner_alive("not-a-tag"));
        assert!(!owner_alive("999999999-5"));
    }

    #[test]
    fn a_dead_owners_directory_is_removed_and_a_live_ones_kept() {
        let root = tempfile::tempdir().unwrap();
        let dead = root.path().join("999999999-5");
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join("job-1.sh"), "sleep 1").unwrap();
        let live = root.path().join(own_tag());
        std::fs::create_dir(&live).unwrap();
        let swept = sweep(root.path());
        assert_eq!(swept.dirs, 1);
        assert!(!dead.exists());
        assert!(live.exists());
    }
}
