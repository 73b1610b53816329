//! The PromQL in the docs: every `promql` code block line reads only metrics rampart exports
//! and parses, so the examples an operator copies during an incident work. And the lists of
//! answers rampart generates itself (SPEC §4) name every code with its status.

use std::path::Path;
use std::time::Duration;

use rampart::error::{ProxyError, RateLimitInfo};

use super::promql::{rampart_exports, unknown_metrics};
use super::{check_promql, read};

/// (file:line, expression) for every non-comment line of the file's ```promql blocks.
fn promql_blocks(doc: &str) -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(doc);
    let mut out = Vec::new();
    let mut inside = false;
    for (n, line) in read(&path).lines().enumerate() {
        match line.trim() {
            "```promql" => inside = true,
            "```" => inside = false,
            l if inside && !l.is_empty() && !l.starts_with('#') => {
                out.push((format!("{doc}:{}", n + 1), l.to_owned()));
            }
            _ => {}
        }
    }
    out
}

#[test]
fn the_promql_in_the_docs_reads_exported_metrics_and_parses() {
    let mut all = Vec::new();
    for doc in ["docs/metrics.md", "docs/operations.md"] {
        all.extend(promql_blocks(doc));
    }
    assert!(
        all.len() >= 20,
        "docs/metrics.md has PromQL for every family"
    );
    for (at, expr) in &all {
        let unknown = unknown_metrics(expr, &|m| m == "up" || rampart_exports(m));
        assert!(
            unknown.is_empty(),
            "{at}: {unknown:?} are not rampart metrics"
        );
    }
    let families = rampart::metrics::METRICS.iter().map(|(name, _, _)| *name);
    for metric in families {
        assert!(
            all.iter().any(|(_, expr)| expr.contains(metric)),
            "docs/metrics.md has no query using {metric}"
        );
    }
    check_promql(&all);
}

/// One of each `ProxyError`; the match makes a new variant a compile error here, so it cannot
/// be added without being checked in the docs.
fn every_generated_answer() -> Vec<ProxyError> {
    let all = vec![
        ProxyError::RateLimited(RateLimitInfo {
            retry_after: Duration::ZERO,
            quota: 1,
            window_secs: 1,
            burst: 1,
            remaining: 0,
        }),
        ProxyError::CircuitOpen {
            retry_after: Duration::ZERO,
        },
        ProxyError::Overloaded,
        ProxyError::UpstreamUnavailable,
        ProxyError::UpstreamTimeout,
        ProxyError::NoRoute,
        ProxyError::BadRequest(""),
        ProxyError::Forbidden(""),
        ProxyError::RequestHeadersTooLarge,
    ];
    for e in &all {
        match e {
            ProxyError::RateLimited(_)
            | ProxyError::CircuitOpen { .. }
            | ProxyError::Overloaded
            | ProxyError::UpstreamUnavailable
            | ProxyError::UpstreamTimeout
            | ProxyError::NoRoute
            | ProxyError::BadRequest(_)
            | ProxyError::Forbidden(_)
            | ProxyError::RequestHeadersTooLarge => {}
        }
    }
    all
}

#[test]
fn the_lists_of_generated_answers_name_every_code_with_its_status() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = read(&root.join("README.md"));
    let operations = read(&root.join("docs/operations.md"));
    for e in every_generated_answer() {
        let (code, status) = (e.code(), e.status().as_u16());
        assert!(
            readme.contains(&format!("`{code}` {status}")),
            "README.md's generated answers lack `{code}` {status}"
        );
        assert!(
            operations.contains(&format!("{status} `{code}`")),
            "docs/operations.md's incident list lacks {status} `{code}`"
        );
    }
}
