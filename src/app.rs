//! The wiring, at the top of the layers: `jobwatch run` builds the store, the platforms, the
//! runner with its schedules and retention, the alert delivery and the HTTP API from the
//! configuration, serves until SIGTERM/SIGINT, then shuts down cleanly.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::daemon::{Runner, listening_line};
use crate::store::Store;

/// Runs the daemon until SIGTERM/SIGINT (or `shutdown` is cancelled), then shuts down.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let config = Arc::new(config);
    let store: Arc<dyn Store> = Arc::new(
        crate::store::SqliteStore::open(&config.agent.data_dir)
            .await
            .with_context(|| {
                format!(
                    "cannot open the store in {}",
                    config.agent.data_dir.display()
                )
            })?,
    );
    let mut platforms = BTreeMap::new();
    for (name, p) in &config.platforms {
        platforms.insert(
            name.clone(),
            crate::platform::build(p, &config.agent.data_dir)
                .with_context(|| format!("platform {name}"))?,
        );
    }
    let metrics = crate::metrics::global();
    metrics.declare(&config);
    let runner = Runner::new(config.clone(), platforms, store);
    runner
        .start_alerts()
        .await
        .map_err(|e| anyhow::anyhow!("cannot start alert delivery: {e}"))?;
    let listener = tokio::net::TcpListener::bind(config.api.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.api.listen))?;
    let addr = listener.local_addr()?;
    let resumed = runner
        .resume_all()
        .await
        .context("cannot read unfinished executions")?;
    tracing::info!(%addr, resumed, data_dir = %config.agent.data_dir.display(), "jobwatch is running.");
    eprintln!("{}", listening_line(addr, resumed));
    crate::daemon::scheduler::start(&runner);
    crate::daemon::retention::start(&runner);
    let app = crate::api::router(crate::api::AppState::new(runner.clone(), metrics));
    let server_stop = CancellationToken::new();
    let server = {
        let server_stop = server_stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { server_stop.cancelled().await })
                .await
        })
    };
    shutdown.cancelled().await;
    eprintln!(
        "jobwatch: shutting down (grace {})…",
        humantime::format_duration(config.agent.shutdown_grace)
    );
    let clean = runner.shutdown(config.agent.shutdown_grace).await;
    if !clean {
        tracing::warn!(
            "Some executions were still busy at the end of the grace period; they resume at the next start."
        );
    }
    server_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    Ok(())
}
