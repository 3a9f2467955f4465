//! The alerts and notifications tables: loading and saving an alert, queueing a
//! notification (group timers, order per alert, dropping what became moot), reading one back
//! as it is sent.

use sqlx::{Row, SqliteConnection};

use super::*;
use crate::model::outbox::{QueuePlan, Waiting, queue_plan};
use crate::store::rows::{alert_to_send, to_json};

/// The stored alert, or `None` (also when its row cannot be read: it is then rewritten from
/// the change, rather than blocking the execution's state change).
pub(super) async fn load_alert(
    conn: &mut SqliteConnection,
    fingerprint: &str,
) -> Result<Option<Alert>, StoreError> {
    let doc: Option<String> = sqlx::query_scalar("SELECT doc FROM alerts WHERE fingerprint = ?")
        .bind(fingerprint)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(doc.and_then(|d| match serde_json::from_str(&d) {
        Ok(a) => Some(a),
        Err(e) => {
            tracing::warn!(%fingerprint, error = %e, "Stored alert is unreadable; it is rewritten.");
            None
        }
    }))
}

pub(super) async fn save_alert(conn: &mut SqliteConnection, a: &Alert) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO alerts (fingerprint, status, ends_at, updated_at, doc) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (fingerprint) DO UPDATE SET status = excluded.status, ends_at = excluded.ends_at,
         updated_at = excluded.updated_at, doc = excluded.doc",
    )
    .bind(&a.fingerprint)
    .bind(a.status.as_str())
    .bind(a.ends_at_ms)
    .bind(a.updated_at_ms)
    .bind(to_json(&a.fingerprint, a)?)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// When a new notification of group `t.group_key` is due: with the group's waiting ones;
/// else `group_interval` after the group's last delivery; else after `group_wait` (a new
/// group), as in Alertmanager.
pub(super) async fn group_due(
    conn: &mut SqliteConnection,
    receiver: &str,
    t: &Target,
    now: i64,
) -> Result<i64, StoreError> {
    let waiting: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(due_at) FROM notifications WHERE receiver = ? AND group_key = ? AND outcome IN ('pending', 'errored')",
    )
    .bind(receiver)
    .bind(&t.group_key)
    .fetch_one(&mut *conn)
    .await?;
    if let Some(due) = waiting {
        return Ok(due);
    }
    let last: Option<i64> = sqlx::query_scalar(
        "SELECT MAX(delivered_at) FROM notifications WHERE receiver = ? AND group_key = ? AND outcome = 'delivered'",
    )
    .bind(receiver)
    .bind(&t.group_key)
    .fetch_one(&mut *conn)
    .await?;
    Ok(match last {
        Some(l) if l + t.group_interval_ms > now => l + t.group_interval_ms,
        _ => now + t.group_wait_ms,
    })
}

/// Queues a notification of `alert` to `t.receiver` by the queueing rule
/// ([`queue_plan`]). Returns whether one was queued or updated.
pub(super) async fn enqueue(
    conn: &mut SqliteConnection,
    alert: &Alert,
    t: &Target,
    kind: &str,
    due_now: bool,
    now: i64,
) -> Result<bool, StoreError> {
    let waiting = sqlx::query(
        "SELECT id, status, attempts, due_at FROM notifications
         WHERE receiver = ? AND fingerprint = ? AND outcome IN ('pending', 'errored', 'silenced')
         ORDER BY id DESC LIMIT 1",
    )
    .bind(&t.receiver)
    .bind(&alert.fingerprint)
    .fetch_optional(&mut *conn)
    .await?
    .map(|w| Waiting {
        id: w.get("id"),
        status: AlertStatus::from_name(w.get::<&str, _>("status")).unwrap_or(AlertStatus::Firing),
        attempts: u32::try_from(w.get::<i64, _>("attempts")).unwrap_or(u32::MAX),
        due_at_ms: w.get("due_at"),
    });
    let mut plan = queue_plan(alert.status, t.send_resolved, waiting, now);
    if let QueuePlan::DropUnlessSeen(id) = plan {
        // A firing never sent: did the receiver get this episode's firing before?
        let seen: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM notifications WHERE receiver = ? AND fingerprint = ? AND outcome = 'delivered'
               AND status = 'firing' AND created_at >= ? LIMIT 1",
        )
        .bind(&t.receiver)
        .bind(&alert.fingerprint)
        .bind(alert.starts_at_ms)
        .fetch_optional(&mut *conn)
        .await?;
        if seen.is_none() {
            sqlx::query(
                "UPDATE notifications SET outcome = 'dropped', version = version + 1,
                 last_error = 'resolved before it was first sent: nothing to send' WHERE id = ?",
            )
            .bind(id)
            .execute(&mut *conn)
            .await?;
            return Ok(true);
        }
        plan = QueuePlan::Update(id);
    }
    let doc = to_json(&alert.fingerprint, alert)?;
    let not_before = match plan {
        QueuePlan::Skip => return Ok(false),
        QueuePlan::Update(id) | QueuePlan::DropUnlessSeen(id) => {
            sqlx::query(
                "UPDATE notifications SET status = ?, alert = ?, version = version + 1 WHERE id = ?",
            )
            .bind(alert.status.as_str())
            .bind(&doc)
            .bind(id)
            .execute(&mut *conn)
            .await?;
            return Ok(true);
        }
        QueuePlan::Insert { not_before } => not_before,
    };
    let mut due = group_due(conn, &t.receiver, t, now).await?;
    if due_now {
        due = due.min(now);
    }
    if let Some(after) = not_before {
        due = due.max(after);
    }
    sqlx::query(
        "INSERT INTO notifications (receiver, group_key, fingerprint, status, kind, alert, created_at, due_at, outcome)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending')",
    )
    .bind(&t.receiver)
    .bind(&t.group_key)
    .bind(&alert.fingerprint)
    .bind(alert.status.as_str())
    .bind(kind)
    .bind(&doc)
    .bind(now)
    .bind(due)
    .execute(&mut *conn)
    .await?;
    Ok(true)
}

pub(super) fn row_to_notification(
    row: &sqlx::sqlite::SqliteRow,
) -> Result<Notification, StoreError> {
    let id: i64 = row.get("id");
    let mut alert: Alert =
        serde_json::from_str(row.get::<&str, _>("alert")).map_err(|e| StoreError::Corrupt {
            id: format!("notification {id}"),
            error: e.to_string(),
        })?;
    let status = AlertStatus::from_name(row.get::<&str, _>("status")).unwrap_or(alert.status);
    // Rows read for sending carry the alert as it is now (`current`).
    if let Ok(Some(current)) = row.try_get::<Option<&str>, _>("current") {
        let current = serde_json::from_str::<Alert>(current).ok();
        alert = alert_to_send(status, alert, current);
    }
    Ok(Notification {
        id,
        version: row.get("version"),
        receiver: row.get("receiver"),
        group_key: row.get("group_key"),
        fingerprint: row.get("fingerprint"),
        status,
        kind: row.get("kind"),
        alert,
        created_at_ms: row.get("created_at"),
        due_at_ms: row.get("due_at"),
        attempts: u32::try_from(row.get::<i64, _>("attempts")).unwrap_or(0),
        outcome: OutboxState::from_name(row.get::<&str, _>("outcome"))
            .unwrap_or(OutboxState::Pending),
        last_error: row.get("last_error"),
        last_attempt_at_ms: row.get("last_attempt_at"),
        delivered_at_ms: row.get("delivered_at"),
        silenced_by: row.try_get("silenced_by").unwrap_or(None),
    })
}
