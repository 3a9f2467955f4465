//! `POST /v1/callbacks/bkjob/{id}/{token}`: bk-job's job-end callback, taken as a hint
//! (`daemon::callbacks`). Always answered 200 at once — bk-job retries a non-200 once with a
//! form content type and then gives up, and an attacker learns nothing from the answer —
//! whatever the token, the body or its content type.

use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::{ApiBody, ApiPath, AppState};
use crate::daemon::callbacks;
use crate::internal_events::{CallbackReceived, CallbackResult};

#[utoipa::path(post, path = "/v1/callbacks/bkjob/{id}/{token}",
    params(("id" = String, Path, description = "Execution id"),
        ("token" = String, Path, description = "The execution's callback token")),
    description = "bk-job's job-end callback (the `callback_url` of the submit). A hint: a right token makes the execution's next status poll due now; the end is decided from the status API. Always 200.",
    responses((status = 200, description = "Taken (or ignored: wrong token, unknown execution, callbacks off).")))]
pub async fn bkjob_callback(
    State(state): State<AppState>,
    ApiPath((id, token)): ApiPath<(String, String)>,
    ApiBody(body): ApiBody,
) -> Response {
    let job_instance_id = callbacks::job_instance_id(&body);
    let result = match state.runner.callbacks() {
        None => CallbackResult::Off,
        Some(c) if !c.verify(&id, &token) => CallbackResult::Forged,
        Some(_) => {
            state.runner.hint(&id, job_instance_id);
            if job_instance_id.is_some() {
                CallbackResult::Accepted
            } else {
                CallbackResult::Malformed
            }
        }
    };
    CallbackReceived {
        execution_id: &super::clip(&id),
        job_instance_id,
        result,
    }
    .emit();
    axum::Json(serde_json::json!({"result": true})).into_response()
}
