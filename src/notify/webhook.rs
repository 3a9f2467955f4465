//! Generic JSON webhook.
//!
//! **Request**: `POST <url>`, `Content-Type: application/json`, body = the notification
//! ([`NotificationView`] as JSON plus `"version": "1"`): `receiver`, `status`, `firing`,
//! `resolved`, `common_labels`, `alerts[]` (`status`, `fingerprint`, `labels`, `starts_at`,
//! `ends_at`, `resolution`, `cause` with the execution, host table and log tails).
//!
//! **Signature** (when `secret` is set): header `X-Jobwatch-Timestamp: <Unix seconds>` and
//! `X-Jobwatch-Signature: sha256=<hex>`, where `<hex>` = HMAC-SHA256 keyed with the secret
//! over the timestamp header's value immediately followed by the raw body bytes. A receiver
//! recomputes it, compares in constant time, and refuses old timestamps (replays).
//!
//! **Identity**: each alert in the body carries `notification: {id, version}`, and the header
//! `X-Jobwatch-Notifications` lists them as `id.version`, comma-separated. Delivery is at
//! least once (an answer lost after the receiver took it is re-sent, at most once per
//! crash, by whichever replica sends next): a receiver drops a copy it already took by these,
//! or by `X-Jobwatch-Idempotency-Key`, which is the same for every attempt at the same
//! notifications (`jw-` and 32 hex digits of SHA-256 over their sorted `id.version` list).
//!
//! **Answer**: 2xx delivered; 408, 425, 429, 5xx retried; other 4xx rejected.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret as _, SecretString};

use super::http::{classify_status, post_json};
use super::{Delivery, Notifier};
use crate::alert::render::NotificationView;

/// Signature header.
pub const SIGNATURE_HEADER: &str = "X-Jobwatch-Signature";
/// Timestamp header (Unix seconds).
pub const TIMESTAMP_HEADER: &str = "X-Jobwatch-Timestamp";
/// The notifications carried: `id.version`, comma-separated.
pub const NOTIFICATIONS_HEADER: &str = "X-Jobwatch-Notifications";

/// The same key for every attempt at the same notifications (see the module note).
pub const IDEMPOTENCY_KEY_HEADER: &str = "X-Jobwatch-Idempotency-Key";

/// The idempotency key of the notifications `ids` (`id.version`, comma-separated, any order).
pub fn idempotency_key(ids: &str) -> String {
    use sha2::Digest as _;
    let mut sorted: Vec<&str> = ids.split(',').collect();
    sorted.sort_unstable();
    let digest = sha2::Sha256::digest(sorted.join(",").as_bytes());
    format!("jw-{}", &hex::encode(digest)[..32])
}

/// `sha256=<hex HMAC-SHA256(secret, timestamp ‖ body)>`.
pub fn signature(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.as_bytes());
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// `type = "webhook"`: `url` (or `url_file`) and the optional HMAC `secret` (or
/// `secret_file`).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    url: Option<SecretString>,
    url_file: Option<std::path::PathBuf>,
    secret: Option<SecretString>,
    secret_file: Option<std::path::PathBuf>,
}

/// A webhook receiver's settings.
#[derive(Clone)]
pub struct Settings {
    /// Endpoint (a secret: it may carry a token).
    pub url: SecretString,
    /// HMAC-SHA256 key for `X-Jobwatch-Signature`.
    pub secret: Option<SecretString>,
}

impl Settings {
    /// Reads and checks them (no templates: the body is the notification as JSON).
    pub fn read(
        receiver: &crate::config::ReceiverConfig,
        issues: &mut crate::config::Issues,
    ) -> Option<Self> {
        let raw: Raw = super::read_settings(receiver, issues, &[])?;
        let url = super::secret_url(receiver, issues, &raw.url, &raw.url_file);
        let secret = issues.secret(&receiver.key(), "secret", &raw.secret, &raw.secret_file);
        Some(Settings { url: url?, secret })
    }
}

/// A webhook receiver.
pub struct Webhook {
    client: reqwest::Client,
    url: SecretString,
    secret: Option<SecretString>,
}

impl Webhook {
    /// To `url`, signed with `secret` when set.
    pub fn new(client: reqwest::Client, url: SecretString, secret: Option<SecretString>) -> Self {
        Webhook {
            client,
            url,
            secret,
        }
    }
}

/// The documented body.
pub fn body(view: &NotificationView) -> Vec<u8> {
    let mut value = serde_json::to_value(view).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.insert("version".into(), "1".into());
    }
    serde_json::to_vec(&value).unwrap_or_default()
}

#[async_trait::async_trait]
impl Notifier for Webhook {
    async fn notify(&self, view: &NotificationView) -> Delivery {
        let body = body(view);
        let mut headers = Vec::new();
        let ids = view.notification_ids();
        if !ids.is_empty() {
            headers.push((IDEMPOTENCY_KEY_HEADER, idempotency_key(&ids)));
            headers.push((NOTIFICATIONS_HEADER, ids));
        }
        if let Some(secret) = &self.secret {
            let ts = (crate::time::now_ms() / 1000).to_string();
            headers.push((
                SIGNATURE_HEADER,
                signature(secret.expose_secret().as_bytes(), &ts, &body),
            ));
            headers.push((TIMESTAMP_HEADER, ts));
        }
        match post_json(&self.client, self.url.expose_secret(), &headers, body).await {
            Ok(answer) => classify_status(&answer).unwrap_or(Delivery::Delivered),
            Err(d) => d,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_idempotency_key_names_the_notifications_not_their_order() {
        let key = idempotency_key("7.1,3.2");
        assert_eq!(key, idempotency_key("3.2,7.1"));
        assert_ne!(
            key,
            idempotency_key("3.3,7.1"),
            "a newer version is another send"
        );
        assert_eq!(key.len(), 3 + 32);
        assert!(key.starts_with("jw-"));
    }
}
