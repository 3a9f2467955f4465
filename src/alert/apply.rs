//! The alert state machine: a holder takes or releases an alert → fired, resolved, updated
//! or unchanged; and the fingerprint of a label set. Pure.

use std::collections::BTreeMap;

use sha2::Digest as _;

use super::{Alert, AlertCause, AlertStatus, Target};

/// The fingerprint of a label set: the first 16 hex digits of SHA-256 over the sorted
/// `name=value` pairs, each followed by a 0xff byte (stable across restarts and versions).
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    let mut hash = sha2::Sha256::new();
    for (name, value) in labels {
        hash.update(name.as_bytes());
        hash.update(b"=");
        hash.update(value.as_bytes());
        hash.update([0xff]);
    }
    hex::encode(&hash.finalize()[..8])
}

/// One holder taking or releasing one alert.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertChange {
    /// The alert.
    pub fingerprint: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Execution id, or the check for outcome/schedule alerts.
    pub holder: String,
    /// `Some` = hold with this cause; `None` = release.
    pub cause: Option<AlertCause>,
    /// Why it is released (shown when it resolves).
    pub note: String,
    /// Routed receivers.
    pub targets: Vec<Target>,
}

/// What applying a change did.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// Nothing to write.
    Unchanged,
    /// Stored detail changed (holders, cause), no transition.
    Updated(Alert),
    /// It started firing: notify.
    Fired(Alert),
    /// It resolved: notify.
    Resolved(Alert),
}

/// Applies `change` to the stored alert `prev` at `now_ms`.
pub fn apply(prev: Option<Alert>, change: &AlertChange, now_ms: i64) -> Applied {
    match (prev, &change.cause) {
        (None, None) => Applied::Unchanged,
        (prev, Some(cause)) => {
            let was_firing = prev
                .as_ref()
                .is_some_and(|a| a.status == AlertStatus::Firing);
            let mut alert = prev.unwrap_or_else(|| Alert {
                fingerprint: change.fingerprint.clone(),
                labels: change.labels.clone(),
                status: AlertStatus::Resolved,
                holders: Vec::new(),
                starts_at_ms: now_ms,
                ends_at_ms: None,
                updated_at_ms: now_ms,
                cause: cause.clone(),
                resolution: None,
                targets: Vec::new(),
            });
            if was_firing
                && alert.holders.contains(&change.holder)
                && alert.cause == *cause
                && alert.targets == change.targets
            {
                return Applied::Unchanged;
            }
            if !alert.holders.contains(&change.holder) {
                alert.holders.push(change.holder.clone());
            }
            alert.cause = cause.clone();
            alert.targets = change.targets.clone();
            alert.updated_at_ms = now_ms;
            if was_firing {
                Applied::Updated(alert)
            } else {
                alert.status = AlertStatus::Firing;
                alert.starts_at_ms = now_ms;
                alert.ends_at_ms = None;
                alert.resolution = None;
                Applied::Fired(alert)
            }
        }
        (Some(mut alert), None) => {
            let before = alert.holders.len();
            alert.holders.retain(|h| h != &change.holder);
            if alert.holders.len() == before {
                return Applied::Unchanged;
            }
            alert.updated_at_ms = now_ms;
            if alert.holders.is_empty() && alert.status == AlertStatus::Firing {
                alert.status = AlertStatus::Resolved;
                alert.ends_at_ms = Some(now_ms);
                alert.resolution = Some(change.note.clone());
                alert.targets = change.targets.clone();
                Applied::Resolved(alert)
            } else {
                Applied::Updated(alert)
            }
        }
    }
}
