//! Micro-benchmarks of the hot paths (`cargo bench`): decoding a 500-host status answer,
//! normalizing status codes, one store update. The load harness (`crates/jobwatch-bench`)
//! measures the whole agent.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use jobwatch::platform::bkjob::codes;
use jobwatch::platform::bkjob::wire::{self, Answer, StatusData};
use jobwatch::store::{SqliteStore, Store};

/// A documented get_job_instance_status answer (fixture) with its one host repeated 500
/// times, statuses and exit codes varied.
fn status_body(hosts: usize) -> Vec<u8> {
    let text = include_str!("../tests/fixtures/bkjob/get_job_instance_status.apigw.response.json");
    let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
    let step = &mut v["data"]["step_instance_list"][0];
    let one = step["step_ip_result_list"][0].clone();
    let statuses = [9, 9, 9, 104, 310, 7, 5, 9, 403, 9];
    let list: Vec<serde_json::Value> = (0..hosts)
        .map(|i| {
            let mut h = one.clone();
            h["bk_host_id"] = (1000 + i as u64).into();
            h["ip"] = format!("10.0.{}.{}", i / 250, i % 250 + 1).into();
            h["status"] = statuses[i % statuses.len()].into();
            h["exit_code"] = ((i % 7 == 0) as i64).into();
            h
        })
        .collect();
    step["step_ip_result_list"] = list.into();
    serde_json::to_vec(&v).unwrap()
}

fn decode_status(c: &mut Criterion) {
    let body = status_body(500);
    c.bench_function("decode get_job_instance_status, 500 hosts", |b| {
        b.iter(|| {
            let data: StatusData = wire::decode(Answer {
                api: "get_job_instance_status",
                mutating: false,
                http_status: 200,
                rate_limit_reset: None,
                body: black_box(&body),
            })
            .unwrap();
            black_box(data.into_snapshot(None))
        })
    });
}

fn normalize_codes(c: &mut Criterion) {
    // Every documented host status code (unknown ones are rare and also logged and counted).
    let host_codes: Vec<i64> = (0..1000)
        .filter(|&c| codes::host_status(c).is_some())
        .collect();
    let name = format!(
        "normalize the {} documented host status codes",
        host_codes.len()
    );
    c.bench_function(&name, |b| {
        b.iter(|| {
            for &code in &host_codes {
                black_box(codes::host_outcome(black_box(code)));
            }
        })
    });
    let job_codes: Vec<i64> = (0..100)
        .filter(|&c| codes::job_status(c).is_some())
        .collect();
    let name = format!("label the {} documented job status codes", job_codes.len());
    c.bench_function(&name, |b| {
        b.iter(|| {
            for &code in &job_codes {
                black_box(codes::job_label(black_box(code)));
            }
        })
    });
}

fn store_update(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = rt.block_on(SqliteStore::open(dir.path())).unwrap();
    let check = jobwatch::config::CheckConfig::new(
        "bench",
        "bk",
        "true",
        (1..=20).map(jobwatch::model::Host::by_id).collect(),
    );
    let mut report = jobwatch::tracker::ExecutionReport::new(
        uuid::Uuid::now_v7().to_string(),
        &check,
        "bk",
        "bkjob",
        "jobwatch:bench:x",
    );
    report.state = jobwatch::model::ExecutionState::Running;
    rt.block_on(store.save(&report)).unwrap();
    c.bench_function(
        "store: save one running execution (20 hosts, SQLite WAL)",
        |b| {
            b.iter(|| {
                report.polls += 1;
                rt.block_on(store.save(black_box(&report))).unwrap()
            })
        },
    );
}

criterion_group!(benches, decode_status, normalize_codes, store_update);
criterion_main!(benches);
