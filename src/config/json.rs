//! The effective configuration as JSON, for `GET /admin/config` (SPEC §6): the validated,
//! defaults-merged [`Config`] rendered back in the SPEC §2 schema shape, secrets redacted.
//!
//! Shape notes:
//! - Field names are the YAML ones. Presets are already resolved, so `preset` never appears;
//!   every field carries its effective value.
//! - `upstreams` is an **array** of upstream objects, each with a `name` field, in config
//!   order: this crate's `serde_json` is built without `preserve_order`, so an object keyed
//!   by name would come out sorted by name instead. For the same reason the keys inside every
//!   object are in alphabetical order.
//! - The `defaults` section has no separate entry: it is merged into every upstream, and
//!   `passthrough.defaults` shows it resolved on its own (what passthrough authorities get).
//! - Durations use the largest exact unit (`250ms`, `5s`, `2m`, `1h`, `90s`, `0s`); sizes the
//!   largest exact binary unit (`64KiB`, `1MiB`, `100B`); rates `N/s`, `N/m`, `N/h`;
//!   percentages `50%`; breaker windows a duration or `"100 calls"`.
//! - Sections switched off whose default is on render as `"off"` (`circuit_breaker`,
//!   `failure_rate`, `slow_call`, `budget`); optional sections that are simply absent render
//!   as `null` (`rate_limit`, `concurrency`, `health_check`, `fallback`, `listen`, ...).
//! - Redaction: `admin.token` is `"<redacted>"` when set and `""` when empty; passwords (and
//!   any lone user-info) in `rate_limit.global.redis` and endpoint URLs are replaced by
//!   `<redacted>`, as are the values of password-like query parameters. TLS file *paths* are
//!   shown; no file is ever read.

use std::time::Duration;

use serde_json::{Value, json};

use super::units::format_size;
use super::{Config, DefaultPolicies};
use crate::breaker::policy::{BreakerPolicy, BreakerScope, BreakerWindow};
use crate::outcome::OutcomeFilter;
use crate::rate_limit::policy::{LimitMode, OnRedisError, Rate, RateLimitKey, RateLimitPolicy};
use crate::retry::policy::{BackoffStrategy, RetryPolicy};
use crate::upstream::policy::{
    ConcurrencyPolicy, EndpointPolicy, HealthCheckPolicy, HostMatch, LoadBalancing, RoutePolicy,
    TimeoutPolicy, TlsPolicy, UpstreamPolicy, UpstreamProtocol,
};

/// What a redacted secret (or the secret part of a URL) is replaced with.
const REDACTED: &str = "<redacted>";

/// Renders the effective configuration for `GET /admin/config`: every section of SPEC §2 with
/// defaults and presets merged in, durations/sizes/rates/percentages in their YAML spelling,
/// `upstreams` as an array of objects (with `name`) in config order, and secrets redacted
/// (see the module docs for the exact shape).
pub fn effective_json(config: &Config) -> Value {
    let l = &config.limits;
    let p = &config.passthrough;
    json!({
        "listen": config.listen.to_string(),
        "admin": {
            "listen": config.admin.listen.to_string(),
            // `Secret`'s Display is already "<redacted>" / "": the token itself is never read.
            "token": config.admin.token.to_string(),
        },
        "runtime": { "worker_threads": config.runtime.worker_threads },
        "limits": {
            "max_connections": l.max_connections,
            "max_request_header_bytes": size(l.max_request_header_bytes as u64),
            "max_request_headers": l.max_request_headers,
            "header_read_timeout": duration(l.header_read_timeout),
        },
        "shutdown": {
            "drain_delay": duration(config.shutdown.drain_delay),
            "timeout": duration(config.shutdown.timeout),
        },
        "passthrough": {
            "enabled": p.enabled,
            "max_hosts": p.max_hosts,
            "defaults": defaults(&p.defaults),
        },
        "connect": { "allowed_ports": config.connect.allowed_ports },
        "upstreams": config.upstreams.iter().map(upstream).collect::<Vec<_>>(),
    })
}

