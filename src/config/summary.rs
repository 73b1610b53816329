//! The one-screen summary `rampart validate` prints: listeners, admin auth, and per upstream
//! its endpoints, match, retry, rate limit, breaker, concurrency and fallback.

use std::fmt::Write as _;

use super::Config;
use super::units::{format_duration, format_size};
use crate::breaker::policy::{BreakerPolicy, BreakerWindow};
use crate::rate_limit::policy::{LimitMode, RateLimitKey, RateLimitPolicy};
use crate::retry::policy::RetryPolicy;
use crate::upstream::policy::UpstreamPolicy;

/// Renders the summary; plain text, one line per fact, so operators can eyeball a config
/// before rolling it out and tests can grep it.
pub fn summary(config: &Config) -> String {
    let mut out = String::new();
    let auth = if config.admin.token.is_empty() {
        "off"
    } else {
        "on"
    };
    let _ = writeln!(out, "listen      {}", config.listen);
    let _ = writeln!(out, "admin       {} (auth {auth})", config.admin.listen);
    let l = &config.limits;
    let _ = writeln!(
        out,
        "limits      {} connections, request head up to {} / {} headers",
        l.max_connections,
        format_size(l.max_request_header_bytes as u64),
        l.max_request_headers
    );
    let p = &config.passthrough;
    if p.enabled {
        let _ = writeln!(out, "passthrough on, up to {} hosts", p.max_hosts);
        let _ = writeln!(out, "  retry     {}", retry(&p.defaults.retry));
        let _ = writeln!(
            out,
            "  breaker   {}",
            breaker(p.defaults.circuit_breaker.as_ref())
        );
        let _ = writeln!(out, "  rate      {}", rate(p.defaults.rate_limit.as_ref()));
    } else {
        let _ = writeln!(out, "passthrough off");
    }
    let _ = writeln!(out, "upstreams   {}", config.upstreams.len());
    for up in &config.upstreams {
        upstream(&mut out, up);
    }
    out
}

fn upstream(out: &mut String, up: &UpstreamPolicy) {
    let _ = writeln!(out, "- {}", up.name);
    let endpoints: Vec<String> = up
        .endpoints
        .iter()
        .map(|e| {
            let url = e.url.to_string();
            let url = url.trim_end_matches('/').to_string();
            if e.weight == 1 {
                url
            } else {
                format!("{url} (weight {})", e.weight)
            }
        })
        .collect();
    let _ = writeln!(out, "    endpoints   {}", endpoints.join(", "));
    let mut matches = Vec::new();
    if !up.hosts.is_empty() {
        let hosts: Vec<String> = up
            .hosts
            .iter()
            .map(|h| match h.port {
                Some(port) if h.host.contains(':') => format!("[{}]:{port}", h.host),
                Some(port) => format!("{}:{port}", h.host),
                None => h.host.clone(),
            })
            .collect();
        matches.push(format!("hosts {}", hosts.join(", ")));
    }
    if let Some(prefix) = &up.path_prefix {
        let strip = if up.strip_prefix { " (stripped)" } else { "" };
        matches.push(format!("prefix {prefix}{strip}"));
    }
    if let Some(listen) = up.listen {
        matches.push(format!("listen {listen}"));
    }
    if matches.is_empty() {
        matches.push("x-rampart-upstream header only".into());
    }
    let _ = writeln!(out, "    match       {}", matches.join("; "));
    let t = &up.timeouts;
    let _ = writeln!(
        out,
        "    timeouts    connect {}, request {}, per try {}",
        format_duration(t.connect),
        format_duration(t.request),
        format_duration(t.per_try)
    );
    let _ = writeln!(out, "    retry       {}", retry(&up.retry));
    let _ = writeln!(out, "    rate limit  {}", rate(up.rate_limit.as_ref()));
    let _ = writeln!(
        out,
        "    breaker     {}",
        breaker(up.circuit_breaker.as_ref())
    );
    let concurrency = up.concurrency.map_or("uncapped".into(), |c| {
        format!("{} in flight", c.max_requests)
    });
    let _ = writeln!(out, "    concurrency {concurrency}");
    if let Some(fallback) = &up.fallback {
        let _ = writeln!(out, "    fallback    {fallback}");
    }
    if !up.routes.is_empty() {
        let _ = writeln!(out, "    routes      {}", up.routes.len());
    }
}

fn retry(r: &RetryPolicy) -> String {
    if r.attempts <= 1 {
        return "off (1 attempt)".into();
    }
    let budget = match &r.budget {
        Some(b) => format!(
            "budget {}% + {}/s over {}",
            (b.ratio * 100.0).round(),
            b.min_per_second,
            format_duration(b.window)
        ),
        None => "no budget".into(),
    };
    format!("{} attempts, {budget}", r.attempts)
}

fn rate(r: Option<&RateLimitPolicy>) -> String {
    let Some(r) = r else { return "none".into() };
    let period = match r.rate.period.as_secs() {
        1 => "s",
        60 => "m",
        _ => "h",
    };
    let mut text = format!("{}/{period}, burst {}", r.rate.tokens, r.burst);
    if let LimitMode::Wait { max_wait } = r.mode {
        let _ = write!(text, ", wait up to {}", format_duration(max_wait));
    }
    match &r.key {
        RateLimitKey::None => {}
        RateLimitKey::ClientIp => text.push_str(", per client ip"),
        RateLimitKey::Header(h) => {
            let _ = write!(text, ", per {h} header");
        }
    }
    if let Some(g) = &r.global {
        let tls = g.redis_url.expose().starts_with("rediss://");
        text.push_str(if tls {
            ", global (redis, tls)"
        } else {
            ", global (redis)"
        });
    }
    if r.dry_run {
        text.push_str(", dry run");
    }
    text
}

fn breaker(b: Option<&BreakerPolicy>) -> String {
    let Some(b) = b else { return "off".into() };
    let window = match b.window {
        BreakerWindow::Time(d) => format_duration(d),
        BreakerWindow::Calls(n) => format!("{n} calls"),
    };
    let mut text = format!("{} consecutive failures", b.consecutive_failures);
    if let Some(rate) = b.failure_rate {
        let _ = write!(text, " or {}% over {window}", (rate * 100.0).round());
    }
    let _ = write!(text, ", open {}", format_duration(b.open_for));
    if b.dry_run {
        text.push_str(", dry run");
    }
    text
}
