//! Validation of the whole file and of `[api]`: pure, every problem at once (`store` and
//! `agent` are read in place).

use super::*;

pub(super) fn validate(raw: RawConfig, check: ReceiverCheck) -> Result<Config, Vec<ConfigIssue>> {
    let mut issues = Issues::default();
    let mut platforms = BTreeMap::new();
    for (name, p) in &raw.platforms {
        if let Some(platform) = validate_platform(&mut issues, name, p) {
            platforms.insert(name.clone(), platform);
        }
    }
    let mut checks: Vec<CheckConfig> = Vec::new();
    for (i, c) in raw.checks.iter().enumerate() {
        if let Some(check) = validate_check(&mut issues, &format!("checks[{i}]"), c, &raw.platforms)
        {
            if checks.iter().any(|other| other.name == check.name) {
                issues.add(
                    format!("checks[{i}].name"),
                    format!("`{}` is used by another check", check.name),
                );
            }
            checks.push(check);
        }
    }
    let agent = AgentConfig {
        data_dir: raw
            .agent
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("./data")),
        shutdown_grace: raw.agent.shutdown_grace.unwrap_or(Duration::from_secs(10)),
        log_format: raw.agent.log_format.unwrap_or_default(),
    };
    let retention = raw.store.retention.unwrap_or(DEFAULT_RETENTION);
    if retention < Duration::from_secs(3600) {
        issues.add("store.retention", "must be at least 1h");
    }
    let store = StoreConfig {
        retention,
        backend: validate_store_url(&mut issues, &raw.store),
        lease: raw.store.lease.unwrap_or(DEFAULT_LEASE),
    };
    if !(Duration::from_secs(3)..=Duration::from_secs(600)).contains(&store.lease) {
        issues.add("store.lease", "must be between 3s and 10m");
    }
    let api = validate_api(&mut issues, &raw.api);
    for name in raw.api.job_links.keys() {
        if !raw.platforms.contains_key(name) {
            issues.add(
                format!("api.job_links.{name}"),
                format!("there is no platform `{name}` in [platforms]"),
            );
        }
    }
    let callbacks = validate_callbacks(&mut issues, &raw);
    let alerts = alerts::validate(&mut issues, &raw.alerts, check);
    match api {
        Some(api) if issues.0.is_empty() => Ok(Config {
            platforms,
            checks,
            agent,
            api,
            alerts,
            store,
            callbacks,
        }),
        _ => Err(issues.0),
    }
}

/// `[callbacks]`, and every platform's `callbacks = true` needing its `public_url`.
fn validate_callbacks(issues: &mut Issues, raw: &RawConfig) -> CallbacksConfig {
    let c = &raw.callbacks;
    let public_url = c
        .public_url
        .as_deref()
        .map(str::trim)
        .and_then(|u| match Url::parse(u) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                Some(url)
            }
            _ => {
                issues.add(
                    "callbacks.public_url",
                    "must be an http:// or https:// URL that bk-job can reach",
                );
                None
            }
        });
    let listen = c.listen.as_deref().and_then(|l| match l.parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            issues.add(
                "callbacks.listen",
                format!("`{l}` is not an address like 0.0.0.0:9465"),
            );
            None
        }
    });
    let key = issues.secret("callbacks", "key", &c.key, &c.key_file);
    if key
        .as_ref()
        .is_some_and(|k| secrecy::ExposeSecret::expose_secret(k).len() < 16)
    {
        issues.add("callbacks.key", "must be at least 16 characters");
    }
    if c.public_url.is_none() {
        for (name, p) in &raw.platforms {
            if p.callbacks == Some(true) {
                issues.add(
                    format!("platforms.{name}.callbacks"),
                    "needs [callbacks] public_url: the URL bk-job calls back",
                );
            }
        }
    }
    CallbacksConfig {
        public_url,
        listen,
        key,
    }
}

