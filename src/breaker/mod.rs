//! The circuit breakers of one upstream: one state machine for the upstream, or one per
//! endpoint (outlier ejection, capped by `max_ejection`). Every try is admitted and recorded
//! here; transitions become metrics and one info log event each. Endpoint choice stays with
//! the balancer (`upstream::admission`); the state machine itself is in `state`.

pub mod ejection;
pub mod metrics;
pub mod permit;
pub mod policy;
mod probes;
pub mod state;
pub mod transition;
pub mod window;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use ::metrics::Gauge;
use rand::Rng;
use tokio::time::Instant;

use crate::metrics::UpstreamMetrics;
use crate::outcome::Outcome;
use ejection::Ejections;
use metrics::BreakerMetrics;
use permit::{Permit, Rejected, Snapshot};
use policy::{BreakerPolicy, BreakerScope};
use state::StateMachine;
use transition::{BreakerState, Transition};
use window::WindowCounts;

/// What the admin asks a breaker to do (`POST /admin/upstreams/{name}/breaker`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Open until reset.
    ForceOpen,
    /// Let everything through until reset.
    Disable,
    /// Closed, fresh, automatic again.
    Reset,
}

impl Action {
    /// Parses the admin API's action word.
    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "force-open" => Some(Action::ForceOpen),
            "disable" => Some(Action::Disable),
            "reset" => Some(Action::Reset),
            _ => None,
        }
    }
}

/// One upstream's breakers and their metric handles.
#[derive(Debug)]
pub struct Breakers {
    upstream: Arc<str>,
    machines: Box<[StateMachine]>,
    /// Endpoint scope: each machine's endpoint URL and state gauge.
    endpoints: Option<Box<[(String, Gauge)]>>,
    ejections: Option<Arc<Ejections>>,
    metrics: BreakerMetrics,
}

/// The breaker view of the admin API (aggregated over endpoints for endpoint scope).
#[derive(Clone, Debug, PartialEq)]
pub struct BreakerView {
    /// The upstream's state; with endpoint scope, open only when every endpoint is.
    pub state: BreakerState,
    /// Counts over the window (summed over endpoints).
    pub counts: WindowCounts,
    /// Time until half-open, while open.
    pub retry_after: Option<Duration>,
    /// Endpoint scope: each endpoint's own breaker, in endpoint order.
    pub endpoints: Option<Vec<Snapshot>>,
}

impl Breakers {
    /// Builds the breakers for `policy`; `endpoints` are the upstream's endpoint URLs.
    pub fn new(
        upstream: &str,
        policy: &BreakerPolicy,
        endpoints: &[&str],
        metrics: &UpstreamMetrics,
    ) -> Self {
        let metrics = BreakerMetrics::new(metrics);
        let origin = Instant::now();
        let mut rng = rand::rng();
        let (machines, endpoints, ejections) = match policy.scope {
            BreakerScope::Upstream => (
                vec![StateMachine::new(policy, origin, rng.random(), None)],
                None,
                None,
            ),
            BreakerScope::Endpoint => {
                let n = endpoints.len() as u32;
                let max = ((policy.max_ejection * f64::from(n)).floor() as u32).clamp(1, n.max(1));
                let ejections = Arc::new(Ejections::new(max));
                let machines = endpoints
                    .iter()
                    .map(|_| {
                        StateMachine::new(policy, origin, rng.random(), Some(ejections.clone()))
                    })
                    .collect();
                let gauges = endpoints
                    .iter()
                    .map(|url| ((*url).to_owned(), metrics.endpoint_state(url)))
                    .collect();
                (machines, Some(gauges), Some(ejections))
            }
        };
        metrics.state.set(0.0);
        Self {
            upstream: Arc::from(upstream),
            machines: machines.into(),
            endpoints,
            ejections,
            metrics,
        }
    }

    /// True for one breaker per endpoint.
    pub fn per_endpoint(&self) -> bool {
        self.endpoints.is_some()
    }

    /// The policy the breakers run.
    pub fn policy(&self) -> &BreakerPolicy {
        self.machines[0].policy()
    }

    /// True when the breaker guarding endpoint `index` would admit a try now (no permit
    /// taken); with upstream scope the index is ignored.
    pub fn endpoint_available(&self, index: usize, now: Instant) -> bool {
        let slot = if self.per_endpoint() { index } else { 0 };
        self.machines.get(slot).is_none_or(|m| m.available(now))
    }

