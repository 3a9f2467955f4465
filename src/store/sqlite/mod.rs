//! The SQLite store: one file under the data directory, WAL mode, embedded migrations.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, SqlSafeStr};

use super::{Board, Finish, ListQuery, OutcomeLine, Pruned, Recorded, Store, StoreError, Which};
use crate::alert::{Alert, AlertChange, AlertStatus, Target};
use crate::model::outbox::{Notification, OutboxState, Resend};
use crate::tracker::ExecutionReport;

mod executions;
mod outbox;
mod writer;

use self::executions::*;
use self::outbox::*;
use crate::model::silence::Silence;
use crate::store::rows::{ExecutionRow, decode, decode_alerts, repeat_candidate, to_json};

/// A page of active executions after `?1` (by id), for resuming: a seek on the
/// `executions_active (active, id)` index.
const UNFINISHED_PAGE_SQL: &str =
    "SELECT id, doc FROM executions WHERE active = 1 AND id > ?1 ORDER BY id LIMIT ?2";

/// A page of ended executions before `?1` (by id, newest first), for the status page: a seek
/// on the same index.
const HISTORY_PAGE_SQL: &str =
    "SELECT id, doc FROM executions WHERE active = 0 AND id < ?1 ORDER BY id DESC LIMIT ?2";

fn migrator() -> Migrator {
    Migrator::with_migrations(vec![
        Migration::new(
            1,
            "executions".into(),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0001_executions.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            2,
            "alerts".into(),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0002_alerts.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            3,
            "logs pending index".into(),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0003_logs_pending.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            4,
            "submitting mark".into(),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0004_submitting.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            5,
            "retention indexes".into(),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0005_retention.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            6,
            "next poll time".into(),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0006_next_poll_at.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            7,
            "silences".into(),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0007_silences.sql").into_sql_str(),
            false,
        ),
    ])
}

/// Executions in a SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The group-commit writer every `record` goes through.
    writer: tokio::sync::mpsc::Sender<writer::Job>,
}

impl SqliteStore {
    /// Opens (creating if needed) `dir/jobwatch.sqlite3` and brings its schema up to date.
    pub async fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|error| StoreError::Io {
            path: dir.display().to_string(),
            error,
        })?;
        let path = dir.join("jobwatch.sqlite3");
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        // Pages freed by pruning are given back to the file system (PRAGMA
        // incremental_vacuum after each prune). The mode only takes effect on an empty
        // database or after a VACUUM: a database from an older version is vacuumed once.
        let mode: i64 = sqlx::query_scalar("PRAGMA auto_vacuum")
            .fetch_one(&pool)
            .await?;
        if mode != 2 {
            let mut conn = pool.acquire().await?;
            sqlx::query("PRAGMA auto_vacuum = INCREMENTAL")
                .execute(&mut *conn)
                .await?;
            sqlx::query("VACUUM").execute(&mut *conn).await?;
        }
        migrator().run(&pool).await?;
        let writer = writer::start(pool.clone());
        Ok(SqliteStore { pool, writer })
    }
}

impl SqliteStore {
    /// Inserts many executions in one transaction (rows that exist are left alone); no
    /// alert is evaluated. For imports and the load harness, which seeds a million
    /// executions to resume. Returns how many were inserted.
    pub async fn insert_many(&self, reports: &[ExecutionReport]) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut inserted = 0;
        for r in reports {
            inserted += u64::from(executions::write_execution(&mut tx, r, true).await?);
        }
        tx.commit().await?;
        Ok(inserted)
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn record(
        &self,
        report: &ExecutionReport,
        changes: &[AlertChange],
        insert_only: bool,
    ) -> Result<Recorded, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = writer::Job {
            row: ExecutionRow::of(report)?,
            changes: changes.to_vec(),
            insert_only,
            reply,
        };
        self.writer
            .send(job)
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn due_notifications(
        &self,
        receiver: &str,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError> {
        let rows = sqlx::query(
            // In order per alert: a notification waits while an earlier one of the same
            // alert and receiver waits. Sent as the alert is now (`current`).
            "SELECT n.*, a.doc AS current FROM notifications n LEFT JOIN alerts a ON a.fingerprint = n.fingerprint
             WHERE n.receiver = ?1 AND n.outcome IN ('pending', 'errored', 'silenced') AND n.due_at <= ?2
               AND NOT EXISTS (SELECT 1 FROM notifications o WHERE o.receiver = ?1 AND o.fingerprint = n.fingerprint
                               AND o.outcome IN ('pending', 'errored', 'silenced') AND o.id < n.id)
             ORDER BY n.due_at, n.id LIMIT ?3",
        )
        .bind(receiver)
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row_to_notification).collect()
    }

