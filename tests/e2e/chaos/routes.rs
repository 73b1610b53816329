//! The chaos config: one upstream per fault behind its own path prefix, what a client may see
//! on each, and the YAML that wires them to the fault upstream.

use std::time::Duration;

use crate::support::fault_upstream::Tuning;

/// One route of the chaos config: requests to `path` go to the upstream `upstream`.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    pub upstream: &'static str,
    pub path: &'static str,
    /// Share of the traffic, relative to the other routes, in each `Mix`.
    pub weights: [u32; 2],
    /// Upstream statuses the client may see passed through with a complete body.
    pub proxied: &'static [u16],
    /// Whether a 200 whose body breaks off is expected (the upstream resets mid-body).
    pub truncated: bool,
    /// SPEC §4 codes the client may get.
    pub local: &'static [&'static str],
    /// Further codes a request whose body is too large to replay may get (its retry after a
    /// connect failure is skipped).
    pub unreplayable: &'static [&'static str],
    /// The client gives up after this long (and closes its connection).
    pub patience: Option<Duration>,
}

/// A traffic mix: which of `Route::weights` applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mix {
    /// Every fault about as often as healthy traffic.
    Chaos = 0,
    /// Mostly healthy traffic (about 70 %), every fault present.
    Soak = 1,
}

/// The breaker settings the bound on tries while open depends on.
#[derive(Clone, Copy, Debug)]
pub struct Breaker {
    pub consecutive_failures: u32,
    pub half_open_calls: u32,
}

/// The breaker every upstream gets.
pub const BREAKER: Breaker = Breaker {
    consecutive_failures: 5,
    half_open_calls: 2,
};

/// Upstreams whose every try fails: their breaker must open and never close again.
pub const ALWAYS_FAILING: &[&str] = &["refused", "reset-head", "status-5xx", "hang"];

/// The fault timings: a slow head past the short `per_try`, a 300 ms flap, an 80 ms trickle.
pub const TUNING: Tuning = Tuning {
    slow: Duration::from_millis(400),
    flap_period: Duration::from_millis(300),
    trickle_gap: Duration::from_millis(10),
};

const OK: &[u16] = &[200];
const UNAVAILABLE: &[&str] = &["upstream_unavailable", "circuit_open"];
const TIMEOUT: &[&str] = &["upstream_timeout", "circuit_open"];

/// Every route, with its weights (chaos, soak) and what a client may see on it.
pub const ROUTES: &[Route] = &[
    route("ok", "/ok", [2, 20], OK, &[]),
    // A refusing endpoint and a healthy one: retries after connect failures (POSTs too,
    // nothing was sent) and outlier ejection keep every answer a 200.
    Route {
        unreplayable: &["upstream_unavailable"],
        ..route("failover", "/ok/failover", [1, 4], OK, &[])
    },
    route("refused", "/refused", [1, 1], &[], UNAVAILABLE),
    route("reset-head", "/reset-head", [1, 1], &[], UNAVAILABLE),
    Route {
        truncated: true,
        ..route("reset-body", "/reset-body", [1, 2], &[], &[])
    },
    route("slow-head", "/slow-head", [1, 2], OK, TIMEOUT),
    // Hedged after 100 ms to a second port: the slow quarter gets a hedge (and times out on
    // both), the rest answer before the hedge goes out.
    route("hedge", "/slow-head/hedged", [1, 2], OK, TIMEOUT),
    route("trickle", "/trickle", [1, 4], OK, &[]),
    route(
        "status-5xx",
        "/status-5xx",
        [1, 1],
        &[503],
        &["circuit_open"],
    ),
    route("flap", "/flap", [1, 2], OK, UNAVAILABLE),
    route("half-close", "/half-close", [1, 4], OK, UNAVAILABLE),
    route("hang", "/hang", [1, 1], &[], TIMEOUT),
    // Clients that give up after 100 ms on an upstream that never answers, long before the
    // 5 s per-try timeout could fire or retry.
    Route {
        patience: Some(Duration::from_millis(100)),
        ..route("abandon", "/hang/abandoned", [1, 1], &[], &[])
    },
];

const fn route(
    upstream: &'static str,
    path: &'static str,
    weights: [u32; 2],
    proxied: &'static [u16],
    local: &'static [&'static str],
) -> Route {
    Route {
        upstream,
        path,
        weights,
        proxied,
        truncated: false,
        local,
        unreplayable: &[],
        patience: None,
    }
}

/// The YAML: every upstream on a quick breaker and pools that close idle connections after
/// 500 ms (so descriptors can be seen to come back); the routes that test timeouts get a
/// short `per_try`. `faults` are the fault upstream's URLs, `refused` a refusing one.
pub fn config(port: u16, admin: u16, faults: &[String], refused: &str) -> String {
    let mut yaml = format!(
        "listen: 127.0.0.1:{port}
admin: {{ listen: 127.0.0.1:{admin} }}
runtime: {{ worker_threads: 2 }}
shutdown: {{ drain_delay: 0s, timeout: 5s }}
defaults:
  timeouts: {{ connect: 250ms, request: 3s, per_try: 1s, idle: 500ms }}
  retry:
    attempts: 3
    backoff: {{ strategy: exponential-jitter, base: 5ms, max: 40ms }}
    budget: {{ ratio: 50%, min_per_second: 20, window: 10s }}
  circuit_breaker:
    consecutive_failures: {}
    failure_rate: 50%
    minimum_calls: 20
    window: 10s
    open_for: 250ms
    max_open_for: 1s
    half_open_calls: {}
    success_threshold: 2
upstreams:
",
        BREAKER.consecutive_failures, BREAKER.half_open_calls,
    );
    for route in ROUTES {
        let endpoints = match route.upstream {
            "refused" => format!("\"{refused}\""),
            "failover" => format!("\"{refused}\", \"{}\"", faults[0]),
            "hedge" => format!("\"{}\", \"{}\"", faults[0], faults[1]),
            _ => format!("\"{}\"", faults[0]),
        };
        yaml.push_str(&format!(
            "  {}:\n    endpoints: [{endpoints}]\n    path_prefix: {}\n",
            route.upstream, route.path
        ));
        match route.upstream {
            "slow-head" | "hedge" | "hang" => {
                yaml.push_str("    timeouts: { request: 1500ms, per_try: 250ms }\n");
            }
            "abandon" => yaml.push_str("    timeouts: { request: 10s, per_try: 5s }\n"),
            _ => {}
        }
        match route.upstream {
            "failover" => yaml.push_str("    circuit_breaker: { scope: endpoint }\n"),
            "hedge" => yaml.push_str("    retry: { hedge: { delay: 100ms } }\n"),
            _ => {}
        }
    }
    yaml
}
