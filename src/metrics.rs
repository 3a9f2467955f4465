//! The Prometheus registry and every metric, in one place. Metrics move only through
//! [`internal_events`](crate::internal_events) and the few calls below, so logs and counts
//! agree.
//!
//! Labels are closed sets: check names from config (plus `watch` and `other`), platform names
//! from config, endpoint indexes, API names, outcomes from [`ExecutionState::ALL`] and
//! [`HostOutcome`], condition kinds, and trigger failure codes from a fixed list (else
//! `other`). Never a job id, a host, a URL or an error text. The series of configured checks
//! exist at 0 from start-up.

use std::sync::{LazyLock, RwLock};

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::config::Config;
use crate::internal_events::StatusTable;
use crate::model::alert::{AlertEvent, AlertStatus};
use crate::model::condition::ConditionKind;
use crate::model::outbox::OutboxState;
use crate::model::report::ExecutionReport;
use crate::model::{ErrorClass, ExecutionState, HostOutcome};

/// The results a delivery attempt counts as (`jobwatch_alert_notifications_total{result}`):
/// the end states of [`OutboxState`] an attempt can reach.
const NOTIFICATION_RESULTS: [OutboxState; 4] = [
    OutboxState::Delivered,
    OutboxState::Errored,
    OutboxState::Rejected,
    OutboxState::Silenced,
];

/// Trigger failure codes that get their own label value (bk-job API.md §2.2, §2.4); any other
/// code is `other`, no code (platform unreachable) is `none`.
const KNOWN_CODES: &[i64] = &[
    1210001, 1238001, 9900403, 1240001, 1240002, 1240003, 1240004, 1240005, 1241001, 1241002,
    1241003, 1241004, 1241005, 1241007, 1243001, 1243049, 1243051, 1243052, 1243053, 1244001,
    1244002, 1244003, 1244004, 1244005, 1244014, 1244018, 1244019, 1244022, 1244025, 1244032,
    1244033, 1244034, 1306000, 1640001, 1640301, 1640302, 1640401, 1641301, 1642901, 1642902,
    1642903, 1642904, 1650200, 1650201, 1650401,
];

/// The agent's metrics.
pub struct Metrics {
    registry: Registry,
    checks: RwLock<Vec<String>>,
    executions_total: IntCounterVec,
    execution_duration: HistogramVec,
    active: IntGaugeVec,
    host_results_total: IntCounterVec,
    trigger_failures_total: IntCounterVec,
    platform_requests_total: IntCounterVec,
    platform_request_duration: HistogramVec,
    conditions: IntGaugeVec,
    last_success: IntGaugeVec,
    last_trigger: IntGaugeVec,
    unknown_codes_total: IntCounterVec,
    store_write_failures_total: prometheus::IntCounter,
    shards_held: prometheus::IntGauge,
    shard_changes_total: IntCounterVec,
    callbacks_total: IntCounterVec,
    platform_hints_total: IntCounterVec,
    event_stream_up: IntGaugeVec,
    alert_notifications_total: IntCounterVec,
    alert_outbox_depth: IntGaugeVec,
    alert_transitions_total: IntCounterVec,
    store_pruned_total: IntCounterVec,
}

