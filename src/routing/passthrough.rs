//! Implicit upstreams for authorities no upstream names: each gets its own breaker and
//! limiter (the `defaults` policies) in an LRU-bounded table, so a client asking for many
//! hosts cannot grow memory without bound. Metrics share the `passthrough` label.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};

use lru::LruCache;

use crate::config::PassthroughPolicy;
use crate::metrics::UpstreamMetrics;
use crate::upstream::Upstream;
use crate::upstream::client::Connector;
use crate::upstream::policy::{
    EndpointPolicy, LoadBalancing, TlsPolicy, UpstreamPolicy, UpstreamProtocol,
};

/// The `upstream` label every passthrough authority reports under.
pub const PASSTHROUGH_LABEL: &str = "passthrough";

/// Live passthrough state.
#[derive(Debug)]
pub struct Passthrough {
    policy: PassthroughPolicy,
    client: Arc<Connector>,
    metrics: Arc<UpstreamMetrics>,
    table: Mutex<LruCache<(String, u16), Arc<Upstream>>>,
}

impl Passthrough {
    /// An empty table holding at most `policy.max_hosts` authorities.
    pub fn new(
        policy: PassthroughPolicy,
        client: Arc<Connector>,
        metrics: Arc<UpstreamMetrics>,
    ) -> Self {
        let cap = NonZeroUsize::new(policy.max_hosts).unwrap_or(NonZeroUsize::MIN);
        Self {
            policy,
            client,
            metrics,
            table: Mutex::new(LruCache::new(cap)),
        }
    }

    /// The policy this table was built from (a reload keeps the table when it is unchanged).
    pub fn policy(&self) -> &PassthroughPolicy {
        &self.policy
    }

    /// The implicit upstream for `host:port`, created on first use.
    pub fn upstream(&self, host: &str, port: u16) -> Arc<Upstream> {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = table.get(&(host.to_owned(), port)) {
            return found.clone();
        }
        let upstream = Upstream::with_client(
            self.upstream_policy(host, port),
            self.client.clone(),
            self.metrics.clone(),
        );
        table.put((host.to_owned(), port), upstream.clone());
        upstream
    }

    /// Authorities currently tracked, most recently used first (admin API).
    pub fn upstreams(&self) -> Vec<Arc<Upstream>> {
        let table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        table.iter().map(|(_, u)| u.clone()).collect()
    }

    fn upstream_policy(&self, host: &str, port: u16) -> UpstreamPolicy {
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let d = &self.policy.defaults;
        UpstreamPolicy {
            endpoints: vec![EndpointPolicy {
                url: format!("http://{authority}")
                    .parse()
                    .unwrap_or_else(|_| http::Uri::from_static("http://invalid:80")),
                weight: 1,
            }],
            name: authority,
            hosts: Vec::new(),
            path_prefix: None,
            strip_prefix: false,
            listen: None,
            load_balancing: LoadBalancing::RoundRobin,
            protocol: UpstreamProtocol::Http1,
            tls: TlsPolicy::default(),
            timeouts: d.timeouts,
            retry: d.retry.clone(),
            rate_limit: d.rate_limit.clone(),
            circuit_breaker: d.circuit_breaker.clone(),
            routes: Vec::new(),
            concurrency: d.concurrency,
            fallback: None,
            health_check: None,
        }
    }
}
