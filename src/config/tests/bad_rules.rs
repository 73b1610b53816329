//! The semantic half of the bad-config table: one case per cross-field and range rule.

use super::bad::{Case, eps, up};

pub(super) fn semantic_errors() -> Vec<Case> {
    let s = String::from;
    vec![
        (
            s("upstreams:\n  payments:\n    hosts: [p]\n"),
            "upstreams.payments.endpoints",
            None,
            "at least one endpoint",
        ),
        (
            eps("[ftp://10.0.0.5]"),
            "upstreams.payments.endpoints[0]",
            Some(3),
            "http:// or https://",
        ),
        (
            eps("[\"http://u:p@10.0.0.5\"]"),
            "upstreams.payments.endpoints[0]",
            Some(3),
            "user information",
        ),
        (
            eps("[http://10.0.0.5/api]"),
            "upstreams.payments.endpoints[0]",
            Some(3),
            "path",
        ),
        (
            eps("[{ url: \"http://a\", weight: 0 }]"),
            "upstreams.payments.endpoints[0].weight",
            Some(3),
            "at least 1",
        ),
        (
            s("upstreams:\n  Pay: { endpoints: [http://a] }\n"),
            "upstreams.Pay",
            Some(2),
            "[a-z0-9_-]+",
        ),
        (
            s("upstreams:\n  passthrough: { endpoints: [http://a] }\n"),
            "upstreams.passthrough",
            Some(2),
            "reserved",
        ),
        (
            up("    hosts: [\"bad host\"]\n"),
            "upstreams.payments.hosts[0]",
            Some(4),
            "not a host",
        ),
        (
            up("    path_prefix: api\n"),
            "upstreams.payments.path_prefix",
            Some(4),
            "starting with",
        ),
        (
            up("    hosts: [p]\n  other:\n    endpoints: [http://b]\n    hosts: [P]\n"),
            "upstreams.other.hosts[0]",
            Some(7),
            "already claimed by upstream payments",
        ),
        (
            up("    path_prefix: /x\n  other:\n    endpoints: [http://b]\n    path_prefix: /x/\n"),
            "upstreams.other.path_prefix",
            Some(7),
            "already claimed",
        ),
        (
            up(
                "    listen: 127.0.0.1:15002\n  other:\n    endpoints: [http://b]\n    listen: 127.0.0.1:15002\n",
            ),
            "upstreams.other.listen",
            Some(7),
            "already the listen address",
        ),
        (
            up("    listen: 127.0.0.1:15001\n"),
            "upstreams.payments.listen",
            Some(4),
            "main listen",
        ),
        (
            up("    fallback: nowhere\n"),
            "upstreams.payments.fallback",
            Some(4),
            "names no upstream",
        ),
        (
            up("    fallback: payments\n"),
            "upstreams.payments.fallback",
            Some(4),
            "its own fallback",
        ),
        (
            up("    fallback: b\n  b:\n    endpoints: [http://b]\n    fallback: payments\n"),
            "upstreams.payments.fallback",
            Some(4),
            "cycle",
        ),
        (
            up("    timeouts: { request: 1s, per_try: 2s }\n"),
            "upstreams.payments.timeouts.per_try",
            Some(4),
            "must not exceed request",
        ),
        (
            s("defaults:\n  timeouts: { per_try: 20s }\n"),
            "defaults.timeouts.per_try",
            Some(2),
            "must not exceed request",
        ),
        (
            up("    retry: { backoff: { base: 2s, max: 1s } }\n"),
            "upstreams.payments.retry.backoff.base",
            Some(4),
            "must not exceed max",
        ),
        (
            up("    retry: { attempts: 0 }\n"),
            "upstreams.payments.retry.attempts",
            Some(4),
            "between 1 and 10",
        ),
        (
            up("    retry: { attempts: 11 }\n"),
            "upstreams.payments.retry.attempts",
            Some(4),
            "between 1 and 10",
        ),
        (
            up("    retry: { methods: [\"G T\"] }\n"),
            "upstreams.payments.retry.methods[0]",
            Some(4),
            "not an HTTP method",
        ),
        (
            up("    retry: { budget: { window: 2m } }\n"),
            "upstreams.payments.retry.budget.window",
            Some(4),
            "between 1s and 60s",
        ),
        (
            up("    retry: { budget: { ratio: 2000% } }\n"),
            "upstreams.payments.retry.budget.ratio",
            Some(4),
            "between 0% and 1000%",
        ),
        (
            up("    rate_limit: { rate: 0/s }\n"),
            "upstreams.payments.rate_limit.rate",
            Some(4),
            "greater than 0",
        ),
        (
            up("    rate_limit: { rate: 1/s, burst: 0 }\n"),
            "upstreams.payments.rate_limit.burst",
            Some(4),
            "at least 1",
        ),
        (
            up("    rate_limit: { burst: 5 }\n"),
            "upstreams.payments.rate_limit.rate",
            None,
            "is required",
        ),
        (
            up("    rate_limit: { rate: 1/s, key: cookie }\n"),
            "upstreams.payments.rate_limit.key",
            Some(4),
            "header:<name>",
        ),
        (
            up("    rate_limit: { rate: 1/s, global: { redis: \"http://r:6379\" } }\n"),
            "upstreams.payments.rate_limit.global.redis",
            Some(4),
            "redis://",
        ),
        (
            up(
                "    rate_limit: { rate: 1/s, global: { redis: \"rediss://r:6380/0#insecure\" } }\n",
            ),
            "upstreams.payments.rate_limit.global.redis",
            Some(4),
            "fragment",
        ),
        (
            up(
                "    rate_limit: { rate: 1/s, global: { redis: \"rediss://r\", tls: { ca_file: /nonexistent/ca.pem } } }\n",
            ),
            "upstreams.payments.rate_limit.global.tls.ca_file",
            Some(4),
            "cannot read",
        ),
        (
            up(
                "    rate_limit: { rate: 1/s, global: { redis: \"rediss://r\", tls: { client_cert: /nonexistent/c.pem } } }\n",
            ),
            "upstreams.payments.rate_limit.global.tls.client_key",
            None,
            "required with client_cert",
        ),
        (
            up(
                "    rate_limit: { rate: 1/s, global: { redis: \"redis://r\", tls: { ca_file: /nonexistent/ca.pem } } }\n",
            ),
            "upstreams.payments.rate_limit.global.tls",
            Some(4),
            "needs a rediss:// URL",
        ),
        (
            up(
                "    rate_limit: { rate: 1/s, global: { redis: \"rediss://r\", tls: { server_name: r } } }\n",
            ),
            "upstreams.payments.rate_limit.global.tls.server_name",
            Some(4),
            "unknown field",
        ),
        (
            up("    circuit_breaker: { failure_rate: 150% }\n"),
            "upstreams.payments.circuit_breaker.failure_rate",
            Some(4),
            "between 0% and 100%",
        ),
        (
            up("    circuit_breaker: { half_open_calls: 0 }\n"),
            "upstreams.payments.circuit_breaker.half_open_calls",
            Some(4),
            "at least 1",
        ),
        (
            up("    circuit_breaker: { success_threshold: 0 }\n"),
            "upstreams.payments.circuit_breaker.success_threshold",
            Some(4),
            "at least 1",
        ),
        (
            up("    circuit_breaker: { window: 0 calls }\n"),
            "upstreams.payments.circuit_breaker.window",
            Some(4),
            "at least 1 call",
        ),
        (
            up("    circuit_breaker: { max_ejection: 101 }\n"),
            "upstreams.payments.circuit_breaker.max_ejection",
            Some(4),
            "between 0%",
        ),
        (
            up("    concurrency: { max_requests: 0 }\n"),
            "upstreams.payments.concurrency.max_requests",
            Some(4),
            "at least 1",
        ),
        (
            up("    health_check: { interval: 1s, timeout: 2s }\n"),
            "upstreams.payments.health_check.timeout",
            Some(4),
            "not exceed interval",
        ),
        (
            up("    health_check: { interval: 0s }\n"),
            "upstreams.payments.health_check.interval",
            Some(4),
            "greater than 0s",
        ),
        (
            up("    routes:\n      - retry: { attempts: 2 }\n"),
            "upstreams.payments.routes[0]",
            Some(5),
            "path_prefix or methods",
        ),
        (
            up("    routes:\n      - methods: [\"B@D\"]\n"),
            "upstreams.payments.routes[0].methods[0]",
            Some(5),
            "not an HTTP method",
        ),
        (
            up("    tls: { ca_file: /nonexistent/ca.pem }\n"),
            "upstreams.payments.tls.ca_file",
            Some(4),
            "cannot read",
        ),
        (
            up("    tls: { client_cert: /nonexistent/c.pem }\n"),
            "upstreams.payments.tls.client_key",
            None,
            "required with client_cert",
        ),
        (
            up("    tls: { server_name: \"not a name\" }\n"),
            "upstreams.payments.tls.server_name",
            Some(4),
            "not a DNS name",
        ),
        (
            s("admin:\n  listen: 0.0.0.0:9901\n"),
            "admin.listen",
            Some(2),
            "loopback",
        ),
        (
            s("admin:\n  listen: 127.0.0.1:15001\n"),
            "admin.listen",
            Some(2),
            "main listen",
        ),
        (
            s("runtime:\n  worker_threads: 0\n"),
            "runtime.worker_threads",
            Some(2),
            "at least 1",
        ),
        (
            s("connect:\n  allowed_ports: [443, 0]\n"),
            "connect.allowed_ports[1]",
            Some(2),
            "expected a port 1-65535, got 0",
        ),
        (
            s("connect:\n  allowed_ports: [70000]\n"),
            "connect.allowed_ports[0]",
            Some(2),
            "expected a port 1-65535, got 70000",
        ),
        (
            s("passthrough:\n  max_hosts: 0\n"),
            "passthrough.max_hosts",
            Some(2),
            "at least 1",
        ),
    ]
}
