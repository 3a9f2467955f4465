//! Bad bytes never crash anything: arbitrary and mutated input through the bk-job answer
//! decoders (every documented fixture, mutated), the configuration reader, and every API body,
//! query string and path — no panic, a clear error, and nothing stored changes on a refusal.
//!
//! Each target runs `JOBWATCH_FUZZ_CASES` cases (default 2000), or, with
//! `JOBWATCH_FUZZ_SECONDS` set, as many as fit in that time (`scripts/fuzz.sh` runs each for
//! 10 minutes and reports). Every run prints how many cases it ran; a failure prints the input.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request};
use jobwatch::platform::bkjob::wire::{
    self, Answer, BatchLogData, ListData, OperateData, StatusData, SubmitData,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRng, TestRunner};
use tower::ServiceExt as _;

/// Runs `test` on values of `strategy` for the configured number of cases or seconds, each
/// batch with a fresh random seed. Panics (with the input) on the first failure.
fn fuzz<S: Strategy>(target: &str, strategy: S, test: impl Fn(S::Value))
where
    S::Value: std::fmt::Debug,
{
    let seconds: Option<u64> = std::env::var("JOBWATCH_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok());
    let cases: u64 = std::env::var("JOBWATCH_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let until = seconds.map(|s| Instant::now() + Duration::from_secs(s));
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &rand_seed()),
    );
    let mut ran = 0u64;
    loop {
        let done = match until {
            Some(t) => Instant::now() >= t,
            None => ran >= cases,
        };
        if done {
            break;
        }
        let value = strategy.new_tree(&mut runner).expect("a value").current();
        let shown = format!("{value:?}");
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(value)));
        if let Err(panic) = result {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let shown: String = shown.chars().take(4000).collect();
            panic!("{target}: case {ran} failed: {why}\ninput: {shown}");
        }
        ran += 1;
    }
    eprintln!("fuzz {target}: {ran} cases, no failure");
}

fn rand_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        .to_le_bytes();
    seed[..16].copy_from_slice(&nanos);
    seed[16..20].copy_from_slice(&std::process::id().to_le_bytes());
    seed
}

/// Bytes made from `base` by a few random edits: flips, cuts, inserts, splices of JSON
/// tokens (so that mutants stay close to valid and reach deep into the decoders).
fn mutated(base: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let tokens: Vec<&'static [u8]> = vec![
        b"null",
        b"true",
        b"-1",
        b"1e400",
        b"\"\"",
        b"[]",
        b"{}",
        b"\"\xff\xfe\"",
        b"9223372036854775808",
        b"\"\\ud800\"",
        b"0.5",
        b",",
        b":",
        b"\"status\"",
        b"\"code\"",
        b"\"data\"",
        b"\"result\"",
    ];
    let len = base.len().max(1);
    let edit = (0..4u8, 0..len, any::<u8>(), 0..tokens.len());
    proptest::collection::vec(edit, 1..6).prop_map(move |edits| {
        let mut bytes = base.clone();
        for (kind, at, byte, token) in edits {
            let at = at.min(bytes.len());
            match kind {
                0 if at < bytes.len() => bytes[at] = byte,
                1 => bytes.truncate(at),
                2 => bytes.insert(at, byte),
                _ => {
                    let t = tokens[token];
                    bytes.splice(at..at, t.iter().copied());
                }
            }
        }
        bytes
    })
}

