//! Silences (`/v1/silences`): create, list, read, expire — Alertmanager's model
//! (`model::silence`). Creating and expiring need the `admin` role.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::*;
use crate::model::silence::{Matcher, Silence, SilenceState};

/// `POST /v1/silences` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    /// Label matchers, every one must match: `"check=~\"db-.*\""` or Alertmanager's
    /// `{"name", "value", "isRegex", "isEqual"}`.
    #[schema(value_type = Vec<Object>)]
    pub matchers: Vec<Matcher>,
    /// RFC 3339 (default: now).
    pub starts_at: Option<String>,
    /// RFC 3339; or give `duration`.
    pub ends_at: Option<String>,
    /// From the start, e.g. `2h`, `30m` (instead of `ends_at`).
    pub duration: Option<String>,
    /// Who (default: the token's name).
    pub created_by: Option<String>,
    /// Why (required).
    pub comment: String,
}

/// A silence as the API shows it: the stored silence and where it stands now.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SilenceView {
    /// The silence.
    #[serde(flatten)]
    pub silence: Silence,
    /// `pending`, `active` or `expired`, now.
    pub state: SilenceState,
    /// The matchers as text (`check="a", severity!="info"`).
    pub matchers_text: String,
    /// RFC 3339.
    pub starts_at: String,
    /// RFC 3339.
    pub ends_at: String,
}

impl SilenceView {
    pub(super) fn of(silence: Silence, now_ms: i64) -> Self {
        SilenceView {
            state: silence.state(now_ms),
            matchers_text: silence.matchers_text(),
            starts_at: crate::time::rfc3339_ms(silence.starts_at_ms),
            ends_at: crate::time::rfc3339_ms(silence.ends_at_ms),
            silence,
        }
    }
}

/// `GET /v1/silences` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SilenceList {
    /// Active first, then pending, then expired; the latest ending first in each.
    pub silences: Vec<SilenceView>,
}

/// `GET /v1/silences` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SilenceParams {
    /// Only `active`, `pending` or `expired` ones.
    pub state: Option<String>,
}

fn time_param(name: &str, text: &str) -> Result<i64, ApiError> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            ApiError::bad_request(format!(
                "`{name}` = `{}` is not an RFC 3339 time like 2026-11-30T12:00:00Z",
                clip(text)
            ))
        })
}

/// The silence a `NewSilence` asks for, made by `caller` at `now_ms`.
pub(super) fn new_silence(
    body: NewSilence,
    caller: &Caller,
    now_ms: i64,
) -> Result<Silence, ApiError> {
    let starts_at_ms = match &body.starts_at {
        Some(t) => time_param("starts_at", t)?,
        None => now_ms,
    };
    let ends_at_ms = match (&body.ends_at, &body.duration) {
        (Some(t), None) => time_param("ends_at", t)?,
        (None, Some(d)) => {
            let d = humantime::parse_duration(d).map_err(|_| {
                ApiError::bad_request(format!(
                    "`duration` = `{}` is not a duration like 2h or 30m",
                    clip(d)
                ))
            })?;
            starts_at_ms.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give `ends_at` or `duration`, not both",
            ));
        }
        (None, None) => return Err(ApiError::bad_request("give `ends_at` or `duration`")),
    };
    let silence = Silence {
        id: uuid::Uuid::now_v7().to_string(),
        matchers: body.matchers,
        starts_at_ms,
        ends_at_ms,
        created_by: body
            .created_by
            .filter(|a| !a.trim().is_empty())
            .unwrap_or_else(|| caller.name.clone()),
        comment: body.comment,
        created_at_ms: now_ms,
        updated_at_ms: now_ms,
        expired_by: None,
    };
    silence
        .validate(now_ms)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    if silence.comment.chars().count() > 2000 || silence.created_by.chars().count() > 200 {
        return Err(ApiError::bad_request(
            "`comment` is at most 2000 characters, `created_by` 200",
        ));
    }
    Ok(silence)
}

