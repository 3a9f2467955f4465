//! The daemon's HTTP surface: `router(state)`. Reads come from the store; mutating endpoints
//! require `Authorization: Bearer <api.token>` when a token is set. Every error is JSON
//! `{"error": {"code", "message"}}` and never carries internals.

mod page;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

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

/// An API error: HTTP status, a stable code, a message for people.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
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
const MESSAGE_MAX_CHARS: usize = 500;

/// At most this many characters of one piece of echoed input.
const ECHO_MAX_CHARS: usize = 64;

/// `text` as it may be echoed back: at most [`ECHO_MAX_CHARS`] characters, then `…`.
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
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
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
    fn rejected(status: StatusCode, what: &str, text: &str) -> Self {
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            s if s.is_server_error() => "internal",
            _ => "bad_request",
        };
        Self::new(status, code, format!("{what}: {}", clip(text)))
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
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
    fn from(e: crate::store::StoreError) -> Self {
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
            RunError::CheckPlatform { .. } => ApiError::bad_request(e.to_string()),
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

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = &state.runner.config().api.token else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let expected = token.expose_secret().as_bytes();
    // Constant-time comparison: the time taken does not tell how much of the token matched.
    let same = given.len() == expected.len()
        && given
            .bytes()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid `Authorization: Bearer <token>` is required",
        ))
    }
}

fn parse_json<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {}", clip(&e.to_string()))))
}

/// `POST /v1/executions` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewExecution {
    /// A configured check.
    pub check: String,
    /// Targets instead of the check's: host ids, `"<bk_cloud_id>:<ip>"` or `"localhost"`.
    #[schema(value_type = Option<Vec<String>>)]
    pub hosts: Option<Vec<serde_json::Value>>,
    /// Argument string instead of the check's.
    pub params: Option<String>,
    /// Script instead of the check's; refused unless `api.allow_inline_scripts`.
    pub script: Option<String>,
}

/// `POST /v1/watches` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWatch {
    /// A configured platform.
    pub platform: String,
    /// The job to follow.
    pub job_instance_id: u64,
    /// The job's own timeout in seconds (default: the check's, else 7200, bk-job's default).
    pub timeout_seconds: Option<u64>,
    /// Follow it as this configured check (its name, poll policy and `fail_when`); default:
    /// the check `watch` with the default poll policy.
    pub check: Option<String>,
}

/// The answer to an accepted start.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    /// The new execution.
    pub execution_id: String,
    /// Its state now.
    pub state: String,
    /// Where to follow it.
    pub url: String,
}

/// One line of a listing.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExecutionSummary {
    /// Id.
    pub execution_id: String,
    /// Check.
    pub check: String,
    /// Platform.
    pub platform: String,
    /// `cli`, `schedule`, `api` or `watch`.
    pub origin: String,
    /// Trigger status.
    pub trigger_status: String,
    /// State.
    pub state: String,
    /// `active` or `history`.
    pub list: String,
    /// Why.
    pub reason: String,
    /// Job instance.
    pub job_instance_id: Option<u64>,
    /// Scheduled tick, RFC 3339.
    pub scheduled_at: Option<String>,
    /// Start, RFC 3339.
    pub started_at: String,
    /// Hosts targeted or reported.
    pub hosts: usize,
    /// Conditions holding now: `stuck`, `stragglers`, `platform_unreachable`.
    pub conditions: Vec<String>,
}

impl From<&ExecutionReport> for ExecutionSummary {
    fn from(r: &ExecutionReport) -> Self {
        ExecutionSummary {
            execution_id: r.execution_id.clone(),
            check: r.check.clone(),
            platform: r.platform.clone(),
            origin: r.origin.as_str().to_owned(),
            trigger_status: r.trigger_status.as_str().to_owned(),
            state: r.state.as_str().to_owned(),
            list: if r.state.is_final() {
                "history"
            } else {
                "active"
            }
            .to_owned(),
            reason: r.reason.clone(),
            job_instance_id: r.job_instance_id,
            scheduled_at: r.scheduled_at_ms.map(crate::time::rfc3339_ms),
            started_at: r.started_at.clone(),
            hosts: r.hosts.len(),
            conditions: r
                .conditions
                .iter()
                .map(|c| c.kind.as_str().to_owned())
                .collect(),
        }
    }
}

