//! Alert semantics as tables: which report fires or resolves which alert, for whom.

use std::time::Duration;

use super::*;
use crate::config::CheckConfig;
use std::collections::BTreeMap;

use crate::model::condition::{Condition, ConditionKind, PastCondition};
use crate::model::report::{ExecutionReport, Origin};
use crate::model::{ExecutionState, Host, HostOutcome};
use crate::tracker::report::HostReport;

fn config(alerts: &str) -> Config {
    let text = format!("[platforms.local]\nkind = \"local\"\n{alerts}");
    crate::config::load_text(&text, "test", Vec::new()).unwrap()
}

const ROUTED: &str = r#"
[alerts.receivers.ops]
type = "webhook"
url = "http://127.0.0.1:9/hook"
[alerts.receivers.dba]
type = "webhook"
url = "http://127.0.0.1:9/dba"
send_resolved = false

[[alerts.rules]]
checks = ["db-backup"]
labels = { team = "dba" }
[[alerts.rules]]
events = ["hosts_failed"]
severity = "info"
[[alerts.rules]]
events = ["stragglers"]
enabled = false

[[alerts.routes]]
receiver = "dba"
match = { team = "dba" }
continue = true
[[alerts.routes]]
receiver = "ops"
match_re = { severity = "critical|warning" }
"#;

fn host(name: &str, outcome: HostOutcome, log: &str) -> HostReport {
    HostReport {
        host: name.into(),
        identity: Host::localhost(),
        status: Some(if outcome == HostOutcome::Success {
            9
        } else {
            104
        }),
        status_label: "x".into(),
        status_label_zh: "x".into(),
        outcome,
        exit_code: Some(i64::from(outcome != HostOutcome::Success)),
        error_code: None,
        tag: None,
        duration_seconds: None,
        log: log.into(),
        log_truncated: false,
        log_bytes: log.len(),
        log_error: None,
        facts: None,
    }
}

fn report(check: &str, state: ExecutionState, hosts: Vec<HostReport>) -> ExecutionReport {
    let c = CheckConfig::new(check, "local", "true", vec![Host::localhost()]);
    let mut r = ExecutionReport::new(uuid::Uuid::now_v7().to_string(), &c, "local", "local", "t");
    r.finish(
        state,
        format!("it {}", state.as_str()),
        Duration::from_secs(1),
    );
    r.hosts = hosts;
    r
}

fn held(changes: &[AlertChange]) -> Vec<&str> {
    changes
        .iter()
        .filter(|c| c.cause.is_some())
        .map(|c| c.labels["alertname"].as_str())
        .collect()
}

fn released(changes: &[AlertChange]) -> Vec<&str> {
    changes
        .iter()
        .filter(|c| c.cause.is_none())
        .map(|c| c.labels["alertname"].as_str())
        .collect()
}

#[test]
fn each_failure_holds_its_outcome_alert_and_only_a_success_releases_them() {
    let a = Alerting::new(&config(""));
    let outcome_names = [
        "TriggerFailed",
        "ExecutionFailed",
        "ExecutionTimedOut",
        "ExecutionLost",
        "HostsFailed",
    ];
    for (state, fires) in [
        (ExecutionState::TriggerFailed, Some("TriggerFailed")),
        (ExecutionState::Failed, Some("ExecutionFailed")),
        (ExecutionState::TimedOut, Some("ExecutionTimedOut")),
        (ExecutionState::Lost, Some("ExecutionLost")),
        (ExecutionState::Succeeded, None),
    ] {
        let changes = a.evaluate(&report(
            "disk",
            state,
            vec![host("h1", HostOutcome::Success, "")],
        ));
        assert_eq!(
            held(&changes),
            fires.into_iter().collect::<Vec<_>>(),
            "{state:?}"
        );
        // A success releases every outcome alert; a failure releases none (another failure
        // is no sign of health: ExecutionFailed keeps firing when the next run is lost).
        let mut expected: Vec<&str> = match fires {
            None => outcome_names.to_vec(),
            Some(_) => Vec::new(),
        };
        expected.sort();
        let mut got = released(&changes);
        got.sort();
        assert_eq!(got, expected, "{state:?}");
        assert!(changes.iter().all(|c| c.holder == "check"));
    }
    // Cancelled says nothing about the check; a running save changes nothing.
    assert!(
        a.evaluate(&report("disk", ExecutionState::Cancelled, vec![]))
            .is_empty()
    );
    let mut running = report("disk", ExecutionState::Succeeded, vec![]);
    running.state = ExecutionState::Running;
    assert!(a.evaluate(&running).is_empty());
    // While the logs are fetched, the outcome waits (the alert carries the log tails).
    let mut pending = report("disk", ExecutionState::Failed, vec![]);
    pending.logs_pending = true;
    assert!(a.evaluate(&pending).is_empty());
}

