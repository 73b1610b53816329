//! Every SPEC §5 metric: one Prometheus recorder per running app (never the global one, so
//! in-process test servers do not mix), with handles registered per upstream when config
//! loads. The request path only touches pre-registered atomics; no label lookups.

use std::sync::{Arc, OnceLock};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::outcome::Outcome;
use crate::rate_limit::metrics::{RateLimitMetrics, WAIT_BUCKETS};
use crate::retry::{SkipReason, retry_reason};

static META: Metadata<'static> = Metadata::new("rampart", Level::INFO, None);

/// Latency buckets (seconds) for `rampart_request_duration_seconds`: sub-millisecond
/// resolution for a sidecar on loopback, up to the 30 s request deadlines people configure.
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Name, type and help text of every metric rampart exports (SPEC §5 and additions).
pub const METRICS: &[(&str, &str, &str)] = &[
    (
        "rampart_circuit_breaker_state",
        "gauge",
        "Breaker state: 0 closed, 1 half-open, 2 open.",
    ),
    (
        "rampart_circuit_breaker_endpoint_state",
        "gauge",
        "Per-endpoint breaker state (scope endpoint).",
    ),
    (
        "rampart_circuit_breaker_transitions_total",
        "counter",
        "Breaker state changes.",
    ),
    (
        "rampart_circuit_breaker_opened_total",
        "counter",
        "Times a breaker opened, by reason.",
    ),
    (
        "rampart_circuit_breaker_rejected_total",
        "counter",
        "Calls refused while the breaker was open.",
    ),
    (
        "rampart_circuit_breaker_failure_ratio",
        "gauge",
        "Failures / calls over the current window.",
    ),
    (
        "rampart_requests_total",
        "counter",
        "Responses sent to the app, local ones included.",
    ),
    (
        "rampart_request_duration_seconds",
        "histogram",
        "Request latency as the app saw it, retries included.",
    ),
    (
        "rampart_upstream_attempts_total",
        "counter",
        "Tries sent to endpoints, by outcome.",
    ),
    (
        "rampart_retries_total",
        "counter",
        "Retries made, by reason.",
    ),
    (
        "rampart_retries_skipped_total",
        "counter",
        "Retries due but not made, by reason.",
    ),
    (
        "rampart_hedges_total",
        "counter",
        "Hedged second tries, by result.",
    ),
    (
        "rampart_rate_limited_total",
        "counter",
        "Requests limited, by action.",
    ),
    (
        "rampart_rate_limit_wait_seconds",
        "histogram",
        "Time requests waited for a rate-limit token (wait mode).",
    ),
    (
        "rampart_rate_limit_global_fallback",
        "gauge",
        "1 while the global (Redis) rate limit decides without Redis (on_error), else 0.",
    ),
    (
        "rampart_requests_in_flight",
        "gauge",
        "Requests in flight to the upstream.",
    ),
    (
        "rampart_concurrency_rejected_total",
        "counter",
        "Requests refused by the bulkhead.",
    ),
    (
        "rampart_config_reloads_total",
        "counter",
        "Config reloads, by result.",
    ),
    (
        "rampart_build_info",
        "gauge",
        "Always 1; the version label says which build runs.",
    ),
];

