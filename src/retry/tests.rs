use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::time::Instant;

use super::policy::*;
use super::*;
use crate::outcome::OutcomeFilter;

fn policy() -> RetryPolicy {
    let mut on = OutcomeFilter::empty();
    on.connect_failure = true;
    on.reset = true;
    on.timeout = true;
    on.add_status(429);
    on.add_status_range(502, 504);
    RetryPolicy {
        attempts: 3,
        on,
        methods: vec![Method::GET, Method::PUT],
        backoff: BackoffPolicy {
            strategy: BackoffStrategy::Fixed,
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        },
        retry_after: RetryAfterPolicy {
            honor: true,
            max: Duration::from_secs(10),
        },
        budget: None,
        max_body_bytes: 1024,
        hedge_delay: Duration::ZERO,
    }
}

fn status(code: u16) -> Outcome {
    Outcome::from_status(StatusCode::from_u16(code).unwrap())
}

struct Case {
    policy: RetryPolicy,
    method: Method,
    request: HeaderMap,
    response: HeaderMap,
    replayable: bool,
    deadline: Duration,
}

impl Case {
    fn new() -> Self {
        Self {
            policy: policy(),
            method: Method::GET,
            request: HeaderMap::new(),
            response: HeaderMap::new(),
            replayable: true,
            deadline: Duration::from_secs(30),
        }
    }

    fn decide(&self, tries: u32, outcome: Outcome, budget: Option<&RetryBudget>) -> Decision {
        let r = Retrier::new(&self.policy, None, &self.method, &self.request);
        let now = Instant::now();
        let mut rng = SmallRng::seed_from_u64(1);
        r.decide(
            tries,
            outcome,
            Some(&self.response),
            self.replayable,
            now,
            now + self.deadline,
            budget,
            &mut rng,
        )
    }
}

const RETRY_100MS: Decision = Decision::Retry {
    delay: Duration::from_millis(100),
};

#[test]
fn retries_matching_outcomes_until_attempts_run_out() {
    let c = Case::new();
    assert_eq!(c.decide(1, status(503), None), RETRY_100MS);
    assert_eq!(c.decide(2, Outcome::Reset, None), RETRY_100MS);
    assert_eq!(c.decide(3, status(503), None), Decision::Done);
    assert_eq!(
        c.decide(1, status(500), None),
        Decision::Done,
        "500 is not in `on`"
    );
    assert_eq!(c.decide(1, status(200), None), Decision::Done);
}

#[test]
fn attempts_header_caps_but_never_raises() {
    let p = policy();
    let r = Retrier::new(&p, Some(1), &Method::GET, &HeaderMap::new());
    assert_eq!(r.max_attempts(), 1);
    let r = Retrier::new(&p, Some(9), &Method::GET, &HeaderMap::new());
    assert_eq!(r.max_attempts(), 3);
}

#[test]
fn post_is_retried_only_after_connect_failure_or_with_an_idempotency_key() {
    let mut c = Case::new();
    c.method = Method::POST;
    assert_eq!(
        c.decide(1, status(503), None),
        Decision::Skip(SkipReason::Method)
    );
    assert_eq!(
        c.decide(1, Outcome::Reset, None),
        Decision::Skip(SkipReason::Method)
    );
    assert_eq!(
        c.decide(1, Outcome::Timeout, None),
        Decision::Skip(SkipReason::Method)
    );
    assert_eq!(c.decide(1, Outcome::ConnectFailure, None), RETRY_100MS);
    c.request
        .insert("idempotency-key", HeaderValue::from_static("k-1"));
    assert_eq!(c.decide(1, status(503), None), RETRY_100MS);
}

#[test]
fn bodies_too_large_to_replay_are_not_retried() {
    let mut c = Case::new();
    c.replayable = false;
    assert_eq!(
        c.decide(1, status(502), None),
        Decision::Skip(SkipReason::BodyTooLarge)
    );
}

#[test]
fn retry_after_seconds_and_dates_replace_the_backoff_up_to_max() {
    let mut c = Case::new();
    c.response
        .insert("retry-after", HeaderValue::from_static("2"));
    assert_eq!(
        c.decide(1, status(429), None),
        Decision::Retry {
            delay: Duration::from_secs(2)
        }
    );
    // Only 429 and 503 ask to wait; a 502's Retry-After is ignored.
    assert_eq!(c.decide(1, status(502), None), RETRY_100MS);
    c.response
        .insert("retry-after", HeaderValue::from_static("11"));
    assert_eq!(
        c.decide(1, status(503), None),
        Decision::Skip(SkipReason::RetryAfterTooLong)
    );
    c.policy.retry_after.honor = false;
    assert_eq!(c.decide(1, status(503), None), RETRY_100MS);

    let now = SystemTime::now();
    let in_5s = httpdate::fmt_http_date(now + Duration::from_secs(5));
    let parsed = parse_retry_after(&HeaderValue::from_str(&in_5s).unwrap(), now).unwrap();
    assert!(
        parsed <= Duration::from_secs(5) && parsed >= Duration::from_secs(4),
        "{parsed:?}"
    );
    let past = httpdate::fmt_http_date(now - Duration::from_secs(60));
    assert_eq!(
        parse_retry_after(&HeaderValue::from_str(&past).unwrap(), now),
        Some(Duration::ZERO)
    );
    assert_eq!(
        parse_retry_after(&HeaderValue::from_static("soon"), now),
        None
    );
}

#[test]
fn a_retry_whose_backoff_crosses_the_deadline_is_skipped() {
    let mut c = Case::new();
    c.deadline = Duration::from_millis(100);
    assert_eq!(
        c.decide(1, status(503), None),
        Decision::Skip(SkipReason::Deadline)
    );
    c.deadline = Duration::from_millis(101);
    assert_eq!(c.decide(1, status(503), None), RETRY_100MS);
}

#[tokio::test(start_paused = true)]
async fn an_exhausted_budget_stops_retries_and_is_charged_only_when_a_retry_is_scheduled() {
    let c = Case::new();
    let budget = RetryBudget::new(&BudgetPolicy {
        ratio: 0.0,
        min_per_second: 1,
        window: Duration::from_secs(1),
    });
    // A non-retryable outcome does not touch the budget.
    assert_eq!(c.decide(1, status(200), Some(&budget)), Decision::Done);
    assert_eq!(c.decide(1, status(503), Some(&budget)), RETRY_100MS);
    assert_eq!(
        c.decide(1, status(503), Some(&budget)),
        Decision::Skip(SkipReason::Budget)
    );
}

#[test]
fn retry_reasons_name_the_outcome() {
    assert_eq!(retry_reason(Outcome::ConnectFailure), "connect_failure");
    assert_eq!(retry_reason(status(503)), "status_503");
    assert_eq!(retry_reason(Outcome::Timeout), "timeout");
}
