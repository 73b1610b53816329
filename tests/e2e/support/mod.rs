//! Shared pieces of the end-to-end tests: scripted upstreams, a test CA, clients, a metrics
//! reader and a process launcher. Not every test module uses every helper.
#![allow(dead_code)]

pub mod binary;
pub mod body;
pub mod client;
pub mod fault_upstream;
pub mod metrics;
pub mod proxy;
pub mod raw_upstream;
pub mod redis;
pub mod tls;
pub mod upstream;

// Re-exported for the test modules; not every one is used by every build of the binary.
#[allow(unused_imports)]
pub use body::{Body, empty, full, generated};
pub use metrics::Metrics;
pub use proxy::TestProxy;
#[allow(unused_imports)]
pub use raw_upstream::RawUpstream;
#[allow(unused_imports)]
pub use redis::TestRedis;
pub use tls::TestCa;
#[allow(unused_imports)]
pub use upstream::{Received, Reply, Serve, TestUpstream};

/// Route tracing output through the test harness (shown for failing tests only), once per
/// binary. Filter with `RAMPART_TEST_LOG` (default `warn`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RAMPART_TEST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
