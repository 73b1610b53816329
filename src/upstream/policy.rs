//! The validated policy of one upstream: where it is, how it is matched, and every
//! resilience policy that applies to it. Plain data: `Clone + Debug + PartialEq`, no I/O, so
//! a reload can compare old and new policies and keep the live state of unchanged upstreams.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::breaker::policy::BreakerPolicy;
use crate::rate_limit::policy::RateLimitPolicy;
use crate::retry::policy::RetryPolicy;

/// Everything rampart needs to know about one upstream.
#[derive(Clone, Debug, PartialEq)]
pub struct UpstreamPolicy {
    /// `[a-z0-9_-]+`; the `upstream` label and the admin API key.
    pub name: String,
    /// One or more endpoints (at least one after validation).
    pub endpoints: Vec<EndpointPolicy>,
    /// Host header / absolute-form authority matches.
    pub hosts: Vec<HostMatch>,
    /// Normalised prefix (`/api`, never a trailing `/` except the root `/`).
    pub path_prefix: Option<String>,
    /// Remove `path_prefix` before forwarding.
    pub strip_prefix: bool,
    /// Dedicated listener: everything arriving there goes to this upstream.
    pub listen: Option<SocketAddr>,
    /// How an endpoint is chosen for each try.
    pub load_balancing: LoadBalancing,
    /// Protocol spoken to the endpoints.
    pub protocol: UpstreamProtocol,
    /// TLS settings for `https` endpoints.
    pub tls: TlsPolicy,
    /// Connect, request, per-try and idle timeouts.
    pub timeouts: TimeoutPolicy,
    /// Retry policy (attempts 1 when retries are off).
    pub retry: RetryPolicy,
    /// Token bucket; `None` when unlimited.
    pub rate_limit: Option<RateLimitPolicy>,
    /// Circuit breaker; `None` when `circuit_breaker: off`.
    pub circuit_breaker: Option<BreakerPolicy>,
    /// Per-route overrides, first match wins.
    pub routes: Vec<RoutePolicy>,
    /// Bulkhead: most requests in flight; `None` is uncapped.
    pub concurrency: Option<ConcurrencyPolicy>,
    /// Upstream that takes the traffic while this one's breaker is open.
    pub fallback: Option<String>,
    /// Active health checks.
    pub health_check: Option<HealthCheckPolicy>,
}

/// One endpoint of an upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointPolicy {
    /// `http` or `https` plus authority (host:port, port filled in from the scheme).
    pub url: http::Uri,
    /// Relative share of traffic (>= 1).
    pub weight: u32,
}

impl EndpointPolicy {
    /// True for `https` endpoints (TLS originated by rampart).
    pub fn is_tls(&self) -> bool {
        self.url.scheme() == Some(&http::uri::Scheme::HTTPS)
    }
}

/// A `hosts` entry: lowercase host, optional port (without one, any port matches).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostMatch {
    /// Lowercase host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// When set, only this port matches.
    pub port: Option<u16>,
}

/// Load-balancing strategies of SPEC §2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadBalancing {
    /// Weighted round robin.
    RoundRobin,
    /// Power of two choices over in-flight requests (weighted).
    LeastRequest,
    /// Weighted random.
    Random,
}

/// The HTTP version spoken to endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// `http` endpoints: HTTP/1.1; `https`: ALPN picks h2 or HTTP/1.1.
    Auto,
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 only (prior knowledge for `http` endpoints, ALPN h2 for `https`).
    Http2,
}

/// TLS origination settings (used only by `https` endpoints).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TlsPolicy {
    /// PEM bundle of trusted roots; `None`: the webpki roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain for mTLS (with `client_key`).
    pub client_cert: Option<PathBuf>,
    /// PEM private key for mTLS.
    pub client_key: Option<PathBuf>,
    /// SNI / verification name override.
    pub server_name: Option<String>,
}

/// The timeouts of SPEC §2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeoutPolicy {
    /// TCP (and TLS) connection set-up.
    pub connect: Duration,
    /// The whole exchange until response headers: all tries and backoff.
    pub request: Duration,
    /// One try, until response headers.
    pub per_try: Duration,
    /// Pooled upstream connection idle time.
    pub idle: Duration,
}

/// A per-route override inside an upstream; fields already merged over the upstream's.
#[derive(Clone, Debug, PartialEq)]
pub struct RoutePolicy {
    /// Matches on segment boundaries of the request path as the app sent it.
    pub path_prefix: Option<String>,
    /// Empty: any method.
    pub methods: Vec<http::Method>,
    /// The upstream's retry with this route's fields on top.
    pub retry: RetryPolicy,
    /// The upstream's timeouts with this route's fields on top.
    pub timeouts: TimeoutPolicy,
    /// The route's own bucket; `None`: the upstream's bucket applies.
    pub rate_limit: Option<RateLimitPolicy>,
}

/// Bulkhead settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConcurrencyPolicy {
    /// Requests in flight to the upstream; beyond -> 503 `overloaded`.
    pub max_requests: u32,
}

/// Active health-check settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheckPolicy {
    /// Path probed with GET on each endpoint.
    pub path: String,
    /// Time between probes.
    pub interval: Duration,
    /// Probe timeout.
    pub timeout: Duration,
    /// Consecutive failures that take an endpoint out of rotation.
    pub unhealthy_after: u32,
    /// Consecutive successes that bring it back.
    pub healthy_after: u32,
}
