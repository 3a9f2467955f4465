//! The PostgreSQL store: one database shared by any number of replicas. The same tables and
//! guarantees as SQLite (see the store's opening note), and the shard leases
//! ([`Shards`]): `shards` (owner, `lease_until`, `epoch`), `replicas` (heartbeats).
//!
//! * Every write of an existing execution carries the [`Fence`] it was loaded under
//!   ([`ExecutionReport::fence`]); its transaction first locks the shard's row `FOR SHARE`
//!   and proceeds only while this replica holds it under that epoch with an unexpired lease
//!   (database time). So an acquisition (which updates that row) waits for a write in flight
//!   and is seen by the next: a replica that lost a shard can never write after the new
//!   holder loaded it ([`StoreError::Fenced`]).
//! * A new execution is inserted by whichever replica accepted it, and announced with
//!   `NOTIFY jobwatch_executions` in the same transaction (sent on commit). A poll asked
//!   for on a replica that does not follow the execution (a bk-job callback) is announced on
//!   `jobwatch_poll` (`<id>[ <job_instance_id>]`) for the one that does.
//! * A notification is claimed by one replica while it sends it (`claimed_by`,
//!   `claim_until`); alert rows are changed under a transaction-scoped advisory lock per
//!   fingerprint, so two replicas' changes of one alert apply one after the other.
//! * Each record is its own transaction (PostgreSQL takes concurrent writers; no group
//!   commit is needed).

mod outbox;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{PgConnection, Row, SqlSafeStr};

use super::rows::{ExecutionRow, decode, decode_alerts, decode_silences, to_json};
use super::{
    Board, Finish, Held, ListQuery, Pruned, Recorded, Renewal, Shards, Store, StoreError, Wake,
    Which,
};
use crate::alert::{self, Alert, AlertChange, Applied};
use crate::model::outbox::{Notification, Resend};
use crate::model::shard::{Fence, shard_of};
use crate::model::silence::Silence;
use crate::tracker::ExecutionReport;

/// The channel new executions are announced on.
const CHANNEL: &str = "jobwatch_executions";
/// Polls asked for on another replica: `<execution id>[ <job_instance_id>]`.
const POLL_CHANNEL: &str = "jobwatch_poll";

/// How long the notifications a replica claimed are kept from the others (the claimer itself
/// may take them again at once): long enough for a pass over a batch at the default receiver
/// timeout (each attempt is cut at 4 × the timeout + 5 s, 45 s by default); a replica that
/// died holding claims delays those notifications this long.
const CLAIM: &str = "5 minutes";

/// How long the server lets a session sit idle inside a transaction before it ends it (and
/// its locks): a frozen replica's open transaction must not outlive its lease by much.
const IDLE_IN_TRANSACTION: &str = "5s";

fn migrator() -> Migrator {
    Migrator::with_migrations(vec![
        Migration::new(
            1,
            "schema".into(),
            MigrationType::Simple,
            include_str!("../migrations/postgres/0001_schema.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            2,
            "silences".into(),
            MigrationType::Simple,
            include_str!("../migrations/postgres/0002_silences.sql").into_sql_str(),
            false,
        ),
    ])
}

/// How to reach the database: `[store] url` (no password in it) and the password from the
/// environment or a file.
#[derive(Clone)]
pub struct PgSettings {
    /// `postgres://user@host:port/db?sslmode=…` (TLS through rustls with the platform's
    /// roots when `sslmode` asks for it).
    pub url: String,
    /// The password, if the server asks for one.
    pub password: Option<SecretString>,
}

impl std::fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSettings")
            .field("url", &self.url)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// Executions in a PostgreSQL database shared by replicas.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    options: PgConnectOptions,
    replica: String,
    shards: u32,
}

