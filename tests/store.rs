//! The store's contract, on a real SQLite file. Written against `&dyn Store` so every store
//! implementation runs the same suite.

use jobwatch::alert::{AlertCause, AlertChange, AlertStatus, Target};
use jobwatch::config::CheckConfig;
use jobwatch::model::{ExecutionState, Host, TriggerStatus};
use jobwatch::notify::{OutboxState, Resend};
use jobwatch::store::{Finish, ListQuery, SqliteStore, Store, StoreError, Which};
use jobwatch::tracker::ExecutionReport;
use jobwatch::tracker::report::Origin;

#[path = "common/postgres.rs"]
mod postgres;

fn check(name: &str) -> CheckConfig {
    CheckConfig {
        account_alias: Some("root".into()),
        timeout: std::time::Duration::from_secs(60),
        ..CheckConfig::new(name, "bk", "true", vec![Host::by_id(1)])
    }
}

fn report(check_name: &str) -> ExecutionReport {
    let id = uuid::Uuid::now_v7().to_string();
    ExecutionReport::new(
        id.clone(),
        &check(check_name),
        "bk",
        "bkjob",
        &format!("jobwatch:{check_name}:{id}"),
    )
}

async fn conformance(store: &dyn Store) {
    store.ping().await.unwrap();
    // Insert, read back whole.
    let mut a = report("disk");
    assert!(store.insert(&a).await.unwrap());
    assert!(
        !store.insert(&a).await.unwrap(),
        "the same id is recorded once"
    );
    let back = store.get(&a.execution_id).await.unwrap().unwrap();
    assert_eq!(back.task_name, a.task_name);
    assert_eq!(back.state, ExecutionState::Pending);
    assert_eq!(store.unfinished().await.unwrap().len(), 1);

    // Progress and end; the end is never left.
    a.trigger_status = TriggerStatus::Triggered;
    a.job_instance_id = Some(42);
    a.state = ExecutionState::Running;
    store.save(&a).await.unwrap();
    a.state = ExecutionState::Failed;
    a.reason = "2 of 3 hosts did not succeed".into();
    store.save(&a).await.unwrap();
    a.hosts[0].log = "the log, fetched after the end was recorded".into();
    store.save(&a).await.unwrap();
    let mut reopened = a.clone();
    reopened.state = ExecutionState::Running;
    assert!(matches!(
        store.save(&reopened).await,
        Err(StoreError::FinalStateChange { .. })
    ));
    let back = store.get(&a.execution_id).await.unwrap().unwrap();
    assert_eq!(
        (back.state, back.job_instance_id),
        (ExecutionState::Failed, Some(42))
    );
    assert!(back.hosts[0].log.starts_with("the log"));
    assert!(store.unfinished().await.unwrap().is_empty());

    // Scheduled ticks are recorded once.
    let mut tick = report("disk");
    tick.origin = Origin::Schedule;
    tick.scheduled_at_ms = Some(1_700_000_000_000);
    assert!(store.insert(&tick).await.unwrap());
    let mut again = report("disk");
    again.origin = Origin::Schedule;
    again.scheduled_at_ms = Some(1_700_000_000_000);
    assert!(
        !store.insert(&again).await.unwrap(),
        "a second record of the same tick is refused"
    );
    assert_eq!(
        store.last_tick("disk").await.unwrap(),
        Some(1_700_000_000_000)
    );
    assert_eq!(store.last_tick("other").await.unwrap(), None);

    // Listings: active vs history, by check, paged newest first.
    for _ in 0..5 {
        store.insert(&report("mem")).await.unwrap();
    }
    let q = |which, check: Option<&str>, limit, cursor: Option<String>| ListQuery {
        which,
        check: check.map(str::to_owned),
        limit,
        cursor,
    };
    let active = store
        .list(&q(Which::Active, None, 100, None))
        .await
        .unwrap();
    let history = store
        .list(&q(Which::History, None, 100, None))
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(active.len(), 6);
    assert!(active.iter().all(|r| !r.state.is_final()));
    let page1 = store
        .list(&q(Which::All, Some("mem"), 3, None))
        .await
        .unwrap();
    let page2 = store
        .list(&q(
            Which::All,
            Some("mem"),
            3,
            Some(page1[2].execution_id.clone()),
        ))
        .await
        .unwrap();
    assert_eq!((page1.len(), page2.len()), (3, 2));
    assert!(
        page1[0].execution_id > page1[2].execution_id,
        "newest first"
    );
    assert!(
        page1
            .iter()
            .all(|p| page2.iter().all(|q| q.execution_id != p.execution_id))
    );
    let board = store.active_and_history(100, None).await.unwrap();
    assert_eq!((board.active.len(), board.history.len()), (6, 1));
    assert_eq!((board.active_total, board.history_total), (6, 1));
    let board = store.active_and_history(2, None).await.unwrap();
    assert_eq!(
        (board.active.len(), board.active_total),
        (2, 6),
        "totals are true, not the page size"
    );
}

