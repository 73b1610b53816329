//! End-to-end tests: one binary, one module per area, shared helpers in `support`.
// Items in this binary's modules are `pub` for each other; nothing is exported.
#![allow(unreachable_pub)]

mod support;

mod abandoned;
mod admin;
mod attempts;
mod breaker;
mod chaos;
mod headers;
mod health;
mod hostile;
mod http1_client;
mod keep_alive;
mod limits;
mod own_http1;
mod pool;
mod protocols;
mod rate_limit;
mod rate_limit_global;
mod reload;
mod retry;
mod routing;
mod secrets;
mod shutdown;
mod streaming;
mod syscalls;

mod support_selftest;
