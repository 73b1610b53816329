//! Proptest over random sequences of admissions, outcomes, cancellations, time steps and
//! admin actions, checked against what the test can know: never more than
//! `half_open_calls` probes, never closed without `success_threshold` successful probes,
//! open times that double up to the cap, admin states that only the admin leaves, dry runs
//! that never refuse, and every state change reported.

use proptest::prelude::*;

use super::*;

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
