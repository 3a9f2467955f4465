//! The policies a check gives its executions: when to poll (a fast first look, then
//! exponential backoff with jitter up to a cap, never past the deadline: DESIGN.md §6), what
//! to do at the deadline, when a condition is raised, and when a finished job counts as
//! failed (k-of-N). Data with small pure methods: time and randomness are inputs.

use std::time::Duration;

/// A check's poll policy. Durations are wall-clock.
#[derive(Debug, Clone, PartialEq)]
pub struct PollPolicy {
    /// Delay from submit to the first status poll (default 250 ms).
    pub first_poll: Duration,
    /// Delay after the first poll; each later delay is the previous one × `backoff_factor`
    /// (default 1 s: a job that ends in 1 s is seen by about 1.35 s).
    pub interval: Duration,
    /// Growth of the delay between polls; 1 keeps `interval` fixed (default 2).
    pub backoff_factor: f64,
    /// Cap of the delay between polls (default 30 s, never below `interval`).
    pub max_interval: Duration,
    /// Each delay after the first is scaled by a random factor in `[1 - jitter, 1 + jitter]`
    /// (then capped), so many executions do not poll in lockstep (default 0.1).
    pub jitter: f64,
    /// Give up after this many status polls that got an answer, if set. Unset by default: the
    /// deadline bounds the wait. `interval = "20s"`, `backoff_factor = 1`, `max_attempts = 5`
    /// is the classic collector check (a 100 s budget, whatever the job's timeout).
    pub max_attempts: Option<u32>,
    /// Added to the job's own timeout to make the deadline (default 60 s): the platform ends
    /// a job at its timeout, so past timeout + slack the job is timed out whatever it says.
    pub deadline_slack: Duration,
    /// Consecutive "job instance not found" answers before the execution is `lost`
    /// (default 3; a new instance can briefly be unknown to a replica).
    pub lost_after: u32,
    /// What happens at the deadline when the job still runs: `leave` it (default) or
    /// `terminate` it (bk-job operate_job_instance code 1, then polling goes on until it ends
    /// or `terminate_grace` passes). Either way the execution ends `timed_out`.
    pub on_deadline: OnDeadline,
    /// How long a terminate at the deadline is given to take effect (default 60 s).
    pub terminate_grace: Duration,
    /// Thresholds of the conditions (stuck, stragglers, platform unreachable).
    pub detect: DetectPolicy,
    /// With bk-job callbacks on for the check's platform: the delay between polls after the
    /// first (default 5 min). A callback makes a poll due at once, so polling is only the
    /// safety net for a callback that never comes. `None` without callbacks.
    pub safety_interval: Option<Duration>,
}

/// After a callback whose poll did not see the end yet (bk-job's status read lagging behind
/// its callback), this many polls follow at the normal pace (`interval`, backing off) before
/// [`PollPolicy::safety_interval`] rules again ([`PollPolicy::follow_up_delay`]).
pub const HINT_POLLS: u32 = 3;

/// The default [`PollPolicy::safety_interval`].
pub const DEFAULT_SAFETY_INTERVAL: Duration = Duration::from_secs(300);

/// What to do with a job still running at its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnDeadline {
    /// Leave it running; the execution ends `timed_out`.
    #[default]
    Leave,
    /// Ask the platform to terminate it, wait for the end, then end `timed_out`.
    Terminate,
}

impl Default for PollPolicy {
    fn default() -> Self {
        PollPolicy {
            first_poll: Duration::from_millis(250),
            interval: Duration::from_secs(1),
            backoff_factor: 2.0,
            max_interval: Duration::from_secs(30),
            jitter: 0.1,
            max_attempts: None,
            deadline_slack: Duration::from_secs(60),
            lost_after: 3,
            on_deadline: OnDeadline::Leave,
            terminate_grace: Duration::from_secs(60),
            detect: DetectPolicy::default(),
            safety_interval: None,
        }
    }
}

