//! The HTTP API as a router, without a process or a socket (`tower::ServiceExt::oneshot`):
//! every documented error, the token layer on the mutating routes, input validation, and that
//! a refused request stores nothing. (What needs a process — signals, restarts, the listening
//! line — is in `tests/daemon.rs`.)

mod common;

use common::{InProcessApi, TOKEN, runtime};

#[test]
fn the_token_guards_the_mutating_routes_only() {
    let rt = runtime();
    let api = InProcessApi::start(&rt, "");
    rt.block_on(async {
        for (method, uri, body) in [
            ("POST", "/v1/executions", r#"{"check":"a"}"#),
            (
                "POST",
                "/v1/watches",
                r#"{"platform":"local","job_instance_id":1}"#,
            ),
        ] {
            for token in [None, Some("wrong"), Some("")] {
                let (status, body) = api.call(method, uri, token, body).await;
                assert_eq!(status, 401, "{uri} {token:?}: {body}");
                assert_eq!(body["error"]["code"], "unauthorized");
            }
        }
        // The token is checked before the body is read: no token and bad JSON is a 401.
        let (status, _) = api.call("POST", "/v1/executions", None, "{not json").await;
        assert_eq!(status, 401);
        for uri in [
            "/v1/executions",
            "/v1/alerts",
            "/v1/notifications",
            "/healthz",
            "/metrics",
            "/",
        ] {
            assert_eq!(
                api.call("GET", uri, None, "").await.0,
                200,
                "{uri} is open to read"
            );
        }
        assert_eq!(api.count().await, 0, "nothing was stored");
        let (status, body) = api
            .call("POST", "/v1/executions", Some(TOKEN), r#"{"check":"a"}"#)
            .await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(api.count().await, 1);
    });
}

#[test]
fn every_documented_error_comes_back_as_json_and_changes_nothing() {
    let rt = runtime();
    let api = InProcessApi::start(&rt, "");
    rt.block_on(async {
        let long = "x".repeat(20_000);
        let cases: Vec<(&str, String, String, u16, &str)> = vec![
            (
                "POST",
                "/v1/executions".into(),
                "{not json".into(),
                400,
                "bad_request",
            ),
            (
                "POST",
                "/v1/executions".into(),
                r#"{"check":"a","extra":1}"#.into(),
                400,
                "bad_request",
            ),
            (
                "POST",
                "/v1/executions".into(),
                r#"{"check":"a","hosts":[]}"#.into(),
                400,
                "bad_request",
            ),
            (
                "POST",
                "/v1/executions".into(),
                r#"{"check":"a","hosts":["10.0.0.1"]}"#.into(),
                400,
                "bad_request",
            ),
            (
                "POST",
                "/v1/executions".into(),
                r#"{"check":"a","hosts":[true]}"#.into(),
                400,
                "bad_request",
            ),
            (
                "POST",
                "/v1/executions".into(),
                r#"{"check":"a","script":"rm -rf /"}"#.into(),
                403,
                "forbidden",
            ),
            (
                "POST",
                "/v1/executions".into(),
                r#"{"check":"nope"}"#.into(),
                404,
                "not_found",
            ),
            (
                "POST",
                "/v1/executions".into(),
                format!(r#"{{"check":"{long}"}}"#),
                404,
                "not_found",
            ),
            (
                "POST",
                "/v1/watches".into(),
                r#"{"platform":"local","job_instance_id":0}"#.into(),
                400,
                "bad_request",
            ),
            (
                "POST",
                "/v1/watches".into(),
                r#"{"platform":"nope","job_instance_id":1}"#.into(),
                404,
                "not_found",
            ),
            (
                "POST",
                "/v1/watches".into(),
                r#"{"platform":"local","job_instance_id":1,"check":"nope"}"#.into(),
                404,
                "not_found",
            ),
            (
                "GET",
                "/v1/executions?state=bogus".into(),
                String::new(),
                400,
                "bad_request",
            ),
            (
                "GET",
                "/v1/executions?limit=0".into(),
                String::new(),
                400,
                "bad_request",
            ),
            (
                "GET",
                "/v1/executions?limit=1001".into(),
                String::new(),
                400,
                "bad_request",
            ),
            (
                "GET",
                "/v1/executions?limit=-1".into(),
                String::new(),
                400,
                "bad_request",
            ),
            (
                "GET",
                "/v1/executions?cursor=bogus".into(),
                String::new(),
                400,
                "bad_request",
            ),
            (
                "GET",
                "/v1/notifications?limit=abc".into(),
                String::new(),
                400,
                "bad_request",
            ),
            (
                "GET",
                "/?before=bogus".into(),
                String::new(),
                400,
                "bad_request",
            ),
            (
                "GET",
                "/v1/executions/%FF".into(),
                String::new(),
                400,
                "bad_request",
            ),
            (
                "GET",
                "/v1/executions/0193a1b2-0000-7000-8000-000000000000".into(),
                String::new(),
                404,
                "not_found",
            ),
            (
                "GET",
                "/v1/executions/0193a1b2-0000-7000-8000-000000000000/hosts/localhost/log".into(),
                String::new(),
                404,
                "not_found",
            ),
            (
                "GET",
                "/no/such/route".into(),
                String::new(),
                404,
                "not_found",
            ),
            (
                "DELETE",
                "/v1/executions".into(),
                String::new(),
                405,
                "method_not_allowed",
            ),
            (
                "PUT",
                "/v1/watches".into(),
                String::new(),
                405,
                "method_not_allowed",
            ),
            (
                "POST",
                "/v1/executions".into(),
                " ".repeat(3 << 20),
                413,
                "payload_too_large",
            ),
        ];
        for (method, uri, body, status, code) in cases {
            let (got, answer) = api.call(method, &uri, Some(TOKEN), &body).await;
            let shown: String = uri.chars().take(60).collect();
            assert_eq!(got, status, "{method} {shown}: {answer}");
            assert_eq!(answer["error"]["code"], code, "{method} {shown}: {answer}");
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(
                !message.is_empty() && message.len() < 600,
                "{method} {shown}: {message}"
            );
        }
        assert_eq!(api.count().await, 0, "no refused request stored anything");
    });
}

#[test]
fn shutting_down_refuses_new_work_with_503_and_readiness_says_so() {
    let rt = runtime();
    let api = InProcessApi::start(&rt, "");
    rt.block_on(async {
        assert_eq!(api.call("GET", "/readyz", None, "").await.0, 200);
        api.runner.shutdown(std::time::Duration::from_secs(1)).await;
        let (status, body) = api
            .call("POST", "/v1/executions", Some(TOKEN), r#"{"check":"a"}"#)
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (503, Some("shutting_down")),
            "{body}"
        );
        assert_eq!(api.call("GET", "/readyz", None, "").await.0, 503);
        assert_eq!(api.count().await, 0);
    });
}

#[test]
fn inline_scripts_run_only_when_allowed() {
    let rt = runtime();
    for (allowed, expected) in [(false, 403), (true, 202)] {
        let api = InProcessApi::start(&rt, &format!("allow_inline_scripts = {allowed}"));
        rt.block_on(async {
            let (status, body) = api
                .call(
                    "POST",
                    "/v1/executions",
                    Some(TOKEN),
                    r#"{"check":"a","script":"echo hi"}"#,
                )
                .await;
            assert_eq!(status, expected, "{body}");
            assert_eq!(api.count().await, usize::from(allowed));
        });
    }
}
