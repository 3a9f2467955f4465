//! 200 executions at once through the library against the emulator with 30 % random transient
//! faults (502, 503, 429, TCP resets) on every API: each ends in the state the emulator says,
//! with every host's true status and log, and no job is submitted twice.

use std::sync::Arc;
use std::time::Duration;

use bkjob_emulator::{Emulator, Scenario};
use jobwatch::config::CheckConfig;
use jobwatch::model::{ExecutionState, Host, HostOutcome, TriggerStatus};
use jobwatch::platform::bkjob::{BkJob, BkJobSettings, Door};
use jobwatch::tracker::{Execution, PollPolicy, Silent};

const EXECUTIONS_PER_DOOR: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_percent_transient_faults_change_no_outcome() {
    let scenario = Scenario::from_toml(
        r#"
[faults]
failure_ratio = 0.3
seed = 7

[[hosts]]
bk_host_id = 1
ip = "10.0.0.1"
duration = "200ms"
status = 9
log = "ok 1\n"

[[hosts]]
bk_host_id = 2
ip = "10.0.0.2"
duration = "300ms"
status = 310
log = "agent down\n"

[[hosts]]
bk_host_id = 3
ip = "10.0.0.3"
start_after = "100ms"
duration = "300ms"
status = 104
exit_code = 2
log = "exit 2\n"
"#,
    )
    .unwrap();
    let emulator = Emulator::start("127.0.0.1:0".parse().unwrap(), scenario)
        .await
        .unwrap();
    let check = Arc::new(CheckConfig {
        account_alias: Some("root".into()),
        timeout: Duration::from_secs(60),
        log_max_bytes: 4096,
        poll: PollPolicy {
            first_poll: Duration::from_millis(100),
            interval: Duration::from_millis(100),
            max_interval: Duration::from_millis(400),
            ..PollPolicy::default()
        },
        ..CheckConfig::new(
            "faulty",
            "bk",
            "true",
            vec![Host::by_id(1), Host::by_id(2), Host::by_id(3)],
        )
    });
    let mut tasks = Vec::new();
    for door in [Door::Apigw, Door::Esb] {
        let url = if door == Door::Apigw {
            emulator.apigw_url()
        } else {
            emulator.esb_url()
        };
        let platform = Arc::new(
            BkJob::new(BkJobSettings {
                name: "bk".into(),
                endpoints: vec![url.parse().unwrap()],
                door,
                app_code: "jobwatch".into(),
                app_secret: "emulator-secret".to_owned().into(),
                username: "admin".into(),
                scope_type: "biz".into(),
                scope_id: "2".into(),
                request_timeout: Duration::from_secs(5),
                flow: jobwatch::platform::endpoints::FlowSettings {
                    max_per_second: 1000,
                    ..Default::default()
                },
                callbacks: false,
            })
            .unwrap(),
        );
        for _ in 0..EXECUTIONS_PER_DOOR {
            let platform = platform.clone();
            let check = check.clone();
            tasks.push(tokio::spawn(async move {
                let execution = Execution::new(&check, "bk", platform);
                execution.run(&mut Silent).await
            }));
        }
    }
    let expected = [
        (1, 9, HostOutcome::Success, "ok 1\n"),
        (2, 310, HostOutcome::AgentError, "agent down\n"),
        (3, 104, HostOutcome::Failed, "exit 2\n"),
    ];
    for task in tasks {
        let report = task.await.unwrap();
        assert_eq!(
            report.trigger_status,
            TriggerStatus::Triggered,
            "{}",
            report.reason
        );
        assert_eq!(report.state, ExecutionState::Failed, "{}", report.reason);
        for (id, status, outcome, log) in expected {
            let h = report
                .hosts
                .iter()
                .find(|h| h.identity.bk_host_id == Some(id))
                .unwrap();
            assert_eq!(
                (h.status, h.outcome, h.log.as_str()),
                (Some(status), outcome, log),
                "{}",
                report.reason
            );
        }
    }
    let state = emulator.state();
    assert_eq!(
        state.jobs_created(),
        2 * EXECUTIONS_PER_DOOR,
        "no execution submitted twice or lost"
    );
    assert!(
        state.stats.requests("fast_execute_script") > (2 * EXECUTIONS_PER_DOOR) as u64,
        "faults were injected: some submits had to be retried"
    );
}
