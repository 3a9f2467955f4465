//! Slack incoming webhook: `POST <url>` with `{"text": …}` (mrkdwn). Slack answers `ok` with
//! HTTP 200, and errors as HTTP status + a word (`invalid_payload` 400, `action_prohibited`
//! 403, `no_service` 404, `channel_is_archived` 410, rate limited 429, `rollup_error` 500):
//! the HTTP status decides.

use super::http::Robot;
use super::{Delivery, Notifier};
use crate::alert::render::NotificationView;

/// Slack's limit for `text` is 40 000 characters; stay well below.
const MAX_TEXT_CHARS: usize = 35_000;

/// A Slack receiver.
pub struct Slack(pub(super) Robot);

#[async_trait::async_trait]
impl Notifier for Slack {
    async fn notify(&self, view: &NotificationView) -> Delivery {
        let text = match self.0.render(view) {
            Ok(r) => super::cut(
                &format!("*{}*\n{}", r.title, r.body.replace("**", "*")),
                MAX_TEXT_CHARS,
            ),
            Err(d) => return d,
        };
        // Slack answers plain text, not JSON: any 2xx is a delivery.
        match self
            .0
            .post(&self.0.url, &serde_json::json!({ "text": text }))
            .await
        {
            Ok(_) => Delivery::Delivered,
            Err(d) => d,
        }
    }
}
