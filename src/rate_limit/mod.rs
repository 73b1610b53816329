//! The rate-limit layer: one decision per request (never per try) from a local (governor) or
//! global (Redis) token bucket; waits in `wait` mode on tokio time, counts and logs what it
//! limits. The bulkhead is the caller's: a request that must wait takes its slot first.

pub mod global;
pub mod key;
pub mod local;
pub mod metrics;
pub mod policy;
pub mod redis_tls;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use tokio::time::Instant;

use crate::error::{ProxyError, RateLimitInfo};
use crate::metrics::UpstreamMetrics;
use global::{Answer, GlobalBuckets};
use key::RequestKey;
use local::{Check, LocalBuckets};
use policy::{LimitMode, OnRedisError, RateLimitPolicy};

/// `Retry-After` of a 429 refused by `on_error: deny` while Redis is away: Redis is probed
/// more often than this, so a client coming back then meets a decision again.
const DENY_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The live limiter of an upstream or of one of its routes.
#[derive(Debug)]
pub struct RateLimiter {
    policy: RateLimitPolicy,
    scope: Arc<str>,
    local: LocalBuckets,
    global: Option<GlobalBuckets>,
    metrics: Arc<UpstreamMetrics>,
}

/// One step of a decision.
enum Step {
    /// Go on now.
    Admit,
    /// Go on after this wait; the token is already reserved (Redis).
    AdmitAfter(Duration),
    /// Check again after this wait (local bucket, within `max_wait`).
    Retry(Duration),
    /// Refuse; a token comes after this wait.
    Deny(Duration),
}

impl RateLimiter {
    /// The request header this limiter keys its buckets by, if it keys by one.
    pub fn key_header(&self) -> Option<&http::HeaderName> {
        match &self.policy.key {
            policy::RateLimitKey::Header(name) => Some(name),
            _ => None,
        }
    }

    /// The limiter for `policy`; `scope` names its buckets in logs and in Redis (the upstream
    /// name, plus the route for a route's own bucket). With `global`, it must be built inside
    /// a tokio runtime (the Redis connection is made in the background).
    pub fn new(policy: &RateLimitPolicy, scope: &str, metrics: &Arc<UpstreamMetrics>) -> Self {
        let keyed = !matches!(policy.key, policy::RateLimitKey::None);
        let global = policy.global.as_ref().map(|g| {
            let gauge = metrics.registry().gauge(
                "rampart_rate_limit_global_fallback",
                vec![::metrics::Label::new("upstream", metrics.name().to_owned())],
            );
            GlobalBuckets::new(g, policy.rate, policy.burst, scope, gauge)
        });
        Self {
            local: LocalBuckets::new(policy.rate, policy.burst, keyed),
            policy: policy.clone(),
            scope: Arc::from(scope),
            global,
            metrics: metrics.clone(),
        }
    }

    /// The policy this limiter enforces.
    pub fn policy(&self) -> &RateLimitPolicy {
        &self.policy
    }

    /// Tokens available now in the local shared bucket (what the admin API shows).
    pub fn available(&self) -> u32 {
        self.local.available()
    }

    /// `Some(true)` while decisions are made in Redis, `Some(false)` in fallback, `None`
    /// without a global bucket.
    pub fn global_up(&self) -> Option<bool> {
        self.global.as_ref().map(GlobalBuckets::is_up)
    }

