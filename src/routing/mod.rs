//! Request → upstream (SPEC §3): `x-rampart-upstream`, then authority (+ longest
//! `path_prefix`), then prefix-only upstreams (longest first), then passthrough, else none.
//! Lookups are hash probes per path segment, so the cost does not grow with the number of
//! upstreams.

pub mod passthrough;

use std::net::SocketAddr;
use std::sync::Arc;

use crate::upstream::Upstream;

/// The table's maps: keys come from config, lookups from requests. foldhash (hashbrown's
/// default, randomly seeded) instead of SipHash, which cost a quarter of a route lookup; no
/// request ever inserts, so there is no hash flooding to defend against.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use passthrough::Passthrough;

/// The routing table of one config generation; swapped whole on reload.
#[derive(Debug, Default)]
pub struct Router {
    by_name: HashMap<Arc<str>, Arc<Upstream>>,
    /// Upstreams in config order (admin listings).
    ordered: Vec<Arc<Upstream>>,
    by_host: HashMap<String, Vec<HostRoute>>,
    by_prefix: HashMap<String, Arc<Upstream>>,
    passthrough: Option<Arc<Passthrough>>,
}

/// One `hosts` entry of an upstream.
#[derive(Debug)]
struct HostRoute {
    port: Option<u16>,
    prefix: Option<String>,
    upstream: Arc<Upstream>,
}

/// Why no upstream was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Miss {
    /// `x-rampart-upstream` named an upstream that does not exist.
    UnknownName,
    /// Nothing matched and passthrough is off.
    NoMatch,
}

/// The parts of a request routing looks at.
#[derive(Clone, Copy, Debug)]
pub struct RouteKey<'a> {
    /// `x-rampart-upstream`, if present.
    pub name: Option<&'a str>,
    /// Lowercase host from the absolute-form URI or the Host header.
    pub host: Option<&'a str>,
    /// Port from the same place, if given.
    pub port: Option<u16>,
    /// Request path (no query).
    pub path: &'a str,
}

impl Router {
    /// Builds the table from live upstreams (in config order) and an optional passthrough.
    pub fn new(upstreams: Vec<Arc<Upstream>>, passthrough: Option<Arc<Passthrough>>) -> Self {
        let mut router = Router {
            passthrough,
            ..Router::default()
        };
        for upstream in &upstreams {
            let policy = upstream.policy();
            router
                .by_name
                .insert(Arc::from(upstream.name()), upstream.clone());
            for host in &policy.hosts {
                router
                    .by_host
                    .entry(host.host.clone())
                    .or_default()
                    .push(HostRoute {
                        port: host.port,
                        prefix: policy.path_prefix.clone(),
                        upstream: upstream.clone(),
                    });
            }
            if policy.hosts.is_empty()
                && let Some(prefix) = &policy.path_prefix
            {
                router
                    .by_prefix
                    .entry(prefix.clone())
                    .or_insert_with(|| upstream.clone());
            }
        }
        for routes in router.by_host.values_mut() {
            // Longest prefix first; a port-specific entry before a port-less one.
            routes.sort_by_key(|r| {
                (
                    std::cmp::Reverse(r.prefix.as_ref().map_or(0, String::len)),
                    r.port.is_none(),
                )
            });
        }
        router.ordered = upstreams;
        router
    }

    /// The upstream for a request, or why there is none.
    pub fn route(&self, key: RouteKey<'_>) -> Result<Arc<Upstream>, Miss> {
        if let Some(name) = key.name {
            return self.by_name.get(name).cloned().ok_or(Miss::UnknownName);
        }
        if let Some(host) = key.host
            && let Some(upstream) = self.by_authority(host, key.port, key.path)
        {
            return Ok(upstream.clone());
        }
        if let Some(upstream) = self.by_path(key.path) {
            return Ok(upstream.clone());
        }
        match (&self.passthrough, key.host) {
            (Some(passthrough), Some(host)) => {
                Ok(passthrough.upstream(host, key.port.unwrap_or(80)))
            }
            _ => Err(Miss::NoMatch),
        }
    }

    /// The upstream with this name (dedicated listeners, admin API).
    pub fn get(&self, name: &str) -> Option<&Arc<Upstream>> {
        self.by_name.get(name)
    }

    /// Configured upstreams in config order.
    pub fn upstreams(&self) -> &[Arc<Upstream>] {
        &self.ordered
    }

    /// The passthrough table, when enabled.
    pub fn passthrough(&self) -> Option<&Arc<Passthrough>> {
        self.passthrough.as_ref()
    }

    /// Upstreams with a dedicated listener, and its address.
    pub fn dedicated_listeners(&self) -> impl Iterator<Item = (SocketAddr, &Arc<Upstream>)> {
        self.ordered
            .iter()
            .filter_map(|u| u.policy().listen.map(|addr| (addr, u)))
    }

    fn by_authority(&self, host: &str, port: Option<u16>, path: &str) -> Option<&Arc<Upstream>> {
        let routes = self.by_host.get(host)?;
        routes
            .iter()
            .find(|r| {
                r.port.is_none_or(|p| Some(p) == port)
                    && r.prefix
                        .as_deref()
                        .is_none_or(|p| crate::upstream::prefix_matches(p, path))
            })
            .map(|r| &r.upstream)
    }

    fn by_path(&self, path: &str) -> Option<&Arc<Upstream>> {
        if self.by_prefix.is_empty() {
            return None;
        }
        // Try "/a/b/c", "/a/b", "/a", then "/".
        let mut candidate = path;
        loop {
            if let Some(upstream) = self.by_prefix.get(candidate) {
                return Some(upstream);
            }
            match candidate.rfind('/') {
                Some(0) if candidate.len() > 1 => candidate = "/",
                Some(i) if i > 0 => candidate = &candidate[..i],
                _ => return None,
            }
        }
    }
}

/// Splits `host[:port]` (IPv6 in brackets) into a lowercase host and a port.
pub fn split_authority(authority: &str) -> (std::borrow::Cow<'_, str>, Option<u16>) {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, tail)) => (h, tail.strip_prefix(':').and_then(|p| p.parse().ok())),
            None => (rest, None),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, p.parse().ok()),
            _ => (authority, None),
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        (std::borrow::Cow::Owned(host.to_ascii_lowercase()), port)
    } else {
        (std::borrow::Cow::Borrowed(host), port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_split_into_lowercase_host_and_port() {
        assert_eq!(
            split_authority("API.example.com:8080"),
            ("api.example.com".into(), Some(8080))
        );
        assert_eq!(split_authority("payments"), ("payments".into(), None));
        assert_eq!(split_authority("[::1]:9000"), ("::1".into(), Some(9000)));
        assert_eq!(
            split_authority("example.com."),
            ("example.com".into(), None)
        );
    }
}
