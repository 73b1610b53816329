//! The state machine driven step by step: each trip rule, probes, re-open growth, admin
//! states, dry run, the ejection cap, and the upstream state over endpoint breakers.
//! `model` drives it with proptest over random call sequences.

mod model;

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use tokio::time::Instant;

use super::ejection::Ejections;
use super::permit::Permit;
use super::policy::{BreakerPolicy, BreakerScope, BreakerWindow, SlowCallPolicy};
use super::state::{REOPEN_JITTER, StateMachine};
use super::transition::{BreakerState, OpenReason, Transition};
use crate::outcome::{Outcome, OutcomeFilter};

const MS: Duration = Duration::from_millis(1);
const OK: Outcome = Outcome::Success(StatusCode::OK);
const FAIL: Outcome = Outcome::Status(StatusCode::SERVICE_UNAVAILABLE);

fn policy() -> BreakerPolicy {
    let mut failure_on = OutcomeFilter::empty();
    failure_on.add_status_range(500, 599);
    failure_on.connect_failure = true;
    failure_on.reset = true;
    failure_on.timeout = true;
    BreakerPolicy {
        consecutive_failures: 3,
        failure_rate: None,
        minimum_calls: 4,
        window: BreakerWindow::Time(MS * 1600),
        slow_call: None,
        open_for: MS * 100,
        max_open_for: MS * 1000,
        half_open_calls: 2,
        success_threshold: 2,
        failure_on,
        scope: BreakerScope::Upstream,
        max_ejection: 0.5,
        dry_run: false,
    }
}

/// Only the failure-rate rule: 50 % over at least 4 calls.
fn rate_only() -> BreakerPolicy {
    BreakerPolicy {
        consecutive_failures: 0,
        failure_rate: Some(0.5),
        ..policy()
    }
}

fn machine(p: &BreakerPolicy, t0: Instant) -> StateMachine {
    StateMachine::new(p, t0, 7, None)
}

/// Admits, then records `outcome` at once.
fn call(m: &StateMachine, at: Instant, outcome: Outcome) -> Option<Transition> {
    let permit = m.admit(at).decision.expect("admitted");
    m.record(permit, outcome, at)
}

#[test]
fn consecutive_failures_open_and_a_success_breaks_the_streak() {
    let t0 = Instant::now();
    let m = machine(&policy(), t0);
    assert!(call(&m, t0, FAIL).is_none());
    assert!(call(&m, t0, FAIL).is_none());
    assert!(call(&m, t0, OK).is_none());
    assert!(call(&m, t0, FAIL).is_none());
    assert!(call(&m, t0, FAIL).is_none());
    let t = call(&m, t0, FAIL).expect("third failure in a row opens");
    assert_eq!(t.to, BreakerState::Open);
    assert_eq!(t.reason, Some(OpenReason::ConsecutiveFailures));
    let refused = m.admit(t0 + MS * 40).decision.unwrap_err();
    assert_eq!(refused.retry_after, MS * 60);
}

#[test]
fn only_failure_on_outcomes_count() {
    let t0 = Instant::now();
    let m = machine(&policy(), t0);
    for _ in 0..10 {
        let not_failures = [
            Outcome::Success(StatusCode::TOO_MANY_REQUESTS),
            Outcome::Success(StatusCode::NOT_FOUND),
        ];
        for o in not_failures {
            assert!(call(&m, t0, o).is_none());
        }
    }
    assert_eq!(m.state(), BreakerState::Closed);
    assert!(call(&m, t0, Outcome::ConnectFailure).is_none());
    assert!(call(&m, t0, Outcome::Timeout).is_none());
    assert!(call(&m, t0, Outcome::Reset).is_some());
}

