//! One endpoint's live state: where it is, its weight, and counters the balancer reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use http::uri::{Authority, Scheme};

use crate::upstream::policy::EndpointPolicy;
use crate::upstream::pool::EndpointPool;

/// A live endpoint. Counters are atomics: the balancer reads them on every try.
#[derive(Debug)]
pub struct Endpoint {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// `host:port` (port always present after validation).
    pub authority: Authority,
    /// The URL as configured, for logs and the admin API.
    pub url: String,
    /// Relative share of traffic.
    pub weight: u32,
    /// Its pooled connections.
    pub pool: Arc<EndpointPool>,
    in_flight: AtomicU32,
    /// Cleared by active health checks (and endpoint-scoped breakers) to leave rotation.
    healthy: AtomicBool,
}

impl Endpoint {
    /// Builds the live endpoint from its policy; idle connections close after `idle`.
    pub fn new(policy: &EndpointPolicy, idle: Duration) -> Self {
        let scheme = policy.url.scheme().cloned().unwrap_or(Scheme::HTTP);
        let authority = policy
            .url
            .authority()
            .cloned()
            .expect("validated endpoint has authority");
        Self {
            url: format!("{scheme}://{authority}"),
            scheme,
            authority,
            weight: policy.weight.max(1),
            pool: Arc::new(EndpointPool::new(idle)),
            in_flight: AtomicU32::new(0),
            healthy: AtomicBool::new(true),
        }
    }

    /// The host without IPv6 brackets, for TLS server names.
    pub fn host(&self) -> &str {
        let host = self.authority.host();
        host.strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
    }

    /// Tries currently running against this endpoint.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Marks one more try in flight; the returned guard ends it.
    pub fn start(&self) -> EndpointTry<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        EndpointTry(self)
    }

    /// False while the endpoint is out of rotation.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Puts the endpoint in or out of rotation.
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }
}

/// Counts a try in `in_flight` for as long as it lives.
#[derive(Debug)]
pub struct EndpointTry<'a>(&'a Endpoint);

impl Drop for EndpointTry<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
