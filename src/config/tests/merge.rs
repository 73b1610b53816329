//! Defaults, presets and routes: who wins when several layers set a field.

use std::time::Duration;

use super::{ok, upstream};
use crate::breaker::policy::{BreakerScope, BreakerWindow};
use crate::outcome::{Outcome, OutcomeFilter};
use crate::rate_limit::policy::{LimitMode, RateLimitKey};
use crate::retry::policy::BackoffStrategy;
use crate::upstream::policy::{HostMatch, LoadBalancing, UpstreamPolicy, UpstreamProtocol};

fn only(text: &str) -> UpstreamPolicy {
    ok(text).upstreams.remove(0)
}

const S: fn(u64) -> Duration = Duration::from_secs;

#[test]
fn built_in_defaults_apply_when_nothing_is_set() {
    let up = only(&upstream(""));
    assert_eq!(up.load_balancing, LoadBalancing::RoundRobin);
    assert_eq!(up.protocol, UpstreamProtocol::Auto);
    assert_eq!((up.timeouts.connect, up.timeouts.request), (S(1), S(15)));
    assert_eq!((up.timeouts.per_try, up.timeouts.idle), (S(5), S(90)));
    let r = &up.retry;
    assert_eq!(r.attempts, 3);
    assert!(r.on.connect_failure && r.on.reset && r.on.timeout);
    assert_eq!(r.on.status_codes().collect::<Vec<_>>(), vec![502, 503, 504]);
    assert_eq!(r.methods.len(), 6);
    assert_eq!(r.backoff.strategy, BackoffStrategy::ExponentialJitter);
    assert_eq!(
        (r.backoff.base, r.backoff.max),
        (Duration::from_millis(25), S(1))
    );
    assert!(r.retry_after.honor);
    let budget = r.budget.expect("budget on by default");
    assert_eq!(
        (budget.ratio, budget.min_per_second, budget.window),
        (0.2, 10, S(10))
    );
    assert_eq!(r.max_body_bytes, 65_536);
    let b = up.circuit_breaker.expect("breaker on by default");
    assert_eq!(
        (b.consecutive_failures, b.open_for, b.max_open_for),
        (5, S(30), S(300))
    );
    assert_eq!((b.failure_rate, b.minimum_calls), (Some(0.5), 10));
    assert_eq!(b.window, BreakerWindow::Time(S(60)));
    assert_eq!(
        (b.half_open_calls, b.success_threshold, b.scope),
        (3, 3, BreakerScope::Upstream)
    );
    assert!(b.failure_on.matches(Outcome::from_status(
        http::StatusCode::INTERNAL_SERVER_ERROR
    )));
    assert!(
        !b.failure_on
            .matches(Outcome::from_status(http::StatusCode::TOO_MANY_REQUESTS))
    );
    assert!(b.slow_call.is_none() && !b.dry_run);
    assert!(up.rate_limit.is_none() && up.concurrency.is_none() && up.health_check.is_none());
}

#[test]
fn defaults_merge_field_by_field_and_upstream_fields_win() {
    let text = "defaults:\n  timeouts: { request: 20s, connect: 2s }\n  retry: { attempts: 4, backoff: { max: 3s } }\n  concurrency: { max_requests: 50 }\n"
        .to_string()
        + &upstream("    timeouts: { request: 30s }\n    retry: { backoff: { base: 100ms } }\n");
    let up = only(&text);
    assert_eq!((up.timeouts.request, up.timeouts.connect), (S(30), S(2)));
    assert_eq!(up.retry.attempts, 4);
    assert_eq!(
        (up.retry.backoff.base, up.retry.backoff.max),
        (Duration::from_millis(100), S(3))
    );
    assert_eq!(up.concurrency.map(|c| c.max_requests), Some(50));
    let config = ok(&text);
    assert_eq!(config.passthrough.defaults.timeouts.request, S(20));
}

#[test]
fn sections_can_be_switched_off_over_defaults() {
    let text = "defaults:\n  rate_limit: { rate: 10/s }\n  concurrency: { max_requests: 5 }\n"
        .to_string()
        + &upstream(
            "    circuit_breaker: off\n    rate_limit: off\n    concurrency: false\n    retry: { budget: off }\n",
        );
    let up = only(&text);
    assert!(up.circuit_breaker.is_none() && up.rate_limit.is_none() && up.concurrency.is_none());
    assert!(up.retry.budget.is_none());
}

#[test]
fn retry_presets_set_attempts_base_and_request_timeout() {
    let up = only(&upstream("    retry: { preset: patient }\n"));
    assert_eq!((up.retry.attempts, up.retry.backoff.base), (5, S(2)));
    assert_eq!(up.timeouts.request, S(120));
    let up = only(&upstream(
        "    retry: { preset: quick, attempts: 4 }\n    timeouts: { request: 9s }\n",
    ));
    assert_eq!(
        (up.retry.attempts, up.retry.backoff.base),
        (4, Duration::from_millis(100))
    );
    assert_eq!(up.timeouts.request, S(9));
    let text = "defaults:\n  retry: { preset: aggressive }\n".to_string()
        + &upstream("    retry: { attempts: 2 }\n");
    let up = only(&text);
    assert_eq!(
        (up.retry.attempts, up.retry.backoff.base),
        (2, Duration::from_millis(500))
    );
    assert_eq!(up.timeouts.request, S(60));
}

