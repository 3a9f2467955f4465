//! Salt's event stream as hints (salt/API.md §3, "Live events"): salt-api's `GET /events`
//! is a server-sent-event stream of everything the master's event bus carries. Each
//! `salt/job/<jid>/ret/<minion>` event of a job jobwatch submitted (its
//! `metadata.jobwatch_task` names the execution, [`crate::model::execution_id_of_task`]) says that a
//! host returned: that execution is polled [`SETTLE`] later. A hint is never the truth: the poll
//! decides, and polling keeps its pace (the `find_job` probes ride on it).
//!
//! salt-api writes each event as a non-standard `tag:` line and a `data:` line holding
//! `{"tag": …, "data": {…}}`; the `tag:` line is ignored as SSE says unknown fields are,
//! and the tag is read from the JSON.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::StreamExt as _;
use reqwest::header::ACCEPT;
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::wire::TASK_KEY;
use super::{Salt, join};
use crate::platform::{Hint, JobRef, PlatformError, transport_error};

/// A stream that carried nothing for this long is opened again (a connection cut without a
/// word would otherwise stay silent for ever; a master with jobs running talks far more
/// often, if only through jobwatch's own probes).
pub const IDLE_REOPEN: Duration = Duration::from_secs(300);
/// The longest wait before opening the stream again after it failed (doubling from 1 s).
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A stream that lasted this long resets the backoff.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);
/// How long after its event a hint is acted on. The master fires a return's event just
/// before it writes the return into the job cache (`salt.utils.job.store_job`), and the
/// poll reads the cache: asked at once, it could still miss the return.
pub const SETTLE: Duration = Duration::from_millis(250);

/// One event as salt-api writes it in `data:` (only what a hint needs is read).
#[derive(Deserialize)]
struct Envelope {
    tag: String,
    #[serde(default)]
    data: Return,
}

#[derive(Deserialize, Default)]
struct Return {
    #[serde(default)]
    metadata: Option<serde_json::Value>,
}

/// The hint in one event's `data:` text: `Some` for a `salt/job/<jid>/ret/<minion>` event
/// whose `metadata.jobwatch_task` is a name jobwatch gave; `None` for any other event (the
/// stream carries every event of the master) and for text that is not such JSON. Pure.
pub fn return_hint(data: &str) -> Option<Hint> {
    // Most events are not returns: look at the tag before decoding the rest.
    if !data.contains("/ret/") {
        return None;
    }
    let envelope: Envelope = serde_json::from_str(data).ok()?;
    let rest = envelope.tag.strip_prefix("salt/job/")?;
    let (jid, minion) = rest.split_once("/ret/")?;
    if jid.is_empty() || minion.is_empty() {
        return None;
    }
    let metadata = envelope.data.metadata?;
    let task = metadata.get(TASK_KEY)?.as_str()?;
    let execution_id = crate::model::execution_id_of_task(task)?;
    Some(Hint {
        execution_id: execution_id.to_owned(),
        job: JobRef::salt(jid),
    })
}

/// Why a stream ended.
enum Ended {
    /// `stop` was cancelled.
    Stopped,
    /// Nothing came for [`IDLE_REOPEN`].
    Idle,
    /// The connection or salt-api failed.
    Failed(PlatformError),
}

