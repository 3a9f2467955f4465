//! Configuration tests: every problem at once with its key, secrets never shown, defaults.

use super::*;

fn load_str(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    load_text(
        text,
        "test",
        env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
}

const BK: &str = r#"
    [platforms.bk]
    kind = "bkjob"
    endpoints = ["http://127.0.0.1:1/api/bk-job/prod"]
    app_code = "jobwatch"
    username = "admin"
    scope_id = "2"

    [[checks]]
    name = "disk"
    platform = "bk"
    script = "df -h"
    hosts = ["0:10.0.0.1", "0:10.0.0.2"]
    account_alias = "root"
    timeout = "10m"
    [checks.poll]
    interval = "20s"
    max_attempts = 5
"#;

#[test]
fn the_embedded_default_is_valid() {
    let config = load_checked(None, [], no_receiver_check).unwrap();
    assert!(!config.checks.is_empty());
    assert!(
        config
            .checks
            .iter()
            .all(|c| config.platforms.contains_key(&c.platform))
    );
}

#[test]
fn secret_comes_from_the_environment_and_never_shows() {
    let config = load_str(
        BK,
        &[("JOBWATCH__PLATFORMS__BK__APP_SECRET", "hunter2-very-secret")],
    )
    .unwrap();
    let check = config.check("disk").unwrap();
    assert_eq!(check.poll.max_attempts, Some(5));
    assert_eq!(check.poll.interval, Duration::from_secs(20));
    assert_eq!(check.timeout, Duration::from_secs(600));
    let PlatformConfig::BkJob(bk) = &config.platforms["bk"] else {
        panic!("bkjob expected")
    };
    assert_eq!(bk.door, Door::Apigw);
    assert!(!format!("{config:?}").contains("hunter2"));
}

#[test]
fn every_problem_is_reported_at_once_with_its_key() {
    let text = r#"
        [platforms.bk]
        kind = "bkjob"
        endpoints = ["ftp://x"]
        door = "side"
        username = "admin"
        scope_id = "2"

        [[checks]]
        name = "bad name!"
        platform = "nope"
        script = "true"
        script_language = "cobol"
        hosts = ["10.0.0.1", "0:999.1.1.1"]
        timeout = "100d"
        [checks.poll]
        jitter = 2.0
    "#;
    let Err(ConfigError::Invalid { issues, .. }) = load_str(text, &[]) else {
        panic!("must be invalid")
    };
    let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
    for expected in [
        "platforms.bk.endpoints[0]",
        "platforms.bk.door",
        "platforms.bk.app_code",
        "platforms.bk.app_secret",
        "checks[0].name",
        "checks[0].platform",
        "checks[0].script_language",
        "checks[0].hosts[0]",
        "checks[0].hosts[1]",
        "checks[0].timeout",
        "checks[0].poll.jitter",
    ] {
        assert!(keys.contains(&expected), "missing {expected} in {keys:?}");
    }
}

#[test]
fn unknown_keys_are_refused() {
    let text = format!("{BK}\n[platforms.extra]\nkind = \"local\"\ncolour = \"blue\"\n");
    let err = load_str(&text, &[("JOBWATCH__PLATFORMS__BK__APP_SECRET", "x")]).unwrap_err();
    assert!(err.to_string().contains("colour"), "{err}");
}

#[test]
fn bkjob_hosts_must_not_mix_ids_and_ips() {
    let text = BK.replace(
        r#"hosts = ["0:10.0.0.1", "0:10.0.0.2"]"#,
        r#"hosts = [101, "0:10.0.0.2"]"#,
    );
    let err = load_str(&text, &[("JOBWATCH__PLATFORMS__BK__APP_SECRET", "x")]).unwrap_err();
    assert!(err.to_string().contains("checks[0].hosts"), "{err}");
}

fn issues_of(text: &str, env: &[(&str, &str)]) -> Vec<ConfigIssue> {
    match load_str(text, env) {
        Err(ConfigError::Invalid { issues, .. }) => issues,
        other => panic!("must be invalid: {other:?}"),
    }
}

#[test]
fn shape_problems_are_all_reported_with_full_keys_and_the_type_found() {
    let text = BK.replace(
        r#"timeout = "10m""#,
        "timeout = -5\nlog_max_bytes = \"big\"\nbogus = 1\nfail_when = \"most\"",
    ) + "\n[agent]\ncolour = \"blue\"\n";
    let issues = issues_of(&text, &[("JOBWATCH__PLATFORMS__BK__APP_SECRET", "x")]);
    let find = |key: &str| {
        issues
            .iter()
            .find(|i| i.key == key)
            .unwrap_or_else(|| panic!("no issue for {key} in {issues:#?}"))
    };
    assert!(
        find("checks[0].timeout").message.contains("integer"),
        "{issues:#?}"
    );
    assert!(
        find("checks[0].log_max_bytes").message.contains("string"),
        "{issues:#?}"
    );
    assert!(
        find("checks[0].bogus").message.contains("unknown field"),
        "{issues:#?}"
    );
    assert!(
        find("agent.colour").message.contains("unknown field"),
        "{issues:#?}"
    );
    // Value problems are reported with the shape problems, at once.
    find("checks[0].fail_when");
    let timeout = issues
        .iter()
        .filter(|i| i.key == "checks[0].timeout")
        .count();
    assert_eq!(timeout, 1, "a key is reported once: {issues:#?}");
}

#[test]
fn a_bad_environment_override_names_its_variable() {
    let issues = issues_of(
        BK,
        &[
            ("JOBWATCH__PLATFORMS__BK__APP_SECRET", "x"),
            ("JOBWATCH__AGENT__SHUTDOWN_GRACE", "soon"),
            ("JOBWATCH__CHECKS__0__POLL__MAX_ATTEMPTS", "many"),
            ("JOBWATCH__CHECKS__7__TIMEOUT", "1m"),
            ("JOBWATCH__API__LISTEN", "nope"),
        ],
    );
    let text = format!("{issues:#?}");
    let grace = issues
        .iter()
        .find(|i| i.key == "agent.shutdown_grace")
        .expect(&text);
    assert!(
        grace.message.contains("JOBWATCH__AGENT__SHUTDOWN_GRACE"),
        "{text}"
    );
    let attempts = issues
        .iter()
        .find(|i| i.key == "checks[0].poll.max_attempts")
        .expect(&text);
    assert!(
        attempts
            .message
            .contains("JOBWATCH__CHECKS__0__POLL__MAX_ATTEMPTS"),
        "{text}"
    );
    assert!(
        issues
            .iter()
            .any(|i| i.key == "JOBWATCH__CHECKS__7__TIMEOUT"),
        "{text}"
    );
    let listen = issues.iter().find(|i| i.key == "api.listen").expect(&text);
    assert!(listen.message.contains("JOBWATCH__API__LISTEN"), "{text}");
}

#[test]
fn environment_values_keep_their_text_and_win_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, "from-the-file").unwrap();
    let text = BK.replace(
        "scope_id = \"2\"",
        &format!(
            "scope_id = \"2\"\napp_secret_file = \"{}\"",
            secret_file.display()
        ),
    );
    // A secret of digits stays text, leading zeros included; the environment replaces
    // the file's app_secret_file (README: uncomment the example, export the secret).
    let config = load_str(&text, &[("JOBWATCH__PLATFORMS__BK__APP_SECRET", "007123")]).unwrap();
    let PlatformConfig::BkJob(bk) = &config.platforms["bk"] else {
        panic!("bk is bkjob")
    };
    use secrecy::ExposeSecret;
    assert_eq!(bk.app_secret.expose_secret(), "007123");
    let config = load_str(
        BK,
        &[
            ("JOBWATCH__PLATFORMS__BK__APP_SECRET", "x"),
            ("JOBWATCH__CHECKS__0__POLL__MAX_ATTEMPTS", "9"),
        ],
    )
    .unwrap();
    assert_eq!(config.checks[0].poll.max_attempts, Some(9));
}

