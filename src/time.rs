//! Time as jobwatch speaks it: Unix epoch milliseconds (bk-job's unit, API.md §2.1) and
//! RFC 3339 text with milliseconds, UTC.

use std::time::{Duration, SystemTime};

/// Now, as Unix epoch milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// RFC 3339 (UTC, milliseconds) of a system time.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// RFC 3339 (UTC, milliseconds) of a Unix epoch time in milliseconds (negative: the epoch).
pub fn rfc3339_ms(ms: i64) -> String {
    rfc3339(SystemTime::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64))
}

/// Unix epoch milliseconds of RFC 3339 text (as [`rfc3339_ms`] writes it); `None` if it is
/// not such a time.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let t = humantime::parse_rfc3339_weak(text).ok()?;
    let d = t.duration_since(SystemTime::UNIX_EPOCH).ok()?;
    i64::try_from(d.as_millis()).ok()
}
