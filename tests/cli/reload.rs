//! Hot reload through the real binary (issue 6): SIGHUP adding a route and an upstream, a
//! changed upstream getting fresh state while an unchanged one keeps its own, file-watch
//! reloads after an atomic rename and after a Kubernetes ConfigMap `..data` symlink swap, a
//! long request finishing on the policy it started with, reloading under load, and
//! /admin/config never showing the admin token.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::Response;

use super::support::binary::{Cmd, Process, rampart, rampart_bin};
use super::support::client::{self, request};
use super::support::{Reply, TestUpstream, empty};
use super::{Ports, START, started};

/// A config on `ports` with a quick shutdown and the given `upstreams:` body.
fn config(ports: &Ports, upstreams: &str) -> String {
    format!(
        "listen: {}\nadmin: {{ listen: {} }}\nshutdown: {{ drain_delay: 0s, timeout: 5s }}\nupstreams:\n{upstreams}",
        ports.listen, ports.admin
    )
}

/// One upstream entry: `hosts: [name]`, one endpoint, then `extra` (indented 4 spaces).
fn upstream(name: &str, url: &str, extra: &str) -> String {
    format!("  {name}:\n    endpoints: [\"{url}\"]\n    hosts: [{name}]\n{extra}")
}

/// Replaces `path` by writing a sibling temp file and renaming it over, as editors do.
fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("yaml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn spawn(text: &str) -> Process {
    rampart(&["run"])
        .env("RAMPART_LOG_FORMAT", "json")
        .config(text)
        .spawn()
}

async fn get(ports: &Ports, host: &str, path: &str) -> Response<Bytes> {
    let req = request("GET", &format!("http://{}{path}", ports.listen))
        .header("host", host)
        .body(empty())
        .unwrap();
    client::collect(client::send(req).await.unwrap()).await
}

async fn admin_reload(ports: &Ports) -> (u16, serde_json::Value) {
    let req = request("POST", &format!("http://{}/admin/reload", ports.admin))
        .body(empty())
        .unwrap();
    let resp = client::collect(client::send(req).await.unwrap()).await;
    (resp.status().as_u16(), client::json(&resp))
}

fn attempts(resp: &Response<Bytes>) -> Option<&str> {
    client::header(resp, "x-rampart-attempts")
}

#[tokio::test]
async fn sighup_adds_a_route_to_a_running_upstream_and_a_new_prefix_upstream() {
    let svc = TestUpstream::http1().await;
    svc.set_default(Reply::status(503));
    let api = TestUpstream::http1().await;
    let ports = Ports::new();
    let retry = "    retry: { attempts: 3, backoff: { base: 1ms, max: 2ms } }\n";
    let proc = spawn(&config(&ports, &upstream("svc", &svc.url(), retry)));
    started(&proc, &ports).await;
    assert_eq!(attempts(&get(&ports, "svc", "/charge").await), Some("3"));
    assert_eq!(get(&ports, "elsewhere", "/api/orders").await.status(), 404);

    let route = "    routes:\n      - path_prefix: /charge\n        retry: { attempts: 1 }\n";
    let added = format!(
        "{}  api:\n    endpoints: [\"{}\"]\n    path_prefix: /api\n",
        upstream("svc", &svc.url(), &format!("{retry}{route}")),
        api.url()
    );
    write_atomic(&proc.config_path(), &config(&ports, &added));
    proc.signal("HUP");
    proc.wait_for_line(r#""config reloaded","trigger":"SIGHUP""#, START)
        .await;

    let charge = get(&ports, "svc", "/charge").await;
    assert_eq!(
        (charge.status().as_u16(), attempts(&charge)),
        (503, Some("1"))
    );
    assert_eq!(
        attempts(&get(&ports, "svc", "/refund").await),
        Some("3"),
        "the route covers only its prefix"
    );
    let orders = get(&ports, "elsewhere", "/api/orders").await;
    assert_eq!(orders.status(), 200);
    assert_eq!(api.last().path(), "/api/orders");
}

#[tokio::test]
async fn a_changed_upstream_gets_a_fresh_bulkhead_while_an_unchanged_one_keeps_its_own() {
    let up = TestUpstream::http1().await;
    up.set_default(Reply::hang());
    let ports = Ports::new();
    let cap = "    concurrency: { max_requests: 1 }\n";
    let proc = spawn(&config(
        &ports,
        &format!(
            "{}{}",
            upstream("held", &up.url(), cap),
            upstream("kept", &up.url(), cap)
        ),
    ));
    started(&proc, &ports).await;
    // One request each holds the only slot of its upstream's bulkhead.
    let listen = ports.listen;
    let hold = |host: &'static str| {
        tokio::spawn(async move {
            let req = request("GET", &format!("http://{listen}/hold"))
                .header("host", host)
                .body(empty())
                .unwrap();
            client::send(req).await
        })
    };
    let held = [hold("held"), hold("kept")];
    up.wait_for(2).await;
    for host in ["held", "kept"] {
        let full = get(&ports, host, "/more").await;
        assert_eq!(client::header(&full, "x-rampart-error"), Some("overloaded"));
    }

    up.set_default(Reply::ok("fresh"));
    write_atomic(
        &proc.config_path(),
        &config(
            &ports,
            &format!(
                "{}{}",
                upstream(
                    "held",
                    &up.url(),
                    &format!("{cap}    timeouts: {{ request: 31s }}\n")
                ),
                upstream("kept", &up.url(), cap)
            ),
        ),
    );
    let (code, summary) = admin_reload(&ports).await;
    assert_eq!(code, 200, "{summary}");
    assert_eq!(summary["changed"], serde_json::json!(["held"]));
    assert_eq!(summary["unchanged"], serde_json::json!(["kept"]));

    let fresh = get(&ports, "held", "/after").await;
    assert_eq!(
        (fresh.status().as_u16(), client::text(&fresh)),
        (200, "fresh")
    );
    let kept = get(&ports, "kept", "/after").await;
    assert_eq!(
        client::header(&kept, "x-rampart-error"),
        Some("overloaded"),
        "the unchanged upstream's bulkhead still counts the request it admitted before"
    );
    for task in held {
        task.abort();
    }
}

