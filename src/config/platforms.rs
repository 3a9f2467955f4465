//! Validation of `[platforms.<name>]`: the local host, a bk-job platform (door, endpoints,
//! credentials, flow control) or a Salt platform (salt-api endpoints, eauth credentials, the
//! same flow control).

use super::*;

pub(super) fn validate_platform(
    issues: &mut Issues,
    name: &str,
    p: &RawPlatform,
) -> Option<PlatformConfig> {
    let key = format!("platforms.{name}");
    match p.kind.as_deref() {
        Some("local") => {
            let remote_only = [
                ("endpoints", p.endpoints.is_some()),
                ("door", p.door.is_some()),
                ("app_code", p.app_code.is_some()),
                ("app_secret", p.app_secret.is_some()),
                ("app_secret_file", p.app_secret_file.is_some()),
                ("username", p.username.is_some()),
                ("scope_type", p.scope_type.is_some()),
                ("scope_id", p.scope_id.is_some()),
                ("request_timeout", p.request_timeout.is_some()),
                (
                    "max_concurrent_requests",
                    p.max_concurrent_requests.is_some(),
                ),
                (
                    "max_requests_per_second",
                    p.max_requests_per_second.is_some(),
                ),
                ("max_submits_per_second", p.max_submits_per_second.is_some()),
                (
                    "endpoint_failures_before_cooldown",
                    p.endpoint_failures_before_cooldown.is_some(),
                ),
                ("endpoint_cooldown", p.endpoint_cooldown.is_some()),
            ];
            for (field, set) in remote_only {
                if set {
                    issues.add(
                        format!("{key}.{field}"),
                        "only for kind = \"bkjob\" or \"salt\"",
                    );
                }
            }
            for (field, set) in salt_fields(p) {
                if set {
                    issues.add(format!("{key}.{field}"), "only for kind = \"salt\"");
                }
            }
            if p.callbacks.is_some() {
                issues.add(format!("{key}.callbacks"), "only for kind = \"bkjob\"");
            }
            Some(PlatformConfig::Local)
        }
        Some("bkjob") => {
            for (field, set) in salt_fields(p) {
                if set {
                    issues.add(format!("{key}.{field}"), "only for kind = \"salt\"");
                }
            }
            validate_bkjob(issues, &key, name, p).map(|s| PlatformConfig::BkJob(Box::new(s)))
        }
        Some("salt") => {
            validate_salt(issues, &key, name, p).map(|s| PlatformConfig::Salt(Box::new(s)))
        }
        Some(other) => {
            issues.add(
                format!("{key}.kind"),
                format!("`{other}` is not a platform kind: use \"bkjob\", \"salt\" or \"local\""),
            );
            None
        }
        None => {
            issues.add(
                format!("{key}.kind"),
                format!(
                    "required: \"bkjob\", \"salt\" or \"local\" (note: JOBWATCH__PLATFORMS__{}__* environment variables define this platform too)",
                    name.to_uppercase()
                ),
            );
            None
        }
    }
}

pub(super) fn validate_bkjob(
    issues: &mut Issues,
    key: &str,
    name: &str,
    p: &RawPlatform,
) -> Option<BkJobSettings> {
    let before = issues.0.len();
    let endpoints = endpoints(issues, key, p);
    let door = match p.door.as_deref().unwrap_or("apigw") {
        "apigw" => Some(Door::Apigw),
        "esb" => Some(Door::Esb),
        other => {
            issues.add(
                format!("{key}.door"),
                format!("`{other}` is not a door: use \"apigw\" or \"esb\""),
            );
            None
        }
    };
    let app_code = issues.non_empty(format!("{key}.app_code"), &p.app_code);
    let app_secret = issues.secret(key, "app_secret", &p.app_secret, &p.app_secret_file);
    if p.app_secret.is_none() && p.app_secret_file.is_none() {
        issues.add(
            format!("{key}.app_secret"),
            format!(
                "required: set app_secret_file, or JOBWATCH__PLATFORMS__{}__APP_SECRET",
                name.to_uppercase()
            ),
        );
    }
    let username = issues.non_empty(format!("{key}.username"), &p.username);
    let scope_type = p.scope_type.clone().unwrap_or_else(|| "biz".into());
    if !matches!(scope_type.as_str(), "biz" | "biz_set") {
        issues.add(
            format!("{key}.scope_type"),
            format!("`{scope_type}` is not a scope type: use \"biz\" or \"biz_set\""),
        );
    }
    let scope_id = issues.non_empty(format!("{key}.scope_id"), &p.scope_id);
    let (request_timeout, flow) = flow(issues, key, p);
    if issues.0.len() > before {
        return None;
    }
    Some(BkJobSettings {
        name: name.to_owned(),
        endpoints,
        door: door?,
        app_code: app_code?,
        app_secret: app_secret?,
        username: username?,
        scope_type,
        scope_id: scope_id?,
        request_timeout,
        flow,
        callbacks: p.callbacks.unwrap_or(false),
    })
}

