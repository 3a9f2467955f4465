//! One type per observable thing: its `emit()` writes the log line and moves the metric
//! together, so logs and metrics never disagree (STYLE.md #3). Nothing else touches the
//! registry ([`crate::metrics`]); label values come from closed sets (enums, configured
//! names).

mod alerts;
mod api;
mod executions;
mod platform;

pub use self::alerts::{
    AlertNotificationAttempted, AlertTransition, NotificationsSilenced, OutboxDepth,
};
pub use self::api::ApiChange;
pub use self::executions::{
    ActiveExecutions, CallbackReceived, CallbackResult, ConditionsChanged, ExecutionEnded,
    ExecutionTriggered, ShardChange, ShardsChanged, StorePruned, StoreWriteFailed,
};
pub use self::platform::{
    EventStreamUp, PlatformHint, PlatformRequestDone, PlatformRequestFailed, StatusTable,
    UnknownStatusCode, unknown_status_codes_seen,
};
