//! The serde mirror of the YAML schema (SPEC §2): every field optional so `defaults` and
//! presets can be merged under it, unknown fields refused. No checks beyond scalar types.

use std::fmt;
use std::marker::PhantomData;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, MapAccess, Visitor};

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

/// `- http://host:port` or `- { url: ..., weight: N }`.
#[derive(Debug, Default)]
pub(crate) struct EndpointFile {
    pub(crate) url: String,
    pub(crate) weight: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointMap {
    url: String,
    weight: Option<u32>,
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

/// A word of `retry.on` / `failure_on`, or a bare status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OutcomeWord {
    ConnectFailure,
    Reset,
    Timeout,
    Class(u16),
    GatewayError,
    Retriable4xx,
    Status(u16),
}

/// A section that can also be switched off (`off`/`false`) or on with defaults (`on`/`true`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Toggle<T> {
    Off,
    On(T),
}

/// A mapping kept in file order (upstreams are listed in the order the file names them).
#[derive(Debug, Default)]
pub(crate) struct Ordered<T>(pub(crate) Vec<(String, T)>);

// === impl OutcomeWord ===

impl OutcomeWord {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "connect-failure" => Self::ConnectFailure,
            "reset" => Self::Reset,
            "timeout" | "per-try-timeout" => Self::Timeout,
            "5xx" => Self::Class(5),
            "4xx" => Self::Class(4),
            "gateway-error" => Self::GatewayError,
            "retriable-4xx" => Self::Retriable4xx,
            _ => match text.parse::<u16>() {
                Ok(code) if (100..600).contains(&code) => Self::Status(code),
                _ => return None,
            },
        })
    }
}

impl<'de> Deserialize<'de> for OutcomeWord {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = OutcomeWord;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an outcome")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OutcomeWord, E> {
                OutcomeWord::parse(v.trim()).ok_or_else(|| {
                    E::custom(format!(
                        "expected an outcome like \"connect-failure\", \"5xx\" or 503, got \"{v}\""
                    ))
                })
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<OutcomeWord, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<OutcomeWord, E> {
                self.visit_str(&v.to_string())
            }
        }
        d.deserialize_any(V)
    }
}

// === impl EndpointFile ===

impl<'de> Deserialize<'de> for EndpointFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EndpointFile;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an endpoint URL or { url, weight }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EndpointFile, E> {
                Ok(EndpointFile {
                    url: v.to_string(),
                    weight: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<EndpointFile, A::Error> {
                let m = EndpointMap::deserialize(MapAccessDeserializer::new(map))?;
                Ok(EndpointFile {
                    url: m.url,
                    weight: m.weight,
                })
            }
        }
        d.deserialize_any(V)
    }
}

// === impl Toggle ===

impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for Toggle<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Default> Visitor<'de> for V<T> {
            type Value = Toggle<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value or \"off\"")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Toggle<T>, E> {
                Ok(if v {
                    Toggle::On(T::default())
                } else {
                    Toggle::Off
                })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Toggle<T>, E> {
                match v.trim() {
                    "off" => Ok(Toggle::Off),
                    "on" => Ok(Toggle::On(T::default())),
                    _ => T::deserialize(de::value::StrDeserializer::new(v)).map(Toggle::On),
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Toggle<T>, E> {
                T::deserialize(de::value::U64Deserializer::new(v)).map(Toggle::On)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Toggle<T>, E> {
                T::deserialize(de::value::I64Deserializer::new(v)).map(Toggle::On)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Toggle<T>, E> {
                T::deserialize(de::value::F64Deserializer::new(v)).map(Toggle::On)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Toggle<T>, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(Toggle::On)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

// === impl Ordered ===

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Ordered<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Ordered<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of names")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered<T>, A::Error> {
                let mut entries = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, T>()? {
                    entries.push((key, value));
                }
                Ok(Ordered(entries))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Ordered<T>, E> {
                Ok(Ordered(Vec::new()))
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}
