//! Executions and watches: start, follow, list (paged), one with every host, one host's log.

use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::*;

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
    /// Salt job id, on a Salt platform.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jid: Option<String>,
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
            jid: r.jid.clone(),
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
    /// `active` (pending or running), `history` (ended), `all` (default), or one state
    /// (`failed`, `succeeded`, …).
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

/// A host of a request: a CMDB id (number or digits), `"<bk_cloud_id>:<ip>"` or
/// `localhost`; on a Salt platform (`salt`), a minion id.
pub(super) fn parse_host(v: &serde_json::Value, salt: bool) -> Result<Host, ApiError> {
    match v {
        serde_json::Value::String(s) if salt => Host::parse_minion(s).map_err(|e| {
            if s.chars().count() > super::error::ECHO_MAX_CHARS {
                ApiError::bad_request(format!("`{}` is not a minion id", clip(s)))
            } else {
                ApiError::bad_request(e.to_string())
            }
        }),
        serde_json::Value::Number(n) => n.as_u64().map(Host::by_id).ok_or_else(|| {
            ApiError::bad_request(format!("`{}` is not a host id", clip(&n.to_string())))
        }),
        serde_json::Value::String(s) => Host::parse(s).map_err(|e| {
            if s.chars().count() > super::error::ECHO_MAX_CHARS {
                ApiError::bad_request(format!("`{}` is not a host", clip(s)))
            } else {
                ApiError::bad_request(e.to_string())
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
pub async fn create_execution(
    State(state): State<AppState>,
    ApiBody(body): ApiBody,
) -> Result<Response, ApiError> {
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
        Some(list) => {
            let config = state.runner.config();
            let salt = config
                .checks
                .iter()
                .find(|c| c.name == request.check)
                .and_then(|c| config.platforms.get(&c.platform))
                .is_some_and(|p| p.kind() == "salt");
            Some(
                list.iter()
                    .map(|h| parse_host(h, salt))
                    .collect::<Result<Vec<_>, _>>()?,
            )
        }
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

pub(super) fn accepted(report: &ExecutionReport) -> Response {
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
pub async fn create_watch(
    State(state): State<AppState>,
    ApiBody(body): ApiBody,
) -> Result<Response, ApiError> {
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
pub async fn list_executions(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<axum::Json<ExecutionPage>, ApiError> {
    let which = match params.state.as_deref() {
        None | Some("all") => Which::All,
        Some("active") => Which::Active,
        Some("history") => Which::History,
        Some(other) => match crate::model::ExecutionState::from_name(other) {
            Some(s) => Which::In(s),
            None => {
                return Err(ApiError::bad_request(format!(
                    "`state={}`: use active, history, all, or a state (succeeded, failed, timed_out, lost, cancelled, trigger_failed, skipped, pending, running)",
                    clip(other)
                )));
            }
        },
    };
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("`limit` must be from 1 to 1000"));
    }
    super::extract::page_position("cursor", params.cursor.as_deref())?;
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

pub async fn load(state: &AppState, id: &str) -> Result<ExecutionReport, ApiError> {
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
pub async fn get_execution(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    Ok(axum::Json(load(&state, &id).await?).into_response())
}

#[utoipa::path(get, path = "/v1/executions/{id}/hosts/{host}/log",
    params(("id" = String, Path, description = "Execution id"),
        ("host" = String, Path, description = "`<bk_cloud_id>:<ip>`, a host id, `localhost`, or a Salt minion id")),
    responses((status = 200, description = "The host's log tail.", content_type = "text/plain"), (status = 404, body = ErrorBody)))]
pub async fn host_log(
    State(state): State<AppState>,
    ApiPath((id, host)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let report = load(&state, &id).await?;
    let Some(h) = find_host(&report, &host) else {
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

/// The host of `report` that `host` names: its shown name, `<bk_cloud_id>:<ip>`, a host id,
/// `localhost` or a minion id.
pub(super) fn find_host<'a>(
    report: &'a ExecutionReport,
    host: &str,
) -> Option<&'a crate::tracker::report::HostReport> {
    let wanted = Host::parse(host).ok();
    report
        .hosts
        .iter()
        .find(|h| h.host == host || wanted.as_ref().is_some_and(|w| w.same_as(&h.identity)))
}

/// `POST /v1/executions/{id}/terminate` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TerminateAsked {
    /// The execution.
    pub execution_id: String,
    /// Who asked (the token's name).
    pub terminated_by: String,
    /// What happens next, in words.
    pub message: String,
}

/// Asks the platform to stop an execution's job (admin). The execution ends as the platform
/// then reports it; the record notes who asked (`terminated_by`).
#[utoipa::path(post, path = "/v1/executions/{id}/terminate", responses(
    (status = 202, body = TerminateAsked), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "Already ended, or not on the platform yet."),
    (status = 502, body = ErrorBody, description = "The platform refused or could not be reached.")))]
pub async fn terminate_execution(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<super::auth::Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, axum::Json<TerminateAsked>), ApiError> {
    use crate::daemon::Terminate;
    match state.runner.terminate(&id, &caller.name).await? {
        Terminate::Asked => Ok((
            StatusCode::ACCEPTED,
            axum::Json(TerminateAsked {
                execution_id: id,
                terminated_by: caller.name,
                message: "the terminate goes to the platform with the next poll, now; the execution ends as the platform reports it".into(),
            }),
        )),
        Terminate::NotFound => Err(ApiError::not_found(format!("no execution `{}`", clip(&id)))),
        Terminate::Ended(s) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("execution already ended as {}", s.as_str()),
        )),
        Terminate::NotSubmitted => Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "the job is not on the platform yet (being submitted); try again in a moment",
        )),
        Terminate::PlatformRefused(e) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "platform_error",
            format!("the platform did not take the terminate: {}", clip(&e)),
        )),
    }
}
