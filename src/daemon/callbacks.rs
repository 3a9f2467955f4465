//! bk-job job-end callbacks as a hint (issue 6/7): each submit on a platform with
//! `callbacks = true` carries `callback_url = <public_url>/v1/callbacks/bkjob/<execution
//! id>/<token>`; a callback with the right token makes that execution's next poll due now.
//! The end is still decided from `get_job_instance_status` and the logs: bk-job signs
//! nothing and retries once at most, so a callback is never the truth.
//!
//! The token is HMAC-SHA256 of the execution id under a key (`[callbacks] key`, or
//! `<data_dir>/callback.key` made at first start): unforgeable without the key, nothing to
//! store per execution, the same on every replica that shares the key.

use std::path::Path;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use url::Url;

use crate::config::Config;

/// Bytes of the HMAC kept in a token (128 bits, 32 hex characters).
const TOKEN_BYTES: usize = 16;

/// The callback side of the daemon: the public base URL and the token key.
pub struct Callbacks {
    base: Url,
    key: SecretString,
}

impl std::fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callbacks")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

/// Why the callback key could not be read or made.
#[derive(Debug, thiserror::Error)]
#[error("callback key {path}: {source}")]
pub struct KeyError {
    path: String,
    source: std::io::Error,
}

impl Callbacks {
    /// The callbacks of `config`: `None` when no `public_url` is set. The key is the
    /// configured one, else `<data_dir>/callback.key`, made (32 random bytes, hex, mode 0600)
    /// when missing.
    pub fn from_config(config: &Config) -> Result<Option<Callbacks>, KeyError> {
        let Some(base) = config.callbacks.public_url.clone() else {
            return Ok(None);
        };
        let key = match &config.callbacks.key {
            Some(k) => k.clone(),
            None => key_file(&config.agent.data_dir.join("callback.key"))?,
        };
        Ok(Some(Callbacks { base, key }))
    }

    /// Callbacks at `base` with `key` (tests, tools).
    pub fn new(base: Url, key: SecretString) -> Self {
        Callbacks { base, key }
    }

    fn mac(&self, execution_id: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.key.expose_secret().as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(execution_id.as_bytes());
        mac
    }

    /// The token of `execution_id`: 32 hex characters.
    pub fn token(&self, execution_id: &str) -> String {
        hex::encode(&self.mac(execution_id).finalize().into_bytes()[..TOKEN_BYTES])
    }

    /// Whether `token` is `execution_id`'s (compared in constant time).
    pub fn verify(&self, execution_id: &str, token: &str) -> bool {
        match hex::decode(token) {
            Ok(bytes) if bytes.len() == TOKEN_BYTES => {
                self.mac(execution_id).verify_truncated_left(&bytes).is_ok()
            }
            _ => false,
        }
    }

    /// The `callback_url` of `execution_id`.
    pub fn url(&self, execution_id: &str) -> String {
        format!(
            "{}/v1/callbacks/bkjob/{execution_id}/{}",
            self.base.as_str().trim_end_matches('/'),
            self.token(execution_id)
        )
    }
}

/// Reads the key at `path`, or makes it.
fn key_file(path: &Path) -> Result<SecretString, KeyError> {
    let err = |source| KeyError {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().len() >= 16 => {
            return Ok(SecretString::from(text.trim().to_owned()));
        }
        Ok(_) => {
            return Err(err(std::io::Error::other(
                "shorter than 16 characters: remove it to have a new one made",
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let key = hex::encode(rand::random::<[u8; 32]>());
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            std::io::Write::write_all(&mut file, key.as_bytes()).map_err(err)?;
            file.sync_all().map_err(err)?;
            Ok(SecretString::from(key))
        }
        // Another process made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => key_file(path),
        Err(e) => Err(err(e)),
    }
}

/// What a callback body says, as far as jobwatch reads it: the job instance, when the body
/// is JSON with a numeric `job_instance_id` (bk-job's `JobCallbackDTO`; the step list is
/// `step_instances` in the source, `step_instance_list` in the docs, and is not needed).
/// bk-job's retry sends the same JSON with a form content type: the body is read as JSON
/// whatever the content type.
pub fn job_instance_id(body: &[u8]) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    match &v["job_instance_id"] {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn callbacks() -> Callbacks {
        Callbacks::new(
            "https://jobwatch.example.com:9464/".parse().unwrap(),
            SecretString::from("a-key-of-some-length-0123".to_owned()),
        )
    }

    #[test]
    fn tokens_are_per_execution_and_only_the_right_one_verifies() {
        let c = callbacks();
        let t = c.token("exec-1");
        assert_eq!(t.len(), 32);
        assert!(c.verify("exec-1", &t));
        assert!(!c.verify("exec-2", &t));
        assert!(!c.verify("exec-1", &t[..30]));
        assert!(!c.verify("exec-1", "not hex at all"));
        assert_ne!(t, c.token("exec-2"));
        assert_eq!(
            c.url("exec-1"),
            format!("https://jobwatch.example.com:9464/v1/callbacks/bkjob/exec-1/{t}")
        );
        assert!(!format!("{c:?}").contains("a-key-of"));
    }

    #[test]
    fn both_body_shapes_give_the_job_instance() {
        let source = br#"{"job_instance_id": 123, "status": 3, "step_instances": [{"step_instance_id": 456, "status": 3}]}"#;
        let docs = br#"{"job_instance_id": 123, "status": 3, "step_instance_list": [{"step_instance_id": 456, "status": 3}]}"#;
        assert_eq!(job_instance_id(source), Some(123));
        assert_eq!(job_instance_id(docs), Some(123));
        assert_eq!(job_instance_id(b"job_instance_id=123"), None);
        assert_eq!(job_instance_id(b"\xff\xfe"), None);
    }

    #[test]
    fn a_missing_key_file_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/callback.key");
        let first = key_file(&path).unwrap();
        let again = key_file(&path).unwrap();
        assert_eq!(first.expose_secret(), again.expose_secret());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