#[test]
fn the_failure_rate_opens_once_minimum_calls_are_in_the_window() {
    let t0 = Instant::now();
    let m = machine(&rate_only(), t0);
    // F S F: 2/3 failures but only 3 calls.
    for o in [FAIL, OK, FAIL] {
        assert!(call(&m, t0, o).is_none());
    }
    // The 4th call is a success: 2/4 = 50 %, but a success never opens.
    assert!(call(&m, t0, OK).is_none());
    let t = call(&m, t0, FAIL).expect("3/5 >= 50 %");
    assert_eq!(t.reason, Some(OpenReason::FailureRate));
}

#[test]
fn old_calls_leave_the_time_window() {
    let t0 = Instant::now();
    let m = machine(&rate_only(), t0);
    for o in [FAIL, FAIL, FAIL] {
        assert!(call(&m, t0, o).is_none());
    }
    // 1.6 s later those three have left the window: one new failure is 1 call, not 4.
    assert!(call(&m, t0 + MS * 1700, FAIL).is_none());
    assert_eq!(m.snapshot(t0 + MS * 1700).counts.calls, 1);
}

#[test]
fn the_slow_call_rate_opens() {
    let p = BreakerPolicy {
        consecutive_failures: 0,
        slow_call: Some(SlowCallPolicy {
            duration: MS * 50,
            rate: 0.75,
        }),
        ..policy()
    };
    let t0 = Instant::now();
    let m = machine(&p, t0);
    let mut last = None;
    for (i, took) in [60u32, 10, 70, 80].into_iter().enumerate() {
        let at = t0 + MS * (i as u32 * 100);
        let permit = m.admit(at).decision.unwrap();
        last = m.record(permit, OK, at + MS * took);
    }
    let t = last.expect("3 of 4 calls slow");
    assert_eq!(t.reason, Some(OpenReason::SlowCallRate));
}

#[test]
fn half_open_admits_limited_probes_and_closes_after_enough_successes() {
    let t0 = Instant::now();
    let m = machine(&policy(), t0);
    for _ in 0..3 {
        let _ = call(&m, t0, FAIL);
    }
    let later = t0 + MS * 100;
    let a = m.admit(later);
    assert_eq!(a.transition.map(|t| t.to), Some(BreakerState::HalfOpen));
    let p1 = a.decision.unwrap();
    let p2 = m.admit(later).decision.unwrap();
    assert!(p1.is_probe() && p2.is_probe());
    assert!(m.admit(later).decision.is_err(), "third probe refused");
    // A cancelled probe frees its slot.
    m.release(p2);
    let p3 = m.admit(later).decision.unwrap();
    assert!(m.record(p1, OK, later).is_none());
    let t = m.record(p3, OK, later).expect("second success closes");
    assert_eq!(
        (t.from, t.to),
        (BreakerState::HalfOpen, BreakerState::Closed)
    );
    assert_eq!(m.snapshot(later).counts.calls, 0, "fresh window");
}

#[test]
fn a_failed_probe_reopens_for_twice_as_long_up_to_the_cap() {
    let t0 = Instant::now();
    let m = machine(&policy(), t0);
    for _ in 0..3 {
        let _ = call(&m, t0, FAIL);
    }
    let mut now = t0;
    let mut open_for = MS * 100;
    for round in 1..=6 {
        now += open_for;
        let probe = m.admit(now).decision.unwrap();
        let t = m.record(probe, FAIL, now).expect("probe failure re-opens");
        assert_eq!(t.reason, Some(OpenReason::ProbeFailed));
        let full = (MS * 100 * (1 << round)).min(MS * 1000);
        open_for = m.snapshot(now).retry_after.unwrap();
        assert!(
            open_for <= full && open_for >= full.mul_f64(1.0 - REOPEN_JITTER),
            "round {round}: {open_for:?} vs {full:?}"
        );
    }
}