/// Starts rampart with upstream alpha only, lets `rewrite` put the config with alpha and
/// beta in place, and checks that the file watch alone (no signal, no API call) makes beta
/// routable.
async fn the_file_watch_adds_beta(
    start: impl FnOnce(&str) -> Process,
    rewrite: impl FnOnce(&Process, &str),
) {
    let a = TestUpstream::http1().await;
    let b = TestUpstream::http1().await;
    let ports = Ports::new();
    let proc = start(&config(&ports, &upstream("alpha", &a.url(), "")));
    started(&proc, &ports).await;
    assert_eq!(get(&ports, "beta", "/").await.status(), 404);

    let two = format!(
        "{}{}",
        upstream("alpha", &a.url(), ""),
        upstream("beta", &b.url(), "")
    );
    rewrite(&proc, &config(&ports, &two));
    proc.wait_for_line(r#""config reloaded","trigger":"file""#, START)
        .await;
    assert_eq!(get(&ports, "beta", "/").await.status(), 200);
    assert_eq!(b.count(), 1);
}

#[tokio::test]
async fn the_file_watch_reloads_after_an_atomic_rename() {
    the_file_watch_adds_beta(spawn, |proc, text| write_atomic(&proc.config_path(), text)).await;
}

/// Lays out `dir` as the kubelet does for a ConfigMap volume: the data in a timestamped
/// directory, `..data` a symlink to it, and `rampart.yaml` a symlink into `..data`.
/// Calling it again swaps `..data` atomically to a new directory and removes the old one.
fn configmap_write(dir: &Path, generation: u32, text: &str) {
    use std::os::unix::fs::symlink;
    let data = format!("..2026_01_01_00_00_0{generation}.{generation}");
    std::fs::create_dir(dir.join(&data)).unwrap();
    std::fs::write(dir.join(&data).join("rampart.yaml"), text).unwrap();
    let old = std::fs::read_link(dir.join("..data")).ok();
    symlink(&data, dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    if let Some(old) = old {
        std::fs::remove_dir_all(dir.join(old)).unwrap();
    } else {
        symlink("..data/rampart.yaml", dir.join("rampart.yaml")).unwrap();
    }
}

#[tokio::test]
async fn the_file_watch_follows_a_configmap_symlink_swap() {
    let volume = tempfile::tempdir().unwrap();
    let start = |text: &str| {
        configmap_write(volume.path(), 1, text);
        let path = volume.path().join("rampart.yaml");
        Cmd::new(rampart_bin(), &["run", "-c", path.to_str().unwrap()])
            .env("RAMPART_LOG_FORMAT", "json")
            .spawn()
    };
    the_file_watch_adds_beta(start, |_, text| configmap_write(volume.path(), 2, text)).await;
}

#[tokio::test]
async fn a_long_request_started_before_a_reload_finishes_on_the_old_policy() {
    let slow = TestUpstream::http1().await;
    slow.set_default(Reply::ok("slow").delay(Duration::from_secs(3)));
    let ports = Ports::new();
    let policy = |request: &str| {
        format!(
            "    retry: {{ attempts: 1 }}\n    timeouts: {{ request: {request}, per_try: {request} }}\n"
        )
    };
    let proc = spawn(&config(
        &ports,
        &upstream("svc", &slow.url(), &policy("10s")),
    ));
    started(&proc, &ports).await;
    let listen = ports.listen;
    let long = tokio::spawn(async move {
        let req = request("GET", &format!("http://{listen}/long"))
            .header("host", "svc")
            .body(empty())
            .unwrap();
        client::collect(client::send(req).await.unwrap()).await
    });
    slow.wait_for(1).await;

    write_atomic(
        &proc.config_path(),
        &config(&ports, &upstream("svc", &slow.url(), &policy("200ms"))),
    );
    proc.signal("HUP");
    proc.wait_for_line(r#""config reloaded","trigger":"SIGHUP""#, START)
        .await;
    let new = get(&ports, "svc", "/new").await;
    assert_eq!(
        client::header(&new, "x-rampart-error"),
        Some("upstream_timeout"),
        "a request started after the reload runs on the new 200ms deadline"
    );
    assert!(
        !long.is_finished(),
        "the long request must still be in flight after the reload for this test to mean anything"
    );
    let long = long.await.unwrap();
    assert_eq!((long.status().as_u16(), client::text(&long)), (200, "slow"));
}

#[tokio::test]
async fn reloading_under_load_fails_no_request() {
    const CLIENTS: usize = 4;
    const AT_LEAST: usize = 50;
    const RELOADS: usize = 5;
    let a = TestUpstream::http1().await;
    let b = TestUpstream::http1().await;
    let ports = Ports::new();
    let proc = spawn(&config(&ports, &upstream("svc", &a.url(), "")));
    started(&proc, &ports).await;

    // Every client keeps sending until the reloads are over and it has sent AT_LEAST, so the
    // load overlaps every reload however fast or slow this machine is.
    let reloading = Arc::new(AtomicBool::new(true));
    let mut load = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (reloading, listen) = (reloading.clone(), ports.listen);
        load.spawn(async move {
            let mut codes = Vec::new();
            while reloading.load(Ordering::Acquire) || codes.len() < AT_LEAST {
                let req = request("GET", &format!("http://{listen}/load"))
                    .header("host", "svc")
                    .body(empty())
                    .unwrap();
                let code = match client::send(req).await {
                    Ok(resp) => client::collect(resp).await.status().as_u16(),
                    Err(e) => panic!("request failed during reloads: {e}"),
                };
                codes.push(code);
            }
            codes
        });
    }
    a.wait_for(CLIENTS).await;
    for i in 0..RELOADS {
        // Each reload moves svc to the other endpoint with another deadline: a changed
        // upstream with a new connection pool each time.
        let endpoint = if i % 2 == 0 { b.url() } else { a.url() };
        let deadline = format!("    timeouts: {{ request: {}s }}\n", 10 + i);
        write_atomic(
            &proc.config_path(),
            &config(&ports, &upstream("svc", &endpoint, &deadline)),
        );
        let (code, summary) = admin_reload(&ports).await;
        assert_eq!(code, 200, "{summary}");
    }
    reloading.store(false, Ordering::Release);
    let mut sent = 0;
    while let Some(codes) = load.join_next().await {
        let codes = codes.unwrap();
        sent += codes.len();
        assert!(codes.iter().all(|c| *c == 200), "{codes:?}");
    }
    assert!(sent >= CLIENTS * AT_LEAST);
    assert_eq!(a.count() + b.count(), sent);
    assert!(
        b.count() > 0,
        "requests followed the reloads to the new endpoint"
    );
}

#[tokio::test]
async fn admin_config_never_shows_the_admin_token() {
    const TOKEN: &str = "tok-51c3-do-not-print-9a7e";
    let up = TestUpstream::http1().await;
    let ports = Ports::new();
    let text = format!(
        "listen: {}\nadmin: {{ listen: {}, token: \"${{RAMPART_ADMIN_TOKEN}}\" }}\nupstreams:\n{}",
        ports.listen,
        ports.admin,
        upstream("svc", &up.url(), "")
    );
    let proc = rampart(&["run"])
        .env("RAMPART_LOG_FORMAT", "json")
        .env("RAMPART_LOG", "debug")
        .env("RAMPART_ADMIN_TOKEN", TOKEN)
        .config(&text)
        .spawn();
    started(&proc, &ports).await;
    let config = |auth: Option<String>| {
        let mut req = request("GET", &format!("http://{}/admin/config", ports.admin));
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        async { client::collect(client::send(req.body(empty()).unwrap()).await.unwrap()).await }
    };
    assert_eq!(config(None).await.status(), 401);
    let resp = config(Some(format!("Bearer {TOKEN}"))).await;
    assert_eq!(resp.status(), 200);
    let body = client::text(&resp);
    assert!(!body.contains(TOKEN), "{body}");
    assert_eq!(client::json(&resp)["admin"]["token"], "<redacted>");
    assert_eq!(get(&ports, "svc", "/").await.status(), 200);
    assert!(
        !proc.output().contains(TOKEN),
        "the token is never logged either"
    );
}

async fn force_open(ports: &Ports, name: &str) -> serde_json::Value {
    let req = request(
        "POST",
        &format!("http://{}/admin/upstreams/{name}/breaker", ports.admin),
    )
    .header("content-type", "application/json")
    .body(super::support::full(r#"{"action": "force-open"}"#))
    .unwrap();
    let resp = client::collect(client::send(req).await.unwrap()).await;
    assert_eq!(resp.status(), 200, "{}", client::text(&resp));
    client::json(&resp)
}

async fn breaker_state(ports: &Ports, name: &str) -> String {
    let resp = client::get(&format!("http://{}/admin/upstreams/{name}", ports.admin)).await;
    client::json(&resp)["breaker"]["state"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn sighup_keeps_the_breaker_and_bucket_of_an_unchanged_upstream_and_resets_a_changed_one() {
    let up = TestUpstream::http1().await;
    let ports = Ports::new();
    let limit = "    rate_limit: { rate: 1/h, burst: 2 }\n";
    let before = format!(
        "{}{}{}",
        upstream("forced", &up.url(), ""),
        upstream("metered", &up.url(), limit),
        upstream("changed", &up.url(), limit)
    );
    let proc = spawn(&config(&ports, &before));
    started(&proc, &ports).await;

    assert_eq!(
        force_open(&ports, "forced").await["breaker"]["state"],
        "forced_open"
    );
    for host in ["metered", "changed"] {
        for _ in 0..2 {
            assert_eq!(get(&ports, host, "/spend").await.status(), 200);
        }
        assert_eq!(get(&ports, host, "/empty").await.status(), 429);
    }
    let received = up.count();

    // Same policies for `forced` and `metered`; `changed` gets a longer request timeout; a
    // new upstream makes the reload visible.
    let after = format!(
        "{}{}{}{}",
        upstream("forced", &up.url(), ""),
        upstream("metered", &up.url(), limit),
        upstream(
            "changed",
            &up.url(),
            &format!("{limit}    timeouts: {{ request: 31s }}\n")
        ),
        upstream("added", &up.url(), "")
    );
    std::fs::write(proc.config_path(), config(&ports, &after)).unwrap();
    proc.signal("HUP");
    proc.wait_for_line(r#""config reloaded","trigger":"SIGHUP""#, START)
        .await;
    assert_eq!(get(&ports, "added", "/new").await.status(), 200);

    assert_eq!(breaker_state(&ports, "forced").await, "forced_open");
    let refused = get(&ports, "forced", "/still").await;
    assert_eq!(refused.status(), 503);
    assert_eq!(
        client::header(&refused, "x-rampart-error"),
        Some("circuit_open")
    );
    assert_eq!(
        get(&ports, "metered", "/still").await.status(),
        429,
        "the unchanged upstream's bucket is still empty"
    );
    assert_eq!(
        get(&ports, "changed", "/fresh").await.status(),
        200,
        "the changed upstream got a fresh bucket"
    );
    assert_eq!(
        up.count(),
        received + 2,
        "only `added` and the fresh bucket of `changed` reached the upstream"
    );
}
