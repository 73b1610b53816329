//! `UpstreamMetrics`: the handles of one `upstream` label value, registered when the upstream
//! is built so the request path only touches atomics. Registering a name again returns the
//! same series (a reload, or an upstream that comes back, continues its counters).

use std::sync::{Arc, OnceLock};

use metrics::{Counter, Gauge, Histogram, Label};

use super::Metrics;
use crate::outcome::Outcome;
use crate::rate_limit::metrics::RateLimitMetrics;
use crate::retry::{SkipReason, retry_reason};

/// Status codes common enough to get a pre-registered `requests_total` handle slot.
const COMMON_CODES: [u16; 16] = [
    200, 201, 202, 204, 301, 302, 304, 400, 401, 403, 404, 409, 429, 500, 502, 503,
];

/// Pre-registered handles for one upstream label value.
pub struct UpstreamMetrics {
    name: Arc<str>,
    registry: Arc<Metrics>,
    common_codes: [OnceLock<Counter>; COMMON_CODES.len()],
    /// `rampart_request_duration_seconds`.
    pub duration: Histogram,
    /// `rampart_requests_in_flight`.
    pub in_flight: Gauge,
    attempts: [Counter; 6],
    /// `rampart_circuit_breaker_state`.
    pub breaker_state: Gauge,
    /// `rampart_concurrency_rejected_total`.
    pub concurrency_rejected: Counter,
    retries: [Counter; 3],
    skipped: [Counter; 6],
    hedges: [Counter; 2],
    /// `rampart_rate_limited_total` and `rampart_rate_limit_wait_seconds`.
    pub rate_limit: RateLimitMetrics,
}

// === impl UpstreamMetrics ===

impl std::fmt::Debug for UpstreamMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamMetrics")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl UpstreamMetrics {
    pub(super) fn register(registry: &Arc<Metrics>, name: &str) -> Self {
        let mut m = Self::requests_only(registry, name);
        let up = || vec![Label::new("upstream", name.to_owned())];
        m.breaker_state = registry.gauge("rampart_circuit_breaker_state", up());
        m.breaker_state.set(0.0);
        m.in_flight = registry.gauge("rampart_requests_in_flight", up());
        m.in_flight.set(0.0);
        m.concurrency_rejected = registry.counter("rampart_concurrency_rejected_total", up());
        let labelled = |metric: &'static str, key: &'static str, value: &'static str| {
            registry.counter(
                metric,
                vec![
                    Label::new("upstream", name.to_owned()),
                    Label::new(key, value),
                ],
            )
        };
        m.attempts = [
            "success",
            "http_error",
            "connect_error",
            "reset",
            "timeout",
            "cancelled",
        ]
        .map(|o| labelled("rampart_upstream_attempts_total", "outcome", o));
        m.retries = ["connect_failure", "reset", "timeout"]
            .map(|r| labelled("rampart_retries_total", "reason", r));
        m.skipped = SkipReason::ALL
            .map(|r| labelled("rampart_retries_skipped_total", "reason", r.as_str()));
        m.hedges = ["won", "lost"].map(|r| labelled("rampart_hedges_total", "result", r));
        m.rate_limit = RateLimitMetrics::register(registry, name);
        m
    }

    /// Only what an unrouted request can touch: `requests_total` and the duration.
    pub(super) fn requests_only(registry: &Arc<Metrics>, name: &str) -> Self {
        Self {
            name: Arc::from(name),
            registry: registry.clone(),
            common_codes: Default::default(),
            duration: registry.histogram(
                "rampart_request_duration_seconds",
                vec![Label::new("upstream", name.to_owned())],
            ),
            in_flight: Gauge::noop(),
            attempts: std::array::from_fn(|_| Counter::noop()),
            breaker_state: Gauge::noop(),
            concurrency_rejected: Counter::noop(),
            retries: std::array::from_fn(|_| Counter::noop()),
            skipped: std::array::from_fn(|_| Counter::noop()),
            hedges: std::array::from_fn(|_| Counter::noop()),
            rate_limit: RateLimitMetrics::noop(),
        }
    }

    /// The `upstream` label value.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The registry these handles belong to (for modules that register their own series).
    pub fn registry(&self) -> &Arc<Metrics> {
        &self.registry
    }

    /// Counts one response sent to the app.
    pub fn request_done(&self, status: u16, seconds: f64) {
        self.duration.record(seconds);
        match COMMON_CODES.iter().position(|c| *c == status) {
            Some(i) => self.common_codes[i]
                .get_or_init(|| self.code_counter(status))
                .increment(1),
            None => self.code_counter(status).increment(1),
        }
    }

    fn code_counter(&self, status: u16) -> Counter {
        self.registry.counter(
            "rampart_requests_total",
            vec![
                Label::new("upstream", self.name.to_string()),
                Label::new("code", status.to_string()),
            ],
        )
    }

    /// Counts one try by its outcome.
    pub fn attempt(&self, outcome: Outcome) {
        let i = match outcome {
            Outcome::Success(_) => 0,
            Outcome::Status(_) => 1,
            Outcome::ConnectFailure => 2,
            Outcome::Reset => 3,
            Outcome::Timeout => 4,
        };
        self.attempts[i].increment(1);
    }

    /// Counts a try that ended without an outcome of the endpoint's: the hedge that lost the
    /// race, a try whose app went away or whose app's body broke. It may or may not have
    /// reached the endpoint.
    pub fn attempt_cancelled(&self) {
        self.attempts[5].increment(1);
    }

    /// Counts a retry of a try that ended with `outcome`.
    pub fn retry(&self, outcome: Outcome) {
        match outcome {
            Outcome::ConnectFailure => self.retries[0].increment(1),
            Outcome::Reset => self.retries[1].increment(1),
            Outcome::Timeout => self.retries[2].increment(1),
            Outcome::Success(_) | Outcome::Status(_) => self
                .registry
                .counter(
                    "rampart_retries_total",
                    vec![
                        Label::new("upstream", self.name.to_string()),
                        Label::new("reason", retry_reason(outcome)),
                    ],
                )
                .increment(1),
        }
    }

    /// Counts a retry that was due but not made.
    pub fn retry_skipped(&self, reason: SkipReason) {
        let i = SkipReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.skipped[i].increment(1);
    }

    /// Counts a hedged second try: `won` when its response was used.
    pub fn hedge(&self, won: bool) {
        self.hedges[usize::from(!won)].increment(1);
    }
}