fn defaults(d: &DefaultPolicies) -> Value {
    json!({
        "timeouts": timeouts(&d.timeouts),
        "retry": retry(&d.retry),
        "circuit_breaker": breaker(d.circuit_breaker.as_ref()),
        "rate_limit": rate_limit(d.rate_limit.as_ref()),
        "concurrency": concurrency(d.concurrency.as_ref()),
    })
}

fn upstream(up: &UpstreamPolicy) -> Value {
    json!({
        "name": up.name,
        "endpoints": up.endpoints.iter().map(endpoint).collect::<Vec<_>>(),
        "hosts": up.hosts.iter().map(host).collect::<Vec<_>>(),
        "path_prefix": up.path_prefix,
        "strip_prefix": up.strip_prefix,
        "listen": up.listen.map(|a| a.to_string()),
        "load_balancing": match up.load_balancing {
            LoadBalancing::RoundRobin => "round_robin",
            LoadBalancing::LeastRequest => "least_request",
            LoadBalancing::Random => "random",
        },
        "protocol": match up.protocol {
            UpstreamProtocol::Auto => "auto",
            UpstreamProtocol::Http1 => "http1",
            UpstreamProtocol::Http2 => "http2",
        },
        "tls": tls(&up.tls),
        "timeouts": timeouts(&up.timeouts),
        "retry": retry(&up.retry),
        "rate_limit": rate_limit(up.rate_limit.as_ref()),
        "circuit_breaker": breaker(up.circuit_breaker.as_ref()),
        "routes": up.routes.iter().map(route).collect::<Vec<_>>(),
        "concurrency": concurrency(up.concurrency.as_ref()),
        "fallback": up.fallback,
        "health_check": up.health_check.as_ref().map(health_check),
    })
}

/// `{url, weight}`; the URL without the trailing `/` the validated form carries.
fn endpoint(e: &EndpointPolicy) -> Value {
    let url = e.url.to_string();
    json!({
        "url": redact_url(url.strip_suffix('/').unwrap_or(&url)),
        "weight": e.weight,
    })
}

/// `name`, `name:port`, `[v6]:port`, or a bare IPv6 literal.
fn host(h: &HostMatch) -> String {
    match h.port {
        Some(port) if h.host.contains(':') => format!("[{}]:{port}", h.host),
        Some(port) => format!("{}:{port}", h.host),
        None => h.host.clone(),
    }
}

fn path(p: &Option<std::path::PathBuf>) -> Option<String> {
    p.as_ref().map(|p| p.display().to_string())
}

/// Paths only: the files (notably `client_key`) are never opened here.
fn tls(t: &TlsPolicy) -> Value {
    json!({
        "ca_file": path(&t.ca_file),
        "client_cert": path(&t.client_cert),
        "client_key": path(&t.client_key),
        "server_name": t.server_name,
    })
}

fn timeouts(t: &TimeoutPolicy) -> Value {
    json!({
        "connect": duration(t.connect),
        "request": duration(t.request),
        "per_try": duration(t.per_try),
        "idle": duration(t.idle),
    })
}

fn methods(methods: &[http::Method]) -> Vec<&str> {
    methods.iter().map(http::Method::as_str).collect()
}

fn retry(r: &RetryPolicy) -> Value {
    let budget = match &r.budget {
        Some(b) => json!({
            "ratio": percent(f64::from(b.ratio)),
            "min_per_second": b.min_per_second,
            "window": duration(b.window),
        }),
        None => json!("off"),
    };
    json!({
        "attempts": r.attempts,
        "on": outcomes(&r.on),
        "methods": methods(&r.methods),
        "backoff": {
            "strategy": match r.backoff.strategy {
                BackoffStrategy::Fixed => "fixed",
                BackoffStrategy::Linear => "linear",
                BackoffStrategy::Exponential => "exponential",
                BackoffStrategy::ExponentialJitter => "exponential-jitter",
            },
            "base": duration(r.backoff.base),
            "max": duration(r.backoff.max),
        },
        "retry_after": {
            "honor": r.retry_after.honor,
            "max": duration(r.retry_after.max),
        },
        "budget": budget,
        "max_body_bytes": size(r.max_body_bytes),
        "hedge": { "delay": duration(r.hedge_delay) },
    })
}

