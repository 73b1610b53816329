//! The rate-limit layer: local (governor) and global (Redis) token buckets.

pub mod policy;
