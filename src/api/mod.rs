//! The daemon's HTTP surface: `router(state)`. Reads come from the store; every route but the
//! open ones needs a token whose role allows it, once tokens are configured (`auth`). Every
//! API error is JSON `{"error": {"code", "message"}}` and never carries internals; the pages
//! are rendered from templates (`view`).

mod alerts;
pub mod auth;
mod callbacks;
mod checks;
mod error;
mod executions;
mod extract;
mod health;
mod login;
mod pages;
mod silences;
pub mod tls;
mod view;

use self::alerts::*;
pub use self::alerts::{AlertList, NotificationList, NotificationParams};
use self::callbacks::*;
use self::checks::*;
pub use self::checks::{BoardTotals, CheckBoard, CheckSummary, FiringView, LatestView};
pub use self::error::{ApiError, ErrorBody, ErrorDetail, clip};
use self::executions::*;
pub use self::executions::{
    Accepted, ExecutionPage, ExecutionSummary, ListParams, NewExecution, NewWatch,
};
use self::extract::parse_json;
pub use self::extract::{ApiBody, ApiPath, ApiQuery};
use self::health::*;
use self::login::*;
pub use self::pages::path_segment;
use self::pages::*;
use self::silences::*;
pub use self::silences::{NewSilence, SilenceList, SilenceView};

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use serde::Deserialize;
use utoipa::OpenApi;

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
    /// The configured tokens' SHA-256 digests and who each one is, computed once.
    tokens: Arc<[auth::Known]>,
}

impl AppState {
    /// State over a runner.
    pub fn new(runner: Arc<Runner>, metrics: &'static Metrics) -> Self {
        let tokens = auth::known_tokens(&runner.config().api.tokens);
        AppState {
            runner,
            metrics,
            tokens,
        }
    }
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
        terminate_execution,
        list_checks,
        create_silence,
        list_silences,
        get_silence,
        expire_silence,
        bkjob_callback,
        openapi
    ),
    components(schemas(
        NewExecution,
        NewWatch,
        Accepted,
        ExecutionSummary,
        ExecutionPage,
        NewSilence,
        TerminateAsked,
        CheckBoard,
        CheckSummary,
        SilenceView,
        SilenceList,
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

/// Every route, each behind the role it needs (`auth`).
pub fn router(state: AppState) -> Router {
    use crate::config::Role;
    use auth::{Answer, Guard};
    let guard = |role: Role, answer: Answer| {
        axum::middleware::from_fn_with_state(
            Guard {
                state: state.clone(),
                role,
                answer,
            },
            auth::guard,
        )
    };
    let read = || guard(Role::Read, Answer::Json);
    let page = || guard(Role::Read, Answer::Login);
    let metrics_route = if state.runner.config().api.metrics_guarded() {
        get(metrics).route_layer(guard(Role::Metrics, Answer::Json))
    } else {
        get(metrics)
    };
    Router::new()
        // Open: probes, the login form, the assets, bk-job's callbacks (their own token).
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route(
            "/assets/jobwatch.css",
            get(|| async { view::asset("text/css; charset=utf-8", view::CSS) }),
        )
        .route(
            "/assets/jobwatch.js",
            get(|| async { view::asset("text/javascript; charset=utf-8", view::JS) }),
        )
        .route("/v1/callbacks/bkjob/{id}/{token}", post(bkjob_callback))
        .route("/metrics", metrics_route)
        // Pages (a login prompt when refused).
        .route("/", get(board_page).route_layer(page()))
        .route("/executions", get(executions_page).route_layer(page()))
        .route("/executions/{id}", get(execution_page).route_layer(page()))
        .route(
            "/executions/{id}/hosts/{host}",
            get(log_page).route_layer(page()),
        )
        .route("/silences", get(silences_page).route_layer(page()))
        .route("/alerts", get(alerts_page).route_layer(page()))
        // The JSON API.
        .route("/openapi.json", get(openapi).route_layer(read()))
        .route(
            "/v1/executions",
            get(list_executions)
                .route_layer(read())
                .merge(post(create_execution).route_layer(guard(Role::Run, Answer::Json))),
        )
        .route(
            "/v1/executions/{id}",
            get(get_execution).route_layer(read()),
        )
        .route(
            "/v1/executions/{id}/terminate",
            post(terminate_execution).route_layer(guard(Role::Admin, Answer::Json)),
        )
        .route("/v1/checks", get(list_checks).route_layer(read()))
        .route(
            "/v1/executions/{id}/hosts/{host}/log",
            get(host_log).route_layer(read()),
        )
        .route(
            "/v1/watches",
            post(create_watch).route_layer(guard(Role::Run, Answer::Json)),
        )
        .route("/v1/alerts", get(list_alerts).route_layer(read()))
        .route(
            "/v1/notifications",
            get(list_notifications).route_layer(read()),
        )
        .route(
            "/v1/silences",
            get(list_silences)
                .route_layer(read())
                .merge(post(create_silence).route_layer(guard(Role::Admin, Answer::Json))),
        )
        .route(
            "/v1/silences/{id}",
            get(get_silence)
                .route_layer(read())
                .merge(delete(expire_silence).route_layer(guard(Role::Admin, Answer::Json))),
        )
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
