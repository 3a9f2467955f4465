//! What the API is asked to change, and by whom.

/// A state-changing request (POST, DELETE, …) was answered: who asked (the token's name,
/// never its value) and how it ended. Logged only: each one is an operator's act to audit,
/// not a rate to watch.
pub struct ApiChange<'a> {
    /// The token's name (`anonymous` with no token configured; `-` when none matched).
    pub token: &'a str,
    /// The HTTP method.
    pub method: &'a str,
    /// The request path (ids in it are ours; no query string, which could carry a secret).
    pub path: &'a str,
    /// The answer's status.
    pub status: u16,
}

impl ApiChange<'_> {
    /// Logs at INFO (answered below 400) or WARN (refused or failed).
    pub fn emit(self) {
        if self.status < 400 {
            tracing::info!(
                token = self.token,
                method = self.method,
                path = self.path,
                status = self.status,
                "API change."
            );
        } else {
            tracing::warn!(
                token = self.token,
                method = self.method,
                path = self.path,
                status = self.status,
                "API change refused."
            );
        }
    }
}