    /// Decides one request from `client` with `headers`. `Ok(None)`: go on. `Ok(Some(slot))`:
    /// go on, holding the bulkhead slot taken by `hold` before the request waited (so
    /// waiting requests count against `concurrency.max_requests`). `Err`: 429, or whatever
    /// `hold` refused with.
    pub async fn acquire<G>(
        &self,
        headers: &HeaderMap,
        client: Option<IpAddr>,
        hold: impl FnOnce() -> Result<G, ProxyError>,
    ) -> Result<Option<G>, ProxyError> {
        let key = RequestKey::of(&self.policy.key, headers, client);
        let max_wait = match self.policy.mode {
            LimitMode::Wait { max_wait } if !self.policy.dry_run => max_wait,
            _ => Duration::ZERO,
        };
        let mut hold = Some(hold);
        let mut held = None;
        // The first decision is made as the request arrives, with all of `max_wait` left;
        // a local bucket's request reads the clock only once it has to wait (most never do),
        // a global one's before Redis answers (the round trip counts as waiting).
        let mut left = max_wait;
        let mut started = self.global.is_some().then(Instant::now);
        loop {
            let (wait, done) = match self.step(&key, left).await {
                Step::Admit => break,
                Step::AdmitAfter(wait) => (wait, true),
                Step::Retry(wait) => (wait, false),
                Step::Deny(retry_after) => {
                    let waited = held.as_ref().and(started).map(|s| s.elapsed());
                    return self.deny(retry_after, waited, held);
                }
            };
            let started = *started.get_or_insert_with(Instant::now);
            if let Some(hold) = hold.take() {
                held = Some(hold()?);
            }
            tokio::time::sleep(wait).await;
            if done {
                break;
            }
            left = (started + max_wait).saturating_duration_since(Instant::now());
        }
        // Only a request that slept holds a slot (or `hold` was spent); the others went on
        // at once, whatever the clock read in between.
        if let Some(started) = started.filter(|_| hold.is_none()) {
            self.metrics.rate_limit.delayed.increment(1);
            self.metrics
                .rate_limit
                .wait
                .record(started.elapsed().as_secs_f64());
        }
        Ok(held)
    }

    /// One decision: Redis while it answers, else what `on_error` says (the local bucket
    /// for `local`); the local bucket when there is no global one.
    async fn step(&self, key: &RequestKey<'_>, max_wait: Duration) -> Step {
        if let Some(global) = &self.global {
            // Boxed: the Redis round trip is a large future that local decisions never need.
            match Box::pin(global.decide(key, max_wait)).await {
                Answer::Admit(wait) if wait.is_zero() => return Step::Admit,
                Answer::Admit(wait) => return Step::AdmitAfter(wait),
                Answer::Deny(wait) => return Step::Deny(wait),
                Answer::Unavailable => match self.on_error() {
                    OnRedisError::Allow => return Step::Admit,
                    OnRedisError::Deny => return Step::Deny(DENY_RETRY_AFTER),
                    OnRedisError::Local => {}
                },
            }
        }
        match self.local.check(key) {
            Check::Taken => Step::Admit,
            Check::Empty(wait) if wait <= max_wait => Step::Retry(wait),
            Check::Empty(wait) => Step::Deny(wait),
        }
    }

    fn on_error(&self) -> OnRedisError {
        self.policy
            .global
            .as_ref()
            .map_or(OnRedisError::Local, |g| g.on_error)
    }

    /// The bucket is empty: 429, or in dry run a count, a log line and on we go.
    fn deny<G>(
        &self,
        retry_after: Duration,
        waited: Option<Duration>,
        held: Option<G>,
    ) -> Result<Option<G>, ProxyError> {
        if let Some(waited) = waited {
            self.metrics.rate_limit.wait.record(waited.as_secs_f64());
        }
        if self.policy.dry_run {
            self.metrics.rate_limit.dry_run.increment(1);
            tracing::info!(
                target: "rampart::rate_limit",
                upstream = %self.scope,
                action = "dry_run",
                retry_after_ms = retry_after.as_millis() as u64,
                "rate limit would have refused this request (dry run)"
            );
            return Ok(held);
        }
        self.metrics.rate_limit.rejected.increment(1);
        Err(ProxyError::RateLimited(self.info(retry_after)))
    }

    /// What the 429 tells the client (IETF ratelimit-headers draft fields).
    fn info(&self, retry_after: Duration) -> RateLimitInfo {
        RateLimitInfo {
            retry_after,
            quota: self.policy.rate.tokens,
            window_secs: self.policy.rate.period.as_secs().max(1),
            burst: self.policy.burst,
            remaining: 0,
        }
    }
}

#[cfg(test)]
mod tests;
