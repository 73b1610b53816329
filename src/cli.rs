//! Command-line interface (SPEC §1).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// rampart: a sidecar resilience proxy.
#[derive(Debug, Parser)]
#[command(name = "rampart", version, about, long_about = None)]
pub struct Cli {
    /// Config file (else $RAMPART_CONFIG, else ./rampart.yaml, else the embedded default).
    #[arg(short = 'c', long = "config", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do; `run` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy.
    Run,
    /// Parse and validate the config; print a summary, or every error (exit 1).
    Validate,
    /// A one-minute tour: local flaky upstreams, a proxy, live breaker and rate-limit state.
    Demo {
        /// How long the demo runs (`30s`, `1m`); the flaky upstream fails from 20 % to 50 % of it.
        #[arg(long, default_value = "40s", value_parser = demo_duration)]
        duration: std::time::Duration,
        /// Requests per second sent to each of the three upstreams.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
        rate: u32,
    },
    /// GET a URL and exit 0 on a 2xx answer (container health checks without curl).
    Probe {
        /// For example http://127.0.0.1:9901/healthz.
        url: String,
    },
}

/// `--duration` for the demo: a YAML-style duration of at least one second.
fn demo_duration(text: &str) -> Result<std::time::Duration, String> {
    match crate::config::parse_duration(text) {
        Some(d) if d >= std::time::Duration::from_secs(1) => Ok(d),
        Some(_) => Err("the demo needs at least 1s".into()),
        None => Err(format!("expected a duration like \"30s\", got \"{text}\"")),
    }
}
