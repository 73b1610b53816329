//! One endpoint's live state: where it is, its weight, and counters the balancer reads.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use http::uri::{Authority, Scheme};

use crate::upstream::policy::EndpointPolicy;

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
    in_flight: AtomicU32,
    /// Cleared by active health checks (and endpoint-scoped breakers) to leave rotation.
    healthy: AtomicBool,
}

impl Endpoint {
    /// Builds the live endpoint from its policy.
    pub fn new(policy: &EndpointPolicy) -> Self {
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
            in_flight: AtomicU32::new(0),
            healthy: AtomicBool::new(true),
        }
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