impl PollPolicy {
    /// The un-jittered delay before poll number `n` (0-based): `first_poll`, then
    /// `safety_interval` with callbacks, else `interval × backoff_factor^(n-1)` capped at
    /// `max_interval`.
    pub fn base_delay(&self, n: u32) -> Duration {
        match (n, self.safety_interval) {
            (0, _) => self.first_poll,
            (_, Some(safety)) => safety,
            (_, None) => self.backoff(n),
        }
    }

    /// `interval × backoff_factor^(n-1)` capped at `max_interval` (`n` ≥ 1).
    fn backoff(&self, n: u32) -> Duration {
        let cap = self.max_interval.max(self.interval);
        let factor = self
            .backoff_factor
            .max(1.0)
            .powi(i32::try_from(n.max(1) - 1).unwrap_or(i32::MAX));
        let secs = (self.interval.as_secs_f64() * factor).min(cap.as_secs_f64());
        Duration::from_secs_f64(secs)
    }

    /// `base` scaled by the jitter draw `unit` (in `[0, 1)`), never above `cap`.
    fn jittered(&self, base: Duration, cap: Duration, unit: f64) -> Duration {
        if self.jitter <= 0.0 {
            return base;
        }
        let scale = 1.0 - self.jitter + 2.0 * self.jitter * unit.clamp(0.0, 1.0);
        Duration::from_secs_f64(base.as_secs_f64() * scale).min(cap)
    }

    /// The delay before poll number `n` with jitter applied; `unit` is a random draw in
    /// `[0, 1)`. Never above the cap; the first poll is not jittered.
    pub fn delay(&self, n: u32, unit: f64) -> Duration {
        let base = self.base_delay(n);
        if n == 0 {
            return base;
        }
        let cap = self
            .safety_interval
            .unwrap_or(self.max_interval.max(self.interval));
        self.jittered(base, cap, unit)
    }

    /// The delay before follow-up poll `k` (1-based, at most [`HINT_POLLS`]) after a
    /// callback's poll: the normal backoff, whatever the safety interval.
    pub fn follow_up_delay(&self, k: u32, unit: f64) -> Duration {
        self.jittered(self.backoff(k), self.max_interval.max(self.interval), unit)
    }

    /// How long after the submit the execution is given up as timed out: `job_timeout` +
    /// `deadline_slack`.
    pub fn deadline(&self, job_timeout: Duration) -> Duration {
        job_timeout + self.deadline_slack
    }
}

/// Thresholds, per check.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectPolicy {
    /// No progress for this long → `stuck`.
    pub stuck_after: Duration,
    /// Hosts still running this long after the others ended → `stragglers`.
    pub straggler_after: Duration,
    /// No answer from the platform for this long → `platform_unreachable`.
    pub unreachable_after: Duration,
}

impl Default for DetectPolicy {
    fn default() -> Self {
        DetectPolicy {
            stuck_after: Duration::from_secs(30 * 60),
            straggler_after: Duration::from_secs(5 * 60),
            unreachable_after: Duration::from_secs(60),
        }
    }
}

/// A `fail_when` that does not read ([`FailWhen::parse`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}`: use \"any\", \"count >= N\" or \"ratio > R\"")]
pub struct FailWhenParseError(pub String);

/// When a finished job counts as failed (k-of-N), per check.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum FailWhen {
    /// Any host that did not succeed fails the job (`"any"`, the default).
    #[default]
    Any,
    /// At least this many hosts did not succeed (`"count >= N"`).
    CountAtLeast(usize),
    /// More than this share of the hosts did not succeed (`"ratio > R"`, R in [0, 1)).
    RatioAbove(f64),
}

