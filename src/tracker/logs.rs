//! The logs of an ended execution: every host's, failing hosts first, in batches, each
//! bounded to the check's `log_max_bytes`.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use super::{ExecutionReport, note_failure};
use crate::model::{Host, LogTail};
use crate::platform::{JobRef, Platform, PlatformError};

/// How long (in backoff sleeps) one batch of logs keeps being retried.
const LOG_RETRY_BUDGET: Duration = Duration::from_secs(20);

/// Fetches the logs of every host of `report`, failing hosts first, in batches of at most
/// 500 (bk-job's limit, API.md §6), each batch retried for up to 20 s of backoff; a
/// batch that still fails marks its hosts with the error and the others are still fetched.
/// Each log is cut to its last `limit` bytes (the cut is marked).
pub async fn fetch_logs(
    platform: &dyn Platform,
    job: &JobRef,
    limit: usize,
    report: &mut ExecutionReport,
) {
    let mut order: Vec<usize> = (0..report.hosts.len()).collect();
    order.sort_by_key(|&i| !report.hosts[i].outcome.is_failure());
    for batch in order.chunks(crate::platform::bkjob::LOG_BATCH_MAX_HOSTS) {
        let targets: Vec<Host> = batch
            .iter()
            .map(|&i| report.hosts[i].identity.clone())
            .collect();
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(2))
            .without_max_times()
            .with_total_delay(Some(LOG_RETRY_BUDGET))
            .with_jitter();
        let fetched = (|| platform.host_logs(job, &targets))
            .retry(backoff)
            .when(PlatformError::is_transient)
            .notify(|e: &PlatformError, d| note_failure(&report.platform, e, Some(d)))
            .await;
        match fetched {
            Ok(logs) => {
                for &i in batch {
                    let host = &mut report.hosts[i];
                    match logs.iter().find(|l| l.host.same_as(&host.identity)) {
                        Some(log) => host.set_log(LogTail::bounded(&log.content, limit)),
                        None => {
                            host.log_error =
                                Some("the platform returned no log for this host".into())
                        }
                    }
                }
            }
            Err(e) => {
                note_failure(&report.platform, &e, None);
                for &i in batch {
                    report.hosts[i].log_error = Some(e.to_string());
                }
            }
        }
    }
}
