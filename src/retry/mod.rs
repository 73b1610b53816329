//! The retry layer: the attempt loop, budget, backoff and body replay.

pub mod policy;
