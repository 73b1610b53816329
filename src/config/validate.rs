//! Semantic validation: merges defaults and presets, converts every section to its policy
//! type and checks the cross-field rules of SPEC §2, collecting all errors with their paths
//! (and line:column when the file sets the field).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use super::file::{FileConfig, PoliciesFile, Toggle};
use super::policies::{self, Scopes};
use super::presets::{Merge, builtin, builtin_rate_limit, expand_presets};
use super::tree::{SourceMap, join};
use super::upstream;
use super::{
    AdminPolicy, Config, ConnectPolicy, DefaultPolicies, FieldError, LimitsPolicy,
    PassthroughPolicy, RuntimePolicy, ShutdownPolicy,
};
use crate::secret::Secret;
use crate::upstream::policy::{ConcurrencyPolicy, HostMatch, UpstreamPolicy};

/// Collects errors and knows where each path is in the file.
pub(crate) struct Ctx<'a> {
    pub(crate) map: &'a SourceMap,
    pub(crate) base_dir: &'a Path,
    errors: Vec<FieldError>,
}

impl Ctx<'_> {
    /// Records an error at a path (deduplicated: a bad `defaults` field is reported once).
    pub(crate) fn error(&mut self, path: &str, message: impl Into<String>) {
        let (line, column) = self.map.position(path).unzip();
        let error = FieldError {
            path: path.to_string(),
            message: message.into(),
            line,
            column,
        };
        if !self.errors.contains(&error) {
            self.errors.push(error);
        }
    }

    /// Records an error about `key` of a merged section, at the most specific scope that sets it.
    pub(crate) fn error_in(&mut self, at: &Scopes, key: &str, message: impl Into<String>) {
        self.error_in_any(at, &[key], message);
    }

    /// Like [`Ctx::error_in`] for a rule about several keys: placed where one of them is set.
    pub(crate) fn error_in_any(&mut self, at: &Scopes, keys: &[&str], message: impl Into<String>) {
        for scope in &at.0 {
            for key in keys {
                let path = join(scope, key);
                if self.map.has(&path) {
                    return self.error(&path, message);
                }
            }
        }
        let first = at.0.first().map_or("", String::as_str);
        self.error(&join(first, keys[0]), message);
    }
}

/// The policy sections of one place, resolved: what an upstream, route or passthrough gets.
pub(crate) fn resolve(ctx: &mut Ctx<'_>, layers: &[PoliciesFile], at: &Scopes) -> DefaultPolicies {
    let merged = layers.iter().rev().fold(builtin(), |under, layer| {
        expand_presets(layer.clone()).merge(under)
    });
    let timeouts = policies::timeouts(
        ctx,
        &merged.timeouts.unwrap_or_default(),
        &at.child("timeouts"),
    );
    let retry = policies::retry(ctx, &merged.retry.unwrap_or_default(), &at.child("retry"));
    let circuit_breaker = match merged.circuit_breaker {
        Some(Toggle::On(b)) => Some(policies::breaker(ctx, &b, &at.child("circuit_breaker"))),
        _ => None,
    };
    let rate_limit = match merged.rate_limit {
        Some(Toggle::On(r)) => {
            let r = r.merge(builtin_rate_limit());
            policies::rate_limit(ctx, &r, &at.child("rate_limit"))
        }
        _ => None,
    };
    let concurrency = match merged.concurrency {
        Some(Toggle::On(c)) => match c.max_requests {
            Some(max_requests) if max_requests >= 1 => Some(ConcurrencyPolicy { max_requests }),
            _ => {
                ctx.error_in(
                    &at.child("concurrency"),
                    "max_requests",
                    "must be at least 1",
                );
                None
            }
        },
        _ => None,
    };
    DefaultPolicies {
        timeouts,
        retry,
        circuit_breaker,
        rate_limit,
        concurrency,
    }
}

fn addr(a: Option<super::units::AddrValue>, default: SocketAddr) -> SocketAddr {
    a.map_or(default, |a| a.0)
}