#[test]
fn a_toml_syntax_error_names_key_and_line_and_never_quotes_a_secret() {
    for (line, secret) in [
        (
            "app_secret = \"hunter2-unterminated",
            "hunter2-unterminated",
        ),
        ("app_secret = hunter2unquoted", "hunter2unquoted"),
        (
            "app_secret = \"hunter2-then-junk\" junk",
            "hunter2-then-junk",
        ),
    ] {
        let text = BK.replace(
            "app_code = \"jobwatch\"",
            &format!("app_code = \"jobwatch\"\n{line}"),
        );
        let err = load_str(&text, &[]).unwrap_err().to_string();
        assert!(!err.contains(secret), "the secret shows: {err}");
        assert!(err.contains("platforms.bk.app_secret"), "{err}");
        assert!(err.contains("line 6"), "{err}");
    }
    let text = "[api]\ntoken = 123456\n";
    let err = load_str(text, &[]).unwrap_err().to_string();
    assert!(err.contains("api.token"), "{err}");
    assert!(!err.contains("123456"), "the secret shows: {err}");
}

/// The bk platform's secret, from the environment.
const APP: (&str, &str) = ("JOBWATCH__PLATFORMS__BK__APP_SECRET", "app-secret");

#[test]
fn the_store_is_sqlite_by_default_and_postgres_takes_its_password_from_outside() {
    let config = load_str(BK, &[APP]).unwrap();
    assert!(matches!(config.store.backend, StoreBackend::Sqlite));
    assert_eq!(config.store.lease, DEFAULT_LEASE);
    let text =
        format!("{BK}\n[store]\nurl = \"postgres://jobwatch@db.example.com:5432/jobwatch\"\n");
    let config = load_str(
        &text,
        &[APP, ("JOBWATCH__STORE__PASSWORD", "pg-hunter2-secret")],
    )
    .unwrap();
    let StoreBackend::Postgres { url, password } = &config.store.backend else {
        panic!("postgres expected")
    };
    assert_eq!(url, "postgres://jobwatch@db.example.com:5432/jobwatch");
    assert!(password.is_some());
    assert!(!format!("{config:?}").contains("pg-hunter2-secret"));

    // A password in the URL, another scheme, a lease out of range: each said with its key,
    // and the password never quoted.
    let bad = format!(
        "{BK}\n[store]\nurl = \"postgres://jobwatch:pw-in-url-42@db:5432/jobwatch\"\nlease = \"1s\"\n"
    );
    let issues = issues_of(&bad, &[APP]);
    let text = format!("{issues:?}");
    assert!(
        text.contains("store.url") && text.contains("must not hold a password"),
        "{text}"
    );
    assert!(text.contains("store.lease"), "{text}");
    assert!(!text.contains("pw-in-url-42"), "{text}");
    let issues = issues_of(
        &format!("{BK}\n[store]\nurl = \"mysql://db/jobwatch\"\n"),
        &[],
    );
    assert!(format!("{issues:?}").contains("use sqlite:// or postgres://"));
}

