//! examples/grafana: the dashboard parses, shows what an operator needs, its queries read
//! only metrics rampart exports, and every query is valid PromQL (`promtool check rules` on
//! the queries written out as recording rules).

use serde_json::Value;

use super::promql::{metric_names, rampart_exports, unknown_metrics};
use super::{check_promql, example, read};

/// Panels, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        out.push(panel);
        out.extend(panel["panels"].as_array().into_iter().flatten());
    }
    out
}

/// (panel title, expression) for every query, template variable queries included (the
/// selector inside `label_values(SELECTOR, label)`).
fn queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            out.push((
                panel["title"].as_str().unwrap().to_owned(),
                target["expr"].as_str().unwrap().to_owned(),
            ));
        }
    }
    for var in dashboard["templating"]["list"].as_array().unwrap() {
        let query = match &var["query"] {
            Value::Object(q) => q["query"].as_str().unwrap(),
            Value::String(q) if var["type"] == "query" => q,
            _ => continue,
        };
        let selector = query
            .strip_prefix("label_values(")
            .and_then(|rest| rest.rsplit_once(','))
            .map(|(selector, _)| selector)
            .unwrap_or_else(|| panic!("variable {}: label_values(SELECTOR, label)", var["name"]));
        out.push((
            format!("${}", var["name"].as_str().unwrap()),
            selector.to_owned(),
        ));
    }
    out
}

fn dashboard() -> Value {
    let path = example("grafana/rampart-dashboard.json");
    serde_json::from_str(&read(&path)).expect("the dashboard is JSON")
}

#[test]
fn the_dashboard_reads_only_exported_metrics() {
    let dashboard = dashboard();
    let queries = queries(&dashboard);
    assert!(queries.len() > 10);
    for (title, expr) in &queries {
        let unknown = unknown_metrics(expr, &rampart_exports);
        assert!(
            unknown.is_empty(),
            "{title}: {unknown:?} are not rampart metrics: {expr}"
        );
        assert!(
            !metric_names(expr).is_empty(),
            "{title}: reads no metric: {expr}"
        );
    }
    let mut ids: Vec<u64> = panels(&dashboard)
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "panel ids are unique");
    for panel in panels(&dashboard)
        .into_iter()
        .filter(|p| p["type"] != "row")
    {
        assert!(
            panel["targets"].as_array().is_some_and(|t| !t.is_empty()),
            "{} has a query",
            panel["title"]
        );
    }
}

#[test]
fn the_dashboard_shows_breakers_traffic_retries_limits_and_latency() {
    let dashboard = dashboard();
    let all = panels(&dashboard);
    let panel_reading = |kind: &str, needle: &str| {
        all.iter().any(|p| {
            (kind.is_empty() || p["type"] == kind)
                && p["targets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|t| t["expr"].as_str().unwrap().contains(needle))
        })
    };
    let wanted = [
        (
            "state-timeline",
            "max by (upstream) (rampart_circuit_breaker_state",
        ),
        ("timeseries", "sum by (code) (rate(rampart_requests_total"),
        ("timeseries", "rampart_retries_total"),
        ("timeseries", "rampart_retries_skipped_total"),
        ("timeseries", "rampart_rate_limited_total"),
        ("timeseries", "code=\"429\""),
        (
            "timeseries",
            "histogram_quantile(0.99, sum by (le) (rate(rampart_request_duration_seconds_bucket",
        ),
        ("timeseries", "rampart_requests_in_flight"),
        (
            "state-timeline",
            "max by (upstream) (rampart_rate_limit_global_fallback",
        ),
    ];
    for (kind, needle) in wanted {
        assert!(
            panel_reading(kind, needle),
            "no {kind} panel reading {needle}"
        );
    }
    let named = |metric: &str, states: &[&str]| {
        let timeline = all
            .iter()
            .find(|p| {
                p["type"] == "state-timeline"
                    && p["targets"][0]["expr"].to_string().contains(metric)
            })
            .unwrap();
        let mappings = timeline["fieldConfig"]["defaults"]["mappings"][0]["options"].to_string();
        for state in states {
            assert!(
                mappings.contains(&format!("\"{state}\"")),
                "{metric}: state {state} is named"
            );
        }
    };
    named(
        "rampart_circuit_breaker_state",
        &["closed", "half-open", "open"],
    );
    named("rampart_rate_limit_global_fallback", &["Redis", "fallback"]);
}

#[test]
fn every_dashboard_query_is_valid_promql() {
    // Grafana's variables get values Prometheus accepts: intervals a duration, the rest a regex.
    let substitute = |expr: &str| {
        let mut expr = expr.to_owned();
        for interval in ["$__rate_interval", "$__interval", "$__range"] {
            expr = expr.replace(interval, "5m");
        }
        expr.replace("$instance", ".*").replace("$upstream", ".*")
    };
    let queries: Vec<(String, String)> = queries(&dashboard())
        .into_iter()
        .map(|(title, expr)| {
            let expr = substitute(&expr);
            assert!(!expr.contains('$'), "{title}: unknown variable in {expr}");
            (title, expr)
        })
        .collect();
    check_promql(&queries);
}