impl PgStore {
    /// Connects, brings the schema up to date (migrations take an advisory lock: replicas
    /// starting together migrate once) and reads the shard count. This process gets a fresh
    /// replica id.
    pub async fn open(settings: &PgSettings) -> Result<Self, StoreError> {
        // A replica frozen (or cut off) inside a transaction would keep its row locks on the
        // shards it renews or writes under until it wakes, and the others skip locked rows
        // when they take shards over: the server ends such a transaction after
        // `IDLE_IN_TRANSACTION`, so a takeover waits at most that long past the lease. Our
        // transactions never wait on anything but the database between their statements.
        let mut options = PgConnectOptions::from_str(&settings.url)?
            .application_name("jobwatch")
            .options([
                ("lock_timeout", "10s"),
                ("statement_timeout", "60s"),
                ("idle_in_transaction_session_timeout", IDLE_IN_TRANSACTION),
            ]);
        if let Some(password) = &settings.password {
            options = options.password(password.expose_secret());
        }
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.clone())
            .await?;
        migrator().run(&pool).await?;
        let shards: i32 = sqlx::query_scalar("SELECT shards FROM cluster")
            .fetch_one(&pool)
            .await?;
        Ok(PgStore {
            pool,
            options,
            replica: uuid::Uuid::now_v7().to_string(),
            shards: shards.max(1) as u32,
        })
    }

    /// Inserts many executions in one transaction (rows that exist are left alone), as
    /// [`crate::store::SqliteStore::insert_many`]. Returns how many were inserted.
    pub async fn insert_many(&self, reports: &[ExecutionReport]) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut inserted = 0;
        for r in reports {
            inserted += u64::from(
                write_row(&mut tx, &ExecutionRow::of(r)?, true, self)
                    .await?
                    .0,
            );
        }
        tx.commit().await?;
        Ok(inserted)
    }

    /// Rows written (inserted, updated, deleted) per table since the server started
    /// (`pg_stat_user_tables`; the statistics lag by up to about a second).
    pub async fn table_writes(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT relname::TEXT, (n_tup_ins + n_tup_upd + n_tup_del)::BIGINT FROM pg_stat_user_tables ORDER BY relname",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// The shard of an execution in this database.
    pub fn shard(&self, execution_id: &str) -> u32 {
        shard_of(execution_id, self.shards)
    }

    /// Whether this replica holds `fence` now (locks the shard's row until the transaction
    /// ends, so that no acquisition can slip in before the write commits).
    async fn fenced(
        conn: &mut PgConnection,
        replica: &str,
        fence: Fence,
    ) -> Result<bool, StoreError> {
        let held: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM shards WHERE shard = $1 AND owner = $2 AND epoch = $3 AND lease_until > now() FOR SHARE",
        )
        .bind(fence.shard as i32)
        .bind(replica)
        .bind(fence.epoch)
        .fetch_optional(&mut *conn)
        .await?;
        Ok(held.is_some())
    }
}

/// Writes the execution row (see the SQLite store's `write_row`: a final state is never
/// left). Returns whether a row was written and whether it was a new active one.
async fn write_row(
    conn: &mut PgConnection,
    r: &ExecutionRow,
    insert_only: bool,
    store: &PgStore,
) -> Result<(bool, bool), StoreError> {
    if !insert_only
        && let Some(fence) = r.fence
        && !PgStore::fenced(conn, &store.replica, fence).await?
    {
        return Err(StoreError::Fenced {
            id: r.id.clone(),
            shard: fence.shard,
            epoch: fence.epoch,
        });
    }
    let insert = "INSERT INTO executions (id, shard, check_name, platform, origin, scheduled_at, trigger_status, state, active, job_instance_id, created_at, updated_at, doc, next_poll_at, logs_pending)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)";
    let sql = if insert_only {
        format!("{insert} ON CONFLICT DO NOTHING RETURNING (xmax = 0) AS inserted")
    } else {
        format!(
            "{insert} ON CONFLICT (id) DO UPDATE SET trigger_status = excluded.trigger_status, state = excluded.state,
             active = excluded.active, job_instance_id = excluded.job_instance_id, updated_at = excluded.updated_at,
             doc = excluded.doc, next_poll_at = excluded.next_poll_at, logs_pending = excluded.logs_pending
             WHERE executions.active OR executions.state = excluded.state
             RETURNING (xmax = 0) AS inserted"
        )
    };
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&r.id)
        .bind(store.shard(&r.id) as i32)
        .bind(&r.check)
        .bind(&r.platform)
        .bind(r.origin)
        .bind(r.scheduled_at)
        .bind(r.trigger_status)
        .bind(r.state)
        .bind(r.active)
        .bind(r.job_instance_id)
        .bind(r.created_at)
        .bind(crate::time::now_ms())
        .bind(&r.doc)
        .bind(r.next_poll_at)
        .bind(r.logs_pending)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else {
        if insert_only {
            return Ok((false, false));
        }
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM executions WHERE id = $1")
                .bind(&r.id)
                .fetch_optional(&mut *conn)
                .await?;
        return Err(StoreError::FinalStateChange {
            id: r.id.clone(),
            state: state.unwrap_or_default(),
            new_state: r.state.to_owned(),
        });
    };
    let inserted: bool = row.get("inserted");
    if inserted && r.active {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(&r.id)
            .execute(&mut *conn)
            .await?;
    }
    Ok((true, inserted))
}

