//! What a breaker can be and how it changes: its states (with their JSON, gauge and label
//! names), why it opens, and the transitions the state machine reports to its caller.

/// Bits of a state word that hold the state; the generation is above them.
pub(super) const STATE_BITS: u32 = 3;
const STATE_MASK: u64 = (1 << STATE_BITS) - 1;

/// A breaker's state, as the admin API names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Calls flow; outcomes are counted.
    Closed,
    /// A few probe calls test the upstream.
    HalfOpen,
    /// Calls are refused until `open_for` has passed.
    Open,
    /// Open by the admin until reset.
    ForcedOpen,
    /// Switched off by the admin until reset: everything passes, nothing opens it.
    Disabled,
}

impl BreakerState {
    const ALL: [BreakerState; 5] = [
        BreakerState::Closed,
        BreakerState::HalfOpen,
        BreakerState::Open,
        BreakerState::ForcedOpen,
        BreakerState::Disabled,
    ];

    /// The JSON name (SPEC §6).
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Open => "open",
            BreakerState::ForcedOpen => "forced_open",
            BreakerState::Disabled => "disabled",
        }
    }

    /// The state gauge value: 0 closed, 1 half-open, 2 open (forced open too; disabled is 0).
    pub fn gauge(self) -> f64 {
        match self {
            BreakerState::Closed | BreakerState::Disabled => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open | BreakerState::ForcedOpen => 2.0,
        }
    }

    /// The `from`/`to` label of `rampart_circuit_breaker_transitions_total`.
    pub fn metric_label(self) -> &'static str {
        match self {
            BreakerState::Closed | BreakerState::Disabled => "closed",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Open | BreakerState::ForcedOpen => "open",
        }
    }

    /// The low bits of a state word.
    pub(super) fn code(self) -> u64 {
        self as u64
    }

    /// The state in the low `STATE_BITS` of a state word.
    pub(super) fn from_code(word: u64) -> Self {
        Self::ALL[(word & STATE_MASK) as usize]
    }
}

/// Why a breaker opened (`rampart_circuit_breaker_opened_total{reason}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenReason {
    /// `consecutive_failures` failures in a row.
    ConsecutiveFailures,
    /// The failure rate over the window reached `failure_rate`.
    FailureRate,
    /// The slow-call rate over the window reached `slow_call.rate`.
    SlowCallRate,
    /// A half-open probe failed.
    ProbeFailed,
    /// The admin forced it open.
    Forced,
}

impl OpenReason {
    /// Every reason, in label order.
    pub const ALL: [OpenReason; 5] = [
        OpenReason::ConsecutiveFailures,
        OpenReason::FailureRate,
        OpenReason::SlowCallRate,
        OpenReason::ProbeFailed,
        OpenReason::Forced,
    ];

    /// The metric label and log field.
    pub fn as_str(self) -> &'static str {
        match self {
            OpenReason::ConsecutiveFailures => "consecutive_failures",
            OpenReason::FailureRate => "failure_rate",
            OpenReason::SlowCallRate => "slow_call_rate",
            OpenReason::ProbeFailed => "probe_failed",
            OpenReason::Forced => "forced",
        }
    }
}

/// A state change, for the caller to count and log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// State before.
    pub from: BreakerState,
    /// State after.
    pub to: BreakerState,
    /// Set when the breaker opened (`to` is open or forced open).
    pub reason: Option<OpenReason>,
}
