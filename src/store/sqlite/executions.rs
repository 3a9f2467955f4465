//! The executions table: one atomic upsert per state change (a final state is never left),
//! decoding stored documents, listing.

use sqlx::{Row, SqliteConnection};

use super::*;
use crate::store::rows::{ExecutionRow, decode};

pub(super) fn rows_to_reports(
    rows: Vec<sqlx::sqlite::SqliteRow>,
) -> Result<Vec<ExecutionReport>, StoreError> {
    rows.iter()
        .map(|row| decode(row.get::<&str, _>("id"), row.get::<&str, _>("doc")))
        .collect()
}

/// Writes the execution row: one atomic statement (no read-then-write: in WAL mode a deferred
/// transaction that read first fails with SQLITE_BUSY when another writer got there in
/// between; transactions with alert changes begin IMMEDIATE). Returns whether a row was
/// written.
pub(super) async fn write_execution(
    conn: &mut SqliteConnection,
    r: &ExecutionReport,
    insert_only: bool,
) -> Result<bool, StoreError> {
    write_row(conn, &ExecutionRow::of(r)?, insert_only).await
}

/// Writes `r` (see [`write_execution`]).
pub(super) async fn write_row(
    conn: &mut SqliteConnection,
    r: &ExecutionRow,
    insert_only: bool,
) -> Result<bool, StoreError> {
    let insert = "INSERT INTO executions (id, check_name, platform, origin, scheduled_at, trigger_status, state, active, job_instance_id, created_at, updated_at, doc, next_poll_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";
    // The update never moves a final state to another one: `active = 1` (not yet final)
    // or the same state (more detail, e.g. logs, for the same end).
    let sql = if insert_only {
        format!("{insert} ON CONFLICT DO NOTHING")
    } else {
        format!(
            "{insert} ON CONFLICT (id) DO UPDATE SET trigger_status = excluded.trigger_status, state = excluded.state,
             active = excluded.active, job_instance_id = excluded.job_instance_id, updated_at = excluded.updated_at,
             doc = excluded.doc, next_poll_at = excluded.next_poll_at WHERE executions.active = 1 OR executions.state = excluded.state"
        )
    };
    let written = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&r.id)
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
        .execute(&mut *conn)
        .await?
        .rows_affected()
        > 0;
    if written || insert_only {
        return Ok(written);
    }
    // Not written: the stored execution had already ended in another state.
    let state: Option<String> = sqlx::query_scalar("SELECT state FROM executions WHERE id = ?")
        .bind(&r.id)
        .fetch_optional(&mut *conn)
        .await?;
    Err(StoreError::FinalStateChange {
        id: r.id.clone(),
        state: state.unwrap_or_default(),
        new_state: r.state.to_owned(),
    })
}

pub(super) fn list_sql(query: &ListQuery) -> String {
    let mut sql = String::from("SELECT id, doc FROM executions WHERE 1 = 1");
    match query.which {
        Which::Active => sql.push_str(" AND active = 1"),
        Which::History => sql.push_str(" AND active = 0"),
        Which::All => {}
        Which::In(_) => sql.push_str(" AND state = ?"),
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
