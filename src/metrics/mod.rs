//! The app's metrics registry: one Prometheus recorder per running app (never the global one,
//! so in-process test servers do not mix) and its renderer. Names live in `names`, the
//! per-upstream handles in `upstream`; the request path only touches pre-registered atomics.

use std::sync::{Arc, OnceLock};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

mod filter;
mod histogram;
mod names;
mod upstream;

pub use filter::Series;
pub use names::METRICS;
pub use upstream::UpstreamMetrics;

use crate::rate_limit::metrics::WAIT_BUCKETS;
use names::DURATION_BUCKETS;

static META: Metadata<'static> = Metadata::new("rampart", Level::INFO, None);

/// The app's metrics registry and renderer.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Histograms live here, not in the exporter (see `histogram`).
    histograms: histogram::Histograms,
    unrouted: OnceLock<Arc<UpstreamMetrics>>,
}

// === impl Metrics ===

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A fresh registry with help texts, histogram buckets and `rampart_build_info` set.
    pub fn new() -> Arc<Self> {
        let recorder = PrometheusBuilder::new().build_recorder();
        for (name, kind, help) in METRICS {
            let name = KeyName::from_const_str(name);
            match *kind {
                "counter" => recorder.describe_counter(name, None, (*help).into()),
                "gauge" => recorder.describe_gauge(name, None, (*help).into()),
                _ => {}
            }
        }
        let handle = recorder.handle();
        let metrics = Arc::new(Self {
            recorder,
            handle,
            histograms: histogram::Histograms::default(),
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
        let mut text = self.handle.render();
        self.histograms.render_into(&mut text);
        text
    }

    /// Like [`Metrics::render`], without the samples `keep` refuses (it is asked about each
    /// sample with a non-empty `upstream` label). The exporter cannot delete a series, so
    /// this is how series of upstreams a reload removed leave /metrics; their registrations
    /// stay, and an upstream that comes back continues its counters.
    pub fn render_where(&self, keep: impl Fn(&Series<'_>) -> bool) -> String {
        let mut text = self.render();
        filter::retain(&mut text, keep);
        text
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

    /// Registers (or finds) a histogram; for set-up paths, not per request. `name` must be
    /// a histogram of [`METRICS`] with buckets in `buckets_of`.
    pub fn histogram(&self, name: &'static str, labels: Vec<Label>) -> Histogram {
        let help = METRICS
            .iter()
            .find(|(n, kind, _)| *n == name && *kind == "histogram")
            .map_or("", |(_, _, help)| *help);
        Histogram::from_arc(
            self.histograms
                .register(name, help, buckets_of(name), &labels),
        )
    }
}

/// The bucket bounds of each histogram rampart exports.
fn buckets_of(name: &str) -> &'static [f64] {
    match name {
        "rampart_rate_limit_wait_seconds" => WAIT_BUCKETS,
        _ => DURATION_BUCKETS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Outcome;

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