/// `GET /v1/executions` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// `active` (pending or running), `history` (ended) or `all` (default).
    pub state: Option<String>,
    /// Only this check.
    pub check: Option<String>,
    /// Page size, 1–1000 (default 100).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of executions, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExecutionPage {
    /// The executions.
    pub executions: Vec<ExecutionSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "The process is alive.")))]
async fn healthz() -> &'static str {
    "ok\n"
}

#[utoipa::path(get, path = "/readyz", responses(
    (status = 200, description = "Accepting work and the store answers."),
    (status = 503, description = "Shutting down or the store is unreachable.")))]
async fn readyz(State(state): State<AppState>) -> Response {
    if !state.runner.accepting() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    match state.runner.store().ping().await {
        Ok(_) => "ready\n".into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response(),
    }
}

#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text exposition format.")))]
async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

fn parse_host(v: &serde_json::Value) -> Result<Host, ApiError> {
    match v {
        serde_json::Value::Number(n) => n.as_u64().map(Host::by_id).ok_or_else(|| {
            ApiError::bad_request(format!("`{}` is not a host id", clip(&n.to_string())))
        }),
        serde_json::Value::String(s) => Host::parse(s).map_err(|e| {
            if s.chars().count() > ECHO_MAX_CHARS {
                ApiError::bad_request(format!("`{}` is not a host", clip(s)))
            } else {
                ApiError::bad_request(e)
            }
        }),
        other => Err(ApiError::bad_request(format!(
            "`{}` is not a host",
            clip(&other.to_string())
        ))),
    }
}

#[utoipa::path(post, path = "/v1/executions", request_body = NewExecution,
    description = "Starts a configured check now. Requires `Authorization: Bearer <token>` when `api.token` is set.",
    responses(
        (status = 202, body = Accepted, description = "Recorded and started."),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "Unknown check."), (status = 503, body = ErrorBody)))]
async fn create_execution(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiBody(body): ApiBody,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let request: NewExecution = parse_json(&body)?;
    if request.script.is_some() && !state.runner.config().api.allow_inline_scripts {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "inline scripts are refused (api.allow_inline_scripts is off)",
        ));
    }
    let hosts = match &request.hosts {
        Some(list) if list.is_empty() => {
            return Err(ApiError::bad_request("`hosts` must not be empty"));
        }
        Some(list) => Some(list.iter().map(parse_host).collect::<Result<Vec<_>, _>>()?),
        None => None,
    };
    let overrides = Overrides {
        hosts,
        params: request.params,
        script: request.script,
    };
    let report = state
        .runner
        .submit(&request.check, Origin::Api, None, &overrides)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::CONFLICT, "conflict", "already recorded"))?;
    Ok(accepted(&report))
}

fn accepted(report: &ExecutionReport) -> Response {
    let body = Accepted {
        execution_id: report.execution_id.clone(),
        state: report.state.as_str().to_owned(),
        url: format!("/v1/executions/{}", report.execution_id),
    };
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, body.url.clone())],
        axum::Json(body),
    )
        .into_response()
}

#[utoipa::path(post, path = "/v1/watches", request_body = NewWatch,
    description = "Follows a job started elsewhere. Requires the bearer token when one is set.",
    responses((status = 202, body = Accepted), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "Unknown platform."), (status = 503, body = ErrorBody)))]
async fn create_watch(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiBody(body): ApiBody,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let request: NewWatch = parse_json(&body)?;
    if request.job_instance_id == 0 {
        return Err(ApiError::bad_request(
            "`job_instance_id` must be at least 1",
        ));
    }
    let timeout = request
        .timeout_seconds
        .map(|s| Duration::from_secs(s.clamp(1, 259_200)));
    let report = state
        .runner
        .watch(
            &request.platform,
            request.job_instance_id,
            timeout,
            request.check.as_deref(),
        )
        .await?;
    Ok(accepted(&report))
}

#[utoipa::path(get, path = "/v1/executions", params(ListParams),
    responses((status = 200, body = ExecutionPage), (status = 400, body = ErrorBody)))]
