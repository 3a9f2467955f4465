//! When a check runs by itself: a cron expression (croner; 5 fields, or 6 with seconds
//! first) in UTC, or a fixed period. Pure: time is an input (Unix epoch ms).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// A schedule that does not read ([`Schedule::cron`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a cron expression: {reason}")]
pub struct ScheduleError {
    /// The expression as written.
    pub text: String,
    /// The parser's words.
    pub reason: String,
}

/// Missed ticks are counted one by one (cron) up to this many.
pub const MAX_COUNTED_TICKS: u64 = 1_000_000;

/// A check's schedule.
#[derive(Clone)]
pub enum Schedule {
    /// A cron expression, evaluated in UTC.
    Cron {
        /// The expression as written.
        text: String,
        /// Parsed.
        cron: Box<Cron>,
    },
    /// Every `period`, on multiples of the period since the Unix epoch (so ticks are the same
    /// across restarts and replicas).
    Every(Duration),
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Cron { text, .. } => write!(f, "cron({text})"),
            Schedule::Every(d) => write!(f, "every({})", humantime::format_duration(*d)),
        }
    }
}

impl Schedule {
    /// Parses a cron expression (seconds optional, aliases like `@hourly` allowed).
    pub fn cron(text: &str) -> Result<Self, ScheduleError> {
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(text.trim())
            .map_err(|e| ScheduleError {
                text: text.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(Schedule::Cron {
            text: text.trim().to_owned(),
            cron: Box::new(cron),
        })
    }

    /// The first tick strictly after `after_ms`.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        match self {
            Schedule::Every(period) => {
                let p = period.as_millis().max(1) as i64;
                Some((after_ms.div_euclid(p) + 1) * p)
            }
            Schedule::Cron { cron, .. } => {
                let after: DateTime<Utc> = DateTime::from_timestamp_millis(after_ms)?;
                cron.find_next_occurrence(&after, false)
                    .ok()
                    .map(|t| t.timestamp_millis())
            }
        }
    }

    /// Ticks strictly after `from_ms` and strictly before `to_ms`: the **newest** `keep` of
    /// them (oldest first), and how many older ones were left out. Counting stops at
    /// [`MAX_COUNTED_TICKS`] (then the count left out is a lower bound, and the third value is
    /// `false`: not exact).
    pub fn newest_ticks_between(
        &self,
        from_ms: i64,
        to_ms: i64,
        keep: usize,
    ) -> (Vec<i64>, u64, bool) {
        if let Schedule::Every(period) = self {
            // Arithmetic: multiples of the period in (from, to).
            let p = period.as_millis().max(1) as i64;
            let first = from_ms.div_euclid(p) + 1;
            let last = (to_ms - 1).div_euclid(p);
            if last < first {
                return (Vec::new(), 0, true);
            }
            let total = (last - first + 1) as u64;
            let kept = total.min(keep as u64) as i64;
            let ticks = ((last - kept + 1)..=last).map(|k| k * p).collect();
            return (ticks, total - kept as u64, true);
        }
        let mut newest = std::collections::VecDeque::with_capacity(keep + 1);
        let mut total = 0u64;
        let mut at = from_ms;
        while let Some(next) = self.next_after(at).filter(|&t| t < to_ms) {
            total += 1;
            newest.push_back(next);
            if newest.len() > keep {
                newest.pop_front();
            }
            if total >= MAX_COUNTED_TICKS {
                let kept = newest.len() as u64;
                return (newest.into(), total - kept, false);
            }
            at = next;
        }
        let kept = newest.len() as u64;
        (newest.into(), total - kept, true)
    }
}

