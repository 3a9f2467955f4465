//! Who is asking, and what they may do: bearer tokens with roles (`[api] token`,
//! `[api.tokens.<name>]`), checked by a route layer per role before a body is read.
//!
//! * No token configured: every route is open (the caller is `anonymous`, with every role).
//! * Otherwise a request carries `Authorization: Bearer <token>` or, from the pages, the
//!   `jobwatch_token` cookie the login form sets (`HttpOnly`, `SameSite=Strict`). A state
//!   change with the cookie alone also needs the `X-Jobwatch-Page: 1` header, which the
//!   page's script sends and another site cannot (no CORS is answered).
//! * A role allows what the roles below it allow: `metrics` < `read` < `run` < `admin`.
//!   `/metrics` is open unless a `metrics` token is configured; `/healthz`, `/readyz`, the
//!   login page, the assets and bk-job's callbacks (their own per-execution token) are open.
//! * Missing or unknown token: 401; a known token below the route's role: 403. A page answers
//!   a 401 with the login prompt, never with data.
//! * Every state-changing request is logged with the token's name (never its value).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use super::{ApiError, AppState};
use crate::config::Role;

/// The cookie the login form sets.
pub const COOKIE: &str = "jobwatch_token";
/// The header the page's script sends with a state change (cookie authentication).
pub const PAGE_HEADER: &str = "x-jobwatch-page";

/// Who made a request: the token's name and role (a request extension once authorized).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Caller {
    /// The token's name (`anonymous` when no token is configured).
    pub name: String,
    /// Its role.
    pub role: Role,
}

/// How a request showed its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shown {
    Header,
    Cookie,
}

/// The token a request carries, and how: the `Authorization` header first, else the cookie.
fn presented(headers: &HeaderMap) -> Option<(String, Shown)> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .unwrap_or("");
        return Some((token.trim().to_owned(), Shown::Header));
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| {
            use base64::Engine as _;
            let token = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(value.trim())
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .unwrap_or_default();
            (token, Shown::Cookie)
        })
}

/// A configured token as the guard knows it: the SHA-256 digest of its value, and who it is.
pub struct Known {
    digest: [u8; 32],
    caller: Caller,
}

/// The configured tokens, digested once (at start).
pub fn known_tokens(tokens: &[crate::config::ApiToken]) -> std::sync::Arc<[Known]> {
    tokens
        .iter()
        .map(|t| Known {
            digest: Sha256::digest(t.secret.expose_secret().as_bytes()).into(),
            caller: Caller {
                name: t.name.clone(),
                role: t.role,
            },
        })
        .collect()
}

/// The configured token `given` is, compared through SHA-256 digests in constant time (the
/// time taken tells neither how much matched nor the length).
pub fn find_token(state: &AppState, given: &str) -> Option<Caller> {
    let digest = Sha256::digest(given.as_bytes());
    let mut found = None;
    for known in state.tokens.iter() {
        let same = digest
            .iter()
            .zip(known.digest.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
        if same && found.is_none() {
            found = Some(known.caller.clone());
        }
    }
    found
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No token, or not a configured one (401).
    Unauthenticated,
    /// A known token below the route's role (403).
    Forbidden(Caller),
    /// A state change authenticated by the cookie alone, without the page's header (403).
    CrossSite,
}

/// Who `headers` say the caller is, if they may use a route that needs `role`.
pub fn authorize(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
    role: Role,
) -> Result<Caller, Refusal> {
    if state.tokens.is_empty() {
        return Ok(Caller {
            name: "anonymous".into(),
            role: Role::Admin,
        });
    }
    let (given, shown) = presented(headers).ok_or(Refusal::Unauthenticated)?;
    let caller = find_token(state, &given).ok_or(Refusal::Unauthenticated)?;
    if caller.role < role {
        return Err(Refusal::Forbidden(caller));
    }
    if shown == Shown::Cookie && !is_read(method) && !headers.contains_key(PAGE_HEADER) {
        return Err(Refusal::CrossSite);
    }
    Ok(caller)
}

fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl Refusal {
    /// The JSON error.
    pub fn to_error(&self, role: Role) -> ApiError {
        match self {
            Refusal::Unauthenticated => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid `Authorization: Bearer <token>` is required",
            ),
            Refusal::Forbidden(caller) => ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "token `{}` has the role `{}`; this needs `{}`",
                    caller.name,
                    caller.role.as_str(),
                    role.as_str()
                ),
            ),
            Refusal::CrossSite => ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("a change made with the login cookie needs the `{PAGE_HEADER}` header"),
            ),
        }
    }
}

/// What a guarded route answers when refused: JSON, or the login page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// A JSON error.
    Json,
    /// The login prompt (HTML pages).
    Login,
}

/// The route layer's state: the app and the role a route needs.
#[derive(Clone)]
pub struct Guard {
    /// The app.
    pub state: AppState,
    /// What the route needs.
    pub role: Role,
    /// How a refusal reads.
    pub answer: Answer,
}

/// The route layer: [`authorize`], the caller as a request extension, then the handler; a
/// state change is logged with the token's name and how it ended.
pub async fn guard(State(guard): State<Guard>, mut request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    match authorize(&guard.state, &method, request.headers(), guard.role) {
        Ok(caller) => {
            let name = caller.name.clone();
            request.extensions_mut().insert(caller);
            let mut response = next.run(request).await;
            if guard.answer == Answer::Login {
                super::view::harden(&mut response);
            }
            if !is_read(&method) {
                crate::internal_events::ApiChange {
                    token: &name,
                    method: method.as_str(),
                    path: &path,
                    status: response.status().as_u16(),
                }
                .emit();
            }
            response
        }
        Err(refusal) => {
            if !is_read(&method) {
                let name = match &refusal {
                    Refusal::Forbidden(c) => c.name.as_str(),
                    _ => "-",
                };
                crate::internal_events::ApiChange {
                    token: name,
                    method: method.as_str(),
                    path: &path,
                    status: refusal.to_error(guard.role).status.as_u16(),
                }
                .emit();
            }
            match (guard.answer, &refusal) {
                (Answer::Login, Refusal::Unauthenticated) => {
                    let target = request
                        .uri()
                        .path_and_query()
                        .map_or("/", |p| p.as_str())
                        .to_owned();
                    super::view::login_response(&target, None)
                }
                _ => refusal.to_error(guard.role).into_response(),
            }
        }
    }
}