fn fixtures() -> Vec<(String, Vec<u8>)> {
    common::bkjob_fixtures(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bkjob"))
}

/// Every decoder, on `body` as answer of every HTTP status class: never a panic, and an error
/// always says something.
fn decode_all(body: &[u8], http_status: u16) {
    fn check<T: serde::de::DeserializeOwned>(api: &'static str, body: &[u8], http_status: u16) {
        for mutating in [false, true] {
            let answer = Answer {
                api,
                mutating,
                http_status,
                rate_limit_reset: Some(1),
                body,
            };
            if let Err(e) = wire::decode::<T>(answer) {
                assert!(!e.to_string().is_empty());
            }
        }
    }
    check::<StatusData>("get_job_instance_status", body, http_status);
    check::<BatchLogData>("batch_get_job_instance_ip_log", body, http_status);
    check::<ListData>("get_job_instance_list", body, http_status);
    check::<SubmitData>("fast_execute_script", body, http_status);
    check::<OperateData>("operate_job_instance", body, http_status);
    // What the adapter does with decoded data, too.
    if let Ok(data) = wire::decode::<StatusData>(Answer {
        api: "get_job_instance_status",
        mutating: false,
        http_status,
        rate_limit_reset: None,
        body,
    }) {
        let _ = data.into_snapshot(None);
    }
    if let Ok(data) = wire::decode::<BatchLogData>(Answer {
        api: "batch_get_job_instance_ip_log",
        mutating: false,
        http_status,
        rate_limit_reset: None,
        body,
    }) {
        let _ = data.into_logs();
    }
}

#[test]
fn bkjob_decoders_take_mutated_fixtures_and_arbitrary_bytes() {
    let fixtures = fixtures();
    assert!(fixtures.len() >= 20);
    let bodies: Vec<Vec<u8>> = fixtures.into_iter().map(|(_, b)| b).collect();
    let mutants = proptest::sample::select(bodies).prop_flat_map(mutated);
    let status = prop_oneof![Just(200u16), Just(429), Just(500), Just(404), 100u16..600];
    fuzz(
        "bk-job mutated fixtures",
        (mutants, status.clone()),
        |(body, status)| decode_all(&body, status),
    );
    fuzz(
        "bk-job arbitrary bytes",
        (proptest::collection::vec(any::<u8>(), 0..512), status),
        |(body, status)| decode_all(&body, status),
    );
}

/// salt-api's answers as captured (every JSON object in `tests/fixtures/salt` that holds an
/// `info` or a `return`), serialized again.
fn salt_bodies() -> Vec<Vec<u8>> {
    fn collect(v: &serde_json::Value, out: &mut Vec<Vec<u8>>) {
        if let Some(map) = v.as_object() {
            if map.contains_key("info") || map.contains_key("return") {
                out.push(serde_json::to_vec(v).unwrap());
            }
            map.values().for_each(|c| collect(c, out));
        } else if let Some(list) = v.as_array() {
            list.iter().for_each(|c| collect(c, out));
        }
    }
    let mut out = Vec::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/salt");
    let json = |p: &Path| p.extension().is_some_and(|e| e == "json");
    for entry in std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| json(&e.path()))
    {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(entry.path()).unwrap()).unwrap();
        collect(&v, &mut out);
    }
    out
}

/// Every Salt decoder on `body` as an answer with `http_status`: never a panic; an error
/// always says something.
fn salt_decode_all(body: &[u8], http_status: u16) {
    use jobwatch::platform::salt::wire as salt;
    for mutating in [false, true] {
        let decoded = salt::decode(salt::Answer {
            api: "jobs",
            mutating,
            http_status,
            body,
        });
        let v = match decoded {
            Ok(v) => v,
            Err(e) => {
                assert!(!e.to_string().is_empty());
                continue;
            }
        };
        let _ = salt::submitted("local_async", &v);
        let _ = salt::listed_jids(&v);
        if let Ok(info) = salt::job_info(&v) {
            for (host, entry) in &info.result {
                let _ = salt::returned(host, entry);
                let _ = salt::log_of(entry);
            }
            let _ = salt::probe_answers(&info, &info.requested);
        }
    }
}

#[test]
fn salt_decoders_take_mutated_captures_and_arbitrary_bytes() {
    let bodies = salt_bodies();
    assert!(bodies.len() >= 20, "{} captured answers", bodies.len());
    let mutants = proptest::sample::select(bodies).prop_flat_map(mutated);
    let status = prop_oneof![Just(200u16), Just(401), Just(500), 100u16..600];
    fuzz(
        "salt mutated captures",
        (mutants, status.clone()),
        |(body, status)| salt_decode_all(&body, status),
    );
    fuzz(
        "salt arbitrary bytes",
        (proptest::collection::vec(any::<u8>(), 0..512), status),
        |(body, status)| salt_decode_all(&body, status),
    );
}

