//! Hot reload through the running server: new upstreams and routes, invalid files refused
//! with the old config serving, state of unchanged upstreams kept, changed ones fresh,
//! file-watch after an atomic rename, in-flight requests finishing on their old policy,
//! dedicated listeners started and stopped, and no failed request while reloading under load.

use std::sync::Arc;
use std::time::Duration;

use crate::support::client::{self, request};
use crate::support::{Reply, TestProxy, TestUpstream, empty};

fn upstream(name: &str, url: &str, extra: &str) -> String {
    format!("  {name}:\n    endpoints: [\"{url}\"]\n    hosts: [{name}]\n{extra}")
}

async fn status(proxy: &TestProxy, host: &str, path: &str) -> u16 {
    let req = request("GET", &proxy.url(path))
        .header("host", host)
        .body(empty())
        .unwrap();
    client::collect(client::send(req).await.unwrap())
        .await
        .status()
        .as_u16()
}

async fn admin_reload(proxy: &TestProxy) -> (u16, serde_json::Value) {
    let req = request("POST", &proxy.admin_url("/admin/reload"))
        .body(empty())
        .unwrap();
    let resp = client::collect(client::send(req).await.unwrap()).await;
    (resp.status().as_u16(), client::json(&resp))
}

async fn eventually(within: Duration, mut condition: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if condition().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

#[tokio::test]
async fn a_reload_adds_an_upstream_and_a_route_and_keeps_unchanged_upstreams() {
    let a = TestUpstream::http1().await;
    let b = TestUpstream::http1().await;
    let one = format!("upstreams:\n{}", upstream("alpha", &a.url(), ""));
    let proxy = TestProxy::start_file(&one).await;
    assert_eq!(status(&proxy, "beta", "/").await, 404);
    let alpha_before = proxy.app().router().get("alpha").unwrap().clone();

    let two = format!(
        "upstreams:\n{}{}",
        upstream("alpha", &a.url(), ""),
        upstream(
            "beta",
            &b.url(),
            "    routes:\n      - path_prefix: /once\n        retry: { attempts: 1 }\n"
        )
    );
    proxy.write_config(&two);
    let (code, body) = admin_reload(&proxy).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["added"], serde_json::json!(["beta"]));
    assert_eq!(body["unchanged"], serde_json::json!(["alpha"]));
    assert_eq!(status(&proxy, "beta", "/once").await, 200);
    assert_eq!(b.count(), 1);
    let alpha_after = proxy.app().router().get("alpha").unwrap().clone();
    assert!(
        Arc::ptr_eq(&alpha_before, &alpha_after),
        "unchanged upstream reused with its state"
    );
    let m = proxy.metrics();
    assert_eq!(
        m.value("rampart_config_reloads_total", &[("result", "success")]),
        Some(1.0)
    );
    assert_eq!(
        m.value("rampart_circuit_breaker_state", &[("upstream", "beta")]),
        Some(0.0)
    );
}

