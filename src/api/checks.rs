//! The check board's facts (`GET /v1/checks`, the page at `/`): per configured check (and
//! one row for watches) where it stands now, since when, its recent outcomes, the alerts it
//! has firing and the silences that cover them. Built from the store's indexed columns plus
//! the newest execution's record: a refresh reads a few rows per check, never a history.

use std::collections::BTreeMap;

use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::*;
use crate::alert::{Alert, AlertStatus};
use crate::model::silence::Silences;
use crate::store::OutcomeLine;

/// Outcomes shown per check (the strip), and the window of the success ratio.
pub const RECENT: u32 = 30;

/// The pseudo-check name of watched jobs started elsewhere (`POST /v1/watches`).
pub const WATCH: &str = "watch";

/// A firing alert of a check, as the board shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FiringView {
    /// The alert.
    pub fingerprint: String,
    /// `alertname`.
    pub alertname: String,
    /// `severity`, if labelled.
    pub severity: String,
    /// Firing since (RFC 3339).
    pub since: String,
    /// The execution that caused its latest state.
    pub execution_id: String,
    /// What it says.
    pub summary: String,
    /// The silence covering it now, if one does (its notifications are held).
    pub silenced_by: Option<String>,
}

/// The newest execution of a check.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LatestView {
    /// Its id.
    pub execution_id: String,
    /// Its state.
    pub state: String,
    /// Its trigger status.
    pub trigger_status: String,
    /// `schedule`, `api`, `cli`, `watch`.
    pub origin: String,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339, once ended.
    pub ended_at: String,
    /// Seconds, so far or in all.
    pub duration_seconds: f64,
    /// Why it ended so (or where it stands).
    pub reason: String,
    /// The conditions holding now (`stuck: …`), when still running.
    pub conditions: Vec<String>,
    /// Hosts that did not succeed, of all hosts.
    pub hosts_failed: usize,
    /// Hosts in all.
    pub hosts_total: usize,
}

/// One row of the check board.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CheckSummary {
    /// The check's name (`watch` for the watches row).
    pub name: String,
    /// `check`, or `watches` (jobs started elsewhere and followed).
    pub kind: String,
    /// Its platform's name (empty for the watches row).
    pub platform: String,
    /// What the badge says: the newest execution's state, or `stuck` (running with a
    /// condition holding), `never` (nothing recorded yet).
    pub status: String,
    /// Since when it has been so: the start of the oldest of the newest executions in a row
    /// with this state (RFC 3339).
    pub status_since: Option<String>,
    /// `false`: every recent execution has this state, so it may be so for longer.
    pub status_since_exact: bool,
    /// The newest execution.
    pub latest: Option<LatestView>,
    /// When the newest success ended (RFC 3339), and which.
    pub last_success_at: Option<String>,
    /// The newest success.
    pub last_success_id: Option<String>,
    /// The cron expression or `every 5m`, if scheduled.
    pub schedule: Option<String>,
    /// The next scheduled run outside maintenance windows (RFC 3339).
    pub next_run_at: Option<String>,
    /// Maintenance windows (`0 2 * * SUN for 2h`).
    pub maintenance: Vec<String>,
    /// Inside a maintenance window now: which, and until when.
    pub in_maintenance: Option<String>,
    /// The newest executions, newest first (at most 30).
    pub recent: Vec<OutcomeLine>,
    /// Succeeded of those that ended (skipped ones aside), 0–1; `None` if none ended.
    pub success_ratio: Option<f64>,
    /// Its firing alerts.
    pub firing: Vec<FiringView>,
}

/// How many rows have each status, and the executions' true totals.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct BoardTotals {
    /// Rows (checks, and the watches row).
    pub checks: usize,
    /// Rows by status.
    pub by_status: BTreeMap<String, usize>,
    /// Rows with a firing alert.
    pub firing: usize,
    /// Executions not yet ended.
    pub active_executions: u64,
    /// Ended executions kept.
    pub history_executions: u64,
}

/// `GET /v1/checks` answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CheckBoard {
    /// The rows that pass the filters, failing ones first, then by name.
    pub checks: Vec<CheckSummary>,
    /// Totals over every row (not only those shown) and every execution.
    pub totals: BoardTotals,
}

