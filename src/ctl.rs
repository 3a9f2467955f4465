//! `jobwatch ctl`: a command line for a running daemon's API, as `amtool` is for
//! Alertmanager. It only speaks HTTP to `--server` (with `--token`); it reads no
//! configuration and no store.
//!
//! Exit codes: 0 done; 1 the server refused (4xx: its message is printed); 69 the server
//! could not be reached or failed (5xx); 78 a bad command line (clap's).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;

use crate::api::path_segment;

/// Exit code: the server refused the request.
pub const REFUSED: u8 = 1;
/// Exit code: the server could not be reached, or failed (sysexits `EX_UNAVAILABLE`).
pub const UNAVAILABLE: u8 = 69;

/// `jobwatch ctl` arguments.
#[derive(Debug, Args)]
pub struct CtlArgs {
    /// The daemon's base URL.
    #[arg(
        long,
        env = "JOBWATCH_SERVER",
        default_value = "http://127.0.0.1:9464",
        global = true
    )]
    pub server: String,
    /// An API token (better: `--token-file` or `JOBWATCH_TOKEN`).
    #[arg(long, env = "JOBWATCH_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// A file holding the API token.
    #[arg(long, env = "JOBWATCH_TOKEN_FILE", global = true)]
    pub token_file: Option<PathBuf>,
    /// A PEM file of CA certificates to trust besides the system's (a daemon serving HTTPS
    /// with a private CA or a self-signed certificate).
    #[arg(long, env = "JOBWATCH_CACERT", global = true)]
    pub cacert: Option<PathBuf>,
    /// `table` (for people) or `json` (the API's answer, for scripts).
    #[arg(long, short, value_enum, default_value_t = Format::Table, global = true)]
    pub output: Format,
    /// What to do.
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns.
    Table,
    /// The API's JSON, pretty-printed.
    Json,
}

/// `jobwatch ctl` subcommands.
#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// List checks or executions.
    Get {
        /// What to list.
        #[command(subcommand)]
        what: GetWhat,
    },
    /// One execution in full: header, hosts, conditions.
    Describe {
        /// What to describe.
        #[command(subcommand)]
        what: DescribeWhat,
    },
    /// One host's log of an execution (`0:10.0.0.1`, a host id, `localhost`, a minion id).
    Logs {
        /// The execution id.
        id: String,
        /// The host.
        host: String,
    },
    /// Start a configured check now (role `run`).
    Run {
        /// The check.
        check: String,
        /// Only these hosts (repeat the flag).
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// The script's parameters.
        #[arg(long)]
        params: Option<String>,
    },
    /// Ask the platform to stop an execution's job (role `admin`).
    Terminate {
        /// The execution id.
        id: String,
    },
    /// Silences (create and expire: role `admin`).
    Silence {
        /// What to do with silences.
        #[command(subcommand)]
        what: SilenceCommand,
    },
}

