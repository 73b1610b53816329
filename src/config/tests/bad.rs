//! A table of bad configs: each names the exact field path (and, for syntax and type errors
//! and fields the file sets, the line) of its error.

use super::{errors, upstream};

/// (yaml, path the error must name, line it must name if any, words the message must contain)
pub(super) type Case = (String, &'static str, Option<usize>, &'static str);

pub(super) fn up(extra: &str) -> String {
    upstream(extra)
}

/// An upstream `payments` with only these endpoints (on line 3).
pub(super) fn eps(list: &str) -> String {
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

#[test]
fn every_bad_config_names_its_path_and_line() {
    for (text, path, line, words) in type_errors()
        .into_iter()
        .chain(super::bad_rules::semantic_errors())
    {
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
    let global = "    rate_limit:\n      rate: 1/s\n      global:\n        redis: rediss://redis.internal:6380/0\n        tls: { ca_file: ca.pem, client_cert: client.pem, client_key: client.key }\n";
    std::fs::write(&file, up(&format!("{tls}{global}"))).expect("write");
    let source = crate::config::ConfigSource::File(file);
    let config = crate::config::load(&source, &super::vars(&[])).expect("valid");
    let tls = &config.upstreams[0].tls;
    assert_eq!(
        tls.ca_file.as_deref(),
        Some(dir.path().join("ca.pem").as_path())
    );
    let limit = config.upstreams[0].rate_limit.as_ref().expect("rate limit");
    let redis_tls = &limit.global.as_ref().expect("global").tls;
    assert_eq!(
        redis_tls.client_key.as_deref(),
        Some(dir.path().join("client.key").as_path())
    );
    // /admin/config shows the paths, never what is in them.
    let json = crate::config::json::effective_json(&config);
    let shown = &json["upstreams"][0]["rate_limit"]["global"]["tls"];
    let key_path = dir.path().join("client.key").display().to_string();
    assert_eq!(shown["client_key"], key_path.as_str());
    assert!(!json.to_string().contains("PRIVATE KEY"), "{json}");
}