/// `GET /v1/checks` (and `/`) filters.
#[derive(Debug, Default, Deserialize, Serialize, utoipa::IntoParams)]
pub struct BoardParams {
    /// Only rows with this status (`failed`, `succeeded`, `running`, `stuck`, `never`, …).
    pub status: Option<String>,
    /// Only checks on this platform.
    pub platform: Option<String>,
    /// Only rows whose name contains this text.
    pub q: Option<String>,
}

fn latest_view(r: &ExecutionReport) -> LatestView {
    LatestView {
        execution_id: r.execution_id.clone(),
        state: r.state.as_str().to_owned(),
        trigger_status: r.trigger_status.as_str().to_owned(),
        origin: r.origin.as_str().to_owned(),
        started_at: r.started_at.clone(),
        ended_at: r.ended_at.clone(),
        duration_seconds: r.elapsed_seconds(crate::time::now_ms()),
        reason: r.reason.clone(),
        conditions: r.conditions.iter().map(ToString::to_string).collect(),
        hosts_failed: r
            .hosts
            .iter()
            .filter(|h| h.outcome != crate::model::HostOutcome::Success)
            .count(),
        hosts_total: r.hosts.len(),
    }
}

/// The state a badge shows for the newest execution.
fn status_of(latest: &ExecutionReport) -> String {
    if !latest.state.is_final() && !latest.conditions.is_empty() {
        "stuck".into()
    } else {
        latest.state.as_str().into()
    }
}

fn schedule_text(s: &crate::schedule::Schedule) -> String {
    match s {
        crate::schedule::Schedule::Cron { text, .. } => text.clone(),
        crate::schedule::Schedule::Every(d) => format!("every {}", humantime::format_duration(*d)),
    }
}

/// One row: `check` (`None`: the watches row), read from the store.
async fn summary(
    state: &AppState,
    name: &str,
    check: Option<&crate::config::CheckConfig>,
    firing: &[&Alert],
    silences: &Silences,
    now: i64,
) -> Result<CheckSummary, ApiError> {
    let store = state.runner.store();
    let recent = store.outcomes(name, RECENT).await?;
    let latest = match recent.first() {
        Some(line) => store.get(&line.execution_id).await?,
        None => None,
    };
    let status = latest
        .as_ref()
        .map_or_else(|| "never".to_owned(), status_of);
    let streak = recent
        .iter()
        .take_while(|l| recent.first().is_some_and(|f| f.state == l.state))
        .count();
    let status_since = recent
        .get(streak.saturating_sub(1))
        .filter(|_| streak > 0)
        .map(|l| crate::time::rfc3339_ms(l.created_at_ms));
    let status_since_exact = streak < recent.len() || recent.len() < RECENT as usize;
    let last_success = match recent.iter().find(|l| l.state == "succeeded") {
        Some(l) => Some(l.clone()),
        None => store.last_in_state(name, "succeeded").await?,
    };
    let ended: Vec<&OutcomeLine> = recent
        .iter()
        .filter(|l| !matches!(l.state.as_str(), "pending" | "running" | "skipped"))
        .collect();
    let success_ratio = (!ended.is_empty()).then(|| {
        ended.iter().filter(|l| l.state == "succeeded").count() as f64 / ended.len() as f64
    });
    let schedule = check.and_then(|c| c.schedule.as_ref());
    let maintenance = check.map_or(&[][..], |c| &c.maintenance[..]);
    let next_run_at = schedule.and_then(|s| {
        let mut after = now;
        for _ in 0..1000 {
            let tick = s.next_after(after)?;
            if maintenance.iter().all(|m| m.window_at(tick).is_none()) {
                return Some(crate::time::rfc3339_ms(tick));
            }
            after = tick;
        }
        None
    });
    let in_maintenance = maintenance.iter().find_map(|m| {
        m.window_at(now).map(|(_, closes)| {
            format!(
                "{} — until {}",
                m.describe(),
                crate::time::rfc3339_ms(closes)
            )
        })
    });
    Ok(CheckSummary {
        name: name.to_owned(),
        kind: if check.is_some() { "check" } else { "watches" }.into(),
        platform: check.map(|c| c.platform.clone()).unwrap_or_default(),
        status,
        status_since,
        status_since_exact,
        latest: latest.as_ref().map(latest_view),
        last_success_at: last_success
            .as_ref()
            .map(|l| crate::time::rfc3339_ms(l.updated_at_ms)),
        last_success_id: last_success.map(|l| l.execution_id),
        schedule: schedule.map(schedule_text),
        next_run_at,
        maintenance: maintenance.iter().map(|m| m.describe()).collect(),
        in_maintenance,
        recent,
        success_ratio,
        firing: firing
            .iter()
            .filter(|a| a.labels.get("check").map(String::as_str) == Some(name))
            .map(|a| FiringView {
                fingerprint: a.fingerprint.clone(),
                alertname: a.labels.get("alertname").cloned().unwrap_or_default(),
                severity: a.labels.get("severity").cloned().unwrap_or_default(),
                since: crate::time::rfc3339_ms(a.starts_at_ms),
                execution_id: a.cause.execution_id.clone(),
                summary: a.cause.summary.clone(),
                silenced_by: silences.covering(&a.labels, now).map(|s| s.id.clone()),
            })
            .collect(),
    })
}

