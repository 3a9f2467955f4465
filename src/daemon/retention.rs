//! Retention: ended executions and finished notifications older than `[store] retention` are
//! pruned at start and then every [`PRUNE_EVERY`], in small batches (each its own short
//! write transaction, with a pause between, so executions being saved never wait long), and
//! the space is given back to the file system.

use std::sync::Arc;
use std::time::Duration;

use super::Runner;
use crate::store::{Pruned, Store, StoreError};

/// How often retention runs.
pub const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Rows per batch and table.
const BATCH: u32 = 500;

/// The pause between batches.
const BATCH_PAUSE: Duration = Duration::from_millis(50);

/// Starts the retention task (it stops with the runner).
pub fn start(runner: &Arc<Runner>) {
    let runner = runner.clone();
    tokio::spawn(async move {
        let stop = runner.stop_token();
        loop {
            let cutoff = crate::time::now_ms()
                - i64::try_from(runner.config().store.retention.as_millis()).unwrap_or(i64::MAX);
            match prune(runner.store().as_ref(), cutoff, &stop).await {
                Ok(p) => crate::internal_events::StorePruned {
                    executions: p.executions,
                    notifications: p.notifications,
                }
                .emit(),
                Err(e) => {
                    tracing::warn!(error = %e, "Retention could not prune; it tries again later.")
                }
            }
            tokio::select! {
                () = tokio::time::sleep(PRUNE_EVERY) => {}
                () = stop.cancelled() => return,
            }
        }
    });
}

/// Prunes everything older than `cutoff_ms` batch by batch, then gives the space back. Stops early (between batches) when `stop` is cancelled.
pub async fn prune(
    store: &dyn Store,
    cutoff_ms: i64,
    stop: &tokio_util::sync::CancellationToken,
) -> Result<Pruned, StoreError> {
    let mut total = Pruned::default();
    loop {
        let batch = store.prune(cutoff_ms, BATCH).await?;
        total.executions += batch.executions;
        total.notifications += batch.notifications;
        let full = batch.executions == u64::from(BATCH) || batch.notifications == u64::from(BATCH);
        if !full || stop.is_cancelled() {
            break;
        }
        tokio::time::sleep(BATCH_PAUSE).await;
    }
    if total.executions + total.notifications > 0 {
        store.reclaim().await?;
    }
    Ok(total)
}