/// `get` targets.
#[derive(Debug, Subcommand)]
pub enum GetWhat {
    /// The check board: status, since, last success, next run, recent outcomes.
    Checks {
        /// Only rows with this status (`failed`, `succeeded`, `stuck`, `never`, …).
        #[arg(long)]
        status: Option<String>,
        /// Only checks on this platform.
        #[arg(long)]
        platform: Option<String>,
    },
    /// Executions, newest first.
    Executions {
        /// Only this check.
        #[arg(long)]
        check: Option<String>,
        /// `active`, `history`, `all` or one state (`failed`, `succeeded`, …).
        #[arg(long)]
        state: Option<String>,
        /// At most this many (1–1000).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

/// `describe` targets.
#[derive(Debug, Subcommand)]
pub enum DescribeWhat {
    /// One execution.
    Execution {
        /// Its id.
        id: String,
    },
}

/// `silence` subcommands.
#[derive(Debug, Subcommand)]
pub enum SilenceCommand {
    /// Create a silence: `jobwatch ctl silence add check=~"db-.*" --duration 2h --comment …`.
    Add {
        /// Label matchers (`name=value`, `name!=value`, `name=~regex`, `name!~regex`).
        #[arg(required = true)]
        matchers: Vec<String>,
        /// How long from the start (default 1h; or `--end`).
        #[arg(long, conflicts_with = "end")]
        duration: Option<String>,
        /// When it starts (RFC 3339; default now).
        #[arg(long)]
        start: Option<String>,
        /// When it ends (RFC 3339).
        #[arg(long)]
        end: Option<String>,
        /// Why (required).
        #[arg(long)]
        comment: String,
        /// Who (default: the token's name).
        #[arg(long)]
        author: Option<String>,
    },
    /// List silences.
    List {
        /// Only `active`, `pending` or `expired` ones.
        #[arg(long)]
        state: Option<String>,
    },
    /// Expire silences now.
    Expire {
        /// Their ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

/// Why a request did not give an answer.
#[derive(Debug)]
enum Failure {
    /// The server answered 4xx (its error message).
    Refused(u16, String),
    /// Not reached, or 5xx.
    Unavailable(String),
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Failure> {
        let text = self.call_text(method, path, body).await?;
        serde_json::from_str(&text)
            .map_err(|e| Failure::Unavailable(format!("the server's answer is not JSON: {e}")))
    }

    async fn call_text(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<String, Failure> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| {
            Failure::Unavailable(format!("cannot reach {}: {}", self.base, without_url(e)))
        })?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| {
            Failure::Unavailable(format!("the answer broke off: {}", without_url(e)))
        })?;
        if status < 400 {
            return Ok(text);
        }
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| text.chars().take(200).collect());
        if status >= 500 {
            Err(Failure::Unavailable(format!("HTTP {status}: {message}")))
        } else {
            Err(Failure::Refused(status, message))
        }
    }
}

fn without_url(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let _ = write!(text, ": {s}");
        source = s.source();
    }
    text
}

/// Runs one `ctl` command; what it prints goes to stdout, errors to stderr.
pub async fn run(args: CtlArgs) -> ExitCode {
    let token = match (&args.token, &args.token_file) {
        (Some(t), _) => Some(t.trim().to_owned()),
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(t) => Some(t.trim().to_owned()),
            Err(e) => {
                eprintln!("jobwatch ctl: cannot read {}: {e}", path.display());
                return ExitCode::from(crate::exit::CONFIG);
            }
        },
        (None, None) => None,
    };
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(30));
    if let Some(path) = &args.cacert {
        let certs = std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|pem| reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| e.to_string()));
        match certs {
            Ok(certs) if !certs.is_empty() => builder = builder.tls_certs_merge(certs),
            Ok(_) => {
                eprintln!("jobwatch ctl: {} holds no certificate", path.display());
                return ExitCode::from(crate::exit::CONFIG);
            }
            Err(e) => {
                eprintln!("jobwatch ctl: cannot read {}: {e}", path.display());
                return ExitCode::from(crate::exit::CONFIG);
            }
        }
    }
    let http = match builder.build() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("jobwatch ctl: {e}");
            return ExitCode::from(crate::exit::SOFTWARE);
        }
    };
    let client = Client {
        http,
        base: args.server.trim_end_matches('/').to_owned(),
        token,
    };
    match command(&client, &args.command, args.output).await {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(Failure::Refused(status, message)) => {
            eprintln!("jobwatch ctl: refused ({status}): {message}");
            ExitCode::from(REFUSED)
        }
        Err(Failure::Unavailable(message)) => {
            eprintln!("jobwatch ctl: {message}");
            ExitCode::from(UNAVAILABLE)
        }
    }
}

fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v {
            q.append_pair(k, v);
        }
    }
    let q = q.finish();
    if q.is_empty() { q } else { format!("?{q}") }
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

