//! End-to-end tests: one binary, one module per area, shared helpers in `support`.
// Items in this binary's modules are `pub` for each other; nothing is exported.
#![allow(unreachable_pub)]

mod support;

mod headers;
mod protocols;
mod retry;
mod routing;

mod support_selftest;
