//! What a call gets from a breaker: a permit to record or release, or a refusal with the
//! time to wait; and what the breaker shows of itself to the admin API and gauges.

use std::time::Duration;

use crate::breaker::transition::{BreakerState, Transition};
use crate::breaker::window::WindowCounts;

/// Leave to make one call; hand it back through `record` or `release`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "a permit must be recorded or released"]
pub struct Permit {
    pub(super) generation: u64,
    pub(super) kind: PermitKind,
    /// Nanoseconds since the breaker's origin.
    pub(super) admitted_at: u64,
    /// Dry run only: the breaker would have refused this call.
    pub would_reject: bool,
}

impl Permit {
    /// True for a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.kind == PermitKind::Probe
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PermitKind {
    /// A call in the closed (or disabled) state: counted in the window.
    Counted,
    /// A half-open probe: decides whether the breaker closes.
    Probe,
    /// Let through without counting (dry run while open).
    Untracked,
}

/// The breaker refused a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// Time until the breaker lets a probe through (a hint while probes are busy or the
    /// breaker is forced open).
    pub retry_after: Duration,
}

/// What `admit` decided, and the lazy open → half-open transition it may have made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admission {
    /// The permit, or the refusal.
    pub decision: Result<Permit, Rejected>,
    /// Set when this admission moved the breaker to half-open.
    pub transition: Option<Transition>,
}

/// A breaker as the admin API and gauges show it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Snapshot {
    /// Current state.
    pub state: BreakerState,
    /// Counts over the current window.
    pub counts: WindowCounts,
    /// Time until half-open, while open.
    pub retry_after: Option<Duration>,
}