/// `null` when there is no rate limit (the default).
fn rate_limit(r: Option<&RateLimitPolicy>) -> Value {
    let Some(r) = r else { return Value::Null };
    let (mode, max_wait) = match r.mode {
        LimitMode::Reject => ("reject", None),
        LimitMode::Wait { max_wait } => ("wait", Some(duration(max_wait))),
    };
    let key = match &r.key {
        RateLimitKey::None => "none".to_string(),
        RateLimitKey::ClientIp => "client-ip".to_string(),
        RateLimitKey::Header(name) => format!("header:{name}"),
    };
    let global = r.global.as_ref().map(|g| {
        json!({
            // The one place the URL is exposed: to cut the password out of it.
            "redis": redact_url(g.redis_url.expose()),
            "on_error": match g.on_error {
                OnRedisError::Local => "local",
                OnRedisError::Allow => "allow",
                OnRedisError::Deny => "deny",
            },
            // Paths only, as for an upstream's tls: the key file is never opened here.
            "tls": {
                "ca_file": path(&g.tls.ca_file),
                "client_cert": path(&g.tls.client_cert),
                "client_key": path(&g.tls.client_key),
            },
        })
    });
    json!({
        "rate": rate(r.rate),
        "burst": r.burst,
        "mode": mode,
        "max_wait": max_wait,
        "dry_run": r.dry_run,
        "key": key,
        "global": global,
    })
}

/// `"off"` when the breaker is switched off (it is on by default).
fn breaker(b: Option<&BreakerPolicy>) -> Value {
    let Some(b) = b else { return json!("off") };
    let window = match b.window {
        BreakerWindow::Time(d) => duration(d),
        BreakerWindow::Calls(n) => format!("{n} calls"),
    };
    let slow_call = match &b.slow_call {
        Some(s) => json!({ "duration": duration(s.duration), "rate": percent(s.rate) }),
        None => json!("off"),
    };
    json!({
        "consecutive_failures": b.consecutive_failures,
        "failure_rate": b.failure_rate.map_or_else(|| "off".to_string(), percent),
        "minimum_calls": b.minimum_calls,
        "window": window,
        "slow_call": slow_call,
        "open_for": duration(b.open_for),
        "max_open_for": duration(b.max_open_for),
        "half_open_calls": b.half_open_calls,
        "success_threshold": b.success_threshold,
        "failure_on": outcomes(&b.failure_on),
        "scope": match b.scope {
            BreakerScope::Upstream => "upstream",
            BreakerScope::Endpoint => "endpoint",
        },
        "max_ejection": percent(b.max_ejection),
        "dry_run": b.dry_run,
    })
}

/// A route's fields are already merged over the upstream's; `rate_limit: null` means the
/// upstream's bucket applies.
fn route(r: &RoutePolicy) -> Value {
    json!({
        "path_prefix": r.path_prefix,
        "methods": methods(&r.methods),
        "retry": retry(&r.retry),
        "timeouts": timeouts(&r.timeouts),
        "rate_limit": rate_limit(r.rate_limit.as_ref()),
    })
}

/// `null` when uncapped (the default).
fn concurrency(c: Option<&ConcurrencyPolicy>) -> Value {
    c.map_or(Value::Null, |c| json!({ "max_requests": c.max_requests }))
}

fn health_check(h: &HealthCheckPolicy) -> Value {
    json!({
        "path": h.path,
        "interval": duration(h.interval),
        "timeout": duration(h.timeout),
        "unhealthy_after": h.unhealthy_after,
        "healthy_after": h.healthy_after,
    })
}

