//! rampart: a sidecar resilience proxy. See docs/architecture.md for the module map.

pub mod breaker;
pub mod config;
pub mod outcome;
pub mod rate_limit;
pub mod retry;
pub mod secret;
pub mod upstream;