fn must<T>(r: prometheus::Result<T>) -> T {
    r.expect("static metric definitions are valid")
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = must(IntCounterVec::new(Opts::new(name, help), labels));
    must(registry.register(Box::new(c.clone())));
    c
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = must(IntGaugeVec::new(Opts::new(name, help), labels));
    must(registry.register(Box::new(g.clone())));
    g
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> HistogramVec {
    let h = must(HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets),
        labels,
    ));
    must(registry.register(Box::new(h.clone())));
    h
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn global() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Self {
        let r = Registry::new();
        let build_info = gauge(
            &r,
            "jobwatch_build_info",
            "Build information; always 1.",
            &["version"],
        );
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        Metrics {
            executions_total: counter(
                &r,
                "jobwatch_executions_total",
                "Executions that ended, by final state (outcome).",
                &["check", "platform", "outcome"],
            ),
            execution_duration: histogram(
                &r,
                "jobwatch_execution_duration_seconds",
                "Time from an execution's start to its end.",
                &["check"],
                vec![
                    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0,
                    21600.0,
                ],
            ),
            active: gauge(
                &r,
                "jobwatch_active_executions",
                "Executions being followed now.",
                &["check"],
            ),
            host_results_total: counter(
                &r,
                "jobwatch_host_results_total",
                "Host results of ended executions, by outcome.",
                &["check", "outcome"],
            ),
            trigger_failures_total: counter(
                &r,
                "jobwatch_trigger_failures_total",
                "Submits the platform refused or that could not be made, by platform code.",
                &["check", "platform", "code"],
            ),
            platform_requests_total: counter(
                &r,
                "jobwatch_platform_requests_total",
                "Platform API requests, by endpoint index and result (ok, transient, permanent, not_found).",
                &["platform", "endpoint", "api", "result"],
            ),
            platform_request_duration: histogram(
                &r,
                "jobwatch_platform_request_duration_seconds",
                "Latency of platform API requests.",
                &["platform", "api"],
                vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ],
            ),
            conditions: gauge(
                &r,
                "jobwatch_conditions",
                "Active executions with a condition holding (stuck, stragglers, platform_unreachable).",
                &["check", "condition"],
            ),
            last_success: gauge(
                &r,
                "jobwatch_last_success_timestamp_seconds",
                "Unix time of the check's last execution that succeeded (0: none since start).",
                &["check"],
            ),
            last_trigger: gauge(
                &r,
                "jobwatch_last_trigger_timestamp_seconds",
                "Unix time of the check's last trigger attempt (0: none since start).",
                &["check"],
            ),
            unknown_codes_total: counter(
                &r,
                "jobwatch_unknown_status_codes_total",
                "Status codes from a platform that jobwatch's tables do not know, by table.",
                &["table"],
            ),
            store_write_failures_total: {
                let c = must(prometheus::IntCounter::new(
                    "jobwatch_store_write_failures_total",
                    "Execution state writes the store refused or failed.",
                ));
                must(r.register(Box::new(c.clone())));
                c
            },
            shards_held: {
                let g = must(prometheus::IntGauge::new(
                    "jobwatch_shards_held",
                    "Shards this replica holds a lease on (PostgreSQL store; 0 with SQLite).",
                ));
                must(r.register(Box::new(g.clone())));
                g
            },
            shard_changes_total: {
                let c = counter(
                    &r,
                    "jobwatch_shard_changes_total",
                    "Shard leases this replica acquired (of a free shard), took over (from a replica whose lease expired), released (balancing, stop) or lost (expired or moved), by change.",
                    &["change"],
                );
                for change in ["acquired", "taken_over", "released", "lost"] {
                    c.with_label_values(&[change]);
                }
                c
            },
            callbacks_total: {
                let c = counter(
                    &r,
                    "jobwatch_callbacks_total",
                    "bk-job job-end callbacks received, by result: accepted (a poll was asked for), forged (wrong token or unknown execution), malformed (right token, body without a job_instance_id: a poll was still asked for), off (no [callbacks] here).",
                    &["result"],
                );
                for result in crate::internal_events::CallbackResult::ALL {
                    c.with_label_values(&[result.as_str()]);
                }
                c
            },
            platform_hints_total: counter(
                &r,
                "jobwatch_platform_hints_total",
                "Hints from a platform's event stream that a followed execution's job may have moved (Salt: a minion's return on salt-api's /events), each making that execution's next poll due now, by platform.",
                &["platform"],
            ),
            event_stream_up: gauge(
                &r,
                "jobwatch_event_stream_up",
                "Whether the platform's event stream is open now (1) or not (0), for platforms that follow one (Salt with events = true).",
                &["platform"],
            ),
            alert_notifications_total: counter(
                &r,
                "jobwatch_alert_notifications_total",
                "Notification delivery attempts, by receiver and result (delivered, errored = will retry, rejected; silenced = held by a silence, not attempted).",
                &["receiver", "result"],
            ),
            alert_outbox_depth: gauge(
                &r,
                "jobwatch_alert_outbox_depth",
                "Notifications waiting in the outbox (pending or errored), by receiver.",
                &["receiver"],
            ),
            alert_transitions_total: counter(
                &r,
                "jobwatch_alert_transitions_total",
                "Alerts that started firing or resolved, by alertname and status.",
                &["alertname", "status"],
            ),
            store_pruned_total: counter(
                &r,
                "jobwatch_store_pruned_total",
                "Rows deleted by retention ([store] retention), by table (executions, notifications).",
                &["table"],
            ),
            registry: r,
            checks: RwLock::new(Vec::new()),
        }
    }

    /// Declares the configured checks, platforms (with their endpoints) and receivers: their
    /// series exist at 0 from now on, so `rate()` and `absent()` work from the first scrape.
    pub fn declare(&self, config: &Config) {
        let mut checks = self.checks.write().expect("metrics lock");
        *checks = config.checks.iter().map(|c| c.name.clone()).collect();
        for (name, platform) in &config.platforms {
            let (apis, endpoints): (&[&str], usize) = match platform {
                crate::config::PlatformConfig::BkJob(s) => {
                    (&crate::config::bkjob::APIS, s.endpoints.len())
                }
                crate::config::PlatformConfig::Salt(s) => {
                    if s.events {
                        self.platform_hints_total
                            .with_label_values(&[name.as_str()]);
                        self.event_stream_up
                            .with_label_values(&[name.as_str()])
                            .set(0);
                    }
                    (&crate::config::salt::APIS, s.endpoints.len())
                }
                crate::config::PlatformConfig::Local => continue,
            };
            for &api in apis {
                self.platform_request_duration
                    .with_label_values(&[name.as_str(), api]);
                for endpoint in 0..endpoints {
                    for result in
                        std::iter::once("ok").chain(ErrorClass::ALL.map(ErrorClass::as_str))
                    {
                        self.platform_requests_total.with_label_values(&[
                            name.as_str(),
                            &endpoint.to_string(),
                            api,
                            result,
                        ]);
                    }
                }
            }
        }
        for table in ["job", "host"] {
            self.unknown_codes_total.with_label_values(&[table]);
        }
        for table in ["executions", "notifications"] {
            self.store_pruned_total.with_label_values(&[table]);
        }
        for receiver in config.alerts.receivers.keys() {
            for result in NOTIFICATION_RESULTS {
                self.alert_notifications_total
                    .with_label_values(&[receiver.as_str(), result.as_str()]);
            }
            self.alert_outbox_depth
                .with_label_values(&[receiver.as_str()])
                .set(0);
        }
        for event in crate::model::alert::AlertEvent::ALL {
            for status in ["firing", "resolved"] {
                self.alert_transitions_total
                    .with_label_values(&[event.alertname(), status]);
            }
        }
        for check in &config.checks {
            let (name, platform) = (check.name.as_str(), check.platform.as_str());
            self.active.with_label_values(&[name]).set(0);
            self.last_success.with_label_values(&[name]).set(0);
            self.last_trigger.with_label_values(&[name]).set(0);
            self.execution_duration.with_label_values(&[name]);
            self.trigger_failures_total
                .with_label_values(&[name, platform, "none"]);
            for state in ExecutionState::ALL.into_iter().filter(|s| s.is_final()) {
                self.executions_total
                    .with_label_values(&[name, platform, state.as_str()]);
            }
            for outcome in [
                HostOutcome::Success,
                HostOutcome::Failed,
                HostOutcome::AgentError,
                HostOutcome::Timeout,
            ] {
                self.host_results_total
                    .with_label_values(&[name, outcome.as_str()]);
            }
            for kind in ConditionKind::ALL {
                self.conditions
                    .with_label_values(&[name, kind.as_str()])
                    .set(0);
            }
        }
    }

    /// The label for `check`: its name when configured (or `watch`), else `other`.
    fn check_label(&self, check: &str) -> String {
        let known = self
            .checks
            .read()
            .expect("metrics lock")
            .iter()
            .any(|c| c == check);
        if known || check == crate::model::WATCH_CHECK {
            check.to_owned()
        } else {
            "other".to_owned()
        }
    }

    /// Counts an execution that ended: its outcome, duration and host results.
    pub fn execution_ended(&self, r: &ExecutionReport) {
        let check = self.check_label(&r.check);
        self.executions_total
            .with_label_values(&[check.as_str(), r.platform.as_str(), r.state.as_str()])
            .inc();
        if r.state == ExecutionState::Skipped {
            return;
        }
        self.execution_duration
            .with_label_values(&[check.as_str()])
            .observe(r.duration_seconds);
        for h in &r.hosts {
            self.host_results_total
                .with_label_values(&[check.as_str(), h.outcome.as_str()])
                .inc();
        }
        if r.state == ExecutionState::Succeeded {
            self.last_success
                .with_label_values(&[check.as_str()])
                .set(crate::time::now_ms() / 1000);
        }
        if r.state == ExecutionState::TriggerFailed {
            let code = match r.trigger_code {
                None => "none".to_owned(),
                Some(c) if KNOWN_CODES.contains(&c) => c.to_string(),
                Some(_) => "other".to_owned(),
            };
            self.trigger_failures_total
                .with_label_values(&[check.as_str(), r.platform.as_str(), code.as_str()])
                .inc();
        }
    }

    /// A trigger of `check` is being attempted now.
    pub fn triggered(&self, check: &str) {
        self.last_trigger
            .with_label_values(&[self.check_label(check).as_str()])
            .set(crate::time::now_ms() / 1000);
    }

    /// Sets how many executions of `check` are followed now.
    pub fn set_active(&self, check: &str, count: usize) {
        self.active
            .with_label_values(&[self.check_label(check).as_str()])
            .set(count as i64);
    }

    /// The conditions of one execution of `check` changed from `before` to `after`.
    pub fn conditions_changed(
        &self,
        check: &str,
        before: &[ConditionKind],
        after: &[ConditionKind],
    ) {
        let check = self.check_label(check);
        for kind in ConditionKind::ALL {
            let delta = i64::from(after.contains(&kind)) - i64::from(before.contains(&kind));
            if delta != 0 {
                self.conditions
                    .with_label_values(&[check.as_str(), kind.as_str()])
                    .add(delta);
            }
        }
    }

    /// One platform request: endpoint index, API (a closed list), result (`None`: answered),
    /// latency in seconds.
    pub fn platform_request(
        &self,
        platform: &str,
        endpoint: usize,
        api: &'static str,
        result: Option<ErrorClass>,
        seconds: f64,
    ) {
        let result = result.map_or("ok", ErrorClass::as_str);
        self.platform_requests_total
            .with_label_values(&[platform, &endpoint.to_string(), api, result])
            .inc();
        self.platform_request_duration
            .with_label_values(&[platform, api])
            .observe(seconds);
    }

    /// Rows deleted by retention.
    pub fn store_pruned(&self, executions: u64, notifications: u64) {
        self.store_pruned_total
            .with_label_values(&["executions"])
            .inc_by(executions);
        self.store_pruned_total
            .with_label_values(&["notifications"])
            .inc_by(notifications);
    }

    /// A status code was not in the tables.
    pub fn unknown_status_code(&self, table: StatusTable) {
        self.unknown_codes_total
            .with_label_values(&[table.as_str()])
            .inc();
    }

    /// Unknown status codes counted since start, both tables.
    pub fn unknown_status_codes(&self) -> u64 {
        ["job", "host"]
            .iter()
            .map(|t| self.unknown_codes_total.with_label_values(&[*t]).get())
            .sum()
    }

    /// A store write failed.
    pub fn store_write_failed(&self) {
        self.store_write_failures_total.inc();
    }

    /// This replica holds `n` shards.
    pub fn shards_held(&self, n: usize) {
        self.shards_held.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// `n` shard leases changed hands: `change` is acquired, taken_over, released or lost.
    pub fn shard_changes(&self, change: &'static str, n: usize) {
        self.shard_changes_total
            .with_label_values(&[change])
            .inc_by(n as u64);
    }

    /// A bk-job callback came in and was `result` (a closed set).
    pub fn callback(&self, result: &'static str) {
        self.callbacks_total.with_label_values(&[result]).inc();
    }

    /// A hint from `platform`'s event stream (a configured name).
    pub fn platform_hint(&self, platform: &str) {
        self.platform_hints_total
            .with_label_values(&[platform])
            .inc();
    }

    /// Whether `platform`'s event stream is open.
    pub fn event_stream_up(&self, platform: &str, up: bool) {
        self.event_stream_up
            .with_label_values(&[platform])
            .set(i64::from(up));
    }

    /// A delivery attempt to `receiver` (a configured name) ended with `result`.
    pub fn alert_notification(&self, receiver: &str, result: OutboxState, notifications: usize) {
        self.alert_notifications_total
            .with_label_values(&[receiver, result.as_str()])
            .inc_by(notifications as u64);
    }

    /// Notifications waiting for `receiver`.
    pub fn set_outbox_depth(&self, receiver: &str, depth: i64) {
        self.alert_outbox_depth
            .with_label_values(&[receiver])
            .set(depth);
    }

    /// An alert of `event` fired or resolved.
    pub fn alert_transition(&self, event: AlertEvent, status: AlertStatus) {
        self.alert_transitions_total
            .with_label_values(&[event.alertname(), status.as_str()])
            .inc();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