/// The words of `retry.on` / `failure_on`: transport failures first, then per status class
/// either `"5xx"` (all 100 codes present) or the codes as numbers, ascending.
fn outcomes(f: &OutcomeFilter) -> Value {
    let mut list = Vec::new();
    for (set, word) in [
        (f.connect_failure, "connect-failure"),
        (f.reset, "reset"),
        (f.timeout, "timeout"),
    ] {
        if set {
            list.push(json!(word));
        }
    }
    for class in 1u16..=5 {
        let codes = class * 100..class * 100 + 100;
        if codes.clone().all(|c| f.has_status(c)) {
            list.push(json!(format!("{class}xx")));
        } else {
            list.extend(codes.filter(|c| f.has_status(*c)).map(|c| json!(c)));
        }
    }
    Value::Array(list)
}

/// A duration in the largest unit that holds it exactly (`1h`, `2m`, `90s`, `250ms`, `0s`);
/// sub-millisecond parts as decimal milliseconds (`0.5ms`), which the parser accepts too.
pub(crate) fn duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    let nanos = d.as_nanos();
    const MS: u128 = 1_000_000;
    for (unit, name) in [
        (3600 * 1000 * MS, "h"),
        (60 * 1000 * MS, "m"),
        (1000 * MS, "s"),
        (MS, "ms"),
    ] {
        if nanos.is_multiple_of(unit) {
            return format!("{}{name}", nanos / unit);
        }
    }
    let frac = format!("{:06}", nanos % MS);
    format!("{}.{}ms", nanos / MS, frac.trim_end_matches('0'))
}

pub(crate) fn size(bytes: u64) -> String {
    format_size(bytes)
}

/// `100/s`, `6000/m`, `10/h` (the only periods the schema has).
pub(crate) fn rate(r: Rate) -> String {
    match r.period.as_secs() {
        1 => format!("{}/s", r.tokens),
        60 => format!("{}/m", r.tokens),
        3600 => format!("{}/h", r.tokens),
        _ => format!("{}/s", r.per_second()),
    }
}

/// A fraction (0.5) as a percentage (`"50%"`), rounded to 3 decimals so `f32` noise
/// (`0.2f32` is 20.000000298 %) does not show.
pub(crate) fn percent(fraction: f64) -> String {
    // `+ 0.0` turns -0 (a valid `failure_rate: -0`) into 0: "-0%" would not parse back.
    let p = (fraction * 100_000.0).round() / 1000.0 + 0.0;
    if p.fract() == 0.0 {
        format!("{p:.0}%")
    } else {
        format!("{p}%")
    }
}

/// Query parameters whose values are treated as secrets.
fn secret_param(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["pass", "pwd", "token", "secret", "auth", "key"]
        .iter()
        .any(|s| key.contains(s))
}

/// Cuts secrets out of a URL: `scheme://user:pass@host` → `scheme://user:<redacted>@host`,
/// `scheme://:pass@host` → `scheme://:<redacted>@host`, a lone `scheme://secret@host` →
/// `scheme://<redacted>@host` (Redis clients may read it as a password), and the values of
/// password-like query parameters. The user-info ends at the *last* `@`, so an unescaped `@`
/// or `/` in a password is redacted rather than leaked.
fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let rest = match rest.rfind('@') {
        Some(at) => {
            let (userinfo, host) = rest.split_at(at);
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:{REDACTED}{host}"),
                None => format!("{REDACTED}{host}"),
            }
        }
        None => rest.to_string(),
    };
    let (before, fragment) = match rest.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (rest.as_str(), None),
    };
    let mut out = match before.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if secret_param(k) => format!("{k}={REDACTED}"),
                    _ => pair.to_string(),
                })
                .collect();
            format!("{scheme}{path}?{}", params.join("&"))
        }
        None => format!("{scheme}{before}"),
    };
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::{EMBEDDED_DEFAULT, parse};

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn render(yaml: &str, pairs: &[(&str, &str)]) -> Value {
        match parse(yaml, &vars(pairs)) {
            Ok(config) => effective_json(&config),
            Err(e) => panic!("expected a valid config, got:\n{e}"),
        }
    }

    fn upstream<'a>(v: &'a Value, name: &str) -> &'a Value {
        v["upstreams"]
            .as_array()
            .expect("upstreams array")
            .iter()
            .find(|u| u["name"] == name)
            .unwrap_or_else(|| panic!("no upstream {name} in {v}"))
    }

    const SECRETS: &str = r#"
