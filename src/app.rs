//! The wiring, at the top of the layers: `jobwatch run` builds the store, the platforms, the
//! runner with its schedules and retention, the alert delivery and the HTTP API from the
//! configuration, serves until SIGTERM/SIGINT, then shuts down cleanly.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::daemon::{Runner, listening_line};
use crate::store::{Store, StoreError};

/// Loads the configuration as jobwatch runs it: [`crate::config::load_checked`] with every
/// receiver type checking its own settings ([`crate::notify::check_receiver`]).
pub fn load_config(
    path: Option<&std::path::Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, crate::config::ConfigError> {
    crate::config::load_checked(path, env, crate::notify::check_receiver)
}

/// Why the daemon could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The store could not be opened (or migrated).
    #[error("cannot open the store {dir}: {source}")]
    Store {
        /// The data directory, or the PostgreSQL URL (no password in it).
        dir: String,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// A platform adapter could not be built.
    #[error("platform {name}: {source}")]
    Platform {
        /// The platform.
        name: String,
        /// Why.
        #[source]
        source: crate::platform::PlatformError,
    },
    /// A receiver could not be built.
    #[error("cannot start alert delivery: {0}")]
    Alerts(#[from] crate::notify::BuildError),
    /// The API's TLS certificate or key cannot be used.
    #[error("cannot serve HTTPS: {0}")]
    Tls(#[source] crate::api::tls::TlsError),
    /// The API address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The unfinished executions could not be read.
    #[error("cannot read unfinished executions: {0}")]
    Resume(#[source] StoreError),
    /// The callback key could not be read or made.
    #[error(transparent)]
    Callbacks(#[from] crate::daemon::callbacks::KeyError),
}

/// Opens the configured store: the SQLite file under `data_dir`, or the shared PostgreSQL
/// database (retried for up to a minute while it does not answer: replicas may start before
/// it).
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, AppError> {
    match &config.store.backend {
        crate::config::StoreBackend::Sqlite => Ok(Arc::new(
            crate::store::SqliteStore::open(&config.agent.data_dir)
                .await
                .map_err(|source| AppError::Store {
                    dir: format!("in {}", config.agent.data_dir.display()),
                    source,
                })?,
        )),
        crate::config::StoreBackend::Postgres { url, password } => {
            let settings = crate::store::PgSettings {
                url: url.clone(),
                password: password.clone(),
            };
            let until = tokio::time::Instant::now() + Duration::from_secs(60);
            loop {
                match crate::store::PgStore::open(&settings).await {
                    Ok(store) => return Ok(Arc::new(store)),
                    Err(source)
                        if source.is_unreachable() && tokio::time::Instant::now() < until =>
                    {
                        tracing::warn!(url, error = %source, "PostgreSQL does not answer yet; trying again.");
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                    Err(source) => {
                        return Err(AppError::Store {
                            dir: url.clone(),
                            source,
                        });
                    }
                }
            }
        }
    }
}

/// Runs the daemon until SIGTERM/SIGINT (or `shutdown` is cancelled), then shuts down.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), AppError> {
    let config = Arc::new(config);
    let store = open_store(&config).await?;
    let mut platforms = BTreeMap::new();
    for (name, p) in &config.platforms {
        let platform = crate::platform::build(p, &config.agent.data_dir).map_err(|source| {
            AppError::Platform {
                name: name.clone(),
                source,
            }
        })?;
        platforms.insert(name.clone(), platform);
    }
    let metrics = crate::metrics::global();
    metrics.declare(&config);
    let callbacks = crate::daemon::callbacks::Callbacks::from_config(&config)?;
    let runner = Runner::new(config.clone(), platforms, store);
    if let Some(callbacks) = callbacks {
        runner.set_callbacks(callbacks);
    }
    runner.start_alerts().await?;
    let listen_error = |source| AppError::Listen {
        addr: config.api.listen,
        source,
    };
    let listener = tokio::net::TcpListener::bind(config.api.listen)
        .await
        .map_err(listen_error)?;
    let addr = listener.local_addr().map_err(listen_error)?;
    // A certificate that cannot be served refuses to start, before anything is resumed.
    if let Some(files) = &config.api.tls {
        crate::api::tls::load(files).map_err(AppError::Tls)?;
    }
    let resumed = runner.resume_all().await.map_err(AppError::Resume)?;
    let replica = runner.store().shards().map(|s| s.replica_id().to_owned());
    tracing::info!(%addr, resumed, replica, data_dir = %config.agent.data_dir.display(), "jobwatch is running.");
    eprintln!(
        "{}",
        listening_line(addr, config.api.tls.is_some(), resumed)
    );
    crate::daemon::replica::start(&runner);
    crate::daemon::scheduler::start(&runner);
    crate::daemon::retention::start(&runner);
    runner.follow_platform_hints();
    let state = crate::api::AppState::new(runner.clone(), metrics);
    let callbacks_listener = match config.callbacks.listen {
        Some(addr) => {
            let error = |source| AppError::Listen { addr, source };
            let listener = tokio::net::TcpListener::bind(addr).await.map_err(error)?;
            tracing::info!(addr = %listener.local_addr().map_err(error)?, "Callbacks are taken on their own listener.");
            Some(listener)
        }
        None => None,
    };
    let app = crate::api::router(state.clone());
    let server_stop = CancellationToken::new();
    if let Some(listener) = callbacks_listener {
        let server_stop = server_stop.clone();
        let app = crate::api::callbacks_router(state);
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { server_stop.cancelled().await })
                .await
        });
    }
    let server = {
        let server_stop = server_stop.clone();
        match &config.api.tls {
            None => tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move { server_stop.cancelled().await })
                    .await
            }),
            Some(files) => {
                let listener = crate::api::tls::TlsListener::start(
                    listener,
                    files.clone(),
                    server_stop.clone(),
                )
                .map_err(AppError::Tls)?;
                tokio::spawn(async move {
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async move { server_stop.cancelled().await })
                        .await
                })
            }
        }
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