#[tokio::test]
async fn sqlite_store_keeps_its_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    conformance(&store).await;
}

#[tokio::test]
async fn sqlite_store_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let r = report("disk");
    {
        let store = SqliteStore::open(dir.path()).await.unwrap();
        store.insert(&r).await.unwrap();
    }
    let store = SqliteStore::open(dir.path()).await.unwrap();
    assert_eq!(
        store.unfinished().await.unwrap()[0].execution_id,
        r.execution_id
    );
    assert!(dir.path().join("jobwatch.sqlite3").is_file());
}

fn hold(fp_check: &str, holder: &str, report: &ExecutionReport, hold: bool) -> AlertChange {
    let labels: std::collections::BTreeMap<String, String> =
        [("alertname", "ExecutionFailed"), ("check", fp_check)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
    AlertChange {
        fingerprint: jobwatch::alert::fingerprint(&labels),
        labels,
        holder: holder.into(),
        cause: hold.then(|| AlertCause {
            summary: format!("check {fp_check} failed"),
            description: "x".into(),
            execution_id: report.execution_id.clone(),
            job_instance_id: None,
            jid: None,
            state: report.state,
            started_at: report.started_at.clone(),
            hosts: vec![],
            hosts_total: 0,
            hosts_failed: 0,
            log_tails: vec![],
        }),
        note: "recovered".into(),
        targets: vec![Target {
            receiver: "r".into(),
            group_key: format!("0:{fp_check}"),
            group_wait_ms: if fp_check == "slow" { 30_000 } else { 0 },
            group_interval_ms: 60_000,
            repeat_interval_ms: 3_600_000,
            send_resolved: true,
        }],
    }
}

fn ended(check: &str, state: ExecutionState) -> ExecutionReport {
    let mut r = report(check);
    r.state = state;
    r
}

/// The outbox's contract: notifications are written with the state change or not at all;
/// one waiting notification per alert and receiver takes the newest state; group timers;
/// stale deliveries do not mark newer states; repeats; orphans.
async fn outbox_conformance(store: &dyn Store) {
    let now = jobwatch::now_ms();
    let failed = ended("disk", ExecutionState::Failed);
    let rec = store
        .record(&failed, &[hold("disk", "check", &failed, true)], false)
        .await
        .unwrap();
    assert!(rec.written);
    assert_eq!((rec.queued, rec.transitions.len()), (1, 1));
    assert_eq!(rec.transitions[0].status, AlertStatus::Firing);
    let due = store
        .due_notifications("r", jobwatch::now_ms(), 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(
        (due[0].status, due[0].outcome, due[0].kind.as_str()),
        (AlertStatus::Firing, OutboxState::Pending, "new")
    );
    assert!(
        store
            .due_notifications("other", jobwatch::now_ms(), 10)
            .await
            .unwrap()
            .is_empty()
    );

    // All or nothing: a refused state change writes no alert and no notification.
    let mut reopened = failed.clone();
    reopened.state = ExecutionState::Running;
    assert!(
        store
            .record(&reopened, &[hold("acct", "check", &reopened, true)], false)
            .await
            .is_err()
    );
    assert_eq!(store.list_alerts().await.unwrap().len(), 1);
    assert_eq!(store.outbox_depth("r").await.unwrap(), 1);

    // Held again by a later failure: no new notification.
    let again = ended("disk", ExecutionState::Failed);
    assert_eq!(
        store
            .record(&again, &[hold("disk", "check", &again, true)], false)
            .await
            .unwrap()
            .queued,
        0
    );
    // Rendered at send time: the waiting notification says the latest cause.
    let due = store
        .due_notifications("r", jobwatch::now_ms(), 10)
        .await
        .unwrap();
    assert_eq!(due[0].alert.cause.execution_id, again.execution_id);
    // Resolved while its firing was still in the group's wait, never sent: nothing to say
    // (as Alertmanager) — dropped, neither is sent. ("slow" routes with a 30 s group_wait.)
    let slow = ended("slow", ExecutionState::Failed);
    store
        .record(&slow, &[hold("slow", "check", &slow, true)], false)
        .await
        .unwrap();
    let slow_ok = ended("slow", ExecutionState::Succeeded);
    let rec = store
        .record(&slow_ok, &[hold("slow", "check", &slow_ok, false)], false)
        .await
        .unwrap();
    assert_eq!(rec.transitions[0].status, AlertStatus::Resolved);
    let waiting_slow = store
        .due_notifications("r", i64::MAX, 10)
        .await
        .unwrap()
        .into_iter()
        .filter(|n| n.alert.labels["check"] == "slow")
        .count();
    assert_eq!(
        waiting_slow, 0,
        "neither the firing nor the resolved is sent"
    );
    let log = store.list_notifications(Some("r"), 10).await.unwrap();
    assert_eq!(log[0].outcome, OutboxState::Dropped);

    // The disk alert's firing is delivered.
    let due = store
        .due_notifications("r", jobwatch::now_ms(), 10)
        .await
        .unwrap();
    assert_eq!((due.len(), due[0].status), (1, AlertStatus::Firing));
    store
        .finish_notifications(
            &[(due[0].id, due[0].version)],
            &Finish::Delivered,
            jobwatch::now_ms(),
        )
        .await
        .unwrap();

    // Resolves, and fires again before the resolved one was attempted: one waiting
    // notification takes the newest state (version 2).
    let ok2 = ended("disk", ExecutionState::Succeeded);
    store
        .record(&ok2, &[hold("disk", "check", &ok2, false)], false)
        .await
        .unwrap();
    let f3 = ended("disk", ExecutionState::Failed);
    store
        .record(&f3, &[hold("disk", "check", &f3, true)], false)
        .await
        .unwrap();
    let waiting = store.list_notifications(Some("r"), 10).await.unwrap();
    let waiting: Vec<_> = waiting
        .into_iter()
        .filter(|n| matches!(n.outcome, OutboxState::Pending | OutboxState::Errored))
        .collect();
    assert_eq!(
        waiting.len(),
        1,
        "one waiting notification per alert and receiver"
    );
    assert_eq!(
        (waiting[0].status, waiting[0].version),
        (AlertStatus::Firing, 2)
    );

    // A delivery of the older version does not mark the newer one delivered.
    let id = waiting[0].id;
    store
        .finish_notifications(&[(id, 1)], &Finish::Delivered, jobwatch::now_ms())
        .await
        .unwrap();
    assert_eq!(store.outbox_depth("r").await.unwrap(), 1);
    store
        .finish_notifications(&[(id, 2)], &Finish::Delivered, jobwatch::now_ms())
        .await
        .unwrap();
    assert_eq!(store.outbox_depth("r").await.unwrap(), 0);
    let log = store.list_notifications(Some("r"), 10).await.unwrap();
    assert_eq!(
        (log[0].outcome, log[0].attempts),
        (OutboxState::Delivered, 1)
    );
    assert!(log[0].delivered_at_ms.is_some());

    // Resolves soon after: due one group_interval after the group's last delivery.
    let ok3 = ended("disk", ExecutionState::Succeeded);
    store
        .record(&ok3, &[hold("disk", "check", &ok3, false)], false)
        .await
        .unwrap();
    let waiting = store
        .list_notifications(Some("r"), 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(waiting.status, AlertStatus::Resolved);
    assert!(
        waiting.due_at_ms >= now + 59_000,
        "group_interval applies: due {} now {now}",
        waiting.due_at_ms
    );
    assert!(
        store
            .due_notifications("r", jobwatch::now_ms(), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.next_due("r").await.unwrap(), Some(waiting.due_at_ms));

    // Errored: due later, reason kept.
    let error = Finish::Errored {
        due_at_ms: waiting.due_at_ms + 5_000,
        error: "HTTP 503".into(),
    };
    store
        .finish_notifications(&[(waiting.id, waiting.version)], &error, jobwatch::now_ms())
        .await
        .unwrap();
    let n = store
        .list_notifications(Some("r"), 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        (n.outcome, n.attempts, n.last_error.as_deref()),
        (OutboxState::Errored, 1, Some("HTTP 503"))
    );
    assert_eq!(n.due_at_ms, waiting.due_at_ms + 5_000);

    // Fires again while that resolved one waits, already attempted (the receiver was down):
    // what it says is kept, and the firing is queued after it — both go, in order.
    let third = ended("disk", ExecutionState::Failed);
    store
        .record(&third, &[hold("disk", "check", &third, true)], false)
        .await
        .unwrap();
    let both = store.list_notifications(Some("r"), 2).await.unwrap();
    assert_eq!(
        (both[0].status, both[1].status),
        (AlertStatus::Firing, AlertStatus::Resolved),
        "newest first"
    );
    assert!(
        both[0].due_at_ms >= both[1].due_at_ms,
        "never before the earlier one"
    );
    let late = n.due_at_ms + 1;
    let due = store.due_notifications("r", late, 10).await.unwrap();
    assert_eq!(
        due.len(),
        1,
        "in order: the firing waits behind the resolved"
    );
    assert_eq!(due[0].status, AlertStatus::Resolved);
    store
        .finish_notifications(&[(due[0].id, due[0].version)], &Finish::Delivered, late)
        .await
        .unwrap();
    let due = store.due_notifications("r", i64::MAX, 10).await.unwrap();
    assert_eq!((due.len(), due[0].status), (1, AlertStatus::Firing));
    store
        .finish_notifications(
            &[(due[0].id, due[0].version)],
            &Finish::Delivered,
            jobwatch::now_ms(),
        )
        .await
        .unwrap();

    // Repeats: nothing before repeat_interval, one after it (and only one).
    let resend = Resend::default();
    assert_eq!(
        store
            .enqueue_repeats("r", resend, jobwatch::now_ms())
            .await
            .unwrap(),
        0
    );
    let later = jobwatch::now_ms() + 3_600_000;
    assert_eq!(store.enqueue_repeats("r", resend, later).await.unwrap(), 1);
    assert_eq!(store.enqueue_repeats("r", resend, later).await.unwrap(), 0);
    let repeat = store
        .list_notifications(Some("r"), 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        (repeat.kind.as_str(), repeat.status),
        ("repeat", AlertStatus::Firing)
    );
    // A receiver's own resend of resolved alerts (Alertmanager's resolve_resend).
    let ok = ended("disk", ExecutionState::Succeeded);
    store
        .record(&ok, &[hold("disk", "check", &ok, false)], false)
        .await
        .unwrap();
    store
        .finish_notifications(
            &[(repeat.id, repeat.version + 1)],
            &Finish::Delivered,
            jobwatch::now_ms(),
        )
        .await
        .unwrap();
    // (The repeat above was queued at `later`; the resolved one is re-sent after it.)
    let am = Resend {
        firing_every_ms: Some(1_000),
        resolved_every_ms: 1_000,
        resolved_for_ms: 7_200_000,
    };
    assert_eq!(
        store
            .enqueue_repeats("r", Resend::default(), later + 2_000)
            .await
            .unwrap(),
        0,
        "no resolved re-send by default"
    );
    assert_eq!(
        store.enqueue_repeats("r", am, later + 2_000).await.unwrap(),
        1
    );
    let resent = store
        .list_notifications(Some("r"), 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        (resent.kind.as_str(), resent.status),
        ("repeat", AlertStatus::Resolved)
    );
    store
        .finish_notifications(
            &[(resent.id, resent.version)],
            &Finish::Delivered,
            later + 2_000,
        )
        .await
        .unwrap();
    assert_eq!(
        store.enqueue_repeats("r", am, later + 4_000).await.unwrap(),
        1,
        "every resend_delay…"
    );
    let resent = store
        .list_notifications(Some("r"), 1)
        .await
        .unwrap()
        .remove(0);
    store
        .finish_notifications(
            &[(resent.id, resent.version)],
            &Finish::Delivered,
            later + 4_000,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .enqueue_repeats("r", am, later + 8_000_000)
            .await
            .unwrap(),
        0,
        "…only within resolve_resend"
    );
    // Keep one waiting for the orphan check below.
    let f = ended("disk", ExecutionState::Failed);
    store
        .record(&f, &[hold("disk", "check", &f, true)], false)
        .await
        .unwrap();

    // A receiver removed from the configuration: its waiting notifications are rejected.
    assert_eq!(
        store
            .reject_orphans(&["other".into()], jobwatch::now_ms())
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.outbox_depth("r").await.unwrap(), 0);
    let n = store
        .list_notifications(Some("r"), 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(n.outcome, OutboxState::Rejected);
    assert!(n.last_error.unwrap().contains("no longer configured"));
}

#[tokio::test]
async fn sqlite_outbox_keeps_its_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    outbox_conformance(&store).await;
}

/// Silences' contract: stored and listed; current ones are those not ended; a notification
/// held by a silence waits `silenced` (attempts unchanged) until its end; expiring the silence
/// makes it due at once; a resolve meanwhile drops a firing the receiver never got; the
/// board's reads (outcome lines, counts) follow the executions.
async fn silence_conformance(store: &dyn Store) {
    use jobwatch::model::silence::{Matcher, Silence};
    let now = jobwatch::now_ms();
    let silence = |id: &str, check: &str, from: i64, to: i64| Silence {
        id: id.into(),
        matchers: vec![Matcher::parse(&format!("check=\"{check}\"")).unwrap()],
        starts_at_ms: from,
        ends_at_ms: to,
        created_by: "ops".into(),
        comment: "maintenance".into(),
        created_at_ms: now,
        updated_at_ms: now,
        expired_by: None,
    };
    store
        .create_silence(&silence("s-disk", "disk", now - 1000, now + 3_600_000))
        .await
        .unwrap();
    store
        .create_silence(&silence("s-later", "web", now + 600_000, now + 3_600_000))
        .await
        .unwrap();
    store
        .create_silence(&silence("s-old", "web", now - 7_200_000, now - 3_600_000))
        .await
        .unwrap();
    let ids = |list: Vec<Silence>| list.into_iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(store.list_silences().await.unwrap().len(), 3);
    let mut current = ids(store.current_silences(now).await.unwrap());
    current.sort();
    assert_eq!(current, ["s-disk", "s-later"]);

    // A firing notification held by s-disk until its end.
    let failed = ended("disk", ExecutionState::Failed);
    store
        .record(&failed, &[hold("disk", "check", &failed, true)], false)
        .await
        .unwrap();
    let due = store
        .due_notifications("r", jobwatch::now_ms(), 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    let until = now + 3_600_000;
    store
        .finish_notifications(
            &[(due[0].id, due[0].version)],
            &Finish::Silenced {
                until_ms: until,
                silence_id: "s-disk".into(),
            },
            jobwatch::now_ms(),
        )
        .await
        .unwrap();
    let logged = store.list_notifications(Some("r"), 10).await.unwrap();
    assert_eq!(logged[0].outcome, OutboxState::Silenced);
    assert_eq!(logged[0].silenced_by.as_deref(), Some("s-disk"));
    assert_eq!(
        logged[0].attempts, 0,
        "a silenced notification was not attempted"
    );
    assert_eq!(logged[0].due_at_ms, until);
    assert!(
        store
            .due_notifications("r", jobwatch::now_ms(), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.next_due("r").await.unwrap(),
        Some(until),
        "the worker wakes at its end"
    );
    // Nothing repeats while it waits.
    assert_eq!(
        store
            .enqueue_repeats("r", Resend::default(), now + 7_200_000)
            .await
            .unwrap(),
        0
    );

    // Expired by hand: due at once, the silence says who and when.
    let expired = store
        .expire_silence("s-disk", "alice", jobwatch::now_ms())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(expired.expired_by.as_deref(), Some("alice"));
    assert!(expired.ends_at_ms <= jobwatch::now_ms());
    assert_eq!(
        ids(store.current_silences(jobwatch::now_ms()).await.unwrap()),
        ["s-later"]
    );
    let again = store
        .expire_silence("s-disk", "bob", jobwatch::now_ms())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        again.expired_by.as_deref(),
        Some("alice"),
        "expiring twice changes nothing"
    );
    assert!(
        store
            .expire_silence("nope", "bob", now)
            .await
            .unwrap()
            .is_none()
    );
    let due = store
        .due_notifications("r", jobwatch::now_ms(), 10)
        .await
        .unwrap();
    assert_eq!(
        due.len(),
        1,
        "held notifications are due once the silence ends"
    );
    assert_eq!(due[0].outcome, OutboxState::Silenced);

    // Held again, then the alert resolves: the receiver never got it firing, so it is dropped.
    store
        .finish_notifications(
            &[(due[0].id, due[0].version)],
            &Finish::Silenced {
                until_ms: until,
                silence_id: "s-later".into(),
            },
            jobwatch::now_ms(),
        )
        .await
        .unwrap();
    let ok = ended("disk", ExecutionState::Succeeded);
    store
        .record(&ok, &[hold("disk", "check", &ok, false)], false)
        .await
        .unwrap();
    let logged = store.list_notifications(Some("r"), 10).await.unwrap();
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!(logged[0].outcome, OutboxState::Dropped);

    // The board's reads.
    let lines = store.outcomes("disk", 30).await.unwrap();
    assert_eq!(
        lines.iter().map(|l| l.state.as_str()).collect::<Vec<_>>(),
        ["succeeded", "failed"],
        "newest first"
    );
    assert_eq!(
        store
            .last_in_state("disk", "failed")
            .await
            .unwrap()
            .map(|l| l.execution_id),
        Some(failed.execution_id.clone())
    );
    assert!(
        store
            .last_in_state("disk", "timed_out")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.count(Some("disk"), Which::History).await.unwrap(), 2);
    assert_eq!(store.count(Some("disk"), Which::Active).await.unwrap(), 0);
    assert_eq!(
        store
            .count(None, Which::In(ExecutionState::Failed))
            .await
            .unwrap(),
        1
    );
    let failed_only = store
        .list(&jobwatch::store::ListQuery {
            which: Which::In(ExecutionState::Failed),
            check: Some("disk".into()),
            limit: 10,
            cursor: None,
        })
        .await
        .unwrap();
    assert_eq!(failed_only.len(), 1);

    // Retention takes silences that ended before the cutoff.
    store.prune(now - 1_800_000, 100).await.unwrap();
    let mut left = ids(store.list_silences().await.unwrap());
    left.sort();
    assert_eq!(left, ["s-disk", "s-later"]);
}

#[tokio::test]
async fn sqlite_silences_keep_their_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    silence_conformance(&store).await;
}

/// Marks every notification of receiver `r` that is due (whenever) delivered; returns them.
async fn deliver_all_due(store: &dyn Store) -> Vec<jobwatch::notify::Notification> {
    let due = store.due_notifications("r", i64::MAX, 10).await.unwrap();
    let done: Vec<(i64, i64)> = due.iter().map(|n| (n.id, n.version)).collect();
    store
        .finish_notifications(&done, &Finish::Delivered, jobwatch::now_ms())
        .await
        .unwrap();
    due
}

/// Retention's contract: ended executions older than the cutoff go, in batches; active ones
/// and ones whose logs are still being fetched stay; delivered notifications go except the
/// newest of each alert and receiver.
async fn retention_conformance(store: &dyn Store) {
    let mut ended_ids = Vec::new();
    for i in 0..1200 {
        let r = ended(
            if i % 2 == 0 { "disk" } else { "acct" },
            ExecutionState::Succeeded,
        );
        store.save(&r).await.unwrap();
        ended_ids.push(r.execution_id);
    }
    let active = report("disk");
    store.save(&active).await.unwrap();
    let mut fetching = ended("disk", ExecutionState::Failed);
    fetching.logs_pending = true;
    store.save(&fetching).await.unwrap();
    // Before the cutoff of a day ago, nothing is old enough.
    let day_ago = jobwatch::now_ms() - 86_400_000;
    assert_eq!(store.prune(day_ago, 500).await.unwrap().executions, 0);
    let cutoff = jobwatch::now_ms() + 1;
    let batches: Vec<u64> = {
        let mut v = Vec::new();
        loop {
            let p = store.prune(cutoff, 500).await.unwrap();
            v.push(p.executions);
            if p.executions < 500 {
                break v;
            }
        }
    };
    assert_eq!(batches, vec![500, 500, 200]);
    store.reclaim().await.unwrap();
    assert!(store.get(&ended_ids[0]).await.unwrap().is_none());
    assert!(
        store.get(&active.execution_id).await.unwrap().is_some(),
        "active executions stay"
    );
    assert!(
        store.get(&fetching.execution_id).await.unwrap().is_some(),
        "logs being fetched: stays"
    );
    let board = store.active_and_history(100, None).await.unwrap();
    assert_eq!((board.active_total, board.history_total), (1, 1));

    // Notifications: two delivered for one alert and receiver; the older goes, the newest
    // stays (repeats and group timers read it).
    let failed = ended("net", ExecutionState::Failed);
    store
        .record(&failed, &[hold("net", "check", &failed, true)], false)
        .await
        .unwrap();
    deliver_all_due(store).await;
    let ok = ended("net", ExecutionState::Succeeded);
    store
        .record(&ok, &[hold("net", "check", &ok, false)], false)
        .await
        .unwrap();
    let second = deliver_all_due(store).await;
    let before = store
        .list_notifications(Some("r"), 100)
        .await
        .unwrap()
        .len();
    let pruned = store.prune(jobwatch::now_ms() + 1, 500).await.unwrap();
    let after = store.list_notifications(Some("r"), 100).await.unwrap();
    assert_eq!(
        pruned.notifications as usize,
        before - 1,
        "all but the newest"
    );
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].id, second[0].id);
}

#[tokio::test]
async fn sqlite_retention_keeps_its_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    retention_conformance(&store).await;
}

#[tokio::test]
async fn the_database_file_stops_growing_once_retention_prunes() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let file = dir.path().join("jobwatch.sqlite3");
    let mut sizes = Vec::new();
    // Five "retention periods": each writes 1500 ended executions with a 2 KB log, then
    // everything older is pruned.
    for _ in 0..5 {
        for _ in 0..1500 {
            let mut r = ended("disk", ExecutionState::Failed);
            r.hosts[0].log = "x".repeat(2048);
            store.save(&r).await.unwrap();
        }
        let cutoff = jobwatch::now_ms() + 1;
        while store.prune(cutoff, 500).await.unwrap().executions == 500 {}
        store.reclaim().await.unwrap();
        sizes.push(std::fs::metadata(&file).unwrap().len());
    }
    let first = sizes[0];
    assert!(
        sizes.iter().all(|&s| s <= first + first / 10),
        "the file kept growing: {sizes:?}"
    );
    assert!(
        sizes[4] < 1_000_000,
        "the space was not given back: {sizes:?}"
    );
}

