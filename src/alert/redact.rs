//! One redactor for the whole crate: masks every configured secret and every secret-looking
//! part (built-in and configured patterns) of a text — log tails in alerts, errors stored in
//! the notification log. Its `Debug` shows no secret.

use crate::config::Config;

/// The configured secrets and redaction patterns.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Configured secret values (4 characters or more), masked wherever they appear.
    secrets: Vec<String>,
    /// Built-in patterns first, then `alerts.redact`.
    patterns: Vec<regex::Regex>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field(
                "secrets",
                &format_args!("[{} redacted]", self.secrets.len()),
            )
            .field("patterns", &self.patterns.len())
            .finish()
    }
}

impl Redactor {
    /// The secrets and patterns of a validated configuration: the platforms' and the API's
    /// secrets, and `more` (the receivers' secrets, which their types know: `notify::secrets`).
    pub fn new(config: &Config, more: Vec<String>) -> Self {
        use secrecy::ExposeSecret as _;
        let mut secrets: Vec<String> = Vec::new();
        for p in config.platforms.values() {
            match p {
                crate::config::PlatformConfig::BkJob(s) => {
                    secrets.push(s.app_secret.expose_secret().to_owned())
                }
                crate::config::PlatformConfig::Salt(s) => {
                    secrets.push(s.password.expose_secret().to_owned())
                }
                crate::config::PlatformConfig::Local => {}
            }
        }
        for t in &config.api.tokens {
            secrets.push(t.secret.expose_secret().to_owned());
        }
        secrets.extend(more);
        secrets.retain(|s| s.len() >= 4);
        Redactor {
            secrets,
            patterns: config.alerts.redact.clone(),
        }
    }

    /// Masks secret-looking parts of `text`: the configured secrets, the built-in and the
    /// configured redaction patterns (the first group is kept, the rest of the match becomes
    /// `[REDACTED]`, except a third group, kept after it).
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "[REDACTED]");
            }
        }
        for re in &self.patterns {
            out = re
                .replace_all(&out, |c: &regex::Captures<'_>| {
                    let group = |i: usize| c.get(i).map_or("", |m| m.as_str());
                    match c.len() {
                        0..=2 => "[REDACTED]".to_owned(),
                        3 => format!("{}[REDACTED]", group(1)),
                        _ => format!("{}[REDACTED]{}", group(1), group(3)),
                    }
                })
                .into_owned();
        }
        out
    }
}