#[tokio::test]
async fn an_invalid_file_is_refused_and_the_old_config_keeps_serving() {
    let a = TestUpstream::http1().await;
    let good = format!("upstreams:\n{}", upstream("alpha", &a.url(), ""));
    let proxy = TestProxy::start_file(&good).await;
    assert_eq!(
        proxy
            .metrics()
            .value("rampart_config_reloads_total", &[("result", "failure")]),
        Some(0.0),
        "the failure series exists before the first failure, so alerts see it rise"
    );
    proxy.write_config(
        "upstreams:\n  alpha:\n    endpoints: []\n    retry: { backoff: { base: fast } }\n",
    );
    let (code, body) = admin_reload(&proxy).await;
    assert_eq!(code, 400);
    assert_eq!(body["result"], "failure");
    let errors = body["errors"].as_array().unwrap();
    assert!(
        errors.iter().any(|e| e
            .as_str()
            .unwrap()
            .contains("upstreams.alpha.retry.backoff.base")),
        "{body}"
    );
    assert_eq!(
        status(&proxy, "alpha", "/").await,
        200,
        "old config still serving"
    );
    let m = proxy.metrics();
    assert_eq!(
        m.value("rampart_config_reloads_total", &[("result", "failure")]),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_changed_upstream_gets_fresh_state() {
    let a = TestUpstream::http1().await;
    let proxy =
        TestProxy::start_file(&format!("upstreams:\n{}", upstream("alpha", &a.url(), ""))).await;
    let before = proxy.app().router().get("alpha").unwrap().clone();
    proxy.write_config(&format!(
        "upstreams:\n{}",
        upstream("alpha", &a.url(), "    timeouts: { request: 30s }\n")
    ));
    let summary = proxy.app().reload().await.unwrap();
    assert_eq!(summary.changed, vec!["alpha".to_owned()]);
    let after = proxy.app().router().get("alpha").unwrap().clone();
    assert!(!Arc::ptr_eq(&before, &after));
    assert_eq!(after.policy().timeouts.request, Duration::from_secs(30));
}

#[tokio::test]
async fn the_file_watch_reloads_after_an_atomic_rename() {
    let a = TestUpstream::http1().await;
    let b = TestUpstream::http1().await;
    let proxy =
        TestProxy::start_file(&format!("upstreams:\n{}", upstream("alpha", &a.url(), ""))).await;
    proxy.write_config(&format!(
        "upstreams:\n{}{}",
        upstream("alpha", &a.url(), ""),
        upstream("beta", &b.url(), "")
    ));
    let routed = eventually(Duration::from_secs(5), async || {
        status(&proxy, "beta", "/").await == 200
    })
    .await;
    assert!(
        routed,
        "beta became routable without SIGHUP or the admin API"
    );
}

#[tokio::test]
async fn a_request_in_flight_finishes_on_the_policy_it_started_with() {
    let old = TestUpstream::http1().await;
    old.set_default(Reply::ok("old").delay(Duration::from_millis(400)));
    let new = TestUpstream::http1().await;
    let proxy = TestProxy::start_file(&format!(
        "upstreams:\n{}",
        upstream("alpha", &old.url(), "")
    ))
    .await;
    let url = proxy.url("/slow");
    let in_flight = tokio::spawn(async move {
        let req = request("GET", &url)
            .header("host", "alpha")
            .body(empty())
            .unwrap();
        client::collect(client::send(req).await.unwrap()).await
    });
    old.wait_for(1).await;
    proxy.write_config(&format!(
        "upstreams:\n{}",
        upstream("alpha", &new.url(), "")
    ));
    proxy.app().reload().await.unwrap();
    let resp = in_flight.await.unwrap();
    assert_eq!((resp.status().as_u16(), client::text(&resp)), (200, "old"));
    assert_eq!(status(&proxy, "alpha", "/").await, 200);
    assert_eq!(new.count(), 1, "new requests use the new endpoint");
}

#[tokio::test]
async fn dedicated_listeners_start_and_stop_with_reloads() {
    let a = TestUpstream::http1().await;
    let proxy =
        TestProxy::start_file(&format!("upstreams:\n{}", upstream("alpha", &a.url(), ""))).await;
    assert!(proxy.app().dedicated_addr("alpha").is_none());
    proxy.write_config(&format!(
        "upstreams:\n{}",
        upstream("alpha", &a.url(), "    listen: 127.0.0.1:0\n")
    ));
    proxy.app().reload().await.unwrap();
    let addr = proxy.dedicated("alpha");
    let resp = client::get(&format!("http://{addr}/via-dedicated")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(a.last().path(), "/via-dedicated");

    proxy.write_config(&format!("upstreams:\n{}", upstream("alpha", &a.url(), "")));
    proxy.app().reload().await.unwrap();
    assert!(proxy.app().dedicated_addr("alpha").is_none());
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "removed listener no longer accepts"
    );
}

#[tokio::test]
async fn reloading_under_load_fails_no_request() {
    let a = TestUpstream::http1().await;
    let proxy =
        TestProxy::start_file(&format!("upstreams:\n{}", upstream("alpha", &a.url(), ""))).await;
    let url = proxy.url("/load");
    let mut load = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let url = url.clone();
        load.spawn(async move {
            let mut codes = Vec::new();
            for _ in 0..100 {
                let req = request("GET", &url)
                    .header("host", "alpha")
                    .body(empty())
                    .unwrap();
                codes.push(
                    client::collect(client::send(req).await.unwrap())
                        .await
                        .status()
                        .as_u16(),
                );
            }
            codes
        });
    }
    for i in 0..10 {
        let request_timeout = format!("    timeouts: {{ request: {}s }}\n", 10 + i);
        proxy.write_config(&format!(
            "upstreams:\n{}",
            upstream("alpha", &a.url(), &request_timeout)
        ));
        proxy.app().reload().await.unwrap();
    }
    while let Some(codes) = load.join_next().await {
        assert!(codes.unwrap().iter().all(|c| *c == 200));
    }
    assert_eq!(a.count(), 800);
}