    /// Admits one try on the breaker guarding endpoint `index` (ignored for upstream
    /// scope). A refusal is not counted here: `refused` does that once per refused try.
    pub fn admit(&self, index: usize, now: Instant) -> Result<TryPermit<'_>, Rejected> {
        let slot = if self.per_endpoint() { index } else { 0 };
        let machine = &self.machines[slot];
        let admission = machine.admit(now);
        if let Some(t) = admission.transition {
            self.transitioned(slot, t);
        }
        let permit = admission.decision?;
        if permit.would_reject {
            self.metrics.rejected.increment(1);
            tracing::debug!(upstream = %self.upstream, "dry run: the breaker would have refused this try");
        }
        Ok(TryPermit {
            breakers: self,
            slot,
            permit: Some(permit),
        })
    }

    /// Counts a try the breaker refused (`rampart_circuit_breaker_rejected_total`).
    pub fn refused(&self) {
        self.metrics.rejected.increment(1);
    }

    /// Applies an admin action to every breaker of the upstream.
    pub fn act(&self, action: Action) {
        for (slot, machine) in self.machines.iter().enumerate() {
            let t = match action {
                Action::ForceOpen => machine.force_open(),
                Action::Disable => machine.disable(),
                Action::Reset => machine.reset(),
            };
            if let Some(t) = t {
                self.transitioned(slot, t);
            }
        }
        self.set_upstream_gauge();
    }

    /// Takes the lazy open → half-open steps that are due and sets the gauges; called before
    /// /metrics renders and before admin reads.
    pub fn refresh(&self, now: Instant) -> BreakerView {
        for (slot, machine) in self.machines.iter().enumerate() {
            if let Some(t) = machine.observe(now) {
                self.transitioned(slot, t);
            }
        }
        let view = self.view(now);
        self.metrics.state.set(view.state.gauge());
        self.metrics.failure_ratio.set(view.counts.failure_ratio());
        if let (Some(endpoints), Some(snapshots)) = (&self.endpoints, &view.endpoints) {
            for ((_, gauge), snapshot) in endpoints.iter().zip(snapshots) {
                gauge.set(snapshot.state.gauge());
            }
        }
        view
    }

    /// Sets the upstream-level gauges directly, for a label several upstreams share
    /// (passthrough authorities).
    pub fn set_gauges(&self, state: BreakerState, failure_ratio: f64) {
        self.metrics.state.set(state.gauge());
        self.metrics.failure_ratio.set(failure_ratio);
    }

    /// The state as the admin API shows it.
    pub fn view(&self, now: Instant) -> BreakerView {
        let snapshots: Vec<Snapshot> = self.machines.iter().map(|m| m.snapshot(now)).collect();
        let mut counts = WindowCounts::default();
        for s in &snapshots {
            counts.calls += s.counts.calls;
            counts.failures += s.counts.failures;
            counts.slow += s.counts.slow;
        }
        let state = aggregate(snapshots.iter().map(|s| s.state));
        let retry_after = if state == BreakerState::Open {
            snapshots.iter().filter_map(|s| s.retry_after).min()
        } else {
            None
        };
        BreakerView {
            state,
            counts,
            retry_after,
            endpoints: self.per_endpoint().then_some(snapshots),
        }
    }

    /// Endpoint breakers open (or half-open) now, against the `max_ejection` cap.
    pub fn ejected(&self) -> Option<u32> {
        self.ejections.as_ref().map(|e| e.current())
    }

    /// Counts, logs and shows one transition of breaker `slot`.
    fn transitioned(&self, slot: usize, t: Transition) {
        self.metrics.transition(&t);
        let reason = t.reason.map_or("", |r| r.as_str());
        match &self.endpoints {
            Some(endpoints) => {
                let (url, gauge) = &endpoints[slot];
                gauge.set(t.to.gauge());
                tracing::info!(upstream = %self.upstream, endpoint = %url, from = t.from.as_str(), to = t.to.as_str(), reason, "circuit breaker state changed");
                self.set_upstream_gauge();
            }
            None => {
                self.metrics.state.set(t.to.gauge());
                tracing::info!(upstream = %self.upstream, from = t.from.as_str(), to = t.to.as_str(), reason, "circuit breaker state changed");
            }
        }
    }

    fn set_upstream_gauge(&self) {
        let state = aggregate(self.machines.iter().map(StateMachine::state));
        self.metrics.state.set(state.gauge());
    }
}

/// The upstream's state from its endpoints' states: open (or forced open, or disabled) when
/// every endpoint is; half-open when none takes normal traffic and one is probing; else
/// closed. With one breaker this is that breaker's state.
fn aggregate(states: impl Iterator<Item = BreakerState>) -> BreakerState {
    let (mut n, mut forced, mut disabled, mut open, mut half_open) = (0, 0, 0, 0, 0);
    for s in states {
        n += 1;
        match s {
            BreakerState::ForcedOpen => {
                forced += 1;
                open += 1;
            }
            BreakerState::Open => open += 1,
            BreakerState::HalfOpen => half_open += 1,
            BreakerState::Disabled => disabled += 1,
            BreakerState::Closed => {}
        }
    }
    if n > 0 && forced == n {
        BreakerState::ForcedOpen
    } else if n > 0 && disabled == n {
        BreakerState::Disabled
    } else if n > 0 && open == n {
        BreakerState::Open
    } else if n > 0 && open + half_open == n {
        BreakerState::HalfOpen
    } else {
        BreakerState::Closed
    }
}

/// One try's pass through its breaker: recorded with the try's outcome, or released (its
/// probe slot freed) when dropped unrecorded because the request went away.
#[derive(Debug)]
pub struct TryPermit<'a> {
    breakers: &'a Breakers,
    slot: usize,
    permit: Option<Permit>,
}

impl TryPermit<'_> {
    /// Records how the try ended, at `now` (when its response headers arrived, or it failed).
    pub fn record(mut self, outcome: Outcome, now: Instant) {
        if let Some(permit) = self.permit.take()
            && let Some(t) = self.breakers.machines[self.slot].record(permit, outcome, now)
        {
            self.breakers.transitioned(self.slot, t);
        }
    }
}

impl Drop for TryPermit<'_> {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.breakers.machines[self.slot].release(permit);
        }
    }
}
