//! examples/docker-compose: it parses, every file it mounts or builds from exists, rampart's
//! config validates, and Prometheus scrapes the address rampart's admin listener has there.
//! (Docker itself is not run by the tests.)

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{drain_budget, example, rampart_config_file, seconds, yaml};

/// Host source and container target of a short-syntax bind mount (`./src:/dst[:ro]`).
fn binds(service: &Value, base: &Path) -> Vec<(PathBuf, String)> {
    service["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            let spec = v.as_str().expect("short volume syntax");
            let mut parts = spec.split(':');
            let (source, target) = (parts.next().unwrap(), parts.next().unwrap());
            assert!(
                source.starts_with('.'),
                "{spec}: a path relative to the compose file"
            );
            (base.join(source), target.to_owned())
        })
        .collect()
}

/// The host path of `container_path`, through `service`'s bind mounts.
fn host_path(service: &Value, base: &Path, container_path: &str) -> PathBuf {
    binds(service, base)
        .into_iter()
        .find_map(|(source, target)| {
            let rest = container_path.strip_prefix(&target)?;
            Some(source.join(rest.trim_start_matches('/')))
        })
        .unwrap_or_else(|| panic!("{container_path} is not on a mounted volume"))
}

#[test]
fn the_compose_file_runs_rampart_beside_an_app_with_prometheus() {
    let base = example("docker-compose");
    let compose = yaml(&base.join("compose.yaml"));
    let services = &compose["services"];
    for name in ["app", "rampart", "prometheus"] {
        assert!(services[name].is_object(), "service {name}");
    }
    for (name, service) in services.as_object().unwrap() {
        for (source, _) in binds(service, &base) {
            assert!(
                source.exists(),
                "{name} mounts {}, which is missing",
                source.display()
            );
        }
    }

    // rampart: built from this repository, config mounted as a directory (so an editor's
    // rename-on-save reaches the container and hot reload sees it).
    let rampart = &services["rampart"];
    let context = base.join(rampart["build"]["context"].as_str().unwrap());
    assert!(
        context
            .join(rampart["build"]["dockerfile"].as_str().unwrap())
            .is_file()
    );
    let file = rampart["environment"]["RAMPART_CONFIG"].as_str().unwrap();
    let config_file = host_path(rampart, &base, file);
    assert!(config_file.parent().unwrap().is_dir());
    assert!(
        binds(rampart, &base)
            .iter()
            .all(|(source, _)| source.is_dir()),
        "a single-file bind mount keeps the old inode after an editor renames the new file in"
    );
    let config = rampart_config_file(&config_file);
    let grace = seconds(rampart["stop_grace_period"].as_str().unwrap());
    assert!(
        grace > drain_budget(&config),
        "stop_grace_period covers the drain"
    );

    // A sidecar: rampart shares the app's network; the app uses it as its proxy.
    assert_eq!(rampart["network_mode"], "service:app");
    assert!(config.listen.ip().is_loopback());
    let proxy = format!("http://127.0.0.1:{}", config.listen.port());
    for name in ["http_proxy", "HTTP_PROXY"] {
        assert_eq!(
            services["app"]["environment"][name],
            proxy.as_str(),
            "{name}"
        );
    }

    // Prometheus scrapes rampart's admin port at the app's address, and loads the rules.
    let prometheus = &services["prometheus"];
    let flag = prometheus["command"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|a| a.as_str()?.strip_prefix("--config.file="))
        .expect("--config.file");
    let prometheus_yml = yaml(&host_path(prometheus, &base, flag));
    let job = prometheus_yml["scrape_configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job_name"] == "rampart")
        .expect("job rampart");
    let admin = format!("app:{}", config.admin.listen.port());
    assert_eq!(job["static_configs"][0]["targets"][0], admin.as_str());
    assert!(
        config.admin.listen.ip().is_unspecified(),
        "reachable from Prometheus"
    );

    // Grafana gets the dashboard and a Prometheus data source.
    let grafana = &services["grafana"];
    let dashboards = host_path(grafana, &base, "/var/lib/grafana/dashboards");
    assert!(dashboards.join("rampart-dashboard.json").is_file());
    let datasources = host_path(grafana, &base, "/etc/grafana/provisioning/datasources");
    let source = yaml(&datasources.join("prometheus.yaml"));
    assert_eq!(source["datasources"][0]["type"], "prometheus");
    assert_eq!(source["datasources"][0]["url"], "http://prometheus:9090");
}
