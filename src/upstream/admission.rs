//! Admission of one request to an upstream: its rate limit (the route's own bucket or the
//! upstream's), then the bulkhead. Once per request; retries never pass here again.

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderMap, Method};

use super::{InFlight, Upstream};
use crate::error::ProxyError;
use crate::metrics::UpstreamMetrics;
use crate::rate_limit::RateLimiter;
use crate::upstream::policy::UpstreamPolicy;

/// The live limiters of an upstream: its own and each route's (by route index; `None` where
/// the route has no bucket of its own and the upstream's applies).
#[derive(Debug)]
pub struct Limiters {
    upstream: Option<RateLimiter>,
    routes: Box<[Option<RateLimiter>]>,
}

impl Limiters {
    /// Builds the buckets of `policy`; with a global bucket this needs a tokio runtime.
    pub fn new(policy: &UpstreamPolicy, metrics: &Arc<UpstreamMetrics>) -> Self {
        let name = policy.name.as_str();
        Self {
            upstream: policy
                .rate_limit
                .as_ref()
                .map(|p| RateLimiter::new(p, name, metrics)),
            routes: policy
                .routes
                .iter()
                .enumerate()
                .map(|(i, route)| {
                    let scope = format!("{name}:route{i}");
                    route
                        .rate_limit
                        .as_ref()
                        .map(|p| RateLimiter::new(p, &scope, metrics))
                })
                .collect(),
        }
    }

    /// The upstream's own limiter.
    pub fn upstream(&self) -> Option<&RateLimiter> {
        self.upstream.as_ref()
    }

    /// The limiter for a request matching route `route` (or no route).
    pub fn for_route(&self, route: Option<usize>) -> Option<&RateLimiter> {
        route
            .and_then(|i| self.routes.get(i))
            .and_then(Option::as_ref)
            .or(self.upstream.as_ref())
    }
}

impl Upstream {
    /// Rate limit, then bulkhead. A request that has to wait for a token takes its bulkhead
    /// slot before waiting, so waiting requests are bounded by `concurrency.max_requests`;
    /// one refused at once (429) never holds a slot.
    pub async fn admit_limited(
        self: &Arc<Self>,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        client: Option<IpAddr>,
    ) -> Result<InFlight, ProxyError> {
        let route = self.route_index(method, path);
        let Some(limiter) = self.limiters.for_route(route) else {
            return self.admit();
        };
        match limiter.acquire(headers, client, || self.admit()).await? {
            Some(held) => Ok(held),
            None => self.admit(),
        }
    }
}
