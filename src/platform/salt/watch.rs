//! What the adapter remembers of a Salt job between polls: the `saltutil.find_job` probe in
//! flight, what the probes said of each host not yet returned, and a terminate. Salt itself
//! never says that a silent host is gone (salt/API.md §4, §6.6): these answers are how
//! jobwatch tells running, lost and unreachable apart. Pure: the caller passes the time.
//!
//! Lost with the process (a restart probes again from nothing): the cost is one more probe
//! round before a silent host is called unreachable, never a wrong outcome.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::codes;
use super::wire::Probe;

/// No probe in the first seconds of a job: a minion that has not started it yet answers `{}`.
pub const START_GRACE: Duration = Duration::from_secs(2);
/// At most one probe per job this often (a probe read back is followed by the next at once).
pub const PROBE_EVERY: Duration = Duration::from_secs(3);
/// A probe is read back no sooner than this after it was sent (live minions answer within
/// about a second; a minion that has not answered by then is silent).
pub const PROBE_WAIT: Duration = Duration::from_secs(3);
/// A probe not read back after this long is given up (its job may have left the cache).
pub const PROBE_GIVE_UP: Duration = Duration::from_secs(120);
/// Silent to this many probes in a row: unreachable.
pub const SILENT_PROBES: u32 = 2;
/// Alive but not running the job for this many probes in a row: lost.
pub const EMPTY_PROBES: u32 = 2;
/// After `saltutil.term_job`, a host still running it this long gets `saltutil.kill_job`.
pub const KILL_AFTER: Duration = Duration::from_secs(10);

/// A probe sent and not yet read back.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The probe's own jid.
    pub jid: String,
    /// When it was sent.
    pub at: Instant,
    /// The hosts it asked.
    pub hosts: Vec<String>,
}

/// What the probes said of one host, in a row.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    silent: u32,
    empty: u32,
    last: Option<Probe>,
}

/// A terminate in progress.
#[derive(Debug, Clone)]
pub struct Terminate {
    /// When `term_job` was sent.
    pub at: Instant,
    /// The hosts it was sent to.
    pub hosts: BTreeSet<String>,
    /// Whether `kill_job` followed.
    pub kill_sent: bool,
}

/// One job's probe state.
#[derive(Debug, Clone)]
pub struct Watch {
    first_seen: Instant,
    /// Last poll of the job, for eviction.
    pub touched: Instant,
    /// The probe in flight.
    pub probe: Option<Sent>,
    last_probe_at: Option<Instant>,
    hosts: BTreeMap<String, Seen>,
    /// The terminate in progress.
    pub terminate: Option<Terminate>,
}

impl Watch {
    /// A job first polled at `now`.
    pub fn new(now: Instant) -> Self {
        Watch {
            first_seen: now,
            touched: now,
            probe: None,
            last_probe_at: None,
            hosts: BTreeMap::new(),
            terminate: None,
        }
    }

    /// The probe to read back now, if one is due.
    pub fn read_due(&self, now: Instant) -> Option<&Sent> {
        self.probe
            .as_ref()
            .filter(|p| now.duration_since(p.at) >= PROBE_WAIT)
    }

    /// Whether a new probe should go out now to the hosts not yet returned.
    pub fn probe_due(&self, now: Instant) -> bool {
        self.probe.is_none()
            && now.duration_since(self.first_seen) >= START_GRACE
            && self
                .last_probe_at
                .is_none_or(|at| now.duration_since(at) >= PROBE_EVERY)
    }

    /// Records a probe sent at `now`.
    pub fn sent(&mut self, jid: String, hosts: Vec<String>, now: Instant) {
        self.last_probe_at = Some(now);
        self.probe = Some(Sent {
            jid,
            at: now,
            hosts,
        });
    }

    /// Drops a probe that could not be read back for [`PROBE_GIVE_UP`].
    pub fn give_up_stale_probe(&mut self, now: Instant) {
        if self
            .probe
            .as_ref()
            .is_some_and(|p| now.duration_since(p.at) >= PROBE_GIVE_UP)
        {
            self.probe = None;
        }
    }

    /// Takes in the answers of the probe in flight for the hosts still not returned
    /// (`pending`); a host that returned meanwhile is not judged by it.
    pub fn answered(&mut self, answers: &BTreeMap<String, Probe>, pending: &BTreeSet<String>) {
        self.probe = None;
        for (host, answer) in answers.iter().filter(|(h, _)| pending.contains(*h)) {
            let seen = self.hosts.entry(host.clone()).or_default();
            match answer {
                Probe::Running(_) => {
                    seen.silent = 0;
                    seen.empty = 0;
                }
                Probe::NotRunning => {
                    seen.silent = 0;
                    seen.empty += 1;
                }
                Probe::Silent => {
                    seen.empty = 0;
                    seen.silent += 1;
                }
            }
            seen.last = Some(answer.clone());
        }
    }

    /// Records `term_job` sent at `now` to `hosts`: their probe history starts again, and the
    /// next poll probes them at once.
    pub fn terminating(&mut self, hosts: BTreeSet<String>, now: Instant) {
        for h in &hosts {
            self.hosts.remove(h);
        }
        self.probe = None;
        self.last_probe_at = None;
        self.terminate = Some(Terminate {
            at: now,
            hosts,
            kill_sent: false,
        });
    }

