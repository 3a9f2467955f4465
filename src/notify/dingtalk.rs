//! DingTalk (钉钉) custom robot: `POST <url>` (`…/robot/send?access_token=…`) with
//! `{"msgtype": "markdown", "markdown": {"title": …, "text": …}}`. With a sign secret, the
//! URL gets `&timestamp=<ms>&sign=<urlencoded base64(HMAC-SHA256(secret, "<ms>\n<secret>"))>`.
//! The robot answers HTTP 200 with `{"errcode": 0, "errmsg": "ok"}`; `errcode` -1 (system
//! busy) and 130101 (sending too fast: 20 messages a minute) are retried, any other (310000
//! keyword/sign/IP check failed, 300001 invalid token, …) is a rejection.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret as _, SecretString};

use super::http::{Robot, classify_errcode, json_answer};
use super::{Delivery, Notifier};
use crate::alert::render::NotificationView;

const MAX_TEXT_BYTES: usize = 18_000;
const RETRY_CODES: [i64; 2] = [-1, 130101];

/// A DingTalk robot.
pub struct Dingtalk(pub(super) Robot);

/// DingTalk's sign: base64(HMAC-SHA256(key = secret, message = "`<timestamp_ms>\n<secret>`")).
pub fn sign(secret: &str, timestamp_ms: i64) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{timestamp_ms}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Classifies a DingTalk answer body.
pub fn classify(v: &serde_json::Value) -> Delivery {
    classify_errcode(v, &RETRY_CODES)
}

#[async_trait::async_trait]
impl Notifier for Dingtalk {
    async fn notify(&self, view: &NotificationView) -> Delivery {
        let (title, text) = match self.0.render(view) {
            Ok(r) => (
                r.title.clone(),
                super::cut_bytes(&format!("### {}\n\n{}", r.title, r.body), MAX_TEXT_BYTES),
            ),
            Err(d) => return d,
        };
        let url = match &self.0.secret {
            Some(secret) => {
                let ts = crate::time::now_ms();
                let sign = sign(secret.expose_secret(), ts);
                let mut u = match url::Url::parse(self.0.url.expose_secret()) {
                    Ok(u) => u,
                    Err(_) => return Delivery::Rejected("the robot URL is not a URL".into()),
                };
                u.query_pairs_mut()
                    .append_pair("timestamp", &ts.to_string())
                    .append_pair("sign", &sign);
                SecretString::from(u.to_string())
            }
            None => self.0.url.clone(),
        };
        let body = serde_json::json!({ "msgtype": "markdown", "markdown": { "title": title, "text": text } });
        match self.0.post(&url, &body).await {
            Ok(answer) => json_answer(&answer, classify),
            Err(d) => d,
        }
    }
}
