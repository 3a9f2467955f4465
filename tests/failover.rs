//! Endpoint failover: a gateway node goes away mid-run (the "leader moved" story), and every
//! endpoint goes away for longer than `unreachable_after`. No execution is dropped or failed;
//! the true final states are recorded.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bkjob_emulator::{Emulator, Scenario};
use jobwatch::config::CheckConfig;
use jobwatch::model::{ExecutionState, Host, TriggerStatus};
use jobwatch::platform::bkjob::{BkJob, BkJobSettings, Door};
use jobwatch::platform::endpoints::FlowSettings;
use jobwatch::tracker::detect::{ConditionKind, DetectPolicy};
use jobwatch::tracker::{Execution, ExecutionReport, Journal, PollPolicy, Silent};

const HOSTS: &str = r#"
[[hosts]]
bk_host_id = 1
ip = "10.0.0.1"
duration = "2500ms"
log = "one\n"
[[hosts]]
bk_host_id = 2
ip = "10.0.0.2"
duration = "3s"
status = 104
exit_code = 1
log = "two\n"
"#;

fn check() -> CheckConfig {
    CheckConfig {
        account_alias: Some("root".into()),
        timeout: Duration::from_secs(60),
        log_max_bytes: 4096,
        poll: PollPolicy {
            first_poll: Duration::from_millis(100),
            interval: Duration::from_millis(200),
            max_interval: Duration::from_millis(400),
            detect: DetectPolicy {
                unreachable_after: Duration::from_secs(1),
                ..DetectPolicy::default()
            },
            ..PollPolicy::default()
        },
        ..CheckConfig::new(
            "failover",
            "bk",
            "true",
            vec![Host::by_id(1), Host::by_id(2)],
        )
    }
}

fn platform(emulator: &Emulator) -> Arc<BkJob> {
    Arc::new(
        BkJob::new(BkJobSettings {
            name: "bk".into(),
            endpoints: (0..emulator.addrs().len())
                .map(|i| emulator.apigw_url_of(i).parse().unwrap())
                .collect(),
            door: Door::Apigw,
            app_code: "jobwatch".into(),
            app_secret: "emulator-secret".to_owned().into(),
            username: "admin".into(),
            scope_type: "biz".into(),
            scope_id: "2".into(),
            request_timeout: Duration::from_secs(2),
            flow: FlowSettings {
                max_per_second: 1000,
                cooldown: Duration::from_secs(2),
                ..FlowSettings::default()
            },
            callbacks: false,
        })
        .unwrap(),
    )
}

/// Keeps the condition kinds of every saved state.
#[derive(Default)]
struct Recorder(Mutex<Vec<Vec<ConditionKind>>>);

#[async_trait]
impl Journal for Recorder {
    async fn save(&self, report: &ExecutionReport) -> Result<(), jobwatch::tracker::JournalError> {
        self.0
            .lock()
            .unwrap()
            .push(report.conditions.iter().map(|c| c.kind).collect());
        Ok(())
    }
}

async fn run_all(
    emulator: &Emulator,
    executions: usize,
    journal: Arc<Recorder>,
) -> Vec<ExecutionReport> {
    let platform = platform(emulator);
    let check = Arc::new(check());
    let tasks: Vec<_> = (0..executions)
        .map(|_| {
            let (platform, check, journal) = (platform.clone(), check.clone(), journal.clone());
            tokio::spawn(async move {
                let execution = Execution {
                    journal: journal.as_ref(),
                    ..Execution::new(&check, "bk", platform)
                };
                execution.run(&mut Silent).await
            })
        })
        .collect();
    let mut reports = Vec::new();
    for t in tasks {
        reports.push(t.await.unwrap());
    }
    reports
}

fn assert_true_end(reports: &[ExecutionReport]) {
    for r in reports {
        assert_eq!(r.trigger_status, TriggerStatus::Triggered, "{}", r.reason);
        // The emulator's truth: host 1 succeeds, host 2 exits 1.
        assert_eq!(r.state, ExecutionState::Failed, "{}", r.reason);
        let statuses: Vec<Option<i64>> = r.hosts.iter().map(|h| h.status).collect();
        assert_eq!(statuses, vec![Some(9), Some(104)], "{}", r.reason);
        assert!(
            r.hosts.iter().all(|h| !h.log.is_empty()),
            "logs fetched: {:?}",
            r.hosts
        );
        assert!(r.conditions.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_moves_mid_run_and_nothing_is_dropped_or_failed() {
    let scenario = Scenario::from_toml(&format!(
        "{HOSTS}\n[[faults.outages]]\nlistener = 0\nfrom = \"1s\"\n"
    ))
    .unwrap();
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let emulator = Emulator::start_many(&[any, any], scenario).await.unwrap();
    let reports = run_all(&emulator, 20, Arc::default()).await;
    assert_true_end(&reports);
    assert_eq!(
        emulator.state().jobs_created(),
        20,
        "none dropped, none submitted twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_down_is_platform_unreachable_then_the_true_end() {
    let outages = "[[faults.outages]]\nlistener = 0\nfrom = \"1s\"\nuntil = \"4s\"\n[[faults.outages]]\nlistener = 1\nfrom = \"1s\"\nuntil = \"4s\"\n";
    let scenario = Scenario::from_toml(&format!("{HOSTS}\n{outages}")).unwrap();
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let emulator = Emulator::start_many(&[any, any], scenario).await.unwrap();
    let journal = Arc::new(Recorder::default());
    let reports = run_all(&emulator, 5, journal.clone()).await;
    assert_true_end(&reports);
    let saved = journal.0.lock().unwrap();
    assert!(
        saved
            .iter()
            .any(|c| c.contains(&ConditionKind::PlatformUnreachable)),
        "platform_unreachable was raised while every endpoint was down: {saved:?}"
    );
    assert_eq!(emulator.state().jobs_created(), 5);
}
