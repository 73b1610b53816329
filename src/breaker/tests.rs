//! The state machine driven step by step (each trip rule, probes, re-open growth, admin
//! states, dry run, ejection cap) and by proptest over random call sequences.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use proptest::prelude::*;
use tokio::time::Instant;

use super::policy::{BreakerPolicy, BreakerScope, BreakerWindow, SlowCallPolicy};
use super::state::{BreakerState, Ejections, OpenReason, Permit, REOPEN_JITTER, StateMachine};
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
fn call(m: &StateMachine, at: Instant, outcome: Outcome) -> Option<super::state::Transition> {
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

// --- property tests ---

#[derive(Clone, Debug)]
enum Op {
    Admit,
    /// Record the n-th outstanding permit (modulo) with this outcome.
    Record(usize, bool),
    Release(usize),
    Advance(u32),
    Observe,
    ForceOpen,
    Disable,
    Reset,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => Just(Op::Admit),
        8 => (any::<usize>(), any::<bool>()).prop_map(|(i, ok)| Op::Record(i, ok)),
        1 => any::<usize>().prop_map(Op::Release),
        4 => (1u32..150).prop_map(Op::Advance),
        // Admin actions are rare, so long automatic sequences happen in between.
        2 => (0u8..100).prop_map(|n| match n {
            0 => Op::ForceOpen,
            1 => Op::Disable,
            2..=4 => Op::Reset,
            _ => Op::Observe,
        }),
    ]
}

/// What the test knows about the machine it drives.
#[derive(Default)]
struct Model {
    /// Outstanding permits with their admission time (ms) and half-open period.
    permits: Vec<(Permit, u32, u32)>,
    /// Half-open periods so far.
    period: u32,
    /// Probe permits of the current half-open period.
    probes: usize,
    /// Successful probes recorded in the current half-open period.
    successes: u32,
    /// Re-opens since the last close.
    reopens: u32,
}

impl Model {
    fn enter_half_open(&mut self) {
        self.probes = 0;
        self.successes = 0;
        self.period += 1;
    }
}

fn check(p: &BreakerPolicy, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let t0 = Instant::now();
    let m = machine(p, t0);
    let mut model = Model::default();
    let mut now_ms = 0u32;
    for op in ops {
        let now = t0 + MS * now_ms;
        let before = m.state();
        let transition = match op {
            Op::Admit => {
                let a = m.admit(now);
                if a.transition.is_some_and(|t| t.to == BreakerState::HalfOpen) {
                    // The permit belongs to the half-open period this admission started.
                    model.enter_half_open();
                }
                match a.decision {
                    Ok(permit) => {
                        prop_assert!(
                            !matches!(before, BreakerState::ForcedOpen) || p.dry_run,
                            "forced open admits nothing"
                        );
                        model.probes += usize::from(permit.is_probe());
                        model.permits.push((permit, now_ms, model.period));
                    }
                    Err(_) => {
                        prop_assert!(!p.dry_run, "dry run never refuses");
                        prop_assert!(before != BreakerState::Disabled);
                    }
                }
                prop_assert!(
                    model.probes <= p.half_open_calls as usize,
                    "too many probes"
                );
                a.transition
            }
            Op::Record(i, ok) if !model.permits.is_empty() => {
                let (permit, at, period) = model.permits.remove(i % model.permits.len());
                let outcome = if ok { OK } else { FAIL };
                let live_probe = permit.is_probe()
                    && period == model.period
                    && m.state() == BreakerState::HalfOpen;
                let slow = p
                    .slow_call
                    .is_some_and(|s| MS * (now_ms - at) >= s.duration);
                let t = m.record(permit, outcome, now);
                if live_probe && model.probes > 0 {
                    model.probes -= 1;
                    model.successes += u32::from(ok && !slow);
                }
                t
            }
            Op::Release(i) if !model.permits.is_empty() => {
                let (permit, _, period) = model.permits.remove(i % model.permits.len());
                if permit.is_probe()
                    && period == model.period
                    && m.state() == BreakerState::HalfOpen
                    && model.probes > 0
                {
                    model.probes -= 1;
                }
                m.release(permit);
                None
            }
            Op::Advance(ms) => {
                now_ms += ms;
                None
            }
            Op::ForceOpen => m.force_open(),
            Op::Disable => m.disable(),
            Op::Reset => m.reset(),
            Op::Observe | Op::Record(..) | Op::Release(..) => m.observe(now),
        };
        let Some(t) = transition else {
            if matches!(op, Op::Admit | Op::Record(..) | Op::Observe) {
                prop_assert_eq!(before, m.state(), "a state change was not reported");
            }
            continue;
        };
        prop_assert_eq!(t.from, before);
        prop_assert_eq!(t.to, m.state());
        if matches!(before, BreakerState::ForcedOpen | BreakerState::Disabled) {
            prop_assert!(
                matches!(op, Op::ForceOpen | Op::Disable | Op::Reset),
                "only the admin leaves an admin state"
            );
        }
        match (t.from, t.to) {
            (BreakerState::HalfOpen, BreakerState::Closed) if !matches!(op, Op::Reset) => {
                prop_assert!(model.successes >= p.success_threshold, "closed early");
            }
            (_, BreakerState::Open) => {
                let open_for = m.snapshot(now).retry_after.unwrap();
                if t.from == BreakerState::Closed {
                    model.reopens = 0;
                    prop_assert_eq!(open_for, p.open_for);
                } else {
                    model.reopens += 1;
                    let full = p
                        .open_for
                        .saturating_mul(1 << model.reopens.min(20))
                        .min(p.max_open_for);
                    prop_assert!(open_for <= full);
                    prop_assert!(open_for >= full.mul_f64(1.0 - REOPEN_JITTER));
                }
            }
            _ => {}
        }
        if t.to != BreakerState::HalfOpen {
            model.probes = 0;
        } else if !matches!(op, Op::Admit) {
            model.enter_half_open();
        }
        if matches!(t.to, BreakerState::Closed | BreakerState::Disabled) {
            model.reopens = 0;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_state_machine_keeps_its_promises(
        ops in prop::collection::vec(op(), 1..300),
        half_open_calls in 1u32..4,
        success_threshold in 1u32..5,
        rate in prop::option::of(0.2f64..1.0),
        slow in any::<bool>(),
        counted in any::<bool>(),
        dry_run in any::<bool>(),
    ) {
        let p = BreakerPolicy {
            half_open_calls,
            success_threshold,
            failure_rate: rate,
            window: if counted { BreakerWindow::Calls(8) } else { BreakerWindow::Time(MS * 800) },
            slow_call: slow.then_some(SlowCallPolicy { duration: MS * 60, rate: 0.5 }),
            dry_run,
            ..policy()
        };
        check(&p, ops)?;
    }
}
