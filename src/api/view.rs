//! The pages' rendering: minijinja templates compiled into the binary (`templates/`), one
//! stylesheet and one script (`assets/`), served from memory. HTML is escaped by the
//! templates (auto-escape on `.html`); handlers pass data, never markup.

use std::sync::OnceLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;

use super::ApiError;
use super::auth::Caller;

/// The templates, by name.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("board.html", include_str!("templates/board.html")),
    ("executions.html", include_str!("templates/executions.html")),
    ("execution.html", include_str!("templates/execution.html")),
    ("log.html", include_str!("templates/log.html")),
    ("silences.html", include_str!("templates/silences.html")),
    ("alerts.html", include_str!("templates/alerts.html")),
];

/// The stylesheet.
pub const CSS: &str = include_str!("assets/jobwatch.css");
/// The script.
pub const JS: &str = include_str!("assets/jobwatch.js");

fn environment() -> &'static minijinja::Environment<'static> {
    static ENV: OnceLock<minijinja::Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = minijinja::Environment::new();
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
        // A typo in a template is a test failure, not an empty cell (an absent value may
        // still be tested with `if`).
        env.set_undefined_behavior(minijinja::UndefinedBehavior::SemiStrict);
        env.add_filter("ago", ago);
        env.add_filter("secs", secs);
        env.add_filter("pct", |r: f64| format!("{:.0}%", r * 100.0));
        env.add_filter("time", |ms: i64| crate::time::rfc3339_ms(ms));
        env.add_filter("short", short_time);
        env.add_filter("clip", |text: Option<String>, n: usize| {
            let text = text.unwrap_or_default();
            if text.chars().count() > n {
                let mut t: String = text.chars().take(n).collect();
                t.push('…');
                t
            } else {
                text
            }
        });
        for (name, text) in TEMPLATES {
            env.add_template(name, text)
                .unwrap_or_else(|e| panic!("built-in template {name} does not compile: {e:#}"));
        }
        env
    })
}

/// A length of time for people: `850 ms`, `12.3 s`, `5m 3s`, `2h 5m`, `3d 4h`.
pub fn span(ms: i64) -> String {
    let ms = ms.max(0);
    let s = ms / 1000;
    match ms {
        _ if ms < 1000 => format!("{ms} ms"),
        _ if ms < 60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        _ if s < 3600 => format!("{}m {}s", s / 60, s % 60),
        _ if s < 86_400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// `ago`: an RFC 3339 time as `5m 3s ago` or `in 2h 5m` (from now); `—` when empty.
fn ago(text: Option<String>) -> String {
    let Some(ms) = text.as_deref().and_then(crate::time::parse_rfc3339_ms) else {
        return "—".into();
    };
    let delta = crate::time::now_ms() - ms;
    if delta >= 0 {
        format!("{} ago", span(delta))
    } else {
        format!("in {}", span(-delta))
    }
}

/// `secs`: seconds as [`span`].
fn secs(seconds: Option<f64>) -> String {
    seconds.map_or_else(|| "—".into(), |s| span((s * 1000.0).round() as i64))
}

/// `short`: an RFC 3339 time as `2026-11-30 10:00:00` (UTC, to the second).
fn short_time(text: Option<String>) -> String {
    match text {
        Some(t) if t.len() >= 19 => format!("{} UTC", t[..19].replace('T', " ")),
        Some(t) if !t.is_empty() => t,
        _ => "—".into(),
    }
}

/// What every page shows around its content.
#[derive(Debug, Serialize)]
pub struct Frame<'a> {
    /// jobwatch's version (also busts the assets' cache).
    pub version: &'static str,
    /// The nav entry to mark (`None`: no navigation, e.g. the login page).
    pub nav: Option<&'static str>,
    /// Who is looking.
    pub caller: Option<&'a Caller>,
    /// Whether new work is accepted (false: shutting down).
    pub accepting: bool,
}

impl<'a> Frame<'a> {
    /// A frame for `nav`.
    pub fn new(nav: Option<&'static str>, caller: Option<&'a Caller>, accepting: bool) -> Self {
        Frame {
            version: env!("CARGO_PKG_VERSION"),
            nav,
            caller,
            accepting,
        }
    }
}

/// Renders template `name` with `frame` and the page's own `data` (merged at the top level).
pub fn render(name: &str, frame: &Frame<'_>, data: impl Serialize) -> Result<String, ApiError> {
    let env = environment();
    let template = env
        .get_template(name)
        .map_err(|e| ApiError::internal(format!("page template {name}: {e}")))?;
    let ctx = minijinja::context! { ..minijinja::Value::from_serialize(frame), ..minijinja::Value::from_serialize(&data) };
    template.render(ctx).map_err(|e| {
        tracing::error!(template = name, error = %format!("{e:#}"), "A page did not render.");
        ApiError::internal("the page could not be rendered")
    })
}

/// [`render`] as an HTML answer.
pub fn page(name: &str, frame: &Frame<'_>, data: impl Serialize) -> Result<Html<String>, ApiError> {
    render(name, frame, data).map(Html)
}

/// What every page's answer carries: its own origin only for scripts, styles, forms and
/// frames (no inline script runs, no other site frames it), no sniffing, no referrer sent to
/// the platform's UI links.
pub fn harden(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

/// The login prompt (401), to come back to `next` (a path of this server) once logged in.
pub fn login_response(next: &str, error: Option<&str>) -> Response {
    let next = if next.starts_with('/') && !next.starts_with("//") {
        next
    } else {
        "/"
    };
    let mut response = match render(
        "login.html",
        &Frame::new(None, None, true),
        minijinja::context! { next, error },
    ) {
        Ok(html) => (StatusCode::UNAUTHORIZED, Html(html)).into_response(),
        Err(e) => e.into_response(),
    };
    harden(&mut response);
    response
}

/// An embedded asset: its body with a content type, cached for a day (the pages ask for it
/// with the version in the query).
pub fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            ),
        ],
        body,
    )
        .into_response()
}
