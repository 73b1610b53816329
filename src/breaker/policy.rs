//! The validated `circuit_breaker` policy of an upstream: plain data, no I/O.

use std::time::Duration;

use crate::outcome::OutcomeFilter;

/// When a breaker opens, how long it stays open and how it probes its way closed.
#[derive(Clone, Debug, PartialEq)]
pub struct BreakerPolicy {
    /// Open after this many failures in a row; 0 turns the rule off.
    pub consecutive_failures: u32,
    /// Open when failures / calls over the window reach this fraction (0–1); `None` is off.
    pub failure_rate: Option<f64>,
    /// The rate rules only apply with at least this many calls in the window.
    pub minimum_calls: u32,
    /// The sliding window the rates are computed over.
    pub window: BreakerWindow,
    /// Slow-call rule; `None` is off.
    pub slow_call: Option<SlowCallPolicy>,
    /// Time open before the first half-open probe.
    pub open_for: Duration,
    /// Cap of the open time, which doubles on every re-open from half-open.
    pub max_open_for: Duration,
    /// Concurrent probe calls admitted in half-open.
    pub half_open_calls: u32,
    /// Successful probes needed to close.
    pub success_threshold: u32,
    /// Which try outcomes count as failures.
    pub failure_on: OutcomeFilter,
    /// One breaker for the upstream, or one per endpoint (outlier ejection).
    pub scope: BreakerScope,
    /// With endpoint scope: the largest fraction (0–1) of endpoints ejected at once.
    pub max_ejection: f64,
    /// Track state and metrics, never reject.
    pub dry_run: bool,
}

/// A time-based or count-based sliding window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerWindow {
    /// The calls of the last duration.
    Time(Duration),
    /// The last N calls.
    Calls(u32),
}

/// Calls slower than `duration` are slow; open when the slow share reaches `rate`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SlowCallPolicy {
    /// Threshold duration of a slow call.
    pub duration: Duration,
    /// Fraction (0–1) of slow calls that opens the breaker.
    pub rate: f64,
}

/// What one breaker guards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerScope {
    /// One breaker for the whole upstream.
    Upstream,
    /// One breaker per endpoint; the balancer skips open ones.
    Endpoint,
}
