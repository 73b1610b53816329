//! The validated `rate_limit` policy of an upstream or route: plain data, no I/O.

use std::path::PathBuf;
use std::time::Duration;

use crate::secret::Secret;

/// A token bucket applied once per request (never per try).
#[derive(Clone, Debug, PartialEq)]
pub struct RateLimitPolicy {
    /// Token refill rate.
    pub rate: Rate,
    /// Bucket capacity (>= 1).
    pub burst: u32,
    /// Reject at once, or wait for a token up to a bound.
    pub mode: LimitMode,
    /// Count and log what would be limited; limit nothing.
    pub dry_run: bool,
    /// One bucket for the upstream, or one per key.
    pub key: RateLimitKey,
    /// A bucket shared by every replica, kept in Redis.
    pub global: Option<GlobalLimitPolicy>,
}

/// `N` tokens per `period` (`100/s`, `6000/m`, `10/h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Tokens added per period (> 0).
    pub tokens: u32,
    /// The period: one second, minute or hour.
    pub period: Duration,
}

impl Rate {
    /// Time to earn one token.
    pub fn interval(&self) -> Duration {
        self.period / self.tokens.max(1)
    }

    /// Tokens per second, for headers and summaries.
    pub fn per_second(&self) -> f64 {
        f64::from(self.tokens) / self.period.as_secs_f64()
    }
}

/// What happens when the bucket is empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitMode {
    /// 429 at once.
    Reject,
    /// Wait for a token when the wait is at most `max_wait`, else 429 at once.
    Wait {
        /// Longest wait a request may be held for.
        max_wait: Duration,
    },
}

/// How requests are grouped into buckets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RateLimitKey {
    /// One bucket for everything.
    None,
    /// One bucket per client IP address.
    ClientIp,
    /// One bucket per value of this header; requests without it share one bucket.
    Header(http::HeaderName),
}

/// A Redis-backed bucket shared by every replica.
#[derive(Clone, Debug, PartialEq)]
pub struct GlobalLimitPolicy {
    /// `redis://` or `rediss://` URL; may carry a password, hence secret.
    pub redis_url: Secret,
    /// What to decide while Redis is unreachable or slow.
    pub on_error: OnRedisError,
    /// Trust and identity for a `rediss://` URL.
    pub tls: RedisTlsPolicy,
}

/// TLS material for `rediss://`, as validated paths (read when the limiter is built). All
/// `None`: the webpki roots and no client certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RedisTlsPolicy {
    /// PEM bundle of the roots that may sign the Redis server's certificate; replaces the
    /// webpki roots (a private Redis usually has a private CA).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain, for a Redis with `tls-auth-clients yes` (with
    /// `client_key`).
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    pub client_key: Option<PathBuf>,
}

/// Fallback when the global limiter cannot reach Redis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnRedisError {
    /// Decide with this replica's local bucket.
    Local,
    /// Admit the request.
    Allow,
    /// Refuse the request with 429.
    Deny,
}
