//! The daemon's HTTP surface: `router(state)`. Reads come from the store; mutating endpoints
//! require `Authorization: Bearer <api.token>` when a token is set. Every error is JSON
//! `{"error": {"code", "message"}}` and never carries internals.

mod alerts;
mod auth;
mod callbacks;
mod error;
mod executions;
mod extract;
mod health;
mod page;

use self::alerts::*;
pub use self::alerts::{AlertList, NotificationList, NotificationParams};
use self::callbacks::*;
pub use self::error::{ApiError, ErrorBody, ErrorDetail, clip};
use self::executions::*;
pub use self::executions::{
    Accepted, ExecutionPage, ExecutionSummary, ListParams, NewExecution, NewWatch,
};
use self::extract::parse_json;
pub use self::extract::{ApiBody, ApiPath, ApiQuery};
use self::health::*;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::{get, post};
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi};

use crate::daemon::{Overrides, RunError, Runner};
use crate::metrics::Metrics;
use crate::model::Host;
use crate::store::{ListQuery, Which};
use crate::tracker::ExecutionReport;
use crate::tracker::report::Origin;

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    runner: Arc<Runner>,
    metrics: &'static Metrics,
}

impl AppState {
    /// State over a runner.
    pub fn new(runner: Arc<Runner>, metrics: &'static Metrics) -> Self {
        AppState { runner, metrics }
    }
}

/// `GET /` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// History older than this execution id (the page's "older" link).
    pub before: Option<String>,
}

/// Rows per table of the status page.
const PAGE_ROWS: u32 = 100;

#[utoipa::path(get, path = "/", params(PageParams), responses((status = 200, description = "Status page: firing alerts, active and history executions (with their true totals; history in pages).", content_type = "text/html"),
    (status = 400, body = ErrorBody)))]
async fn status_page(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Html<String>, ApiError> {
    extract::page_position("before", params.before.as_deref())?;
    let board = state
        .runner
        .store()
        .active_and_history(PAGE_ROWS, params.before.as_deref())
        .await?;
    let alerts = state.runner.store().list_alerts().await?;
    Ok(Html(page::render(
        &alerts,
        &board,
        params.before.is_some(),
        PAGE_ROWS as usize,
        state.runner.accepting(),
    )))
}

#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "This document.")))]
async fn openapi() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}

/// The OpenAPI document of every route.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "jobwatch",
        description = "Follows job platform executions to their true end."
    ),
    paths(
        healthz,
        readyz,
        metrics,
        create_execution,
        create_watch,
        list_executions,
        get_execution,
        host_log,
        list_alerts,
        list_notifications,
        bkjob_callback,
        status_page,
        openapi
    ),
    components(schemas(
        NewExecution,
        NewWatch,
        Accepted,
        ExecutionSummary,
        ExecutionPage,
        ErrorBody,
        ErrorDetail
    ))
)]
pub struct ApiDoc;

/// The callback route alone, for `[callbacks] listen` (a listener bk-job may reach without
/// reaching the API).
pub fn callbacks_router(state: AppState) -> Router {
    Router::new()
        .route("/v1/callbacks/bkjob/{id}/{token}", post(bkjob_callback))
        .fallback(|| async { ApiError::not_found("no such route") })
        .with_state(state)
}

/// Every route.
pub fn router(state: AppState) -> Router {
    // The mutating routes need the bearer token (when one is set).
    let auth = axum::middleware::from_fn_with_state(state.clone(), auth::require_token);
    Router::new()
        .route("/", get(status_page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route(
            "/v1/executions",
            get(list_executions).merge(post(create_execution).route_layer(auth.clone())),
        )
        .route("/v1/executions/{id}", get(get_execution))
        .route("/v1/executions/{id}/hosts/{host}/log", get(host_log))
        .route("/v1/watches", post(create_watch).route_layer(auth))
        .route("/v1/alerts", get(list_alerts))
        .route("/v1/notifications", get(list_notifications))
        .route("/v1/callbacks/bkjob/{id}/{token}", post(bkjob_callback))
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not answer that method",
            )
        })
        .with_state(state)
}
