//! Durable state: every execution, from its first moment to its end.
//!
//! **Tables** (see `migrations/`):
//! * `executions`: one row per execution, the whole [`ExecutionReport`] as JSON in `doc`, and
//!   indexed projections of it (`state`, `active`, `check_name`, `scheduled_at`, …);
//! * `alerts`: one row per alert fingerprint: status, holders, latest cause
//!   ([`crate::alert::Alert`]);
//! * `notifications`: the outbox and notification log: one row per notification of one
//!   alert to one receiver, with its due time, attempts, outcome and last error (and the
//!   silence that held it, `silenced_by`);
//! * `silences`: one row per silence ([`Silence`]), kept until the retention after its end.
//!
//! **Invariants**
//! * An execution is recorded (`trigger_status = pending`) when it is accepted, and marked
//!   `submitting` at the last moment before its submit leaves (after the rate limits let it
//!   go); each state change is saved before the side effects it causes (log fetch, alerts).
//! * `active` is 1 exactly while `state` is `pending` or `running`: every execution is in
//!   exactly one of *active* or *history*, by construction of one column.
//! * A final state is never left: a save that would change a final state to another state is
//!   refused ([`StoreError::FinalStateChange`]); saving more detail (logs) in the same final
//!   state is allowed.
//! * A scheduled tick `(check, scheduled_at)` is recorded at most once.
//! * An execution's state change, the alert changes it causes and the notifications those
//!   queue are written in one transaction ([`Store::record`]): a crash can neither lose nor
//!   invent an alert. A notification is marked delivered after the receiver took it, so a
//!   crash in between re-sends it once (at most one duplicate per notification).
//! * A waiting notification of an alert takes the alert's newer state (one row per alert
//!   and receiver waits at a time).
//! * [`Store::record`] returns once its transaction committed. SQLite commits records in
//!   groups (one writer task, one transaction for whatever waits): the same guarantees,
//!   written at the rate they come.
//! * An active execution that is being polled carries `next_poll_at` (Unix ms) as of its
//!   last saved change: a time in the past means "due now".
//!
//! **What survives a crash** (`kill -9`, power loss with SQLite's WAL and `synchronous =
//! NORMAL`: the last transactions before the loss may roll back, never half-apply): every
//! execution recorded; a `pending` one never left and is submitted on the next start; one
//! whose submit may have left (`submitting`, `trigger_unknown`) is reconciled, never submitted
//! again; a running one resumes polling.
//!
//! **Retention** (`[store] retention`, default 30 days): ended executions whose last write is
//! older, and delivered or rejected notifications older than that (but the newest of each
//! alert and receiver), are deleted in small batches ([`Store::prune`]), each its own short
//! transaction; the space is given back ([`Store::reclaim`]: SQLite incremental vacuum), so
//! the file stops growing once the retention is reached. Active executions, and ended ones
//! whose logs were still being fetched, are never pruned.

mod postgres;
pub(crate) mod rows;
mod sqlite;

use async_trait::async_trait;

pub use self::postgres::{PgSettings, PgStore};
pub use self::sqlite::SqliteStore;
use crate::alert::{Alert, AlertChange};
use crate::model::outbox::{Notification, Resend};
use crate::model::shard::Fence;
use crate::model::silence::Silence;
use crate::tracker::ExecutionReport;

/// Why the store could not do something.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed (I/O, corruption, locked beyond the busy timeout).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored document could not be read back.
    #[error("stored execution {id} is unreadable: {error}")]
    Corrupt {
        /// The execution.
        id: String,
        /// The decoder's words.
        error: String,
    },
    /// A save tried to move an execution out of its final state.
    #[error("execution {id} already ended as {state}; it cannot become {new_state}")]
    FinalStateChange {
        /// The execution.
        id: String,
        /// Its stored final state.
        state: String,
        /// The refused state.
        new_state: String,
    },
    /// The data directory could not be prepared.
    #[error("cannot prepare {path}: {error}")]
    Io {
        /// The path.
        path: String,
        /// What failed.
        error: std::io::Error,
    },
    /// A write failed with the transaction it was committed in (the database's error, as
    /// text: it was also every other caller's).
    #[error("database error: {0}")]
    Batch(String),
    /// The store's writer has stopped (the process is ending).
    #[error("the store is closed")]
    Closed,
    /// The write was refused: this replica no longer holds the execution's shard under the
    /// lease it was loaded with (another replica took it over, or the lease expired). The
    /// replica drops the shard's executions without writing.
    #[error("execution {id}: shard {shard} is no longer held under epoch {epoch}")]
    Fenced {
        /// The execution.
        id: String,
        /// Its shard.
        shard: u32,
        /// The epoch it was written under.
        epoch: i64,
    },
}