#[test]
fn k_of_n_tolerated_host_failures_raise_hosts_failed_not_execution_failed() {
    let a = Alerting::new(&config(ROUTED));
    let r = report(
        "disk",
        ExecutionState::Succeeded,
        vec![
            host("h1", HostOutcome::Success, ""),
            host("h2", HostOutcome::Failed, "boom\n"),
        ],
    );
    let changes = a.evaluate(&r);
    assert_eq!(held(&changes), ["HostsFailed"]);
    let c = changes.iter().find(|c| c.cause.is_some()).unwrap();
    assert_eq!(c.labels["severity"], "info", "rule severity applies");
    assert!(c.targets.is_empty(), "info matches no route");
    let cause = c.cause.as_ref().unwrap();
    assert_eq!((cause.hosts_failed, cause.hosts_total), (1, 2));
    assert_eq!(cause.hosts[0].host, "h2", "failing hosts first");
    assert_eq!(cause.log_tails[0].text, "boom");
}

#[test]
fn conditions_are_held_per_execution_and_released_when_cleared_or_ended() {
    let a = Alerting::new(&config(ROUTED));
    let mut r = report("disk", ExecutionState::Succeeded, vec![]);
    r.state = ExecutionState::Running;
    let stuck = Condition {
        kind: ConditionKind::Stuck,
        since_ms: 1,
        detail: "no progress for 5m".into(),
        hosts: vec![],
    };
    let stragglers = Condition {
        kind: ConditionKind::Stragglers,
        ..stuck.clone()
    };
    r.conditions = vec![stuck.clone(), stragglers];
    crate::tracker::detect::update_log(&mut r.condition_log, &r.conditions.clone(), 2);
    let changes = a.evaluate(&r);
    assert_eq!(
        held(&changes),
        ["ExecutionStuck"],
        "stragglers are disabled by a rule"
    );
    assert!(changes.iter().all(|c| c.holder == r.execution_id));
    assert_eq!(
        changes[0].cause.as_ref().unwrap().description,
        "no progress for 5m"
    );
    // Cleared: released by the same holder.
    r.conditions.clear();
    assert_eq!(released(&a.evaluate(&r)), ["ExecutionStuck"]);
    // Ended: released too, with the end in the note.
    r.state = ExecutionState::Succeeded;
    let end = a.evaluate(&r);
    let stuck_release = end
        .iter()
        .find(|c| c.labels["alertname"] == "ExecutionStuck")
        .unwrap();
    assert!(stuck_release.cause.is_none() && stuck_release.note.contains("ended succeeded"));
    let _ = PastCondition {
        condition: stuck,
        cleared_ms: None,
    };
}

#[test]
fn a_skip_is_held_until_a_later_tick_runs() {
    let a = Alerting::new(&config(""));
    let mut skipped = report("hourly", ExecutionState::Skipped, vec![]);
    skipped.origin = Origin::Schedule;
    assert_eq!(held(&a.evaluate(&skipped)), ["ScheduleSkipped"]);
    let mut next = report("hourly", ExecutionState::Succeeded, vec![]);
    next.state = ExecutionState::Pending;
    next.origin = Origin::Schedule;
    assert_eq!(released(&a.evaluate(&next)), ["ScheduleSkipped"]);
    next.origin = Origin::Api;
    assert!(
        a.evaluate(&next).is_empty(),
        "an API run is not the schedule running again"
    );
}

#[test]
fn routes_match_in_order_with_continue_and_carry_their_timers() {
    let a = Alerting::new(&config(ROUTED));
    let r = report("db-backup", ExecutionState::Failed, vec![]);
    let changes = a.evaluate(&r);
    let fired = changes.iter().find(|c| c.cause.is_some()).unwrap();
    assert_eq!(fired.labels["team"], "dba");
    let receivers: Vec<&str> = fired.targets.iter().map(|t| t.receiver.as_str()).collect();
    assert_eq!(receivers, ["dba", "ops"]);
    assert!(!fired.targets[0].send_resolved && fired.targets[1].send_resolved);
    assert_eq!(fired.targets[1].group_wait_ms, 30_000);
    assert_eq!(fired.targets[1].group_interval_ms, 300_000);
    assert_eq!(fired.targets[1].repeat_interval_ms, 4 * 3600 * 1000);
    assert_eq!(
        fired.targets[1].group_key,
        r#"1:{alertname="ExecutionFailed",check="db-backup"}"#
    );
    // Another check: only the second route.
    let other = a.evaluate(&report("disk", ExecutionState::Failed, vec![]));
    let t: Vec<&str> = other
        .iter()
        .find(|c| c.cause.is_some())
        .unwrap()
        .targets
        .iter()
        .map(|t| t.receiver.as_str())
        .collect();
    assert_eq!(t, ["ops"]);
}

