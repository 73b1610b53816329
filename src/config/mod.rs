//! Configuration: loads YAML (file, `$RAMPART_CONFIG`, `./rampart.yaml`, or the embedded
//! default), interpolates `${VAR}`, validates, and hands out plain policy types. Nothing
//! outside this module sees YAML, serde or unparsed strings.

use std::net::SocketAddr;
use std::time::Duration;

use crate::breaker::policy::BreakerPolicy;
use crate::rate_limit::policy::RateLimitPolicy;
use crate::retry::policy::RetryPolicy;
use crate::secret::Secret;
use crate::upstream::policy::{ConcurrencyPolicy, TimeoutPolicy, UpstreamPolicy};

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
