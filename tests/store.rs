//! The store's contract, on a real SQLite file. Written against `&dyn Store` so every store
//! implementation runs the same suite.

use jobwatch::config::CheckConfig;
use jobwatch::model::{ExecutionState, Host, TriggerStatus};
use jobwatch::store::{ListQuery, SqliteStore, Store, StoreError, Which};
use jobwatch::tracker::ExecutionReport;
use jobwatch::tracker::report::Origin;

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
    let (act, hist) = store.active_and_history(100).await.unwrap();
    assert_eq!((act.len(), hist.len()), (6, 1));
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
