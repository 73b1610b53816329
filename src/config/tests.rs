//! Unit tests of the config module: the shipped YAML files, units, interpolation, merging,
//! and a table of bad configs with the exact paths (and lines) their errors name.

mod bad;
mod bad_rules;
mod merge;
mod units;

use std::collections::HashMap;

use super::{Config, ConfigError, FieldError, parse};

/// A lookup over a fixed map, so tests never read the real environment.
pub(super) fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

/// Parses with no variables set.
pub(super) fn ok(text: &str) -> Config {
    match parse(text, &vars(&[])) {
        Ok(config) => config,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

/// Parses expecting failure; returns every error.
pub(super) fn errors(text: &str) -> Vec<FieldError> {
    match parse(text, &vars(&[])) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(ConfigError::Invalid(errors)) => errors,
        Err(e) => panic!("unexpected error kind: {e}"),
    }
}

/// A minimal valid upstream, to which tests append fields (indented by four spaces).
pub(super) fn upstream(extra: &str) -> String {
    format!("upstreams:\n  payments:\n    endpoints: [http://10.0.0.5:8080]\n{extra}")
}

#[test]
fn embedded_default_parses_as_a_forward_proxy() {
    let config = ok(super::EMBEDDED_DEFAULT);
    assert_eq!(config.listen.to_string(), "127.0.0.1:15001");
    assert_eq!(config.admin.listen.to_string(), "127.0.0.1:9901");
    assert!(config.admin.token.is_empty());
    assert!(config.passthrough.enabled);
    assert!(config.upstreams.is_empty());
    assert!(config.passthrough.defaults.circuit_breaker.is_some());
}

#[test]
fn reference_file_parses_and_sets_everything() {
    let text = include_str!("../../config/reference.yaml");
    let config = parse(text, &vars(&[("RAMPART_ADMIN_TOKEN", "s3cret")])).expect("valid");
    assert_eq!(config.admin.token.expose(), "s3cret");
    let payments = config
        .upstreams
        .iter()
        .find(|u| u.name == "payments")
        .expect("payments");
    assert_eq!(payments.endpoints.len(), 2);
    assert!(payments.rate_limit.is_some());
    assert!(payments.health_check.is_some());
    assert_eq!(payments.routes.len(), 1);
    assert_eq!(config.connect.allowed_ports, [443, 8443]);
    let summary = super::summary(&config);
    assert!(summary.contains("payments"), "{summary}");
    assert!(summary.contains("auth on"), "{summary}");
}

#[test]
fn empty_and_comment_only_files_take_every_default() {
    for text in ["", "# nothing here\n"] {
        let config = ok(text);
        assert_eq!(config.listen.to_string(), "127.0.0.1:15001");
        assert!(!config.passthrough.enabled);
        assert_eq!(config.limits.max_request_headers, 100);
        assert_eq!(config.connect.allowed_ports, [443]);
    }
}

#[test]
fn spec_example_error_is_formatted_exactly() {
    let text = upstream("    retry:\n      backoff:\n        base: fast\n");
    let errs = errors(&text);
    assert_eq!(
        errs[0].to_string(),
        "upstreams.payments.retry.backoff.base: expected a duration like \"250ms\", got \"fast\" (line 6, column 15)"
    );
}

#[test]
fn interpolation_sets_defaults_and_names_unset_variables() {
    let text = "admin:\n  listen: ${ADDR:-127.0.0.1:9999}\n  token: ${TOKEN}\n";
    let config = parse(text, &vars(&[("TOKEN", "t0k")])).expect("valid");
    assert_eq!(config.admin.listen.to_string(), "127.0.0.1:9999");
    assert_eq!(config.admin.token.expose(), "t0k");
    let Err(ConfigError::Invalid(errs)) = parse(text, &vars(&[])) else {
        panic!("must fail")
    };
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].path, "admin.token");
    assert!(errs[0].message.contains("TOKEN"), "{}", errs[0]);
    assert_eq!((errs[0].line, errs[0].column), (Some(3), Some(10)));
}

#[test]
fn interpolation_escapes_dollars_and_skips_comments() {
    let text = "# ${NOT_SET} in a comment is fine\nadmin:\n  token: a$$b  # ${ALSO}\n";
    assert_eq!(ok(text).admin.token.expose(), "a$b");
}

#[test]
fn interpolated_lines_keep_original_columns() {
    let text = "admin: { token: ${T}, listen: bad }\n";
    let Err(ConfigError::Invalid(errs)) = parse(text, &vars(&[("T", "a-much-longer-value")]))
    else {
        panic!("must fail")
    };
    let column = text.find("bad").expect("bad") + 1;
    assert_eq!(
        (errs[0].path.as_str(), errs[0].line),
        ("admin.listen", Some(1)),
        "{}",
        errs[0]
    );
    assert_eq!(errs[0].column, Some(column), "{}", errs[0]);
}

