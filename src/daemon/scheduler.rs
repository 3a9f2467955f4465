//! Scheduled checks: one task per check sleeping until its next tick. A tick runs the check,
//! or — inside one of the check's maintenance windows, when the previous run is still going
//! and `allow_overlap` is off, or when the agent was down at that time — is recorded as a
//! `skipped` execution with the reason (a skipped execution causes no alert). Each tick is
//! recorded once (unique `(check, scheduled_at)` in the store).

use std::sync::Arc;
use std::time::Duration;

use super::{Overrides, Runner};
use crate::tracker::report::Origin;

/// At most this many missed ticks (the newest) are recorded one by one per check at start;
/// the oldest of them says exactly how many earlier ones were missed too.
const MISSED_TICKS_RECORDED: usize = 10;

/// The reason of a tick missed while jobwatch was down; the oldest recorded one also counts
/// the earlier missed ticks that are not recorded (`left_out`, exact or a lower bound), since
/// the last tick recorded before (`since_ms`).
pub fn missed_reason(oldest_recorded: bool, left_out: u64, exact: bool, since_ms: i64) -> String {
    let mut reason = "jobwatch was not running at the scheduled time".to_owned();
    if oldest_recorded && left_out > 0 {
        let since = crate::time::rfc3339_ms(since_ms);
        let count = if exact {
            format!("{left_out}")
        } else {
            format!("at least {left_out}")
        };
        reason.push_str(&format!(
            "; {count} earlier tick(s) after the last recorded one ({since}) were missed too and are not recorded one by one"
        ));
    }
    reason
}

/// Starts one task per scheduled check.
pub fn start(runner: &Arc<Runner>) {
    for check in runner
        .config()
        .checks
        .iter()
        .filter(|c| c.schedule.is_some())
    {
        let runner = runner.clone();
        let name = check.name.clone();
        tokio::spawn(async move { run_schedule(runner, name).await });
    }
}

/// Records the ticks of `check` missed between its last recorded tick and `now` (Unix ms).
pub(super) async fn record_missed(
    runner: &Runner,
    check: &str,
    schedule: &crate::schedule::Schedule,
    now: i64,
) {
    let last = match runner.store().last_tick(check).await {
        Ok(Some(last)) => last,
        Ok(None) => return, // never scheduled before: nothing was missed
        Err(e) => {
            tracing::error!(check, error = %e, "Cannot read the last scheduled tick.");
            return;
        }
    };
    // The newest are recorded: a later start finds the newest one as the last tick, so what
    // is said here is never contradicted by what a later start records.
    let (ticks, left_out, exact) = schedule.newest_ticks_between(last, now, MISSED_TICKS_RECORDED);
    for (i, tick) in ticks.into_iter().enumerate() {
        let reason = missed_reason(i == 0, left_out, exact, last);
        if let Err(e) = runner.record_skipped(check, tick, reason, false).await {
            tracing::error!(check, error = %e, "Cannot record a missed tick.");
        }
    }
}

/// Why `tick` of `check` is not run, when it falls in one of its maintenance windows.
pub fn in_maintenance(runner: &Runner, check: &str, tick: i64) -> Option<String> {
    let check = runner.config().check(check)?;
    check.maintenance.iter().find_map(|m| {
        m.window_at(tick).map(|(opened, closes)| {
            format!(
                "inside a maintenance window ({}): {} to {}",
                m.describe(),
                crate::time::rfc3339_ms(opened),
                crate::time::rfc3339_ms(closes)
            )
        })
    })
}

async fn run_schedule(runner: Arc<Runner>, check: String) {
    let Some(schedule) = runner
        .config()
        .check(&check)
        .and_then(|c| c.schedule.clone())
    else {
        return;
    };
    let allow_overlap = runner
        .config()
        .check(&check)
        .is_some_and(|c| c.allow_overlap);
    let stop = runner.stop_token();
    // With several replicas, the others record the ticks of the last moments (this one may
    // only have been restarting): only ticks older than a lease are missed ones.
    let missed_until = match runner.replicated_lease() {
        Some(lease) => crate::time::now_ms() - lease.as_millis() as i64,
        None => crate::time::now_ms(),
    };
    record_missed(&runner, &check, &schedule, missed_until).await;
    let run_on_start = runner
        .config()
        .check(&check)
        .is_some_and(|c| c.run_on_start);
    let maintenance_now = in_maintenance(&runner, &check, crate::time::now_ms());
    if run_on_start && let Some(reason) = &maintenance_now {
        tracing::info!(check, reason, "No run at start: {reason}.");
    }
    if run_on_start
        && maintenance_now.is_none()
        && (allow_overlap || runner.running_count(&check).await == 0)
    {
        match runner
            .submit(&check, Origin::Schedule, None, &Overrides::default())
            .await
        {
            Ok(_) => tracing::debug!(check, "Run at start."),
            Err(e) => tracing::error!(check, error = %e, "Cannot start the run at start."),
        }
    }
    let mut after = crate::time::now_ms();
    while let Some(tick) = schedule.next_after(after) {
        after = tick;
        let wait = Duration::from_millis((tick - crate::time::now_ms()).max(0) as u64);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => return,
        }
        if !runner.accepting() {
            return;
        }
        if let Some(reason) = in_maintenance(&runner, &check, tick) {
            if let Err(e) = runner.record_skipped(&check, tick, reason, true).await {
                tracing::error!(check, error = %e, "Cannot record a skipped tick.");
            }
            continue;
        }
        let running = runner.running_count(&check).await;
        if running > 0 && !allow_overlap {
            let reason = format!(
                "the previous run was still going ({running} active execution(s)); allow_overlap is off"
            );
            if let Err(e) = runner.record_skipped(&check, tick, reason, false).await {
                tracing::error!(check, error = %e, "Cannot record a skipped tick.");
            }
            continue;
        }
        match runner
            .submit(&check, Origin::Schedule, Some(tick), &Overrides::default())
            .await
        {
            Ok(Some(report)) => {
                tracing::debug!(check, execution_id = %report.execution_id, "Scheduled run started.")
            }
            Ok(None) => tracing::debug!(check, tick, "Tick already recorded."),
            Err(e) => tracing::error!(check, error = %e, "Cannot start a scheduled run."),
        }
    }
}
