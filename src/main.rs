//! The `jobwatch` command: a thin layer of clap over the library.

/// mimalloc: in the load harness glibc malloc/free were a quarter of the agent's CPU at
/// 20 000 polls/s, and fragmented under many concurrent executions.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod progress;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use jobwatch::config::{self, Config, ConfigError};
use jobwatch::tracker::{Execution, Observer, Silent};
use jobwatch::{exit, exit_code};
use tokio_util::sync::CancellationToken;

/// Run scripts on hosts through a job platform and follow every job to its true end.
#[derive(Debug, Parser)]
#[command(name = "jobwatch", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one check now, follow it to its end, report every host.
    Exec {
        /// Configuration file (TOML); without it the embedded sample configuration is used.
        #[arg(long, short, env = "JOBWATCH_CONFIG")]
        config: Option<PathBuf>,
        /// The check to run.
        #[arg(long)]
        check: String,
        /// Report format on stdout.
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
        /// Last log lines shown per host in the text report.
        #[arg(long, default_value_t = 10)]
        log_lines: usize,
    },
    /// Run the daemon: scheduled checks, HTTP API and status page, durable state; resumes
    /// unfinished executions at start; SIGTERM/SIGINT shut it down cleanly.
    Run {
        /// Configuration file (TOML); without it the embedded sample configuration is used.
        #[arg(long, short, env = "JOBWATCH_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Talk to a running daemon's API: checks, executions, logs, run, terminate, silences.
    Ctl(jobwatch::ctl::CtlArgs),
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a configuration and list its platforms and checks.
    Check {
        /// Configuration file (TOML); without it the embedded sample configuration is checked.
        #[arg(long, short, env = "JOBWATCH_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
}

/// Logs on stderr. Verbosity from `RUST_LOG` (as Rust programs do), else `JOBWATCH_LOG`,
/// else `default`; colours only when stderr is a terminal; `json`: one object a line.
fn init_logging(default: &str, format: config::LogFormat) {
    let filter = ["RUST_LOG", "JOBWATCH_LOG"]
        .iter()
        .find_map(|var| tracing_subscriber::EnvFilter::try_from_env(var).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match format {
        config::LogFormat::Json => builder.json().with_ansi(false).init(),
        config::LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

/// Loads the configuration; once it is read, logging starts with its format (a refused
/// configuration is told on stderr, plainly).
fn load(path: Option<&PathBuf>, default_level: &str) -> Result<Config, ExitCode> {
    match jobwatch::app::load_config(path.map(PathBuf::as_path), std::env::vars()) {
        Ok(c) => {
            init_logging(default_level, c.agent.log_format);
            Ok(c)
        }
        Err(e) => {
            let e: ConfigError = e;
            eprintln!("jobwatch: {e}");
            Err(ExitCode::from(exit::CONFIG))
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("jobwatch: cannot start the async runtime: {e}");
            ExitCode::from(exit::SOFTWARE)
        })
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(exit::CONFIG)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // The daemon tells what it does; the one-shot commands speak through their report.
    let default_level = if matches!(cli.command, Command::Run { .. }) {
        "info"
    } else {
        "error"
    };
    jobwatch::install_crypto_provider();
    match cli.command {
        Command::Ctl(args) => {
            init_logging(default_level, config::LogFormat::Text);
            match runtime() {
                Ok(rt) => rt.block_on(jobwatch::ctl::run(args)),
                Err(code) => code,
            }
        }
        Command::Config {
            command: ConfigCommand::Check { config },
        } => match load(config.as_ref(), default_level) {
            Ok(c) => {
                println!(
                    "configuration is valid: {} platform(s), {} check(s)",
                    c.platforms.len(),
                    c.checks.len()
                );
                for (name, p) in &c.platforms {
                    println!("  platform {name} ({})", p.kind());
                }
                for check in &c.checks {
                    println!(
                        "  check {} on {}: {} host(s), {}, timeout {}",
                        check.name,
                        check.platform,
                        check.hosts.len(),
                        check.language.name(),
                        humantime::format_duration(check.timeout)
                    );
                }
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Run { config } => {
            let (config, runtime) =
                match load(config.as_ref(), default_level).and_then(|c| Ok((c, runtime()?))) {
                    Ok(ready) => ready,
                    Err(code) => return code,
                };
            runtime.block_on(async {
                let shutdown = CancellationToken::new();
                tokio::spawn(interrupt(shutdown.clone(), "shutting down"));
                match jobwatch::app::run(config, shutdown).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("jobwatch: {e:#}");
                        ExitCode::from(exit::SOFTWARE)
                    }
                }
            })
        }
        Command::Exec {
            config,
            check,
            output,
            log_lines,
        } => {
            let (config, runtime) =
                match load(config.as_ref(), default_level).and_then(|c| Ok((c, runtime()?))) {
                    Ok(ready) => ready,
                    Err(code) => return code,
                };
            runtime.block_on(exec(config, &check, output, log_lines))
        }
    }
}

async fn exec(config: Config, check_name: &str, output: Output, log_lines: usize) -> ExitCode {
    let Some(check) = config.check(check_name) else {
        let names: Vec<&str> = config.checks.iter().map(|c| c.name.as_str()).collect();
        eprintln!(
            "jobwatch: no check named `{check_name}` (known: {})",
            names.join(", ")
        );
        return ExitCode::from(exit::CONFIG);
    };
    let platform = match jobwatch::build_platform(
        &config.platforms[&check.platform],
        &config.agent.data_dir,
    ) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("jobwatch: {e}");
            return ExitCode::from(exit::SOFTWARE);
        }
    };
    // `exec` takes no callbacks (it has no listener): its polls keep the normal pace, not
    // the daemon's safety interval.
    let mut check = check.clone();
    check.poll.safety_interval = None;
    let check = &check;
    let execution = Execution::new(check, &check.platform, platform);
    tokio::spawn(interrupt(
        execution.cancel.clone(),
        "asking the platform to stop the job…",
    ));
    let mut observer: Box<dyn Observer> = if std::io::stderr().is_terminal() {
        Box::new(progress::Bars::new(check.hosts.len()))
    } else if output == Output::Text {
        Box::new(progress::Lines::default())
    } else {
        Box::new(Silent)
    };
    let report = execution.run(observer.as_mut()).await;
    drop(observer);
    match output {
        Output::Json => match serde_json::to_string_pretty(&report) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("jobwatch: cannot encode the report: {e}");
                return ExitCode::from(exit::SOFTWARE);
            }
        },
        Output::Text => print!("{}", report.to_text(log_lines)),
    }
    ExitCode::from(exit_code(report.state))
}

/// Cancels `cancel` on the first SIGINT or SIGTERM.
async fn interrupt(cancel: CancellationToken, what: &str) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("jobwatch: interrupted; {what}");
    cancel.cancel();
}
