//! Which bucket a request draws from (`key: none | client-ip | header:<name>`); the value is
//! borrowed from the request, never stored in full by the local buckets (they keep a hash).

use std::net::IpAddr;

use http::HeaderMap;

use super::policy::RateLimitKey;

/// The bucket key of one request.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum RequestKey<'a> {
    /// The shared bucket: no key configured, or the request lacks the keyed header or address.
    Shared,
    /// The client's IP address (`key: client-ip`).
    Ip(IpAddr),
    /// The value of the keyed header (`key: header:<name>`).
    Header(&'a [u8]),
}

impl<'a> RequestKey<'a> {
    /// The key for a request with `headers` from `client`, under `key`.
    pub fn of(key: &RateLimitKey, headers: &'a HeaderMap, client: Option<IpAddr>) -> Self {
        match key {
            RateLimitKey::None => RequestKey::Shared,
            RateLimitKey::ClientIp => client.map_or(RequestKey::Shared, RequestKey::Ip),
            RateLimitKey::Header(name) => headers
                .get(name)
                .map_or(RequestKey::Shared, |v| RequestKey::Header(v.as_bytes())),
        }
    }

    /// The suffix of the Redis key of this bucket (binary-safe; empty for the shared one).
    pub fn redis_suffix(&self) -> Vec<u8> {
        match self {
            RequestKey::Shared => Vec::new(),
            RequestKey::Ip(ip) => format!(":ip:{ip}").into_bytes(),
            RequestKey::Header(value) => [b":h:".as_slice(), value].concat(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_the_configured_source_or_fall_back_to_shared() {
        let mut headers = HeaderMap::new();
        headers.insert("x-tenant", "acme".parse().unwrap());
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        let tenant = RateLimitKey::Header(http::HeaderName::from_static("x-tenant"));
        let other = RateLimitKey::Header(http::HeaderName::from_static("x-other"));
        assert_eq!(
            RequestKey::of(&RateLimitKey::None, &headers, Some(ip)),
            RequestKey::Shared
        );
        assert_eq!(
            RequestKey::of(&RateLimitKey::ClientIp, &headers, Some(ip)),
            RequestKey::Ip(ip)
        );
        assert_eq!(
            RequestKey::of(&RateLimitKey::ClientIp, &headers, None),
            RequestKey::Shared
        );
        assert_eq!(
            RequestKey::of(&tenant, &headers, None),
            RequestKey::Header(b"acme")
        );
        assert_eq!(RequestKey::of(&other, &headers, None), RequestKey::Shared);
        assert_eq!(RequestKey::Ip(ip).redis_suffix(), b":ip:10.1.2.3");
        assert_eq!(RequestKey::Header(b"acme").redis_suffix(), b":h:acme");
        assert!(RequestKey::Shared.redis_suffix().is_empty());
    }
}
