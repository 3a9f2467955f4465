//! Alert semantics: which events alert, their stable labels and fingerprint, when an alert
//! fires and when it resolves, and which receivers it is routed to.
//!
//! Everything here is a pure function of (execution report, configuration, now). The store
//! applies the resulting [`AlertChange`]s in the same transaction as the execution's state
//! change ([`crate::store::Store::record`]), and queues a notification per routed receiver on
//! each transition (the outbox); [`crate::notify`] delivers.
//!
//! **Model** (Alertmanager's): an alert is identified by its labels (`alertname`, `check`,
//! `platform`, `severity`, `class`, plus static rule labels) → a [`fingerprint`]. It is
//! *firing* while at least one *holder* holds it, *resolved* once none does:
//! * outcome alerts (`trigger_failed`, `failed`, `timed_out`, `lost`, `hosts_failed`) are held
//!   for the check by its failing executions, and resolve on health: when a later execution
//!   of the check **succeeds** (`hosts_failed`: succeeds with every host). Another failure
//!   (trigger failed, lost, timed out) keeps them firing and raises its own. `cancelled`
//!   changes nothing.
//! * condition alerts (`stuck`, `stragglers`, `platform_unreachable`) are held by each
//!   running execution that has the condition; they resolve when the last one clears it or
//!   ends.
//! * `skipped` (a scheduled tick that did not run: overlap, or missed while jobwatch was down)
//!   is held until a later tick of the check runs.

mod apply;
mod evaluate;
pub mod redact;
pub mod render;
mod route;

use std::sync::Arc;

pub use self::apply::{AlertChange, Applied, apply, fingerprint};
pub use self::redact::Redactor;
use crate::config::{AlertsConfig, Config};
pub use crate::model::alert::{
    Alert, AlertCause, AlertEvent, AlertStatus, HostLine, LogTailView, SEVERITIES, STABLE_LABELS,
    Target,
};

/// The alert rules, routes and redactions of a configuration, ready to evaluate reports.
/// Its `Debug` leaves the secrets out.
#[derive(Clone, Debug, Default)]
pub struct Alerting {
    config: AlertsConfig,
    redactor: Arc<Redactor>,
}

impl Alerting {
    /// From a validated configuration, masking the platforms' and the API's secrets.
    pub fn new(config: &Config) -> Self {
        Self::with_secrets(config, Vec::new())
    }

    /// From a validated configuration, also masking `secrets` (the receivers': the daemon
    /// passes `notify::secrets`).
    pub fn with_secrets(config: &Config, secrets: Vec<String>) -> Self {
        Alerting {
            config: config.alerts.clone(),
            redactor: Arc::new(Redactor::new(config, secrets)),
        }
    }

    /// The redactor (shared with the delivery workers, for stored errors).
    pub fn redactor(&self) -> &Arc<Redactor> {
        &self.redactor
    }

    /// Masks secrets and secret-looking parts of `text` ([`Redactor::redact`]).
    pub fn redact(&self, text: &str) -> String {
        self.redactor.redact(text)
    }
}

#[cfg(test)]
mod tests;
