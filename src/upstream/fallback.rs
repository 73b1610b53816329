//! Fallback: while an upstream's breaker refuses calls, its requests go to the `fallback`
//! upstream, through that upstream's own stack and policies. The fallback is looked up by
//! name in the live routing table at that moment, so a reload that replaces it is honoured
//! at once; validation refuses cycles, and a hop limit guards against any left.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::Request;

use crate::breaker::permit::Rejected;
use crate::error::ProxyError;
use crate::proxy::body::RequestBody;
use crate::routing::Router;
use crate::upstream::{Exchange, Forward, Upstream};

/// Longest fallback chain a request follows.
pub const MAX_HOPS: u8 = 8;

impl Upstream {
    /// Sends `req`, refused by this upstream's breaker, to the fallback upstream; without
    /// one, answers 503 `circuit_open` with the time until half-open.
    pub(crate) fn fall_back<'a>(
        &'a self,
        req: Request<RequestBody>,
        fwd: Forward,
        routes: &'a ArcSwap<Router>,
        rejected: Rejected,
    ) -> Pin<Box<dyn Future<Output = Exchange> + Send + 'a>> {
        let circuit_open = Exchange {
            result: Err(ProxyError::CircuitOpen {
                retry_after: rejected.retry_after,
            }),
            attempts: 0,
        };
        let target: Option<Arc<Upstream>> = self
            .policy
            .fallback
            .as_deref()
            .filter(|_| fwd.fallback_hops < MAX_HOPS)
            .and_then(|name| routes.load().get(name).cloned());
        Box::pin(async move {
            let Some(target) = target else {
                return circuit_open;
            };
            tracing::debug!(upstream = %self.name, fallback = target.name(), "breaker open: sending to the fallback");
            // The fallback's own request timeout starts now, as its stack does.
            let fwd = Forward {
                fallback_hops: fwd.fallback_hops + 1,
                arrived: None,
                ..fwd
            };
            target.call(req, fwd, routes).await
        })
    }
}
