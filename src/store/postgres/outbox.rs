//! The alerts and notifications tables on PostgreSQL: the same rules as on SQLite (see
//! `store/sqlite/outbox.rs`), and claims, so that one replica at a time sends a notification.

use sqlx::postgres::{PgPool, PgRow};
use sqlx::{PgConnection, Row};

use super::CLAIM;
use crate::alert::{Alert, AlertStatus, Target};
use crate::model::outbox::{Notification, OutboxState, Resend};
use crate::model::outbox::{QueuePlan, Waiting, queue_plan};
use crate::store::rows::{alert_to_send, repeat_candidate, to_json};
use crate::store::{Finish, StoreError};

/// The stored alert, or `None` (also when its row cannot be read: it is then rewritten from
/// the change, rather than blocking the execution's state change).
pub(super) async fn load_alert(
    conn: &mut PgConnection,
    fingerprint: &str,
) -> Result<Option<Alert>, StoreError> {
    let doc: Option<String> = sqlx::query_scalar("SELECT doc FROM alerts WHERE fingerprint = $1")
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

pub(super) async fn save_alert(conn: &mut PgConnection, a: &Alert) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO alerts (fingerprint, status, ends_at, updated_at, doc) VALUES ($1, $2, $3, $4, $5)
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
    conn: &mut PgConnection,
    receiver: &str,
    t: &Target,
    now: i64,
) -> Result<i64, StoreError> {
    let waiting: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(due_at) FROM notifications WHERE receiver = $1 AND group_key = $2 AND outcome IN ('pending', 'errored')",
    )
    .bind(receiver)
    .bind(&t.group_key)
    .fetch_one(&mut *conn)
    .await?;
    if let Some(due) = waiting {
        return Ok(due);
    }
    let last: Option<i64> = sqlx::query_scalar(
        "SELECT MAX(delivered_at) FROM notifications WHERE receiver = $1 AND group_key = $2 AND outcome = 'delivered'",
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
    conn: &mut PgConnection,
    alert: &Alert,
    t: &Target,
    kind: &str,
    due_now: bool,
    now: i64,
) -> Result<bool, StoreError> {
    let waiting = sqlx::query(
        "SELECT id, status, attempts, due_at FROM notifications
         WHERE receiver = $1 AND fingerprint = $2 AND outcome IN ('pending', 'errored', 'silenced')
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
            "SELECT 1::BIGINT FROM notifications WHERE receiver = $1 AND fingerprint = $2 AND outcome = 'delivered'
               AND status = 'firing' AND created_at >= $3 LIMIT 1",
        )
        .bind(&t.receiver)
        .bind(&alert.fingerprint)
        .bind(alert.starts_at_ms)
        .fetch_optional(&mut *conn)
        .await?;
        if seen.is_none() {
            sqlx::query(
                "UPDATE notifications SET outcome = 'dropped', version = version + 1,
                 last_error = 'resolved before it was first sent: nothing to send' WHERE id = $1",
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
                "UPDATE notifications SET status = $1, alert = $2, version = version + 1 WHERE id = $3",
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
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending')",
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

pub(super) fn row_to_notification(row: &PgRow) -> Result<Notification, StoreError> {
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

/// Claims up to `limit` notifications of `receiver` due at `now_ms` for `replica` (none that
/// another replica is sending, none behind an earlier waiting one of the same alert), oldest
/// first, each with the alert as it is now.
pub(super) async fn claim_due(
    pool: &PgPool,
    replica: &str,
    receiver: &str,
    now_ms: i64,
    limit: u32,
) -> Result<Vec<Notification>, StoreError> {
    let sql = format!(
        "WITH due AS (
             SELECT n.id FROM notifications n
             WHERE n.receiver = $1 AND n.outcome IN ('pending', 'errored', 'silenced') AND n.due_at <= $2
               AND (n.claim_until IS NULL OR n.claim_until < now() OR n.claimed_by = $4)
               AND NOT EXISTS (SELECT 1 FROM notifications o WHERE o.receiver = $1 AND o.fingerprint = n.fingerprint
                               AND o.outcome IN ('pending', 'errored', 'silenced') AND o.id < n.id)
             ORDER BY n.due_at, n.id LIMIT $3 FOR UPDATE OF n SKIP LOCKED)
         UPDATE notifications n SET claimed_by = $4, claim_until = now() + interval '{CLAIM}'
         FROM due WHERE n.id = due.id
         RETURNING n.*, (SELECT a.doc FROM alerts a WHERE a.fingerprint = n.fingerprint) AS current"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(receiver)
        .bind(now_ms)
        .bind(i64::from(limit))
        .bind(replica)
        .fetch_all(pool)
        .await?;
    let mut due: Vec<Notification> = rows
        .iter()
        .map(row_to_notification)
        .collect::<Result<_, _>>()?;
    due.sort_by_key(|n| (n.due_at_ms, n.id));
    Ok(due)
}

/// Stores how an attempt ended and lets the claim go (see `Store::finish_notifications`).
pub(super) async fn finish(
    pool: &PgPool,
    notifications: &[(i64, i64)],
    finish: &Finish,
    now_ms: i64,
) -> Result<(), StoreError> {
    // $1 now, $2 ids, $3 versions, $4 due_at, $5 error (or the silence).
    let (set, due_at, error) = match finish {
        Finish::Delivered => (
            "outcome = 'delivered', delivered_at = $1, last_error = NULL, attempts = attempts + 1, last_attempt_at = $1",
            None,
            None,
        ),
        Finish::Errored { due_at_ms, error } => (
            "outcome = 'errored', due_at = $4, last_error = $5, attempts = attempts + 1, last_attempt_at = $1",
            Some(*due_at_ms),
            Some(error.as_str()),
        ),
        Finish::Rejected { error } => (
            "outcome = 'rejected', last_error = $5, attempts = attempts + 1, last_attempt_at = $1",
            None,
            Some(error.as_str()),
        ),
        // Not an attempt: the attempts and last error stay.
        Finish::Silenced {
            until_ms,
            silence_id,
        } => (
            "outcome = 'silenced', due_at = $4, silenced_by = $5",
            Some(*until_ms),
            Some(silence_id.as_str()),
        ),
    };
    let sql = format!(
        "UPDATE notifications n SET {set},
                claimed_by = NULL, claim_until = NULL
         FROM UNNEST($2::BIGINT[], $3::BIGINT[]) AS f(id, version)
         WHERE n.id = f.id AND n.version = f.version AND ($1::BIGINT IS NULL OR TRUE) AND ($4::BIGINT IS NULL OR TRUE) AND ($5::TEXT IS NULL OR TRUE)"
    );
    let (ids, versions): (Vec<i64>, Vec<i64>) = notifications.iter().copied().unzip();
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now_ms)
        .bind(&ids)
        .bind(&versions)
        .bind(due_at)
        .bind(error)
        .execute(pool)
        .await?;
    // A notification that took a newer alert state meanwhile is left waiting: its claim ends
    // so that it is sent again at once.
    sqlx::query(
        "UPDATE notifications SET claimed_by = NULL, claim_until = NULL
         WHERE id = ANY($1) AND outcome IN ('pending', 'errored', 'silenced') AND claim_until IS NOT NULL",
    )
    .bind(&ids)
    .execute(pool)
    .await?;
    Ok(())
}

/// Queues repeats for `receiver` (see `Store::enqueue_repeats`), one replica at a time.
pub(super) async fn enqueue_repeats(
    pool: &PgPool,
    receiver: &str,
    resend: Resend,
    now_ms: i64,
) -> Result<usize, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('repeats:' || $1, 0))")
        .bind(receiver)
        .execute(&mut *tx)
        .await?;
    let docs: Vec<String> = sqlx::query_scalar(
        "SELECT doc FROM alerts WHERE status = 'firing' OR (ends_at IS NOT NULL AND ends_at >= $1)",
    )
    .bind(now_ms - resend.resolved_for_ms)
    .fetch_all(&mut *tx)
    .await?;
    let mut queued = 0;
    for doc in docs {
        let Some((alert, t, every)) = repeat_candidate(&doc, receiver, &resend) else {
            continue;
        };
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(&alert.fingerprint)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(
            "SELECT MAX(created_at) AS last, COUNT(*) FILTER (WHERE outcome IN ('pending', 'errored', 'silenced')) AS waiting,
                    COUNT(*) FILTER (WHERE outcome = 'delivered' AND status = 'firing' AND created_at >= $1) AS saw_firing
             FROM notifications WHERE receiver = $2 AND fingerprint = $3",
        )
        .bind(alert.starts_at_ms)
        .bind(receiver)
        .bind(&alert.fingerprint)
        .fetch_one(&mut *tx)
        .await?;
        let last: Option<i64> = row.get("last");
        let waiting: i64 = row.get("waiting");
        let saw_firing: i64 = row.get("saw_firing");
        if Resend::repeat_due(&alert, last, waiting, saw_firing, every, now_ms)
            && enqueue(&mut tx, &alert, &t, "repeat", true, now_ms).await?
        {
            queued += 1;
        }
    }
    tx.commit().await?;
    Ok(queued)
}
