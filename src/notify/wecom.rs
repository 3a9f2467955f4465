//! WeCom (企业微信) group robot: `POST <url>` (`…/cgi-bin/webhook/send?key=…`) with
//! `{"msgtype": "markdown", "markdown": {"content": …}}` (content ≤ 4096 bytes). The robot
//! answers HTTP 200 with `{"errcode": 0, "errmsg": "ok"}`; `errcode` -1 (system busy) and
//! 45009 (over the rate limit: 20 messages a minute) are retried, any other (93000 invalid
//! webhook URL, 40008 invalid message type, …) is a rejection.

use secrecy::SecretString;

use super::http::{classify_errcode, post_robot};
use super::{Delivery, Notifier};
use crate::alert::render::{BodyStyle, NotificationView, Renderer};
use crate::config::ReceiverConfig;

const MAX_CONTENT_BYTES: usize = 4096;
const RETRY_CODES: [i64; 2] = [-1, 45009];

/// A WeCom robot.
pub struct Wecom {
    client: reqwest::Client,
    url: SecretString,
    renderer: Renderer,
}

impl Wecom {
    /// To the robot `url`.
    pub fn new(
        client: reqwest::Client,
        url: SecretString,
        receiver: &ReceiverConfig,
    ) -> Result<Self, String> {
        Ok(Wecom {
            client,
            url,
            renderer: Renderer::new(&receiver.templates, BodyStyle::Markdown)?,
        })
    }
}

/// Classifies a WeCom answer body.
pub fn classify(v: &serde_json::Value) -> Delivery {
    classify_errcode(v, &RETRY_CODES)
}

#[async_trait::async_trait]
impl Notifier for Wecom {
    async fn notify(&self, view: &NotificationView) -> Delivery {
        let content = match self.renderer.render(view) {
            Ok(r) => super::cut_bytes(&format!("### {}\n{}", r.title, r.body), MAX_CONTENT_BYTES),
            Err(e) => return Delivery::Rejected(e),
        };
        let body = serde_json::json!({ "msgtype": "markdown", "markdown": { "content": content } });
        post_robot(&self.client, &self.url, &body, classify, false).await
    }
}