const SALT: &str = r#"
    [platforms.salt]
    kind = "salt"
    endpoints = ["https://salt-api.example.com:8000"]
    username = "jobwatch"
    eauth = "pam"

    [[checks]]
    name = "disk"
    platform = "salt"
    script = "df -h"
    hosts = ["web-01", "db.example.com"]
    account_alias = "nobody"
"#;

#[test]
fn a_salt_platform_takes_minion_ids_and_its_password_from_outside() {
    let config = load_str(
        SALT,
        &[("JOBWATCH__PLATFORMS__SALT__PASSWORD", "pam-Secret-Word-1")],
    )
    .unwrap();
    let PlatformConfig::Salt(salt) = &config.platforms["salt"] else {
        panic!("salt expected")
    };
    assert_eq!(salt.eauth, "pam");
    assert_eq!(salt.request_timeout, Duration::from_secs(10));
    let check = config.check("disk").unwrap();
    assert_eq!(check.hosts[0], Host::minion("web-01"));
    assert_eq!(check.hosts[1].to_string(), "db.example.com");
    assert!(!format!("{config:?}").contains("pam-Secret-Word-1"));
}

#[test]
fn salt_settings_problems_are_named() {
    let text = SALT
        .replace("eauth = \"pam\"", "eauth = \"auto\"\napp_code = \"x\"")
        .replace("\"web-01\"", "\"web 01\"")
        .replace(
            "script = \"df -h\"",
            "script = \"dir\"\nscript_language = \"bat\"",
        );
    let keys: Vec<String> = issues_of(&text, &[]).into_iter().map(|i| i.key).collect();
    for key in [
        "platforms.salt.eauth",
        "platforms.salt.app_code",
        "platforms.salt.password",
        "checks[0].hosts[0]",
        "checks[0].script_language",
    ] {
        assert!(keys.iter().any(|k| k == key), "{key} not in {keys:?}");
    }
    let bk_with_salt_keys = BK.replace("scope_id = \"2\"", "scope_id = \"2\"\neauth = \"pam\"");
    let keys: Vec<String> = issues_of(
        &bk_with_salt_keys,
        &[("JOBWATCH__PLATFORMS__BK__APP_SECRET", "x")],
    )
    .into_iter()
    .map(|i| i.key)
    .collect();
    assert_eq!(keys, ["platforms.bk.eauth"]);
}

#[test]
fn the_readme_salt_example_is_valid() {
    let readme = include_str!("../../README.md");
    let section = &readme[readme.find("## Salt").expect("a Salt section")..];
    let start = section.find("```toml\n").expect("a TOML example") + 8;
    let example = &section[start..start + section[start..].find("```").unwrap()];
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("salt_password");
    std::fs::write(&password, "pw-From-File-3\n").unwrap();
    let text = example.replace(
        "/etc/jobwatch/salt_password",
        &password.display().to_string(),
    );
    let config = load_str(&text, &[]).unwrap();
    let PlatformConfig::Salt(salt) = &config.platforms["salt"] else {
        panic!("salt expected")
    };
    use secrecy::ExposeSecret as _;
    assert_eq!(salt.password.expose_secret(), "pw-From-File-3");
    assert_eq!(config.check("disk-salt").unwrap().hosts.len(), 3);
}

