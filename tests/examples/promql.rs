//! The metric names a PromQL expression reads, so dashboards and alert rules can be checked
//! against what rampart exports. A scanner, not a parser: it drops strings, label matchers,
//! ranges, grouping label lists and Grafana variables, then keeps every identifier that is
//! not a function, an aggregation or a keyword. `promtool` checks the syntax separately.

use std::collections::BTreeSet;

const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];
/// Keywords followed by a parenthesised list of label names.
const GROUPING: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];
const KEYWORDS: &[&str] = &[
    "bool", "and", "or", "unless", "offset", "atan2", "inf", "nan",
];

/// Every metric name `expr` selects.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let text = strip_strings_and_blocks(expr);
    let chars: Vec<char> = text.chars().collect();
    let next_non_space = |from: usize| chars[from..].iter().find(|c| !c.is_whitespace());
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '$' {
            // A Grafana variable: $name or ${name}.
            i += 1;
            while i < chars.len() && (chars[i].is_alphanumeric() || "_{}".contains(chars[i])) {
                i += 1;
            }
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            // A number or a duration: 0.99, 1e-3, 0x1f, 5m.
            i += 1;
            while i < chars.len() {
                let exponent_sign = "+-".contains(chars[i]) && "eE".contains(chars[i - 1]);
                if !(chars[i].is_alphanumeric() || chars[i] == '.' || exponent_sign) {
                    break;
                }
                i += 1;
            }
        } else if c.is_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let call = next_non_space(i) == Some(&'(');
            if GROUPING.contains(&word.as_str()) {
                if call {
                    // Skip the label list.
                    while i < chars.len() && chars[i] != ')' {
                        i += 1;
                    }
                }
            } else if !call
                && !AGGREGATIONS.contains(&word.as_str())
                && !KEYWORDS.contains(&word.to_ascii_lowercase().as_str())
            {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// Replaces quoted strings and `{...}` / `[...]` blocks (strings inside them included) by a
/// space.
fn strip_strings_and_blocks(expr: &str) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut chars = expr.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => skip_string(&mut chars, c),
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                while let Some(c) = chars.next() {
                    match c {
                        '"' | '\'' | '`' => skip_string(&mut chars, c),
                        _ if c == close => break,
                        _ => {}
                    }
                }
            }
            _ => {
                out.push(c);
                continue;
            }
        }
        out.push(' ');
    }
    out
}

/// Consumes the rest of a string that opened with `quote`.
fn skip_string(chars: &mut std::str::Chars<'_>, quote: char) {
    let mut escaped = false;
    for c in chars.by_ref() {
        if escaped {
            escaped = false;
        } else if c == '\\' && quote != '`' {
            escaped = true;
        } else if c == quote {
            return;
        }
    }
}

/// The names in `expr` that `known` does not accept.
pub fn unknown_metrics(expr: &str, known: &dyn Fn(&str) -> bool) -> Vec<String> {
    metric_names(expr)
        .into_iter()
        .filter(|m| !known(m))
        .collect()
}

/// Whether rampart exports `name`: an entry of `rampart::metrics::METRICS`, or a histogram's
/// `_bucket`, `_sum` or `_count` series.
pub fn rampart_exports(name: &str) -> bool {
    rampart::metrics::METRICS.iter().any(|(metric, kind, _)| {
        name == *metric
            || (*kind == "histogram"
                && ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|suffix| name.strip_prefix(metric) == Some(suffix)))
    })
}

#[test]
fn finds_the_metrics_and_nothing_else() {
    let names = |e: &str| metric_names(e).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            r#"histogram_quantile(0.99, sum by (upstream, le) (rate(rampart_request_duration_seconds_bucket{instance=~"$instance",upstream=~"a{b}"}[$__rate_interval])))"#
        ),
        ["rampart_request_duration_seconds_bucket"]
    );
    assert_eq!(
        names(r#"count(rampart_circuit_breaker_state{x="it's"} == 2) or vector(0)"#),
        ["rampart_circuit_breaker_state"]
    );
    assert_eq!(
        names(
            "sum without (code) (rate(a_total[5m:1m])) / on (job) group_left (x) b offset 5m > 1e-3 and bool c"
        ),
        ["a_total", "b", "c"]
    );
    assert_eq!(names("sum(rate(x_total[5m])) by (le)"), ["x_total"]);
    assert_eq!(names("up{job=\"rampart\"} == 0"), ["up"]);
}

#[test]
fn only_exported_metrics_pass() {
    assert!(rampart_exports("rampart_requests_total"));
    assert!(rampart_exports("rampart_request_duration_seconds_sum"));
    assert!(
        !rampart_exports("rampart_requests_total_bucket"),
        "not a histogram"
    );
    assert!(!rampart_exports("rampart_request_duration_seconds_p99"));
    assert_eq!(
        unknown_metrics(
            "rate(rampart_requests_total[5m]) / rate(rampart_made_up_total[5m])",
            &rampart_exports
        ),
        ["rampart_made_up_total"]
    );
}
