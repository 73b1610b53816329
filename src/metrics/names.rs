//! The names, types and help texts of every exported series (SPEC §5 and additions) and the
//! histogram buckets: the contract dashboards and alerts read, kept apart from the plumbing.

/// Latency buckets (seconds) for `rampart_request_duration_seconds`: sub-millisecond
/// resolution for a sidecar on loopback, up to the 30 s request deadlines people configure.
pub(super) const DURATION_BUCKETS: &[f64] = &[
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
