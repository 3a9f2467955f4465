//! Live progress on stderr: indicatif bars on a terminal, plain lines otherwise.

use std::collections::HashMap;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use jobwatch::model::HostOutcome;
use jobwatch::tracker::{Observer, TrackerEvent};

/// Hosts shown one bar each; above this only the summary bar is drawn.
const MAX_HOST_BARS: usize = 20;

/// Plain lines: one per trigger, per host change and per failed poll.
#[derive(Default)]
pub struct Lines {
    seen: HashMap<String, i64>,
}

impl Observer for Lines {
    fn on_event(&mut self, event: &TrackerEvent<'_>) {
        match event {
            TrackerEvent::Submitting { task_name } => eprintln!("submitting {task_name}"),
            TrackerEvent::SubmitRetry { error } => eprintln!("submit retry: {error}"),
            TrackerEvent::Triggered { job } => {
                eprintln!("{job} started")
            }
            TrackerEvent::Snapshot { hosts, .. } => {
                for h in hosts.iter() {
                    if let Some(status) = h.status
                        && self.seen.insert(h.host.clone(), status) != Some(status)
                    {
                        eprintln!(
                            "host {}: {status} {} ({})",
                            h.host, h.status_label, h.outcome
                        );
                    }
                }
            }
            TrackerEvent::PollFailed { error } => {
                eprintln!("poll failed (will keep polling): {error}")
            }
            TrackerEvent::FetchingLogs { hosts } => eprintln!("fetching logs of {hosts} host(s)"),
            TrackerEvent::Conditions { conditions: [] } => {
                eprintln!("conditions cleared")
            }
            TrackerEvent::Conditions { conditions } => {
                for c in conditions.iter() {
                    eprintln!("condition {c}");
                }
            }
        }
    }
}

/// indicatif bars: a summary bar of ended hosts, and one line per host for small fleets.
pub struct Bars {
    multi: MultiProgress,
    summary: ProgressBar,
    hosts: HashMap<String, ProgressBar>,
}

impl Bars {
    pub fn new(hosts: usize) -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let summary = multi.add(ProgressBar::new(hosts as u64));
        summary.set_style(
            ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} hosts ended  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        summary.enable_steady_tick(Duration::from_millis(120));
        summary.set_message("submitting");
        Bars {
            multi,
            summary,
            hosts: HashMap::new(),
        }
    }
}

impl Observer for Bars {
    fn on_event(&mut self, event: &TrackerEvent<'_>) {
        match event {
            TrackerEvent::Submitting { .. } => self.summary.set_message("submitting"),
            TrackerEvent::SubmitRetry { error } => {
                self.summary.set_message(format!("submit retry: {error}"))
            }
            TrackerEvent::Triggered { job } => self.summary.set_message(job.to_string()),
            TrackerEvent::Snapshot { snapshot, hosts } => {
                self.summary.set_length(hosts.len() as u64);
                self.summary
                    .set_position(hosts.iter().filter(|h| h.outcome.is_final()).count() as u64);
                let failing = hosts.iter().filter(|h| h.outcome.is_failure()).count();
                self.summary.set_message(format!(
                    "job {} ({}), {failing} failing",
                    snapshot.label.en, snapshot.status
                ));
                if hosts.len() <= MAX_HOST_BARS {
                    for h in hosts.iter() {
                        let key = h.host.clone();
                        let bar = self.hosts.entry(key.clone()).or_insert_with(|| {
                            let bar = self.multi.add(ProgressBar::new_spinner());
                            bar.set_style(
                                ProgressStyle::with_template("  {msg}")
                                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                            );
                            bar
                        });
                        let text = match h.status {
                            Some(status) => {
                                format!("{key:<28} {status} {} ({})", h.status_label, h.outcome)
                            }
                            None => format!("{key:<28} not reported yet"),
                        };
                        if h.outcome == HostOutcome::Success || h.outcome.is_failure() {
                            bar.finish_with_message(text);
                        } else {
                            bar.set_message(text);
                        }
                    }
                }
            }
            TrackerEvent::PollFailed { error } => self
                .summary
                .set_message(format!("poll failed, retrying: {error}")),
            TrackerEvent::Conditions { conditions } => {
                let names: Vec<&str> = conditions.iter().map(|c| c.kind.as_str()).collect();
                if !names.is_empty() {
                    self.summary
                        .println(format!("condition: {}", names.join(", ")));
                }
                for c in conditions.iter() {
                    self.summary.println(format!("  {c}"));
                }
            }
            TrackerEvent::FetchingLogs { hosts } => self
                .summary
                .set_message(format!("fetching logs of {hosts} host(s)")),
        }
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        self.summary.finish_and_clear();
        for bar in self.hosts.values() {
            bar.finish();
        }
        let _ = self.multi.clear();
    }
}