impl StoreError {
    /// Whether the database could not be reached (connection refused or lost, pool timed
    /// out): a write to retry once it answers, not a refusal.
    pub fn is_unreachable(&self) -> bool {
        match self {
            StoreError::Database(e) => matches!(
                e,
                sqlx::Error::Io(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::Protocol(_)
            ),
            StoreError::Batch(_) => true,
            _ => false,
        }
    }
}

/// Which executions a listing returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// `pending` or `running`.
    Active,
    /// Ended.
    History,
    /// Both.
    All,
    /// Those in this one state.
    In(crate::model::ExecutionState),
}

/// A listing request: newest first, `limit` rows after `cursor` (an execution id).
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// Active, history or both.
    pub which: Which,
    /// Only this check.
    pub check: Option<String>,
    /// At most this many (1–1000).
    pub limit: u32,
    /// Only executions older than this id (the last id of the previous page).
    pub cursor: Option<String>,
}

/// What the status page shows, read in one transaction.
#[derive(Debug, Clone, Default)]
pub struct Board {
    /// The newest active executions.
    pub active: Vec<ExecutionReport>,
    /// The newest ended executions (older than the page cursor, if one was given).
    pub history: Vec<ExecutionReport>,
    /// How many executions are active.
    pub active_total: u64,
    /// How many ended executions are kept.
    pub history_total: u64,
}

/// One execution in a line: what the check board's strip shows of it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct OutcomeLine {
    /// The execution.
    pub execution_id: String,
    /// Its state (`succeeded`, `failed`, `running`, …).
    pub state: String,
    /// Its trigger status (`triggered`, `trigger_failed`, `skipped`, `maintenance`, …).
    pub trigger_status: String,
    /// `cli`, `schedule`, `api` or `watch`.
    pub origin: String,
    /// When it was recorded, Unix ms.
    pub created_at_ms: i64,
    /// Its last change, Unix ms (for an ended one: about when it ended).
    pub updated_at_ms: i64,
}

/// What one [`Store::prune`] batch deleted (silences ended before the cutoff go too, uncounted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Ended executions.
    pub executions: u64,
    /// Delivered or rejected notifications.
    pub notifications: u64,
}

/// What a [`Store::record`] wrote.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recorded {
    /// The execution row was written (`false`: an insert-only record whose tick exists).
    pub written: bool,
    /// Notifications queued (alert transitions × routed receivers).
    pub queued: usize,
    /// Alerts that started firing or resolved.
    pub transitions: Vec<Alert>,
}

/// How a delivery attempt of a group of notifications ended, to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// Delivered.
    Delivered,
    /// Transient failure: retry at `due_at_ms`.
    Errored {
        /// Next attempt, Unix ms.
        due_at_ms: i64,
        /// Why (no secrets).
        error: String,
    },
    /// Permanent failure, or given up.
    Rejected {
        /// Why (no secrets).
        error: String,
    },
    /// Not attempted: a silence covers the alert. The notification waits (`silenced`) until
    /// `until_ms`, its attempts unchanged.
    Silenced {
        /// The silence's end, Unix ms.
        until_ms: i64,
        /// The silence's id.
        silence_id: String,
    },
}

/// Durable execution state: SQLite ([`SqliteStore`], one process) or PostgreSQL ([`PgStore`],
/// shared by replicas), with the same guarantees.
#[async_trait]
pub trait Store: Send + Sync {
    /// Writes `report` and applies the alert `changes` it causes in one transaction:
    /// alert rows change, and each firing/resolved transition queues one notification per
    /// routed receiver (the outbox). `insert_only`: record a new execution, doing nothing
    /// (and applying no change) if its scheduled tick is already recorded. Refuses to change
    /// a final state ([`StoreError::FinalStateChange`]); then nothing is written.
    async fn record(
        &self,
        report: &ExecutionReport,
        changes: &[AlertChange],
        insert_only: bool,
    ) -> Result<Recorded, StoreError>;

