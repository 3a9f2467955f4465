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

pub use scenario::Scenario;
pub use server::State;

/// A running emulator. Dropping it stops accepting connections.
#[derive(Debug)]
pub struct Emulator {
    addr: SocketAddr,
    state: Arc<State>,
    accept: JoinHandle<()>,
}

impl Emulator {
    /// Binds `listen` (port 0 picks a free port) and serves `scenario` on the current runtime.
    pub async fn start(listen: SocketAddr, scenario: Scenario) -> std::io::Result<Emulator> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::new(scenario));
        let accept = tokio::spawn(accept_loop(listener, state.clone()));
        Ok(Emulator {
            addr,
            state,
            accept,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL for the API-gateway door (`…/api/bk-job/prod`, the Helm defaults).
    pub fn apigw_url(&self) -> String {
        server::base_urls(self.addr).0
    }

    /// Base URL for the ESB door (the PaaS host).
    pub fn esb_url(&self) -> String {
        server::base_urls(self.addr).1
    }

    /// The shared state: jobs created, request counters.
    pub fn state(&self) -> &State {
        &self.state
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "Accept failed.");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // A second handle on the socket, to turn the close into a TCP RST for reset faults.
        let Ok(raw) = stream
            .into_std()
            .and_then(|s| s.try_clone().map(|c| (s, c)))
        else {
            continue;
        };
        let (std_stream, handle) = raw;
        let Ok(stream) = tokio::net::TcpStream::from_std(std_stream) else {
            continue;
        };
        let handle = Arc::new(handle);
        let state = state.clone();
        tokio::spawn(async move {
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