#[test]
fn admin_states_win_until_reset() {
    let t0 = Instant::now();
    let m = machine(&policy(), t0);
    let t = m.force_open().unwrap();
    assert_eq!(t.reason, Some(OpenReason::Forced));
    for i in 0..5 {
        assert!(m.admit(t0 + MS * 1000 * i).decision.is_err());
        assert!(m.observe(t0 + MS * 1000 * i).is_none());
    }
    m.disable();
    for _ in 0..10 {
        assert!(call(&m, t0, FAIL).is_none());
    }
    assert_eq!(m.state(), BreakerState::Disabled);
    assert_eq!(m.snapshot(t0).counts.failures, 10, "still counted");
    let t = m.reset().unwrap();
    assert_eq!(t.to, BreakerState::Closed);
    assert_eq!(m.snapshot(t0).counts.calls, 0);
    assert!(m.reset().is_none(), "closed already");
}

#[test]
fn dry_run_tracks_state_but_never_refuses() {
    let p = BreakerPolicy {
        dry_run: true,
        ..policy()
    };
    let t0 = Instant::now();
    let m = machine(&p, t0);
    for _ in 0..3 {
        let _ = call(&m, t0, FAIL);
    }
    assert_eq!(m.state(), BreakerState::Open);
    let permit = m.admit(t0).decision.expect("dry run admits");
    assert!(permit.would_reject);
    m.force_open();
    assert!(m.admit(t0).decision.unwrap().would_reject);
}

#[test]
fn the_ejection_cap_keeps_breakers_closed() {
    let t0 = Instant::now();
    let cap = Arc::new(Ejections::new(1));
    let a = StateMachine::new(&policy(), t0, 1, Some(cap.clone()));
    let b = StateMachine::new(&policy(), t0, 2, Some(cap.clone()));
    for _ in 0..3 {
        let _ = call(&a, t0, FAIL);
        let _ = call(&b, t0, FAIL);
    }
    assert_eq!(
        (a.state(), b.state()),
        (BreakerState::Open, BreakerState::Closed)
    );
    // Once `a` closes again, `b` may open.
    a.reset();
    assert!(call(&b, t0, FAIL).is_some());
    assert_eq!(cap.current(), 1);
}

#[test]
fn the_upstream_is_open_only_when_every_endpoint_is() {
    use BreakerState::*;
    let agg = |states: &[BreakerState]| super::aggregate(states.iter().copied());
    assert_eq!(agg(&[Open]), Open);
    assert_eq!(agg(&[Open, Closed, Open]), Closed);
    assert_eq!(agg(&[Open, ForcedOpen]), Open);
    assert_eq!(agg(&[Open, HalfOpen]), HalfOpen);
    assert_eq!(agg(&[ForcedOpen, ForcedOpen]), ForcedOpen);
    assert_eq!(agg(&[Disabled, Disabled]), Disabled);
    assert_eq!(agg(&[Disabled, Open]), Closed);
}

/// Collects what a fmt subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn every_transition_logs_one_info_event_and_moves_the_gauge() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(move || writer.clone())
        .finish();
    let metrics = crate::metrics::Metrics::new();
    let up = metrics.upstream("svc");
    let breakers = super::Breakers::new("svc", &policy(), &["http://10.0.0.1:80"], &up);
    tracing::subscriber::with_default(subscriber, || {
        breakers.act(super::Action::ForceOpen);
        assert!(
            metrics
                .render()
                .contains("rampart_circuit_breaker_state{upstream=\"svc\"} 2")
        );
        breakers.act(super::Action::Reset);
    });
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "{text}");
    let fields = |i: usize, key: &str| events[i]["fields"][key].clone();
    assert_eq!(events[0]["level"], "INFO");
    assert_eq!(fields(0, "upstream"), "svc");
    assert_eq!(
        (fields(0, "from"), fields(0, "to"), fields(0, "reason")),
        ("closed".into(), "forced_open".into(), "forced".into())
    );
    assert_eq!(
        (fields(1, "from"), fields(1, "to")),
        ("forced_open".into(), "closed".into())
    );
    assert!(metrics.render().contains(
        "rampart_circuit_breaker_transitions_total{upstream=\"svc\",from=\"open\",to=\"closed\"} 1"
    ));
}
