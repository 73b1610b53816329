//! The serde mirror of the YAML schema (SPEC §2): every field optional so `defaults` and
//! presets can be merged under it, unknown fields refused. No checks beyond scalar types.

use std::path::PathBuf;

use serde::Deserialize;

pub(crate) use super::shapes::{EndpointFile, Ordered, OutcomeWord, Toggle};
use super::units::{AddrValue, DurationValue, PercentValue, RateValue, SizeValue, WindowValue};

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    pub(crate) listen: Option<AddrValue>,
    pub(crate) admin: Option<AdminFile>,
    pub(crate) runtime: Option<RuntimeFile>,
    pub(crate) limits: Option<LimitsFile>,
    pub(crate) shutdown: Option<ShutdownFile>,
    pub(crate) passthrough: Option<PassthroughFile>,
    pub(crate) connect: Option<ConnectFile>,
    pub(crate) defaults: Option<PoliciesFile>,
    pub(crate) upstreams: Option<Ordered<UpstreamFile>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AdminFile {
    pub(crate) listen: Option<AddrValue>,
    pub(crate) token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuntimeFile {
    pub(crate) worker_threads: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitsFile {
    pub(crate) max_connections: Option<usize>,
    pub(crate) max_request_header_bytes: Option<SizeValue>,
    pub(crate) max_request_headers: Option<usize>,
    pub(crate) header_read_timeout: Option<DurationValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShutdownFile {
    pub(crate) drain_delay: Option<DurationValue>,
    pub(crate) timeout: Option<DurationValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PassthroughFile {
    pub(crate) enabled: Option<bool>,
    pub(crate) max_hosts: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConnectFile {
    pub(crate) allowed_ports: Option<Vec<u64>>,
}

/// The policies `defaults` can set; also the policy part of an upstream or route.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PoliciesFile {
    pub(crate) timeouts: Option<TimeoutsFile>,
    pub(crate) retry: Option<RetryFile>,
    pub(crate) circuit_breaker: Option<Toggle<BreakerFile>>,
    pub(crate) rate_limit: Option<Toggle<RateLimitFile>>,
    pub(crate) concurrency: Option<Toggle<ConcurrencyFile>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpstreamFile {
    pub(crate) endpoints: Option<Vec<EndpointFile>>,
    pub(crate) hosts: Option<Vec<String>>,
    pub(crate) path_prefix: Option<String>,
    pub(crate) strip_prefix: Option<bool>,
    pub(crate) listen: Option<AddrValue>,
    pub(crate) load_balancing: Option<LoadBalancingFile>,
    pub(crate) protocol: Option<ProtocolFile>,
    pub(crate) tls: Option<TlsFile>,
    pub(crate) timeouts: Option<TimeoutsFile>,
    pub(crate) retry: Option<RetryFile>,
    pub(crate) rate_limit: Option<Toggle<RateLimitFile>>,
    pub(crate) circuit_breaker: Option<Toggle<BreakerFile>>,
    pub(crate) routes: Option<Vec<RouteFile>>,
    pub(crate) concurrency: Option<Toggle<ConcurrencyFile>>,
    pub(crate) fallback: Option<String>,
    pub(crate) health_check: Option<Toggle<HealthCheckFile>>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LoadBalancingFile {
    #[serde(alias = "round-robin")]
    RoundRobin,
    #[serde(alias = "least-request")]
    LeastRequest,
    Random,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ProtocolFile {
    Auto,
    Http1,
    Http2,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsFile {
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) client_cert: Option<PathBuf>,
    pub(crate) client_key: Option<PathBuf>,
    pub(crate) server_name: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TimeoutsFile {
    pub(crate) connect: Option<DurationValue>,
    pub(crate) request: Option<DurationValue>,
    pub(crate) per_try: Option<DurationValue>,
    pub(crate) idle: Option<DurationValue>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetryFile {
    pub(crate) preset: Option<RetryPreset>,
    pub(crate) attempts: Option<u32>,
    pub(crate) on: Option<Vec<OutcomeWord>>,
    pub(crate) methods: Option<Vec<String>>,
    pub(crate) backoff: Option<BackoffFile>,
    pub(crate) retry_after: Option<RetryAfterFile>,
    pub(crate) budget: Option<Toggle<BudgetFile>>,
    pub(crate) max_body_bytes: Option<SizeValue>,
    pub(crate) hedge: Option<HedgeFile>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RetryPreset {
    Quick,
    Standard,
    Patient,
    Aggressive,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BackoffFile {
    pub(crate) strategy: Option<BackoffStrategyFile>,
    pub(crate) base: Option<DurationValue>,
    pub(crate) max: Option<DurationValue>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum BackoffStrategyFile {
    Fixed,
    Linear,
    Exponential,
    ExponentialJitter,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetryAfterFile {
    pub(crate) honor: Option<bool>,
    pub(crate) max: Option<DurationValue>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BudgetFile {
    pub(crate) ratio: Option<PercentValue>,
    pub(crate) min_per_second: Option<u32>,
    pub(crate) window: Option<DurationValue>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HedgeFile {
    pub(crate) delay: Option<DurationValue>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RateLimitFile {
    pub(crate) rate: Option<RateValue>,
    pub(crate) burst: Option<u32>,
    pub(crate) mode: Option<LimitModeFile>,
    pub(crate) max_wait: Option<DurationValue>,
    pub(crate) dry_run: Option<bool>,
    pub(crate) key: Option<String>,
    pub(crate) global: Option<Toggle<GlobalFile>>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LimitModeFile {
    Reject,
    Wait,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GlobalFile {
    pub(crate) redis: Option<String>,
    pub(crate) on_error: Option<OnErrorFile>,
    pub(crate) tls: Option<RedisTlsFile>,
}

/// `rate_limit.global.tls`: like an upstream's `tls`, without `server_name` (the Redis client
/// verifies the URL's host).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RedisTlsFile {
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) client_cert: Option<PathBuf>,
    pub(crate) client_key: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OnErrorFile {
    Local,
    Allow,
    Deny,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BreakerFile {
    pub(crate) preset: Option<BreakerPreset>,
    pub(crate) consecutive_failures: Option<u32>,
    pub(crate) failure_rate: Option<Toggle<PercentValue>>,
    pub(crate) minimum_calls: Option<u32>,
    pub(crate) window: Option<WindowValue>,
    pub(crate) slow_call: Option<Toggle<SlowCallFile>>,
    pub(crate) open_for: Option<DurationValue>,
    pub(crate) max_open_for: Option<DurationValue>,
    pub(crate) half_open_calls: Option<u32>,
    pub(crate) success_threshold: Option<u32>,
    pub(crate) failure_on: Option<Vec<OutcomeWord>>,
    pub(crate) scope: Option<ScopeFile>,
    pub(crate) max_ejection: Option<PercentValue>,
    pub(crate) dry_run: Option<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum BreakerPreset {
    Aggressive,
    Moderate,
    Tolerant,
    Critical,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SlowCallFile {
    pub(crate) duration: Option<DurationValue>,
    pub(crate) rate: Option<PercentValue>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ScopeFile {
    Upstream,
    Endpoint,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteFile {
    pub(crate) path_prefix: Option<String>,
    pub(crate) methods: Option<Vec<String>>,
    pub(crate) retry: Option<RetryFile>,
    pub(crate) timeouts: Option<TimeoutsFile>,
    pub(crate) rate_limit: Option<Toggle<RateLimitFile>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConcurrencyFile {
    pub(crate) max_requests: Option<u32>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HealthCheckFile {
    pub(crate) path: Option<String>,
    pub(crate) interval: Option<DurationValue>,
    pub(crate) timeout: Option<DurationValue>,
    pub(crate) unhealthy_after: Option<u32>,
    pub(crate) healthy_after: Option<u32>,
}
