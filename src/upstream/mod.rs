//! One upstream's live state: endpoints, balancer, pooled client, bulkhead counter and
//! metric handles, built from its policy. Held in `Arc`s by the router; a reload builds a new
//! `Upstream` only when the policy changed, so unchanged ones keep their state.

pub mod admission;
pub mod balance;
pub mod client;
pub mod endpoint;
pub mod fallback;
pub mod h1;
pub mod health;
pub mod outgoing;
pub mod policy;
pub mod pool;
pub mod stack;
pub mod tls;
pub mod try_admission;
pub mod try_timer;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use http::Method;

use crate::breaker::Breakers;
use crate::error::ProxyError;
use crate::metrics::{Metrics, UpstreamMetrics};
use crate::retry::budget::RetryBudget;
use crate::retry::policy::RetryPolicy;
use balance::Balancer;
use client::Connector;
use endpoint::Endpoint;
use policy::{TimeoutPolicy, UpstreamPolicy};

pub use stack::{Exchange, Forward};

/// A running upstream.
#[derive(Debug)]
pub struct Upstream {
    policy: UpstreamPolicy,
    /// The name in the admin API (for passthrough: the authority).
    name: Arc<str>,
    endpoints: Box<[Endpoint]>,
    balancer: Balancer,
    client: Arc<Connector>,
    metrics: Arc<UpstreamMetrics>,
    in_flight: AtomicU32,
    max_in_flight: u32,
    budget: Option<RetryBudget>,
    /// Rate limits: the upstream's bucket and each route's own.
    limiters: admission::Limiters,
    /// Circuit breakers; `None` when `circuit_breaker: off`.
    breakers: Option<Breakers>,
    /// Active health checks; aborted when this upstream is dropped. Set once the `Arc`
    /// exists: a task spawned inside `Arc::new_cyclic` (from a reload's blocking thread)
    /// could be polled before the `Arc` was done, find its `Weak` dead and stop for good.
    health: OnceLock<health::HealthTask>,
}

/// Why an upstream could not be built (TLS material that changed on disk since validation).
pub type BuildError = tls::TlsError;

impl Upstream {
    /// Builds the live upstream; its metric series are registered now, before any traffic.
    pub fn new(policy: UpstreamPolicy, metrics: &Arc<Metrics>) -> Result<Arc<Self>, BuildError> {
        let client = Connector::new(&policy)?;
        let label = metrics.upstream(&policy.name);
        Ok(Self::with_client(policy, client, label))
    }

    /// Builds an upstream around an existing client and metric handles (passthrough
    /// authorities share both). Starts the health-check task, so with `health_check` set it
    /// must run inside a tokio runtime.
    pub fn with_client(
        policy: UpstreamPolicy,
        client: Arc<Connector>,
        metrics: Arc<UpstreamMetrics>,
    ) -> Arc<Self> {
        let endpoints: Box<[Endpoint]> = policy
            .endpoints
            .iter()
            .map(|e| Endpoint::new(e, policy.timeouts.idle))
            .collect();
        let balancer = Balancer::new(policy.load_balancing, &endpoints);
        let budget = policy.retry.budget.as_ref().map(RetryBudget::new);
        let limiters = admission::Limiters::new(&policy, &metrics);
        let urls: Vec<&str> = endpoints.iter().map(|e| e.url.as_str()).collect();
        let breakers = policy
            .circuit_breaker
            .as_ref()
            .map(|b| Breakers::new(&policy.name, b, &urls, &metrics));
        drop(urls);
        let health_check = policy.health_check.clone();
        let upstream = Arc::new(Self {
            health: OnceLock::new(),
            budget,
            limiters,
            breakers,
            name: Arc::from(policy.name.as_str()),
            max_in_flight: policy.concurrency.map_or(u32::MAX, |c| c.max_requests),
            policy,
            endpoints,
            balancer,
            client,
            metrics,
            in_flight: AtomicU32::new(0),
        });
        if let Some(hc) = health_check {
            let task = health::spawn(Arc::downgrade(&upstream), hc);
            // Fresh cell: the set cannot fail.
            let _ = upstream.health.set(task);
        }
        upstream
    }

    /// The name in the admin API and logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `upstream` metric label (differs from `name` for passthrough).
    pub fn label(&self) -> &str {
        self.metrics.name()
    }

    /// The policy this upstream was built from (a reload compares it).
    pub fn policy(&self) -> &UpstreamPolicy {
        &self.policy
    }

    /// The live endpoints.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// Metric handles.
    pub fn metrics(&self) -> &Arc<UpstreamMetrics> {
        &self.metrics
    }

    /// The circuit breakers, unless the policy turns them off.
    pub fn breakers(&self) -> Option<&Breakers> {
        self.breakers.as_ref()
    }

    /// Requests in flight (admitted by the bulkhead, response body not yet finished).
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The timeouts and retry policy for a request: the first matching route's, else the
    /// upstream's.
    pub fn policies_for(&self, method: &Method, path: &str) -> (&TimeoutPolicy, &RetryPolicy) {
        match self.route_index(method, path) {
            Some(i) => (
                &self.policy.routes[i].timeouts,
                &self.policy.routes[i].retry,
            ),
            None => (&self.policy.timeouts, &self.policy.retry),
        }
    }

    /// The index of the first route matching the request, if any.
    pub fn route_index(&self, method: &Method, path: &str) -> Option<usize> {
        self.policy.routes.iter().position(|route| {
            let method_ok = route.methods.is_empty() || route.methods.contains(method);
            let path_ok = route
                .path_prefix
                .as_deref()
                .is_none_or(|p| prefix_matches(p, path));
            method_ok && path_ok
        })
    }

    /// Bulkhead admission: counts the request in flight or refuses it with `overloaded`.
    pub fn admit(self: &Arc<Self>) -> Result<InFlight, ProxyError> {
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        if before >= self.max_in_flight {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            self.metrics.concurrency_rejected.increment(1);
            return Err(ProxyError::Overloaded);
        }
        self.metrics.in_flight.increment(1.0);
        Ok(InFlight(self.clone()))
    }
}

// === impl Upstream (rate limit view for the admin API) ===

impl Upstream {
    /// Tokens available now in the upstream's local bucket (its shared bucket when keyed);
    /// `None` without a rate limit. Feeds `rate_limit.available` in /admin/upstreams.
    pub fn rate_limit_available(&self) -> Option<u64> {
        self.limiters
            .upstream()
            .map(|limiter| u64::from(limiter.available()))
    }
}

/// Keeps one request counted in flight for its upstream until dropped (after the response
/// body ends, or when the client goes away).
#[derive(Debug)]
pub struct InFlight(Arc<Upstream>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.metrics.in_flight.decrement(1.0);
    }
}

/// Segment-boundary prefix match: `/api` matches `/api`, `/api/x` and `/api?q`, not `/apix`.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_matches;

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        assert!(prefix_matches("/api", "/api"));
        assert!(prefix_matches("/api", "/api/x"));
        assert!(prefix_matches("/api", "/api?x=1"));
        assert!(!prefix_matches("/api", "/apix"));
        assert!(!prefix_matches("/api", "/"));
        assert!(prefix_matches("/", "/anything"));
    }
}