async fn list_executions(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<axum::Json<ExecutionPage>, ApiError> {
    let which = match params.state.as_deref() {
        None | Some("all") => Which::All,
        Some("active") => Which::Active,
        Some("history") => Which::History,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`state={}`: use active, history or all",
                clip(other)
            )));
        }
    };
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("`limit` must be from 1 to 1000"));
    }
    // A cursor is the id of the last execution of the previous page.
    if let Some(cursor) = &params.cursor
        && uuid::Uuid::parse_str(cursor).is_err()
    {
        return Err(ApiError::bad_request(format!(
            "`cursor={}` is not a cursor: pass the `next_cursor` of the previous page",
            clip(cursor)
        )));
    }
    let query = ListQuery {
        which,
        check: params.check,
        limit,
        cursor: params.cursor,
    };
    let reports = state.runner.store().list(&query).await?;
    let next_cursor = (reports.len() == limit as usize)
        .then(|| reports.last().map(|r| r.execution_id.clone()))
        .flatten();
    Ok(axum::Json(ExecutionPage {
        executions: reports.iter().map(ExecutionSummary::from).collect(),
        next_cursor,
    }))
}

async fn load(state: &AppState, id: &str) -> Result<ExecutionReport, ApiError> {
    state
        .runner
        .store()
        .get(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no execution `{}`", clip(id))))
}

#[utoipa::path(get, path = "/v1/executions/{id}", params(("id" = String, Path, description = "Execution id")),
    responses((status = 200, body = ExecutionReport, description = "The whole execution: trigger, state, reason, conditions, every host with its log."),
        (status = 404, body = ErrorBody)))]
async fn get_execution(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    Ok(axum::Json(load(&state, &id).await?).into_response())
}

#[utoipa::path(get, path = "/v1/executions/{id}/hosts/{host}/log",
    params(("id" = String, Path, description = "Execution id"),
        ("host" = String, Path, description = "`<bk_cloud_id>:<ip>`, a host id, or `localhost`")),
    responses((status = 200, description = "The host's log tail.", content_type = "text/plain"), (status = 404, body = ErrorBody)))]
async fn host_log(
    State(state): State<AppState>,
    ApiPath((id, host)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let report = load(&state, &id).await?;
    let wanted = Host::parse(&host).ok();
    let found = report
        .hosts
        .iter()
        .find(|h| h.host == host || wanted.as_ref().is_some_and(|w| w.same_as(&h.identity)));
    let Some(h) = found else {
        return Err(ApiError::not_found(format!(
            "execution `{}` has no host `{}`",
            clip(&id),
            clip(&host)
        )));
    };
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        h.log.clone(),
    )
        .into_response())
}

/// `GET /v1/alerts` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertList {
    /// Every alert, firing first, then by last change.
    pub alerts: Vec<crate::alert::Alert>,
}

/// Every alert jobwatch knows: status, holders, latest cause, routed receivers.
#[utoipa::path(get, path = "/v1/alerts", responses((status = 200, body = AlertList)))]
async fn list_alerts(State(state): State<AppState>) -> Result<axum::Json<AlertList>, ApiError> {
    Ok(axum::Json(AlertList {
        alerts: state.runner.store().list_alerts().await?,
    }))
}

/// `GET /v1/notifications` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct NotificationParams {
    /// Only this receiver.
    pub receiver: Option<String>,
    /// At most this many (1–1000, default 100).
    pub limit: Option<u32>,
}

/// `GET /v1/notifications` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NotificationList {
    /// Newest first: outcome (pending, errored, delivered, rejected), attempts, last error.
    pub notifications: Vec<crate::notify::Notification>,
}

/// The outbox and notification log: every notification with its delivery outcome.
#[utoipa::path(get, path = "/v1/notifications", params(NotificationParams), responses((status = 200, body = NotificationList), (status = 400, body = ErrorBody)))]
async fn list_notifications(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<NotificationParams>,
) -> Result<axum::Json<NotificationList>, ApiError> {
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("`limit` must be from 1 to 1000"));
    }
    Ok(axum::Json(NotificationList {
        notifications: state
            .runner
            .store()
            .list_notifications(params.receiver.as_deref(), limit)
            .await?,
    }))
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
    if let Some(before) = &params.before
        && uuid::Uuid::parse_str(before).is_err()
    {
        return Err(ApiError::bad_request(format!(
            "`before={}` is not an execution id",
            clip(before)
        )));
    }
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

/// Every route.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(status_page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route(
            "/v1/executions",
            post(create_execution).get(list_executions),
        )
        .route("/v1/executions/{id}", get(get_execution))
        .route("/v1/executions/{id}/hosts/{host}/log", get(host_log))
        .route("/v1/watches", post(create_watch))
        .route("/v1/alerts", get(list_alerts))
        .route("/v1/notifications", get(list_notifications))
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
