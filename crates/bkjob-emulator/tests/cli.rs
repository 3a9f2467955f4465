//! The `bkjob-emulator` binary: prints its bound address first, serves a scenario file, and
//! answers as the documented API does.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

/// One HTTP/1.1 exchange over a fresh connection; returns (status, body).
fn http(addr: &str, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split(' ').nth(1).unwrap().parse().unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

#[test]
fn serves_the_scenario_at_the_address_it_prints_first() {
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/three-hosts-mixed.toml"
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_bkjob-emulator"))
        .args(["--listen", "127.0.0.1:0", "--scenario", scenario])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first.trim().to_owned();
    assert!(
        addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
        "first line: {first:?}"
    );

    // APIGW without the auth header: the gateway's own 400 (API.md §2.2).
    let (status, body) = http(
        &addr,
        &format!(
            "GET /api/bk-job/prod/api/v3/get_job_instance_status?job_instance_id=1 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(status, 400);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"], 1640001);
    assert_eq!(v["code_name"], "INVALID_ARGS");

    // ESB with credentials in the body: an unknown job is the Job envelope's 1244006, HTTP 200.
    let body = r#"{"bk_app_code":"jobwatch","bk_app_secret":"emulator-secret","bk_username":"admin","bk_scope_type":"biz","bk_scope_id":"2","job_instance_id":42}"#;
    let (status, answer) = http(
        &addr,
        &format!(
            "POST /api/c/compapi/v2/jobv3/get_job_instance_status/ HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(v["result"], false);
    assert_eq!(v["code"], 1244006);

    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn every_shipped_scenario_is_valid() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            bkjob_emulator::Scenario::from_toml(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            count += 1;
        }
    }
    assert!(count >= 7, "the story scenarios are shipped ({count})");
}
