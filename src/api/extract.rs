//! Extractors that refuse as documented JSON errors: query strings, path parameters, bodies
//! (413 when too large), JSON bodies.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;

use axum::body::Bytes;
use axum::extract::{Path, Query};
use serde::Deserialize;

use super::*;

/// A query string, refused as a JSON 400 when it does not read (`limit=-1`, `limit=abc`).
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(t)| ApiQuery(t))
            .map_err(|e| ApiError::rejected(e.status(), "bad query string", &e.body_text()))
    }
}

/// Path parameters, refused as a JSON 400 when they do not decode (`%FF`).
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(t)| ApiPath(t))
            .map_err(|e| ApiError::rejected(e.status(), "bad path", &e.body_text()))
    }
}

/// A request body (at most axum's default 2 MiB), refused as JSON (413 when too large).
pub struct ApiBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(req, state)
            .await
            .map(ApiBody)
            .map_err(|e| ApiError::rejected(e.status(), "cannot read the body", &e.body_text()))
    }
}

/// A page position (`cursor`, `before`): an execution id, else a 400 naming the parameter.
pub(super) fn page_position(name: &str, value: Option<&str>) -> Result<(), ApiError> {
    match value {
        Some(v) if uuid::Uuid::parse_str(v).is_err() => Err(ApiError::bad_request(format!(
            "`{name}={}` is not an execution id: pass the id of the previous page's last one (`next_cursor`)",
            clip(v)
        ))),
        _ => Ok(()),
    }
}

pub(super) fn parse_json<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {}", clip(&e.to_string()))))
}
