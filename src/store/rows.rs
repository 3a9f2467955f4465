//! What both stores write and read the same way: an execution row's projections, decoding a
//! stored document, the alert a notification says at send time.

use super::StoreError;
use crate::alert::{Alert, AlertStatus};
use crate::model::silence::Silence;
use crate::tracker::ExecutionReport;

pub(crate) fn decode(id: &str, doc: &str) -> Result<ExecutionReport, StoreError> {
    let mut report: ExecutionReport =
        serde_json::from_str(doc).map_err(|e| StoreError::Corrupt {
            id: id.to_owned(),
            error: e.to_string(),
        })?;
    // serde grows lists by doubling from 4: a one-host execution decoded with room for four
    // hosts (about 1 KiB more) would keep that room for as long as it is followed.
    report.hosts.shrink_to_fit();
    report.conditions.shrink_to_fit();
    report.condition_log.shrink_to_fit();
    Ok(report)
}

/// An execution row, ready to write: the document and its indexed projections (made by the
/// caller, so that a queued write holds no copy of the report).
pub(crate) struct ExecutionRow {
    pub(crate) id: String,
    pub(crate) check: String,
    pub(crate) platform: String,
    pub(crate) origin: &'static str,
    pub(crate) scheduled_at: Option<i64>,
    pub(crate) trigger_status: &'static str,
    pub(crate) state: &'static str,
    pub(crate) active: bool,
    pub(crate) job_instance_id: Option<i64>,
    pub(crate) created_at: i64,
    pub(crate) doc: String,
    pub(crate) next_poll_at: Option<i64>,
    /// Ended while its logs were being fetched.
    pub(crate) logs_pending: bool,
    /// The lease it is written under (checked by the PostgreSQL store).
    pub(crate) fence: Option<crate::model::shard::Fence>,
}

impl ExecutionRow {
    pub(crate) fn of(r: &ExecutionReport) -> Result<Self, StoreError> {
        Ok(ExecutionRow {
            doc: to_json(&r.execution_id, r)?,
            id: r.execution_id.clone(),
            check: r.check.clone(),
            platform: r.platform.clone(),
            origin: r.origin.as_str(),
            scheduled_at: r.scheduled_at_ms,
            trigger_status: r.trigger_status.as_str(),
            state: r.state.as_str(),
            active: !r.state.is_final(),
            job_instance_id: r.job_instance_id.map(|id| id as i64),
            created_at: r.started_at_ms,
            next_poll_at: r.next_poll_at_ms.filter(|_| !r.state.is_final()),
            logs_pending: r.logs_pending,
            fence: r.fence,
        })
    }
}

pub(crate) fn to_json(id: &str, value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt {
        id: id.to_owned(),
        error: e.to_string(),
    })
}

/// The alert a notification says, rendered at send time: the alert as it is now (its latest
/// cause), with the notification's own status; the snapshot taken when it was queued when
/// the alert has moved on to another episode since (a resolved notification of an alert
/// firing again).
pub(crate) fn alert_to_send(status: AlertStatus, snapshot: Alert, current: Option<Alert>) -> Alert {
    match current {
        Some(now) if now.status == status => now,
        Some(mut now) if status == AlertStatus::Firing => {
            now.status = AlertStatus::Firing;
            now.ends_at_ms = None;
            now.resolution = None;
            now
        }
        _ => snapshot,
    }
}

/// Alerts read back from `(fingerprint, doc)` rows.
pub(crate) fn decode_alerts(rows: Vec<(String, String)>) -> Result<Vec<Alert>, StoreError> {
    rows.into_iter()
        .map(|(fp, d)| {
            serde_json::from_str(&d).map_err(|e| StoreError::Corrupt {
                id: format!("alert {fp}"),
                error: e.to_string(),
            })
        })
        .collect()
}

/// A stored alert to consider repeating to `receiver`: the alert (its `doc` readable), the
/// route target of that receiver, and how often it repeats ([`Resend::every`]); `None` when
/// the document is unreadable, the alert is not routed to the receiver or is not repeated.
pub(crate) fn repeat_candidate(
    doc: &str,
    receiver: &str,
    resend: &crate::model::outbox::Resend,
) -> Option<(Alert, crate::alert::Target, i64)> {
    let alert = serde_json::from_str::<Alert>(doc).ok()?;
    let target = alert
        .targets
        .iter()
        .find(|t| t.receiver == receiver)?
        .clone();
    let every = resend.every(&alert, &target)?;
    Some((alert, target, every))
}

/// Silences from their stored documents (`id`, `doc`).
pub(crate) fn decode_silences(rows: Vec<(String, String)>) -> Result<Vec<Silence>, StoreError> {
    rows.into_iter()
        .map(|(id, doc)| {
            serde_json::from_str(&doc).map_err(|e| StoreError::Corrupt {
                id: format!("silence {id}"),
                error: e.to_string(),
            })
        })
        .collect()
}

/// Ends `silence` at `now_ms` by `by` (a pending one never starts); `false`: it had ended.
pub(crate) fn expire(silence: &mut Silence, by: &str, now_ms: i64) -> bool {
    if silence.ends_at_ms <= now_ms {
        return false;
    }
    silence.ends_at_ms = now_ms;
    silence.starts_at_ms = silence.starts_at_ms.min(now_ms);
    silence.updated_at_ms = now_ms;
    silence.expired_by = Some(by.to_owned());
    true
}