async fn command(client: &Client, command: &CtlCommand, format: Format) -> Result<String, Failure> {
    use reqwest::Method;
    let json = format == Format::Json;
    match command {
        CtlCommand::Get {
            what: GetWhat::Checks { status, platform },
        } => {
            let v = client
                .call(
                    Method::GET,
                    &format!(
                        "/v1/checks{}",
                        query(&[
                            ("status", status.as_deref()),
                            ("platform", platform.as_deref())
                        ])
                    ),
                    None,
                )
                .await?;
            Ok(if json { pretty(&v) } else { checks_table(&v) })
        }
        CtlCommand::Get {
            what:
                GetWhat::Executions {
                    check,
                    state,
                    limit,
                },
        } => {
            let limit = limit.to_string();
            let v = client
                .call(
                    Method::GET,
                    &format!(
                        "/v1/executions{}",
                        query(&[
                            ("check", check.as_deref()),
                            ("state", state.as_deref()),
                            ("limit", Some(&limit)),
                        ])
                    ),
                    None,
                )
                .await?;
            Ok(if json {
                pretty(&v)
            } else {
                executions_table(&v)
            })
        }
        CtlCommand::Describe {
            what: DescribeWhat::Execution { id },
        } => {
            let v = client
                .call(
                    Method::GET,
                    &format!("/v1/executions/{}", path_segment(id)),
                    None,
                )
                .await?;
            Ok(if json { pretty(&v) } else { describe(&v) })
        }
        CtlCommand::Logs { id, host } => {
            let text = client
                .call_text(
                    Method::GET,
                    &format!(
                        "/v1/executions/{}/hosts/{}/log",
                        path_segment(id),
                        path_segment(host)
                    ),
                    None,
                )
                .await?;
            Ok(if json {
                pretty(&serde_json::json!({ "execution_id": id, "host": host, "log": text }))
            } else {
                text
            })
        }
        CtlCommand::Run {
            check,
            hosts,
            params,
        } => {
            let mut body = serde_json::json!({ "check": check });
            if !hosts.is_empty() {
                body["hosts"] = serde_json::json!(hosts);
            }
            if let Some(p) = params {
                body["params"] = serde_json::json!(p);
            }
            let v = client
                .call(Method::POST, "/v1/executions", Some(body))
                .await?;
            Ok(if json {
                pretty(&v)
            } else {
                format!("{}\n", v["execution_id"].as_str().unwrap_or(""))
            })
        }
        CtlCommand::Terminate { id } => {
            let v = client
                .call(
                    Method::POST,
                    &format!("/v1/executions/{}/terminate", path_segment(id)),
                    None,
                )
                .await?;
            Ok(if json {
                pretty(&v)
            } else {
                format!(
                    "terminate asked for {} (by {}): {}\n",
                    v["execution_id"].as_str().unwrap_or(""),
                    v["terminated_by"].as_str().unwrap_or(""),
                    v["message"].as_str().unwrap_or("")
                )
            })
        }
        CtlCommand::Silence {
            what:
                SilenceCommand::Add {
                    matchers,
                    duration,
                    start,
                    end,
                    comment,
                    author,
                },
        } => {
            let mut body = serde_json::json!({ "matchers": matchers, "comment": comment });
            if let Some(s) = start {
                body["starts_at"] = serde_json::json!(s);
            }
            match (end, duration) {
                (Some(e), _) => body["ends_at"] = serde_json::json!(e),
                (None, d) => body["duration"] = serde_json::json!(d.as_deref().unwrap_or("1h")),
            }
            if let Some(a) = author {
                body["created_by"] = serde_json::json!(a);
            }
            let v = client
                .call(Method::POST, "/v1/silences", Some(body))
                .await?;
            Ok(if json {
                pretty(&v)
            } else {
                format!("{}\n", v["id"].as_str().unwrap_or(""))
            })
        }
        CtlCommand::Silence {
            what: SilenceCommand::List { state },
        } => {
            let v = client
                .call(
                    Method::GET,
                    &format!("/v1/silences{}", query(&[("state", state.as_deref())])),
                    None,
                )
                .await?;
            Ok(if json { pretty(&v) } else { silences_table(&v) })
        }
        CtlCommand::Silence {
            what: SilenceCommand::Expire { ids },
        } => {
            let mut expired = Vec::new();
            for id in ids {
                expired.push(
                    client
                        .call(
                            Method::DELETE,
                            &format!("/v1/silences/{}", path_segment(id)),
                            None,
                        )
                        .await?,
                );
            }
            Ok(if json {
                pretty(&Value::Array(expired))
            } else {
                expired
                    .iter()
                    .map(|v| format!("{} expired\n", v["id"].as_str().unwrap_or("")))
                    .collect()
            })
        }
    }
}

