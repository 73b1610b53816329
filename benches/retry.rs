//! The retry decision path: what every failed try pays before the next one (outcome
//! classification, method and body checks, backoff, deadline, budget).

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, Method, StatusCode};
use rampart::outcome::{Outcome, OutcomeFilter};
use rampart::retry::Retrier;
use rampart::retry::budget::RetryBudget;
use rampart::retry::policy::*;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::time::Instant;

fn policy() -> RetryPolicy {
    let mut on = OutcomeFilter::empty();
    on.connect_failure = true;
    on.reset = true;
    on.timeout = true;
    on.add_status_range(502, 504);
    RetryPolicy {
        attempts: 3,
        on,
        methods: vec![Method::GET, Method::HEAD, Method::PUT, Method::DELETE],
        backoff: BackoffPolicy {
            strategy: BackoffStrategy::ExponentialJitter,
            base: Duration::from_millis(25),
            max: Duration::from_secs(1),
        },
        retry_after: RetryAfterPolicy {
            honor: true,
            max: Duration::from_secs(10),
        },
        budget: Some(BudgetPolicy {
            ratio: 0.2,
            min_per_second: 10,
            window: Duration::from_secs(10),
        }),
        max_body_bytes: 65536,
        hedge_delay: Duration::ZERO,
    }
}

fn decisions(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let policy = policy();
    let budget = RetryBudget::new(policy.budget.as_ref().unwrap());
    let headers = HeaderMap::new();
    let mut rng = SmallRng::seed_from_u64(1);
    let deadline = Instant::now() + Duration::from_secs(3600);

    c.bench_function("retry/decide_success", |b| {
        let r = Retrier::new(&policy, None, &Method::GET, &headers);
        let ok = Outcome::from_status(StatusCode::OK);
        b.iter(|| {
            r.decide(
                1,
                ok,
                Some(&headers),
                true,
                Instant::now(),
                deadline,
                Some(&budget),
                &mut rng,
            )
        })
    });
    c.bench_function("retry/decide_503_with_budget", |b| {
        let r = Retrier::new(&policy, None, &Method::GET, &headers);
        let failed = Outcome::from_status(StatusCode::SERVICE_UNAVAILABLE);
        b.iter(|| {
            budget.deposit();
            r.decide(
                1,
                failed,
                Some(&headers),
                true,
                Instant::now(),
                deadline,
                Some(&budget),
                &mut rng,
            )
        })
    });
    c.bench_function("retry/budget_deposit", |b| b.iter(|| budget.deposit()));
}

criterion_group!(benches, decisions);
criterion_main!(benches);
