//! The compliance suite every HTTP receiver passes (STYLE.md #5): against a local server
//! that answers what the real service answers, each receiver must classify every answer
//! right (delivered / errored = retry / rejected), send its documented request (signatures
//! included), and never show its secrets (tokens in URLs, sign keys) in an error.
//! A new receiver is a new file in `src/notify/` (its settings, their check, its request and
//! its answers), its line in `notify::Settings`, and one `Case` here.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use base64::Engine as _;
use jobwatch::alert::render::NotificationView;
use jobwatch::alert::{Alert, AlertCause, AlertStatus, HostLine, LogTailView};
use jobwatch::config::ReceiverConfig;
use jobwatch::model::{ExecutionState, HostOutcome};
use jobwatch::notify::{self, Delivery};

const URL_TOKEN: &str = "tok3n-in-the-URL-5f2a";
const SIGN_SECRET: &str = "SECsign-secret-7c1e";

#[derive(Default)]
struct Server {
    answer: Mutex<(u16, String)>,
    requests: Mutex<Vec<(Uri, HeaderMap, Bytes)>>,
}

async fn handle(
    State(s): State<Arc<Server>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    s.requests.lock().unwrap().push((uri, headers, body));
    let (status, body) = s.answer.lock().unwrap().clone();
    (StatusCode::from_u16(status).unwrap(), body)
}

async fn serve() -> (Arc<Server>, String) {
    let state = Arc::new(Server::default());
    let app = axum::Router::new()
        .fallback(axum::routing::post(handle))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (state, format!("http://{addr}"))
}

