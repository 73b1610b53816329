//! The breaker's state machine: closed → open → half-open → closed, plus the admin's
//! forced-open and disabled states. Pure: time comes in as an argument, randomness from a
//! seeded generator, and every transition is returned to the caller, which owns metrics and
//! logs. No task, no channel; open → half-open happens lazily on the next look at the state.
//!
//! Hot path: admitting in the closed state is one atomic load; recording a success is the
//! window's bucket increment plus a load. Only transitions take the (per-breaker) mutex.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use crate::breaker::ejection::Ejections;
use crate::breaker::permit::{Admission, Permit, PermitKind, Rejected, Snapshot};
use crate::breaker::policy::BreakerPolicy;
use crate::breaker::probes::ProbeSlots;
use crate::breaker::transition::STATE_BITS;
pub use crate::breaker::transition::{BreakerState, OpenReason, Transition};
use crate::breaker::window::Window;
use crate::outcome::Outcome;

/// Largest fraction cut from a re-open's duration, so sidecars that opened together do not
/// probe together.
pub const REOPEN_JITTER: f64 = 0.1;

/// What a caller is told to wait while half-open probes are all taken.
const PROBES_BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

/// One circuit breaker.
#[derive(Debug)]
pub struct StateMachine {
    policy: BreakerPolicy,
    origin: Instant,
    /// `generation << STATE_BITS | state`.
    word: AtomicU64,
    /// While open: nanoseconds since `origin` when half-open begins.
    open_until: AtomicU64,
    consecutive: AtomicU32,
    /// While half-open: probes in flight and successful probes.
    probes: ProbeSlots,
    window: Window,
    ejections: Option<Arc<Ejections>>,
    inner: Mutex<Inner>,
}

/// What only transitions touch.
#[derive(Debug)]
struct Inner {
    /// Re-opens since the breaker last closed: the open time is `open_for × 2^reopens`.
    reopens: u32,
    rng: SmallRng,
    /// This breaker holds one of its upstream's ejections.
    ejected: bool,
}

impl StateMachine {
    /// A closed breaker. `origin` is any instant not after the first `now` passed in; `seed`
    /// drives the re-open jitter; `ejections` is the upstream's cap for endpoint scope.
    pub fn new(
        policy: &BreakerPolicy,
        origin: Instant,
        seed: u64,
        ejections: Option<Arc<Ejections>>,
    ) -> Self {
        Self {
            policy: policy.clone(),
            origin,
            word: AtomicU64::new(BreakerState::Closed.code()),
            open_until: AtomicU64::new(0),
            consecutive: AtomicU32::new(0),
            probes: ProbeSlots::default(),
            window: Window::new(policy.window),
            ejections,
            inner: Mutex::new(Inner {
                reopens: 0,
                rng: SmallRng::seed_from_u64(seed),
                ejected: false,
            }),
        }
    }

    /// The policy this breaker runs.
    pub fn policy(&self) -> &BreakerPolicy {
        &self.policy
    }