#[test]
fn semantic_errors_are_all_collected() {
    let text = upstream(
        "    timeouts: { request: 1s, per_try: 2s }\n    rate_limit: { rate: 0/s, burst: 0 }\n",
    );
    let errs = errors(&text);
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert!(
        paths.contains(&"upstreams.payments.timeouts.per_try"),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"upstreams.payments.rate_limit.rate"),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"upstreams.payments.rate_limit.burst"),
        "{paths:?}"
    );
}

/// Alias bombs and deep nesting, placed where the schema accepts a list, are refused by the
/// parser's budgets (the error says which), not expanded and then rejected by the schema.
#[test]
fn alias_bombs_and_deep_nesting_are_refused_by_the_parser_budgets() {
    let mut bomb = String::from("x:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9u8 {
        let prev = (b'a' + i - 1) as char;
        let name = (b'a' + i) as char;
        let refs = vec![format!("*{prev}"); 10].join(", ");
        bomb.push_str(&format!("  {name}: &{name} [{refs}]\n"));
    }
    let bomb = format!(
        "upstreams:\n  svc:\n    endpoints: [\"http://127.0.0.1:1\"]\n    hosts: &top [*i]\n{}",
        bomb.replace("x:\n", "    x:\n").replace("\n  ", "\n      ")
    );
    let deep = format!(
        "upstreams:\n  svc:\n    endpoints: [\"http://127.0.0.1:1\"]\n    hosts: {}{}\n",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    for (text, limits) in [
        (bomb, ["alias", "alias"]),
        (deep, ["depth", "recursion limit"]),
    ] {
        let err = parse(&text, &vars(&[]))
            .unwrap_err()
            .to_string()
            .to_lowercase();
        assert!(limits.iter().any(|l| err.contains(l)), "{limits:?}: {err}");
    }
}

#[test]
fn source_resolution_follows_spec_order() {
    use super::{ConfigSource, resolve_source};
    use std::path::Path;
    let dir = tempfile::tempdir().expect("tempdir");
    let cli = Path::new("/etc/x.yaml");
    assert_eq!(
        resolve_source(Some(cli), Some("/y"), dir.path()),
        ConfigSource::File(cli.into())
    );
    assert_eq!(
        resolve_source(None, Some("/y"), dir.path()),
        ConfigSource::File("/y".into())
    );
    assert_eq!(
        resolve_source(None, Some(""), dir.path()),
        ConfigSource::Embedded
    );
    std::fs::write(dir.path().join("rampart.yaml"), "").expect("write");
    let local = ConfigSource::File(dir.path().join("rampart.yaml"));
    assert_eq!(resolve_source(None, None, dir.path()), local);
    assert_eq!(ConfigSource::Embedded.describe(), "embedded default");
    let missing = ConfigSource::File(dir.path().join("missing.yaml"));
    let err = super::load(&missing, &vars(&[])).expect_err("missing file");
    assert!(
        err.to_string().starts_with("cannot read config file "),
        "{err}"
    );
}

#[test]
fn malformed_references_and_empty_values() {
    let errs = match parse(
        "admin:\n  token: ${BAD NAME}\n  listen: ${OPEN\n",
        &vars(&[]),
    ) {
        Err(ConfigError::Invalid(errs)) => errs,
        other => panic!("must fail: {other:?}"),
    };
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(
        errs[0].message.contains("invalid variable reference"),
        "{}",
        errs[0]
    );
    assert!(errs[1].message.contains("unterminated"), "{}", errs[1]);
    let text = "admin:\n  token: \"${EMPTY:-fallback}\"\n";
    let config = parse(text, &vars(&[("EMPTY", "")])).expect("valid");
    assert_eq!(
        config.admin.token.expose(),
        "fallback",
        "`:-` also covers empty values"
    );
    assert!(ok("admin:\n  token: ${UNSET:-}\n").admin.token.is_empty());
}

#[test]
fn yaml_1_1_booleans_are_words_not_booleans() {
    let errs = errors("passthrough:\n  enabled: yes\n");
    assert_eq!(errs[0].path, "passthrough.enabled");
    assert!(ok("passthrough:\n  enabled: true\n").passthrough.enabled);
}

#[test]
fn an_admin_listener_off_loopback_needs_a_token() {
    for listen in [
        "0.0.0.0:9901",
        "\"[::]:9901\"",
        "10.0.0.1:9901",
        "\"[::ffff:127.0.0.1]:9901\"",
    ] {
        let errs = errors(&format!("admin:\n  listen: {listen}\n"));
        assert!(
            errs.iter()
                .any(|e| e.path == "admin.listen" && e.message.contains("loopback")),
            "{listen}: {errs:?}"
        );
        ok(&format!("admin:\n  listen: {listen}\n  token: t0k\n"));
    }
    ok("admin:\n  listen: \"[::1]:9901\"\n");
    ok("admin:\n  listen: 127.0.0.2:9901\n");
}