/// Aligned columns with a header; cells are cut at 60 characters.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let clip = |s: &str| -> String {
        let one_line = s.replace(['\n', '\t'], " ");
        if one_line.chars().count() > 60 {
            let mut c: String = one_line.chars().take(59).collect();
            c.push('…');
            c
        } else {
            one_line
        }
    };
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| clip(c)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        for (i, c) in cells.iter().enumerate() {
            if i == last {
                out.push_str(c);
            } else {
                let _ = write!(out, "{c:<w$}   ", w = widths[i]);
            }
        }
        out.push('\n');
    };
    line(&mut out, header.to_vec());
    for r in &rows {
        line(&mut out, r.iter().map(String::as_str).collect());
    }
    out
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `2026-11-30T10:00:00.123Z` as `2026-11-30 10:00:00`.
fn when(v: &Value) -> String {
    let t = s(v);
    if t.len() >= 19 {
        t[..19].replace('T', " ")
    } else {
        t
    }
}

fn checks_table(v: &Value) -> String {
    let rows: Vec<Vec<String>> = v["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let strip: String = c["recent"]
                .as_array()
                .into_iter()
                .flatten()
                .rev()
                .map(|o| match o["state"].as_str().unwrap_or("") {
                    "succeeded" => '+',
                    "failed" | "timed_out" | "lost" | "trigger_failed" => 'x',
                    "running" | "pending" => '>',
                    "skipped" => '.',
                    _ => '?',
                })
                .collect();
            vec![
                s(&c["name"]),
                s(&c["platform"]),
                s(&c["status"]),
                when(&c["status_since"]),
                when(&c["last_success_at"]),
                when(&c["next_run_at"]),
                c["success_ratio"]
                    .as_f64()
                    .map(|r| format!("{:.0}%", r * 100.0))
                    .unwrap_or_default(),
                c["firing"].as_array().map_or(0, Vec::len).to_string(),
                strip,
            ]
        })
        .collect();
    let mut out = table(
        &[
            "CHECK",
            "PLATFORM",
            "STATUS",
            "SINCE",
            "LAST SUCCESS",
            "NEXT RUN",
            "OK",
            "FIRING",
            "RECENT (oldest → newest)",
        ],
        &rows,
    );
    let t = &v["totals"];
    let _ = writeln!(
        out,
        "{} check(s) in all, {} with a firing alert; {} execution(s) active, {} kept",
        s(&t["checks"]),
        s(&t["firing"]),
        s(&t["active_executions"]),
        s(&t["history_executions"])
    );
    out
}

fn executions_table(v: &Value) -> String {
    let rows: Vec<Vec<String>> = v["executions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            vec![
                s(&e["execution_id"]),
                s(&e["check"]),
                s(&e["state"]),
                s(&e["origin"]),
                when(&e["started_at"]),
                e["duration_seconds"]
                    .as_f64()
                    .map(|d| format!("{d:.1}s"))
                    .unwrap_or_default(),
                s(&e["reason"]),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "EXECUTION",
            "CHECK",
            "STATE",
            "ORIGIN",
            "STARTED",
            "DURATION",
            "REASON",
        ],
        &rows,
    );
    if let Some(next) = v["next_cursor"].as_str() {
        let _ = writeln!(out, "(more: --output json shows next_cursor {next})");
    }
    out
}

