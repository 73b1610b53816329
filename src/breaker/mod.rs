//! The circuit breaker: a pure state machine per upstream or endpoint, admitted and recorded per try.

pub mod policy;