#[test]
fn salt_event_stream_data_mutated_or_arbitrary_never_panics() {
    use jobwatch::platform::salt::events::return_hint;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/salt/80-events-sse.txt");
    let datas: Vec<Vec<u8>> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| d.as_bytes().to_vec())
        .collect();
    assert!(datas.len() >= 6, "{} events recorded", datas.len());
    let hint = |data: &[u8]| {
        if let Some(h) = return_hint(&String::from_utf8_lossy(data)) {
            assert!(
                !h.execution_id.is_empty() && h.job.jid.as_ref().is_some_and(|j| !j.is_empty())
            );
        }
    };
    let mutants = proptest::sample::select(datas).prop_flat_map(mutated);
    fuzz("salt events mutated", mutants, |data| hint(&data));
    fuzz(
        "salt events arbitrary bytes",
        proptest::collection::vec(any::<u8>(), 0..512),
        |data| hint(&data),
    );
}

/// The configuration reader: an error lists issues, each with a key and a message, and a
/// secret value given in the text (on a line still setting a secret field) never shows.
fn read_config(text: &str, env: Vec<(String, String)>) {
    let secret_given = text
        .lines()
        .any(|l| l == "app_secret = \"Sekr3t-Fuzz\"" || l == "token = \"Sekr3t-Fuzz\"");
    match jobwatch::config::load_text_checked(text, "fuzz", env, jobwatch::notify::check_receiver) {
        Ok(_) => {}
        Err(jobwatch::config::ConfigError::Invalid { issues, .. }) => {
            assert!(!issues.is_empty());
            for i in &issues {
                assert!(!i.key.is_empty() && !i.message.is_empty(), "{i:?}");
                if secret_given {
                    assert!(!i.message.contains("Sekr3t-Fuzz"), "a secret shows: {i:?}");
                }
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

#[test]
fn the_config_reader_takes_mutated_and_arbitrary_text() {
    let example = include_str!("../config.example.toml")
        .replace("# [platforms.bk]", "[platforms.bk]")
        .replace(
            "# app_secret_file = \"/etc/jobwatch/bk_app_secret\"",
            "app_secret = \"Sekr3t-Fuzz\"",
        );
    let bases: Vec<Vec<u8>> = vec![
        example.into_bytes(),
        b"[alerts.receivers.m]\ntype = \"email\"\nsmtp_host = \"smtp.example.com\"\nfrom = \"a@example.com\"\nto = [\"b@example.com\"]\ntls = \"tls\"\n[alerts.receivers.h]\ntype = \"webhook\"\nurl = \"https://h.example.com/x\"\nsecret = \"s\"\n[alerts.receivers.a]\ntype = \"alertmanager\"\nurls = [\"http://am:9093\"]\nresend_delay = \"1m\"\n[alerts.receivers.d]\ntype = \"dingtalk\"\nurl = \"https://d.example.com/\"\n[alerts.receivers.d.templates]\ntitle = \"{{ status }}\"\n[[alerts.routes]]\nreceiver = \"h\"\n".to_vec(),
        b"[api]\ntoken = \"Sekr3t-Fuzz\"\n[[checks]]\nname = \"a\"\nplatform = \"local\"\nscript = \"true\"\nhosts = [\"localhost\"]\n[platforms.local]\nkind = \"local\"\n".to_vec(),
    ];
    let texts = proptest::sample::select(bases)
        .prop_flat_map(mutated)
        .prop_map(|b| String::from_utf8_lossy(&b).into_owned());
    let env_key = prop_oneof![
        Just("JOBWATCH__API__TOKEN".to_owned()),
        Just("JOBWATCH__CHECKS__0__TIMEOUT".to_owned()),
        Just("JOBWATCH__PLATFORMS__BK__APP_SECRET".to_owned()),
        Just("JOBWATCH____".to_owned()),
        "JOBWATCH__[A-Z_0-9]{0,24}",
    ];
    let env = proptest::collection::vec((env_key, "\\PC{0,12}"), 0..3);
    fuzz("config mutated", (texts, env), |(text, env)| {
        read_config(&text, env)
    });
    fuzz("config arbitrary", "\\PC{0,300}", |text: String| {
        read_config(&text, Vec::new())
    });
}

/// One request: the answer is never a 5xx, every error is the documented JSON, and a refused
/// request stores nothing.
fn request(
    rt: &tokio::runtime::Runtime,
    api: &common::InProcessApi,
    method: Method,
    uri: &str,
    body: Vec<u8>,
) {
    rt.block_on(async {
        let before = api.count().await;
        let Ok(req) = Request::builder()
            .method(method)
            .uri(uri)
            .header("Authorization", format!("Bearer {}", common::TOKEN))
            .header("Content-Type", "application/json")
            .body(Body::from(body))
        else {
            return; // not a request a client could send
        };
        let response = api.router.clone().oneshot(req).await.unwrap();
        let status = response.status();
        assert!(!status.is_server_error(), "{uri}: {status}");
        if status.is_client_error() {
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{uri}: {status} not JSON ({e}): {bytes:?}"));
            assert!(
                v["error"]["code"].is_string() && v["error"]["message"].is_string(),
                "{v}"
            );
            assert!(bytes.len() < 2000, "{uri}: {} bytes", bytes.len());
            assert_eq!(
                api.count().await,
                before,
                "{uri}: a refusal stored something"
            );
        }
    });
}

#[test]
fn every_api_body_query_and_path_takes_bad_bytes() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let api = common::InProcessApi::start(&rt, "");
    let bodies: Vec<Vec<u8>> = vec![
        br#"{"check":"a","hosts":["localhost"],"params":"-x"}"#.to_vec(),
        br#"{"platform":"local","job_instance_id":5,"timeout_seconds":60,"check":"a"}"#.to_vec(),
        br#"{"check":"nope"}"#.to_vec(),
        br#"{"matchers":["check=~\"db-.*\"",{"name":"severity","value":"page","isRegex":false,"isEqual":true}],"duration":"2h","comment":"x","created_by":"ops"}"#.to_vec(),
    ];
    let body = prop_oneof![
        proptest::sample::select(bodies).prop_flat_map(mutated),
        proptest::collection::vec(any::<u8>(), 0..256),
    ];
    let route = prop_oneof![
        Just("/v1/executions"),
        Just("/v1/watches"),
        Just("/v1/silences")
    ];
    fuzz("API bodies", (route, body), |(route, body)| {
        request(&rt, &api, Method::POST, route, body)
    });
    let query = "[ -~]{0,60}".prop_map(|q| q.replace(' ', "%20").replace('#', "%23"));
    let path = prop_oneof![
        Just("/v1/executions?"),
        Just("/v1/notifications?"),
        Just("/?"),
        Just("/executions?"),
        Just("/silences?"),
        Just("/v1/checks?"),
        Just("/v1/silences?"),
        Just("/v1/silences/"),
        Just("/executions/"),
        Just("/v1/executions/"),
        Just("/v1/executions/0193a1b2-0000-7000-8000-000000000000/hosts/"),
    ];
    fuzz("API queries and paths", (path, query), |(path, query)| {
        request(
            &rt,
            &api,
            Method::GET,
            &format!("{path}{query}"),
            Vec::new(),
        )
    });
    let escaped = proptest::collection::vec(any::<u8>(), 0..40).prop_map(|bytes| {
        bytes
            .iter()
            .map(|b| format!("%{b:02X}"))
            .collect::<String>()
    });
    fuzz("API percent-encoded bytes", escaped, |segment| {
        request(
            &rt,
            &api,
            Method::GET,
            &format!("/v1/executions/{segment}"),
            Vec::new(),
        );
        request(
            &rt,
            &api,
            Method::GET,
            &format!("/v1/executions?cursor={segment}&limit={segment}"),
            Vec::new(),
        );
        request(
            &rt,
            &api,
            Method::GET,
            &format!("/executions/0193a1b2-0000-7000-8000-000000000000/hosts/{segment}"),
            Vec::new(),
        );
        request(
            &rt,
            &api,
            Method::DELETE,
            &format!("/v1/silences/{segment}"),
            Vec::new(),
        );
    });
}
