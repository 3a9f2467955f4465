//! Liveness, readiness and the Prometheus exposition.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::*;

#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "The process is alive.")))]
pub async fn healthz() -> &'static str {
    "ok\n"
}

#[utoipa::path(get, path = "/readyz", responses(
    (status = 200, description = "Accepting work and the store answers."),
    (status = 503, description = "Shutting down or the store is unreachable.")))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    if !state.runner.accepting() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    match state.runner.store().ping().await {
        Ok(_) => "ready\n".into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response(),
    }
}

#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text exposition format.")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
