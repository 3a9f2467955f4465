//! The operator's console: HTML pages rendered from the templates in `templates/` with the
//! same facts the JSON API gives. `/` the check board; `/executions` active and history
//! (true totals, paged, of one check with `?check=`); `/executions/{id}` one execution;
//! `/executions/{id}/hosts/{host}` one host's log; `/silences`; `/alerts`. Every page needs
//! the `read` role (a login prompt otherwise); the buttons that change something show for
//! `admin` only (the API checks again).

use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::State;
use axum::response::Html;
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::checks::{BoardParams, RECENT, board};
use super::view::{Frame, page};
use super::*;
use crate::config::Role;
use crate::model::silence::Silences;
use crate::tracker::report::HostReport;

/// Rows per table of the executions page.
const PAGE_ROWS: u32 = 100;
/// Hosts whose logs the execution page shows inline (the failing ones first).
const INLINE_LOGS: usize = 10;

fn frame<'a>(state: &AppState, nav: &'static str, caller: &'a Caller) -> Frame<'a> {
    Frame::new(Some(nav), Some(caller), state.runner.accepting())
}

/// `GET /`: the check board.
pub async fn board_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(params): ApiQuery<BoardParams>,
) -> Result<Html<String>, ApiError> {
    let board = board(&state, &params).await?;
    let platforms: Vec<&String> = state.runner.config().platforms.keys().collect();
    page(
        "board.html",
        &frame(&state, "checks", &caller),
        minijinja::context! { board, params, platforms },
    )
}

/// `GET /executions` query.
#[derive(Debug, Deserialize)]
pub struct ExecutionsQuery {
    /// Only this check.
    pub check: Option<String>,
    /// History older than this execution id (the "older" link).
    pub before: Option<String>,
}

/// A row of the executions page.
#[derive(Debug, Serialize)]
struct Row {
    execution_id: String,
    check: String,
    origin: &'static str,
    state: &'static str,
    trigger_status: &'static str,
    job: String,
    started_at: String,
    duration_seconds: f64,
    conditions: Vec<String>,
    reason: String,
}

impl From<&ExecutionReport> for Row {
    fn from(r: &ExecutionReport) -> Self {
        Row {
            execution_id: r.execution_id.clone(),
            check: r.check.clone(),
            origin: r.origin.as_str(),
            state: r.state.as_str(),
            trigger_status: r.trigger_status.as_str(),
            job: r.job_text(),
            started_at: r.started_at.clone(),
            duration_seconds: r.elapsed_seconds(crate::time::now_ms()),
            conditions: r.conditions.iter().map(ToString::to_string).collect(),
            reason: r.reason.clone(),
        }
    }
}

/// `GET /executions`: active, then history, newest first, with true totals; history in pages
/// (`?before=`); of one check with `?check=`.
pub async fn executions_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<ExecutionsQuery>,
) -> Result<Html<String>, ApiError> {
    extract::page_position("before", q.before.as_deref())?;
    let store = state.runner.store();
    let check = q.check.filter(|c| !c.is_empty());
    let (active, history, active_total, history_total) = match &check {
        None => {
            let b = store
                .active_and_history(PAGE_ROWS, q.before.as_deref())
                .await?;
            (b.active, b.history, b.active_total, b.history_total)
        }
        Some(c) => {
            let list = |which, cursor: Option<String>| ListQuery {
                which,
                check: Some(c.clone()),
                limit: PAGE_ROWS,
                cursor,
            };
            let active = store.list(&list(Which::Active, None)).await?;
            let history = store.list(&list(Which::History, q.before.clone())).await?;
            let active_total = store.count(Some(c), Which::Active).await?;
            let history_total = store.count(Some(c), Which::History).await?;
            (active, history, active_total, history_total)
        }
    };
    let older = (history.len() >= PAGE_ROWS as usize)
        .then(|| history.last().map(|r| r.execution_id.clone()))
        .flatten();
    let active: Vec<Row> = active.iter().map(Row::from).collect();
    let history: Vec<Row> = history.iter().map(Row::from).collect();
    page(
        "executions.html",
        &frame(&state, "executions", &caller),
        minijinja::context! {
            check, active, history, active_total, history_total, older,
            paged => q.before.is_some(),
        },
    )
}

/// A host row of the execution page.
#[derive(Debug, Serialize)]
struct HostRow<'a> {
    #[serde(flatten)]
    host: &'a HostReport,
    /// Failing first: 0 not succeeded and ended, 1 still going, 2 succeeded.
    rank: u8,
    /// The badge's class.
    badge: &'static str,
    log_page: String,
    log_raw: String,
    download_name: String,
}

fn host_badge(h: &HostReport) -> &'static str {
    use crate::model::HostOutcome as O;
    match h.outcome {
        O::Success => "succeeded",
        O::Running | O::Waiting => "running",
        O::Unknown => "unknown",
        O::Terminated => "cancelled",
        O::Timeout => "timed_out",
        O::Failed | O::AgentError => "failed",
    }
}

