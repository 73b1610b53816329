//! The layer order for one upstream, outermost first, written as one async function so the
//! order is read top to bottom and costs no boxing:
//!
//! 1. request deadline  → 504 `upstream_timeout`: bounds all tries and backoff together;
//! 2. rate limit        → 429 `rate_limited`: once per request, so a retry never becomes a 429;
//! 3. bulkhead          → 503 `overloaded`: protects the upstream from the app, not per try;
//! 4. fallback          open breaker → the fallback upstream's own stack;
//! 5. retry             attempts, budget, backoff, Retry-After, body replay;
//! 6.   breaker         per try, inside retry: every try is admitted and recorded, and
//!    an opening breaker stops further tries;
//! 7.   per-try timeout inside the breaker, so timeouts count as failures;
//! 8.   balance         inside retry, so a retry can pick another endpoint;
//! 9.   client          pooled connection (TLS when `https`), connect timeout.

use std::sync::Arc;
use std::time::Duration;

use http::uri::{PathAndQuery, Uri};
use http::{Request, Response, Version};
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::error::ProxyError;
use crate::outcome::Outcome;
use crate::proxy::body::{RequestBody, ResponseBody};
use crate::upstream::Upstream;
use crate::upstream::endpoint::Endpoint;

/// Per-request inputs that are not part of the HTTP request itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct Forward {
    /// `x-rampart-attempts`, capped at the configured attempts.
    pub attempts_cap: Option<u32>,
    /// `x-rampart-timeout-ms`, capped at the configured request timeout.
    pub timeout_cap: Option<Duration>,
}

/// What the stack produced for one request.
#[derive(Debug)]
pub struct Exchange {
    /// The upstream response to pass through, or the local answer to generate.
    pub result: Result<Response<ResponseBody>, ProxyError>,
    /// Tries made (0 when refused before any try).
    pub attempts: u32,
}

impl Upstream {
    /// Runs one request through this upstream's stack. `req` has its headers already
    /// prepared by the proxy; its URI is rewritten here to each try's endpoint.
    pub async fn call(self: &Arc<Self>, req: Request<RequestBody>, fwd: Forward) -> Exchange {
        let (timeouts, _retry) = self.policies_for(req.method(), req.uri().path());
        let request_timeout = fwd.timeout_cap.map_or(timeouts.request, |t| t.min(timeouts.request));
        let deadline = Instant::now() + request_timeout;
        let per_try = timeouts.per_try;

        let in_flight = match self.admit() {
            Ok(guard) => guard,
            Err(e) => return Exchange { result: Err(e), attempts: 0 },
        };

        let index = self.balancer.pick(&self.endpoints, None);
        let try_deadline = deadline.min(Instant::now() + per_try);
        let outcome = self.try_once(req, &self.endpoints[index], try_deadline).await;
        let result = match outcome {
            Ok(response) => Ok(response.map(|body| ResponseBody::Upstream {
                body,
                in_flight: Some(in_flight),
            })),
            Err(Outcome::Timeout) => Err(ProxyError::UpstreamTimeout),
            Err(_) => Err(ProxyError::UpstreamUnavailable),
        };
        Exchange { result, attempts: 1 }
    }

    /// One try against one endpoint, until response headers or `deadline`.
    async fn try_once(
        &self,
        mut req: Request<RequestBody>,
        endpoint: &Endpoint,
        deadline: Instant,
    ) -> Result<Response<Incoming>, Outcome> {
        let _counted = endpoint.start();
        *req.uri_mut() = self.target_uri(endpoint, req.uri());
        *req.version_mut() = Version::HTTP_11;
        let outcome = match tokio::time::timeout_at(deadline, self.client.request(req)).await {
            Ok(Ok(response)) => {
                self.metrics.attempt(Outcome::from_status(response.status()));
                return Ok(response);
            }
            Ok(Err(e)) if e.is_connect() => Outcome::ConnectFailure,
            Ok(Err(_)) => Outcome::Reset,
            Err(_) => Outcome::Timeout,
        };
        self.metrics.attempt(outcome);
        tracing::debug!(upstream = %self.name, endpoint = %endpoint.url, outcome = outcome.metric_label(), "try failed");
        Err(outcome)
    }

    /// The URI for a try: the endpoint's scheme and authority, the request's path (with the
    /// upstream's prefix removed when `strip_prefix` is on) and query.
    fn target_uri(&self, endpoint: &Endpoint, uri: &Uri) -> Uri {
        let original = uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
        let path_and_query = match (&self.policy.path_prefix, self.policy.strip_prefix) {
            (Some(prefix), true) => strip_prefix(prefix, &original),
            _ => original,
        };
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(endpoint.scheme.clone());
        parts.authority = Some(endpoint.authority.clone());
        parts.path_and_query = Some(path_and_query);
        Uri::from_parts(parts).expect("scheme, authority and path are all set")
    }
}

/// Removes `prefix` from the path; stripping the whole path leaves `/`.
fn strip_prefix(prefix: &str, pq: &PathAndQuery) -> PathAndQuery {
    let Some(rest) = pq.as_str().strip_prefix(prefix) else {
        return pq.clone();
    };
    if prefix == "/" {
        return pq.clone();
    }
    let rewritten = if rest.is_empty() || rest.starts_with('?') {
        format!("/{rest}")
    } else {
        rest.to_owned()
    };
    PathAndQuery::try_from(rewritten).unwrap_or_else(|_| pq.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripping_keeps_the_query_and_leaves_root() {
        let s = |p: &str, pq: &str| strip_prefix(p, &PathAndQuery::try_from(pq).unwrap()).to_string();
        assert_eq!(s("/api", "/api/users?id=1"), "/users?id=1");
        assert_eq!(s("/api", "/api"), "/");
        assert_eq!(s("/api", "/api?x"), "/?x");
        assert_eq!(s("/", "/x"), "/x");
    }
}
