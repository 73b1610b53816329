//! Logging set-up: `RAMPART_LOG` filter, `RAMPART_LOG_FORMAT` json|pretty (json when stdout
//! is not a terminal, which is what log shippers in containers expect).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; a bad filter falls back to `info` with a warning.
pub fn init(filter: Option<&str>, format: Option<&str>) {
    let (env_filter, bad_filter) = match filter.map(EnvFilter::try_new) {
        None => (EnvFilter::new("info"), None),
        Some(Ok(f)) => (f, None),
        Some(Err(e)) => (EnvFilter::new("info"), Some(e.to_string())),
    };
    let json = match format {
        Some(f) if f.eq_ignore_ascii_case("json") => true,
        Some(f) if f.eq_ignore_ascii_case("pretty") => false,
        _ => !std::io::stdout().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stdout);
    let installed = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init()
    } else {
        builder.compact().try_init()
    };
    if installed.is_ok()
        && let Some(error) = bad_filter
    {
        tracing::warn!(%error, "RAMPART_LOG is not a valid filter; using info");
    }
}

/// Warnings and errors only, as compact text on stderr: for commands that own stdout, such as
/// the demo's live view.
pub fn init_warnings_to_stderr() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new("warn"))
        .with_writer(std::io::stderr)
        .compact()
        .try_init();
}
