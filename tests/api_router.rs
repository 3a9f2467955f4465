//! The HTTP API as a router, without a process or a socket (`tower::ServiceExt::oneshot`):
//! every documented error, the token layer on the mutating routes, input validation, and that
//! a refused request stores nothing. (What needs a process — signals, restarts, the listening
//! line — is in `tests/daemon.rs`.)

mod common;

use common::{InProcessApi, TOKEN, runtime};

/// One token per role, besides `api.token` (the admin token named `token`).
const ROLE_TOKENS: &str = "[api.tokens.prometheus]\nrole = \"metrics\"\ntoken = \"metrics-token-0123456789\"\n[api.tokens.viewer]\nrole = \"read\"\ntoken = \"read-token-0123456789\"\n[api.tokens.ci]\nrole = \"run\"\ntoken = \"run-token-0123456789\"\n[api.tokens.oncall]\nrole = \"admin\"\ntoken = \"admin-token-0123456789\"\n";

#[test]
fn each_role_is_allowed_and_refused_exactly_as_documented() {
    let rt = runtime();
    let api = InProcessApi::start(&rt, ROLE_TOKENS);
    rt.block_on(async {
        let (_, accepted) = api
            .call("POST", "/v1/executions", Some(TOKEN), r#"{"check":"a"}"#)
            .await;
        let id = accepted["execution_id"].as_str().unwrap().to_owned();
        let silence = r#"{"matchers":["check=\"a\""],"duration":"1h","comment":"test"}"#;
        let (status, made) = api.call("POST", "/v1/silences", Some(TOKEN), silence).await;
        assert_eq!(status, 201, "{made}");
        let silence_id = made["id"].as_str().unwrap().to_owned();
        // (method, uri, body, the least role; None: open to anyone)
        let routes: Vec<(&str, String, &str, Option<&str>)> = vec![
            ("GET", "/healthz".into(), "", None),
            ("GET", "/readyz".into(), "", None),
            ("GET", "/login".into(), "", None),
            ("GET", "/assets/jobwatch.css".into(), "", None),
            ("GET", "/metrics".into(), "", Some("metrics")),
            ("GET", "/".into(), "", Some("read")),
            ("GET", "/openapi.json".into(), "", Some("read")),
            ("GET", "/v1/executions".into(), "", Some("read")),
            ("GET", format!("/v1/executions/{id}"), "", Some("read")),
            ("GET", "/v1/alerts".into(), "", Some("read")),
            ("GET", "/v1/notifications".into(), "", Some("read")),
            ("GET", "/v1/silences".into(), "", Some("read")),
            (
                "GET",
                format!("/v1/silences/{silence_id}"),
                "",
                Some("read"),
            ),
            ("POST", "/v1/silences".into(), silence, Some("admin")),
            (
                "DELETE",
                format!("/v1/silences/{silence_id}"),
                "",
                Some("admin"),
            ),
            (
                "POST",
                "/v1/executions".into(),
                r#"{"check":"a"}"#,
                Some("run"),
            ),
            (
                "POST",
                "/v1/watches".into(),
                r#"{"platform":"local","job_instance_id":1}"#,
                Some("run"),
            ),
        ];
        let tokens = [
            ("metrics", "metrics-token-0123456789"),
            ("read", "read-token-0123456789"),
            ("run", "run-token-0123456789"),
            ("admin", "admin-token-0123456789"),
            ("admin", TOKEN),
        ];
        let rank = |role: &str| {
            ["metrics", "read", "run", "admin"]
                .iter()
                .position(|r| *r == role)
                .unwrap()
        };
        for (method, uri, body, least) in &routes {
            // Without a token, or with a wrong one: refused (401) unless open; never data.
            for bad in [None, Some("wrong-token"), Some("")] {
                let mut headers = vec![("content-type", "application/json")];
                let auth;
                if let Some(t) = bad {
                    auth = format!("Bearer {t}");
                    headers.push(("authorization", auth.as_str()));
                }
                let (status, _, text) = api.call_with(method, uri, &headers, body).await;
                match least {
                    None => assert!(status < 400, "{method} {uri} is open: {status}"),
                    Some(_) => {
                        assert_eq!(status, 401, "{method} {uri} with {bad:?}: {text}");
                        assert!(
                            !text.contains(&id),
                            "{method} {uri} showed data without a token"
                        );
                    }
                }
            }
            for (role, token) in tokens {
                let auth = format!("Bearer {token}");
                let headers = [
                    ("content-type", "application/json"),
                    ("authorization", auth.as_str()),
                ];
                let (status, _, text) = api.call_with(method, uri, &headers, body).await;
                let allowed = least.is_none_or(|least| rank(role) >= rank(least));
                if allowed {
                    assert!(status < 400, "{method} {uri} as {role}: {status} {text}");
                } else {
                    assert_eq!(status, 403, "{method} {uri} as {role}: {text}");
                    let e: serde_json::Value = serde_json::from_str(&text).unwrap();
                    assert_eq!(e["error"]["code"], "forbidden");
                    assert!(
                        e["error"]["message"]
                            .as_str()
                            .unwrap()
                            .contains(least.unwrap()),
                        "{text}"
                    );
                }
            }
        }
        // The token is checked before the body is read: no token and bad JSON is a 401.
        let (status, _) = api.call("POST", "/v1/executions", None, "{not json").await;
        assert_eq!(status, 401);
        // A refused page is the login prompt.
        let (status, _, html) = api.call_with("GET", "/?before=x", &[], "").await;
        assert_eq!(status, 401);
        assert!(
            html.contains("id=\"login\"") && html.contains("name=\"token\""),
            "{html}"
        );
    });
}

#[test]
fn the_login_cookie_authorizes_pages_and_their_changes_only_with_the_page_header() {
    let rt = runtime();
    let api = InProcessApi::start(&rt, ROLE_TOKENS);
    rt.block_on(async {
        let form = [("content-type", "application/x-www-form-urlencoded")];
        let (status, _, html) = api
            .call_with("POST", "/login", &form, "token=nope&next=%2Fsilences")
            .await;
        assert_eq!(status, 401);
        assert!(html.contains("not valid"), "{html}");
        let (status, headers, _) = api
            .call_with(
                "POST",
                "/login",
                &form,
                "token=run-token-0123456789&next=%2F%3Fstate%3Dfailed",
            )
            .await;
        assert_eq!(status, 303);
        assert_eq!(headers["location"], "/?state=failed");
        let set = headers["set-cookie"].to_str().unwrap().to_owned();
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict"),
            "{set}"
        );
        assert!(
            !set.contains("run-token-0123456789"),
            "the cookie does not carry the token as typed"
        );
        let cookie = set.split(';').next().unwrap().to_owned();
        // A login never sends one elsewhere.
        let (_, headers, _) = api
            .call_with(
                "POST",
                "/login",
                &form,
                "token=run-token-0123456789&next=%2F%2Fevil.example",
            )
            .await;
        assert_eq!(headers["location"], "/");

        let (status, _, html) = api
            .call_with("GET", "/", &[("cookie", cookie.as_str())], "")
            .await;
        assert_eq!(status, 200, "{html}");
        let json = [
            ("cookie", cookie.as_str()),
            ("content-type", "application/json"),
        ];
        let (status, _, text) = api
            .call_with("POST", "/v1/executions", &json, r#"{"check":"a"}"#)
            .await;
        assert_eq!(
            status, 403,
            "a change with the cookie alone is refused: {text}"
        );
        assert_eq!(api.count().await, 0);
        let page = [
            ("cookie", cookie.as_str()),
            ("content-type", "application/json"),
            ("x-jobwatch-page", "1"),
        ];
        let (status, _, text) = api
            .call_with("POST", "/v1/executions", &page, r#"{"check":"a"}"#)
            .await;
        assert_eq!(status, 202, "{text}");
        assert_eq!(api.count().await, 1);
        let (status, headers, _) = api.call_with("POST", "/logout", &[], "").await;
        assert_eq!(status, 303);
        assert!(
            headers["set-cookie"]
                .to_str()
                .unwrap()
                .contains("Max-Age=0")
        );
    });
}

#[test]
fn without_tokens_every_route_is_open() {
    let rt = runtime();
    let api = InProcessApi::start_without_token(&rt);
    rt.block_on(async {
        for uri in ["/", "/v1/executions", "/metrics", "/openapi.json"] {
            assert_eq!(api.call("GET", uri, None, "").await.0, 200, "{uri}");
        }
        let (status, _) = api
            .call("POST", "/v1/executions", None, r#"{"check":"a"}"#)
            .await;
        assert_eq!(status, 202);
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
                "/executions?before=bogus".into(),
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

#[test]
fn every_page_renders_for_an_execution_at_each_stage() {
    let rt = runtime();
    let api = InProcessApi::start(&rt, "");
    rt.block_on(async {
        let auth = format!("Bearer {TOKEN}");
        let headers = [("authorization", auth.as_str())];
        let page = |uri: String| {
            let api = &api;
            async move {
                let (status, _, html) = api.call_with("GET", &uri, &headers, "").await;
                assert_eq!(status, 200, "{uri}: {html}");
                html
            }
        };
        // Before any execution, then with one, then with one ended.
        for uri in [
            "/",
            "/executions",
            "/silences",
            "/alerts",
            "/executions?check=a",
        ] {
            page(uri.into()).await;
        }
        let (_, accepted) = api
            .call("POST", "/v1/executions", Some(TOKEN), r#"{"check":"a"}"#)
            .await;
        let id = accepted["execution_id"].as_str().unwrap().to_owned();
        page(format!("/executions/{id}")).await;
        let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let (_, e) = api
                .call("GET", &format!("/v1/executions/{id}"), Some(TOKEN), "")
                .await;
            if e["state"] == "succeeded" {
                break;
            }
            assert!(std::time::Instant::now() < until, "{e:#}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        for uri in [
            "/".to_owned(),
            "/executions".into(),
            "/executions?check=a".into(),
            format!("/executions/{id}"),
            format!("/executions/{id}/hosts/localhost"),
            "/silences?check=a&alertname=ExecutionFailed".into(),
            "/alerts".into(),
        ] {
            let html = page(uri.clone()).await;
            assert!(
                html.contains("<main>") && html.contains("/assets/jobwatch.js"),
                "{uri}: {html}"
            );
        }
        // A watched job gets the board's watches row.
        let (status, _) = api
            .call(
                "POST",
                "/v1/watches",
                Some(TOKEN),
                r#"{"platform":"local","job_instance_id":424242}"#,
            )
            .await;
        assert_eq!(status, 202);
        let (_, board) = api.call("GET", "/v1/checks", Some(TOKEN), "").await;
        let rows: Vec<(&str, &str)> = board["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["name"].as_str().unwrap(), c["kind"].as_str().unwrap()))
            .collect();
        assert!(
            rows.contains(&("watch", "watches")) && rows.contains(&("a", "check")),
            "{board:#}"
        );
        assert_eq!(board["totals"]["checks"], 2);
        let html = page("/".into()).await;
        assert!(
            html.contains("data-check=\"watch\"") && html.contains("jobs started elsewhere"),
            "{html}"
        );
        let html = page("/silences?check=a%22b".into()).await;
        assert!(
            html.contains("check=&quot;a\\&quot;b&quot;"),
            "prefilled and escaped: {html}"
        );
        let (status, _, _) = api
            .call_with(
                "GET",
                &format!("/executions/{id}/hosts/nowhere"),
                &headers,
                "",
            )
            .await;
        assert_eq!(status, 404);
    });
}
