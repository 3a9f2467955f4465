//! A headless Debian `chromium` driven through the Chrome DevTools Protocol (a websocket):
//! navigate, run JavaScript in the page, wait for a condition, take screenshots. What the
//! tests assert is the DOM after the page's scripts ran.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A running headless chromium and one page of it.
pub struct Browser {
    child: Child,
    socket: Socket,
    next_id: u64,
    _profile: tempfile::TempDir,
}

/// Where the tests save screenshots: `$JOBWATCH_ARTIFACTS` or `target/artifacts`.
pub fn artifacts() -> PathBuf {
    let dir = std::env::var_os("JOBWATCH_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/artifacts"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Browser {
    /// Starts chromium (headless, a fresh profile, DevTools on a free port) and attaches to
    /// its page.
    pub async fn start() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new("chromium")
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromium is installed (scripts/test.sh installs Debian's chromium)");
        let port_file = profile.path().join("DevToolsActivePort");
        let until = Instant::now() + Duration::from_secs(60);
        let port = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file)
                && let Some(port) = text
                    .lines()
                    .next()
                    .and_then(|l| l.trim().parse::<u16>().ok())
            {
                break port;
            }
            assert!(
                Instant::now() < until,
                "chromium did not open DevTools in 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let page_ws = loop {
            let targets: Value = match super::client()
                .get(format!("http://127.0.0.1:{port}/json/list"))
                .send()
                .await
            {
                Ok(r) => r.json().await.unwrap_or(Value::Null),
                Err(_) => Value::Null,
            };
            if let Some(ws) = targets
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| t["type"] == "page")
                .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            {
                break ws.to_owned();
            }
            assert!(Instant::now() < until, "chromium shows no page target");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let (socket, _) = tokio_tungstenite::connect_async(page_ws.as_str())
            .await
            .expect("the page's DevTools socket");
        let mut browser = Browser {
            child,
            socket,
            next_id: 0,
            _profile: profile,
        };
        browser.call("Page.enable", json!({})).await;
        browser.call("Runtime.enable", json!({})).await;
        browser.viewport(1280, 900, false).await;
        browser
    }

    /// One DevTools command; its result (events read meanwhile are dropped).
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({ "id": id, "method": method, "params": params }).to_string();
        self.socket.send(Message::text(message)).await.unwrap();
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let next = tokio::time::timeout(left, self.socket.next())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method} in 60 s"));
            let Some(Ok(Message::Text(text))) = next else {
                continue;
            };
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["id"] == id {
                // A script that navigates (a click on a link, a form sent) may lose its page
                // before it answers: that is the navigation it asked for, not a failure.
                let navigated = method == "Runtime.evaluate"
                    && v["error"]["message"].as_str().is_some_and(|m| {
                        m.contains("navigated") || m.contains("context was destroyed")
                    });
                if navigated {
                    return json!({ "result": { "value": null } });
                }
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Sets the viewport (CSS pixels); `mobile` for a phone.
    pub async fn viewport(&mut self, width: u32, height: u32, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile }),
        )
        .await;
    }

    /// Runs `js` in the page (a promise is awaited) and returns its value; an exception fails
    /// the test.
    pub async fn eval(&mut self, js: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": js, "returnByValue": true, "awaitPromise": true }),
            )
            .await;
        if let Some(e) = r.get("exceptionDetails") {
            panic!("the page threw on `{js}`: {e:#}");
        }
        r["result"]["value"].clone()
    }

    /// Waits (at most `within`) until `js` gives a truthy value, and returns it.
    pub async fn wait_for(&mut self, js: &str, within: Duration) -> Value {
        let until = Instant::now() + within;
        loop {
            let r = self
                .call(
                    "Runtime.evaluate",
                    json!({ "expression": js, "returnByValue": true, "awaitPromise": true }),
                )
                .await;
            let v = r["result"]["value"].clone();
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                Value::Array(a) => !a.is_empty(),
                Value::Object(_) => true,
            };
            if truthy && r.get("exceptionDetails").is_none() {
                return v;
            }
            if Instant::now() >= until {
                let url = self.eval("location.href").await;
                let text = self
                    .eval("document.body ? document.body.innerText.slice(0, 3000) : ''")
                    .await;
                panic!(
                    "`{js}` did not hold within {within:?} on {url}; the page says:\n{}",
                    text.as_str().unwrap_or("")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Loads `url` and waits until its scripts ran (`body[data-ready]`, set by jobwatch.js).
    pub async fn goto(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url })).await;
        self.wait_loaded().await;
    }

    /// Waits until the current page (after a click or a form) has loaded and run its script.
    pub async fn wait_loaded(&mut self) {
        self.wait_for(
            "document.readyState === 'complete' && document.body && document.body.dataset.ready === '1'",
            Duration::from_secs(30),
        )
        .await;
    }

    /// Saves a PNG of the whole page to `path`.
    pub async fn screenshot(&mut self, path: &Path) {
        let r = self
            .call(
                "Page.captureScreenshot",
                json!({ "format": "png", "captureBeyondViewport": true }),
            )
            .await;
        use base64::Engine as _;
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
