//! examples/prometheus: the scrape config and the alert rules pass `promtool`, the rule unit
//! tests pass and cover every alert, and the rules read only metrics rampart exports.

use super::promql::{rampart_exports, unknown_metrics};
use super::{example, promtool, yaml};

#[test]
fn the_scrape_config_passes_promtool() {
    promtool(
        &example("prometheus"),
        &["check", "config", "prometheus.yml"],
    );
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    let dir = example("prometheus");
    if promtool(&dir, &["check", "rules", "alerts.yml"]) {
        promtool(&dir, &["test", "rules", "alerts.test.yml"]);
    }
}

#[test]
fn every_alert_is_tested_and_reads_only_exported_metrics() {
    let rules = yaml(&example("prometheus/alerts.yml"));
    let tests = yaml(&example("prometheus/alerts.test.yml"));
    let fired: Vec<&str> = tests["tests"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_array().unwrap())
        .filter(|c| c["exp_alerts"].as_array().is_some_and(|a| !a.is_empty()))
        .map(|c| c["alertname"].as_str().unwrap())
        .collect();
    let mut alerts = Vec::new();
    for rule in rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
    {
        let name = rule["alert"].as_str().expect("alerting rules only");
        let expr = rule["expr"].as_str().unwrap();
        let unknown = unknown_metrics(expr, &|m| m == "up" || rampart_exports(m));
        assert!(
            unknown.is_empty(),
            "{name} reads {unknown:?}, which rampart does not export"
        );
        assert!(
            fired.contains(&name),
            "alerts.test.yml never expects {name} to fire"
        );
        assert!(
            rule["annotations"]["summary"].is_string(),
            "{name} has a summary"
        );
        alerts.push(name);
    }
    for required in [
        "RampartCircuitBreakerOpen",
        "RampartRateLimitRejectionsRising",
        "RampartRateLimitGlobalFallback",
        "RampartRetryBudgetExhausted",
        "RampartConfigReloadFailed",
    ] {
        assert!(alerts.contains(&required), "{required}");
    }
}