/// Creates a silence (admin). Notifications its matchers cover are recorded `silenced`
/// instead of sent, from its start to its end.
#[utoipa::path(post, path = "/v1/silences", request_body = NewSilence, responses(
    (status = 201, body = SilenceView), (status = 400, body = ErrorBody),
    (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create_silence(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiBody(body): ApiBody,
) -> Result<(StatusCode, axum::Json<SilenceView>), ApiError> {
    let body: NewSilence = parse_json(&body)?;
    let now = crate::time::now_ms();
    let silence = new_silence(body, &caller, now)?;
    state.runner.store().create_silence(&silence).await?;
    tracing::info!(silence = %silence.id, matchers = %silence.matchers_text(), created_by = %silence.created_by, until = %crate::time::rfc3339_ms(silence.ends_at_ms), "Silence created.");
    Ok((
        StatusCode::CREATED,
        axum::Json(SilenceView::of(silence, now)),
    ))
}

/// Every silence kept: active, pending, and expired ones until the retention prunes them.
#[utoipa::path(get, path = "/v1/silences", params(SilenceParams), responses(
    (status = 200, body = SilenceList), (status = 400, body = ErrorBody)))]
pub async fn list_silences(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<SilenceParams>,
) -> Result<axum::Json<SilenceList>, ApiError> {
    let only = match params.state.as_deref() {
        None | Some("") => None,
        Some("active") => Some(SilenceState::Active),
        Some("pending") => Some(SilenceState::Pending),
        Some("expired") => Some(SilenceState::Expired),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`state={}`: use active, pending or expired",
                clip(other)
            )));
        }
    };
    Ok(axum::Json(SilenceList {
        silences: silence_views(&state, only).await?,
    }))
}

/// The silences, active first, then pending, then expired (of one state, when given).
pub(super) async fn silence_views(
    state: &AppState,
    only: Option<SilenceState>,
) -> Result<Vec<SilenceView>, ApiError> {
    let now = crate::time::now_ms();
    let mut views: Vec<SilenceView> = state
        .runner
        .store()
        .list_silences()
        .await?
        .into_iter()
        .map(|s| SilenceView::of(s, now))
        .filter(|v| only.is_none_or(|o| v.state == o))
        .collect();
    let rank = |s: SilenceState| match s {
        SilenceState::Active => 0,
        SilenceState::Pending => 1,
        SilenceState::Expired => 2,
    };
    views.sort_by_key(|v| (rank(v.state), std::cmp::Reverse(v.silence.ends_at_ms)));
    Ok(views)
}

/// One silence.
#[utoipa::path(get, path = "/v1/silences/{id}", responses(
    (status = 200, body = SilenceView), (status = 404, body = ErrorBody)))]
pub async fn get_silence(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<axum::Json<SilenceView>, ApiError> {
    let now = crate::time::now_ms();
    state
        .runner
        .store()
        .list_silences()
        .await?
        .into_iter()
        .find(|s| s.id == id)
        .map(|s| axum::Json(SilenceView::of(s, now)))
        .ok_or_else(|| ApiError::not_found(format!("no silence `{}`", clip(&id))))
}

/// Expires a silence now (admin): a pending one never starts; notifications it held are
/// sent at once if their alert is still firing and no other silence covers them. Expiring
/// an expired silence changes nothing.
#[utoipa::path(delete, path = "/v1/silences/{id}", responses(
    (status = 200, body = SilenceView), (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn expire_silence(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<axum::Json<SilenceView>, ApiError> {
    let now = crate::time::now_ms();
    let silence = state
        .runner
        .store()
        .expire_silence(&id, &caller.name, now)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no silence `{}`", clip(&id))))?;
    state.runner.wake_delivery();
    tracing::info!(silence = %silence.id, expired_by = %caller.name, "Silence expired.");
    Ok(axum::Json(SilenceView::of(silence, now)))
}
