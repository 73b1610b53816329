//! The `rampart` binary: CLI → library → exit code (0 clean, 1 bad config or start-up
//! failure, 124 shutdown timed out with requests in flight).

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use rampart::app::{self, Exit};
use rampart::cli::{Cli, Command};
use rampart::config::{self, Config, ConfigError, ConfigSource};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(cli.config.as_deref()),
        Command::Validate => validate(cli.config.as_deref()),
        Command::Probe { url } => probe(&url),
        Command::Demo { duration, rate } => demo(duration, rate),
    }
}

fn load(cli_path: Option<&Path>) -> (ConfigSource, Result<Config, ConfigError>) {
    let cwd = std::env::current_dir().unwrap_or_default();
    let env_path = std::env::var("RAMPART_CONFIG").ok();
    let source = config::resolve_source(cli_path, env_path.as_deref(), &cwd);
    let loaded = config::load(&source, &config::env_lookup);
    (source, loaded)
}

/// Prints a config error: one line per problem, prefixed with where the config came from.
fn report(source: &ConfigSource, error: &ConfigError) {
    match error {
        ConfigError::Invalid(errors) => {
            for e in errors {
                eprintln!("rampart: {}: {e}", source.describe());
            }
            eprintln!(
                "rampart: {} error(s) in {}",
                errors.len(),
                source.describe()
            );
        }
        other => eprintln!("rampart: {other}"),
    }
}

fn validate(cli_path: Option<&Path>) -> ExitCode {
    match load(cli_path) {
        (source, Ok(config)) => {
            use std::io::Write;
            let text = format!("{}: valid\n{}", source.describe(), config::summary(&config));
            // A reader that stops early (`| head`) is not an error worth a panic.
            match std::io::stdout().lock().write_all(text.as_bytes()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    eprintln!("rampart: cannot print the summary: {e}");
                    ExitCode::FAILURE
                }
                _ => ExitCode::SUCCESS,
            }
        }
        (source, Err(e)) => {
            report(&source, &e);
            ExitCode::FAILURE
        }
    }
}

fn run(cli_path: Option<&Path>) -> ExitCode {
    rampart::telemetry::init(
        std::env::var("RAMPART_LOG").ok().as_deref(),
        std::env::var("RAMPART_LOG_FORMAT").ok().as_deref(),
    );
    let (source, config) = match load(cli_path) {
        (source, Ok(config)) => (source, config),
        (source, Err(e)) => {
            report(&source, &e);
            return ExitCode::FAILURE;
        }
    };
    // One worker: a current-thread runtime, with no work-stealing queues and no cross-thread
    // wake-ups, which is cheaper per request than a one-worker multi-thread pool.
    let mut runtime = match config.runtime.worker_threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            if let Some(n) = n {
                builder.worker_threads(n);
            }
            builder
        }
    };
    runtime.enable_all();
    let runtime = match runtime.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rampart: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(config = %source.describe(), version = env!("CARGO_PKG_VERSION"), "starting");
    let code = runtime.block_on(async move {
        // Before serving: a signal that arrives once the listeners are up must drain or
        // reload, not kill the process with the default action.
        let signals = match rampart::shutdown::Signals::install() {
            Ok(signals) => signals,
            Err(e) => {
                eprintln!("rampart: cannot install signal handlers: {e}");
                return ExitCode::FAILURE;
            }
        };
        let app = match app::start(config, Some(source)).await {
            Ok(app) => app,
            Err(e) => {
                eprintln!("rampart: {e}");
                return ExitCode::FAILURE;
            }
        };
        tokio::spawn(signals.watch(app.shutdown_trigger(), app.reloader().clone()));
        match app.wait().await {
            Exit::Clean => ExitCode::SUCCESS,
            Exit::TimedOut => ExitCode::from(124),
        }
    });
    runtime.shutdown_timeout(Duration::from_millis(200));
    code
}

fn demo(duration: Duration, rate: u32) -> ExitCode {
    use std::io::IsTerminal;
    // The live view owns stdout.
    rampart::telemetry::init_warnings_to_stderr();
    let options = rampart::demo::DemoOptions {
        duration,
        rate,
        tty: std::io::stdout().is_terminal(),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rampart demo: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(rampart::demo::run(options, &mut std::io::stdout()));
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rampart demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn probe(url: &str) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let result = match runtime {
        Ok(rt) => rt.block_on(rampart::probe::probe(url)),
        Err(e) => Err(e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rampart probe: {e}");
            ExitCode::FAILURE
        }
    }
}