fn alert(status: AlertStatus) -> Alert {
    let labels: BTreeMap<String, String> = [
        ("alertname", "ExecutionFailed"),
        ("check", "disk-check"),
        ("platform", "bk"),
        ("severity", "critical"),
        ("class", "execution"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    Alert {
        fingerprint: jobwatch::alert::fingerprint(&labels),
        labels,
        status,
        holders: vec!["check".into()],
        starts_at_ms: 1_790_000_000_000,
        ends_at_ms: (status == AlertStatus::Resolved).then_some(1_790_000_060_000),
        updated_at_ms: 1_790_000_000_000,
        cause: AlertCause {
            summary: "check disk-check on bk failed: 1 of 2 hosts did not succeed".into(),
            description: "1 of 2 hosts did not succeed".into(),
            execution_id: "0190-exec".into(),
            job_instance_id: Some(20001),
            jid: None,
            state: ExecutionState::Failed,
            started_at: "2026-09-21T12:00:00.000Z".into(),
            hosts: vec![
                HostLine {
                    host: "0:10.0.0.3".into(),
                    status: Some(104),
                    status_label: "script failed".into(),
                    outcome: HostOutcome::Failed,
                    exit_code: Some(3),
                },
                HostLine {
                    host: "0:10.0.0.1".into(),
                    status: Some(9),
                    status_label: "success".into(),
                    outcome: HostOutcome::Success,
                    exit_code: Some(0),
                },
            ],
            hosts_total: 2,
            hosts_failed: 1,
            log_tails: vec![LogTailView {
                host: "0:10.0.0.3".into(),
                text: "ERROR: /data is 97% full".into(),
                truncated: false,
            }],
        },
        resolution: None,
        targets: Vec::new(),
    }
}

/// The receiver `r` as a user configures it, read and checked as jobwatch does: `fields` is
/// the rest of its table (`type = …` and the type's own settings).
fn receiver(fields: String) -> ReceiverConfig {
    let text = format!("[alerts.receivers.r]\ntimeout = \"3s\"\nretry_for = \"1h\"\n{fields}\n");
    let config =
        jobwatch::config::load_text_checked(&text, "test", Vec::new(), notify::check_receiver)
            .unwrap();
    config.alerts.receivers["r"].clone()
}

/// One receiver type: how to build it against `base`, the answers it must classify, and
/// what its request must look like.
struct Case {
    name: &'static str,
    /// The receiver's table (after `[alerts.receivers.r]`) against `base`.
    build: fn(&str) -> String,
    ok: (u16, &'static str),
    /// (HTTP status, body, expected result).
    answers: Vec<(u16, &'static str, &'static str)>,
    check_request: fn(&Uri, &HeaderMap, &serde_json::Value, &[u8]),
}

fn hmac_b64(key: &[u8], msg: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(msg);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn cases() -> Vec<Case> {
    let http_only = vec![
        (500, "oops", "errored"),
        (503, "", "errored"),
        (429, "slow down", "errored"),
        (408, "", "errored"),
        (400, "bad", "rejected"),
        (401, "", "rejected"),
        (404, "", "rejected"),
    ];
    vec![
        Case {
            name: "webhook",
            build: |base| {
                format!(
                    "type = \"webhook\"\nurl = \"{base}/hook?token={URL_TOKEN}\"\nsecret = \"{SIGN_SECRET}\""
                )
            },
            ok: (200, ""),
            answers: http_only.clone(),
            check_request: |_, headers, body, raw| {
                let ts = headers["x-jobwatch-timestamp"].to_str().unwrap();
                let sig = headers["x-jobwatch-signature"].to_str().unwrap();
                assert_eq!(
                    sig,
                    jobwatch::notify::webhook::signature(SIGN_SECRET.as_bytes(), ts, raw)
                );
                // Independently computed: HMAC-SHA256(secret, timestamp ‖ body), hex.
                use hmac::Mac;
                let mut mac =
                    hmac::Hmac::<sha2::Sha256>::new_from_slice(SIGN_SECRET.as_bytes()).unwrap();
                mac.update(ts.as_bytes());
                mac.update(raw);
                assert_eq!(
                    sig,
                    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
                );
                assert_eq!(body["version"], "1");
                assert_eq!(body["status"], "firing");
                assert_eq!(body["alerts"][0]["labels"]["check"], "disk-check");
                assert_eq!(body["alerts"][0]["cause"]["hosts"][0]["exit_code"], 3);
            },
        },
        Case {
            name: "alertmanager",
            build: |base| format!("type = \"alertmanager\"\nurls = [\"{base}\"]"),
            ok: (200, ""),
            answers: http_only.clone(),
            check_request: |uri, _, body, _| {
                assert_eq!(uri.path(), "/api/v2/alerts");
                let a = &body[0];
                assert_eq!(a["labels"]["alertname"], "ExecutionFailed");
                assert_eq!(a["labels"]["severity"], "critical");
                assert!(
                    a["annotations"]["summary"]
                        .as_str()
                        .unwrap()
                        .contains("disk-check")
                );
                let ends =
                    chrono::DateTime::parse_from_rfc3339(a["endsAt"].as_str().unwrap()).unwrap();
                assert!(
                    ends.timestamp() > chrono::Utc::now().timestamp() + 200,
                    "endsAt is ahead while firing: {ends}"
                );
                chrono::DateTime::parse_from_rfc3339(a["startsAt"].as_str().unwrap()).unwrap();
            },
        },
        Case {
            name: "wecom",
            build: |base| {
                format!("type = \"wecom\"\nurl = \"{base}/cgi-bin/webhook/send?key={URL_TOKEN}\"")
            },
            ok: (200, r#"{"errcode":0,"errmsg":"ok"}"#),
            answers: {
                let mut a = http_only.clone();
                a.extend([
                    (
                        200,
                        r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#,
                        "errored",
                    ),
                    (200, r#"{"errcode":-1,"errmsg":"system busy"}"#, "errored"),
                    (
                        200,
                        r#"{"errcode":93000,"errmsg":"invalid webhook url"}"#,
                        "rejected",
                    ),
                    (200, "<html>proxy</html>", "errored"),
                ]);
                a
            },
            check_request: |_, _, body, _| {
                assert_eq!(body["msgtype"], "markdown");
                let content = body["markdown"]["content"].as_str().unwrap();
                assert!(
                    content.contains("disk-check") && content.contains("ERROR: /data is 97% full"),
                    "{content}"
                );
                assert!(content.len() <= 4096);
            },
        },
        Case {
            name: "dingtalk",
            build: |base| {
                format!(
                    "type = \"dingtalk\"\nurl = \"{base}/robot/send?access_token={URL_TOKEN}\"\nsecret = \"{SIGN_SECRET}\""
                )
            },
            ok: (200, r#"{"errcode":0,"errmsg":"ok"}"#),
            answers: {
                let mut a = http_only.clone();
                a.extend([
                    (
                        200,
                        r#"{"errcode":130101,"errmsg":"send too fast"}"#,
                        "errored",
                    ),
                    (
                        200,
                        r#"{"errcode":310000,"errmsg":"sign not match"}"#,
                        "rejected",
                    ),
                    (
                        200,
                        r#"{"errcode":300001,"errmsg":"token is not exist"}"#,
                        "rejected",
                    ),
                ]);
                a
            },
            check_request: |uri, _, body, _| {
                let q: BTreeMap<String, String> =
                    url::form_urlencoded::parse(uri.query().unwrap().as_bytes())
                        .into_owned()
                        .collect();
                assert_eq!(q["access_token"], URL_TOKEN);
                let ts = &q["timestamp"];
                let expected = hmac_b64(
                    SIGN_SECRET.as_bytes(),
                    format!("{ts}\n{SIGN_SECRET}").as_bytes(),
                );
                assert_eq!(q["sign"], expected, "DingTalk sign");
                assert_eq!(body["msgtype"], "markdown");
                assert!(
                    body["markdown"]["title"]
                        .as_str()
                        .unwrap()
                        .contains("FIRING")
                );
                assert!(
                    body["markdown"]["text"]
                        .as_str()
                        .unwrap()
                        .contains("0:10.0.0.3")
                );
            },
        },
        Case {
            name: "feishu",
            build: |base| {
                format!(
                    "type = \"feishu\"\nurl = \"{base}/open-apis/bot/v2/hook/{URL_TOKEN}\"\nsecret = \"{SIGN_SECRET}\""
                )
            },
            ok: (200, r#"{"code":0,"msg":"success","data":{}}"#),
            answers: {
                let mut a = http_only.clone();
                a.extend([
                    (200, r#"{"code":11232,"msg":"frequency limited"}"#, "errored"),
                    (200, r#"{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time"}"#, "rejected"),
                    (200, r#"{"StatusCode":0,"StatusMessage":"success"}"#, "delivered"),
                ]);
                a
            },
            check_request: |_, _, body, _| {
                let ts = body["timestamp"].as_str().unwrap();
                let expected = hmac_b64(format!("{ts}\n{SIGN_SECRET}").as_bytes(), b"");
                assert_eq!(body["sign"], expected, "Feishu sign");
                assert_eq!(body["msg_type"], "interactive");
                assert_eq!(body["card"]["header"]["template"], "red");
                assert!(
                    body["card"]["elements"][0]["content"]
                        .as_str()
                        .unwrap()
                        .contains("disk-check")
                );
            },
        },
        Case {
            name: "slack",
            build: |base| {
                format!("type = \"slack\"\nurl = \"{base}/services/T000/B000/{URL_TOKEN}\"")
            },
            ok: (200, "ok"),
            answers: {
                let mut a = http_only.clone();
                a.extend([(410, "channel_is_archived", "rejected")]);
                a
            },
            check_request: |_, _, body, _| {
                let text = body["text"].as_str().unwrap();
                assert!(text.starts_with("*[FIRING]"), "{text}");
                assert!(text.contains("ERROR: /data is 97% full"));
            },
        },
    ]
}

fn result_of(d: &Delivery) -> &'static str {
    d.as_str()
}

fn error_text(d: &Delivery) -> String {
    match d {
        Delivery::Delivered => String::new(),
        Delivery::Errored(e) | Delivery::Rejected(e) => e.clone(),
    }
}

#[tokio::test]
async fn every_receiver_sends_its_documented_request_and_classifies_every_answer() {
    let (server, base) = serve().await;
    let firing = NotificationView::new("r", &[alert(AlertStatus::Firing)]);
    for case in cases() {
        let notifier = notify::build(&receiver((case.build)(&base))).unwrap();
        *server.answer.lock().unwrap() = (case.ok.0, case.ok.1.to_owned());
        server.requests.lock().unwrap().clear();
        let d = notifier.notify(&firing).await;
        assert_eq!(d, Delivery::Delivered, "{}: the OK answer", case.name);
        let (uri, headers, raw) = server.requests.lock().unwrap().pop().expect("a request");
        assert_eq!(headers["content-type"], "application/json", "{}", case.name);
        let body: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        (case.check_request)(&uri, &headers, &body, &raw);

        for (status, answer, expected) in &case.answers {
            *server.answer.lock().unwrap() = (*status, (*answer).to_owned());
            let d = notifier.notify(&firing).await;
            assert_eq!(
                result_of(&d),
                *expected,
                "{}: HTTP {status} {answer}: {d:?}",
                case.name
            );
            let text = error_text(&d);
            assert!(
                !text.contains(URL_TOKEN) && !text.contains(SIGN_SECRET),
                "{}: secret in {text}",
                case.name
            );
            if *expected != "delivered" {
                assert!(!text.is_empty(), "{}: an error says why", case.name);
            }
        }
    }
}

#[tokio::test]
async fn a_receiver_that_cannot_be_reached_is_retried_and_its_url_never_shows() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let view = NotificationView::new("r", &[alert(AlertStatus::Firing)]);
    for case in cases() {
        let notifier = notify::build(&receiver((case.build)(&base))).unwrap();
        let d = notifier.notify(&view).await;
        assert_eq!(result_of(&d), "errored", "{}: {d:?}", case.name);
        let text = error_text(&d);
        assert!(
            !text.contains(URL_TOKEN) && !text.contains(SIGN_SECRET),
            "{}: {text}",
            case.name
        );
        assert!(
            !text.contains(&base),
            "{}: the URL is left out: {text}",
            case.name
        );
    }
}

#[tokio::test]
async fn resolved_notifications_say_so_and_alertmanager_gets_the_real_end() {
    let (server, base) = serve().await;
    *server.answer.lock().unwrap() = (200, String::new());
    let resolved = alert(AlertStatus::Resolved);
    let view = NotificationView::new("r", std::slice::from_ref(&resolved));
    let am = notify::build(&receiver((cases()[1].build)(&base))).unwrap();
    assert_eq!(am.notify(&view).await, Delivery::Delivered);
    let (_, _, raw) = server.requests.lock().unwrap().pop().unwrap();
    let body: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let ends = chrono::DateTime::parse_from_rfc3339(body[0]["endsAt"].as_str().unwrap()).unwrap();
    assert_eq!(ends.timestamp_millis(), resolved.ends_at_ms.unwrap());

    *server.answer.lock().unwrap() = (200, "ok".into());
    let slack = notify::build(&receiver((cases()[5].build)(&base))).unwrap();
    assert_eq!(slack.notify(&view).await, Delivery::Delivered);
    let (_, _, raw) = server.requests.lock().unwrap().pop().unwrap();
    let body: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert!(
        body["text"].as_str().unwrap().starts_with("*[RESOLVED]"),
        "{body}"
    );
}

#[tokio::test]
async fn templates_can_be_overridden_per_receiver() {
    let (server, base) = serve().await;
    *server.answer.lock().unwrap() = (200, r#"{"errcode":0,"errmsg":"ok"}"#.into());
    let mut r = receiver((cases()[2].build)(&base));
    r.templates.title = Some("{{ alerts | length }} alert(s) for {{ common_labels.check }}".into());
    r.templates.body = Some("{% for a in alerts %}{{ a.cause.execution_id }}{% endfor %}".into());
    let wecom = notify::build(&r).unwrap();
    let view = NotificationView::new("r", &[alert(AlertStatus::Firing)]);
    assert_eq!(wecom.notify(&view).await, Delivery::Delivered);
    let (_, _, raw) = server.requests.lock().unwrap().pop().unwrap();
    let body: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        body["markdown"]["content"],
        "### 1 alert(s) for disk-check\n0190-exec"
    );
}