impl Salt {
    /// Follows `GET /events` on the endpoints in turn until `stop` (see the module docs),
    /// handing each hint to `on_hint`. Logs in as the other calls do (one re-login after a
    /// 401); reopens after a failure with a backoff doubling from 1 s to [`MAX_BACKOFF`],
    /// and after [`IDLE_REOPEN`] of silence.
    pub(super) async fn follow_events(
        &self,
        on_hint: &(dyn Fn(Hint) + Send + Sync),
        stop: &CancellationToken,
    ) {
        let name = self.settings.name.as_str();
        let mut backoff = Duration::from_secs(1);
        let mut endpoint = 0;
        loop {
            let opened = Instant::now();
            let ended = self.stream_once(endpoint, on_hint, stop).await;
            crate::internal_events::EventStreamUp {
                platform: name,
                up: false,
            }
            .emit();
            match ended {
                Ended::Stopped => return,
                Ended::Idle => {
                    tracing::debug!(
                        platform = name,
                        "salt-api's event stream was silent; opening it again."
                    );
                    continue;
                }
                Ended::Failed(e) => {
                    if opened.elapsed() >= HEALTHY_AFTER {
                        backoff = Duration::from_secs(1);
                    }
                    tracing::warn!(platform = name, endpoint, error = %e, retry_in = ?backoff, "salt-api's event stream failed; polling alone tells the ends until it is back.");
                    endpoint = (endpoint + 1) % self.endpoints.len().max(1);
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = stop.cancelled() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One stream from endpoint `i`, until it ends.
    async fn stream_once(
        &self,
        i: usize,
        on_hint: &(dyn Fn(Hint) + Send + Sync),
        stop: &CancellationToken,
    ) -> Ended {
        let api = "events";
        let mut stale = None;
        let response = loop {
            let token = match self.token(i, stale.as_ref()).await {
                Ok(t) => t,
                Err(e) => return Ended::Failed(e),
            };
            let request = self
                .http
                .get(join(self.endpoints.url(i), "events"))
                .header(ACCEPT, "text/event-stream")
                .header("X-Auth-Token", token.expose_secret())
                // The client's request timeout would cut the stream: a day instead (the
                // idle limit reopens a dead one far sooner).
                .timeout(Duration::from_secs(86_400));
            let response = tokio::select! {
                r = request.send() => r,
                () = stop.cancelled() => return Ended::Stopped,
            };
            let response = match response {
                Ok(r) => r,
                Err(e) => return Ended::Failed(transport_error(api, false, e)),
            };
            let status = response.status().as_u16();
            if status == 401 && stale.is_none() {
                stale = Some(token);
                continue;
            }
            if status != 200 {
                return Ended::Failed(PlatformError {
                    http_status: Some(status),
                    ..PlatformError::transient(api, format!("salt-api answered HTTP {status}"))
                });
            }
            break response;
        };
        crate::internal_events::EventStreamUp {
            platform: &self.settings.name,
            up: true,
        }
        .emit();
        let mut events = eventsource_stream::Eventsource::eventsource(response.bytes_stream());
        // Hints wait [`SETTLE`] after their event, in arrival order.
        let mut settling: VecDeque<(Instant, Hint)> = VecDeque::new();
        let hand_over = |hint: Hint| {
            crate::internal_events::PlatformHint {
                platform: &self.settings.name,
                execution_id: &hint.execution_id,
                job: hint.job.jid.as_deref().unwrap_or_default(),
            }
            .emit();
            on_hint(hint);
        };
        let mut idle_at = Instant::now() + IDLE_REOPEN;
        loop {
            let settled_at = settling.front().map(|(at, _)| *at);
            let next = tokio::select! {
                next = events.next() => next,
                () = tokio::time::sleep_until(idle_at) => return Ended::Idle,
                () = async {
                    match settled_at {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {
                    if let Some((_, hint)) = settling.pop_front() {
                        hand_over(hint);
                    }
                    continue;
                }
                () = stop.cancelled() => return Ended::Stopped,
            };
            idle_at = Instant::now() + IDLE_REOPEN;
            let ended = match next {
                None => PlatformError::transient(api, "salt-api closed the event stream"),
                Some(Err(eventsource_stream::EventStreamError::Transport(e))) => {
                    transport_error(api, false, e)
                }
                Some(Err(e)) => {
                    PlatformError::transient(api, format!("the event stream cannot be read: {e}"))
                }
                Some(Ok(event)) => {
                    if let Some(hint) = return_hint(&event.data) {
                        settling.push_back((Instant::now() + SETTLE, hint));
                    }
                    continue;
                }
            };
            // The hints already read are still hints.
            settling.drain(..).for_each(|(_, hint)| hand_over(hint));
            return Ended::Failed(ended);
        }
    }
}
