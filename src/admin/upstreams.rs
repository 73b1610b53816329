//! `/admin/upstreams` (SPEC §6): JSON views of every upstream (passthrough authorities
//! included) with endpoints, breaker, rate limit and in-flight counts, and the breaker
//! actions. Also refreshes the breaker gauges before /metrics renders. Routing of admin
//! paths and auth stay in `admin`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::breaker::transition::BreakerState;
use crate::breaker::{Action, BreakerView, Breakers};
use crate::routing::Router;
use crate::upstream::Upstream;

/// Why a breaker action was refused (each maps to its own status and code).
#[derive(Debug, PartialEq, Eq)]
pub enum ActionError {
    /// No upstream (or passthrough authority) has this name: 404.
    UnknownUpstream,
    /// The body is not `{"action": "..."}` JSON: 400.
    BadRequest(String),
    /// The action is not force-open, disable or reset: 400.
    UnknownAction(String),
    /// The upstream runs with `circuit_breaker: off`: 409.
    NoBreaker,
}

/// Every upstream in config order, then the passthrough authorities (most recent first).
pub fn list(router: &Router) -> Value {
    let now = Instant::now();
    Value::Array(all(router).iter().map(|u| view(u, now)).collect())
}

/// One upstream's view, or `None` when no upstream or authority has this name.
pub fn one(router: &Router, name: &str) -> Option<Value> {
    find(router, name).map(|u| view(&u, Instant::now()))
}

/// Applies a breaker action from a request body and returns the upstream's view after it.
pub fn act(router: &Router, name: &str, body: &[u8]) -> Result<Value, ActionError> {
    let upstream = find(router, name).ok_or(ActionError::UnknownUpstream)?;
    let request: Value = serde_json::from_slice(body)
        .map_err(|e| ActionError::BadRequest(format!("the body is not JSON: {e}")))?;
    let word = request
        .get("action")
        .and_then(Value::as_str)
        .ok_or_else(|| ActionError::BadRequest("expected {\"action\": \"...\"}".into()))?;
    let action = Action::parse(word).ok_or_else(|| ActionError::UnknownAction(word.into()))?;
    let breakers = upstream.breakers().ok_or(ActionError::NoBreaker)?;
    tracing::info!(
        upstream = upstream.name(),
        action = word,
        "breaker action from the admin API"
    );
    breakers.act(action);
    Ok(view(&upstream, Instant::now()))
}

/// Takes the due open → half-open steps of every breaker and sets the breaker gauges, so
/// a scrape sees the state as of now. Passthrough authorities share one label: it shows
/// the most open of them and the highest failure ratio.
pub fn refresh_breakers(router: &Router) {
    let now = Instant::now();
    for upstream in router.upstreams() {
        if let Some(b) = upstream.breakers() {
            b.refresh(now);
        }
    }
    let Some(passthrough) = router.passthrough() else {
        return;
    };
    let mut worst: Option<(&Breakers, BreakerState, f64)> = None;
    let authorities = passthrough.upstreams();
    for b in authorities.iter().filter_map(|u| u.breakers()) {
        let v = b.refresh(now);
        let ratio = v.counts.failure_ratio();
        worst = Some(match worst {
            Some((_, state, r)) => {
                let state = if v.state.gauge() > state.gauge() {
                    v.state
                } else {
                    state
                };
                (b, state, r.max(ratio))
            }
            None => (b, v.state, ratio),
        });
    }
    if let Some((b, state, ratio)) = worst {
        b.set_gauges(state, ratio);
    }
}

fn all(router: &Router) -> Vec<Arc<Upstream>> {
    let mut upstreams = router.upstreams().to_vec();
    if let Some(p) = router.passthrough() {
        upstreams.extend(p.upstreams());
    }
    upstreams
}

fn find(router: &Router, name: &str) -> Option<Arc<Upstream>> {
    if let Some(u) = router.get(name) {
        return Some(u.clone());
    }
    router
        .passthrough()?
        .upstreams()
        .into_iter()
        .find(|u| u.name() == name)
}

/// The SPEC §6 object for one upstream (plus `passthrough`).
fn view(upstream: &Upstream, now: Instant) -> Value {
    let breaker = upstream.breakers().map(|b| (b, b.refresh(now)));
    let endpoints: Vec<Value> = upstream
        .endpoints()
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let own = breaker
                .as_ref()
                .and_then(|(_, v)| v.endpoints.as_ref())
                .map(|snapshots| &snapshots[i]);
            let state = match own.map(|s| s.state) {
                Some(BreakerState::Open | BreakerState::ForcedOpen) => "ejected",
                _ if !e.is_healthy() => "unhealthy",
                _ => "healthy",
            };
            let mut v = json!({ "url": e.url, "state": state, "in_flight": e.in_flight() });
            if let Some(s) = own {
                v["breaker"] = breaker_json(
                    s.state,
                    s.counts.failure_ratio(),
                    s.counts.calls,
                    s.retry_after,
                );
            }
            v
        })
        .collect();
    let rate_limit = upstream.policy().rate_limit.as_ref().map(|r| {
        json!({
            "rate": crate::config::json::rate(r.rate),
            "burst": r.burst,
            "available": upstream.rate_limit_available(),
        })
    });
    json!({
        "name": upstream.name(),
        "passthrough": upstream.label() != upstream.name(),
        "endpoints": endpoints,
        "breaker": breaker.map(|(b, v)| upstream_breaker(b, &v)),
        "rate_limit": rate_limit,
        "in_flight": upstream.in_flight(),
    })
}

fn upstream_breaker(b: &Breakers, v: &BreakerView) -> Value {
    let mut out = breaker_json(
        v.state,
        v.counts.failure_ratio(),
        v.counts.calls,
        v.retry_after,
    );
    out["scope"] = if b.per_endpoint() {
        "endpoint"
    } else {
        "upstream"
    }
    .into();
    out["dry_run"] = b.policy().dry_run.into();
    if let Some(ejected) = b.ejected() {
        out["ejected"] = ejected.into();
    }
    out
}

fn breaker_json(
    state: BreakerState,
    failure_ratio: f64,
    calls: u64,
    retry_after: Option<Duration>,
) -> Value {
    json!({
        "state": state.as_str(),
        "failure_ratio": failure_ratio,
        "calls_in_window": calls,
        "retry_after_ms": retry_after.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    })
}