fn rows_to_reports(rows: Vec<PgRow>) -> Result<Vec<ExecutionReport>, StoreError> {
    rows.iter()
        .map(|row| decode(row.get::<&str, _>("id"), row.get::<&str, _>("doc")))
        .collect()
}

fn shard_list(shards: &[u32]) -> Vec<i32> {
    shards.iter().map(|&s| s as i32).collect()
}

fn lease_ms(lease: Duration) -> i64 {
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX)
}

#[async_trait]
impl Store for PgStore {
    async fn record(
        &self,
        report: &ExecutionReport,
        changes: &[AlertChange],
        insert_only: bool,
    ) -> Result<Recorded, StoreError> {
        let row = ExecutionRow::of(report)?;
        let mut tx = self.pool.begin().await?;
        // One alert's changes apply one after the other across replicas (in one order, so
        // that two records never wait on each other).
        let mut fingerprints: Vec<&str> = changes.iter().map(|c| c.fingerprint.as_str()).collect();
        fingerprints.sort_unstable();
        fingerprints.dedup();
        let (written, _) = write_row(&mut tx, &row, insert_only, self).await?;
        if !written || changes.is_empty() {
            tx.commit().await?;
            return Ok(Recorded {
                written,
                ..Recorded::default()
            });
        }
        for fp in &fingerprints {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind(fp)
                .execute(&mut *tx)
                .await?;
        }
        let now = crate::time::now_ms();
        let mut queued = 0;
        let mut transitions = Vec::new();
        for change in changes {
            let prev = outbox::load_alert(&mut tx, &change.fingerprint).await?;
            match alert::apply(prev, change, now) {
                Applied::Unchanged => {}
                Applied::Updated(a) => outbox::save_alert(&mut tx, &a).await?,
                Applied::Fired(a) | Applied::Resolved(a) => {
                    outbox::save_alert(&mut tx, &a).await?;
                    for t in &a.targets {
                        queued +=
                            usize::from(outbox::enqueue(&mut tx, &a, t, "new", false, now).await?);
                    }
                    transitions.push(a);
                }
            }
        }
        tx.commit().await?;
        Ok(Recorded {
            written: true,
            queued,
            transitions,
        })
    }

