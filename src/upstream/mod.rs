//! One upstream: its endpoints, client pool and live resilience state.

pub mod policy;