fn describe(e: &Value) -> String {
    let mut out = String::new();
    let job = match (e["jid"].as_str(), e["job_instance_id"].as_u64()) {
        (Some(jid), _) => format!("jid {jid}"),
        (None, Some(id)) => format!("job instance {id}"),
        _ => "no job".into(),
    };
    for (k, val) in [
        ("Execution", s(&e["execution_id"])),
        ("Check", s(&e["check"])),
        (
            "Platform",
            format!("{} ({})", s(&e["platform"]), s(&e["platform_kind"])),
        ),
        ("Origin", s(&e["origin"])),
        ("Trigger", s(&e["trigger_status"])),
        ("Job", job),
        ("State", s(&e["state"])),
        ("Reason", s(&e["reason"])),
        ("Started", s(&e["started_at"])),
        ("Ended", s(&e["ended_at"])),
        (
            "Duration",
            e["duration_seconds"]
                .as_f64()
                .map(|d| format!("{d:.1}s"))
                .unwrap_or_default(),
        ),
        (
            "Polls",
            format!("{} ({} failed)", s(&e["polls"]), s(&e["failed_polls"])),
        ),
        ("Terminated by", s(&e["terminated_by"])),
    ] {
        if !val.is_empty() {
            let _ = writeln!(out, "{k:<14} {val}");
        }
    }
    let mut hosts: Vec<&Value> = e["hosts"].as_array().into_iter().flatten().collect();
    // Failing first, as on the page.
    hosts.sort_by_key(|h| h["outcome"] == "success");
    let rows: Vec<Vec<String>> = hosts
        .iter()
        .map(|h| {
            vec![
                s(&h["host"]),
                s(&h["outcome"]),
                format!("{} {}", s(&h["status"]), s(&h["status_label"]))
                    .trim()
                    .to_owned(),
                s(&h["exit_code"]),
                h["duration_seconds"]
                    .as_f64()
                    .map(|d| format!("{d:.1}s"))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    let _ = writeln!(out, "\nHosts ({}):", hosts.len());
    out.push_str(&table(
        &["HOST", "OUTCOME", "STATUS", "EXIT", "DURATION"],
        &rows,
    ));
    let conditions: Vec<String> = e["condition_log"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let at = |key: &str| {
                c[key]
                    .as_i64()
                    .map(|ms| when(&Value::String(crate::time::rfc3339_ms(ms))))
                    .unwrap_or_default()
            };
            let cleared = match at("cleared_ms") {
                t if t.is_empty() => "holds".to_owned(),
                t => format!("cleared {t}"),
            };
            format!(
                "{}  {}: {} ({cleared})",
                at("since_ms"),
                s(&c["kind"]),
                s(&c["detail"])
            )
        })
        .collect();
    if !conditions.is_empty() {
        let _ = writeln!(out, "\nConditions:");
        for c in conditions {
            let _ = writeln!(out, "  {c}");
        }
    }
    out
}

fn silences_table(v: &Value) -> String {
    let rows: Vec<Vec<String>> = v["silences"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|x| {
            vec![
                s(&x["id"]),
                s(&x["state"]),
                s(&x["matchers_text"]),
                when(&x["starts_at"]),
                when(&x["ends_at"]),
                s(&x["created_by"]),
                s(&x["comment"]),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "STATE",
            "MATCHERS",
            "STARTS",
            "ENDS",
            "CREATED BY",
            "COMMENT",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn tables_align_columns_and_cut_long_cells() {
        let t = super::table(
            &["A", "BB"],
            &[
                vec!["xxx".into(), "y".into()],
                vec!["z".into(), "w\nv".repeat(40)],
            ],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "A     BB");
        assert_eq!(lines[1], "xxx   y");
        assert!(lines[2].starts_with("z     w v"));
        assert!(lines[2].ends_with('…') && lines[2].chars().count() == 6 + 60);
    }
}
