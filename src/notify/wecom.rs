//! WeCom (企业微信) group robot: `POST <url>` (`…/cgi-bin/webhook/send?key=…`) with
//! `{"msgtype": "markdown", "markdown": {"content": …}}` (content ≤ 4096 bytes). The robot
//! answers HTTP 200 with `{"errcode": 0, "errmsg": "ok"}`; `errcode` -1 (system busy) and
//! 45009 (over the rate limit: 20 messages a minute) are retried, any other (93000 invalid
//! webhook URL, 40008 invalid message type, …) is a rejection.

use super::http::{Robot, classify_errcode, json_answer};
use super::{Delivery, Notifier};
use crate::alert::render::NotificationView;

const MAX_CONTENT_BYTES: usize = 4096;
const RETRY_CODES: [i64; 2] = [-1, 45009];

/// A WeCom robot.
pub struct Wecom(pub(super) Robot);

/// Classifies a WeCom answer body.
pub fn classify(v: &serde_json::Value) -> Delivery {
    classify_errcode(v, &RETRY_CODES)
}

#[async_trait::async_trait]
impl Notifier for Wecom {
    async fn notify(&self, view: &NotificationView) -> Delivery {
        let content = match self.0.render(view) {
            Ok(r) => super::cut_bytes(&format!("### {}\n{}", r.title, r.body), MAX_CONTENT_BYTES),
            Err(d) => return d,
        };
        let body = serde_json::json!({ "msgtype": "markdown", "markdown": { "content": content } });
        match self.0.post(&self.0.url, &body).await {
            Ok(answer) => json_answer(&answer, classify),
            Err(d) => d,
        }
    }
}
