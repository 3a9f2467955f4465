//! The Prometheus registry and every metric, in one place. Labels are closed sets: check
//! names from config (plus `watch` and `other`), platform names from config, outcomes from
//! [`ExecutionState::ALL`]. Every series exists at 0 from start-up.

use prometheus::{Encoder, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::config::Config;
use crate::model::ExecutionState;
use crate::tracker::ExecutionReport;

/// The agent's metrics.
pub struct Metrics {
    registry: Registry,
    checks: Vec<String>,
    executions_total: IntCounterVec,
    active: IntGaugeVec,
    last_success: IntGaugeVec,
}

fn must<T>(r: prometheus::Result<T>) -> T {
    r.expect("static metric definitions are valid")
}

impl Metrics {
    /// Registers every metric with its series for the configured checks at 0.
    pub fn new(config: &Config) -> Self {
        let registry = Registry::new();
        let executions_total = must(IntCounterVec::new(
            Opts::new(
                "jobwatch_executions_total",
                "Executions that ended, by final state (outcome).",
            ),
            &["check", "platform", "outcome"],
        ));
        let active = must(IntGaugeVec::new(
            Opts::new(
                "jobwatch_active_executions",
                "Executions being followed now.",
            ),
            &["check"],
        ));
        let last_success = must(IntGaugeVec::new(
            Opts::new(
                "jobwatch_last_success_timestamp_seconds",
                "Unix time of the last execution of the check that succeeded (0: none since start).",
            ),
            &["check"],
        ));
        let build_info = must(IntGaugeVec::new(
            Opts::new("jobwatch_build_info", "Build information; always 1."),
            &["version"],
        ));
        must(registry.register(Box::new(executions_total.clone())));
        must(registry.register(Box::new(active.clone())));
        must(registry.register(Box::new(last_success.clone())));
        must(registry.register(Box::new(build_info.clone())));
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let checks: Vec<String> = config.checks.iter().map(|c| c.name.clone()).collect();
        for check in &config.checks {
            active.with_label_values(&[check.name.as_str()]).set(0);
            last_success
                .with_label_values(&[check.name.as_str()])
                .set(0);
            for state in ExecutionState::ALL.into_iter().filter(|s| s.is_final()) {
                executions_total.with_label_values(&[
                    check.name.as_str(),
                    check.platform.as_str(),
                    state.as_str(),
                ]);
            }
        }
        Metrics {
            registry,
            checks,
            executions_total,
            active,
            last_success,
        }
    }

    fn check_label<'a>(&'a self, check: &'a str) -> &'a str {
        if check == crate::daemon::WATCH_CHECK || self.checks.iter().any(|c| c == check) {
            check
        } else {
            "other"
        }
    }

    /// Counts an execution that ended.
    pub fn execution_ended(&self, r: &ExecutionReport) {
        let check = self.check_label(&r.check);
        self.executions_total
            .with_label_values(&[check, r.platform.as_str(), r.state.as_str()])
            .inc();
        if r.state == ExecutionState::Succeeded {
            self.last_success
                .with_label_values(&[check])
                .set(crate::now_ms() / 1000);
        }
    }

    /// Sets how many executions of `check` are followed now.
    pub fn set_active(&self, check: &str, count: usize) {
        self.active
            .with_label_values(&[self.check_label(check)])
            .set(count as i64);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
