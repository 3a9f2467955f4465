//! A bk-job (BlueKing JOB) v3 API emulator for tests, benchmarks and demos — never a production
//! default. It serves both front doors as `reference/bkjob/API.md` describes them (API gateway
//! `/api/v3/<api>` with the `X-Bkapi-Authorization` header; ESB
//! `/api/c/compapi/v2/jobv3/<api>/` with credentials in the body), simulates hosts from a
//! [`Scenario`], and injects faults: latency, HTTP 5xx, gateway 429, malformed JSON, TCP
//! resets, instance-not-found and arbitrary envelope errors.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let scenario = bkjob_emulator::Scenario::from_toml("[[hosts]]\nbk_host_id = 1\nip = \"10.0.0.1\"\n").unwrap();
//! let emulator = bkjob_emulator::Emulator::start("127.0.0.1:0".parse().unwrap(), scenario).await?;
//! println!("APIGW base URL: {}", emulator.apigw_url());
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod callbacks;
mod jobs;
pub mod scenario;
mod server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use callbacks::Sent as CallbackSent;
pub use scenario::Scenario;
pub use server::State;

/// The `[platforms.<name>]` table of a jobwatch configuration pointing at `endpoints` (base
/// URLs of this emulator) through `door` (`apigw` or `esb`), with the app code and user the
/// scenarios' `[auth]` expect; `extra` lines (limits, a secret…) are added to the table.
pub fn jobwatch_platform_toml(name: &str, endpoints: &[String], door: &str, extra: &str) -> String {
    let endpoints: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    format!(
        "[platforms.{name}]\nkind = \"bkjob\"\ndoor = \"{door}\"\nendpoints = [{}]\napp_code = \"jobwatch\"\nusername = \"admin\"\nscope_id = \"2\"\n{extra}\n",
        endpoints.join(", ")
    )
}

/// The `[agent]` and `[api]` tables of a jobwatch daemon for tests and benchmarks: state in
/// `data_dir`, a 5 s shutdown grace, the API on a free loopback port.
pub fn jobwatch_daemon_toml(data_dir: &std::path::Path) -> String {
    format!(
        "[agent]\ndata_dir = \"{}\"\nshutdown_grace = \"5s\"\n\n[api]\nlisten = \"127.0.0.1:0\"\n",
        data_dir.display()
    )
}

/// A running emulator. Dropping it stops accepting connections.
#[derive(Debug)]
pub struct Emulator {
    addrs: Vec<SocketAddr>,
    state: Arc<State>,
    accept: Vec<JoinHandle<()>>,
}

impl Emulator {
    /// Binds `listen` (port 0 picks a free port) and serves `scenario` on the current runtime.
    pub async fn start(listen: SocketAddr, scenario: Scenario) -> std::io::Result<Emulator> {
        Self::start_many(&[listen], scenario).await
    }

    /// Several listeners (endpoints) over one platform state, e.g. two gateway nodes. The
    /// scenario's `[[faults.outages]]` name them by index.
    pub async fn start_many(
        listen: &[SocketAddr],
        scenario: Scenario,
    ) -> std::io::Result<Emulator> {
        let started = tokio::time::Instant::now();
        let mut listeners = Vec::new();
        for addr in listen {
            listeners.push(TcpListener::bind(addr).await?);
        }
        let addrs = listeners
            .iter()
            .map(TcpListener::local_addr)
            .collect::<std::io::Result<Vec<_>>>()?;
        let state = Arc::new(State::new(scenario));
        let accept = listeners
            .into_iter()
            .enumerate()
            .map(|(i, l)| {
                let outages: Vec<(Duration, Option<Duration>)> = state
                    .scenario()
                    .faults
                    .outages
                    .iter()
                    .filter(|o| o.listener == i)
                    .map(|o| (o.from, o.until))
                    .collect();
                tokio::spawn(accept_loop(l, state.clone(), started, outages))
            })
            .collect();
        Ok(Emulator {
            addrs,
            state,
            accept,
        })
    }

    /// Every bound address, in `listen` order.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The (first) bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Base URL for the API-gateway door (`…/api/bk-job/prod`, the Helm defaults).
    pub fn apigw_url(&self) -> String {
        self.apigw_url_of(0)
    }

    /// Base URL for the API-gateway door of listener `i`.
    pub fn apigw_url_of(&self, i: usize) -> String {
        server::base_urls(self.addrs[i]).0
    }

    /// Base URL for the ESB door (the PaaS host).
    pub fn esb_url(&self) -> String {
        server::base_urls(self.addrs[0]).1
    }

    /// The shared state: jobs created, request counters.
    pub fn state(&self) -> &State {
        &self.state
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        for task in &self.accept {
            task.abort();
        }
    }
}

/// The outage holding at `elapsed`, if any: its end (`None`: for good).
fn outage_at(
    outages: &[(Duration, Option<Duration>)],
    elapsed: Duration,
) -> Option<Option<Duration>> {
    outages
        .iter()
        .find(|(from, until)| elapsed >= *from && until.is_none_or(|u| elapsed < u))
        .map(|(_, until)| *until)
}

/// Accepts connections; during an outage the listener is closed (connections are refused)
/// and open connections are dropped, as when a gateway node goes away.
async fn accept_loop(
    listener: TcpListener,
    state: Arc<State>,
    started: tokio::time::Instant,
    outages: Vec<(Duration, Option<Duration>)>,
) {
    let addr = listener.local_addr().ok();
    let mut listener = Some(listener);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let elapsed = started.elapsed();
        if let Some(until) = outage_at(&outages, elapsed) {
            listener = None;
            connections.abort_all();
            let Some(until) = until else { return };
            tokio::time::sleep_until(started + until).await;
            continue;
        }
        let current = match &listener {
            Some(l) => l,
            None => match addr {
                Some(addr) => match TcpListener::bind(addr).await {
                    Ok(l) => listener.insert(l),
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                },
                None => return,
            },
        };
        let next_outage = outages
            .iter()
            .map(|(from, _)| *from)
            .filter(|from| *from > elapsed)
            .min();
        let wake = next_outage.map_or_else(
            || started + Duration::from_secs(86_400 * 365),
            |from| started + from,
        );
        let (stream, _) = tokio::select! {
            accepted = current.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "Accept failed.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = tokio::time::sleep_until(wake) => continue,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let _ = stream.set_nodelay(true);
        // A second handle on the socket, to turn the close into a TCP RST for reset faults.
        let Ok((std_stream, handle)) = stream
            .into_std()
            .and_then(|s| s.try_clone().map(|c| (s, c)))
        else {
            continue;
        };
        let Ok(stream) = tokio::net::TcpStream::from_std(std_stream) else {
            continue;
        };
        let handle = Arc::new(handle);
        let state = state.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                let handle = handle.clone();
                async move {
                    let Ok(response) = server::handle(state, req).await;
                    if server::wants_reset(&response) {
                        let _ = socket2::SockRef::from(&*handle).set_linger(Some(Duration::ZERO));
                        return Err(std::io::Error::other("connection reset (fault injected)"));
                    }
                    Ok(response)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