/// The salt-only fields and whether each is set.
fn salt_fields(p: &RawPlatform) -> [(&'static str, bool); 4] {
    [
        ("events", p.events.is_some()),
        ("password", p.password.is_some()),
        ("password_file", p.password_file.is_some()),
        ("eauth", p.eauth.is_some()),
    ]
}

/// `endpoints`: at least one http(s) URL.
fn endpoints(issues: &mut Issues, key: &str, p: &RawPlatform) -> Vec<Url> {
    let mut endpoints = Vec::new();
    match &p.endpoints {
        None => issues.add(format!("{key}.endpoints"), "required: a list of base URLs"),
        Some(list) if list.is_empty() => issues.add(
            format!("{key}.endpoints"),
            "must list at least one base URL",
        ),
        Some(list) => {
            for (i, e) in list.iter().enumerate() {
                match Url::parse(e.trim()) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                        endpoints.push(u)
                    }
                    Ok(_) => issues.add(
                        format!("{key}.endpoints[{i}]"),
                        "must be an http:// or https:// URL",
                    ),
                    Err(err) => {
                        issues.add(format!("{key}.endpoints[{i}]"), format!("not a URL: {err}"))
                    }
                }
            }
        }
    }
    endpoints
}

/// `request_timeout` (default 10 s) and the flow control of the endpoints.
fn flow(issues: &mut Issues, key: &str, p: &RawPlatform) -> (Duration, FlowSettings) {
    let request_timeout = p.request_timeout.unwrap_or(Duration::from_secs(10));
    let d = FlowSettings::default();
    let flow = FlowSettings {
        max_concurrent: p.max_concurrent_requests.unwrap_or(d.max_concurrent),
        max_per_second: p.max_requests_per_second.unwrap_or(d.max_per_second),
        max_submits_per_second: p.max_submits_per_second.unwrap_or(d.max_submits_per_second),
        failures_before_cooldown: p
            .endpoint_failures_before_cooldown
            .unwrap_or(d.failures_before_cooldown),
        cooldown: p.endpoint_cooldown.unwrap_or(d.cooldown),
    };
    for (field, zero) in [
        ("max_concurrent_requests", flow.max_concurrent == 0),
        ("max_requests_per_second", flow.max_per_second == 0),
        ("max_submits_per_second", flow.max_submits_per_second == 0),
        (
            "endpoint_failures_before_cooldown",
            flow.failures_before_cooldown == 0,
        ),
    ] {
        if zero {
            issues.add(format!("{key}.{field}"), "must be at least 1");
        }
    }
    if request_timeout.is_zero() {
        issues.add(format!("{key}.request_timeout"), "must be more than 0s");
    }
    (request_timeout, flow)
}

pub(super) fn validate_salt(
    issues: &mut Issues,
    key: &str,
    name: &str,
    p: &RawPlatform,
) -> Option<SaltSettings> {
    let before = issues.0.len();
    for (field, set) in [
        ("door", p.door.is_some()),
        ("app_code", p.app_code.is_some()),
        ("app_secret", p.app_secret.is_some()),
        ("app_secret_file", p.app_secret_file.is_some()),
        ("scope_type", p.scope_type.is_some()),
        ("scope_id", p.scope_id.is_some()),
        ("callbacks", p.callbacks.is_some()),
    ] {
        if set {
            issues.add(format!("{key}.{field}"), "only for kind = \"bkjob\"");
        }
    }
    let endpoints = endpoints(issues, key, p);
    let username = issues.non_empty(format!("{key}.username"), &p.username);
    let password = issues.secret(key, "password", &p.password, &p.password_file);
    if p.password.is_none() && p.password_file.is_none() {
        issues.add(
            format!("{key}.password"),
            format!(
                "required: set password_file, or JOBWATCH__PLATFORMS__{}__PASSWORD",
                name.to_uppercase()
            ),
        );
    }
    let eauth = issues.non_empty(format!("{key}.eauth"), &p.eauth);
    if eauth.as_deref() == Some("auto") {
        issues.add(
            format!("{key}.eauth"),
            "`auto` accepts any password for any user: use pam, ldap or sharedsecret",
        );
    }
    let (request_timeout, flow) = flow(issues, key, p);
    if issues.0.len() > before {
        return None;
    }
    Some(SaltSettings {
        name: name.to_owned(),
        endpoints,
        username: username?,
        password: password?,
        eauth: eauth?,
        request_timeout,
        flow,
        events: p.events.unwrap_or(false),
    })
}