impl FailWhen {
    /// Parses `"any"`, `"count >= N"` (N ≥ 1) or `"ratio > R"` (0 ≤ R < 1).
    pub fn parse(text: &str) -> Result<Self, FailWhenParseError> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let bad = || FailWhenParseError(text.to_owned());
        if compact == "any" {
            return Ok(FailWhen::Any);
        }
        if let Some(n) = compact.strip_prefix("count>=") {
            return match n.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(FailWhen::CountAtLeast(n)),
                _ => Err(bad()),
            };
        }
        if let Some(r) = compact.strip_prefix("ratio>") {
            return match r.parse::<f64>() {
                Ok(r) if (0.0..1.0).contains(&r) => Ok(FailWhen::RatioAbove(r)),
                _ => Err(bad()),
            };
        }
        Err(bad())
    }

    /// Whether `failing` of `total` hosts fail the job.
    pub fn fails(self, failing: usize, total: usize) -> bool {
        match self {
            FailWhen::Any => failing > 0,
            FailWhen::CountAtLeast(n) => failing >= n,
            FailWhen::RatioAbove(r) => total > 0 && (failing as f64) / (total as f64) > r,
        }
    }

    /// The configured text, normalized (`any`, `count >= N`, `ratio > R`).
    pub fn describe(self) -> String {
        match self {
            FailWhen::Any => "any".into(),
            FailWhen::CountAtLeast(n) => format!("count >= {n}"),
            FailWhen::RatioAbove(r) => format!("ratio > {r}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_poll_is_fast_then_backs_off_to_the_cap() {
        let p = PollPolicy::default();
        let delays: Vec<u64> = (0..7).map(|n| p.base_delay(n).as_millis() as u64).collect();
        assert_eq!(
            delays,
            vec![250, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000]
        );
        assert!(p.delay(0, 0.99) <= Duration::from_secs(1));
        // A job that ends in 1 s is seen by the second poll, at most 1.35 s after submit.
        assert!(p.delay(0, 0.0) + p.delay(1, 0.999) <= Duration::from_millis(1350));
    }

    #[test]
    fn with_callbacks_the_first_poll_is_fast_then_the_safety_interval_rules() {
        let p = PollPolicy {
            safety_interval: Some(DEFAULT_SAFETY_INTERVAL),
            ..PollPolicy::default()
        };
        let delays: Vec<u64> = (0..4).map(|n| p.base_delay(n).as_millis() as u64).collect();
        assert_eq!(delays, vec![250, 300_000, 300_000, 300_000]);
        for unit in [0.0, 0.5, 0.999] {
            assert!(p.delay(5, unit) <= DEFAULT_SAFETY_INTERVAL);
            assert!(p.delay(5, unit) >= Duration::from_secs(270));
        }
        // After a callback whose poll saw no end: the normal backoff, then the safety net.
        let follow: Vec<u64> = (1..=HINT_POLLS)
            .map(|k| p.follow_up_delay(k, 0.5).as_millis() as u64)
            .collect();
        assert_eq!(follow, vec![1_000, 2_000, 4_000]);
    }

    #[test]
    fn jitter_stays_within_bounds_and_under_the_cap() {
        let p = PollPolicy::default();
        for unit in [0.0, 0.25, 0.5, 0.999] {
            let d = p.delay(2, unit).as_secs_f64();
            assert!((1.8..=2.2).contains(&d), "{d}");
            assert!(p.delay(20, unit) <= p.max_interval);
        }
    }

    #[test]
    fn classic_collector_preset_polls_every_twenty_seconds() {
        let p = PollPolicy {
            interval: Duration::from_secs(20),
            backoff_factor: 1.0,
            jitter: 0.0,
            max_attempts: Some(5),
            ..PollPolicy::default()
        };
        let delays: Vec<u64> = (1..5).map(|n| p.delay(n, 0.5).as_secs()).collect();
        assert_eq!(delays, vec![20, 20, 20, 20]);
    }

    #[test]
    fn deadline_is_the_jobs_own_timeout_plus_slack() {
        let p = PollPolicy::default();
        assert_eq!(
            p.deadline(Duration::from_secs(7200)),
            Duration::from_secs(7260)
        );
    }
}