#[test]
fn callbacks_need_a_public_url_and_slow_the_safety_net_only_where_they_are_on() {
    let env = [("JOBWATCH__PLATFORMS__BK__APP_SECRET", "x")];
    let with_callbacks = BK.replace("scope_id = \"2\"", "scope_id = \"2\"\ncallbacks = true");
    let keys: Vec<String> = issues_of(&with_callbacks, &env)
        .into_iter()
        .map(|i| i.key)
        .collect();
    assert_eq!(keys, ["platforms.bk.callbacks"]);
    let text = format!(
        "[callbacks]\npublic_url = \"https://jobwatch.example.com:9464\"\nkey = \"0123456789abcdef-key\"\n{with_callbacks}"
    );
    let config = load_str(&text, &env).unwrap();
    let check = config.check("disk").unwrap();
    assert_eq!(check.poll.safety_interval, Some(Duration::from_secs(300)));
    assert!(!format!("{config:?}").contains("0123456789abcdef-key"));
    // Without callbacks, no safety interval, and setting one is a mistake said by key.
    let config = load_str(BK, &env).unwrap();
    assert_eq!(config.check("disk").unwrap().poll.safety_interval, None);
    let stray = BK.replace(
        "max_attempts = 5",
        "max_attempts = 5\nsafety_interval = \"1m\"",
    );
    let keys: Vec<String> = issues_of(&stray, &env).into_iter().map(|i| i.key).collect();
    assert_eq!(keys, ["checks[0].poll.safety_interval"]);
    let bad = "[callbacks]\npublic_url = \"ftp://x\"\nlisten = \"nowhere\"\nkey = \"short\"\n";
    let keys: Vec<String> = issues_of(&format!("{bad}{BK}"), &env)
        .into_iter()
        .map(|i| i.key)
        .collect();
    for key in ["callbacks.public_url", "callbacks.listen", "callbacks.key"] {
        assert!(keys.iter().any(|k| k == key), "{key} not in {keys:?}");
    }
}

#[test]
fn api_tokens_have_roles_come_from_files_or_the_environment_and_never_show() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("viewer.token");
    std::fs::write(&file, "viewer-token-from-file\n").unwrap();
    let text = format!(
        "[api]\ntoken = \"legacy-admin-token\"\n[api.tokens.viewer]\nrole = \"read\"\ntoken_file = \"{}\"\n[api.tokens.prometheus]\nrole = \"metrics\"\n",
        file.display()
    );
    let env = [(
        "JOBWATCH__API__TOKENS__PROMETHEUS__TOKEN",
        "scrape-token-from-env",
    )];
    let config = load_str(&text, &env).unwrap();
    let tokens: Vec<(&str, Role)> = config
        .api
        .tokens
        .iter()
        .map(|t| (t.name.as_str(), t.role))
        .collect();
    assert_eq!(
        tokens,
        [
            ("token", Role::Admin),
            ("prometheus", Role::Metrics),
            ("viewer", Role::Read)
        ]
    );
    use secrecy::ExposeSecret as _;
    assert_eq!(
        config.api.tokens[2].secret.expose_secret(),
        "viewer-token-from-file"
    );
    assert!(config.api.metrics_guarded());
    let shown = format!("{:?}", config.api);
    for secret in [
        "legacy-admin-token",
        "viewer-token-from-file",
        "scrape-token-from-env",
    ] {
        assert!(!shown.contains(secret), "{shown}");
    }

    let bad = "[api]\ntoken = \"same-value-here\"\ntls_cert_file = \"/x.pem\"\n[api.tokens.a]\nrole = \"root\"\ntoken = \"x-token-value\"\n[api.tokens.b]\ntoken = \"y-token-value\"\n[api.tokens.c]\nrole = \"read\"\n[api.tokens.d]\nrole = \"run\"\ntoken = \"same-value-here\"\n";
    let err = load_str(bad, &[]).unwrap_err().to_string();
    for key in [
        "api.tokens.a.role",
        "api.tokens.b.role",
        "api.tokens.c.token",
        "api.tokens.d",
        "api.tls_key_file",
    ] {
        assert!(err.contains(key), "{key} missing in: {err}");
    }
    assert!(
        !err.contains("same-value-here") && !err.contains("x-token-value"),
        "{err}"
    );
}
