//! What the HTTP receivers share: a client, a POST that never leaks its URL, and the
//! classification of HTTP answers (Alertmanager's rules: 2xx delivered; 408, 425, 429 and
//! 5xx retried; other 4xx rejected).

use std::time::Duration;

use reqwest::StatusCode;
use secrecy::{ExposeSecret as _, SecretString};

use super::Delivery;

/// A client with the receiver's time limit.
pub(super) fn client(timeout: Duration) -> Result<reqwest::Client, super::BuildError> {
    crate::tls::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("jobwatch/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(super::BuildError::Client)
}

/// An HTTP answer: status and body (at most 64 KiB of it, lossily decoded).
pub(super) struct Answer {
    pub status: StatusCode,
    pub body: String,
}

/// Whether an HTTP status is worth retrying.
pub(super) fn retryable(status: StatusCode) -> bool {
    status.is_server_error() || matches!(status.as_u16(), 408 | 425 | 429)
}

/// Classifies a non-2xx answer; `None` for 2xx (the caller may look into the body).
pub(super) fn classify_status(answer: &Answer) -> Option<Delivery> {
    if answer.status.is_success() {
        return None;
    }
    let snippet: String = answer.body.chars().take(200).collect();
    let text = format!("HTTP {}: {}", answer.status.as_u16(), snippet.trim());
    Some(if retryable(answer.status) {
        Delivery::Errored(text)
    } else {
        Delivery::Rejected(text)
    })
}

/// The words of a transport error, without its URL (it may carry a token).
pub(super) fn transport_error(e: reqwest::Error) -> Delivery {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "transport error"
    };
    let e = e.without_url();
    let mut text = format!("{kind}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    Delivery::Errored(text)
}

/// POSTs `body` (JSON) to the secret `url` with `headers`.
pub(super) async fn post_json(
    client: &reqwest::Client,
    url: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Result<Answer, Delivery> {
    let mut request = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.body(body).send().await.map_err(transport_error)?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(transport_error)?;
    let cut = &bytes[..bytes.len().min(64 * 1024)];
    Ok(Answer {
        status,
        body: String::from_utf8_lossy(cut).into_owned(),
    })
}

/// What every chat robot holds: a client, its webhook URL (a secret: it carries the token),
/// its sign secret if it signs, and its Markdown templates.
pub(super) struct Robot {
    pub client: reqwest::Client,
    pub url: SecretString,
    pub secret: Option<SecretString>,
    renderer: crate::alert::render::Renderer,
}

/// A chat robot's settings: its webhook URL (a secret: it carries the token) and, for the
/// robots that sign (DingTalk, Feishu), the signing secret.
#[derive(Clone)]
pub struct RobotSettings {
    /// The robot's URL.
    pub url: SecretString,
    /// The signing secret, if the robot signs.
    pub secret: Option<SecretString>,
}

/// Whether a robot type signs its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    /// `secret` is a setting (DingTalk, Feishu).
    Yes,
    /// `secret` is not a setting (WeCom, Slack).
    No,
}

/// `url` / `url_file` (robots that do not sign).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUrl {
    url: Option<SecretString>,
    url_file: Option<std::path::PathBuf>,
}

/// `url` / `url_file` and `secret` / `secret_file` (robots that sign).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSigned {
    url: Option<SecretString>,
    url_file: Option<std::path::PathBuf>,
    secret: Option<SecretString>,
    secret_file: Option<std::path::PathBuf>,
}

impl RobotSettings {
    /// Reads and checks a robot receiver's settings (templates: title and body).
    pub fn read(
        receiver: &crate::config::ReceiverConfig,
        issues: &mut crate::config::Issues,
        signing: Signing,
    ) -> Option<Self> {
        const TEMPLATES: &[&str] = &["title", "body"];
        let (url, url_file, secret, secret_file) = match signing {
            Signing::No => {
                let raw: RawUrl = super::read_settings(receiver, issues, TEMPLATES)?;
                (raw.url, raw.url_file, None, None)
            }
            Signing::Yes => {
                let raw: RawSigned = super::read_settings(receiver, issues, TEMPLATES)?;
                (raw.url, raw.url_file, raw.secret, raw.secret_file)
            }
        };
        let url = super::secret_url(receiver, issues, &url, &url_file);
        let secret = issues.secret(&receiver.key(), "secret", &secret, &secret_file);
        Some(RobotSettings { url: url?, secret })
    }
}

impl Robot {
    pub fn new(
        client: reqwest::Client,
        settings: &RobotSettings,
        receiver: &crate::config::ReceiverConfig,
    ) -> Result<Self, super::BuildError> {
        Ok(Robot {
            client,
            url: settings.url.clone(),
            secret: settings.secret.clone(),
            renderer: crate::alert::render::Renderer::new(
                &receiver.templates,
                crate::alert::render::BodyStyle::Markdown,
            )?,
        })
    }

    /// The texts of `view`; a template that fails is a rejection (retrying cannot help).
    pub fn render(
        &self,
        view: &crate::alert::render::NotificationView,
    ) -> Result<crate::alert::render::Rendered, Delivery> {
        self.renderer
            .render(view)
            .map_err(|e| Delivery::Rejected(e.to_string()))
    }

    /// POSTs `body` as JSON to `url` (the robot's own, or a signed variant of it). The HTTP
    /// status is classified here; a 2xx answer is returned for the robot to read.
    pub async fn post(
        &self,
        url: &SecretString,
        body: &serde_json::Value,
    ) -> Result<Answer, Delivery> {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        let answer = post_json(&self.client, url.expose_secret(), &[], bytes).await?;
        match classify_status(&answer) {
            Some(d) => Err(d),
            None => Ok(answer),
        }
    }
}

/// A robot's 2xx JSON answer classified by `classify` (robots answer errors with HTTP 200
/// and an error code inside); an answer that is not JSON is retried (a proxy is the likely
/// cause).
pub(super) fn json_answer(
    answer: &Answer,
    classify: impl Fn(&serde_json::Value) -> Delivery,
) -> Delivery {
    match serde_json::from_str::<serde_json::Value>(&answer.body) {
        Ok(v) => classify(&v),
        Err(_) => Delivery::Errored(format!(
            "HTTP {} with an unreadable answer: {}",
            answer.status.as_u16(),
            answer.body.chars().take(200).collect::<String>()
        )),
    }
}

/// `errcode`/`code` classification shared by the robots: 0 delivered; a code in `retry`
/// errored; any other rejected, with the robot's message.
pub(super) fn classify_code(code: Option<i64>, message: &str, retry: &[i64]) -> Delivery {
    match code {
        Some(0) => Delivery::Delivered,
        Some(c) if retry.contains(&c) => Delivery::Errored(format!("error code {c}: {message}")),
        Some(c) => Delivery::Rejected(format!("error code {c}: {message}")),
        None => Delivery::Errored(format!("answer without an error code: {message}")),
    }
}

/// The `{"errcode": …, "errmsg": …}` answer of WeCom and DingTalk robots.
pub(super) fn classify_errcode(v: &serde_json::Value, retry: &[i64]) -> Delivery {
    classify_code(
        v["errcode"].as_i64(),
        v["errmsg"].as_str().unwrap_or_default(),
        retry,
    )
}
