//! Job-end callbacks as bk-job sends them (its source: `JobCallbackDTO`, `CallbackListener`):
//! once the job is final, one `POST` of `application/json` with a 15 s timeout; on a non-200
//! answer one retry with `Content-Type: application/x-www-form-urlencoded` and the same JSON
//! text; connection errors are only recorded. `[callbacks]` of the scenario bends it (drop,
//! delay, early, duplicates, wrong job id). Plain HTTP/1.1 over TCP: the exact bytes are ours.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::jobs::Job;
use crate::server::State;

/// bk-job's callback timeout.
const TIMEOUT: Duration = Duration::from_secs(15);

/// One callback attempt, as a test can read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    /// Where it went.
    pub url: String,
    /// When it was sent, epoch ms.
    pub at_ms: i64,
    /// The job it is about.
    pub job_instance_id: u64,
    /// The content type it was sent with.
    pub content_type: &'static str,
    /// The body, as sent.
    pub body: String,
    /// The receiver's HTTP status, or `None` when the connection failed.
    pub answer: Option<u16>,
}

/// Follows job `id` and sends its callback to `url` at its end (see the module note).
pub(crate) fn send_at_end(state: Arc<State>, id: u64, url: String) {
    tokio::spawn(async move {
        let spec = state.scenario().callbacks.clone();
        if spec.drop {
            return;
        }
        // The end as the status API will show it, `early` ahead of time.
        let status = loop {
            let ahead = Instant::now() + spec.early;
            let status = match state.job(id) {
                Some(job) => job.state_at(ahead).0,
                None => return,
            };
            if Job::finished(status) {
                break status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        tokio::time::sleep(spec.delay).await;
        let step = id + 1;
        let job_instance_id = if spec.wrong_job_id { id + 1000 } else { id };
        let mut body = json!({ "job_instance_id": job_instance_id, "status": status });
        body[spec.list_name.as_str()] = json!([{ "step_instance_id": step, "status": status }]);
        let body = body.to_string();
        for _ in 0..=spec.duplicates {
            let at_ms = now_ms();
            let answer = post(&url, "application/json", &body).await;
            let ok = answer == Some(200);
            state.stats.callback_sent(Sent {
                url: url.clone(),
                at_ms,
                job_instance_id,
                content_type: "application/json",
                body: body.clone(),
                answer,
            });
            // bk-job retries a non-200 answer once, as a form, with the same JSON text; a
            // connection error is only logged.
            if !ok && answer.is_some() {
                let content_type = "application/x-www-form-urlencoded";
                let at_ms = now_ms();
                let answer = post(&url, content_type, &body).await;
                state.stats.callback_sent(Sent {
                    url: url.clone(),
                    at_ms,
                    job_instance_id,
                    content_type,
                    body: body.clone(),
                    answer,
                });
            }
        }
    });
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `POST`s `body` to `url` (http only) and returns the answer's status code.
async fn post(url: &str, content_type: &str, body: &str) -> Option<u16> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(authority).await.ok()?;
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.ok()?;
        let text = String::from_utf8_lossy(&answer);
        text.split_whitespace().nth(1)?.parse().ok()
    };
    tokio::time::timeout(TIMEOUT, exchange).await.ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A receiver that answers `statuses` in turn and keeps each request's bytes.
    async fn receiver(statuses: Vec<u16>) -> (String, tokio::task::JoinHandle<Vec<String>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/cb/x/y", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            for status in statuses {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                loop {
                    let n = s.read(&mut buf).await.unwrap();
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("Content-Length: "))
                            .unwrap()
                            .parse()
                            .unwrap();
                        if body.len() >= len {
                            seen.push(text);
                            break;
                        }
                    }
                }
                s.write_all(format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await
                    .unwrap();
            }
            seen
        });
        (url, task)
    }

    fn state(callbacks: &str) -> Arc<State> {
        let text = format!(
            "[[hosts]]\nbk_host_id = 101\nip = \"10.0.0.1\"\nduration = \"50ms\"\n{callbacks}"
        );
        Arc::new(State::new(crate::Scenario::from_toml(&text).unwrap()))
    }

    #[tokio::test]
    async fn a_non_200_answer_is_retried_once_as_a_form_with_the_same_json() {
        let (url, task) = receiver(vec![500, 500]).await;
        let state = state("");
        let hosts = state.scenario().hosts.clone();
        let id = state.seed_job("t", Duration::from_secs(60), hosts);
        send_at_end(state.clone(), id, url);
        let seen = task.await.unwrap();
        assert!(
            seen[0].starts_with("POST /cb/x/y HTTP/1.1\r\n"),
            "{}",
            seen[0]
        );
        assert!(seen[0].contains("Content-Type: application/json\r\n"));
        assert!(seen[1].contains("Content-Type: application/x-www-form-urlencoded\r\n"));
        let body = |t: &str| t.split_once("\r\n\r\n").unwrap().1.to_owned();
        assert_eq!(body(&seen[0]), body(&seen[1]));
        let v: serde_json::Value = serde_json::from_str(&body(&seen[0])).unwrap();
        assert_eq!(v["job_instance_id"], id);
        assert_eq!(v["status"], 3);
        assert_eq!(v["step_instances"][0]["step_instance_id"], id + 1);
        // Once, then once more: never a third time.
        for _ in 0..50 {
            if state.stats.callbacks().len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let sent = state.stats.callbacks();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[1].answer, Some(500));
    }

    #[tokio::test]
    async fn the_docs_list_name_duplicates_and_a_wrong_job_id_are_selectable() {
        let (url, task) = receiver(vec![200, 200]).await;
        let state = state(
            "[callbacks]\nlist_name = \"step_instance_list\"\nduplicates = 1\nwrong_job_id = true\n",
        );
        let hosts = state.scenario().hosts.clone();
        let id = state.seed_job("t", Duration::from_secs(60), hosts);
        send_at_end(state.clone(), id, url);
        let seen = task.await.unwrap();
        assert_eq!(seen.len(), 2, "one extra copy");
        let v: serde_json::Value =
            serde_json::from_str(seen[1].split_once("\r\n\r\n").unwrap().1).unwrap();
        assert_eq!(v["job_instance_id"], id + 1000);
        assert_eq!(v["step_instance_list"][0]["status"], 3);
    }
}
