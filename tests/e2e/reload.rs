//! Hot reload through the running server: new upstreams and routes, invalid files refused
//! with the old config serving, state of unchanged upstreams kept, changed ones fresh,
//! file-watch after an atomic rename, in-flight requests finishing on their old policy,
//! dedicated listeners started and stopped, no failed request while reloading under load, and
//! /metrics without the series of removed upstreams, endpoints and global limits.

use std::sync::Arc;
use std::time::Duration;

use crate::breaker::breaker_action;
use crate::support::binary::free_port;
use crate::support::client::{self, request};
use crate::support::metrics::check_with_promtool;
use crate::support::{Metrics, Reply, TestProxy, TestUpstream, empty};

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

/// /metrics as the admin listener serves it, checked by promtool when it is installed.
async fn scrape(proxy: &TestProxy) -> (Metrics, String) {
    let resp = client::get(&proxy.admin_url("/metrics")).await;
    let text = client::text(&resp).to_owned();
    check_with_promtool(&text).await;
    (Metrics::parse(&text), text)
}

#[tokio::test]
async fn a_removed_upstream_leaves_metrics_and_comes_back_at_zero_with_its_counters() {
    let a = TestUpstream::http1().await;
    let both = format!(
        "upstreams:\n{}{}",
        upstream("alpha", &a.url(), ""),
        upstream("beta", &a.url(), "")
    );
    let proxy = TestProxy::start_file(&both).await;
    assert_eq!(status(&proxy, "beta", "/").await, 200);
    breaker_action(&proxy, "beta", "force-open").await;
    let (m, _) = scrape(&proxy).await;
    let state = |m: &Metrics, name| m.value("rampart_circuit_breaker_state", &[("upstream", name)]);
    assert_eq!(state(&m, "beta"), Some(2.0));

    proxy.write_config(&format!("upstreams:\n{}", upstream("alpha", &a.url(), "")));
    proxy.app().reload().await.unwrap();
    let (m, text) = scrape(&proxy).await;
    assert!(
        !text.contains("upstream=\"beta\""),
        "beta's series are gone:\n{text}"
    );
    assert_eq!(state(&m, "alpha"), Some(0.0));
    assert_eq!(
        m.value("rampart_config_reloads_total", &[("result", "success")]),
        Some(1.0)
    );

    proxy.write_config(&both);
    proxy.app().reload().await.unwrap();
    let (m, _) = scrape(&proxy).await;
    assert_eq!(state(&m, "beta"), Some(0.0), "back, closed");
    let beta_200 = [("upstream", "beta"), ("code", "200")];
    assert_eq!(
        m.value("rampart_requests_total", &beta_200),
        Some(1.0),
        "its counter continues (a Prometheus rate sees no reset)"
    );
    assert_eq!(status(&proxy, "beta", "/").await, 200);
    let (m, _) = scrape(&proxy).await;
    assert_eq!(m.value("rampart_requests_total", &beta_200), Some(2.0));
}

#[tokio::test]
async fn a_reload_drops_the_series_of_removed_endpoints_and_global_limits() {
    let (a, b) = (TestUpstream::http1().await, TestUpstream::http1().await);
    // Nothing listens there: the global limiter stays in fallback (gauge 1).
    let nowhere = format!("redis://127.0.0.1:{}/0", free_port());
    let config = |endpoints: &str, limit: &str| {
        format!(
            "upstreams:\n  svc:\n    endpoints: [{endpoints}]\n    hosts: [svc]\n    circuit_breaker: {{ scope: endpoint }}\n{limit}"
        )
    };
    let two = format!("\"{}\", \"{}\"", a.url(), b.url());
    let limit = format!("    rate_limit: {{ rate: 10/s, global: {{ redis: \"{nowhere}\" }} }}\n");
    let proxy = TestProxy::start_file(&config(&two, &limit)).await;
    let endpoint = |m: &Metrics, url: &str| {
        let labels = [("upstream", "svc"), ("endpoint", url)];
        m.value("rampart_circuit_breaker_endpoint_state", &labels)
    };
    let fallback =
        |m: &Metrics| m.value("rampart_rate_limit_global_fallback", &[("upstream", "svc")]);
    let (m, _) = scrape(&proxy).await;
    assert_eq!(
        (endpoint(&m, &a.url()), endpoint(&m, &b.url())),
        (Some(0.0), Some(0.0))
    );
    assert_eq!(fallback(&m), Some(1.0));

    proxy.write_config(&config(&format!("\"{}\"", a.url()), ""));
    proxy.app().reload().await.unwrap();
    let (m, _) = scrape(&proxy).await;
    assert_eq!(endpoint(&m, &a.url()), Some(0.0));
    assert_eq!(endpoint(&m, &b.url()), None, "removed endpoint");
    assert_eq!(fallback(&m), None, "no global limit, no fallback to report");
    assert_eq!(
        m.value("rampart_circuit_breaker_state", &[("upstream", "svc")]),
        Some(0.0)
    );
}
