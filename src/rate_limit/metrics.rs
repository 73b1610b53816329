//! The rate-limit series of one upstream, registered with its other handles so they exist
//! (at 0) before any traffic; the request path only touches these atomics.

use metrics::{Counter, Histogram, Label};

use crate::metrics::Metrics;

/// Upper bounds (seconds) of `rampart_rate_limit_wait_seconds`: waits are bounded by
/// `max_wait`, typically milliseconds to a few seconds.
pub const WAIT_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// `rampart_rate_limited_total{upstream,action}` and the wait histogram.
#[derive(Clone, Debug)]
pub struct RateLimitMetrics {
    /// `action="rejected"`: answered 429.
    pub rejected: Counter,
    /// `action="delayed"`: waited for a token, then went on.
    pub delayed: Counter,
    /// `action="dry_run"`: found the bucket empty and went on (dry run).
    pub dry_run: Counter,
    /// `rampart_rate_limit_wait_seconds{upstream}`: time spent waiting for a token.
    pub wait: Histogram,
}

impl RateLimitMetrics {
    /// Registers the series of `upstream` in `registry`.
    pub fn register(registry: &Metrics, upstream: &str) -> Self {
        let action = |a: &'static str| {
            registry.counter(
                "rampart_rate_limited_total",
                vec![
                    Label::new("upstream", upstream.to_owned()),
                    Label::new("action", a),
                ],
            )
        };
        Self {
            rejected: action("rejected"),
            delayed: action("delayed"),
            dry_run: action("dry_run"),
            wait: registry.histogram(
                "rampart_rate_limit_wait_seconds",
                vec![Label::new("upstream", upstream.to_owned())],
            ),
        }
    }

    /// Handles that record nothing (requests that matched no upstream).
    pub fn noop() -> Self {
        Self {
            rejected: Counter::noop(),
            delayed: Counter::noop(),
            dry_run: Counter::noop(),
            wait: Histogram::noop(),
        }
    }
}
