//! Alerts and the notification log.

use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::*;

/// `GET /v1/alerts` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertList {
    /// Every alert, firing first, then by last change.
    pub alerts: Vec<crate::alert::Alert>,
}

/// Every alert jobwatch knows: status, holders, latest cause, routed receivers.
#[utoipa::path(get, path = "/v1/alerts", responses((status = 200, body = AlertList)))]
pub async fn list_alerts(State(state): State<AppState>) -> Result<axum::Json<AlertList>, ApiError> {
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
pub async fn list_notifications(
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
