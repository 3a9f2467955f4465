//! The problems collector: every problem of a configuration, each with its dotted key; it
//! also reads secrets given in files, URLs and durations, and typed sections. Public: the
//! receiver types (in `notify`) check their own settings with it.

use super::*;

/// Every problem found so far, each with its key.
#[derive(Debug, Default)]
pub struct Issues(pub(super) Vec<ConfigIssue>);

impl Issues {
    /// Records a problem of `key`.
    pub fn add(&mut self, key: impl fmt::Display, message: impl Into<String>) {
        self.0.push(ConfigIssue {
            key: key.to_string(),
            message: message.into(),
        });
    }

    /// `value`, or a "required" problem of `key`.
    pub fn required<'a, T>(
        &mut self,
        key: impl fmt::Display,
        value: &'a Option<T>,
    ) -> Option<&'a T> {
        if value.is_none() {
            self.add(key, "required");
        }
        value.as_ref()
    }

    /// A secret given inline (`<field>`) or in a file (`<field>_file`, surrounding white
    /// space trimmed); `None` when neither is set or on an issue (recorded).
    pub fn secret(
        &mut self,
        key: &str,
        field: &str,
        inline: &Option<SecretString>,
        file: &Option<PathBuf>,
    ) -> Option<SecretString> {
        match (inline, file) {
            (Some(secret), None) => Some(secret.clone()),
            (None, Some(path)) => match std::fs::read_to_string(path) {
                Ok(text) if !text.trim().is_empty() => {
                    Some(SecretString::from(text.trim().to_owned()))
                }
                Ok(_) => {
                    self.add(
                        format!("{key}.{field}_file"),
                        format!("{} is empty", path.display()),
                    );
                    None
                }
                Err(e) => {
                    self.add(
                        format!("{key}.{field}_file"),
                        format!("cannot read {}: {e}", path.display()),
                    );
                    None
                }
            },
            (Some(_), Some(_)) => {
                self.add(
                    format!("{key}.{field}"),
                    format!("set either {field} or {field}_file, not both"),
                );
                None
            }
            (None, None) => None,
        }
    }

    /// The trimmed text, or a problem of `key` (missing or empty).
    pub fn non_empty(&mut self, key: impl fmt::Display, value: &Option<String>) -> Option<String> {
        match value.as_deref().map(str::trim) {
            Some("") => {
                self.add(key, "must not be empty");
                None
            }
            Some(v) => Some(v.to_owned()),
            None => {
                self.add(key, "required");
                None
            }
        }
    }

    /// How many problems so far.
    pub fn count(&self) -> usize {
        self.0.len()
    }

    /// The problems.
    pub fn into_vec(self) -> Vec<ConfigIssue> {
        self.0
    }

    /// `text` as an http(s) URL, or a problem of `key` (the text is not repeated: it may carry
    /// a token).
    pub fn http_url(&mut self, key: impl fmt::Display, text: &str) -> Option<url::Url> {
        match url::Url::parse(text.trim()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
            _ => {
                self.add(key, "must be an http:// or https:// URL");
                None
            }
        }
    }

    /// A duration that must be more than 0: `value`, or `default` when unset (a zero is a
    /// problem of `key`).
    pub fn positive(
        &mut self,
        key: impl fmt::Display,
        value: Option<Duration>,
        default: Duration,
    ) -> Duration {
        match value {
            Some(d) if d.is_zero() => {
                self.add(key, "must be more than 0");
                default
            }
            Some(d) => d,
            None => default,
        }
    }

    /// Reads `table` (the table at `key`) as `T`: every unknown key and wrong type is a
    /// problem of its full key; `None` if it cannot be read.
    pub fn read<T: serde::de::DeserializeOwned>(
        &mut self,
        key: &str,
        table: &toml::Table,
    ) -> Option<T> {
        let mut layered = super::source::Layered {
            root: table.clone(),
            from_env: Default::default(),
        };
        let mut found = Vec::new();
        let value = super::source::deserialize::<T>(&mut layered, &mut found);
        for mut issue in found {
            issue.key = format!("{key}.{}", issue.key);
            self.0.push(issue);
        }
        value
    }
}
