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
        // A typo in a template is a test failure, not an empty cell.
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (name, text) in TEMPLATES {
            env.add_template(name, text)
                .unwrap_or_else(|e| panic!("built-in template {name} does not compile: {e:#}"));
        }
        env
    })
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

/// The login prompt (401), to come back to `next` (a path of this server) once logged in.
pub fn login_response(next: &str, error: Option<&str>) -> Response {
    let next = if next.starts_with('/') && !next.starts_with("//") {
        next
    } else {
        "/"
    };
    match render(
        "login.html",
        &Frame::new(None, None, true),
        minijinja::context! { next, error },
    ) {
        Ok(html) => (StatusCode::UNAUTHORIZED, Html(html)).into_response(),
        Err(e) => e.into_response(),
    }
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