    async fn due_notifications(
        &self,
        receiver: &str,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError> {
        outbox::claim_due(&self.pool, &self.replica, receiver, now_ms, limit).await
    }

    async fn next_due(&self, receiver: &str) -> Result<Option<i64>, StoreError> {
        // A notification another replica is sending is due again only when its claim ends.
        Ok(sqlx::query_scalar(
            "SELECT MIN(GREATEST(due_at, COALESCE((EXTRACT(EPOCH FROM claim_until) * 1000)::BIGINT, 0)))
             FROM notifications WHERE receiver = $1 AND outcome IN ('pending', 'errored', 'silenced')",
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
        outbox::finish(&self.pool, notifications, finish, now_ms).await
    }

    async fn enqueue_repeats(
        &self,
        receiver: &str,
        resend: Resend,
        now_ms: i64,
    ) -> Result<usize, StoreError> {
        outbox::enqueue_repeats(&self.pool, receiver, resend, now_ms).await
    }

    async fn outbox_depth(&self, receiver: &str) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM notifications WHERE receiver = $1 AND outcome IN ('pending', 'errored')",
        )
        .bind(receiver)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn reject_orphans(&self, known: &[String], now_ms: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "UPDATE notifications SET outcome = 'rejected', last_attempt_at = $1,
             last_error = 'the receiver is no longer configured'
             WHERE outcome IN ('pending', 'errored', 'silenced') AND NOT (receiver = ANY($2))",
        )
        .bind(now_ms)
        .bind(known)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    async fn list_notifications(
        &self,
        receiver: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM notifications WHERE $1::TEXT IS NULL OR receiver = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(receiver)
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(outbox::row_to_notification).collect()
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
            "INSERT INTO silences (id, starts_at, ends_at, updated_at, doc) VALUES ($1, $2, $3, $4, $5)",
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
        decode_silences(docs)
    }

    async fn current_silences(&self, now_ms: i64) -> Result<Vec<Silence>, StoreError> {
        let docs: Vec<(String, String)> =
            sqlx::query_as("SELECT id, doc FROM silences WHERE ends_at > $1 ORDER BY ends_at DESC")
                .bind(now_ms)
                .fetch_all(&self.pool)
                .await?;
        decode_silences(docs)
    }

    async fn expire_silence(
        &self,
        id: &str,
        by: &str,
        now_ms: i64,
    ) -> Result<Option<Silence>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let doc: Option<String> =
            sqlx::query_scalar("SELECT doc FROM silences WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(doc) = doc else {
            return Ok(None);
        };
        let mut silence = decode_silences(vec![(id.to_owned(), doc)])?.remove(0);
        if !super::rows::expire(&mut silence, by, now_ms) {
            return Ok(Some(silence));
        }
        sqlx::query(
            "UPDATE silences SET starts_at = $1, ends_at = $2, updated_at = $3, doc = $4 WHERE id = $5",
        )
        .bind(silence.starts_at_ms)
        .bind(silence.ends_at_ms)
        .bind(silence.updated_at_ms)
        .bind(to_json(id, &silence)?)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE notifications SET due_at = $1 WHERE outcome = 'silenced' AND silenced_by = $2 AND due_at > $1",
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
            "SELECT * FROM notifications WHERE fingerprint = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(fingerprint)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(outbox::row_to_notification).collect()
    }

    async fn get(&self, id: &str) -> Result<Option<ExecutionReport>, StoreError> {
        let doc: Option<String> = sqlx::query_scalar("SELECT doc FROM executions WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        doc.map(|d| decode(id, &d)).transpose()
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<ExecutionReport>, StoreError> {
        let (which, state) = match query.which {
            Which::Active => (Some(true), None),
            Which::History => (Some(false), None),
            Which::All => (None, None),
            Which::In(s) => (None, Some(s.as_str())),
        };
        let rows = sqlx::query(
            "SELECT id, doc FROM executions
             WHERE ($1::BOOLEAN IS NULL OR active = $1) AND ($2::TEXT IS NULL OR check_name = $2)
               AND id < COALESCE($3, chr(1114111)) AND ($5::TEXT IS NULL OR state = $5)
             ORDER BY id DESC LIMIT $4",
        )
        .bind(which)
        .bind(&query.check)
        .bind(&query.cursor)
        .bind(i64::from(query.limit.clamp(1, 1000)))
        .bind(state)
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
        // One snapshot for the three reads.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let active =
            sqlx::query("SELECT id, doc FROM executions WHERE active ORDER BY id DESC LIMIT $1")
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
        let history = sqlx::query(
            "SELECT id, doc FROM executions WHERE NOT active AND id < COALESCE($1, chr(1114111)) ORDER BY id DESC LIMIT $2",
        )
        .bind(history_before)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let (active_total, history_total): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*) FILTER (WHERE active), COUNT(*) FILTER (WHERE NOT active) FROM executions",
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
        let executions = sqlx::query(
            "DELETE FROM executions WHERE id IN (SELECT id FROM executions
               WHERE NOT active AND updated_at < $1 AND NOT logs_pending
               ORDER BY updated_at LIMIT $2)",
        )
        .bind(cutoff_ms)
        .bind(batch)
        .execute(&self.pool)
        .await?
        .rows_affected();
        let notifications = sqlx::query(
            "DELETE FROM notifications WHERE id IN (SELECT id FROM notifications
               WHERE outcome IN ('delivered', 'rejected', 'dropped') AND created_at < $1
                 AND id NOT IN (SELECT MAX(id) FROM notifications GROUP BY receiver, fingerprint)
               ORDER BY id LIMIT $2)",
        )
        .bind(cutoff_ms)
        .bind(batch)
        .execute(&self.pool)
        .await?
        .rows_affected();
        sqlx::query(
            "DELETE FROM silences WHERE id IN (SELECT id FROM silences WHERE ends_at < $1 ORDER BY ends_at LIMIT $2)",
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
        // PostgreSQL's autovacuum reuses the space of deleted rows.
        Ok(())
    }

    async fn unfinished_page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ExecutionReport>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, doc FROM executions WHERE active AND id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit.max(1)))
        .fetch_all(&self.pool)
        .await?;
        rows_to_reports(rows)
    }

    async fn logs_pending(&self) -> Result<Vec<ExecutionReport>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, doc FROM executions WHERE NOT active AND logs_pending ORDER BY id",
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
        Ok(
            sqlx::query_scalar("SELECT MAX(scheduled_at) FROM executions WHERE check_name = $1")
                .bind(check)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn count(&self, check: Option<&str>, which: Which) -> Result<u64, StoreError> {
        let (active, state) = match which {
            Which::Active => (Some(true), None),
            Which::History => (Some(false), None),
            Which::All => (None, None),
            Which::In(s) => (None, Some(s.as_str())),
        };
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM executions WHERE ($1::TEXT IS NULL OR check_name = $1)
               AND ($2::BOOLEAN IS NULL OR active = $2) AND ($3::TEXT IS NULL OR state = $3)",
        )
        .bind(check)
        .bind(active)
        .bind(state)
        .fetch_one(&self.pool)
        .await?;
        Ok(n.max(0) as u64)
    }

    async fn outcomes(
        &self,
        check: &str,
        limit: u32,
    ) -> Result<Vec<super::OutcomeLine>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, state, trigger_status, origin, created_at, updated_at FROM executions
             WHERE check_name = $1 ORDER BY id DESC LIMIT $2",
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
    ) -> Result<Option<super::OutcomeLine>, StoreError> {
        let row = sqlx::query(
            "SELECT id, state, trigger_status, origin, created_at, updated_at FROM executions
             WHERE check_name = $1 AND state = $2 ORDER BY id DESC LIMIT 1",
        )
        .bind(check)
        .bind(state)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(outcome_line))
    }

    async fn active_count(&self, check: &str) -> Result<u64, StoreError> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM executions WHERE check_name = $1 AND active")
                .bind(check)
                .fetch_one(&self.pool)
                .await?;
        Ok(n.max(0) as u64)
    }

    fn shards(&self) -> Option<&dyn Shards> {
        Some(self)
    }
}

