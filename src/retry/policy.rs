//! The validated `retry` policy of an upstream or route: plain data, no I/O.

use std::time::Duration;

use crate::outcome::OutcomeFilter;

/// How rampart retries a request against one upstream.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Total tries including the first; 1 disables retries.
    pub attempts: u32,
    /// Which try outcomes are worth another try.
    pub on: OutcomeFilter,
    /// Methods retried on any `on` outcome; others only after a connect failure or with an
    /// `Idempotency-Key` header.
    pub methods: Vec<http::Method>,
    /// Delay between tries.
    pub backoff: BackoffPolicy,
    /// How a `Retry-After` on a 429/503 changes the delay.
    pub retry_after: RetryAfterPolicy,
    /// Cap on retries relative to first tries; `None` only when the config sets `budget: off`.
    pub budget: Option<BudgetPolicy>,
    /// Request bodies up to this many bytes are buffered so they can be replayed.
    pub max_body_bytes: u64,
    /// Zero disables hedging; otherwise the delay before a second, parallel try.
    pub hedge_delay: Duration,
}

/// The delay schedule between tries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// Shape of the schedule.
    pub strategy: BackoffStrategy,
    /// First delay (and the step for `linear`).
    pub base: Duration,
    /// Upper bound of any single delay.
    pub max: Duration,
}

/// Backoff shapes named in SPEC §2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackoffStrategy {
    /// Always `base`.
    Fixed,
    /// `base × retry number`.
    Linear,
    /// `base × 2^(retry number - 1)`.
    Exponential,
    /// Uniform in `[0, min(max, base × 2^(n-1))]` ("full jitter").
    ExponentialJitter,
}

/// What to do with a `Retry-After` header on a 429 or 503.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryAfterPolicy {
    /// Wait what the upstream asked instead of the computed backoff.
    pub honor: bool,
    /// Longer requests are not retried: the response goes back to the app at once.
    pub max: Duration,
}

/// A retry budget: retries may add at most `ratio` × requests over `window`, plus a floor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BudgetPolicy {
    /// Fraction of first tries that may be retried (0.2 = 20 %), 0–10.
    pub ratio: f32,
    /// Retries always allowed each second whatever the ratio says.
    pub min_per_second: u32,
    /// Sliding window the ratio is computed over (1–60 s).
    pub window: Duration,
}

impl RetryPolicy {
    /// A policy that never retries (attempts 1), used where retries make no sense.
    pub fn disabled() -> Self {
        Self {
            attempts: 1,
            on: OutcomeFilter::empty(),
            methods: Vec::new(),
            backoff: BackoffPolicy {
                strategy: BackoffStrategy::Fixed,
                base: Duration::ZERO,
                max: Duration::ZERO,
            },
            retry_after: RetryAfterPolicy {
                honor: false,
                max: Duration::ZERO,
            },
            budget: None,
            max_body_bytes: 0,
            hedge_delay: Duration::ZERO,
        }
    }
}
