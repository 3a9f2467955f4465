//! The problems collector: every problem of a configuration, each with its dotted key; it
//! also reads secrets given in files.

use super::*;

#[derive(Default)]
pub(super) struct Issues(pub(super) Vec<ConfigIssue>);

impl Issues {
    pub(super) fn add(&mut self, key: impl fmt::Display, message: impl Into<String>) {
        self.0.push(ConfigIssue {
            key: key.to_string(),
            message: message.into(),
        });
    }

    pub(super) fn required<'a, T>(
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
    pub(super) fn secret(
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

    pub(super) fn non_empty(
        &mut self,
        key: impl fmt::Display,
        value: &Option<String>,
    ) -> Option<String> {
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
}
