//! jobwatch runs scripts on fleets of hosts through a job platform (bk-job, or the local host),
//! follows every job instance to its true end, and reports every host.
//!
//! Layers, from the ground up (ARCHITECTURE.md; `tests/layers.rs` holds them): [`time`],
//! [`tls`], [`model`], [`schedule`] → [`config`] → [`internal_events`], [`metrics`] →
//! [`platform`] → [`tracker`] → [`alert`] → [`store`] → [`notify`] → [`daemon`] → [`api`] →
//! [`app`] and the binary.

#![warn(missing_docs)]

pub mod alert;
pub mod api;
pub mod app;
pub mod config;
pub mod ctl;
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

use crate::model::ExecutionState;

pub use self::time::now_ms;
pub use self::tls::install_crypto_provider;

pub use self::platform::build as build_platform;

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
