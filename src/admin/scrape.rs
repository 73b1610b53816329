//! What `GET /metrics` answers: breakers refreshed, histograms drained, and the registry
//! rendered without the series of upstreams, endpoint breakers and global limiters that the
//! running config no longer has (a stale breaker gauge of 2 would keep an alert firing).

use crate::metrics::{Metrics, Series};
use crate::rate_limit::policy::RateLimitPolicy;
use crate::routing::Router;
use crate::routing::passthrough::PASSTHROUGH_LABEL;

use super::upstreams::refresh_breakers;

/// The Prometheus text for one scrape of `router`'s proxy.
pub fn render(metrics: &Metrics, router: &Router) -> String {
    refresh_breakers(router);
    metrics.render_where(|series| live(router, series))
}

/// Whether `series` belongs to something `router` runs. Per sample: one hash lookup, plus a
/// scan of the upstream's endpoints or routes for the few series that depend on them.
fn live(router: &Router, series: &Series<'_>) -> bool {
    if series.upstream == PASSTHROUGH_LABEL {
        return router.passthrough().is_some();
    }
    let Some(upstream) = router.get(&series.upstream) else {
        return false;
    };
    let policy = upstream.policy();
    match series.metric {
        "rampart_circuit_breaker_endpoint_state" => {
            upstream.breakers().is_some_and(|b| b.per_endpoint())
                && series
                    .endpoint
                    .as_deref()
                    .is_some_and(|e| upstream.endpoints().iter().any(|x| x.url == e))
        }
        "rampart_circuit_breaker_failure_ratio" => upstream.breakers().is_some(),
        "rampart_rate_limit_global_fallback" => {
            let global =
                |r: &Option<RateLimitPolicy>| r.as_ref().is_some_and(|r| r.global.is_some());
            global(&policy.rate_limit) || policy.routes.iter().any(|r| global(&r.rate_limit))
        }
        _ => true,
    }
}
