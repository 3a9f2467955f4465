//! jobwatch runs scripts on fleets of hosts through a job platform (bk-job, or the local host),
//! follows every job instance to its true end, and reports every host.
//!
//! Layout, in pipeline order:
//! * [`config`]: typed configuration (TOML + `JOBWATCH__` env), validated with every issue at once;
//! * [`platform`]: one adapter per platform behind [`platform::Platform`] (bk-job, local);
//! * [`tracker`]: submit, poll on policy, decide the final state, fetch logs;
//! * [`model`]: the normalized vocabulary every part speaks;
//! * [`internal_events`]: one type per observable thing (log line + counter).

#![warn(missing_docs)]

pub mod alert;
pub mod api;
pub mod config;
pub mod daemon;
pub mod internal_events;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod platform;
pub mod schedule;
pub mod store;
pub mod time;
pub mod tls;
pub mod tracker;

use std::sync::Arc;

use crate::config::PlatformConfig;
use crate::model::ExecutionState;
use crate::platform::{Platform, PlatformError};

pub use self::time::now_ms;
pub use self::tls::install_crypto_provider;

/// Builds the adapter for a configured platform; the local platform keeps its script files
/// under `<data_dir>/local` (and sweeps what a process that is gone left there).
pub fn build_platform(
    config: &PlatformConfig,
    data_dir: &std::path::Path,
) -> Result<Arc<dyn Platform>, PlatformError> {
    Ok(match config {
        PlatformConfig::BkJob(settings) => {
            Arc::new(platform::bkjob::BkJob::new(settings.as_ref().clone())?)
        }
        PlatformConfig::Local => Arc::new(platform::local::Local::new(&data_dir.join("local"))?),
    })
}

/// Process exit codes of `jobwatch exec` (also in the README).
pub mod exit {
    /// Every host succeeded.
    pub const SUCCEEDED: u8 = 0;
    /// The job ended and at least one host did not succeed.
    pub const FAILED: u8 = 1;
    /// The platform refused the submit (or its outcome stayed unknown).
    pub const TRIGGER_FAILED: u8 = 2;
    /// The job did not end before the deadline or poll budget, or the platform lost it.
    pub const TIMED_OUT_OR_LOST: u8 = 3;
    /// Internal error (a bug or an unusable environment).
    pub const SOFTWARE: u8 = 70;
    /// The configuration (or the command line) is wrong (sysexits `EX_CONFIG`).
    pub const CONFIG: u8 = 78;
    /// Interrupted by the user (SIGINT/SIGTERM); a terminate was sent.
    pub const INTERRUPTED: u8 = 130;
}

/// The exit code for an execution's final state.
pub fn exit_code(state: ExecutionState) -> u8 {
    match state {
        ExecutionState::Succeeded => exit::SUCCEEDED,
        ExecutionState::Failed => exit::FAILED,
        ExecutionState::TriggerFailed => exit::TRIGGER_FAILED,
        ExecutionState::TimedOut | ExecutionState::Lost => exit::TIMED_OUT_OR_LOST,
        ExecutionState::Cancelled => exit::INTERRUPTED,
        ExecutionState::Pending | ExecutionState::Running | ExecutionState::Skipped => {
            exit::SOFTWARE
        }
    }
}