/// The app's metrics registry and renderer.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    unrouted: OnceLock<Arc<UpstreamMetrics>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A fresh registry with help texts, histogram buckets and `rampart_build_info` set.
    pub fn new() -> Arc<Self> {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("rampart_request_duration_seconds".into()),
                DURATION_BUCKETS,
            )
            .expect("bucket list is non-empty")
            .set_buckets_for_metric(
                Matcher::Full("rampart_rate_limit_wait_seconds".into()),
                WAIT_BUCKETS,
            )
            .expect("bucket list is non-empty")
            .build_recorder();
        for (name, kind, help) in METRICS {
            let name = KeyName::from_const_str(name);
            match *kind {
                "counter" => recorder.describe_counter(name, None, (*help).into()),
                "gauge" => recorder.describe_gauge(name, None, (*help).into()),
                _ => recorder.describe_histogram(name, None, (*help).into()),
            }
        }
        let handle = recorder.handle();
        let metrics = Arc::new(Self {
            recorder,
            handle,
            unrouted: OnceLock::new(),
        });
        metrics
            .gauge(
                "rampart_build_info",
                vec![Label::new("version", env!("CARGO_PKG_VERSION"))],
            )
            .set(1.0);
        // Both results exist at 0 from start-up, so `increase()` in an alert sees the first
        // failed reload (a series that appears at 1 has no earlier sample to compare with).
        for result in ["success", "failure"] {
            metrics
                .counter(
                    "rampart_config_reloads_total",
                    vec![Label::new("result", result)],
                )
                .increment(0);
        }
        metrics
    }

    /// Prometheus text format 0.0.4 for /metrics.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Drains histogram samples into their buckets; called periodically and before renders.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// Handles for one upstream name; registering the same name again (reload) returns the
    /// same underlying series.
    pub fn upstream(self: &Arc<Self>, name: &str) -> Arc<UpstreamMetrics> {
        Arc::new(UpstreamMetrics::register(self, name))
    }

    /// Handles for requests that matched no upstream (`upstream=""`).
    pub fn unrouted(self: &Arc<Self>) -> &Arc<UpstreamMetrics> {
        self.unrouted
            .get_or_init(|| Arc::new(UpstreamMetrics::requests_only(self, "")))
    }

    /// `rampart_config_reloads_total{result}`.
    pub fn config_reload(&self, success: bool) {
        let result = if success { "success" } else { "failure" };
        self.counter(
            "rampart_config_reloads_total",
            vec![Label::new("result", result)],
        )
        .increment(1);
    }

    /// Registers (or finds) a counter; for set-up paths, not per request.
    pub fn counter(&self, name: &'static str, labels: Vec<Label>) -> Counter {
        self.recorder
            .register_counter(&Key::from_parts(name, labels), &META)
    }

    /// Registers (or finds) a gauge; for set-up paths, not per request.
    pub fn gauge(&self, name: &'static str, labels: Vec<Label>) -> Gauge {
        self.recorder
            .register_gauge(&Key::from_parts(name, labels), &META)
    }

    /// Registers (or finds) a histogram; for set-up paths, not per request.
    pub fn histogram(&self, name: &'static str, labels: Vec<Label>) -> Histogram {
        self.recorder
            .register_histogram(&Key::from_parts(name, labels), &META)
    }
}

/// Status codes common enough to get a pre-registered `requests_total` handle slot.
const COMMON_CODES: [u16; 16] = [
    200, 201, 202, 204, 301, 302, 304, 400, 401, 403, 404, 409, 429, 500, 502, 503,
];

/// Pre-registered handles for one upstream label value.
pub struct UpstreamMetrics {
    name: Arc<str>,
    registry: Arc<Metrics>,
    common_codes: [OnceLock<Counter>; COMMON_CODES.len()],
    /// `rampart_request_duration_seconds`.
    pub duration: Histogram,
    /// `rampart_requests_in_flight`.
    pub in_flight: Gauge,
    attempts: [Counter; 6],
    /// `rampart_circuit_breaker_state`.
    pub breaker_state: Gauge,
    /// `rampart_concurrency_rejected_total`.
    pub concurrency_rejected: Counter,
    retries: [Counter; 3],
    skipped: [Counter; 6],
    hedges: [Counter; 2],
    /// `rampart_rate_limited_total` and `rampart_rate_limit_wait_seconds`.
    pub rate_limit: RateLimitMetrics,
}

