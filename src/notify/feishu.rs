//! Feishu/Lark (飞书) custom bot: `POST <url>` (`…/open-apis/bot/v2/hook/…`) with an
//! interactive card (`{"msg_type": "interactive", "card": {header, elements: [markdown]}}`).
//! With a sign secret the body also has `"timestamp": "<Unix seconds>"` and `"sign":
//! base64(HMAC-SHA256(key = "<timestamp>\n<secret>", message = empty))`. The bot answers
//! HTTP 200 with `{"code": 0, "msg": "success"}` (older bots: `StatusCode`); codes 11232
//! (frequency limited), 230020 (chat rate limit) and 2200 (internal error) are retried, any
//! other (19021 sign mismatch, 19024 IP not allowed, 19001 bad parameters, …) is a
//! rejection.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret as _;

use super::http::{Robot, classify_code, json_answer};
use super::{Delivery, Notifier};
use crate::alert::AlertStatus;
use crate::alert::render::NotificationView;

const MAX_TEXT_BYTES: usize = 20_000;
const RETRY_CODES: [i64; 3] = [11232, 230020, 2200];

/// A Feishu bot.
pub struct Feishu(pub(super) Robot);

/// Feishu's sign: base64(HMAC-SHA256(key = "`<timestamp_s>\n<secret>`", message = empty)).
pub fn sign(secret: &str, timestamp_s: i64) -> String {
    let key = format!("{timestamp_s}\n{secret}");
    let mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Classifies a Feishu answer body (`code`, or `StatusCode` on older bots).
pub fn classify(v: &serde_json::Value) -> Delivery {
    let code = v["code"].as_i64().or_else(|| v["StatusCode"].as_i64());
    let msg = v["msg"]
        .as_str()
        .or_else(|| v["StatusMessage"].as_str())
        .unwrap_or_default();
    classify_code(code, msg, &RETRY_CODES)
}

#[async_trait::async_trait]
impl Notifier for Feishu {
    async fn notify(&self, view: &NotificationView) -> Delivery {
        let (title, text) = match self.0.render(view) {
            Ok(r) => (r.title.clone(), super::cut_bytes(&r.body, MAX_TEXT_BYTES)),
            Err(d) => return d,
        };
        let color = if view.status == AlertStatus::Firing {
            "red"
        } else {
            "green"
        };
        let mut body = serde_json::json!({
            "msg_type": "interactive",
            "card": {
                "header": { "title": { "tag": "plain_text", "content": title }, "template": color },
                "elements": [ { "tag": "markdown", "content": text } ],
            },
        });
        if let Some(secret) = &self.0.secret {
            let ts = crate::time::now_ms() / 1000;
            body["timestamp"] = ts.to_string().into();
            body["sign"] = sign(secret.expose_secret(), ts).into();
        }
        match self.0.post(&self.0.url, &body).await {
            Ok(answer) => json_answer(&answer, classify),
            Err(d) => d,
        }
    }
}
