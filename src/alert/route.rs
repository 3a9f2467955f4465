//! Labels of an event (rules: severity, static labels, enabled) and the receivers they are
//! routed to (routes: match, match_re, continue, group timers), as in Alertmanager.

use std::collections::BTreeMap;

use super::*;
use crate::model::report::ExecutionReport;

impl Alerting {
    /// The labels of `event` for `report`, or `None` when a rule disables it.
    pub fn labels(
        &self,
        event: AlertEvent,
        report: &ExecutionReport,
    ) -> Option<BTreeMap<String, String>> {
        let mut severity = event.default_severity().to_owned();
        let mut extra = BTreeMap::new();
        for rule in &self.config.rules {
            let applies = (rule.events.is_empty() || rule.events.contains(&event))
                && (rule.checks.is_empty() || rule.checks.contains(&report.check));
            if !applies {
                continue;
            }
            if !rule.enabled {
                return None;
            }
            if let Some(s) = &rule.severity {
                severity = s.clone();
            }
            extra.extend(rule.labels.clone());
        }
        let mut labels = extra;
        labels.insert("alertname".into(), event.alertname().into());
        labels.insert("check".into(), report.check.clone());
        labels.insert("platform".into(), report.platform.clone());
        labels.insert("severity".into(), severity);
        labels.insert("class".into(), event.class().into());
        Some(labels)
    }

    /// The receivers `labels` are routed to: routes in order, the first match wins unless
    /// it says `continue`.
    pub fn route(&self, labels: &BTreeMap<String, String>) -> Vec<Target> {
        let mut targets = Vec::new();
        for (i, route) in self.config.routes.iter().enumerate() {
            if !route.matchers.iter().all(|m| m.matches(labels)) {
                continue;
            }
            let group: Vec<String> = route
                .group_by
                .iter()
                .map(|l| format!("{l}={:?}", labels.get(l).map_or("", String::as_str)))
                .collect();
            targets.push(Target {
                receiver: route.receiver.clone(),
                group_key: format!("{i}:{{{}}}", group.join(",")),
                group_wait_ms: millis(route.group_wait),
                group_interval_ms: millis(route.group_interval),
                repeat_interval_ms: millis(route.repeat_interval),
                send_resolved: self
                    .config
                    .receivers
                    .get(&route.receiver)
                    .is_none_or(|r| r.send_resolved),
            });
            if !route.continue_matching {
                break;
            }
        }
        targets
    }
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
