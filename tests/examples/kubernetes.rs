//! examples/kubernetes: the sidecar Deployment with its ConfigMap, and the PodMonitor.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{drain_budget, example, rampart_config, yaml_documents};

fn by_kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<_> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind}");
    found[0]
}

fn named<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list.as_array()?.iter().find(|c| c["name"] == name)
}

fn env(container: &Value) -> BTreeMap<String, Value> {
    container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| (e["name"].as_str().unwrap().to_owned(), e.clone()))
        .collect()
}

/// Bytes of a Kubernetes memory quantity ("32Mi", "1Gi", "512M").
fn bytes(quantity: &Value) -> u64 {
    let q = quantity.as_str().expect("memory quantity as a string");
    let units = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
    ];
    for (suffix, factor) in units {
        if let Some(n) = q.strip_suffix(suffix) {
            return n.parse::<u64>().unwrap() * factor;
        }
    }
    q.parse().unwrap()
}

/// Millicores of a Kubernetes CPU quantity ("100m", "2", "0.5").
fn millicores(quantity: &Value) -> u64 {
    let q = quantity.as_str().expect("cpu quantity as a string");
    match q.strip_suffix('m') {
        Some(m) => m.parse().unwrap(),
        None => (q.parse::<f64>().unwrap() * 1000.0) as u64,
    }
}

/// Every `matchLabels` entry of `selector` is a label of the pod template.
fn assert_selects(selector: &Value, pod: &Value) {
    let labels = selector["matchLabels"].as_object().unwrap();
    assert!(!labels.is_empty());
    for (key, value) in labels {
        assert_eq!(&pod["metadata"]["labels"][key], value, "selector {key}");
    }
}

/// The probe's port is the admin port, by number or by the container port's name.
fn probes_admin(container: &Value, probe: &str, path: &str, admin_port: u16) {
    let get = &container[probe]["httpGet"];
    assert_eq!(get["path"], path, "{probe}");
    let port = &get["port"];
    let by_name = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == *port)
        .map(|p| p["containerPort"].clone());
    assert_eq!(
        by_name.unwrap_or_else(|| port.clone()),
        admin_port,
        "{probe} targets the admin port"
    );
}

fn hardened(container: &Value) {
    let name = &container["name"];
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true, "{name}");
    assert_eq!(security["allowPrivilegeEscalation"], false, "{name}");
    assert!(
        security["capabilities"]["drop"]
            .as_array()
            .is_some_and(|d| d.contains(&"ALL".into())),
        "{name} drops all capabilities"
    );
}

fn sized(container: &Value) {
    let name = &container["name"];
    let resources = &container["resources"];
    let (request, limit) = (
        bytes(&resources["requests"]["memory"]),
        bytes(&resources["limits"]["memory"]),
    );
    assert!(
        request > 0 && request <= limit,
        "{name}: memory request <= limit"
    );
    assert!(
        millicores(&resources["requests"]["cpu"]) > 0,
        "{name}: a CPU request"
    );
    if let Some(cpu) = resources["limits"].get("cpu") {
        assert!(millicores(cpu) >= millicores(&resources["requests"]["cpu"]));
    }
}

