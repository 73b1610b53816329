//! rampart: a sidecar resilience proxy. The application sends its outbound HTTP through
//! rampart, which applies per-upstream retries, rate limits, circuit breakers, concurrency
//! limits and timeouts from one YAML file and exports what it sees to Prometheus.
//!
//! Module map (docs/architecture.md has the picture):
//! - [`config`]: YAML → validated plain policy types; nothing else sees YAML.
//! - [`app`]: binds listeners, builds upstreams and the router, runs shutdown.
//! - [`server`]: accept loops and hyper connections.
//! - [`proxy`]: the per-request service, header hygiene, CONNECT, generated answers.
//! - [`routing`]: request → upstream; passthrough authorities.
//! - [`upstream`]: one upstream's live state and its layer stack.
//! - [`retry`], [`rate_limit`], [`breaker`]: the resilience policies.
//! - [`admin`]: /metrics, /healthz, /readyz, /admin/*.
//! - [`demo`]: `rampart demo`, a self-contained tour with local upstreams.
//! - [`metrics`], [`outcome`], [`error`], [`telemetry`], [`heartbeat`], [`bytes_arena`].

pub mod admin;
pub mod app;
pub mod breaker;
pub mod bytes_arena;
pub mod cli;
pub mod config;
pub mod demo;
pub mod error;
pub mod heartbeat;
pub mod listeners;
pub mod metrics;
pub mod outcome;
pub mod probe;
pub mod proxy;
pub mod rate_limit;
pub mod reload;
pub mod retry;
pub mod routing;
pub mod secret;
pub mod server;
pub mod shutdown;
pub mod spare_header_map;
pub mod telemetry;
pub mod upstream;