fn host_rank(h: &HostReport) -> u8 {
    match host_badge(h) {
        "succeeded" => 2,
        "running" => 1,
        _ => 0,
    }
}

/// `text` as one percent-encoded URL path segment (a host `0:10.0.0.1 #101`, a silence id).
pub fn path_segment(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

fn host_row<'a>(e: &ExecutionReport, h: &'a HostReport) -> HostRow<'a> {
    let host = path_segment(&h.host);
    HostRow {
        host: h,
        rank: host_rank(h),
        badge: host_badge(h),
        log_page: format!("/executions/{}/hosts/{host}", e.execution_id),
        log_raw: format!("/v1/executions/{}/hosts/{host}/log", e.execution_id),
        download_name: format!(
            "{}-{}-{}.log",
            e.check,
            h.host.replace([':', '/', ' ', '#'], "_"),
            &e.execution_id[..e.execution_id.len().min(8)]
        ),
    }
}

/// One point of the execution's timeline.
#[derive(Debug, Serialize)]
struct Point {
    at: String,
    what: String,
    detail: String,
    class: &'static str,
}

fn timeline(e: &ExecutionReport) -> Vec<Point> {
    let mut points = vec![(
        e.started_at_ms,
        Point {
            at: e.started_at.clone(),
            what: format!("recorded ({})", e.origin.as_str()),
            detail: match (&e.trigger_message, e.trigger_code) {
                (Some(m), Some(c)) => format!("trigger {} · {c} {m}", e.trigger_status.as_str()),
                (Some(m), None) => format!("trigger {} · {m}", e.trigger_status.as_str()),
                _ => format!("trigger {}", e.trigger_status.as_str()),
            },
            class: if e.trigger_status == crate::model::TriggerStatus::TriggerFailed {
                "bad"
            } else {
                ""
            },
        },
    )];
    for c in &e.condition_log {
        let hosts = if c.condition.hosts.is_empty() {
            String::new()
        } else {
            format!(" ({})", c.condition.hosts.join(", "))
        };
        points.push((
            c.condition.since_ms,
            Point {
                at: crate::time::rfc3339_ms(c.condition.since_ms),
                what: format!("{} began", c.condition.kind.as_str()),
                detail: format!("{}{hosts}", c.condition.detail),
                class: "bad",
            },
        ));
        if let Some(cleared) = c.cleared_ms {
            points.push((
                cleared,
                Point {
                    at: crate::time::rfc3339_ms(cleared),
                    what: format!("{} cleared", c.condition.kind.as_str()),
                    detail: String::new(),
                    class: "good",
                },
            ));
        }
    }
    if e.state.is_final()
        && let Some(ended) = crate::time::parse_rfc3339_ms(&e.ended_at)
    {
        points.push((
            ended,
            Point {
                at: e.ended_at.clone(),
                what: format!("ended {}", e.state.as_str()),
                detail: e.reason.clone(),
                class: if e.state == crate::model::ExecutionState::Succeeded {
                    "good"
                } else {
                    "bad"
                },
            },
        ));
    }
    points.sort_by_key(|(at, _)| *at);
    points.into_iter().map(|(_, p)| p).collect()
}

/// An alert on the execution page, with its notifications.
#[derive(Debug, Serialize)]
struct AlertRow {
    fingerprint: String,
    alertname: String,
    labels: String,
    status: &'static str,
    summary: String,
    since: String,
    silenced_by: Option<String>,
    notifications: Vec<crate::notify::Notification>,
}

/// The URL of `e`'s job in its platform's own UI (`[api.job_links]`), if configured.
fn job_link(state: &AppState, e: &ExecutionReport) -> Option<String> {
    let template = state.runner.config().api.job_links.get(&e.platform)?;
    if template.contains("{job_instance_id}") && e.job_instance_id.is_none()
        || template.contains("{jid}") && e.jid.is_none()
    {
        return None;
    }
    let scope_id = match state.runner.config().platforms.get(&e.platform) {
        Some(crate::config::PlatformConfig::BkJob(b)) => b.scope_id.clone(),
        _ => String::new(),
    };
    Some(
        template
            .replace(
                "{job_instance_id}",
                &e.job_instance_id.map(|i| i.to_string()).unwrap_or_default(),
            )
            .replace("{jid}", &path_segment(e.jid.as_deref().unwrap_or("")))
            .replace("{scope_id}", &path_segment(&scope_id)),
    )
}

