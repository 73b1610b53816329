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
    /// GET a URL and exit 0 on a 2xx answer (container health checks without curl).
    Probe {
        /// For example http://127.0.0.1:9901/healthz.
        url: String,
    },
}