/// The same contracts on a real PostgreSQL (one throwaway cluster, a database each).
#[tokio::test]
async fn postgres_store_keeps_every_contract() {
    let pg = postgres::Postgres::start();
    pg.database("executions");
    pg.database("outbox");
    pg.database("retention");
    pg.database("silences");
    let open = |db: &str| {
        let settings = pg.settings(db);
        async move { jobwatch::store::PgStore::open(&settings).await.unwrap() }
    };
    let first = open("executions").await;
    conformance(&first).await;
    outbox_conformance(&open("outbox").await).await;
    retention_conformance(&open("retention").await).await;
    silence_conformance(&open("silences").await).await;
    // Reopening (another replica starting) migrates nothing twice and sees the same rows.
    let again = open("executions").await;
    assert_eq!(
        again.unfinished().await.unwrap().len(),
        first.unfinished().await.unwrap().len()
    );
}

/// Fencing: once a shard moved to another replica, the former holder's writes of its
/// executions are refused and change nothing; the new holder's go through.
#[tokio::test]
async fn a_replica_that_lost_a_shard_cannot_write_its_executions() {
    use jobwatch::store::Shards;
    let pg = postgres::Postgres::start();
    pg.database("fence");
    let a = jobwatch::store::PgStore::open(&pg.settings("fence"))
        .await
        .unwrap();
    let b = jobwatch::store::PgStore::open(&pg.settings("fence"))
        .await
        .unwrap();
    assert_ne!(a.replica_id(), b.replica_id());
    assert_eq!(a.shard_count(), 256);
    let lease = std::time::Duration::from_millis(1500);
    let held = a.acquire(256, lease).await.unwrap();
    assert_eq!(held.len(), 256, "a free database gives every shard");
    assert!(
        b.acquire(256, lease).await.unwrap().is_empty(),
        "held shards are not taken"
    );
    let mut r = report("disk");
    assert!(a.insert(&r).await.unwrap());
    let shard = a.shard(&r.execution_id);
    let fence = held.iter().find(|h| h.fence.shard == shard).unwrap().fence;
    r.fence = Some(fence);
    r.state = ExecutionState::Running;
    a.save(&r).await.unwrap();
    // A's lease runs out (not renewed); B takes the shards over with a new epoch.
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    assert!(
        a.renew(lease).await.unwrap().held.is_empty(),
        "an expired lease is not renewed"
    );
    let taken = b.acquire(256, lease).await.unwrap();
    assert_eq!(taken.len(), 256);
    assert!(taken.iter().all(|h| h.taken_over));
    let b_fence = taken.iter().find(|h| h.fence.shard == shard).unwrap().fence;
    assert!(b_fence.epoch > fence.epoch);
    let mut stale = r.clone();
    stale.state = ExecutionState::Failed;
    stale.reason = "written by a replica that lost the shard".into();
    assert!(matches!(
        a.save(&stale).await,
        Err(StoreError::Fenced { shard: s, .. }) if s == shard
    ));
    assert_eq!(
        b.get(&r.execution_id).await.unwrap().unwrap().state,
        ExecutionState::Running,
        "the refused write changed nothing"
    );
    let mut fresh = r.clone();
    fresh.fence = Some(b_fence);
    fresh.state = ExecutionState::Succeeded;
    b.save(&fresh).await.unwrap();
    assert_eq!(
        b.active_page_in(&[shard], "", 10).await.unwrap().len(),
        0,
        "ended: no longer active in its shard"
    );
    // A clean stop gives everything up at once.
    b.leave().await.unwrap();
    assert_eq!(a.acquire(256, lease).await.unwrap().len(), 256);
}

