//! A table of bad configs: each names the exact field path (and, for syntax and type errors
//! and fields the file sets, the line) of its error.

use super::{errors, upstream};

/// (yaml, path the error must name, line it must name if any, words the message must contain)
type Case = (String, &'static str, Option<usize>, &'static str);

fn up(extra: &str) -> String {
    upstream(extra)
}

/// An upstream `payments` with only these endpoints (on line 3).
fn eps(list: &str) -> String {
    format!("upstreams:\n  payments:\n    endpoints: {list}\n")
}

fn type_errors() -> Vec<Case> {
    let s = String::from;
    vec![
        (
            s("listen: nowhere\n"),
            "listen",
            Some(1),
            "expected an address",
        ),
        (s("bogus: 1\n"), "bogus", Some(1), "unknown field"),
        (
            s("admin:\n  listen: 127.0.0.1:1\n  tokn: x\n"),
            "admin.tokn",
            Some(3),
            "unknown field",
        ),
        (
            s("limits:\n  max_request_header_bytes: huge\n"),
            "limits.max_request_header_bytes",
            Some(2),
            "a size",
        ),
        (
            s("limits:\n  max_connections: many\n"),
            "limits.max_connections",
            Some(2),
            "whole number",
        ),
        (
            s("shutdown:\n  timeout: 30\n"),
            "shutdown.timeout",
            Some(2),
            "a duration",
        ),
        (
            s("passthrough:\n  enabled: maybe\n"),
            "passthrough.enabled",
            Some(2),
            "",
        ),
        (
            up("    retry:\n      backoff:\n        base: fast\n"),
            "upstreams.payments.retry.backoff.base",
            Some(6),
            "got \"fast\"",
        ),
        (
            up("    retry:\n      backoff: { strategy: random }\n"),
            "upstreams.payments.retry.backoff.strategy",
            Some(5),
            "unknown variant",
        ),
        (
            up("    retry: { on: [sometimes] }\n"),
            "upstreams.payments.retry.on[0]",
            Some(4),
            "expected an outcome",
        ),
        (
            up("    retry: { on: [reset, 600] }\n"),
            "upstreams.payments.retry.on[1]",
            Some(4),
            "expected an outcome",
        ),
        (
            up("    retry: { preset: eager }\n"),
            "upstreams.payments.retry.preset",
            Some(4),
            "unknown variant",
        ),
        (
            up("    rate_limit: { rate: fast }\n"),
            "upstreams.payments.rate_limit.rate",
            Some(4),
            "a rate",
        ),
        (
            up("    rate_limit: { rate: 1/s, mode: queue }\n"),
            "upstreams.payments.rate_limit.mode",
            Some(4),
            "unknown variant",
        ),
        (
            up("    circuit_breaker: { failure_rate: lots }\n"),
            "upstreams.payments.circuit_breaker.failure_rate",
            Some(4),
            "a percentage",
        ),
        (
            up("    circuit_breaker: { window: 10 bananas }\n"),
            "upstreams.payments.circuit_breaker.window",
            Some(4),
            "a window",
        ),
        (
            up("    circuit_breaker: { preset: paranoid }\n"),
            "upstreams.payments.circuit_breaker.preset",
            Some(4),
            "unknown variant",
        ),
        (
            up("    load_balancing: fastest\n"),
            "upstreams.payments.load_balancing",
            Some(4),
            "unknown variant",
        ),
        (
            up("    protocol: http3\n"),
            "upstreams.payments.protocol",
            Some(4),
            "unknown variant",
        ),
        (
            s("upstreams:\n  a:\n    endpoints: [{ url: \"http://a\", wieght: 2 }]\n"),
            "upstreams.a.endpoints[0].wieght",
            Some(3),
            "unknown field",
        ),
        (
            up("    tiemouts: {}\n"),
            "upstreams.payments.tiemouts",
            Some(4),
            "unknown field",
        ),
        (
            s("upstreams:\n  a:\n    hosts: [a]\n    hosts: [b]\n"),
            "upstreams.a.hosts",
            Some(4),
            "duplicate key",
        ),
        (
            s(
                "upstreams:\n  a:\n    endpoints: [http://a]\n    routes:\n      - path_prefix: /x\n        breaker: {}\n",
            ),
            "upstreams.a.routes[0].breaker",
            Some(6),
            "unknown field",
        ),
    ]
}

fn semantic_errors() -> Vec<Case> {
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
            s("passthrough:\n  max_hosts: 0\n"),
            "passthrough.max_hosts",
            Some(2),
            "at least 1",
        ),
    ]
}

#[test]
fn every_bad_config_names_its_path_and_line() {
    for (text, path, line, words) in type_errors().into_iter().chain(semantic_errors()) {
        let errs = errors(&text);
        let found = errs.iter().find(|e| e.path == path);
        let Some(err) = found else {
            panic!("no error at {path} for:\n{text}\ngot: {errs:#?}");
        };
        assert!(err.to_string().starts_with(&format!("{path}: ")), "{err}");
        assert!(err.message.contains(words), "{path}: {err}");
        if line.is_some() {
            assert_eq!(err.line, line, "{err}\n{text}");
            assert!(
                err.to_string()
                    .contains(&format!("(line {}, column ", line.unwrap_or(0)))
            );
        }
    }
}

#[test]
fn a_bad_tls_pem_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "not pem at all\n").expect("write");
    let text = up(&format!("    tls: {{ ca_file: \"{}\" }}\n", ca.display()));
    let errs = errors(&text);
    assert_eq!(errs[0].path, "upstreams.payments.tls.ca_file");
    assert!(
        errs[0].message.contains("no PEM certificate"),
        "{}",
        errs[0]
    );
}

#[test]
fn valid_pem_files_relative_to_the_config_directory_are_accepted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["payments.internal".into()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    std::fs::write(dir.path().join("ca.pem"), cert.pem()).expect("write");
    std::fs::write(dir.path().join("client.pem"), cert.pem()).expect("write");
    std::fs::write(dir.path().join("client.key"), key.serialize_pem()).expect("write");
    let file = dir.path().join("rampart.yaml");
    let tls = "    tls: { ca_file: ca.pem, client_cert: client.pem, client_key: client.key }\n";
    std::fs::write(&file, up(tls)).expect("write");
    let source = crate::config::ConfigSource::File(file);
    let config = crate::config::load(&source, &super::vars(&[])).expect("valid");
    let tls = &config.upstreams[0].tls;
    assert_eq!(
        tls.ca_file.as_deref(),
        Some(dir.path().join("ca.pem").as_path())
    );
}
