//! HTTPS on the API's listener (`[api] tls_cert_file`, `tls_key_file`): rustls with the
//! process's ring provider. The certificate and key are read at start (a bad pair refuses to
//! start) and read again whenever either file changes (checked every 2 s): a renewed
//! certificate is served to new connections without a restart, and a broken one is logged
//! and ignored, the previous pair still served.
//!
//! Handshakes run in their own tasks (at most 10 s each), so a slow or silent client never
//! holds up the others; failed ones are logged at DEBUG.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use crate::config::TlsFiles;

/// How often the files are looked at.
const RELOAD_CHECK: Duration = Duration::from_secs(2);
/// How long a handshake may take.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// Why the certificate and key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The key does not fit the certificate, or its type is not supported.
    #[error("{0}")]
    Pair(String),
}

/// Reads a certificate chain and its private key (PEM) into a served pair.
pub fn load(files: &TlsFiles) -> Result<Arc<CertifiedKey>, TlsError> {
    let file_error = |path: &Path, reason: String| TlsError::File {
        path: path.display().to_string(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| file_error(&files.cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(&files.cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(file_error(&files.cert, "no CERTIFICATE in it".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| file_error(&files.key, format!("no usable private key: {e}")))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| TlsError::Pair(format!("the key's type is not supported: {e}")))?;
    let pair = CertifiedKey::new(certs, signing);
    pair.keys_match().map_err(|e| {
        TlsError::Pair(format!(
            "the key does not belong to the certificate ({e}): {} and {}",
            files.cert.display(),
            files.key.display()
        ))
    })?;
    Ok(Arc::new(pair))
}

/// Serves whichever pair was read last.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.0
                .read()
                .map(|k| k.clone())
                .unwrap_or_else(|e| e.into_inner().clone()),
        )
    }
}

/// What identifies a file's version: its modification time and length.
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// The API's listener with TLS: connections come out of it already through their handshake.
pub struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Serves TLS on `tcp` with the pair in `files` (read now: an error here refuses to
    /// start), reading it again when it changes, until `stop`.
    pub fn start(
        tcp: TcpListener,
        files: TlsFiles,
        stop: CancellationToken,
    ) -> Result<TlsListener, TlsError> {
        let local = tcp.local_addr().map_err(|e| TlsError::File {
            path: "listener".into(),
            reason: e.to_string(),
        })?;
        let current = Arc::new(Current(RwLock::new(load(&files)?)));
        let mut config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        tokio::spawn(watch(files, current, stop.clone()));
        let (tx, ready) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    () = stop.cancelled() => return,
                    accepted = tcp.accept() => match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            tracing::debug!(error = %e, "Accept failed.");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed."),
                        Err(_) => tracing::debug!(%peer, "TLS handshake took too long."),
                    }
                });
            }
        });
        Ok(TlsListener { ready, local })
    }
}

/// Reads the pair again whenever either file changes.
async fn watch(files: TlsFiles, current: Arc<Current>, stop: CancellationToken) {
    let mut served = (stamp(&files.cert), stamp(&files.key));
    // The files' version that failed to load, told once; it is tried again every check (a
    // pair caught half-written loads once both writes are done).
    let mut failed = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(RELOAD_CHECK) => {}
        }
        let now = (stamp(&files.cert), stamp(&files.key));
        if now == served {
            continue;
        }
        match load(&files) {
            Ok(pair) => {
                if let Ok(mut c) = current.0.write() {
                    *c = pair;
                }
                served = now;
                failed = None;
                tracing::info!(cert = %files.cert.display(), "TLS certificate reloaded; new connections get it.");
            }
            Err(e) => {
                if failed.as_ref() != Some(&now) {
                    tracing::error!(error = %e, "The changed TLS certificate or key cannot be used; the previous pair is still served.");
                    failed = Some(now);
                }
            }
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept task ended (shutting down): nothing more comes.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