/// How bad a status is, for the order of the rows (worst first).
fn severity(status: &str) -> u8 {
    match status {
        "failed" | "timed_out" | "lost" | "trigger_failed" => 0,
        "stuck" => 1,
        "running" | "pending" => 2,
        "cancelled" | "skipped" => 3,
        "never" => 4,
        _ => 5,
    }
}

/// Every row, filtered by `params`, with true totals.
pub async fn board(state: &AppState, params: &BoardParams) -> Result<CheckBoard, ApiError> {
    let now = crate::time::now_ms();
    let alerts = state.runner.store().list_alerts().await?;
    let firing: Vec<&Alert> = alerts
        .iter()
        .filter(|a| a.status == AlertStatus::Firing)
        .collect();
    let silences = Silences(state.runner.store().current_silences(now).await?);
    let config = state.runner.config();
    let mut rows = Vec::with_capacity(config.checks.len() + 1);
    for check in &config.checks {
        rows.push(summary(state, &check.name, Some(check), &firing, &silences, now).await?);
    }
    if config.check(WATCH).is_none() {
        let watches = summary(state, WATCH, None, &firing, &silences, now).await?;
        if !watches.recent.is_empty() {
            rows.push(watches);
        }
    }
    let counts = state.runner.store().active_and_history(1, None).await?;
    let mut totals = BoardTotals {
        checks: rows.len(),
        active_executions: counts.active_total,
        history_executions: counts.history_total,
        ..BoardTotals::default()
    };
    for r in &rows {
        *totals.by_status.entry(r.status.clone()).or_default() += 1;
        totals.firing += usize::from(!r.firing.is_empty());
    }
    let q = params.q.as_deref().map(str::to_lowercase);
    rows.retain(|r| {
        params
            .status
            .as_deref()
            .is_none_or(|s| s.is_empty() || r.status == s)
            && params
                .platform
                .as_deref()
                .is_none_or(|p| p.is_empty() || r.platform == p)
            && q.as_deref()
                .is_none_or(|q| r.name.to_lowercase().contains(q))
    });
    rows.sort_by(|a, b| {
        (a.firing.is_empty(), severity(&a.status), &a.name).cmp(&(
            b.firing.is_empty(),
            severity(&b.status),
            &b.name,
        ))
    });
    Ok(CheckBoard {
        checks: rows,
        totals,
    })
}

/// The check board as data: per check (and watches) where it stands, since when, recent
/// outcomes, success ratio, next run, firing alerts; totals over every row.
#[utoipa::path(get, path = "/v1/checks", params(BoardParams), responses(
    (status = 200, body = CheckBoard), (status = 400, body = ErrorBody)))]
pub async fn list_checks(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<BoardParams>,
) -> Result<axum::Json<CheckBoard>, ApiError> {
    Ok(axum::Json(board(&state, &params).await?))
}
