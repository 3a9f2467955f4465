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

use super::{ListQuery, Store, StoreError, Which};
use crate::tracker::ExecutionReport;

fn migrator() -> Migrator {
    Migrator::with_migrations(vec![Migration::new(
        1,
        "executions".into(),
        MigrationType::Simple,
        include_str!("migrations/sqlite/0001_executions.sql").into_sql_str(),
        false,
    )])
}

/// Executions in a SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

fn decode(id: &str, doc: &str) -> Result<ExecutionReport, StoreError> {
    serde_json::from_str(doc).map_err(|e| StoreError::Corrupt {
        id: id.to_owned(),
        error: e.to_string(),
    })
}

fn rows_to_reports(rows: Vec<sqlx::sqlite::SqliteRow>) -> Result<Vec<ExecutionReport>, StoreError> {
    rows.iter()
        .map(|row| decode(row.get::<&str, _>("id"), row.get::<&str, _>("doc")))
        .collect()
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
        migrator().run(&pool).await?;
        Ok(SqliteStore { pool })
    }

    /// One atomic statement per write (no read-then-write transaction: in WAL mode a deferred
    /// transaction that read first fails with SQLITE_BUSY when another writer got there in
    /// between). Returns whether a row was written.
    async fn write(&self, r: &ExecutionReport, insert_only: bool) -> Result<bool, StoreError> {
        let doc = serde_json::to_string(r).map_err(|e| StoreError::Corrupt {
            id: r.execution_id.clone(),
            error: e.to_string(),
        })?;
        let insert = "INSERT INTO executions (id, check_name, platform, origin, scheduled_at, trigger_status, state, active, job_instance_id, created_at, updated_at, doc)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
        // The update never moves a final state to another one: `active = 1` (not yet final)
        // or the same state (more detail, e.g. logs, for the same end).
        let sql = if insert_only {
            format!("{insert} ON CONFLICT DO NOTHING")
        } else {
            format!(
                "{insert} ON CONFLICT (id) DO UPDATE SET trigger_status = excluded.trigger_status, state = excluded.state,
                 active = excluded.active, job_instance_id = excluded.job_instance_id, updated_at = excluded.updated_at,
                 doc = excluded.doc WHERE executions.active = 1 OR executions.state = excluded.state"
            )
        };
        let written = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&r.execution_id)
            .bind(&r.check)
            .bind(&r.platform)
            .bind(r.origin.as_str())
            .bind(r.scheduled_at_ms)
            .bind(r.trigger_status.as_str())
            .bind(r.state.as_str())
            .bind(!r.state.is_final())
            .bind(r.job_instance_id.map(|id| id as i64))
            .bind(r.started_at_ms)
            .bind(crate::now_ms())
            .bind(&doc)
            .execute(&self.pool)
            .await?
            .rows_affected()
            > 0;
        if written || insert_only {
            return Ok(written);
        }
        // Not written: the stored execution had already ended in another state.
        let state: Option<String> = sqlx::query_scalar("SELECT state FROM executions WHERE id = ?")
            .bind(&r.execution_id)
            .fetch_optional(&self.pool)
            .await?;
        Err(StoreError::FinalStateChange {
            id: r.execution_id.clone(),
            state: state.unwrap_or_default(),
            new_state: r.state.as_str().to_owned(),
        })
    }
}

fn list_sql(query: &ListQuery) -> String {
    let mut sql = String::from("SELECT id, doc FROM executions WHERE 1 = 1");
    match query.which {
        Which::Active => sql.push_str(" AND active = 1"),
        Which::History => sql.push_str(" AND active = 0"),
        Which::All => {}
    }
    if query.check.is_some() {
        sql.push_str(" AND check_name = ?");
    }
    if query.cursor.is_some() {
        sql.push_str(" AND id < ?");
    }
    sql.push_str(" ORDER BY id DESC LIMIT ?");
    sql
}

#[async_trait]
impl Store for SqliteStore {
    async fn insert(&self, report: &ExecutionReport) -> Result<bool, StoreError> {
        self.write(report, true).await
    }

    async fn save(&self, report: &ExecutionReport) -> Result<(), StoreError> {
        self.write(report, false).await.map(|_| ())
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
    ) -> Result<(Vec<ExecutionReport>, Vec<ExecutionReport>), StoreError> {
        let limit = i64::from(limit.clamp(1, 1000));
        let mut tx = self.pool.begin().await?;
        let active =
            sqlx::query("SELECT id, doc FROM executions WHERE active = 1 ORDER BY id DESC LIMIT ?")
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
        let history =
            sqlx::query("SELECT id, doc FROM executions WHERE active = 0 ORDER BY id DESC LIMIT ?")
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok((rows_to_reports(active)?, rows_to_reports(history)?))
    }

    async fn unfinished(&self) -> Result<Vec<ExecutionReport>, StoreError> {
        let rows = sqlx::query("SELECT id, doc FROM executions WHERE active = 1 ORDER BY id")
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
}
