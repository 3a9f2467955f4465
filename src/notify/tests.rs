//! Receiver settings as each type reads them, through the configuration jobwatch loads: every
//! problem with its key, secrets never shown, documented defaults.

use std::time::Duration;

use super::*;
use crate::config::{ConfigError, load_text_checked};

fn load_str(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    load_text_checked(
        text,
        "test",
        env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        check_receiver,
    )
}

fn issues_of(text: &str, env: &[(&str, &str)]) -> Vec<crate::config::ConfigIssue> {
    match load_str(text, env) {
        Err(ConfigError::Invalid { issues, .. }) => issues,
        other => panic!("must be invalid: {:?}", other.map(|_| ())),
    }
}

#[test]
fn alert_problems_are_reported_with_their_keys_and_secrets_never_show() {
    let text = r#"
        [platforms.local]
        kind = "local"
        [alerts]
        redact = ["(unclosed"]
        [[alerts.rules]]
        events = ["exploded"]
        severity = "urgent"
        labels = { check = "x", "bad-name" = "y" }
        [[alerts.routes]]
        receiver = "nobody"
        [[alerts.routes]]
        receiver = "mail"
        match_re = { check = "db-(" }
        group_interval = "0s"
        [alerts.receivers.mail]
        type = "email"
        smtp_host = "smtp.example.com"
        tls = "sometimes"
        from = "not an address"
        url = "http://x"
        [alerts.receivers.hook]
        type = "webhook"
        url = "ftp://token-abc@x/"
        [alerts.receivers.bot]
        type = "dingtalk"
        url = "https://oapi.dingtalk.com/robot/send?access_token=tok-123456"
        [alerts.receivers.bot.templates]
        body = "{% for %}"
        [alerts.receivers.pager]
        type = "pagerduty"
    "#;
    let Err(ConfigError::Invalid { issues, .. }) = load_str(text, &[]) else {
        panic!("must be invalid")
    };
    let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
    for expected in [
        "alerts.redact[0]",
        "alerts.rules[0].events[0]",
        "alerts.rules[0].severity",
        "alerts.rules[0].labels.check",
        "alerts.rules[0].labels.bad-name",
        "alerts.routes[0].receiver",
        "alerts.routes[1].match_re.check",
        "alerts.routes[1].group_interval",
        "alerts.receivers.mail.tls",
        "alerts.receivers.mail.from",
        "alerts.receivers.mail.to",
        "alerts.receivers.mail.url",
        "alerts.receivers.hook.url",
        "alerts.receivers.bot.templates.body",
        "alerts.receivers.pager.type",
    ] {
        assert!(keys.contains(&expected), "missing {expected} in {keys:?}");
    }
    let all = format!("{issues:?}");
    assert!(
        !all.contains("token-abc") && !all.contains("tok-123456"),
        "{all}"
    );

    let ok = load_str(
        r#"
        [platforms.local]
        kind = "local"
        [alerts.receivers.bot]
        type = "dingtalk"
        url_file = "/nonexistent/jobwatch-test"
        [[alerts.routes]]
        receiver = "bot"
    "#,
        &[(
            "JOBWATCH__ALERTS__RECEIVERS__HOOK__URL",
            "https://hooks.example.com/T/B/s3cret-path",
        )],
    );
    let Err(ConfigError::Invalid { issues, .. }) = ok else {
        panic!("the unreadable url_file and the env-only receiver without type are issues")
    };
    let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
    assert!(keys.contains(&"alerts.receivers.bot.url_file"), "{keys:?}");
    assert!(keys.contains(&"alerts.receivers.hook.type"), "{keys:?}");
    assert!(!format!("{issues:?}").contains("s3cret-path"));
}

#[test]
fn alert_receivers_get_their_documented_defaults() {
    let config = load_str(
        r#"
        [platforms.local]
        kind = "local"
        [alerts.receivers.am]
        type = "alertmanager"
        urls = ["http://127.0.0.1:9093"]
        [alerts.receivers.mail]
        type = "email"
        smtp_host = "smtp.example.com"
        from = "jobwatch@example.com"
        to = ["ops@example.com"]
        username = "jobwatch"
        [[alerts.routes]]
        receiver = "am"
    "#,
        &[("JOBWATCH__ALERTS__RECEIVERS__MAIL__PASSWORD", "smtp-pw-991")],
    )
    .unwrap();
    let am = &config.alerts.receivers["am"];
    let mut issues = Issues::default();
    let Some(Settings::Alertmanager(s)) = Settings::read(am, &mut issues) else {
        panic!("alertmanager")
    };
    assert_eq!(
        (s.resend_delay, s.resolve_resend),
        (Duration::from_secs(60), Duration::from_secs(300))
    );
    assert_eq!(
        (am.timeout, am.retry_for, am.send_resolved),
        (Duration::from_secs(10), Duration::from_secs(86_400), true)
    );
    let Some(Settings::Email(mail)) = Settings::read(&config.alerts.receivers["mail"], &mut issues)
    else {
        panic!("email")
    };
    assert_eq!(
        (mail.smtp_port, mail.tls),
        (587, super::email::SmtpTls::StartTls)
    );
    let route = &config.alerts.routes[0];
    assert_eq!(route.group_by, ["alertname", "check"]);
    assert_eq!(
        (
            route.group_wait,
            route.group_interval,
            route.repeat_interval
        ),
        (
            Duration::from_secs(30),
            Duration::from_secs(300),
            Duration::from_secs(14_400)
        )
    );
    assert!(!format!("{config:?}").contains("smtp-pw-991"));
}

#[test]
fn smtp_refuses_a_password_over_plain_text_unless_told_so() {
    let mail = "[alerts.receivers.m]\ntype = \"email\"\nsmtp_host = \"127.0.0.1\"\ntls = \"none\"\nusername = \"u\"\nfrom = \"a@example.com\"\nto = [\"b@example.com\"]\n";
    let env = [("JOBWATCH__ALERTS__RECEIVERS__M__PASSWORD", "pw-9")];
    let issues = issues_of(mail, &env);
    assert!(
        issues
            .iter()
            .any(|i| i.key == "alerts.receivers.m.tls" && i.message.contains("unencrypted")),
        "{issues:#?}"
    );
    assert!(!format!("{issues:?}").contains("pw-9"));
    load_str(&format!("{mail}allow_plaintext_auth = true\n"), &env).unwrap();
    load_str(mail, &[]).unwrap();
}
