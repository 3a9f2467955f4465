//! The process's one TLS stack: rustls with the ring provider, shared by the HTTP clients
//! (platforms, receivers) and SMTP.

/// Installs rustls' ring provider for the process (reqwest is built without one). Safe to
/// call many times.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