    /// Notifications of `receiver` due at `now_ms` (pending or errored), oldest first.
    async fn due_notifications(
        &self,
        receiver: &str,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError>;

    /// When the next notification of `receiver` is due (Unix ms), if any is waiting.
    async fn next_due(&self, receiver: &str) -> Result<Option<i64>, StoreError>;

    /// Stores how an attempt at `notifications` (id, version) ended. A notification that took
    /// a newer alert state meanwhile (another version) is left waiting, to be sent again.
    async fn finish_notifications(
        &self,
        notifications: &[(i64, i64)],
        finish: &Finish,
        now_ms: i64,
    ) -> Result<(), StoreError>;

    /// Queues repeats for `receiver`: firing alerts routed to it, last notified longer ago
    /// than the route's `repeat_interval` (or the receiver's own `resend`), and resolved
    /// alerts within the receiver's resolved re-send window. Returns how many.
    async fn enqueue_repeats(
        &self,
        receiver: &str,
        resend: Resend,
        now_ms: i64,
    ) -> Result<usize, StoreError>;

    /// Notifications of `receiver` not yet delivered or rejected.
    async fn outbox_depth(&self, receiver: &str) -> Result<i64, StoreError>;

    /// Marks waiting notifications of receivers not in `known` as rejected (the receiver was
    /// removed from the configuration). Returns how many.
    async fn reject_orphans(&self, known: &[String], now_ms: i64) -> Result<u64, StoreError>;

    /// The newest notifications (of one receiver), newest first.
    async fn list_notifications(
        &self,
        receiver: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError>;

    /// Every alert (firing first, then the most recently changed).
    async fn list_alerts(&self) -> Result<Vec<Alert>, StoreError>;

    /// Stores a new silence.
    async fn create_silence(&self, silence: &Silence) -> Result<(), StoreError>;

    /// Every silence kept (expired ones until the retention prunes them), the latest ending
    /// first.
    async fn list_silences(&self) -> Result<Vec<Silence>, StoreError>;

    /// The silences not yet ended at `now_ms` (active or starting later).
    async fn current_silences(&self, now_ms: i64) -> Result<Vec<Silence>, StoreError>;

    /// Ends silence `id` at `now_ms` (a pending one never starts), noting `by`; notifications
    /// it held become due at once (sent unless another silence covers them). `None`: no such
    /// silence; one already ended is returned unchanged.
    async fn expire_silence(
        &self,
        id: &str,
        by: &str,
        now_ms: i64,
    ) -> Result<Option<Silence>, StoreError>;

    /// Notifications of `fingerprint` (of any receiver), newest first.
    async fn notifications_of(
        &self,
        fingerprint: &str,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError>;

    /// Records a new execution without alert changes. `Ok(false)`: its scheduled tick is
    /// already recorded (nothing was written).
    async fn insert(&self, report: &ExecutionReport) -> Result<bool, StoreError> {
        Ok(self.record(report, &[], true).await?.written)
    }

    /// Saves the current state of an execution (inserting it if new) without alert changes.
    /// Refuses to change a final state.
    async fn save(&self, report: &ExecutionReport) -> Result<(), StoreError> {
        self.record(report, &[], false).await.map(|_| ())
    }

    /// One execution.
    async fn get(&self, id: &str) -> Result<Option<ExecutionReport>, StoreError>;

    /// A page of executions, newest first.
    async fn list(&self, query: &ListQuery) -> Result<Vec<ExecutionReport>, StoreError>;

    /// The newest `limit` active and history executions (history older than the id
    /// `history_before`, when given) and the true totals of both, read in one transaction,
    /// so that no execution is in both lists or in neither.
    async fn active_and_history(
        &self,
        limit: u32,
        history_before: Option<&str>,
    ) -> Result<Board, StoreError>;

    /// Deletes at most `batch` ended executions whose last write is older than `cutoff_ms`
    /// (Unix ms) and at most `batch` delivered or rejected notifications created before it
    /// (keeping the newest of each alert and receiver). Call again while a batch came back
    /// full.
    async fn prune(&self, cutoff_ms: i64, batch: u32) -> Result<Pruned, StoreError>;

    /// Gives the space freed by pruning back to the file system.
    async fn reclaim(&self) -> Result<(), StoreError>;

    /// Up to `limit` executions not yet ended, in id order, after the id `after` (to resume
    /// at start, page by page).
    async fn unfinished_page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ExecutionReport>, StoreError>;

    /// Every execution not yet ended.
    async fn unfinished(&self) -> Result<Vec<ExecutionReport>, StoreError> {
        let mut all: Vec<ExecutionReport> = Vec::new();
        loop {
            let after = all.last().map(|r| r.execution_id.clone());
            let page = self.unfinished_page(after.as_deref(), 1000).await?;
            let done = page.len() < 1000;
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }

    /// Ended executions whose logs were still being fetched when jobwatch stopped
    /// (`logs_pending`): their outcome alerts have not been evaluated yet.
    async fn logs_pending(&self) -> Result<Vec<ExecutionReport>, StoreError>;

    /// Whether the store answers (for readiness).
    async fn ping(&self) -> Result<(), StoreError>;

    /// The latest scheduled tick recorded for `check` (Unix ms).
    async fn last_tick(&self, check: &str) -> Result<Option<i64>, StoreError>;

    /// How many executions `which` selects (of `check`, when given): a listing's true total.
    async fn count(&self, check: Option<&str>, which: Which) -> Result<u64, StoreError>;

    /// One line per execution of `check`, newest first, at most `limit` (the check board's
    /// strip: read from the indexed columns, never the documents).
    async fn outcomes(&self, check: &str, limit: u32) -> Result<Vec<OutcomeLine>, StoreError>;

    /// The newest execution of `check` in `state` (e.g. the last success).
    async fn last_in_state(
        &self,
        check: &str,
        state: &str,
    ) -> Result<Option<OutcomeLine>, StoreError>;

    /// How many executions of `check` have not ended (whoever follows them).
    async fn active_count(&self, check: &str) -> Result<u64, StoreError>;

    /// The shard leases, when several replicas share this store (PostgreSQL); `None`: this
    /// process holds every execution (SQLite).
    fn shards(&self) -> Option<&dyn Shards> {
        None
    }
}

/// A shard this replica holds, as the database says after a renewal or an acquisition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// The shard and the epoch of this replica's acquisition.
    pub fence: Fence,
    /// Acquired from another replica whose lease had expired (a takeover).
    pub taken_over: bool,
}

/// What a renewal found.
#[derive(Debug, Clone, Default)]
pub struct Renewal {
    /// The shards still held, their leases now extended.
    pub held: Vec<Fence>,
    /// Replicas alive (this one included), by their heartbeats.
    pub live_replicas: u32,
    /// How soon the first lease held by another replica expires, if it is not renewed (zero:
    /// a shard is free now): when to try to take it over.
    pub next_expiry: Option<std::time::Duration>,
}

/// What wakes a replica about executions another replica recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    /// This execution was recorded (by any replica).
    Recorded(String),
    /// Wake-ups may have been missed (the listening connection was lost): look again.
    Rescan,
    /// Poll this execution now, if it is followed here (and, when given, is this job
    /// instance): a callback reached another replica.
    PollNow(String, Option<u64>),
}

/// Shard leases in the shared database: the one coordination between replicas. Every time
/// is the database's (`now()`); a lease is only ever extended by its holder, and an
/// acquisition bumps the shard's epoch, which fences the previous holder's writes.
#[async_trait]
pub trait Shards: Send + Sync {
    /// This replica's id (a UUIDv7, fresh per process).
    fn replica_id(&self) -> &str;

    /// The number of shards of this database.
    fn shard_count(&self) -> u32;

    /// Renews this replica's heartbeat and every lease it still holds to `now() + lease`,
    /// each in one statement; a lease already expired is not renewed (it is lost).
    async fn renew(&self, lease: std::time::Duration) -> Result<Renewal, StoreError>;

    /// Acquires up to `want` shards that nobody holds (free, or their lease expired), in a
    /// random order, skipping rows another replica is acquiring: each gets `now() + lease`
    /// and a new epoch.
    async fn acquire(&self, want: u32, lease: std::time::Duration)
    -> Result<Vec<Held>, StoreError>;

    /// Gives `shards` up at once (the others may take them now).
    async fn release(&self, shards: &[u32]) -> Result<(), StoreError>;

    /// Gives every shard up and removes this replica's heartbeat (a clean stop).
    async fn leave(&self) -> Result<(), StoreError>;

    /// Up to `limit` executions of `shards` not yet ended, in id order after `after` ("" for
    /// the first page).
    async fn active_page_in(
        &self,
        shards: &[u32],
        after: &str,
        limit: u32,
    ) -> Result<Vec<ExecutionReport>, StoreError>;

    /// Ended executions of `shards` whose logs were still being fetched.
    async fn logs_pending_in(&self, shards: &[u32]) -> Result<Vec<ExecutionReport>, StoreError>;

    /// Ids of the executions of `shards` not yet ended and not being polled (recorded,
    /// submitting, or a watch not yet polled): what a replica that missed a wake-up looks for.
    async fn untriggered_in(&self, shards: &[u32]) -> Result<Vec<String>, StoreError>;

    /// Tells every replica (`NOTIFY`) that execution `execution_id` should be polled now (a
    /// bk-job callback came to a replica that does not follow it); the one that does polls.
    async fn announce_poll(
        &self,
        execution_id: &str,
        job_instance_id: Option<u64>,
    ) -> Result<(), StoreError>;

    /// Wake-ups (`LISTEN`) about executions any replica records, and polls asked for, until
    /// `stop`.
    fn subscribe(
        &self,
        stop: tokio_util::sync::CancellationToken,
    ) -> tokio::sync::mpsc::Receiver<Wake>;
}

impl From<StoreError> for crate::tracker::JournalError {
    fn from(e: StoreError) -> Self {
        crate::tracker::JournalError(Box::new(e))
    }
}

/// A shared store is where the tracker journals executions.
#[async_trait]
impl crate::tracker::Journal for std::sync::Arc<dyn Store> {
    async fn save(&self, report: &ExecutionReport) -> Result<(), crate::tracker::JournalError> {
        Ok(Store::save(self.as_ref(), report).await?)
    }
}
