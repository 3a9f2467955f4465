//! The login form of the pages: a token typed once becomes an `HttpOnly` cookie
//! ([`auth::COOKIE`]), so that the pages and their script are authorized like any API call.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::*;

/// `GET /login?next=…`: the prompt.
pub async fn login_page(ApiQuery(q): ApiQuery<LoginQuery>) -> Response {
    let mut response = view::login_response(q.next.as_deref().unwrap_or("/"), None);
    *response.status_mut() = StatusCode::OK;
    response
}

/// `GET /login` query.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    /// Where to go once logged in (a path of this server).
    pub next: Option<String>,
}

/// `POST /login` (a form: `token`, `next`): a known token sets the cookie and goes to `next`
/// (303); another gets the prompt again (401).
pub async fn login(State(state): State<AppState>, body: Bytes) -> Response {
    let mut token = String::new();
    let mut next = "/".to_owned();
    for (k, v) in url::form_urlencoded::parse(&body) {
        match k.as_ref() {
            "token" => token = v.trim().to_owned(),
            "next" => next = v.into_owned(),
            _ => {}
        }
    }
    let Some(caller) = auth::find_token(&state, &token) else {
        crate::internal_events::ApiChange {
            token: "-",
            method: "POST",
            path: "/login",
            status: 401,
        }
        .emit();
        return view::login_response(&next, Some("That token is not valid."));
    };
    crate::internal_events::ApiChange {
        token: &caller.name,
        method: "POST",
        path: "/login",
        status: 303,
    }
    .emit();
    if !next.starts_with('/') || next.starts_with("//") {
        next = "/".into();
    }
    let value = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.as_bytes());
    let secure = if state.runner.config().api.tls.is_some() {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Strict{secure}",
        auth::COOKIE
    );
    redirect(&next, &cookie)
}

/// `POST /logout`: the cookie is cleared; back to the prompt.
pub async fn logout() -> Response {
    let cookie = format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        auth::COOKIE
    );
    redirect("/login", &cookie)
}

fn redirect(to: &str, cookie: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(to) {
        headers.insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(cookie) {
        headers.insert(header::SET_COOKIE, v);
    }
    response
}
