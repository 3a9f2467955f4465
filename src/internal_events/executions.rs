//! What happens to executions: triggers, ends, the active count, conditions, and the store
//! that keeps them (write failures, retention).

use crate::metrics;
use crate::model::condition::ConditionKind;
use crate::model::report::ExecutionReport;

/// A trigger of a check is being attempted now.
pub struct ExecutionTriggered<'a> {
    /// The check.
    pub check: &'a str,
}

impl ExecutionTriggered<'_> {
    /// Sets `jobwatch_last_trigger_timestamp_seconds{check}`; logged at DEBUG.
    pub fn emit(self) {
        tracing::debug!(check = self.check, "Execution triggered.");
        metrics::global().triggered(self.check);
    }
}

/// An execution reached its final state.
pub struct ExecutionEnded<'a> {
    /// Its record.
    pub report: &'a ExecutionReport,
}

impl ExecutionEnded<'_> {
    /// Counts its outcome, duration and host results (`jobwatch_executions_total`, …);
    /// logged at DEBUG with its reason (alerts tell the failures).
    pub fn emit(self) {
        let r = self.report;
        tracing::debug!(
            check = %r.check,
            execution_id = %r.execution_id,
            state = r.state.as_str(),
            reason = %r.reason,
            "Execution ended."
        );
        metrics::global().execution_ended(r);
    }
}

/// How many executions of a check this process follows now.
pub struct ActiveExecutions<'a> {
    /// The check.
    pub check: &'a str,
    /// How many.
    pub count: usize,
}

impl ActiveExecutions<'_> {
    /// Sets `jobwatch_active_executions{check}`.
    pub fn emit(self) {
        metrics::global().set_active(self.check, self.count);
    }
}

/// The conditions holding for one execution changed.
pub struct ConditionsChanged<'a> {
    /// Its check.
    pub check: &'a str,
    /// Its id.
    pub execution_id: &'a str,
    /// The kinds holding before.
    pub before: &'a [ConditionKind],
    /// The kinds holding now.
    pub after: &'a [ConditionKind],
}

impl ConditionsChanged<'_> {
    /// Moves `jobwatch_conditions{check,condition}`; logged at INFO.
    pub fn emit(self) {
        let names = |kinds: &[ConditionKind]| {
            kinds
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        tracing::info!(
            check = self.check,
            execution_id = self.execution_id,
            before = %names(self.before),
            now = %names(self.after),
            "Conditions changed."
        );
        metrics::global().conditions_changed(self.check, self.before, self.after);
    }
}

/// An execution's state could not be written to the store.
pub struct StoreWriteFailed<'a> {
    /// The execution.
    pub execution_id: &'a str,
    /// What failed.
    pub error: &'a dyn std::fmt::Display,
}

impl StoreWriteFailed<'_> {
    /// Logs at ERROR (an operator must look: state may be lost on a crash) and counts it
    /// (`jobwatch_store_write_failures_total`).
    pub fn emit(self) {
        metrics::global().store_write_failed();
        tracing::error!(execution_id = self.execution_id, error = %self.error, "Cannot write execution state to the store.");
    }
}

/// Retention deleted rows.
pub struct StorePruned {
    /// Ended executions.
    pub executions: u64,
    /// Delivered, rejected or dropped notifications.
    pub notifications: u64,
}

impl StorePruned {
    /// Counts them (`jobwatch_store_pruned_total{table}`); logged at INFO when any.
    pub fn emit(self) {
        if self.executions + self.notifications > 0 {
            tracing::info!(
                executions = self.executions,
                notifications = self.notifications,
                "Pruned what is older than the retention."
            );
        }
        metrics::global().store_pruned(self.executions, self.notifications);
    }
}

/// How this replica's shard leases changed (several replicas on PostgreSQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardChange {
    /// Free shards acquired.
    Acquired,
    /// Shards of a replica whose lease expired, taken over.
    TakenOver,
    /// Shards given up (balancing, clean stop).
    Released,
    /// Shards lost: the lease expired before it could be renewed, or the shard moved.
    Lost,
}

/// Shards changed hands.
pub struct ShardsChanged<'a> {
    /// How.
    pub change: ShardChange,
    /// Which.
    pub shards: &'a [u32],
    /// Held now, in all.
    pub held: usize,
    /// Why (lost: the store's error, or "moved").
    pub why: Option<&'a dyn std::fmt::Display>,
}

impl ShardsChanged<'_> {
    /// Counts (`jobwatch_shard_changes_total{change}`, `jobwatch_shards_held`) and logs: lost
    /// at WARN (executions move to other replicas), the others at INFO.
    pub fn emit(self) {
        let m = metrics::global();
        let change = match self.change {
            ShardChange::Acquired => "acquired",
            ShardChange::TakenOver => "taken_over",
            ShardChange::Released => "released",
            ShardChange::Lost => "lost",
        };
        m.shard_changes(change, self.shards.len());
        m.shards_held(self.held);
        if self.shards.is_empty() {
            return;
        }
        let why = self.why.map(|w| w.to_string()).unwrap_or_default();
        if self.change == ShardChange::Lost {
            tracing::warn!(change, shards = ?self.shards, held = self.held, why, "Shard leases lost; their executions are followed by the replica that takes them.");
        } else {
            tracing::info!(
                change,
                count = self.shards.len(),
                held = self.held,
                "Shard leases changed."
            );
        }
    }
}

/// What became of a bk-job callback (the `result` label of `jobwatch_callbacks_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackResult {
    /// The token is the execution's: a poll was asked for.
    Accepted,
    /// A wrong token (or an unknown execution id, which has no right token).
    Forged,
    /// The right token, but no `job_instance_id` in the body: a poll was asked for anyway.
    Malformed,
    /// This daemon takes no callbacks (`[callbacks] public_url` unset).
    Off,
}

impl CallbackResult {
    /// Every result.
    pub const ALL: [CallbackResult; 4] = [
        CallbackResult::Accepted,
        CallbackResult::Forged,
        CallbackResult::Malformed,
        CallbackResult::Off,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackResult::Accepted => "accepted",
            CallbackResult::Forged => "forged",
            CallbackResult::Malformed => "malformed",
            CallbackResult::Off => "off",
        }
    }
}

/// A bk-job callback came in.
pub struct CallbackReceived<'a> {
    /// The execution id in its URL.
    pub execution_id: &'a str,
    /// The job instance its body names, if any.
    pub job_instance_id: Option<u64>,
    /// What became of it.
    pub result: CallbackResult,
}

impl CallbackReceived<'_> {
    /// Counts (`jobwatch_callbacks_total{result}`) and logs: accepted at DEBUG (one per job),
    /// the others at WARN (someone calls with a wrong token, or bk-job sends what jobwatch
    /// cannot read).
    pub fn emit(self) {
        metrics::global().callback(self.result.as_str());
        let (execution_id, job_instance_id, result) = (
            self.execution_id,
            self.job_instance_id,
            self.result.as_str(),
        );
        match self.result {
            CallbackResult::Accepted => {
                tracing::debug!(execution_id, job_instance_id, "Callback: polling now.")
            }
            CallbackResult::Malformed => {
                tracing::warn!(
                    execution_id,
                    result,
                    "Callback without a job_instance_id; polling now anyway."
                )
            }
            CallbackResult::Forged | CallbackResult::Off => {
                tracing::warn!(execution_id, result, "Callback ignored.")
            }
        }
    }
}