impl std::fmt::Debug for UpstreamMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamMetrics")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl UpstreamMetrics {
    fn register(registry: &Arc<Metrics>, name: &str) -> Self {
        let mut m = Self::requests_only(registry, name);
        let up = || vec![Label::new("upstream", name.to_owned())];
        m.breaker_state = registry.gauge("rampart_circuit_breaker_state", up());
        m.breaker_state.set(0.0);
        m.in_flight = registry.gauge("rampart_requests_in_flight", up());
        m.in_flight.set(0.0);
        m.concurrency_rejected = registry.counter("rampart_concurrency_rejected_total", up());
        let labelled = |metric: &'static str, key: &'static str, value: &'static str| {
            registry.counter(
                metric,
                vec![
                    Label::new("upstream", name.to_owned()),
                    Label::new(key, value),
                ],
            )
        };
        m.attempts = [
            "success",
            "http_error",
            "connect_error",
            "reset",
            "timeout",
            "cancelled",
        ]
        .map(|o| labelled("rampart_upstream_attempts_total", "outcome", o));
        m.retries = ["connect_failure", "reset", "timeout"]
            .map(|r| labelled("rampart_retries_total", "reason", r));
        m.skipped = SkipReason::ALL
            .map(|r| labelled("rampart_retries_skipped_total", "reason", r.as_str()));
        m.hedges = ["won", "lost"].map(|r| labelled("rampart_hedges_total", "result", r));
        m.rate_limit = RateLimitMetrics::register(registry, name);
        m
    }

    /// Only what an unrouted request can touch: `requests_total` and the duration.
    fn requests_only(registry: &Arc<Metrics>, name: &str) -> Self {
        Self {
            name: Arc::from(name),
            registry: registry.clone(),
            common_codes: Default::default(),
            duration: registry.histogram(
                "rampart_request_duration_seconds",
                vec![Label::new("upstream", name.to_owned())],
            ),
            in_flight: Gauge::noop(),
            attempts: std::array::from_fn(|_| Counter::noop()),
            breaker_state: Gauge::noop(),
            concurrency_rejected: Counter::noop(),
            retries: std::array::from_fn(|_| Counter::noop()),
            skipped: std::array::from_fn(|_| Counter::noop()),
            hedges: std::array::from_fn(|_| Counter::noop()),
            rate_limit: RateLimitMetrics::noop(),
        }
    }

    /// The `upstream` label value.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The registry these handles belong to (for modules that register their own series).
    pub fn registry(&self) -> &Arc<Metrics> {
        &self.registry
    }

    /// Counts one response sent to the app.
    pub fn request_done(&self, status: u16, seconds: f64) {
        self.duration.record(seconds);
        match COMMON_CODES.iter().position(|c| *c == status) {
            Some(i) => self.common_codes[i]
                .get_or_init(|| self.code_counter(status))
                .increment(1),
            None => self.code_counter(status).increment(1),
        }
    }

    fn code_counter(&self, status: u16) -> Counter {
        self.registry.counter(
            "rampart_requests_total",
            vec![
                Label::new("upstream", self.name.to_string()),
                Label::new("code", status.to_string()),
            ],
        )
    }

    /// Counts one try by its outcome.
    pub fn attempt(&self, outcome: Outcome) {
        let i = match outcome {
            Outcome::Success(_) => 0,
            Outcome::Status(_) => 1,
            Outcome::ConnectFailure => 2,
            Outcome::Reset => 3,
            Outcome::Timeout => 4,
        };
        self.attempts[i].increment(1);
    }

    /// Counts a try that ended without an outcome of the endpoint's: the hedge that lost the
    /// race, a try whose app went away or whose app's body broke. It may or may not have
    /// reached the endpoint.
    pub fn attempt_cancelled(&self) {
        self.attempts[5].increment(1);
    }

    /// Counts a retry of a try that ended with `outcome`.
    pub fn retry(&self, outcome: Outcome) {
        match outcome {
            Outcome::ConnectFailure => self.retries[0].increment(1),
            Outcome::Reset => self.retries[1].increment(1),
            Outcome::Timeout => self.retries[2].increment(1),
            Outcome::Success(_) | Outcome::Status(_) => self
                .registry
                .counter(
                    "rampart_retries_total",
                    vec![
                        Label::new("upstream", self.name.to_string()),
                        Label::new("reason", retry_reason(outcome)),
                    ],
                )
                .increment(1),
        }
    }

    /// Counts a retry that was due but not made.
    pub fn retry_skipped(&self, reason: SkipReason) {
        let i = SkipReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.skipped[i].increment(1);
    }

    /// Counts a hedged second try: `won` when its response was used.
    pub fn hedge(&self, won: bool) {
        self.hedges[usize::from(!won)].increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_series_exist_before_traffic_and_count_after() {
        let metrics = Metrics::new();
        let up = metrics.upstream("payments");
        let text = metrics.render();
        assert!(
            text.contains("rampart_circuit_breaker_state{upstream=\"payments\"} 0"),
            "{text}"
        );
        assert!(text.contains("rampart_build_info{version=\""), "{text}");
        assert!(
            text.contains("rampart_config_reloads_total{result=\"failure\"} 0"),
            "{text}"
        );
        up.request_done(200, 0.002);
        up.request_done(418, 0.002);
        up.attempt(Outcome::Timeout);
        metrics.upkeep();
        let text = metrics.render();
        assert!(
            text.contains("rampart_requests_total{upstream=\"payments\",code=\"200\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("rampart_requests_total{upstream=\"payments\",code=\"418\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "rampart_upstream_attempts_total{upstream=\"payments\",outcome=\"timeout\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "rampart_request_duration_seconds_bucket{upstream=\"payments\",le=\"0.0025\"} 2"
            ),
            "{text}"
        );
    }

    #[test]
    fn two_registries_do_not_share_series() {
        let a = Metrics::new();
        let b = Metrics::new();
        a.upstream("x").request_done(200, 0.1);
        assert!(!b.render().contains("rampart_requests_total{upstream=\"x\""));
    }
}