/// Two replicas share the outbox: a notification one of them is sending is not sent by the
/// other until that attempt ends (or its claim runs out, 5 minutes on).
#[tokio::test]
async fn a_notification_is_sent_by_one_replica_at_a_time() {
    let pg = postgres::Postgres::start();
    pg.database("outbox");
    let a = jobwatch::store::PgStore::open(&pg.settings("outbox"))
        .await
        .unwrap();
    let b = jobwatch::store::PgStore::open(&pg.settings("outbox"))
        .await
        .unwrap();
    let failed = ended("disk", ExecutionState::Failed);
    let rec = a
        .record(&failed, &[hold("disk", "check", &failed, true)], false)
        .await
        .unwrap();
    assert_eq!(rec.queued, 1);
    let now = jobwatch::now_ms();
    let claimed = a.due_notifications("r", now, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(
        b.due_notifications("r", now, 10).await.unwrap().is_empty(),
        "sent twice at once"
    );
    let next = b.next_due("r").await.unwrap().unwrap();
    assert!(
        next > now + 60_000,
        "the other replica would look again at {next} (now {now})"
    );
    // A failed attempt lets it go: due again, for whichever replica comes first.
    a.finish_notifications(
        &[(claimed[0].id, claimed[0].version)],
        &Finish::Errored {
            due_at_ms: now,
            error: "503".into(),
        },
        now,
    )
    .await
    .unwrap();
    let retried = b
        .due_notifications("r", jobwatch::now_ms(), 10)
        .await
        .unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].attempts, 1);
    b.finish_notifications(
        &[(retried[0].id, retried[0].version)],
        &Finish::Delivered,
        jobwatch::now_ms(),
    )
    .await
    .unwrap();
    assert_eq!(a.outbox_depth("r").await.unwrap(), 0);
}