    fn nanos(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The current state (without the lazy open → half-open step).
    pub fn state(&self) -> BreakerState {
        BreakerState::from_code(self.word.load(Ordering::Acquire))
    }

    /// Asks to make one call at `now`.
    pub fn admit(&self, now: Instant) -> Admission {
        let t = self.nanos(now);
        let mut transition = None;
        loop {
            let word = self.word.load(Ordering::Acquire);
            let generation = word >> STATE_BITS;
            let permit = |kind| Permit {
                generation,
                kind,
                admitted_at: t,
                would_reject: false,
            };
            let refuse = |retry_after| {
                if self.policy.dry_run {
                    Ok(Permit {
                        would_reject: true,
                        ..permit(PermitKind::Untracked)
                    })
                } else {
                    Err(Rejected { retry_after })
                }
            };
            let decision = match BreakerState::from_code(word) {
                BreakerState::Closed | BreakerState::Disabled => Ok(permit(PermitKind::Counted)),
                BreakerState::ForcedOpen => refuse(self.policy.open_for),
                BreakerState::Open => {
                    let until = self.open_until.load(Ordering::Acquire);
                    if t < until {
                        refuse(Duration::from_nanos(until - t))
                    } else {
                        if let Some(tr) = self.to_half_open(word) {
                            transition = Some(tr);
                        }
                        continue;
                    }
                }
                BreakerState::HalfOpen => {
                    match self.probes.take(generation, self.policy.half_open_calls) {
                        Some(true) => Ok(permit(PermitKind::Probe)),
                        Some(false) => refuse(PROBES_BUSY_RETRY_AFTER),
                        None => continue,
                    }
                }
            };
            return Admission {
                decision,
                transition,
            };
        }
    }

    /// True when `admit` would let a call through now (no permit taken, no state change).
    pub fn available(&self, now: Instant) -> bool {
        if self.policy.dry_run {
            return true;
        }
        let word = self.word.load(Ordering::Acquire);
        match BreakerState::from_code(word) {
            BreakerState::Closed | BreakerState::Disabled => true,
            BreakerState::ForcedOpen => false,
            BreakerState::Open => self.nanos(now) >= self.open_until.load(Ordering::Acquire),
            BreakerState::HalfOpen => self
                .probes
                .has_room(word >> STATE_BITS, self.policy.half_open_calls),
        }
    }

    /// Records how an admitted call ended; may open or close the breaker.
    pub fn record(&self, permit: Permit, outcome: Outcome, now: Instant) -> Option<Transition> {
        let word = self.word.load(Ordering::Acquire);
        if word >> STATE_BITS != permit.generation {
            return None; // admitted before the last transition: it says nothing about now
        }
        let t = self.nanos(now);
        let failure = self.policy.failure_on.matches(outcome);
        let slow = self
            .policy
            .slow_call
            .is_some_and(|s| t.saturating_sub(permit.admitted_at) >= duration_nanos(s.duration));
        match (BreakerState::from_code(word), permit.kind) {
            (BreakerState::Closed, PermitKind::Counted) => {
                self.window.record(Duration::from_nanos(t), failure, slow);
                let in_a_row = if failure {
                    self.consecutive.fetch_add(1, Ordering::Relaxed) + 1
                } else {
                    if self.consecutive.load(Ordering::Relaxed) != 0 {
                        self.consecutive.store(0, Ordering::Relaxed);
                    }
                    0
                };
                // A success only lowers the rates, so only failures and slow calls can open.
                if !failure && !slow {
                    return None;
                }
                let reason = self.trip_reason(in_a_row, Duration::from_nanos(t))?;
                self.open(word, reason, t)
            }
            (BreakerState::Disabled, PermitKind::Counted) => {
                self.window.record(Duration::from_nanos(t), failure, slow);
                None
            }
            (BreakerState::HalfOpen, PermitKind::Probe) => {
                let ok = !failure && !slow;
                let successes = self.probes.give_back(permit.generation, ok)?;
                if !ok {
                    self.open(word, OpenReason::ProbeFailed, t)
                } else if successes >= self.policy.success_threshold {
                    self.close(word)
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// Hands back a permit whose call ended without an outcome (cancelled), freeing its
    /// probe slot.
    pub fn release(&self, permit: Permit) {
        if permit.kind == PermitKind::Probe {
            let _ = self.probes.give_back(permit.generation, false);
        }
    }

    /// The lazy open → half-open step, for scrapes and admin reads.
    pub fn observe(&self, now: Instant) -> Option<Transition> {
        let word = self.word.load(Ordering::Acquire);
        if BreakerState::from_code(word) == BreakerState::Open
            && self.nanos(now) >= self.open_until.load(Ordering::Acquire)
        {
            return self.to_half_open(word);
        }
        None
    }

    /// State, window counts and time until half-open, as of `now` (after `observe`).
    pub fn snapshot(&self, now: Instant) -> Snapshot {
        let t = self.nanos(now);
        let state = self.state();
        let retry_after = (state == BreakerState::Open).then(|| {
            Duration::from_nanos(self.open_until.load(Ordering::Acquire).saturating_sub(t))
        });
        Snapshot {
            state,
            counts: self.window.counts(Duration::from_nanos(t)),
            retry_after,
        }
    }

    /// Admin: open until reset, whatever the calls say.
    pub fn force_open(&self) -> Option<Transition> {
        self.set(BreakerState::ForcedOpen, Some(OpenReason::Forced))
    }

    /// Admin: let everything through until reset; never open.
    pub fn disable(&self) -> Option<Transition> {
        self.set(BreakerState::Disabled, None)
    }

    /// Admin: closed with a fresh window and open time, automatic again.
    pub fn reset(&self) -> Option<Transition> {
        self.set(BreakerState::Closed, None)
    }

    // --- transitions (under the mutex) ---

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes `to` as the next generation; the caller holds the lock.
    fn publish(&self, from_word: u64, to: BreakerState) -> u64 {
        let generation = (from_word >> STATE_BITS) + 1;
        let word = (generation << STATE_BITS) | to.code();
        self.word.store(word, Ordering::Release);
        generation
    }

    fn open(&self, expected: u64, reason: OpenReason, t: u64) -> Option<Transition> {
        let mut inner = self.lock();
        if self.word.load(Ordering::Acquire) != expected {
            return None; // another call got here first
        }
        let from = BreakerState::from_code(expected);
        if from == BreakerState::Closed {
            if let Some(ejections) = &self.ejections
                && !inner.ejected
            {
                if !ejections.try_acquire() {
                    return None; // max_ejection reached: stay in rotation
                }
                inner.ejected = true;
            }
            inner.reopens = 0;
        } else {
            inner.reopens = inner.reopens.saturating_add(1);
        }
        let open_for = self.open_time(&mut inner);
        self.open_until.store(
            t.saturating_add(duration_nanos(open_for)),
            Ordering::Release,
        );
        self.consecutive.store(0, Ordering::Relaxed);
        self.publish(expected, BreakerState::Open);
        Some(Transition {
            from,
            to: BreakerState::Open,
            reason: Some(reason),
        })
    }

    /// `open_for × 2^reopens`, capped at `max_open_for`; re-opens lose up to
    /// `REOPEN_JITTER` of it.
    fn open_time(&self, inner: &mut Inner) -> Duration {
        let open_for = self.policy.open_for;
        if inner.reopens == 0 {
            return open_for;
        }
        let cap = self.policy.max_open_for.max(open_for);
        let grown = open_for
            .checked_mul(1u32.checked_shl(inner.reopens).unwrap_or(u32::MAX))
            .unwrap_or(cap)
            .min(cap);
        grown.mul_f64(1.0 - inner.rng.random_range(0.0..REOPEN_JITTER))
    }

    fn to_half_open(&self, expected: u64) -> Option<Transition> {
        let _inner = self.lock();
        if self.word.load(Ordering::Acquire) != expected {
            return None;
        }
        self.probes.start((expected >> STATE_BITS) + 1);
        self.publish(expected, BreakerState::HalfOpen);
        Some(Transition {
            from: BreakerState::Open,
            to: BreakerState::HalfOpen,
            reason: None,
        })
    }

    fn close(&self, expected: u64) -> Option<Transition> {
        let mut inner = self.lock();
        if self.word.load(Ordering::Acquire) != expected {
            return None;
        }
        self.fresh_start(&mut inner);
        self.publish(expected, BreakerState::Closed);
        Some(Transition {
            from: BreakerState::from_code(expected),
            to: BreakerState::Closed,
            reason: None,
        })
    }

    /// Admin transitions: always win, from any state.
    fn set(&self, to: BreakerState, reason: Option<OpenReason>) -> Option<Transition> {
        let mut inner = self.lock();
        let word = self.word.load(Ordering::Acquire);
        let from = BreakerState::from_code(word);
        if to != BreakerState::ForcedOpen {
            self.fresh_start(&mut inner);
        }
        self.publish(word, to);
        (from != to).then_some(Transition { from, to, reason })
    }

    /// Forgets the past: window, streak, open-time growth, and the ejection held.
    fn fresh_start(&self, inner: &mut Inner) {
        self.window.clear();
        self.consecutive.store(0, Ordering::Relaxed);
        inner.reopens = 0;
        if inner.ejected {
            inner.ejected = false;
            if let Some(ejections) = &self.ejections {
                ejections.release();
            }
        }
    }

    // --- rules and probe slots ---

    fn trip_reason(&self, in_a_row: u32, now: Duration) -> Option<OpenReason> {
        let p = &self.policy;
        if p.consecutive_failures > 0 && in_a_row >= p.consecutive_failures {
            return Some(OpenReason::ConsecutiveFailures);
        }
        if p.failure_rate.is_none() && p.slow_call.is_none() {
            return None;
        }
        let counts = self.window.counts(now);
        if counts.calls < u64::from(p.minimum_calls) {
            return None;
        }
        if p.failure_rate.is_some_and(|r| counts.failure_ratio() >= r) {
            return Some(OpenReason::FailureRate);
        }
        if p.slow_call.is_some_and(|s| counts.slow_ratio() >= s.rate) {
            return Some(OpenReason::SlowCallRate);
        }
        None
    }
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
