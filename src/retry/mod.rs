//! The retry layer's decisions: after each try, whether another try is due, and if it is,
//! whether it may be made (method safety, body replay, Retry-After, deadline, budget) and
//! after which delay. The attempt loop itself lives in `upstream::stack`, which owns the
//! endpoints; everything here is plain computation, tested with paused time.

pub mod backoff;
pub mod budget;
pub mod policy;
pub mod replay;

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use rand::Rng;
use tokio::time::Instant;

use crate::outcome::Outcome;
use budget::RetryBudget;
use policy::RetryPolicy;

/// Why a due retry was not made (`rampart_retries_skipped_total{reason}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// The retry budget is exhausted.
    Budget,
    /// The request body was too large to buffer for replay.
    BodyTooLarge,
    /// The method is not safe to retry after this outcome.
    Method,
    /// The backoff would end past the request deadline.
    Deadline,
    /// The breaker opened.
    CircuitOpen,
    /// The upstream asked for a longer wait than `retry_after.max`.
    RetryAfterTooLong,
}

impl SkipReason {
    /// Every reason, in label order.
    pub const ALL: [SkipReason; 6] = [
        SkipReason::Budget,
        SkipReason::BodyTooLarge,
        SkipReason::Method,
        SkipReason::Deadline,
        SkipReason::CircuitOpen,
        SkipReason::RetryAfterTooLong,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Budget => "budget",
            SkipReason::BodyTooLarge => "body_too_large",
            SkipReason::Method => "method",
            SkipReason::Deadline => "deadline",
            SkipReason::CircuitOpen => "circuit_open",
            SkipReason::RetryAfterTooLong => "retry_after_too_long",
        }
    }
}

/// What to do after a try.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The try's result is the answer (success, non-retryable outcome, or no attempts left).
    Done,
    /// A retry was due but is not made; the try's result is the answer.
    Skip(SkipReason),
    /// Retry after `delay`; the budget has already been charged.
    Retry {
        /// Backoff (or Retry-After) before the next try.
        delay: Duration,
    },
}

/// Per-request retry state.
#[derive(Debug)]
pub struct Retrier<'a> {
    policy: &'a RetryPolicy,
    max_attempts: u32,
    /// The method is retryable on any `on` outcome (idempotent set, or an Idempotency-Key).
    method_safe: bool,
}

impl<'a> Retrier<'a> {
    /// State for one request; `cap` is the `x-rampart-attempts` override.
    pub fn new(
        policy: &'a RetryPolicy,
        cap: Option<u32>,
        method: &Method,
        headers: &HeaderMap,
    ) -> Self {
        let max_attempts = cap
            .map_or(policy.attempts, |c| c.min(policy.attempts))
            .max(1);
        let method_safe =
            policy.methods.contains(method) || headers.contains_key("idempotency-key");
        Self {
            policy,
            max_attempts,
            method_safe,
        }
    }

    /// Total tries allowed for this request.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// True when the method may be sent twice (hedging needs this).
    pub fn method_safe(&self) -> bool {
        self.method_safe
    }

    /// Whether `outcome` of try number `tries` is one that policy retries at all; when not,
    /// `decide` is `Done` whatever the clock, budget or breaker say.
    pub fn may_retry(&self, tries: u32, outcome: Outcome) -> bool {
        self.policy.on.matches(outcome) && tries < self.max_attempts
    }

    /// Decides after try number `tries` (1-based) ended with `outcome`.
    #[allow(clippy::too_many_arguments)]
    pub fn decide(
        &self,
        tries: u32,
        outcome: Outcome,
        response_headers: Option<&HeaderMap>,
        replayable: bool,
        now: Instant,
        deadline: Instant,
        budget: Option<&RetryBudget>,
        rng: &mut impl Rng,
    ) -> Decision {
        if !self.may_retry(tries, outcome) {
            return Decision::Done;
        }
        // Nothing reached the upstream after a connect failure, so any method is safe.
        if !self.method_safe && outcome != Outcome::ConnectFailure {
            return Decision::Skip(SkipReason::Method);
        }
        if !replayable {
            return Decision::Skip(SkipReason::BodyTooLarge);
        }
        let mut delay = backoff::delay(&self.policy.backoff, tries, rng);
        let asks_to_wait = matches!(
            outcome.status(),
            Some(StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE)
        );
        if self.policy.retry_after.honor
            && asks_to_wait
            && let Some(wait) = response_headers
                .and_then(|h| h.get(http::header::RETRY_AFTER))
                .and_then(|v| parse_retry_after(v, SystemTime::now()))
        {
            if wait > self.policy.retry_after.max {
                return Decision::Skip(SkipReason::RetryAfterTooLong);
            }
            delay = wait;
        }
        if now + delay >= deadline {
            return Decision::Skip(SkipReason::Deadline);
        }
        if let Some(budget) = budget
            && !budget.withdraw()
        {
            return Decision::Skip(SkipReason::Budget);
        }
        Decision::Retry { delay }
    }
}

/// The `reason` label of `rampart_retries_total` for a retried outcome.
pub fn retry_reason(outcome: Outcome) -> std::borrow::Cow<'static, str> {
    match outcome {
        Outcome::ConnectFailure => "connect_failure".into(),
        Outcome::Reset => "reset".into(),
        Outcome::Timeout => "timeout".into(),
        Outcome::Success(s) | Outcome::Status(s) => format!("status_{}", s.as_u16()).into(),
    }
}

/// `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 §10.2.3); a date in the past
/// means no wait.
pub fn parse_retry_after(value: &HeaderValue, now: SystemTime) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(text).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests;
