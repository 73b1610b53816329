//! One upstream: its name, endpoints, match (hosts, prefix, listen), TLS files, health check
//! and routes, with the policy sections resolved over `defaults`.

use std::time::Duration;

use rustls_pki_types::ServerName;

use super::file::{
    LoadBalancingFile, PoliciesFile, ProtocolFile, RouteFile, TlsFile, Toggle, UpstreamFile,
};
use super::pem::TlsFiles;
use super::policies::Scopes;
use super::tree::join;
use super::validate::{Ctx, resolve};
use crate::upstream::policy::{
    EndpointPolicy, HealthCheckPolicy, HostMatch, LoadBalancing, RoutePolicy, TlsPolicy,
    UpstreamPolicy, UpstreamProtocol,
};

/// Validates one upstream; errors go to `ctx`, the returned policy is best effort.
pub(crate) fn upstream(
    ctx: &mut Ctx<'_>,
    name: String,
    up: UpstreamFile,
    defaults: &PoliciesFile,
) -> UpstreamPolicy {
    let base = format!("upstreams.{name}");
    let at = |key: &str| join(&base, key);
    let valid_name = name
        .bytes()
        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'));
    if name.is_empty() || !valid_name {
        ctx.error(
            &base,
            format!("upstream name \"{name}\" must match [a-z0-9_-]+"),
        );
    } else if name == "passthrough" {
        ctx.error(&base, "the upstream name \"passthrough\" is reserved");
    }
    let mut endpoints = Vec::new();
    for (i, e) in up.endpoints.iter().flatten().enumerate() {
        let path = at(&format!("endpoints[{i}]"));
        match endpoint_uri(&e.url) {
            Ok(url) => endpoints.push(EndpointPolicy {
                url,
                weight: e.weight.unwrap_or(1),
            }),
            Err(msg) => ctx.error(&path, msg),
        }
        if e.weight == Some(0) {
            ctx.error(&join(&path, "weight"), "must be at least 1");
        }
    }
    if up.endpoints.as_ref().is_none_or(Vec::is_empty) {
        ctx.error(&at("endpoints"), "at least one endpoint is required");
    }
    let mut hosts = Vec::new();
    for (i, h) in up.hosts.iter().flatten().enumerate() {
        match host_match(h) {
            Some(host) => hosts.push(host),
            None => ctx.error(
                &at(&format!("hosts[{i}]")),
                format!("\"{h}\" is not a host or host:port"),
            ),
        }
    }
    let path_prefix = up
        .path_prefix
        .as_deref()
        .and_then(|p| prefix(ctx, &at("path_prefix"), p));
    let policies = PoliciesFile {
        timeouts: up.timeouts,
        retry: up.retry,
        circuit_breaker: up.circuit_breaker,
        rate_limit: up.rate_limit,
        concurrency: up.concurrency,
    };
    let scopes = Scopes(vec![base.clone(), "defaults".into()]);
    let layers = [policies, defaults.clone()];
    let resolved = resolve(ctx, &layers, &scopes);
    let mut routes = Vec::new();
    for (i, route) in up.routes.into_iter().flatten().enumerate() {
        routes.push(route_policy(
            ctx,
            &at(&format!("routes[{i}]")),
            route,
            &layers,
        ));
    }
    let tls = tls(ctx, &at("tls"), up.tls.unwrap_or_default());
    let health_check = match up.health_check {
        Some(Toggle::On(h)) => Some(health_check(ctx, &at("health_check"), h)),
        _ => None,
    };
    UpstreamPolicy {
        endpoints,
        hosts,
        path_prefix,
        strip_prefix: up.strip_prefix.unwrap_or(false),
        listen: up.listen.map(|a| a.0),
        load_balancing: match up.load_balancing {
            Some(LoadBalancingFile::LeastRequest) => LoadBalancing::LeastRequest,
            Some(LoadBalancingFile::Random) => LoadBalancing::Random,
            _ => LoadBalancing::RoundRobin,
        },
        protocol: match up.protocol {
            Some(ProtocolFile::Http1) => UpstreamProtocol::Http1,
            Some(ProtocolFile::Http2) => UpstreamProtocol::Http2,
            _ => UpstreamProtocol::Auto,
        },
        tls,
        timeouts: resolved.timeouts,
        retry: resolved.retry,
        rate_limit: resolved.rate_limit,
        circuit_breaker: resolved.circuit_breaker,
        routes,
        concurrency: resolved.concurrency,
        fallback: up.fallback,
        health_check,
        name,
    }
}

/// Parses an endpoint URL: http/https, an authority without userinfo, no path or query; the
/// port is filled in from the scheme so the authority always has one.
pub(crate) fn endpoint_uri(text: &str) -> Result<http::Uri, String> {
    let bad = |why: &str| format!("endpoint \"{text}\" {why}");
    let uri: http::Uri = text.trim().parse().map_err(|_| bad("is not a URL"))?;
    let default_port = match uri.scheme_str() {
        Some("http") => 80,
        Some("https") => 443,
        _ => return Err(bad("must start with http:// or https://")),
    };
    let authority = uri.authority().ok_or_else(|| bad("has no host"))?;
    if authority.as_str().contains('@') {
        return Err(bad("must not carry user information"));
    }
    if authority.host().is_empty() {
        return Err(bad("has no host"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(bad("must not have a path or query"));
    }
    let port = authority.port_u16().unwrap_or(default_port);
    let scheme = uri.scheme_str().unwrap_or("http");
    format!(
        "{scheme}://{}:{port}/",
        authority.host().to_ascii_lowercase()
    )
    .parse()
    .map_err(|_| bad("is not a URL"))
}

/// Parses a `hosts` entry: `name`, `name:port`, `[::1]:8080`, `[::1]` or `::1`.
pub(crate) fn host_match(text: &str) -> Option<HostMatch> {
    let text = text.trim().to_ascii_lowercase();
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?.parse().ok()?),
        };
        (host.parse::<std::net::Ipv6Addr>().ok()?.to_string(), port)
    } else if text.matches(':').count() > 1 {
        (text.parse::<std::net::Ipv6Addr>().ok()?.to_string(), None)
    } else if let Some((host, port)) = text.split_once(':') {
        (host.to_string(), Some(port.parse().ok()?))
    } else {
        (text, None)
    };
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':');
    (!host.is_empty() && host.chars().all(ok_char)).then_some(HostMatch { host, port })
}

