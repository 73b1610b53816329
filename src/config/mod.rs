//! Configuration: loads YAML (file, `$RAMPART_CONFIG`, `./rampart.yaml`, or the embedded
//! default), interpolates `${VAR}`, validates, and hands out plain policy types. Nothing
//! outside this module sees YAML, serde or unparsed strings.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::breaker::policy::BreakerPolicy;
use crate::rate_limit::policy::RateLimitPolicy;
use crate::retry::policy::RetryPolicy;
use crate::secret::Secret;
use crate::upstream::policy::{ConcurrencyPolicy, TimeoutPolicy, UpstreamPolicy};

mod env;
mod file;
pub mod json;
mod pem;
mod policies;
mod presets;
mod roundtrip;
mod shapes;
mod summary;
mod tree;
mod units;
mod upstream;
mod validate;

#[cfg(test)]
mod tests;

#[doc(hidden)]
pub use roundtrip::check_unit_round_trips;
pub use summary::summary;

/// The embedded default configuration (the repo's `config/rampart.yaml`), used when no file
/// is given, so `rampart` with no arguments is a working forward proxy.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../config/rampart.yaml");

/// Largest config text accepted; real configs are a few KiB, this only stops accidents.
const MAX_CONFIG_BYTES: usize = 4 << 20;

/// Where the configuration comes from, so logs and `validate` can say which one was used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// A YAML file on disk (also the one re-read on reload).
    File(PathBuf),
    /// [`EMBEDDED_DEFAULT`], compiled into the binary.
    Embedded,
}

impl ConfigSource {
    /// The file path, or "embedded default": for start-up logs and error lines.
    pub fn describe(&self) -> String {
        match self {
            ConfigSource::File(path) => path.display().to_string(),
            ConfigSource::Embedded => "embedded default".to_string(),
        }
    }
}

/// SPEC §1 resolution: `-c FILE`, else `$RAMPART_CONFIG` (non-empty), else `./rampart.yaml`
/// if it exists, else the embedded default. Inputs are passed in so tests need no real
/// environment or working directory.
pub fn resolve_source(cli: Option<&Path>, env_config: Option<&str>, cwd: &Path) -> ConfigSource {
    if let Some(path) = cli {
        return ConfigSource::File(path.to_path_buf());
    }
    if let Some(path) = env_config.filter(|p| !p.trim().is_empty()) {
        return ConfigSource::File(PathBuf::from(path));
    }
    let local = cwd.join("rampart.yaml");
    if local.is_file() {
        ConfigSource::File(local)
    } else {
        ConfigSource::Embedded
    }
}

/// Reads, interpolates, parses and validates a configuration. Relative TLS file paths are
/// resolved against the config file's directory (the working directory for the embedded one).
pub fn load(
    source: &ConfigSource,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let cwd = std::env::current_dir().unwrap_or_default();
    match source {
        ConfigSource::Embedded => parse_in(EMBEDDED_DEFAULT, lookup, &cwd),
        ConfigSource::File(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
            parse_in(&text, lookup, &dir.map_or(cwd, |d| d.to_path_buf()))
        }
    }
}

/// Parses and validates YAML text; relative TLS paths resolve against the working directory.
pub fn parse(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    parse_in(text, lookup, &std::env::current_dir().unwrap_or_default())
}

/// Parses a duration the way the YAML does (`250ms`, `5s`, `1m30s`), for command-line flags.
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    use units::Unit as _;
    units::DurationValue::parse(text).map(|d| d.0)
}

/// The real environment, for `${VAR}` interpolation in production (tests inject their own).
pub fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (missing, permissions, not UTF-8).
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The text is not a valid configuration: one syntax/type error, or every semantic error.
    #[error("{}", display_all(.0))]
    Invalid(Vec<FieldError>),
}

fn display_all(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// One problem, at a field path (`upstreams.payments.retry.attempts`) and, when the file
/// sets that field, its line and column; `Display` is the SPEC §2 one-line format.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// Dotted field path, `[i]` for list items; empty when the error is about the document.
    pub path: String,
    /// What is wrong, e.g. `expected a duration like "250ms", got "fast"`.
    pub message: String,
    /// 1-based line in the config file.
    pub line: Option<usize>,
    /// 1-based column in the config file.
    pub column: Option<usize>,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)?;
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, " (line {line}, column {column})"),
            (Some(line), None) => write!(f, " (line {line})"),
            _ => Ok(()),
        }
    }
}

/// The parser options: one-line errors, YAML 1.2 booleans only (`on`/`off`/`yes`/`no` stay
/// words), duplicate keys refused, and budgets far above any
/// real config that refuse alias bombs and deep nesting before they cost anything.
fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        with_snippet: false,
        strict_booleans: true,
        budget: serde_saphyr::budget! {
            max_depth: 24,
            // A 4 MiB file cannot hold more nodes than this; 10,000 upstreams need ~150k.
            max_events: 4_000_000,
            max_nodes: 2_000_000,
            max_aliases: 1_000,
            max_anchors: 1_000,
            max_documents: 1,
            max_total_scalar_bytes: MAX_CONFIG_BYTES,
            // A real anchor is a policy block of tens of events; an alias bomb records millions.
            max_recorded_anchor_events: 10_000,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 100_000,
            max_replay_stack_depth: 16,
        },
    }
}