#[async_trait]
impl Shards for PgStore {
    fn replica_id(&self) -> &str {
        &self.replica
    }

    fn shard_count(&self) -> u32 {
        self.shards
    }

    async fn renew(&self, lease: Duration) -> Result<Renewal, StoreError> {
        let ms = lease_ms(lease);
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO replicas (id, seen_until) VALUES ($1, now() + $2 * interval '1 millisecond')
             ON CONFLICT (id) DO UPDATE SET seen_until = excluded.seen_until",
        )
        .bind(&self.replica)
        .bind(ms)
        .execute(&mut *tx)
        .await?;
        let held: Vec<(i32, i64)> = sqlx::query_as(
            "UPDATE shards SET lease_until = now() + $2 * interval '1 millisecond'
             WHERE owner = $1 AND lease_until > now() RETURNING shard, epoch",
        )
        .bind(&self.replica)
        .bind(ms)
        .fetch_all(&mut *tx)
        .await?;
        let (live, next_expiry_ms): (i64, Option<f64>) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM replicas WHERE seen_until > now()),
                    (SELECT EXTRACT(EPOCH FROM GREATEST(MIN(lease_until) - now(), interval '0')) * 1000
                       FROM shards WHERE owner IS DISTINCT FROM $1)::FLOAT8",
        )
        .bind(&self.replica)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        // Heartbeats of replicas gone for an hour are forgotten (a cheap, rare delete).
        if rand::random_range(0..100) == 0 {
            let _ =
                sqlx::query("DELETE FROM replicas WHERE seen_until < now() - interval '1 hour'")
                    .execute(&self.pool)
                    .await;
        }
        Ok(Renewal {
            held: held
                .into_iter()
                .map(|(shard, epoch)| Fence {
                    shard: shard as u32,
                    epoch,
                })
                .collect(),
            live_replicas: u32::try_from(live.max(1)).unwrap_or(u32::MAX),
            next_expiry: next_expiry_ms
                .filter(|ms| ms.is_finite())
                .map(|ms| Duration::from_millis(ms.max(0.0) as u64)),
        })
    }

    async fn acquire(&self, want: u32, lease: Duration) -> Result<Vec<Held>, StoreError> {
        if want == 0 {
            return Ok(Vec::new());
        }
        let rows: Vec<(i32, i64, Option<String>)> = sqlx::query_as(
            "WITH free AS (
                 SELECT shard, owner AS previous FROM shards
                 WHERE owner IS NULL OR lease_until <= now()
                 ORDER BY random() LIMIT $3 FOR UPDATE SKIP LOCKED)
             UPDATE shards s SET owner = $1, lease_until = now() + $2 * interval '1 millisecond',
                    epoch = s.epoch + 1
             FROM free WHERE s.shard = free.shard
             RETURNING s.shard, s.epoch, free.previous",
        )
        .bind(&self.replica)
        .bind(lease_ms(lease))
        .bind(i64::from(want))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(shard, epoch, previous)| Held {
                fence: Fence {
                    shard: shard as u32,
                    epoch,
                },
                taken_over: previous.is_some_and(|p| p != self.replica),
            })
            .collect())
    }

    async fn release(&self, shards: &[u32]) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE shards SET owner = NULL, lease_until = now() WHERE owner = $1 AND shard = ANY($2)",
        )
        .bind(&self.replica)
        .bind(shard_list(shards))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn leave(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE shards SET owner = NULL, lease_until = now() WHERE owner = $1")
            .bind(&self.replica)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM replicas WHERE id = $1")
            .bind(&self.replica)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn active_page_in(
        &self,
        shards: &[u32],
        after: &str,
        limit: u32,
    ) -> Result<Vec<ExecutionReport>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, doc FROM executions WHERE active AND shard = ANY($1) AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(shard_list(shards))
        .bind(after)
        .bind(i64::from(limit.max(1)))
        .fetch_all(&self.pool)
        .await?;
        rows_to_reports(rows)
    }

    async fn logs_pending_in(&self, shards: &[u32]) -> Result<Vec<ExecutionReport>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, doc FROM executions WHERE NOT active AND logs_pending AND shard = ANY($1) ORDER BY id",
        )
        .bind(shard_list(shards))
        .fetch_all(&self.pool)
        .await?;
        rows_to_reports(rows)
    }

    async fn untriggered_in(&self, shards: &[u32]) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM executions WHERE active AND next_poll_at IS NULL AND shard = ANY($1) ORDER BY id LIMIT 10000",
        )
        .bind(shard_list(shards))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn announce_poll(
        &self,
        execution_id: &str,
        job_instance_id: Option<u64>,
    ) -> Result<(), StoreError> {
        let payload = match job_instance_id {
            Some(job) => format!("{execution_id} {job}"),
            None => execution_id.to_owned(),
        };
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(POLL_CHANNEL)
            .bind(payload)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    fn subscribe(
        &self,
        stop: tokio_util::sync::CancellationToken,
    ) -> tokio::sync::mpsc::Receiver<Wake> {
        let (sender, receiver) = tokio::sync::mpsc::channel(4096);
        let options = self.options.clone();
        tokio::spawn(async move {
            let mut listener: Option<PgListener> = None;
            loop {
                let Some(l) = listener.as_mut() else {
                    let connected = async {
                        let pool = PgPoolOptions::new()
                            .max_connections(1)
                            .acquire_timeout(Duration::from_secs(5))
                            .connect_with(options.clone())
                            .await?;
                        let mut l = PgListener::connect_with(&pool).await?;
                        l.listen_all([CHANNEL, POLL_CHANNEL]).await?;
                        Ok::<_, sqlx::Error>(l)
                    };
                    tokio::select! {
                        () = stop.cancelled() => return,
                        l = connected => match l {
                            Ok(l) => {
                                listener = Some(l);
                                // Whatever was announced while not listening is looked for.
                                if sender.send(Wake::Rescan).await.is_err() {
                                    return;
                                }
                            }
                            Err(e) => {
                                tracing::debug!(error = %e, "Cannot listen for new executions yet.");
                                tokio::select! {
                                    () = stop.cancelled() => return,
                                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                                }
                            }
                        },
                    }
                    continue;
                };
                tokio::select! {
                    () = stop.cancelled() => return,
                    n = l.try_recv() => match n {
                        Ok(Some(n)) => {
                            let wake = if n.channel() == POLL_CHANNEL {
                                let (id, job) = match n.payload().split_once(' ') {
                                    Some((id, job)) => (id, job.parse().ok()),
                                    None => (n.payload(), None),
                                };
                                Wake::PollNow(id.to_owned(), job)
                            } else {
                                Wake::Recorded(n.payload().to_owned())
                            };
                            if sender.send(wake).await.is_err() {
                                return;
                            }
                        }
                        // The connection was lost: listen again, then look again.
                        Ok(None) | Err(_) => listener = None,
                    },
                }
            }
        });
        receiver
    }
}

fn outcome_line(row: &sqlx::postgres::PgRow) -> super::OutcomeLine {
    super::OutcomeLine {
        execution_id: row.get("id"),
        state: row.get("state"),
        trigger_status: row.get("trigger_status"),
        origin: row.get("origin"),
        created_at_ms: row.get("created_at"),
        updated_at_ms: row.get("updated_at"),
    }
}