/// Normalises a `path_prefix`: starts with `/`, no trailing `/` except the root.
fn prefix(ctx: &mut Ctx<'_>, path: &str, text: &str) -> Option<String> {
    if !text.starts_with('/') || text.contains(['?', '#', ' ']) {
        ctx.error(
            path,
            format!("must be a path starting with \"/\", got \"{text}\""),
        );
        return None;
    }
    let trimmed = text.trim_end_matches('/');
    Some(if trimmed.is_empty() {
        "/".into()
    } else {
        trimmed.into()
    })
}

fn route_policy(
    ctx: &mut Ctx<'_>,
    base: &str,
    route: RouteFile,
    up: &[PoliciesFile],
) -> RoutePolicy {
    let path_prefix = route
        .path_prefix
        .as_deref()
        .and_then(|p| prefix(ctx, &join(base, "path_prefix"), p));
    let mut methods = Vec::new();
    for (i, m) in route.methods.iter().flatten().enumerate() {
        match http::Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
            Ok(method) if !m.is_empty() => methods.push(method),
            _ => ctx.error(
                &join(base, &format!("methods[{i}]")),
                format!("\"{m}\" is not an HTTP method"),
            ),
        }
    }
    if route.path_prefix.is_none() && route.methods.as_ref().is_none_or(Vec::is_empty) {
        ctx.error(base, "a route needs a path_prefix or methods to match on");
    }
    let own = PoliciesFile {
        timeouts: route.timeouts,
        retry: route.retry,
        ..Default::default()
    };
    let mut layers = vec![own];
    layers.extend(up.iter().map(|l| PoliciesFile {
        rate_limit: None,
        ..l.clone()
    }));
    let mut scopes = vec![base.to_string()];
    scopes.extend(base.rsplit_once(".routes").map(|(u, _)| u.to_string()));
    scopes.push("defaults".into());
    let resolved = resolve(ctx, &layers, &Scopes(scopes));
    let rate_limit = match route.rate_limit {
        Some(Toggle::On(r)) => {
            let defaults = up.last().and_then(|d| d.rate_limit.clone());
            let layers = [
                PoliciesFile {
                    rate_limit: Some(Toggle::On(r)),
                    ..Default::default()
                },
                PoliciesFile {
                    rate_limit: defaults,
                    ..Default::default()
                },
            ];
            let scopes = Scopes(vec![base.to_string(), "defaults".into()]);
            resolve(ctx, &layers, &scopes).rate_limit
        }
        _ => None,
    };
    RoutePolicy {
        path_prefix,
        methods,
        retry: resolved.retry,
        timeouts: resolved.timeouts,
        rate_limit,
    }
}

fn tls(ctx: &mut Ctx<'_>, base: &str, t: TlsFile) -> TlsPolicy {
    let files = TlsFiles {
        ca_file: t.ca_file,
        client_cert: t.client_cert,
        client_key: t.client_key,
    };
    let base_dir = ctx.base_dir;
    let files = files.checked(base_dir, |field, msg| ctx.error(&join(base, field), msg));
    if let Some(name) = &t.server_name
        && ServerName::try_from(name.as_str()).is_err()
    {
        ctx.error(
            &join(base, "server_name"),
            format!("\"{name}\" is not a DNS name or IP address"),
        );
    }
    TlsPolicy {
        ca_file: files.ca_file,
        client_cert: files.client_cert,
        client_key: files.client_key,
        server_name: t.server_name,
    }
}

fn health_check(
    ctx: &mut Ctx<'_>,
    base: &str,
    h: super::file::HealthCheckFile,
) -> HealthCheckPolicy {
    let policy = HealthCheckPolicy {
        path: h.path.unwrap_or_else(|| "/healthz".into()),
        interval: h.interval.map_or(Duration::from_secs(5), |d| d.0),
        timeout: h.timeout.map_or(Duration::from_secs(1), |d| d.0),
        unhealthy_after: h.unhealthy_after.unwrap_or(3),
        healthy_after: h.healthy_after.unwrap_or(2),
    };
    if !policy.path.starts_with('/') {
        ctx.error(&join(base, "path"), "must start with \"/\"");
    }
    if policy.interval.is_zero() {
        ctx.error(&join(base, "interval"), "must be greater than 0s");
    }
    if policy.timeout.is_zero() || policy.timeout > policy.interval {
        ctx.error(
            &join(base, "timeout"),
            "must be greater than 0s and not exceed interval",
        );
    }
    for (key, value) in [
        ("unhealthy_after", policy.unhealthy_after),
        ("healthy_after", policy.healthy_after),
    ] {
        if value == 0 {
            ctx.error(&join(base, key), "must be at least 1");
        }
    }
    policy
}
