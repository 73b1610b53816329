//! One try's outcome, classified once and shared by retry, the breaker and metrics, plus the
//! filter that `retry.on` and `circuit_breaker.failure_on` are parsed into.

use http::StatusCode;

/// How one try against an endpoint ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A response arrived whose status the filter in question does not flag.
    Success(StatusCode),
    /// A response arrived; kept separate from `Success` only by the filter asking about it.
    /// Metrics label it `http_error` when the status is 5xx.
    Status(StatusCode),
    /// The TCP or TLS connection could not be made: nothing was sent upstream.
    ConnectFailure,
    /// The connection broke after the request started to be sent.
    Reset,
    /// The per-try timeout fired before response headers arrived.
    Timeout,
}

impl Outcome {
    /// Classifies a response status (a response always arrived when this is called).
    pub fn from_status(status: StatusCode) -> Self {
        if status.is_server_error() {
            Outcome::Status(status)
        } else {
            Outcome::Success(status)
        }
    }

    /// The `outcome` label of `rampart_upstream_attempts_total`.
    pub fn metric_label(self) -> &'static str {
        match self {
            Outcome::Success(_) => "success",
            Outcome::Status(_) => "http_error",
            Outcome::ConnectFailure => "connect_error",
            Outcome::Reset => "reset",
            Outcome::Timeout => "timeout",
        }
    }

    /// The status code of the response, when one arrived.
    pub fn status(self) -> Option<StatusCode> {
        match self {
            Outcome::Success(s) | Outcome::Status(s) => Some(s),
            _ => None,
        }
    }
}

/// A set of outcomes: transport failures plus any HTTP statuses (100–599), stored as a bitset
/// so matching a try costs a shift and a mask.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct OutcomeFilter {
    /// Matches `Outcome::ConnectFailure`.
    pub connect_failure: bool,
    /// Matches `Outcome::Reset`.
    pub reset: bool,
    /// Matches `Outcome::Timeout`.
    pub timeout: bool,
    statuses: [u64; 10],
}

impl OutcomeFilter {
    /// An empty filter.
    pub const fn empty() -> Self {
        Self {
            connect_failure: false,
            reset: false,
            timeout: false,
            statuses: [0; 10],
        }
    }

    /// Adds one status code; codes outside 100..=599 are ignored (validation refuses them).
    pub fn add_status(&mut self, code: u16) {
        if (100..600).contains(&code) {
            self.statuses[usize::from(code / 64)] |= 1 << (code % 64);
        }
    }

    /// Adds every code in an inclusive range (status classes like `5xx`).
    pub fn add_status_range(&mut self, from: u16, to: u16) {
        for code in from..=to {
            self.add_status(code);
        }
    }

    /// True when the filter contains this status code.
    pub fn has_status(&self, code: u16) -> bool {
        code < 600 && self.statuses[usize::from(code / 64)] & (1 << (code % 64)) != 0
    }

    /// True when the filter matches this outcome.
    pub fn matches(&self, outcome: Outcome) -> bool {
        match outcome {
            Outcome::Success(s) | Outcome::Status(s) => self.has_status(s.as_u16()),
            Outcome::ConnectFailure => self.connect_failure,
            Outcome::Reset => self.reset,
            Outcome::Timeout => self.timeout,
        }
    }

    /// The status codes in the filter, ascending (for summaries and admin views).
    pub fn status_codes(&self) -> impl Iterator<Item = u16> + '_ {
        (100u16..600).filter(|c| self.has_status(*c))
    }
}

impl std::fmt::Debug for OutcomeFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut list = f.debug_list();
        if self.connect_failure {
            list.entry(&"connect-failure");
        }
        if self.reset {
            list.entry(&"reset");
        }
        if self.timeout {
            list.entry(&"timeout");
        }
        for code in self.status_codes() {
            list.entry(&code);
        }
        list.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_transport_failures_match_independently() {
        let mut f = OutcomeFilter::empty();
        f.add_status_range(500, 599);
        f.add_status(409);
        f.reset = true;
        assert!(f.matches(Outcome::from_status(StatusCode::BAD_GATEWAY)));
        assert!(f.matches(Outcome::from_status(StatusCode::CONFLICT)));
        assert!(!f.matches(Outcome::from_status(StatusCode::TOO_MANY_REQUESTS)));
        assert!(f.matches(Outcome::Reset));
        assert!(!f.matches(Outcome::Timeout));
        assert!(!f.matches(Outcome::ConnectFailure));
        assert_eq!(f.status_codes().count(), 101);
    }
}
