//! The breaker series of SPEC §5 for one upstream label: handles registered when the
//! upstream is built (state gauge, rejections, failure ratio, per-endpoint state), plus the
//! transition and open-reason counters, registered on first use since transitions are rare.

use std::sync::{Arc, OnceLock};

use metrics::{Counter, Gauge, Label};

use crate::breaker::transition::{BreakerState, OpenReason, Transition};
use crate::metrics::{Metrics, UpstreamMetrics};

/// Label values of `from`/`to`, in index order.
const STATES: [&str; 3] = ["closed", "half_open", "open"];

/// Breaker handles for one `upstream` label.
pub struct BreakerMetrics {
    upstream: String,
    registry: Arc<Metrics>,
    /// `rampart_circuit_breaker_state` (registered at 0 with the upstream).
    pub state: Gauge,
    /// `rampart_circuit_breaker_rejected_total`.
    pub rejected: Counter,
    /// `rampart_circuit_breaker_failure_ratio`.
    pub failure_ratio: Gauge,
    transitions: [OnceLock<Counter>; 9],
    opened: [OnceLock<Counter>; OpenReason::ALL.len()],
}

impl std::fmt::Debug for BreakerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BreakerMetrics")
            .field("upstream", &self.upstream)
            .finish_non_exhaustive()
    }
}

impl BreakerMetrics {
    /// Registers the per-upstream series next to the upstream's other handles.
    pub fn new(upstream: &UpstreamMetrics) -> Self {
        let registry = upstream.registry().clone();
        let name = upstream.name().to_owned();
        let label = || vec![Label::new("upstream", name.clone())];
        let failure_ratio = registry.gauge("rampart_circuit_breaker_failure_ratio", label());
        failure_ratio.set(0.0);
        Self {
            rejected: registry.counter("rampart_circuit_breaker_rejected_total", label()),
            failure_ratio,
            state: upstream.breaker_state.clone(),
            upstream: name,
            registry,
            transitions: Default::default(),
            opened: Default::default(),
        }
    }

    /// `rampart_circuit_breaker_endpoint_state{upstream, endpoint}`, registered at 0.
    pub fn endpoint_state(&self, endpoint: &str) -> Gauge {
        let gauge = self.registry.gauge(
            "rampart_circuit_breaker_endpoint_state",
            vec![
                Label::new("upstream", self.upstream.clone()),
                Label::new("endpoint", endpoint.to_owned()),
            ],
        );
        gauge.set(0.0);
        gauge
    }

    /// Counts a transition (when the metric states differ) and the reason it opened.
    pub fn transition(&self, t: &Transition) {
        let (from, to) = (index(t.from), index(t.to));
        if from != to {
            self.transitions[from * 3 + to]
                .get_or_init(|| {
                    self.registry.counter(
                        "rampart_circuit_breaker_transitions_total",
                        vec![
                            Label::new("upstream", self.upstream.clone()),
                            Label::new("from", STATES[from]),
                            Label::new("to", STATES[to]),
                        ],
                    )
                })
                .increment(1);
        }
        if let Some(reason) = t.reason {
            let i = OpenReason::ALL
                .iter()
                .position(|r| *r == reason)
                .unwrap_or(0);
            self.opened[i]
                .get_or_init(|| {
                    self.registry.counter(
                        "rampart_circuit_breaker_opened_total",
                        vec![
                            Label::new("upstream", self.upstream.clone()),
                            Label::new("reason", reason.as_str()),
                        ],
                    )
                })
                .increment(1);
        }
    }
}

fn index(state: BreakerState) -> usize {
    STATES
        .iter()
        .position(|s| *s == state.metric_label())
        .unwrap_or(0)
}