/// Validates a parsed file into a [`Config`], or every error found.
pub(crate) fn validate(
    file: FileConfig,
    map: &SourceMap,
    base_dir: &Path,
) -> Result<Config, Vec<FieldError>> {
    let mut ctx = Ctx {
        map,
        base_dir,
        errors: Vec::new(),
    };
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let listen = addr(file.listen, SocketAddr::new(loopback, 15001));
    let admin_file = file.admin.unwrap_or_default();
    let admin = AdminPolicy {
        listen: addr(admin_file.listen, SocketAddr::new(loopback, 9901)),
        token: Secret::new(admin_file.token.unwrap_or_default()),
    };
    if admin.token.is_empty() && !admin.listen.ip().is_loopback() {
        ctx.error(
            "admin.listen",
            "must be a loopback address while admin.token is empty",
        );
    }
    // Port 0 asks the OS for a free port, so two of them never collide.
    if admin.listen == listen && listen.port() != 0 {
        ctx.error(
            "admin.listen",
            format!("{listen} is already the main listen address"),
        );
    }
    let runtime = RuntimePolicy {
        worker_threads: file.runtime.and_then(|r| r.worker_threads),
    };
    if runtime.worker_threads == Some(0) {
        ctx.error("runtime.worker_threads", "must be at least 1");
    }
    let l = file.limits.unwrap_or_default();
    let limits = LimitsPolicy {
        max_connections: l.max_connections.unwrap_or(10_000),
        max_request_header_bytes: l
            .max_request_header_bytes
            .map_or(64 * 1024, |s| s.0 as usize),
        max_request_headers: l.max_request_headers.unwrap_or(100),
        header_read_timeout: l
            .header_read_timeout
            .map_or(Duration::from_secs(10), |d| d.0),
    };
    for (key, value) in [
        ("max_connections", limits.max_connections),
        ("max_request_header_bytes", limits.max_request_header_bytes),
        ("max_request_headers", limits.max_request_headers),
    ] {
        if value == 0 {
            ctx.error(&format!("limits.{key}"), "must be at least 1");
        }
    }
    if limits.header_read_timeout.is_zero() {
        ctx.error("limits.header_read_timeout", "must be greater than 0s");
    }
    let s = file.shutdown.unwrap_or_default();
    let shutdown = ShutdownPolicy {
        drain_delay: s.drain_delay.map_or(Duration::from_secs(5), |d| d.0),
        timeout: s.timeout.map_or(Duration::from_secs(30), |d| d.0),
    };
    let defaults_file = file.defaults.unwrap_or_default();
    let defaults_scope = Scopes(vec!["defaults".into()]);
    let defaults = resolve(
        &mut ctx,
        std::slice::from_ref(&defaults_file),
        &defaults_scope,
    );
    let p = file.passthrough.unwrap_or_default();
    let passthrough = PassthroughPolicy {
        enabled: p.enabled.unwrap_or(false),
        max_hosts: p.max_hosts.unwrap_or(1000),
        defaults,
    };
    if passthrough.max_hosts == 0 {
        ctx.error("passthrough.max_hosts", "must be at least 1");
    }
    let connect = match file.connect.and_then(|c| c.allowed_ports) {
        None => ConnectPolicy::default(),
        Some(ports) => {
            let mut allowed_ports = Vec::with_capacity(ports.len());
            for (i, port) in ports.into_iter().enumerate() {
                match u16::try_from(port) {
                    Ok(p) if p > 0 => allowed_ports.push(p),
                    _ => ctx.error(
                        &format!("connect.allowed_ports[{i}]"),
                        format!("expected a port 1-65535, got {port}"),
                    ),
                }
            }
            ConnectPolicy { allowed_ports }
        }
    };
    let mut upstreams = Vec::new();
    for (name, up) in file.upstreams.map(|u| u.0).unwrap_or_default() {
        upstreams.push(upstream::upstream(&mut ctx, name, up, &defaults_file));
    }
    cross_upstream(&mut ctx, &upstreams, listen, admin.listen);
    let config = Config {
        listen,
        admin,
        runtime,
        limits,
        shutdown,
        passthrough,
        connect,
        upstreams,
    };
    if ctx.errors.is_empty() {
        Ok(config)
    } else {
        Err(ctx.errors)
    }
}

/// Rules between upstreams: unique routes and listeners, fallbacks that exist without cycles.
fn cross_upstream(ctx: &mut Ctx<'_>, ups: &[UpstreamPolicy], main: SocketAddr, admin: SocketAddr) {
    let mut routes: HashMap<String, &str> = HashMap::new();
    let mut listens: HashMap<SocketAddr, &str> = HashMap::new();
    for up in ups {
        let base = format!("upstreams.{}", up.name);
        let prefix = up.path_prefix.as_deref();
        let keys: Vec<(String, String)> = if up.hosts.is_empty() {
            prefix
                .map(|p| (format!("prefix {p}"), "path_prefix".to_string()))
                .into_iter()
                .collect()
        } else {
            let route = |h: &HostMatch| {
                let port = h.port.map(|p| format!(":{p}")).unwrap_or_default();
                format!("host {}{port} prefix {}", h.host, prefix.unwrap_or("/"))
            };
            let path = |i: usize| match prefix {
                Some(_) => "path_prefix".to_string(),
                None => format!("hosts[{i}]"),
            };
            up.hosts
                .iter()
                .enumerate()
                .map(|(i, h)| (route(h), path(i)))
                .collect()
        };
        for (key, field) in keys {
            match routes.get(&key) {
                Some(other) => ctx.error(
                    &join(&base, &field),
                    format!("the route ({key}) is already claimed by upstream {other}"),
                ),
                None => _ = routes.insert(key, &up.name),
            }
        }
        if let Some(listen) = up.listen.filter(|l| l.port() != 0) {
            let path = join(&base, "listen");
            if listen == main || listen == admin {
                let which = if listen == main { "main" } else { "admin" };
                ctx.error(
                    &path,
                    format!("{listen} is already the {which} listen address"),
                );
            } else if let Some(other) = listens.insert(listen, &up.name) {
                ctx.error(
                    &path,
                    format!("{listen} is already the listen address of upstream {other}"),
                );
            }
        }
    }
    let fallback_of: HashMap<&str, &str> = ups
        .iter()
        .filter_map(|u| Some((u.name.as_str(), u.fallback.as_deref()?)))
        .collect();
    for up in ups {
        let Some(fallback) = up.fallback.as_deref() else {
            continue;
        };
        let path = format!("upstreams.{}.fallback", up.name);
        if fallback == up.name {
            ctx.error(&path, "an upstream cannot be its own fallback");
        } else if !ups.iter().any(|u| u.name == fallback) {
            ctx.error(&path, format!("names no upstream: \"{fallback}\""));
        } else {
            let mut chain = vec![up.name.as_str()];
            let mut next = Some(fallback);
            while let Some(name) = next {
                if name == up.name {
                    chain.push(name);
                    ctx.error(
                        &path,
                        format!("fallback chain has a cycle: {}", chain.join(" -> ")),
                    );
                    break;
                }
                if chain.contains(&name) {
                    break;
                }
                chain.push(name);
                next = fallback_of.get(name).copied();
            }
        }
    }
}
