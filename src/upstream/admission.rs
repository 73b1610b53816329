//! Admission of one request to an upstream: its rate limit (the route's own bucket or the
//! upstream's), then the bulkhead. Once per request; retries never pass here again.

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderMap, Method};

use super::{InFlight, Upstream};
use crate::error::ProxyError;
use crate::metrics::UpstreamMetrics;
use crate::proxy::headers::Forwarding;
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
    /// `forwarding`: the lines rampart adds to the request; a bucket keyed by one of those
    /// headers sees the request as it is forwarded.
    pub async fn admit_limited(
        self: &Arc<Self>,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        forwarding: Option<&Forwarding>,
        client: Option<IpAddr>,
    ) -> Result<InFlight, ProxyError> {
        let route = self.route_index(method, path);
        let Some(limiter) = self.limiters.for_route(route) else {
            return self.admit();
        };
        // Rare: keyed by a header only rampart adds (`header:x-forwarded-for` with an app
        // that sends none). The lines are added to a copy of the headers for the key.
        let forwarded;
        let headers = match (limiter.key_header(), forwarding) {
            (Some(name), Some(lines))
                if !headers.contains_key(name) && lines.get(name).is_some() =>
            {
                let mut copy = headers.clone();
                lines.add_to(&mut copy);
                forwarded = copy;
                &forwarded
            }
            _ => headers,
        };
        match limiter.acquire(headers, client, || self.admit()).await? {
            Some(held) => Ok(held),
            None => self.admit(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, Version};

    /// A bucket keyed by a header rampart adds sees it as forwarded: one bucket per app
    /// address here, not one shared bucket for every request without the header.
    #[tokio::test]
    async fn a_key_header_that_rampart_adds_is_read_as_forwarded() {
        let yaml = "upstreams:\n  svc:\n    endpoints: [\"http://127.0.0.1:1\"]\n    hosts: [svc]\n    rate_limit: { rate: 1/s, burst: 1, key: \"header:x-forwarded-for\" }\n";
        let config = crate::config::parse(yaml, &|_| None).unwrap();
        let metrics = crate::metrics::Metrics::new();
        let upstream = Arc::new(Upstream::new(config.upstreams[0].clone(), &metrics).unwrap());
        let from = |ip: &'static str| Forwarding {
            forwarded_for: Some(HeaderValue::from_static(ip)),
            request_id: None,
            via: Some(Version::HTTP_11),
        };
        let admit = |forwarding: Forwarding| {
            let upstream = upstream.clone();
            async move {
                upstream
                    .admit_limited(
                        &Method::GET,
                        "/",
                        &HeaderMap::new(),
                        Some(&forwarding),
                        None,
                    )
                    .await
                    .map(drop)
            }
        };
        assert!(admit(from("10.0.0.1")).await.is_ok());
        assert!(admit(from("10.0.0.2")).await.is_ok(), "its own bucket");
        assert!(matches!(
            admit(from("10.0.0.1")).await,
            Err(ProxyError::RateLimited { .. })
        ));
    }
}