    /// The hosts to send `kill_job` to now: a terminate older than [`KILL_AFTER`] whose hosts
    /// a probe still found running. Marks the kill as sent.
    pub fn kill_due(&mut self, now: Instant) -> Vec<String> {
        let Some(t) = self.terminate.as_mut() else {
            return Vec::new();
        };
        if t.kill_sent || now.duration_since(t.at) < KILL_AFTER {
            return Vec::new();
        }
        let running: Vec<String> = t
            .hosts
            .iter()
            .filter(|h| {
                self.hosts
                    .get(*h)
                    .is_some_and(|s| matches!(s.last, Some(Probe::Running(_))))
            })
            .cloned()
            .collect();
        if !running.is_empty() {
            t.kill_sent = true;
        }
        running
    }

    /// The code and facts of a host that has not returned, from what the probes said.
    pub fn pending(&self, host: &str) -> (i64, Option<Value>) {
        let seen = self.hosts.get(host);
        let facts = seen
            .and_then(|s| s.last.as_ref())
            .map(|p| json!({ "probe": p.fact() }));
        let silent = seen.is_some_and(|s| s.silent >= SILENT_PROBES);
        let terminating = self
            .terminate
            .as_ref()
            .is_some_and(|t| t.hosts.contains(host));
        let code = if silent {
            codes::UNREACHABLE
        } else if terminating {
            match seen.and_then(|s| s.last.as_ref()) {
                Some(Probe::NotRunning) => codes::TERMINATED,
                _ => codes::TERMINATING,
            }
        } else if seen.is_some_and(|s| s.empty >= EMPTY_PROBES) {
            codes::LOST
        } else {
            match seen.and_then(|s| s.last.as_ref()) {
                Some(Probe::Running(_)) => codes::RUNNING,
                _ => codes::NOT_RETURNED,
            }
        };
        (code, facts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(hosts: &[&str]) -> BTreeSet<String> {
        hosts.iter().map(|h| h.to_string()).collect()
    }

    fn answers(list: &[(&str, Probe)]) -> BTreeMap<String, Probe> {
        list.iter()
            .map(|(h, p)| (h.to_string(), p.clone()))
            .collect()
    }

    #[test]
    fn probes_wait_for_the_grace_then_go_out_at_most_every_three_seconds() {
        let t0 = Instant::now();
        let mut w = Watch::new(t0);
        assert!(!w.probe_due(t0 + Duration::from_secs(1)));
        assert!(w.probe_due(t0 + START_GRACE));
        w.sent("p1".into(), vec!["a".into()], t0 + START_GRACE);
        assert!(!w.probe_due(t0 + Duration::from_secs(20)), "one in flight");
        assert!(
            w.read_due(t0 + START_GRACE + Duration::from_secs(1))
                .is_none()
        );
        assert!(w.read_due(t0 + START_GRACE + PROBE_WAIT).is_some());
        w.answered(&answers(&[("a", Probe::Running(7))]), &set(&["a"]));
        assert!(!w.probe_due(t0 + START_GRACE + Duration::from_secs(2)));
        assert!(w.probe_due(t0 + START_GRACE + PROBE_EVERY));
        assert_eq!(w.pending("a").0, codes::RUNNING);
    }

    #[test]
    fn two_silent_probes_make_unreachable_and_two_empty_ones_lost() {
        let t0 = Instant::now();
        let mut w = Watch::new(t0);
        let pending = set(&["a", "b", "c"]);
        let round = answers(&[
            ("a", Probe::Silent),
            ("b", Probe::NotRunning),
            ("c", Probe::Running(1)),
        ]);
        w.answered(&round, &pending);
        assert_eq!(w.pending("a").0, codes::NOT_RETURNED);
        assert_eq!(w.pending("b").0, codes::NOT_RETURNED);
        w.answered(&round, &pending);
        assert_eq!(w.pending("a").0, codes::UNREACHABLE);
        assert_eq!(w.pending("b").0, codes::LOST);
        assert_eq!(w.pending("c").0, codes::RUNNING);
        assert_eq!(w.pending("a").1, Some(json!({"probe": "no answer"})));
        // A host answering again starts over.
        w.answered(&answers(&[("a", Probe::Running(9))]), &pending);
        assert_eq!(w.pending("a").0, codes::RUNNING);
        // A host that returned meanwhile is not judged by the probe.
        w.answered(&answers(&[("c", Probe::Silent)]), &set(&["a"]));
        w.answered(&answers(&[("c", Probe::Silent)]), &set(&["a"]));
        assert_eq!(w.pending("c").0, codes::RUNNING);
    }

    #[test]
    fn a_terminate_ends_hosts_that_stop_and_kills_those_that_do_not() {
        let t0 = Instant::now();
        let mut w = Watch::new(t0);
        w.answered(
            &answers(&[("a", Probe::Running(1)), ("b", Probe::Running(2))]),
            &set(&["a", "b"]),
        );
        w.terminating(set(&["a", "b"]), t0);
        assert!(
            w.probe_due(t0 + START_GRACE),
            "probe at once after a terminate"
        );
        assert_eq!(w.pending("a").0, codes::TERMINATING);
        w.answered(
            &answers(&[("a", Probe::NotRunning), ("b", Probe::Running(2))]),
            &set(&["a", "b"]),
        );
        assert_eq!(w.pending("a").0, codes::TERMINATED);
        assert_eq!(w.pending("b").0, codes::TERMINATING);
        assert!(w.kill_due(t0 + Duration::from_secs(1)).is_empty());
        assert_eq!(w.kill_due(t0 + KILL_AFTER), vec!["b".to_owned()]);
        assert!(w.kill_due(t0 + KILL_AFTER * 2).is_empty(), "kill_job once");
    }
}