/// `GET /executions/{id}`: one execution.
pub async fn execution_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Html<String>, ApiError> {
    let e = executions::load(&state, &id).await?;
    let mut hosts: Vec<HostRow<'_>> = e.hosts.iter().map(|h| host_row(&e, h)).collect();
    hosts.sort_by(|a, b| (a.rank, &a.host.host).cmp(&(b.rank, &b.host.host)));
    let failing = hosts.iter().filter(|h| h.rank < 2).count();
    let inline_logs: Vec<&HostRow<'_>> = hosts
        .iter()
        .filter(|h| h.rank == 0 && !h.host.log.is_empty())
        .take(INLINE_LOGS)
        .collect();
    let store = state.runner.store();
    let now = crate::time::now_ms();
    let silences = Silences(store.current_silences(now).await?);
    let mut alerts = Vec::new();
    for a in store
        .list_alerts()
        .await?
        .into_iter()
        .filter(|a| a.cause.execution_id == e.execution_id)
    {
        alerts.push(AlertRow {
            notifications: store.notifications_of(&a.fingerprint, 20).await?,
            silenced_by: (a.status == crate::alert::AlertStatus::Firing)
                .then(|| silences.covering(&a.labels, now).map(|s| s.id.clone()))
                .flatten(),
            alertname: a.labels.get("alertname").cloned().unwrap_or_default(),
            labels: a
                .labels
                .iter()
                .filter(|(k, _)| k.as_str() != "alertname")
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
            status: a.status.as_str(),
            summary: a.cause.summary.clone(),
            since: crate::time::rfc3339_ms(a.starts_at_ms),
            fingerprint: a.fingerprint,
        });
    }
    let history = store.outcomes(&e.check, RECENT).await?;
    let active = !e.state.is_final();
    page(
        "execution.html",
        &frame(&state, "executions", &caller),
        minijinja::context! {
            job => e.job_text(),
            job_link => job_link(&state, &e),
            timeline => timeline(&e),
            can_admin => caller.role >= Role::Admin,
            e, hosts, failing, inline_logs, alerts, history, active,
        },
    )
}

/// `GET /executions/{id}/hosts/{host}`: one host's log, with search and download.
pub async fn log_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath((id, host)): ApiPath<(String, String)>,
) -> Result<Html<String>, ApiError> {
    let e = executions::load(&state, &id).await?;
    let Some(h) = executions::find_host(&e, &host) else {
        return Err(ApiError::not_found(format!(
            "execution `{}` has no host `{}`",
            clip(&id),
            clip(&host)
        )));
    };
    let row = host_row(&e, h);
    page(
        "log.html",
        &frame(&state, "executions", &caller),
        minijinja::context! {
            badge => row.badge,
            raw => row.log_raw.clone(),
            download_name => row.download_name.clone(),
            host => h,
            e,
        },
    )
}

/// `GET /silences` query: labels to prefill the new silence's matchers with.
pub type PrefillQuery = BTreeMap<String, String>;

/// `GET /silences`: every silence, and (admin) a form for a new one.
pub async fn silences_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(prefill): ApiQuery<PrefillQuery>,
) -> Result<Html<String>, ApiError> {
    let silences = silences::silence_views(&state, None).await?;
    let prefill: String = prefill
        .iter()
        .filter(|(k, v)| !v.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .map(|(k, v)| format!("{k}=\"{}\"\n", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    page(
        "silences.html",
        &frame(&state, "silences", &caller),
        minijinja::context! {
            can_admin => caller.role >= Role::Admin,
            caller => &caller,
            silences, prefill,
        },
    )
}

/// A firing alert on the alerts page.
#[derive(Debug, Serialize)]
struct FiringRow {
    fingerprint: String,
    alertname: String,
    check: String,
    severity: String,
    since: String,
    execution_id: String,
    summary: String,
    silenced_by: Option<String>,
}

/// A notification on the alerts page.
#[derive(Debug, Serialize)]
struct NotificationRow {
    #[serde(flatten)]
    notification: crate::notify::Notification,
    alertname: String,
    check: String,
}

/// `GET /alerts`: firing alerts (and the silences covering them), then the notification log.
pub async fn alerts_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Html<String>, ApiError> {
    let store = state.runner.store();
    let now = crate::time::now_ms();
    let silences = Silences(store.current_silences(now).await?);
    let label = |a: &crate::alert::Alert, k: &str| a.labels.get(k).cloned().unwrap_or_default();
    let firing: Vec<FiringRow> = store
        .list_alerts()
        .await?
        .iter()
        .filter(|a| a.status == crate::alert::AlertStatus::Firing)
        .map(|a| FiringRow {
            fingerprint: a.fingerprint.clone(),
            alertname: label(a, "alertname"),
            check: label(a, "check"),
            severity: label(a, "severity"),
            since: crate::time::rfc3339_ms(a.starts_at_ms),
            execution_id: a.cause.execution_id.clone(),
            summary: a.cause.summary.clone(),
            silenced_by: silences.covering(&a.labels, now).map(|s| s.id.clone()),
        })
        .collect();
    let notifications: Vec<NotificationRow> = store
        .list_notifications(None, 100)
        .await?
        .into_iter()
        .map(|n| NotificationRow {
            alertname: label(&n.alert, "alertname"),
            check: label(&n.alert, "check"),
            notification: n,
        })
        .collect();
    page(
        "alerts.html",
        &frame(&state, "alerts", &caller),
        minijinja::context! {
            can_admin => caller.role >= Role::Admin,
            firing, notifications,
        },
    )
}
