//! What every try pays the breaker: admit + record on a closed breaker, alone and with two
//! threads hammering the same breaker. The state machine gets a fixed `now` (its own cost);
//! `layer` is the request path's call, clock reads included, and `clock` is one clock read
//! in this build (tokio's test-util clock, which benches link, costs more than release's).
//! Naive baseline: one mutex around a deque of recent outcomes, which serialises every
//! request of the upstream.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::StatusCode;
use rampart::breaker::Breakers;
use rampart::breaker::policy::{BreakerPolicy, BreakerScope, BreakerWindow};
use rampart::breaker::state::StateMachine;
use rampart::metrics::Metrics;
use rampart::outcome::{Outcome, OutcomeFilter};
use tokio::time::Instant;

const OK: Outcome = Outcome::Success(StatusCode::OK);

fn policy(window: BreakerWindow) -> BreakerPolicy {
    let mut failure_on = OutcomeFilter::empty();
    failure_on.add_status_range(500, 599);
    failure_on.connect_failure = true;
    failure_on.reset = true;
    failure_on.timeout = true;
    BreakerPolicy {
        consecutive_failures: 5,
        failure_rate: Some(0.5),
        minimum_calls: 10,
        window,
        slow_call: None,
        open_for: Duration::from_secs(30),
        max_open_for: Duration::from_secs(300),
        half_open_calls: 3,
        success_threshold: 3,
        failure_on,
        scope: BreakerScope::Upstream,
        max_ejection: 0.5,
        dry_run: false,
    }
}

/// The naive breaker window: every record takes one lock.
struct MutexWindow(Mutex<(VecDeque<bool>, u32)>);

impl MutexWindow {
    fn record(&self, failure: bool) -> bool {
        let mut w = self.0.lock().unwrap();
        w.0.push_back(failure);
        if w.0.len() > 100 {
            w.0.pop_front();
        }
        w.1 = if failure { w.1 + 1 } else { 0 };
        w.1 >= 5
    }
}

fn uncontended(c: &mut Criterion) {
    let mut group = c.benchmark_group("breaker/admit_record");
    let windows = [
        ("time_60s", BreakerWindow::Time(Duration::from_secs(60))),
        ("count_100", BreakerWindow::Calls(100)),
    ];
    for (name, window) in windows {
        let m = StateMachine::new(&policy(window), Instant::now(), 1, None);
        let now = Instant::now();
        group.bench_function(BenchmarkId::new("state_machine", name), |b| {
            b.iter(|| {
                let permit = m.admit(now).decision.unwrap();
                m.record(permit, OK, now)
            })
        });
    }
    // The layer the request path uses: permit guard, metrics on transitions.
    let metrics = Metrics::new();
    let up = metrics.upstream("svc");
    let breakers = Breakers::new(
        "svc",
        &policy(BreakerWindow::Time(Duration::from_secs(60))),
        &["http://127.0.0.1:1"],
        &up,
    );
    group.bench_function("layer", |b| {
        b.iter(|| {
            let permit = breakers.admit(0, Instant::now()).unwrap();
            permit.record(OK, Instant::now())
        })
    });
    let now = Instant::now();
    group.bench_function("layer_fixed_now", |b| {
        b.iter(|| breakers.admit(0, now).unwrap().record(OK, now))
    });
    group.bench_function("clock", |b| b.iter(Instant::now));
    let naive = MutexWindow(Mutex::new((VecDeque::new(), 0)));
    group.bench_function("baseline_mutex_window", |b| b.iter(|| naive.record(false)));
    group.finish();
}

/// Runs `op` `iters` times on each of `threads` threads at once; returns the wall time,
/// so the figure is time per operation per thread (flat when nothing serialises).
fn on_threads(threads: usize, iters: u64, op: Arc<dyn Fn() + Send + Sync>) -> Duration {
    let start = std::sync::Barrier::new(threads + 1);
    std::thread::scope(|s| {
        for _ in 0..threads {
            let op = op.clone();
            let start = &start;
            s.spawn(move || {
                start.wait();
                for _ in 0..iters {
                    op();
                }
            });
        }
        start.wait();
        let began = Instant::now();
        // Scoped threads are joined when the scope ends; time until then.
        began
    })
    .elapsed()
}

fn contended(c: &mut Criterion) {
    let mut group = c.benchmark_group("breaker/threads");
    let naive = Arc::new(MutexWindow(Mutex::new((VecDeque::new(), 0))));
    let now = Instant::now();
    for threads in [1usize, 2] {
        let windows = [
            ("time_60s", BreakerWindow::Time(Duration::from_secs(60))),
            ("count_100", BreakerWindow::Calls(100)),
        ];
        for (name, window) in windows {
            let m = Arc::new(StateMachine::new(&policy(window), now, 1, None));
            let op: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
                let permit = m.admit(now).decision.unwrap();
                let _ = m.record(permit, OK, now);
            });
            let id = BenchmarkId::new(format!("state_machine_{name}"), threads);
            group.bench_function(id, |b| {
                b.iter_custom(|iters| on_threads(threads, iters, op.clone()))
            });
        }
        let n = naive.clone();
        let op: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
            n.record(false);
        });
        group.bench_function(BenchmarkId::new("baseline_mutex_window", threads), |b| {
            b.iter_custom(|iters| on_threads(threads, iters, op.clone()))
        });
    }
    group.finish();
}

criterion_group!(benches, uncontended, contended);
criterion_main!(benches);