admin:
  listen: 127.0.0.1:9901
  token: ${TOKEN}
defaults:
  rate_limit:
    rate: 100/s
    global: { redis: "redis://:hunter2@127.0.0.1:6379/0" }
upstreams:
  payments:
    endpoints: [http://10.0.0.5:8080]
    hosts: [payments]
    rate_limit:
      rate: 6000/m
      global: { redis: "redis://alice:hunter2@redis.internal:6379/1", on_error: deny }
"#;

    #[test]
    fn secrets_are_redacted() {
        let v = render(SECRETS, &[("TOKEN", "s3cr3t-token")]);
        let text = v.to_string();
        assert!(!text.contains("s3cr3t-token"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains(REDACTED), "{text}");
        assert_eq!(v["admin"]["token"], "<redacted>");
        assert_eq!(
            v["passthrough"]["defaults"]["rate_limit"]["global"]["redis"],
            "redis://:<redacted>@127.0.0.1:6379/0"
        );
        let payments = upstream(&v, "payments");
        assert_eq!(
            payments["rate_limit"]["global"]["redis"],
            "redis://alice:<redacted>@redis.internal:6379/1"
        );
        assert_eq!(payments["rate_limit"]["global"]["on_error"], "deny");
        assert_eq!(payments["rate_limit"]["rate"], "6000/m");
    }

    #[test]
    fn empty_token_renders_empty() {
        let v = render(SECRETS, &[("TOKEN", "")]);
        assert_eq!(v["admin"]["token"], "");
    }

    #[test]
    fn urls_lose_passwords_and_secret_params() {
        let cases = [
            ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
            ("redis://:pw@h:6379/0", "redis://:<redacted>@h:6379/0"),
            ("redis://user:pass@h", "redis://user:<redacted>@h"),
            ("rediss://lonetoken@h/2", "rediss://<redacted>@h/2"),
            ("redis://:p@ss/w@h:1/0", "redis://:<redacted>@h:1/0"),
            (
                "redis://h/0?db=1&password=x&x=y#f",
                "redis://h/0?db=1&password=<redacted>&x=y#f",
            ),
            ("http://u:p@10.0.0.1:80", "http://u:<redacted>@10.0.0.1:80"),
        ];
        for (input, want) in cases {
            assert_eq!(redact_url(input), want, "{input}");
        }
    }

    #[test]
    fn units_render_in_their_yaml_spelling() {
        assert_eq!(duration(Duration::ZERO), "0s");
        assert_eq!(duration(Duration::from_millis(250)), "250ms");
        assert_eq!(duration(Duration::from_secs(5)), "5s");
        assert_eq!(duration(Duration::from_secs(90)), "90s");
        assert_eq!(duration(Duration::from_secs(120)), "2m");
        assert_eq!(duration(Duration::from_secs(3600)), "1h");
        assert_eq!(duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(duration(Duration::from_micros(500)), "0.5ms");
        assert_eq!(duration(Duration::from_micros(1250)), "1.25ms");
        assert_eq!(size(64 * 1024), "64KiB");
        assert_eq!(size(1 << 20), "1MiB");
        assert_eq!(size(1000), "1000B");
        assert_eq!(percent(0.5), "50%");
        assert_eq!(percent(f64::from(0.2f32)), "20%");
        assert_eq!(percent(0.125), "12.5%");
        assert_eq!(percent(1.0), "100%");
    }

    #[test]
    fn outcome_filters_collapse_full_classes() {
        let mut f = OutcomeFilter::empty();
        f.connect_failure = true;
        f.reset = true;
        f.timeout = true;
        f.add_status_range(502, 504);
        assert_eq!(
            outcomes(&f),
            json!(["connect-failure", "reset", "timeout", 502, 503, 504])
        );
        let mut f = OutcomeFilter::empty();
        f.add_status_range(500, 599);
        f.add_status(409);
        f.add_status(429);
        assert_eq!(outcomes(&f), json!([409, 429, "5xx"]));
        f.add_status_range(400, 499);
        assert_eq!(outcomes(&f), json!(["4xx", "5xx"]));
    }

    #[test]
    fn embedded_default_renders() {
        let v = render(EMBEDDED_DEFAULT, &[]);
        assert_eq!(v["listen"], "127.0.0.1:15001");
        assert_eq!(v["admin"]["listen"], "127.0.0.1:9901");
        assert_eq!(v["admin"]["token"], "");
        assert_eq!(v["passthrough"]["enabled"], true);
        assert_eq!(v["upstreams"], json!([]));
        let d = &v["passthrough"]["defaults"];
        assert_eq!(
            d["timeouts"],
            json!({ "connect": "1s", "request": "15s", "per_try": "5s", "idle": "90s" })
        );
        assert_eq!(d["retry"]["attempts"], 3);
        assert_eq!(
            d["retry"]["on"],
            json!(["connect-failure", "reset", "timeout", 502, 503, 504])
        );
        assert_eq!(
            d["retry"]["budget"],
            json!({ "ratio": "20%", "min_per_second": 10, "window": "10s" })
        );
        assert_eq!(d["circuit_breaker"]["consecutive_failures"], 5);
        assert_eq!(d["circuit_breaker"]["open_for"], "30s");
        assert_eq!(d["rate_limit"], Value::Null);
        assert_eq!(d["concurrency"], Value::Null);
    }

    #[test]
    fn reference_config_spot_checks() {
        let text = include_str!("../../config/reference.yaml");
        let v = render(text, &[("RAMPART_ADMIN_TOKEN", "s3cr3t-token")]);
        assert!(!v.to_string().contains("s3cr3t-token"));
        assert_eq!(v["runtime"]["worker_threads"], 2);
        assert_eq!(
            v["limits"],
            json!({
                "max_connections": 10000,
                "max_request_header_bytes": "64KiB",
                "max_request_headers": 100,
                "header_read_timeout": "10s",
            })
        );
        assert_eq!(
            v["shutdown"],
            json!({ "drain_delay": "5s", "timeout": "30s" })
        );
        let names: Vec<&str> = v["upstreams"]
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|u| u["name"].as_str())
            .collect();
        assert_eq!(names, ["payments", "payments-dr"], "config order");

        let p = upstream(&v, "payments");
        assert_eq!(
            p["endpoints"],
            json!([
                { "url": "http://10.0.0.5:8080", "weight": 1 },
                { "url": "http://10.0.0.6:8080", "weight": 2 },
            ])
        );
        assert_eq!(p["hosts"], json!(["payments", "payments.internal"]));
        assert_eq!(p["path_prefix"], "/payments");
        assert_eq!(p["listen"], "127.0.0.1:15002");
        assert_eq!(p["load_balancing"], "round_robin");
        assert_eq!(p["protocol"], "auto");
        assert_eq!(p["tls"]["client_key"], Value::Null);
        let r = &p["retry"];
        assert_eq!(
            r["methods"],
            json!(["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"])
        );
        assert_eq!(
            r["backoff"],
            json!({ "strategy": "exponential-jitter", "base": "25ms", "max": "1s" })
        );
        assert_eq!(r["retry_after"], json!({ "honor": true, "max": "10s" }));
        assert_eq!(r["max_body_bytes"], "64KiB");
        assert_eq!(r["hedge"], json!({ "delay": "0s" }));
        assert_eq!(
            p["rate_limit"],
            json!({
                "rate": "100/s", "burst": 20, "mode": "reject", "max_wait": null,
                "dry_run": false, "key": "none", "global": null,
            })
        );
        let b = &p["circuit_breaker"];
        assert_eq!(b["failure_rate"], "50%");
        assert_eq!(b["window"], "1m");
        assert_eq!(b["slow_call"], "off");
        assert_eq!(b["max_open_for"], "5m");
        assert_eq!(
            b["failure_on"],
            json!(["connect-failure", "reset", "timeout", "5xx"])
        );
        assert_eq!(b["scope"], "upstream");
        assert_eq!(b["max_ejection"], "50%");
        let route = &p["routes"][0];
        assert_eq!(route["path_prefix"], "/payments/charge");
        assert_eq!(route["methods"], json!(["POST"]));
        assert_eq!(route["retry"]["attempts"], 1);
        assert_eq!(route["timeouts"]["request"], "30s");
        assert_eq!(route["timeouts"]["per_try"], "5s");
        assert_eq!(route["rate_limit"], Value::Null);
        assert_eq!(p["concurrency"], json!({ "max_requests": 1024 }));
        assert_eq!(p["fallback"], "payments-dr");
        assert_eq!(
            p["health_check"],
            json!({
                "path": "/healthz", "interval": "5s", "timeout": "1s",
                "unhealthy_after": 3, "healthy_after": 2,
            })
        );
        let dr = upstream(&v, "payments-dr");
        assert_eq!(dr["rate_limit"], Value::Null);
        assert_eq!(dr["fallback"], Value::Null);
        assert_eq!(dr["health_check"], Value::Null);
    }

    #[test]
    fn off_sections_and_other_shapes() {
        let yaml = r#"
upstreams:
  a:
    endpoints: [https://Example.COM]
    hosts: ["a:8080", "[::1]:9000", "::1"]
    load_balancing: least_request
    protocol: http2
    circuit_breaker: off
    retry: { attempts: 2, budget: off, on: [5xx, 429] }
  b:
    endpoints: [http://10.0.0.7:8080]
    hosts: [b]
    circuit_breaker:
      window: 100 calls
      failure_rate: off
      slow_call: { duration: 2s, rate: 80% }
      scope: endpoint
      max_ejection: 33.3%
      open_for: 1m30s
      max_open_for: 1h
    rate_limit:
      rate: 10/h
      mode: wait
      max_wait: 1500ms
      key: header:X-Tenant
"#;
        let v = render(yaml, &[]);
        let a = upstream(&v, "a");
        assert_eq!(a["endpoints"][0]["url"], "https://example.com:443");
        assert_eq!(a["hosts"], json!(["a:8080", "[::1]:9000", "::1"]));
        assert_eq!(a["load_balancing"], "least_request");
        assert_eq!(a["protocol"], "http2");
        assert_eq!(a["circuit_breaker"], "off");
        assert_eq!(a["retry"]["budget"], "off");
        assert_eq!(a["retry"]["on"], json!([429, "5xx"]));
        let b = upstream(&v, "b");
        let br = &b["circuit_breaker"];
        assert_eq!(br["window"], "100 calls");
        assert_eq!(br["failure_rate"], "off");
        assert_eq!(br["slow_call"], json!({ "duration": "2s", "rate": "80%" }));
        assert_eq!(br["scope"], "endpoint");
        assert_eq!(br["max_ejection"], "33.3%");
        assert_eq!(br["open_for"], "90s");
        assert_eq!(br["max_open_for"], "1h");
        let rl = &b["rate_limit"];
        assert_eq!(rl["rate"], "10/h");
        assert_eq!(rl["mode"], "wait");
        assert_eq!(rl["max_wait"], "1500ms");
        assert_eq!(rl["key"], "header:x-tenant");
    }
}