impl FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Schedule::cron(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tick_is_inside_a_maintenance_window_from_its_opening_until_just_before_its_close() {
        // Sundays 02:00 UTC for 2 h. 2026-11-29 was a Sunday.
        let m = Maintenance {
            schedule: Schedule::cron("0 2 * * SUN").unwrap(),
            duration: Duration::from_secs(2 * 3600),
        };
        let at = |text: &str| {
            chrono::DateTime::parse_from_rfc3339(text)
                .unwrap()
                .timestamp_millis()
        };
        let window = (at("2026-11-29T02:00:00Z"), at("2026-11-29T04:00:00Z"));
        assert_eq!(m.window_at(at("2026-11-29T02:00:00Z")), Some(window));
        assert_eq!(m.window_at(at("2026-11-29T03:59:59.999Z")), Some(window));
        assert_eq!(m.window_at(at("2026-11-29T04:00:00Z")), None);
        assert_eq!(m.window_at(at("2026-11-29T01:59:59Z")), None);
        assert_eq!(m.window_at(at("2026-11-30T03:00:00Z")), None, "a Monday");
        assert_eq!(m.describe(), "0 2 * * SUN for 2h");
    }

    const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    #[test]
    fn every_ticks_on_multiples_of_the_period() {
        let s = Schedule::Every(Duration::from_secs(30));
        assert_eq!(s.next_after(T0), Some(T0 + 30_000));
        assert_eq!(s.next_after(T0 + 1), Some(T0 + 30_000));
        let (ticks, left_out, exact) = s.newest_ticks_between(T0, T0 + 100_000, 10);
        assert_eq!(ticks, vec![T0 + 30_000, T0 + 60_000, T0 + 90_000]);
        assert_eq!((left_out, exact), (0, true));
        assert_eq!(
            s.newest_ticks_between(T0, T0 + 30_000, 10).0,
            Vec::<i64>::new()
        );
    }

    #[test]
    fn the_newest_ticks_are_kept_and_the_rest_counted_exactly() {
        // 17 minutes down with `every = "1m"`: the newest 10 kept, 7 counted.
        let every = Schedule::Every(Duration::from_secs(60));
        let cron = Schedule::cron("* * * * *").unwrap();
        for s in [every, cron] {
            let (ticks, left_out, exact) =
                s.newest_ticks_between(T0, T0 + 17 * 60_000 + 30_000, 10);
            assert_eq!(ticks.len(), 10, "{s:?}");
            assert_eq!(ticks[0], T0 + 8 * 60_000, "{s:?}");
            assert_eq!(ticks[9], T0 + 17 * 60_000, "{s:?}");
            assert_eq!((left_out, exact), (7, true), "{s:?}");
        }
    }

    #[test]
    fn cron_with_and_without_seconds() {
        let s = Schedule::cron("*/5 * * * *").unwrap();
        assert_eq!(s.next_after(T0), Some(T0 + 5 * 60_000));
        let s = Schedule::cron("*/10 * * * * *").unwrap();
        assert_eq!(s.next_after(T0), Some(T0 + 10_000));
        let s = Schedule::cron("@hourly").unwrap();
        assert_eq!(s.next_after(T0), Some(T0 + 3_600_000));
        assert!(Schedule::cron("61 * * * *").is_err());
        assert!(Schedule::cron("tomorrow").is_err());
    }
}

/// A maintenance window of a check: it opens at each tick of `schedule` and lasts
/// `duration`; scheduled ticks inside one are recorded skipped, not run.
#[derive(Debug, Clone)]
pub struct Maintenance {
    /// When a window opens.
    pub schedule: Schedule,
    /// How long it stays open.
    pub duration: Duration,
}

impl Maintenance {
    /// The window (opened, closes) that `at_ms` falls in, if any: the latest opening at or
    /// before `at_ms` that is less than `duration` before it.
    pub fn window_at(&self, at_ms: i64) -> Option<(i64, i64)> {
        let length = i64::try_from(self.duration.as_millis()).unwrap_or(i64::MAX);
        let opened = self.schedule.next_after(at_ms.saturating_sub(length))?;
        (opened <= at_ms).then(|| (opened, opened.saturating_add(length)))
    }

    /// `<schedule> for <duration>`, as configured.
    pub fn describe(&self) -> String {
        let schedule = match &self.schedule {
            Schedule::Cron { text, .. } => text.clone(),
            Schedule::Every(d) => format!("every {}", humantime::format_duration(*d)),
        };
        format!(
            "{schedule} for {}",
            humantime::format_duration(self.duration)
        )
    }
}