fn parse_in(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    base_dir: &Path,
) -> Result<Config, ConfigError> {
    let invalid = |message: String| {
        ConfigError::Invalid(vec![FieldError {
            path: String::new(),
            message,
            line: None,
            column: None,
        }])
    };
    if text.len() > MAX_CONFIG_BYTES {
        return Err(invalid(format!(
            "config is larger than {MAX_CONFIG_BYTES} bytes"
        )));
    }
    let interpolated = env::interpolate(text, lookup).map_err(|problems| {
        let map = tree::SourceMap::build(text, yaml_options()).unwrap_or_default();
        let errors = problems.into_iter().map(|p| FieldError {
            path: map
                .path_at((p.line, p.column))
                .unwrap_or_default()
                .to_string(),
            message: p.message,
            line: Some(p.line),
            column: Some(p.column),
        });
        ConfigError::Invalid(errors.collect())
    })?;
    let map = tree::SourceMap::build(&interpolated.text, yaml_options()).unwrap_or_default();
    let restore = |mut e: FieldError| {
        if let (Some(line), Some(column)) = (e.line, e.column) {
            e.column = Some(interpolated.original_column(line, column));
        }
        e
    };
    let file = if map.is_empty_document() {
        file::FileConfig::default()
    } else {
        serde_saphyr::from_str_with_options(&interpolated.text, yaml_options())
            .map_err(|e| ConfigError::Invalid(vec![restore(tree::syntax_error(&e, &map))]))?
    };
    validate::validate(file, &map, base_dir)
        .map_err(|errors| ConfigError::Invalid(errors.into_iter().map(restore).collect()))
}

/// A validated configuration: everything the running proxy needs, nothing it must parse.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Main outbound listener (HTTP/1.1 and h2c).
    pub listen: SocketAddr,
    /// Admin listener and its token.
    pub admin: AdminPolicy,
    /// Tokio runtime sizing.
    pub runtime: RuntimePolicy,
    /// Client-side connection and header limits.
    pub limits: LimitsPolicy,
    /// Drain timings.
    pub shutdown: ShutdownPolicy,
    /// Forwarding for hosts no upstream names.
    pub passthrough: PassthroughPolicy,
    /// Which `CONNECT` targets may be tunnelled to.
    pub connect: ConnectPolicy,
    /// Every configured upstream, in file order, defaults merged in.
    pub upstreams: Vec<UpstreamPolicy>,
}

/// The admin listener.
#[derive(Clone, Debug, PartialEq)]
pub struct AdminPolicy {
    /// Address of /metrics, /healthz, /readyz and /admin/*.
    pub listen: SocketAddr,
    /// Bearer token for /admin/*; empty means open (loopback only).
    pub token: Secret,
}

/// Runtime sizing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuntimePolicy {
    /// Tokio worker threads; `None`: one per CPU.
    pub worker_threads: Option<usize>,
}

/// Limits that protect rampart from its clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitsPolicy {
    /// Client connections served at once; more wait in the accept backlog.
    pub max_connections: usize,
    /// Larger request heads get 431.
    pub max_request_header_bytes: usize,
    /// Most header fields in one request (HTTP/1.1); more get 431.
    pub max_request_headers: usize,
    /// A request head must be read completely within this time.
    pub header_read_timeout: Duration,
}

/// Graceful shutdown timings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShutdownPolicy {
    /// Keep serving this long after /readyz turns 503.
    pub drain_delay: Duration,
    /// Wait this long for in-flight requests, then exit 124.
    pub timeout: Duration,
}

/// `CONNECT` tunnels: a tunnel is raw TCP to any port, so without a port policy a proxy that
/// passes hosts through is an open relay to SSH, SMTP or databases (see docs/security.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectPolicy {
    /// Ports a tunnel may reach; a `hosts` entry that names its port also allows that port
    /// for that host.
    pub allowed_ports: Vec<u16>,
}

impl Default for ConnectPolicy {
    /// HTTPS only: what `HTTPS_PROXY` clients need.
    fn default() -> Self {
        Self {
            allowed_ports: vec![443],
        }
    }
}

/// Forwarding to authorities that no upstream names.
#[derive(Clone, Debug, PartialEq)]
pub struct PassthroughPolicy {
    /// Off: unmatched requests get 404 `no_route`.
    pub enabled: bool,
    /// Most distinct authorities with live state (LRU-bounded).
    pub max_hosts: usize,
    /// The `defaults` policies every implicit upstream gets.
    pub defaults: DefaultPolicies,
}

/// The `defaults` section resolved on its own: what passthrough authorities get.
#[derive(Clone, Debug, PartialEq)]
pub struct DefaultPolicies {
    /// Timeouts.
    pub timeouts: TimeoutPolicy,
    /// Retry.
    pub retry: RetryPolicy,
    /// Breaker; `None` when off.
    pub circuit_breaker: Option<BreakerPolicy>,
    /// Rate limit; `None` when unlimited.
    pub rate_limit: Option<RateLimitPolicy>,
    /// Bulkhead.
    pub concurrency: Option<ConcurrencyPolicy>,
}
