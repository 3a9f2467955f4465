//! Group commit: every [`Store::record`](crate::store::Store::record) goes through one
//! writer task, which commits whatever waits (up to [`BATCH_MAX`] records) in one `BEGIN
//! IMMEDIATE` transaction and answers each caller after the commit. SQLite has one writer at a
//! time anyway; one transaction per batch instead of per record is what lets a burst (many
//! jobs ending together, a million executions resumed) be written at the rate it comes. A
//! record still returns only once it is durable; a batch that fails as a whole (not one
//! record's own refusal) is written again record by record, so one bad record never fails
//! the others.

use sqlx::SqlitePool;
use sqlx::sqlite::SqliteConnection;
use tokio::sync::{mpsc, oneshot};

use super::executions::write_row;
use super::outbox::{enqueue, load_alert, save_alert};
use crate::alert::{self, AlertChange, Applied};
use crate::store::rows::ExecutionRow;
use crate::store::{Recorded, StoreError};

/// Records per transaction, at most.
const BATCH_MAX: usize = 512;

/// Records waiting for the writer, at most (callers wait beyond).
const QUEUE: usize = 4096;

/// One record to write.
pub(super) struct Job {
    pub row: ExecutionRow,
    pub changes: Vec<AlertChange>,
    pub insert_only: bool,
    pub reply: oneshot::Sender<Result<Recorded, StoreError>>,
}

/// Starts the writer over `pool`; it ends when every sender is dropped.
pub(super) fn start(pool: SqlitePool) -> mpsc::Sender<Job> {
    let (sender, mut jobs) = mpsc::channel::<Job>(QUEUE);
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(BATCH_MAX);
        while jobs.recv_many(&mut batch, BATCH_MAX).await > 0 {
            match commit(&pool, &batch).await {
                Ok(results) => {
                    for (job, result) in batch.drain(..).zip(results) {
                        let _ = job.reply.send(result);
                    }
                }
                Err(_) if batch.len() > 1 => {
                    for job in batch.drain(..) {
                        let result = match commit(&pool, std::slice::from_ref(&job)).await {
                            Ok(mut results) => results.pop().unwrap_or(Err(StoreError::Closed)),
                            Err(e) => Err(e),
                        };
                        let _ = job.reply.send(result);
                    }
                }
                Err(e) => {
                    for job in batch.drain(..) {
                        let _ = job.reply.send(Err(clone_error(&e)));
                    }
                }
            }
        }
    });
    sender
}

/// The error of a batch of one, for its caller.
fn clone_error(e: &StoreError) -> StoreError {
    StoreError::Batch(e.to_string())
}

/// Writes `jobs` in one transaction: the result of each, or the error that undid them all.
async fn commit(
    pool: &SqlitePool,
    jobs: &[Job],
) -> Result<Vec<Result<Recorded, StoreError>>, StoreError> {
    // IMMEDIATE: take the write lock first (see `write_execution`).
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs {
        results.push(match record(&mut tx, job).await {
            Err(e @ StoreError::FinalStateChange { .. }) => Err(e),
            Err(e) => return Err(e),
            Ok(recorded) => Ok(recorded),
        });
    }
    tx.commit().await?;
    Ok(results)
}

/// One record inside the batch's transaction: the execution row, then (if written) its
/// alert changes and the notifications they queue.
async fn record(conn: &mut SqliteConnection, job: &Job) -> Result<Recorded, StoreError> {
    let written = write_row(conn, &job.row, job.insert_only).await?;
    if !written || job.changes.is_empty() {
        return Ok(Recorded {
            written,
            ..Recorded::default()
        });
    }
    let now = crate::time::now_ms();
    let mut queued = 0;
    let mut transitions = Vec::new();
    for change in &job.changes {
        let prev = load_alert(conn, &change.fingerprint).await?;
        match alert::apply(prev, change, now) {
            Applied::Unchanged => {}
            Applied::Updated(a) => save_alert(conn, &a).await?,
            Applied::Fired(a) | Applied::Resolved(a) => {
                save_alert(conn, &a).await?;
                for t in &a.targets {
                    queued += usize::from(enqueue(conn, &a, t, "new", false, now).await?);
                }
                transitions.push(a);
            }
        }
    }
    Ok(Recorded {
        written: true,
        queued,
        transitions,
    })
}