    async fn next_due(&self, receiver: &str) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(due_at) FROM notifications WHERE receiver = ? AND outcome IN ('pending', 'errored', 'silenced')",
        )
        .bind(receiver)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn finish_notifications(
        &self,
        notifications: &[(i64, i64)],
        finish: &Finish,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // ?1 now, ?2 id, ?3 version, ?4 due_at, ?5 error.
        let (sql, due_at, error) = match finish {
            Finish::Delivered => (
                "UPDATE notifications SET outcome = 'delivered', attempts = attempts + 1, last_attempt_at = ?1,
                 delivered_at = ?1, last_error = NULL WHERE id = ?2 AND version = ?3 AND ?4 IS NULL AND ?5 IS NULL",
                None,
                None,
            ),
            Finish::Errored { due_at_ms, error } => (
                "UPDATE notifications SET outcome = 'errored', attempts = attempts + 1, last_attempt_at = ?1,
                 due_at = ?4, last_error = ?5 WHERE id = ?2 AND version = ?3",
                Some(*due_at_ms),
                Some(error.as_str()),
            ),
            Finish::Rejected { error } => (
                "UPDATE notifications SET outcome = 'rejected', attempts = attempts + 1, last_attempt_at = ?1,
                 last_error = ?5 WHERE id = ?2 AND version = ?3 AND ?4 IS NULL",
                None,
                Some(error.as_str()),
            ),
            // Not an attempt: the attempts and last error stay; ?5 is the silence.
            Finish::Silenced {
                until_ms,
                silence_id,
            } => (
                "UPDATE notifications SET outcome = 'silenced', due_at = ?4, silenced_by = ?5
                 WHERE id = ?2 AND version = ?3 AND ?1 IS NOT NULL",
                Some(*until_ms),
                Some(silence_id.as_str()),
            ),
        };
        for (id, version) in notifications {
            sqlx::query(sql)
                .bind(now_ms)
                .bind(id)
                .bind(version)
                .bind(due_at)
                .bind(error)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn enqueue_repeats(
        &self,
        receiver: &str,
        resend: Resend,
        now_ms: i64,
    ) -> Result<usize, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let docs: Vec<String> = sqlx::query_scalar(
            "SELECT doc FROM alerts WHERE status = 'firing' OR (ends_at IS NOT NULL AND ends_at >= ?)",
        )
        .bind(now_ms - resend.resolved_for_ms)
        .fetch_all(&mut *tx)
        .await?;
        let mut queued = 0;
        for doc in docs {
            let Some((alert, t, every)) = repeat_candidate(&doc, receiver, &resend) else {
                continue;
            };
            let row = sqlx::query(
                "SELECT MAX(created_at) AS last, COUNT(*) FILTER (WHERE outcome IN ('pending', 'errored', 'silenced')) AS waiting,
                        COUNT(*) FILTER (WHERE outcome = 'delivered' AND status = 'firing' AND created_at >= ?) AS saw_firing
                 FROM notifications WHERE receiver = ? AND fingerprint = ?",
            )
            .bind(alert.starts_at_ms)
            .bind(receiver)
            .bind(&alert.fingerprint)
            .fetch_one(&mut *tx)
            .await?;
            let last: Option<i64> = row.get("last");
            let waiting: i64 = row.get("waiting");
            let saw_firing: i64 = row.get("saw_firing");
            let due = Resend::repeat_due(&alert, last, waiting, saw_firing, every, now_ms);
            if due && enqueue(&mut tx, &alert, &t, "repeat", true, now_ms).await? {
                queued += 1;
            }
        }
        tx.commit().await?;
        Ok(queued)
    }

    async fn outbox_depth(&self, receiver: &str) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM notifications WHERE receiver = ? AND outcome IN ('pending', 'errored')",
        )
        .bind(receiver)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn reject_orphans(&self, known: &[String], now_ms: i64) -> Result<u64, StoreError> {
        let receivers: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT receiver FROM notifications WHERE outcome IN ('pending', 'errored', 'silenced')",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut rejected = 0;
        for r in receivers.iter().filter(|r| !known.contains(r)) {
            rejected += sqlx::query(
                "UPDATE notifications SET outcome = 'rejected', last_attempt_at = ?,
                 last_error = 'the receiver is no longer configured' WHERE receiver = ? AND outcome IN ('pending', 'errored', 'silenced')",
            )
            .bind(now_ms)
            .bind(r)
            .execute(&self.pool)
            .await?
            .rows_affected();
        }
        Ok(rejected)
    }

    async fn list_notifications(
        &self,
        receiver: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM notifications WHERE ?1 IS NULL OR receiver = ?1 ORDER BY id DESC LIMIT ?2",
        )
        .bind(receiver)
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row_to_notification).collect()
    }

    async fn list_alerts(&self) -> Result<Vec<Alert>, StoreError> {
        let docs: Vec<(String, String)> = sqlx::query_as(
            "SELECT fingerprint, doc FROM alerts ORDER BY status = 'firing' DESC, updated_at DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        decode_alerts(docs)
    }

    async fn create_silence(&self, silence: &Silence) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO silences (id, starts_at, ends_at, updated_at, doc) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&silence.id)
        .bind(silence.starts_at_ms)
        .bind(silence.ends_at_ms)
        .bind(silence.updated_at_ms)
        .bind(to_json(&silence.id, silence)?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_silences(&self) -> Result<Vec<Silence>, StoreError> {
        let docs: Vec<(String, String)> =
            sqlx::query_as("SELECT id, doc FROM silences ORDER BY ends_at DESC, id DESC")
                .fetch_all(&self.pool)
                .await?;
        crate::store::rows::decode_silences(docs)
    }

    async fn current_silences(&self, now_ms: i64) -> Result<Vec<Silence>, StoreError> {
        let docs: Vec<(String, String)> =
            sqlx::query_as("SELECT id, doc FROM silences WHERE ends_at > ? ORDER BY ends_at DESC")
                .bind(now_ms)
                .fetch_all(&self.pool)
                .await?;
        crate::store::rows::decode_silences(docs)
    }

    async fn expire_silence(
        &self,
        id: &str,
        by: &str,
        now_ms: i64,
    ) -> Result<Option<Silence>, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let doc: Option<String> = sqlx::query_scalar("SELECT doc FROM silences WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(doc) = doc else {
            return Ok(None);
        };
        let mut silence =
            crate::store::rows::decode_silences(vec![(id.to_owned(), doc)])?.remove(0);
        if !crate::store::rows::expire(&mut silence, by, now_ms) {
            return Ok(Some(silence));
        }
        sqlx::query(
            "UPDATE silences SET starts_at = ?, ends_at = ?, updated_at = ?, doc = ? WHERE id = ?",
        )
        .bind(silence.starts_at_ms)
        .bind(silence.ends_at_ms)
        .bind(silence.updated_at_ms)
        .bind(to_json(id, &silence)?)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        // What it held is due now: the dispatcher checks the other silences and sends.
        sqlx::query(
            "UPDATE notifications SET due_at = ?1 WHERE outcome = 'silenced' AND silenced_by = ?2 AND due_at > ?1",
        )
        .bind(now_ms)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(silence))
    }

    async fn notifications_of(
        &self,
        fingerprint: &str,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM notifications WHERE fingerprint = ? ORDER BY id DESC LIMIT ?",
        )
        .bind(fingerprint)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(outbox::row_to_notification).collect()
    }

    async fn get(&self, id: &str) -> Result<Option<ExecutionReport>, StoreError> {
        let doc: Option<String> = sqlx::query_scalar("SELECT doc FROM executions WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        doc.map(|d| decode(id, &d)).transpose()
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<ExecutionReport>, StoreError> {
        // The SQL text is built only from fixed fragments; values are bound.
        let sql = list_sql(query);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Which::In(state) = query.which {
            q = q.bind(state.as_str());
        }
        if let Some(check) = &query.check {
            q = q.bind(check.clone());
        }
        if let Some(cursor) = &query.cursor {
            q = q.bind(cursor.clone());
        }
        let rows = q
            .bind(i64::from(query.limit.clamp(1, 1000)))
            .fetch_all(&self.pool)
            .await?;
        rows_to_reports(rows)
    }

    async fn active_and_history(
        &self,
        limit: u32,
        history_before: Option<&str>,
    ) -> Result<Board, StoreError> {
        let limit = i64::from(limit.clamp(1, 1000));
        let mut tx = self.pool.begin().await?;
        let active =
            sqlx::query("SELECT id, doc FROM executions WHERE active = 1 ORDER BY id DESC LIMIT ?")
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
        // A plain `id < ?1` (the highest code point for the first page) lets SQLite seek the
        // `(active, id)` index; an `IS NULL OR` would scan from the newest row on every page.
        let history = sqlx::query(HISTORY_PAGE_SQL)
            .bind(history_before.unwrap_or("\u{10FFFF}"))
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        let (active_total, history_total): (i64, i64) = sqlx::query_as(
            "SELECT COALESCE(SUM(active = 1), 0), COALESCE(SUM(active = 0), 0) FROM executions",
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Board {
            active: rows_to_reports(active)?,
            history: rows_to_reports(history)?,
            active_total: active_total.max(0) as u64,
            history_total: history_total.max(0) as u64,
        })
    }

    async fn prune(&self, cutoff_ms: i64, batch: u32) -> Result<Pruned, StoreError> {
        let batch = i64::from(batch.max(1));
        // One short write transaction per table and batch: the write lock is never held
        // for long. An execution whose logs were still being fetched is kept (the next
        // start closes it).
        let executions = sqlx::query(
            "DELETE FROM executions WHERE id IN (SELECT id FROM executions
               WHERE active = 0 AND updated_at < ?1
                 AND json_extract(doc, '$.logs_pending') IS NOT 1
               ORDER BY updated_at LIMIT ?2)",
        )
        .bind(cutoff_ms)
        .bind(batch)
        .execute(&self.pool)
        .await?
        .rows_affected();
        // Delivered or rejected notifications; the newest of each alert and receiver stays
        // (repeats and group timers read it).
        let notifications = sqlx::query(
            "DELETE FROM notifications WHERE id IN (SELECT id FROM notifications
               WHERE outcome IN ('delivered', 'rejected', 'dropped') AND created_at < ?1
                 AND id NOT IN (SELECT MAX(id) FROM notifications GROUP BY receiver, fingerprint)
               ORDER BY id LIMIT ?2)",
        )
        .bind(cutoff_ms)
        .bind(batch)
        .execute(&self.pool)
        .await?
        .rows_affected();
        sqlx::query(
            "DELETE FROM silences WHERE id IN (SELECT id FROM silences WHERE ends_at < ?1 ORDER BY ends_at LIMIT ?2)",
        )
        .bind(cutoff_ms)
        .bind(batch)
        .execute(&self.pool)
        .await?;
        Ok(Pruned {
            executions,
            notifications,
        })
    }

    async fn reclaim(&self) -> Result<(), StoreError> {
        sqlx::query("PRAGMA incremental_vacuum")
            .execute(&self.pool)
            .await?;
        // Fold the WAL back into the file, so the file shows the space given back.
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn unfinished_page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ExecutionReport>, StoreError> {
        // `id > ?1` with "" for the first page, not `(?1 IS NULL OR id > ?1)`: SQLite cannot
        // seek the `executions_active (active, id)` index with that OR, so every page scanned
        // the active rows from the first (1 000 000 resumed in pages of 1 000 took minutes).
        let rows = sqlx::query(UNFINISHED_PAGE_SQL)
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit.max(1)))
            .fetch_all(&self.pool)
            .await?;
        rows_to_reports(rows)
    }

    async fn logs_pending(&self) -> Result<Vec<ExecutionReport>, StoreError> {
        let rows = sqlx::query(
            // Served by the partial index `executions_logs_pending` (same condition).
            "SELECT id, doc FROM executions WHERE active = 0 AND json_extract(doc, '$.logs_pending') = 1 ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows_to_reports(rows)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn last_tick(&self, check: &str) -> Result<Option<i64>, StoreError> {
        let tick: Option<i64> =
            sqlx::query_scalar("SELECT MAX(scheduled_at) FROM executions WHERE check_name = ?")
                .bind(check)
                .fetch_one(&self.pool)
                .await?;
        Ok(tick)
    }

    async fn count(&self, check: Option<&str>, which: Which) -> Result<u64, StoreError> {
        let (active, state) = match which {
            Which::Active => (Some(1i64), None),
            Which::History => (Some(0), None),
            Which::All => (None, None),
            Which::In(s) => (None, Some(s.as_str())),
        };
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM executions WHERE (?1 IS NULL OR check_name = ?1)
               AND (?2 IS NULL OR active = ?2) AND (?3 IS NULL OR state = ?3)",
        )
        .bind(check)
        .bind(active)
        .bind(state)
        .fetch_one(&self.pool)
        .await?;
        Ok(n.max(0) as u64)
    }

    async fn outcomes(&self, check: &str, limit: u32) -> Result<Vec<OutcomeLine>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, state, trigger_status, origin, created_at, updated_at FROM executions
             WHERE check_name = ? ORDER BY id DESC LIMIT ?",
        )
        .bind(check)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(outcome_line).collect())
    }

    async fn last_in_state(
        &self,
        check: &str,
        state: &str,
    ) -> Result<Option<OutcomeLine>, StoreError> {
        let row = sqlx::query(
            "SELECT id, state, trigger_status, origin, created_at, updated_at FROM executions
             WHERE check_name = ? AND state = ? ORDER BY id DESC LIMIT 1",
        )
        .bind(check)
        .bind(state)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(outcome_line))
    }

    async fn active_count(&self, check: &str) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM executions WHERE check_name = ? AND active = 1",
        )
        .bind(check)
        .fetch_one(&self.pool)
        .await?;
        Ok(n.max(0) as u64)
    }
}

fn outcome_line(row: &sqlx::sqlite::SqliteRow) -> OutcomeLine {
    OutcomeLine {
        execution_id: row.get("id"),
        state: row.get("state"),
        trigger_status: row.get("trigger_status"),
        origin: row.get("origin"),
        created_at_ms: row.get("created_at"),
        updated_at_ms: row.get("updated_at"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pages must seek the index, not scan it: with `(?1 IS NULL OR id > ?1)` SQLite scanned
    /// the active rows from the first on every page, and a million executions took minutes
    /// to resume.
    #[tokio::test]
    async fn resume_and_history_pages_seek_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).await.unwrap();
        for (sql, seek) in [
            (UNFINISHED_PAGE_SQL, "(active=? AND id>?)"),
            (HISTORY_PAGE_SQL, "(active=? AND id<?)"),
        ] {
            let plan: Vec<String> =
                sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                    .bind("")
                    .bind(10_i64)
                    .fetch_all(&store.pool)
                    .await
                    .unwrap()
                    .iter()
                    .map(|row| row.get::<String, _>("detail"))
                    .collect();
            assert!(
                plan.iter()
                    .any(|d| d.contains("executions_active") && d.contains(seek)),
                "{sql}: {plan:?}"
            );
        }
    }
}