pub(super) fn validate_api(issues: &mut Issues, a: &RawApi) -> Option<ApiConfig> {
    let listen = a.listen.as_deref().unwrap_or("127.0.0.1:9464");
    let listen = match listen.parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            issues.add(
                "api.listen",
                format!("`{listen}` is not an address like 127.0.0.1:9464"),
            );
            None
        }
    };
    let mut tokens = Vec::new();
    if let Some(secret) = issues.secret("api", "token", &a.token, &a.token_file) {
        tokens.push(ApiToken {
            name: "token".into(),
            role: Role::Admin,
            secret,
        });
    }
    for (name, t) in &a.tokens {
        let key = format!("api.tokens.{name}");
        if name == "token" && !tokens.is_empty() {
            issues.add(&key, "`token` is the name of api.token: choose another");
            continue;
        }
        let role = match t.role.as_deref() {
            Some(r) => match Role::from_name(r) {
                Some(role) => Some(role),
                None => {
                    issues.add(
                        format!("{key}.role"),
                        format!("`{r}` is not a role: metrics, read, run or admin"),
                    );
                    None
                }
            },
            None => {
                issues.add(
                    format!("{key}.role"),
                    "missing: metrics, read, run or admin",
                );
                None
            }
        };
        let secret = issues.secret(&key, "token", &t.token, &t.token_file);
        if secret.is_none() && t.token.is_none() && t.token_file.is_none() {
            issues.add(
                format!("{key}.token"),
                format!(
                    "missing: set token_file, or JOBWATCH__API__TOKENS__{}__TOKEN",
                    name.to_uppercase()
                ),
            );
        }
        if let (Some(role), Some(secret)) = (role, secret) {
            tokens.push(ApiToken {
                name: name.clone(),
                role,
                secret,
            });
        }
    }
    {
        use secrecy::ExposeSecret as _;
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for t in &tokens {
            if let Some(other) = seen.insert(t.secret.expose_secret(), &t.name) {
                issues.add(
                    format!("api.tokens.{}", t.name),
                    format!("has the same value as `{other}`: each token must be its own"),
                );
            }
        }
    }
    let tls = match (&a.tls_cert_file, &a.tls_key_file) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        (None, None) => None,
        (Some(_), None) => {
            issues.add("api.tls_key_file", "missing: tls_cert_file needs its key");
            None
        }
        (None, Some(_)) => {
            issues.add(
                "api.tls_cert_file",
                "missing: tls_key_file needs its certificate",
            );
            None
        }
    };
    for (platform, link) in &a.job_links {
        if !link.starts_with("https://") && !link.starts_with("http://") {
            issues.add(
                format!("api.job_links.{platform}"),
                "must be an http(s) URL template",
            );
        }
    }
    Some(ApiConfig {
        listen: listen?,
        tokens,
        allow_inline_scripts: a.allow_inline_scripts.unwrap_or(false),
        tls,
        job_links: a.job_links.clone(),
    })
}

/// `[store] url`: SQLite (default) or PostgreSQL without a password in it (the password comes
/// from `password` — the environment — or `password_file`).
fn validate_store_url(issues: &mut Issues, s: &RawStore) -> StoreBackend {
    let password = issues.secret("store", "password", &s.password, &s.password_file);
    let Some(url) = s.url.as_deref().map(str::trim).filter(|u| !u.is_empty()) else {
        return StoreBackend::Sqlite;
    };
    if url == "sqlite" || url.starts_with("sqlite:") {
        if url
            .trim_start_matches("sqlite:")
            .trim_start_matches("//")
            .is_empty()
        {
            return StoreBackend::Sqlite;
        }
        issues.add(
            "store.url",
            "a SQLite store lives under agent.data_dir: write `sqlite://` and set data_dir",
        );
        return StoreBackend::Sqlite;
    }
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "postgres" | "postgresql") => {
            if u.password().is_some() {
                issues.add(
                    "store.url",
                    "must not hold a password: set JOBWATCH__STORE__PASSWORD or store.password_file",
                );
            }
            if u.host_str().is_none_or(str::is_empty) {
                issues.add("store.url", "names no host");
            }
            StoreBackend::Postgres {
                url: url.to_owned(),
                password,
            }
        }
        Ok(u) => {
            issues.add(
                "store.url",
                format!(
                    "`{}:` is not a store: use sqlite:// or postgres://",
                    u.scheme()
                ),
            );
            StoreBackend::Sqlite
        }
        Err(e) => {
            issues.add("store.url", format!("is not a URL: {e}"));
            StoreBackend::Sqlite
        }
    }
}