#[test]
fn the_sidecar_deployment_is_wired_to_its_config() {
    let docs = yaml_documents(&example("kubernetes/rampart-sidecar.yaml"));
    let configmap = by_kind(&docs, "ConfigMap");
    let deployment = by_kind(&docs, "Deployment");
    let pod = &deployment["spec"]["template"];
    let spec = &pod["spec"];
    assert_selects(&deployment["spec"]["selector"], pod);

    // rampart: a native sidecar (init container that keeps running) or a plain container.
    let rampart = match named(&spec["initContainers"], "rampart") {
        Some(sidecar) => {
            assert_eq!(sidecar["restartPolicy"], "Always", "a native sidecar");
            sidecar
        }
        None => named(&spec["containers"], "rampart").expect("a rampart container"),
    };
    let app = named(&spec["containers"], "app").expect("the app container");

    // The config rampart reads is the ConfigMap's, mounted read-only as a directory.
    let args: Vec<&str> = rampart["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let file = args
        .windows(2)
        .find(|w| w[0] == "-c")
        .map(|w| w[1])
        .expect("rampart run -c FILE");
    let mount = rampart["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| file.starts_with(&format!("{}/", m["mountPath"].as_str().unwrap())))
        .expect("the config file is on a mounted volume");
    assert_eq!(mount["readOnly"], true);
    assert!(
        mount.get("subPath").is_none(),
        "a subPath mount never sees ConfigMap updates, so hot reload would not happen"
    );
    let volume = named(&spec["volumes"], mount["name"].as_str().unwrap()).unwrap();
    assert_eq!(volume["configMap"]["name"], configmap["metadata"]["name"]);
    let key = file.rsplit('/').next().unwrap();
    let config = rampart_config(
        configmap["data"][key]
            .as_str()
            .expect("the ConfigMap holds the file"),
        "the ConfigMap's rampart.yaml",
    );

    // The admin token comes from a Secret.
    let token = &env(rampart)["RAMPART_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"];
    assert!(
        token["name"].is_string() && token["key"].is_string(),
        "{token}"
    );

    // Probes and scraping on the admin port; the admin port is reachable from the kubelet.
    let admin_port = config.admin.listen.port();
    assert!(
        config.admin.listen.ip().is_unspecified(),
        "the kubelet probes the pod IP"
    );
    probes_admin(rampart, "readinessProbe", "/readyz", admin_port);
    probes_admin(rampart, "livenessProbe", "/healthz", admin_port);
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], admin_port.to_string());
    assert_eq!(annotations["prometheus.io/path"], "/metrics");

    // The app sends its outbound HTTP through rampart's loopback listener.
    assert!(
        config.listen.ip().is_loopback(),
        "only the pod reaches the proxy"
    );
    let proxy = format!("http://127.0.0.1:{}", config.listen.port());
    let app_env = env(app);
    for name in ["HTTP_PROXY", "http_proxy"] {
        assert_eq!(app_env[name]["value"], proxy.as_str(), "{name}");
    }
    for name in ["NO_PROXY", "no_proxy"] {
        let hosts = app_env[name]["value"].as_str().unwrap();
        for host in ["localhost", "127.0.0.1"] {
            assert!(hosts.split(',').any(|h| h == host), "{name} has {host}");
        }
    }

    // Non-root, read-only, sized, and given time to drain.
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    for container in [rampart, app] {
        hardened(container);
        sized(container);
    }
    let grace = spec["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        grace > drain_budget(&config).as_secs(),
        "terminationGracePeriodSeconds {grace} must exceed drain_delay + shutdown.timeout ({:?})",
        drain_budget(&config)
    );
    if let Some(threads) = config.runtime.worker_threads {
        let cpu = &rampart["resources"]["limits"]["cpu"];
        assert!(
            cpu.is_null() || millicores(cpu) >= 1000 * threads as u64,
            "worker_threads {threads} fit the CPU limit"
        );
    }
}

#[test]
fn the_podmonitor_scrapes_the_sidecars_as_job_rampart() {
    let monitor = &yaml_documents(&example("kubernetes/podmonitor.yaml"))[0];
    assert_eq!(monitor["kind"], "PodMonitor");
    let docs = yaml_documents(&example("kubernetes/rampart-sidecar.yaml"));
    let pod = &by_kind(&docs, "Deployment")["spec"]["template"];
    assert_selects(&monitor["spec"]["selector"], pod);
    let endpoint = &monitor["spec"]["podMetricsEndpoints"][0];
    let rampart = named(&pod["spec"]["initContainers"], "rampart").unwrap();
    let port = rampart["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == endpoint["port"])
        .expect("the endpoint names rampart's admin port");
    assert_eq!(
        port["containerPort"],
        pod["metadata"]["annotations"]["prometheus.io/port"]
            .as_str()
            .unwrap()
            .parse::<u16>()
            .unwrap()
    );
    assert_eq!(endpoint["path"], "/metrics");
    assert!(
        endpoint["relabelings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["targetLabel"] == "job" && r["replacement"] == "rampart"),
        "job=\"rampart\", which the alert rules select"
    );
}
