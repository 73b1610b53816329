//! Endpoint scope (outlier ejection): a failing endpoint is ejected while the others serve,
//! never more than `max_ejection` at once, and the upstream is open only when every
//! endpoint is.

use super::{admin, error_code, get, rejected, scrape, state, upstream};
use crate::support::{Reply, TestProxy, TestUpstream};

fn config(endpoints: &[String], breaker: &str) -> String {
    format!(
        "upstreams:\n{}",
        upstream(
            "svc",
            endpoints,
            &format!(
                "    retry: {{ attempts: 3, backoff: {{ strategy: fixed, base: 1ms, max: 1ms }} }}\n    circuit_breaker: {{ scope: endpoint, consecutive_failures: 2, failure_rate: off, open_for: 10s, {breaker} }}\n"
            )
        )
    )
}

#[tokio::test]
async fn one_failing_endpoint_of_three_is_ejected_without_a_client_error() {
    let bad = TestUpstream::http1().await;
    bad.set_default(Reply::status(503));
    let (a, b) = (TestUpstream::http1().await, TestUpstream::http1().await);
    let proxy =
        TestProxy::start(&config(&[bad.url(), a.url(), b.url()], "max_ejection: 50%")).await;
    for _ in 0..30 {
        let resp = get(&proxy, "svc").await;
        assert_eq!(resp.status(), 200, "the retry went to a healthy endpoint");
    }
    assert_eq!(bad.count(), 2, "ejected after its second failure");
    assert_eq!(a.count() + b.count(), 30);

    let m = scrape(&proxy).await;
    let endpoint = |url: &str| {
        m.value(
            "rampart_circuit_breaker_endpoint_state",
            &[("upstream", "svc"), ("endpoint", url)],
        )
    };
    assert_eq!(endpoint(&bad.url()), Some(2.0));
    assert_eq!(endpoint(&a.url()), Some(0.0));
    assert_eq!(
        state(&m, "svc"),
        Some(0.0),
        "the upstream as a whole is not open"
    );
    assert_eq!(super::opened(&m, "svc", "consecutive_failures"), 1.0);

    let (status, view) = admin(&proxy, "GET", "/admin/upstreams/svc", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(view["breaker"]["scope"], "endpoint");
    assert_eq!(view["breaker"]["state"], "closed");
    assert_eq!(view["breaker"]["ejected"], 1);
    let endpoints = view["endpoints"].as_array().unwrap();
    assert_eq!(endpoints[0]["state"], "ejected");
    assert_eq!(endpoints[0]["breaker"]["state"], "open");
    assert_eq!(endpoints[1]["state"], "healthy");
    assert_eq!(endpoints[1]["breaker"]["state"], "closed");
}

#[tokio::test]
async fn max_ejection_keeps_failing_endpoints_in_rotation_beyond_the_cap() {
    let (bad1, bad2) = (TestUpstream::http1().await, TestUpstream::http1().await);
    bad1.set_default(Reply::status(503));
    bad2.set_default(Reply::status(503));
    let good = TestUpstream::http1().await;
    let proxy = TestProxy::start(&config(
        &[bad1.url(), bad2.url(), good.url()],
        "max_ejection: 50%",
    ))
    .await;
    for _ in 0..30 {
        assert_eq!(get(&proxy, "svc").await.status(), 200);
    }
    let (_, view) = admin(&proxy, "GET", "/admin/upstreams/svc", None, None).await;
    assert_eq!(view["breaker"]["ejected"], 1, "50 % of 3 endpoints is one");
    let states: Vec<&str> = view["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states.iter().filter(|s| **s == "ejected").count(),
        1,
        "{states:?}"
    );
    assert!(
        bad1.count() + bad2.count() > 4,
        "the second bad endpoint stayed in rotation"
    );
}

#[tokio::test]
async fn the_upstream_is_open_when_every_endpoint_is() {
    let (x, y) = (TestUpstream::http1().await, TestUpstream::http1().await);
    x.set_default(Reply::status(503));
    y.set_default(Reply::status(503));
    let proxy = TestProxy::start(&config(&[x.url(), y.url()], "max_ejection: 100%")).await;
    for _ in 0..2 {
        assert_eq!(get(&proxy, "svc").await.status(), 503);
    }
    let resp = get(&proxy, "svc").await;
    assert_eq!(error_code(&resp), "circuit_open");
    assert_eq!(x.count() + y.count(), 4);
    let m = scrape(&proxy).await;
    assert_eq!(state(&m, "svc"), Some(2.0));
    assert_eq!(rejected(&m, "svc"), Some(1.0));
}
