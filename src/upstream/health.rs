//! Active health checks: a task per upstream probes every endpoint with `GET path`; after
//! `unhealthy_after` failures in a row an endpoint leaves rotation, after `healthy_after`
//! successes it comes back. Endpoints start healthy so a fresh sidecar serves at once.
//! The task holds only a `Weak` to its upstream and is aborted when the upstream is dropped
//! (a reload that changed it), so it never outlives its config.

use std::sync::Weak;

use http::{Request, Uri};
use tokio::task::JoinHandle;

use crate::proxy::body::RequestBody;
use crate::upstream::Upstream;
use crate::upstream::policy::HealthCheckPolicy;

/// Aborts the probe task when dropped with its upstream.
#[derive(Debug)]
pub struct HealthTask(JoinHandle<()>);

impl Drop for HealthTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts probing; needs a tokio runtime.
pub fn spawn(upstream: Weak<Upstream>, policy: HealthCheckPolicy) -> HealthTask {
    HealthTask(tokio::spawn(run(upstream, policy)))
}

/// Consecutive results for one endpoint.
#[derive(Clone, Copy, Debug, Default)]
struct Streak {
    failures: u32,
    successes: u32,
}

async fn run(upstream: Weak<Upstream>, policy: HealthCheckPolicy) {
    let mut streaks: Vec<Streak> = Vec::new();
    let mut tick = tokio::time::interval(policy.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(upstream) = upstream.upgrade() else {
            return;
        };
        streaks.resize(upstream.endpoints().len(), Streak::default());
        let probes = upstream
            .endpoints()
            .iter()
            .map(|e| probe(&upstream, e, &policy));
        let results = futures_util::future::join_all(probes).await;
        for ((endpoint, streak), ok) in upstream.endpoints().iter().zip(&mut streaks).zip(results) {
            if ok {
                streak.successes += 1;
                streak.failures = 0;
                if !endpoint.is_healthy() && streak.successes >= policy.healthy_after {
                    endpoint.set_healthy(true);
                    tracing::info!(upstream = upstream.name(), endpoint = %endpoint.url, "endpoint healthy again");
                }
            } else {
                streak.failures += 1;
                streak.successes = 0;
                if endpoint.is_healthy() && streak.failures >= policy.unhealthy_after {
                    endpoint.set_healthy(false);
                    tracing::warn!(upstream = upstream.name(), endpoint = %endpoint.url, "endpoint failed its health checks; out of rotation");
                }
            }
        }
    }
}

/// One probe: a 2xx within the timeout is healthy; anything else is not.
async fn probe(
    upstream: &Upstream,
    endpoint: &crate::upstream::endpoint::Endpoint,
    policy: &HealthCheckPolicy,
) -> bool {
    let uri = Uri::builder()
        .scheme(endpoint.scheme.clone())
        .authority(endpoint.authority.clone())
        .path_and_query(policy.path.as_str())
        .build();
    let Ok(uri) = uri else { return false };
    let mut req = Request::new(RequestBody::empty());
    *req.uri_mut() = uri;
    req.headers_mut().insert(
        http::header::USER_AGENT,
        http::HeaderValue::from_static("rampart-health-check"),
    );
    let sent = endpoint.pool.send(&upstream.client, endpoint, req.into());
    match tokio::time::timeout(policy.timeout, sent).await {
        Ok(Ok(response)) => response.status().is_success(),
        _ => false,
    }
}