#[test]
fn breaker_presets_and_overrides() {
    for (preset, consecutive, open) in [
        ("aggressive", 3, 10),
        ("moderate", 5, 30),
        ("tolerant", 10, 60),
        ("critical", 2, 60),
    ] {
        let up = only(&upstream(&format!(
            "    circuit_breaker: {{ preset: {preset} }}\n"
        )));
        let b = up.circuit_breaker.expect("on");
        assert_eq!(
            (b.consecutive_failures, b.open_for),
            (consecutive, S(open)),
            "{preset}"
        );
        assert_eq!(
            (b.failure_rate, b.minimum_calls, b.half_open_calls),
            (Some(0.5), 10, 3)
        );
        assert_eq!(
            (b.window, b.success_threshold),
            (BreakerWindow::Time(S(60)), 3)
        );
    }
    let up = only(&upstream(
        "    circuit_breaker: { preset: tolerant, open_for: 5s, window: 100 calls, failure_rate: off, slow_call: { duration: 2s }, scope: endpoint, failure_on: [503, retriable-4xx] }\n",
    ));
    let b = up.circuit_breaker.expect("on");
    assert_eq!(
        (b.consecutive_failures, b.open_for, b.failure_rate),
        (10, S(5), None)
    );
    assert_eq!(b.window, BreakerWindow::Calls(100));
    assert_eq!(b.slow_call.map(|s| (s.duration, s.rate)), Some((S(2), 1.0)));
    assert_eq!(b.scope, BreakerScope::Endpoint);
    assert_eq!(
        b.failure_on.status_codes().collect::<Vec<_>>(),
        vec![409, 503]
    );
}

#[test]
fn outcome_words_and_synonyms() {
    let up = only(&upstream(
        "    retry: { on: [per-try-timeout, 5xx, 429] }\n",
    ));
    let mut want = OutcomeFilter::empty();
    want.timeout = true;
    want.add_status_range(500, 599);
    want.add_status(429);
    assert_eq!(up.retry.on, want);
}

#[test]
fn routes_merge_over_the_upstream_and_rate_limit_is_their_own() {
    let up = only(&upstream(
        "    retry: { attempts: 5, backoff: { base: 50ms } }\n    rate_limit: { rate: 100/s, burst: 20 }\n    routes:\n      - path_prefix: /charge/\n        methods: [post]\n        retry: { attempts: 1 }\n        timeouts: { request: 30s }\n        rate_limit: { rate: 5/m, mode: wait }\n",
    ));
    let route = &up.routes[0];
    assert_eq!(route.path_prefix.as_deref(), Some("/charge"));
    assert_eq!(route.methods, vec![http::Method::POST]);
    assert_eq!(
        (route.retry.attempts, route.retry.backoff.base),
        (1, Duration::from_millis(50))
    );
    assert_eq!(
        (route.timeouts.request, route.timeouts.per_try),
        (S(30), S(5))
    );
    let rl = route.rate_limit.as_ref().expect("own bucket");
    assert_eq!((rl.rate.tokens, rl.burst), (5, 5));
    assert_eq!(
        rl.mode,
        LimitMode::Wait {
            max_wait: Duration::from_millis(250)
        }
    );
}

#[test]
fn endpoints_hosts_and_prefixes_are_normalised() {
    let up = only(
        "upstreams:\n  a:\n    endpoints: [http://Svc.internal, { url: \"https://10.0.0.6\", weight: 2 }]\n    hosts: [Payments, \"payments:8080\", \"[::1]:9000\"]\n    path_prefix: /api/\n    load_balancing: least_request\n    protocol: http2\n    rate_limit: { rate: 10/s, key: \"header:X-Tenant\" }\n",
    );
    assert_eq!(
        up.endpoints[0].url.authority().map(|a| a.as_str()),
        Some("svc.internal:80")
    );
    assert_eq!(
        up.endpoints[1].url.authority().map(|a| a.as_str()),
        Some("10.0.0.6:443")
    );
    assert!(up.endpoints[1].is_tls());
    assert_eq!(up.endpoints[1].weight, 2);
    let host = |h: &str, port| HostMatch {
        host: h.into(),
        port,
    };
    assert_eq!(
        up.hosts,
        vec![
            host("payments", None),
            host("payments", Some(8080)),
            host("::1", Some(9000))
        ]
    );
    assert_eq!(up.path_prefix.as_deref(), Some("/api"));
    assert_eq!(up.load_balancing, LoadBalancing::LeastRequest);
    assert_eq!(up.protocol, UpstreamProtocol::Http2);
    let key = up.rate_limit.expect("limit").key;
    assert_eq!(
        key,
        RateLimitKey::Header(http::HeaderName::from_static("x-tenant"))
    );
    let root = only(&upstream("    path_prefix: /\n"));
    assert_eq!(root.path_prefix.as_deref(), Some("/"));
}

#[test]
fn upstreams_keep_file_order() {
    let names: Vec<String> =
        ok("upstreams:\n  zeta: { endpoints: [http://a] }\n  alpha: { endpoints: [http://b] }\n")
            .upstreams
            .into_iter()
            .map(|u| u.name)
            .collect();
    assert_eq!(names, ["zeta", "alpha"]);
}
