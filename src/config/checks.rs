//! Validation of `[[checks]]` and their `[checks.poll]`: script, hosts, timeout, schedule,
//! fail_when, poll policy.

use super::*;

/// Parses one host: a CMDB id, `"<bk_cloud_id>:<ip>"` (IPv4), or `localhost`; on a Salt
/// platform (`salt`), a minion id.
pub(super) fn parse_host(raw: &RawHost, salt: bool) -> Result<Host, crate::model::HostParseError> {
    match raw {
        RawHost::Text(text) if salt => Host::parse_minion(text),
        RawHost::Id(id) if salt => Host::parse_minion(&id.to_string()),
        RawHost::Id(id) => Ok(Host::by_id(*id)),
        RawHost::Text(text) => Host::parse(text),
    }
}

pub(super) fn validate_check(
    issues: &mut Issues,
    key: &str,
    c: &RawCheck,
    platforms: &BTreeMap<String, RawPlatform>,
) -> Option<CheckConfig> {
    let before = issues.0.len();
    let name = issues.non_empty(format!("{key}.name"), &c.name);
    if let Some(n) = &name
        && !n
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'))
    {
        issues.add(
            format!("{key}.name"),
            format!("`{n}`: use letters, digits, '-', '_' and '.' only"),
        );
    }
    let platform = issues
        .required(format!("{key}.platform"), &c.platform)
        .cloned();
    let kind = platform.as_ref().and_then(|p| match platforms.get(p) {
        Some(raw) => raw.kind.clone(),
        None => {
            let known: Vec<&str> = platforms.keys().map(String::as_str).collect();
            issues.add(
                format!("{key}.platform"),
                format!("`{p}` is not a platform (known: {})", known.join(", ")),
            );
            None
        }
    });
    let script = match (&c.script, &c.script_file) {
        (Some(s), None) => Some(s.clone()),
        (None, Some(file)) => match std::fs::read_to_string(file) {
            Ok(s) => Some(s),
            Err(e) => {
                issues.add(
                    format!("{key}.script_file"),
                    format!("cannot read {}: {e}", file.display()),
                );
                None
            }
        },
        (Some(_), Some(_)) => {
            issues.add(
                format!("{key}.script"),
                "set either script or script_file, not both",
            );
            None
        }
        (None, None) => {
            issues.add(format!("{key}.script"), "required (or script_file)");
            None
        }
    };
    if script.as_deref().is_some_and(|s| s.trim().is_empty()) {
        issues.add(format!("{key}.script"), "must not be empty");
    }
    let language = match &c.script_language {
        None => Some(ScriptLanguage::Shell),
        Some(RawLanguage::Code(code)) => ScriptLanguage::from_code(*code).or_else(|| {
            issues.add(format!("{key}.script_language"), format!("{code} is not a script language code (1–5)"));
            None
        }),
        Some(RawLanguage::Name(name)) => ScriptLanguage::from_name(name)
            .or_else(|| name.trim().parse().ok().and_then(ScriptLanguage::from_code))
            .or_else(|| {
                issues.add(
                    format!("{key}.script_language"),
                    format!("`{name}` is not a script language: shell, bat, perl, python, powershell or 1–5"),
                );
                None
            }),
    };
    if c.script_param
        .as_ref()
        .is_some_and(|p| p.len() > MAX_SCRIPT_PARAM_BYTES)
    {
        issues.add(
            format!("{key}.script_param"),
            "longer than bk-job's 64 KiB limit",
        );
    }
    let mut hosts = Vec::new();
    if c.hosts.is_empty() {
        issues.add(format!("{key}.hosts"), "must list at least one host");
    }
    for (i, h) in c.hosts.iter().enumerate() {
        match parse_host(h, kind.as_deref() == Some("salt")) {
            Ok(host) => hosts.push(host),
            Err(e) => issues.add(format!("{key}.hosts[{i}]"), e.to_string()),
        }
    }
    match kind.as_deref() {
        Some("local") if hosts.iter().any(|h| !h.is_local()) => {
            issues.add(
                format!("{key}.hosts"),
                "the local platform runs only on \"localhost\"",
            );
        }
        Some("salt") => {
            if let Some(l) = language.filter(|l| l.interpreter().is_none()) {
                issues.add(
                    format!("{key}.script_language"),
                    format!(
                        "`{}` scripts do not run through Salt here: use shell, perl or python",
                        l.name()
                    ),
                );
            }
        }
        Some("bkjob") => {
            let with_id = hosts.iter().filter(|h| h.bk_host_id.is_some()).count();
            if with_id != 0 && with_id != hosts.len() {
                issues.add(
                    format!("{key}.hosts"),
                    "name every host by id or every host by \"<bk_cloud_id>:<ip>\": bk-job ignores ip_list next to host_id_list",
                );
            }
            if hosts.iter().any(Host::is_local) {
                issues.add(format!("{key}.hosts"), "\"localhost\" is for the local platform; name bk-job hosts by id or \"<bk_cloud_id>:<ip>\"");
            }
            if c.account_alias
                .as_deref()
                .is_none_or(|a| a.trim().is_empty())
            {
                issues.add(
                    format!("{key}.account_alias"),
                    "required for a bkjob platform (e.g. \"root\")",
                );
            }
        }
        _ => {}
    }
    let timeout = c.timeout.unwrap_or(Duration::from_secs(7200));
    if timeout < Duration::from_secs(1) || timeout > MAX_JOB_TIMEOUT {
        issues.add(
            format!("{key}.timeout"),
            "must be from 1s to 72h (bk-job's range)",
        );
    }
    let log_max_bytes = c.log_max_bytes.unwrap_or(64 * 1024);
    if log_max_bytes < 256 {
        issues.add(format!("{key}.log_max_bytes"), "must be at least 256");
    }
    let mut poll = validate_poll(issues, &format!("{key}.poll"), &c.poll);
    let callbacks = platform
        .as_ref()
        .and_then(|p| platforms.get(p))
        .is_some_and(|p| p.callbacks == Some(true));
    match (callbacks, c.poll.safety_interval) {
        (true, safety) => {
            let safety = safety.unwrap_or(super::policy::DEFAULT_SAFETY_INTERVAL);
            if safety < poll.interval {
                issues.add(
                    format!("{key}.poll.safety_interval"),
                    "must not be shorter than interval",
                );
            }
            poll.safety_interval = Some(safety);
        }
        (false, Some(_)) => issues.add(
            format!("{key}.poll.safety_interval"),
            "only for a check whose platform has callbacks = true",
        ),
        (false, None) => {}
    }
    let fail_when = match c.fail_when.as_deref().map(FailWhen::parse) {
        None => FailWhen::Any,
        Some(Ok(f)) => f,
        Some(Err(e)) => {
            issues.add(format!("{key}.fail_when"), e.to_string());
            FailWhen::Any
        }
    };
    let schedule = match (&c.schedule, c.every) {
        (Some(_), Some(_)) => {
            issues.add(
                format!("{key}.schedule"),
                "set either schedule or every, not both",
            );
            None
        }
        (Some(text), None) => match crate::schedule::Schedule::cron(text) {
            Ok(s) => Some(s),
            Err(e) => {
                issues.add(format!("{key}.schedule"), e.to_string());
                None
            }
        },
        (None, Some(period)) if period < Duration::from_secs(1) => {
            issues.add(format!("{key}.every"), "must be at least 1s");
            None
        }
        (None, Some(period)) => Some(crate::schedule::Schedule::Every(period)),
        (None, None) => None,
    };
    let mut maintenance = Vec::new();
    for (i, m) in c.maintenance.iter().enumerate() {
        let at = format!("{key}.maintenance[{i}]");
        let opens = match m.schedule.as_deref() {
            Some(text) => match crate::schedule::Schedule::cron(text) {
                Ok(s) => Some(s),
                Err(e) => {
                    issues.add(format!("{at}.schedule"), e.to_string());
                    None
                }
            },
            None => {
                issues.add(format!("{at}.schedule"), "missing: a cron expression (UTC)");
                None
            }
        };
        let duration = match m.duration {
            Some(d) if d >= Duration::from_secs(60) => Some(d),
            Some(_) => {
                issues.add(format!("{at}.duration"), "must be at least 1m");
                None
            }
            None => {
                issues.add(
                    format!("{at}.duration"),
                    "missing: how long it stays open, e.g. 2h",
                );
                None
            }
        };
        if let (Some(schedule), Some(duration)) = (opens, duration) {
            maintenance.push(crate::schedule::Maintenance { schedule, duration });
        }
    }
    if !c.maintenance.is_empty() && c.schedule.is_none() && c.every.is_none() {
        issues.add(
            format!("{key}.maintenance"),
            "only for a scheduled check (set schedule or every)",
        );
    }
    if c.run_on_start && schedule.is_none() && c.schedule.is_none() && c.every.is_none() {
        issues.add(
            format!("{key}.run_on_start"),
            "only for a scheduled check (set schedule or every)",
        );
    }
    if issues.0.len() > before {
        return None;
    }
    Some(CheckConfig {
        name: name?,
        platform: platform?,
        script: script?,
        language: language?,
        param: c.script_param.clone().filter(|p| !p.is_empty()),
        param_sensitive: c.param_sensitive,
        hosts,
        account_alias: c.account_alias.clone().map(|a| a.trim().to_owned()),
        timeout,
        log_max_bytes,
        poll,
        schedule,
        allow_overlap: c.allow_overlap,
        run_on_start: c.run_on_start,
        maintenance,
        fail_when,
    })
}

