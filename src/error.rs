//! `ProxyError`: the closed set of answers rampart generates itself (SPEC §4). Every local
//! response comes from one variant, so codes, statuses and headers cannot drift apart.

use std::time::Duration;

use http::StatusCode;

/// Why rampart answered a request itself instead of passing an upstream response through.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// The token bucket is empty (after `max_wait` in wait mode).
    #[error("rate limit exceeded")]
    RateLimited(RateLimitInfo),
    /// The breaker is open (or forced open) and there is no fallback.
    #[error("circuit breaker is open")]
    CircuitOpen {
        /// Time until the breaker lets a probe through.
        retry_after: Duration,
    },
    /// `concurrency.max_requests` requests are already in flight.
    #[error("too many requests in flight to this upstream")]
    Overloaded,
    /// Every try failed to connect or was reset.
    #[error("upstream unavailable")]
    UpstreamUnavailable,
    /// The request deadline or the last per-try timeout hit.
    #[error("upstream timed out")]
    UpstreamTimeout,
    /// Nothing matched and passthrough is off.
    #[error("no upstream matches this request")]
    NoRoute,
    /// Unparseable or ambiguous target or head, or a bad `x-rampart-*` override value.
    #[error("{0}")]
    BadRequest(&'static str),
    /// A `CONNECT` target the policy does not allow (port or host); nothing was dialled.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The request head exceeds `limits.max_request_header_bytes`.
    #[error("request header fields too large")]
    RequestHeadersTooLarge,
}

/// What a 429 tells the client about the bucket (IETF httpapi ratelimit-headers draft).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimitInfo {
    /// Time until a token is available: `Retry-After` and `retry_after_ms`.
    pub retry_after: Duration,
    /// Tokens the bucket earns per window: `q` of `RateLimit-Policy` (the configured rate).
    pub quota: u32,
    /// The rate's period in seconds: `w` of `RateLimit-Policy`.
    pub window_secs: u64,
    /// Bucket capacity: the vendor parameter `rampart-burst` of `RateLimit-Policy`.
    pub burst: u32,
    /// Tokens left now: `r` of `RateLimit` (0 on a 429).
    pub remaining: u32,
}

impl ProxyError {
    /// The SPEC §4 code, also sent as `x-rampart-error` and in access logs.
    pub fn code(&self) -> &'static str {
        match self {
            ProxyError::RateLimited(_) => "rate_limited",
            ProxyError::CircuitOpen { .. } => "circuit_open",
            ProxyError::Overloaded => "overloaded",
            ProxyError::UpstreamUnavailable => "upstream_unavailable",
            ProxyError::UpstreamTimeout => "upstream_timeout",
            ProxyError::NoRoute => "no_route",
            ProxyError::BadRequest(_) => "bad_request",
            ProxyError::Forbidden(_) => "forbidden",
            ProxyError::RequestHeadersTooLarge => "request_headers_too_large",
        }
    }

    /// The status SPEC §4 assigns to the code.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::CircuitOpen { .. } | ProxyError::Overloaded => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProxyError::UpstreamUnavailable => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::Forbidden(_) => StatusCode::FORBIDDEN,
            ProxyError::RequestHeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        }
    }

    /// How long the client should wait before trying again, when rampart knows.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProxyError::RateLimited(info) => Some(info.retry_after),
            ProxyError::CircuitOpen { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

/// Whole seconds rounded up, as `Retry-After` needs (never 0 for a positive wait).
pub fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}