#[test]
fn the_fingerprint_depends_on_labels_only() {
    let a = Alerting::new(&config(""));
    let one = a.evaluate(&report("disk", ExecutionState::Failed, vec![]));
    let two = a.evaluate(&report(
        "disk",
        ExecutionState::Failed,
        vec![host("h", HostOutcome::Failed, "x")],
    ));
    let fp = |c: &[AlertChange]| {
        c.iter()
            .find(|c| c.cause.is_some())
            .unwrap()
            .fingerprint
            .clone()
    };
    assert_eq!(
        fp(&one),
        fp(&two),
        "another execution of the same check: the same alert"
    );
    let other = a.evaluate(&report("disk2", ExecutionState::Failed, vec![]));
    assert_ne!(fp(&one), fp(&other));
    assert_eq!(fp(&one).len(), 16);
    // Stable across versions: a fixed label set has a fixed fingerprint.
    let labels: BTreeMap<String, String> = [("alertname", "ExecutionFailed"), ("check", "disk")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(fingerprint(&labels), fingerprint(&labels.clone()));
}

fn change(holder: &str, hold: bool) -> AlertChange {
    static BASE: std::sync::OnceLock<AlertChange> = std::sync::OnceLock::new();
    let mut c = BASE
        .get_or_init(|| {
            let a = Alerting::new(&config(""));
            let r = report("disk", ExecutionState::Failed, vec![]);
            a.evaluate(&r)
                .into_iter()
                .find(|c| c.cause.is_some())
                .unwrap()
        })
        .clone();
    c.holder = holder.into();
    if !hold {
        c.cause = None;
        c.note = format!("{holder} let go");
    }
    c
}

#[test]
fn an_alert_fires_once_while_held_and_resolves_when_the_last_holder_lets_go() {
    let mut stored: Option<Alert> = None;
    let mut step = |c: AlertChange, now: i64| -> &'static str {
        let (label, next) = match apply(stored.clone(), &c, now) {
            Applied::Unchanged => ("unchanged", stored.clone()),
            Applied::Updated(a) => ("updated", Some(a)),
            Applied::Fired(a) => ("fired", Some(a)),
            Applied::Resolved(a) => ("resolved", Some(a)),
        };
        stored = next;
        label
    };
    assert_eq!(
        step(change("e1", false), 1),
        "unchanged",
        "nothing to release"
    );
    assert_eq!(step(change("e1", true), 2), "fired");
    assert_eq!(
        step(change("e1", true), 3),
        "unchanged",
        "same holder, same cause"
    );
    assert_eq!(
        step(change("e2", true), 4),
        "updated",
        "a second holder: no new notification"
    );
    assert_eq!(step(change("e1", false), 5), "updated", "still held by e2");
    assert_eq!(step(change("e2", false), 6), "resolved");
    let resolved = apply(None, &change("e9", true), 0);
    assert!(matches!(resolved, Applied::Fired(_)));
    assert_eq!(step(change("e2", false), 7), "unchanged");
    assert_eq!(step(change("e3", true), 8), "fired", "fires again");
    let a = stored.unwrap();
    assert_eq!(
        (a.status, a.starts_at_ms, a.ends_at_ms),
        (AlertStatus::Firing, 8, None)
    );
    assert_eq!(a.resolution, None);
}

#[test]
fn log_tails_are_bounded_and_redacted() {
    let a = Alerting::new(&config(
        "[alerts]\nlog_tail_lines = 3\nlog_tail_bytes = 80\nredact = ['card=\\d+']\n[api]\ntoken = \"api-token-abcdef\"",
    ));
    let log = "line 1\nPASSWORD: hunter2\ntoken=abc123 ok\nAuthorization: Bearer eyJhbGciOi.x.y\ncard=4111111111111111\napi-token-abcdef used\n";
    let r = report(
        "disk",
        ExecutionState::Failed,
        vec![host("h", HostOutcome::Failed, log)],
    );
    let cause = a.cause(AlertEvent::Failed, &r);
    let tail = &cause.log_tails[0];
    assert!(tail.truncated);
    assert_eq!(tail.text.lines().count(), 3, "{}", tail.text);
    for secret in [
        "hunter2",
        "abc123",
        "eyJhbGciOi",
        "4111111111111111",
        "api-token-abcdef",
    ] {
        assert!(!tail.text.contains(secret), "{secret} in {}", tail.text);
    }
    assert!(tail.text.contains("Bearer [REDACTED]"), "{}", tail.text);
    assert!(
        !format!("{a:?}").contains("api-token-abcdef"),
        "Debug leaves secrets out"
    );
    let long = "é".repeat(200);
    let r = report(
        "disk",
        ExecutionState::Failed,
        vec![host("h", HostOutcome::Failed, &long)],
    );
    let tail = &a.cause(AlertEvent::Failed, &r).log_tails[0];
    assert!(tail.text.len() <= 80 && tail.truncated);

    // URL userinfo and password arguments.
    let a = Alerting::new(&config(
        "[alerts]\nlog_tail_lines = 10\nlog_tail_bytes = 2000",
    ));
    let log = "git clone https://deploy:hunter5@git.example.com/repo.git\nmysql -uroot -pS3cretPw db\n-pAtStart\nlogin --password Pa55word\nhttp://host:8080/path ok\n";
    let r = report(
        "disk",
        ExecutionState::Failed,
        vec![host("h", HostOutcome::Failed, log)],
    );
    let text = a.cause(AlertEvent::Failed, &r).log_tails[0].text.clone();
    for secret in ["hunter5", "S3cretPw", "AtStart", "Pa55word"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    assert!(
        text.contains("https://deploy:[REDACTED]@git.example.com"),
        "{text}"
    );
    assert!(
        text.contains("http://host:8080/path ok"),
        "a port is no password: {text}"
    );
}
