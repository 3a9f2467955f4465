//! The one API error type: HTTP status, stable code, a message for people (bounded, never
//! internals), rendered as `{"error": {"code", "message"}}`.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::*;

/// An API error: HTTP status, a stable code, a message for people.
#[derive(Debug)]
pub struct ApiError {
    pub(super) status: StatusCode,
    pub(super) code: &'static str,
    pub(super) message: String,
}

/// The JSON body of every error.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// An error's code and message.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable code: `bad_request`, `unauthorized`, `forbidden`, `not_found`,
    /// `method_not_allowed`, `conflict`, `payload_too_large`, `shutting_down`, `internal`.
    pub code: String,
    /// What went wrong.
    pub message: String,
}

/// At most this many characters of a message (echoed input included).
pub const MESSAGE_MAX_CHARS: usize = 500;

/// At most this many characters of one piece of echoed input.
pub const ECHO_MAX_CHARS: usize = 64;

/// `text` as it may be echoed back: at most `ECHO_MAX_CHARS` (64) characters, then `…`.
pub fn clip(text: &str) -> String {
    let mut chars = text.chars();
    let mut out: String = chars.by_ref().take(ECHO_MAX_CHARS).collect();
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

impl ApiError {
    /// An error; the message is bounded ([`MESSAGE_MAX_CHARS`]) whatever it echoes.
    pub(super) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        let mut message: String = message.into();
        if message.chars().count() > MESSAGE_MAX_CHARS {
            message = message.chars().take(MESSAGE_MAX_CHARS).collect();
            message.push('…');
        }
        ApiError {
            status,
            code,
            message,
        }
    }

    /// An axum extractor's refusal (bad query string, undecodable path, body too large, …)
    /// as a JSON error with the same status.
    pub(super) fn rejected(status: StatusCode, what: &str, text: &str) -> Self {
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            s if s.is_server_error() => "internal",
            _ => "bad_request",
        };
        Self::new(status, code, format!("{what}: {}", clip(text)))
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub(super) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// A 500 whose message is for people (no internals in it).
    pub(super) fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.into(),
                message: self.message,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<crate::store::StoreError> for ApiError {
    /// 503 `store_unavailable` while the database does not answer (a client may retry:
    /// nothing was accepted), 500 otherwise.
    fn from(e: crate::store::StoreError) -> Self {
        if e.is_unreachable() {
            tracing::warn!(error = %e, "The store does not answer; the API request is refused.");
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the store does not answer; nothing was accepted, try again",
            );
        }
        tracing::error!(error = %e, "Store error while serving the API.");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the store could not be read or written",
        )
    }
}

impl From<RunError> for ApiError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::CheckPlatform { .. } | RunError::NotWatchable(_) => {
                ApiError::bad_request(e.to_string())
            }
            RunError::UnknownCheck(name) => {
                ApiError::not_found(format!("no check named `{}`", clip(&name)))
            }
            RunError::UnknownPlatform(name) => {
                ApiError::not_found(format!("no platform named `{}`", clip(&name)))
            }
            RunError::ShuttingDown => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                e.to_string(),
            ),
            RunError::Store(e) => e.into(),
        }
    }
}
