//! Durable state: every execution, from its first moment to its end.
//!
//! **Table** `executions` (see `migrations/`): one row per execution, the whole
//! [`ExecutionReport`] as JSON in `doc`, and indexed projections of it (`state`, `active`,
//! `check_name`, `scheduled_at`, …).
//!
//! **Invariants**
//! * An execution is recorded (`trigger_status = pending`) *before* its submit leaves, and
//!   each state change is saved before the side effects it causes (log fetch; alerts later).
//! * `active` is 1 exactly while `state` is `pending` or `running`: every execution is in
//!   exactly one of *active* or *history*, by construction of one column.
//! * A final state is never left: a save that would change a final state to another state is
//!   refused ([`StoreError::FinalStateChange`]); saving more detail (logs) in the same final
//!   state is allowed.
//! * A scheduled tick `(check, scheduled_at)` is recorded at most once.
//!
//! **What survives a crash** (`kill -9`, power loss with SQLite's WAL and `synchronous =
//! NORMAL`: the last transactions before the loss may roll back, never half-apply): every
//! execution recorded; an execution whose submit may have left is `pending` and is reconciled
//! on the next start, never submitted again; a running one resumes polling.
//!
//! **Retention**: nothing is deleted yet; history grows with every execution.

mod sqlite;

use async_trait::async_trait;

pub use self::sqlite::SqliteStore;
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

/// Durable execution state (SQLite now; PostgreSQL later, behind the same trait).
#[async_trait]
pub trait Store: Send + Sync {
    /// Records a new execution. `Ok(false)`: its scheduled tick is already recorded (nothing
    /// was written).
    async fn insert(&self, report: &ExecutionReport) -> Result<bool, StoreError>;

    /// Saves the current state of an execution (inserting it if new). Refuses to change a
    /// final state.
    async fn save(&self, report: &ExecutionReport) -> Result<(), StoreError>;

    /// One execution.
    async fn get(&self, id: &str) -> Result<Option<ExecutionReport>, StoreError>;

    /// A page of executions, newest first.
    async fn list(&self, query: &ListQuery) -> Result<Vec<ExecutionReport>, StoreError>;

    /// The newest `limit` active and history executions, read in one transaction, so that no
    /// execution is in both lists or in neither.
    async fn active_and_history(
        &self,
        limit: u32,
    ) -> Result<(Vec<ExecutionReport>, Vec<ExecutionReport>), StoreError>;

    /// Every execution not yet ended (to resume at start).
    async fn unfinished(&self) -> Result<Vec<ExecutionReport>, StoreError>;

    /// Whether the store answers (for readiness).
    async fn ping(&self) -> Result<(), StoreError>;

    /// The latest scheduled tick recorded for `check` (Unix ms).
    async fn last_tick(&self, check: &str) -> Result<Option<i64>, StoreError>;
}

/// A shared store is where the tracker journals executions.
#[async_trait]
impl crate::tracker::Journal for std::sync::Arc<dyn Store> {
    async fn save(&self, report: &ExecutionReport) -> Result<(), StoreError> {
        Store::save(self.as_ref(), report).await
    }
}