pub(super) fn validate_poll(issues: &mut Issues, key: &str, p: &RawPoll) -> PollPolicy {
    let d = PollPolicy::default();
    let interval = p.interval.unwrap_or(d.interval);
    let policy = PollPolicy {
        first_poll: p.first_poll.unwrap_or(d.first_poll),
        interval,
        backoff_factor: p.backoff_factor.unwrap_or(d.backoff_factor),
        max_interval: p.max_interval.unwrap_or(d.max_interval.max(interval)),
        jitter: p.jitter.unwrap_or(d.jitter),
        max_attempts: p.max_attempts,
        deadline_slack: p.deadline_slack.unwrap_or(d.deadline_slack),
        lost_after: p.lost_after.unwrap_or(d.lost_after),
        on_deadline: match p.on_deadline.as_deref() {
            None | Some("leave") => OnDeadline::Leave,
            Some("terminate") => OnDeadline::Terminate,
            Some(other) => {
                issues.add(
                    format!("{key}.on_deadline"),
                    format!("`{other}`: use \"leave\" or \"terminate\""),
                );
                OnDeadline::Leave
            }
        },
        terminate_grace: p.terminate_grace.unwrap_or(d.terminate_grace),
        detect: DetectPolicy {
            stuck_after: p.stuck_after.unwrap_or(d.detect.stuck_after),
            straggler_after: p.straggler_after.unwrap_or(d.detect.straggler_after),
            unreachable_after: p.unreachable_after.unwrap_or(d.detect.unreachable_after),
        },
        // Set by the check, which knows whether its platform calls back.
        safety_interval: None,
    };
    for (name, value) in [
        ("stuck_after", policy.detect.stuck_after),
        ("straggler_after", policy.detect.straggler_after),
        ("unreachable_after", policy.detect.unreachable_after),
    ] {
        if value.is_zero() {
            issues.add(format!("{key}.{name}"), "must be more than 0s");
        }
    }
    if policy.first_poll.is_zero() {
        issues.add(format!("{key}.first_poll"), "must be more than 0s");
    }
    if policy.interval.is_zero() {
        issues.add(format!("{key}.interval"), "must be more than 0s");
    }
    if policy.max_interval < policy.interval {
        issues.add(
            format!("{key}.max_interval"),
            "must not be less than interval",
        );
    }
    if !(1.0..=10.0).contains(&policy.backoff_factor) {
        issues.add(
            format!("{key}.backoff_factor"),
            "must be from 1 (fixed interval) to 10",
        );
    }
    if !(0.0..1.0).contains(&policy.jitter) {
        issues.add(
            format!("{key}.jitter"),
            "must be from 0 up to (not including) 1",
        );
    }
    if policy.max_attempts == Some(0) {
        issues.add(
            format!("{key}.max_attempts"),
            "must be at least 1 (or left out: no limit but the deadline)",
        );
    }
    if policy.lost_after == 0 {
        issues.add(format!("{key}.lost_after"), "must be at least 1");
    }
    policy
}
