//! `bkjob-emulator --listen 127.0.0.1:0 --scenario FILE`: serves the scenario until SIGINT or
//! SIGTERM. The first line on stdout is the bound address (`127.0.0.1:PORT`).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use bkjob_emulator::{Emulator, Scenario};
use clap::Parser;

/// A bk-job v3 API emulator (both doors) with simulated hosts and faults. For tests only.
#[derive(Debug, Parser)]
#[command(name = "bkjob-emulator", version, about)]
struct Args {
    /// Address to listen on; port 0 picks a free port. Repeat for several endpoints over
    /// the same platform state (outages name them by position).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: Vec<SocketAddr>,
    /// Scenario file (TOML, see README.md); without it: no hosts, default credentials.
    #[arg(long)]
    scenario: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("EMULATOR_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let scenario = match &args.scenario {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Scenario::from_toml(&text)
                .with_context(|| format!("invalid scenario {}", path.display()))?
        }
        None => Scenario::default(),
    };
    let emulator = Emulator::start_many(&args.listen, scenario)
        .await
        .with_context(|| format!("cannot listen on {:?}", args.listen))?;
    // Only the address goes to stdout (a harness reads one line and may close the pipe).
    let mut out = std::io::stdout().lock();
    for addr in emulator.addrs() {
        writeln!(out, "{addr}")?;
    }
    out.flush()?;
    drop(out);
    eprintln!(
        "bkjob-emulator: apigw endpoint {}  esb endpoint {}",
        emulator.apigw_url(),
        emulator.esb_url()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}
