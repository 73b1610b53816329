//! Upstream connection pooling through the running server: keep-alive reuse across message
//! shapes (bodies, HEAD, 204), one connection per concurrent request and reuse after, one
//! shared HTTP/2 connection, a connection the upstream closes replaced without a failed try,
//! and idle connections closed after `timeouts.idle`.

use std::time::Duration;

use tokio::time::Instant;

use crate::support::client::{self, request};
use crate::support::{Reply, TestProxy, TestUpstream, empty};

fn config(endpoint: &str, extra: &str) -> String {
    format!(
        "upstreams:\n  svc:\n    endpoints: [\"{endpoint}\"]\n    hosts: [svc]\n    retry: {{ attempts: 1 }}\n{extra}"
    )
}

async fn call(proxy: &TestProxy, method: &str) -> http::Response<bytes::Bytes> {
    let req = request(method, &proxy.url("/p"))
        .header("host", "svc")
        .body(empty())
        .unwrap();
    client::collect(client::send(req).await.unwrap()).await
}

fn failed_tries(proxy: &TestProxy) -> f64 {
    let m = proxy.metrics();
    ["connect_error", "reset", "timeout"]
        .iter()
        .map(|o| {
            m.value(
                "rampart_upstream_attempts_total",
                &[("upstream", "svc"), ("outcome", o)],
            )
            .unwrap_or(0.0)
        })
        .sum()
}

#[tokio::test]
async fn sequential_requests_of_every_shape_reuse_one_connection() {
    let up = TestUpstream::http1().await;
    let proxy = TestProxy::start(&config(&up.url(), "")).await;
    for round in 0..5 {
        up.push(Reply::ok("body"));
        up.push(Reply::stream(256 * 1024));
        up.push(Reply::status(204));
        up.push(Reply::ok("").header("content-length", "0"));
        assert_eq!(
            call(&proxy, "GET").await.body().as_ref(),
            b"body",
            "{round}"
        );
        assert_eq!(call(&proxy, "GET").await.body().len(), 256 * 1024);
        assert_eq!(call(&proxy, "GET").await.status(), 204);
        assert_eq!(call(&proxy, "GET").await.status(), 200);
        let head = call(&proxy, "HEAD").await;
        assert_eq!(head.status(), 200);
        assert!(head.body().is_empty());
    }
    assert_eq!(up.count(), 25);
    assert_eq!(
        up.connections(),
        1,
        "every exchange reused the first connection"
    );
}

#[tokio::test]
async fn concurrent_requests_get_a_connection_each_and_reuse_them_after() {
    let up = TestUpstream::http1().await;
    up.set_default(Reply::ok("slow").delay(Duration::from_millis(100)));
    let proxy = TestProxy::start(&config(&up.url(), "")).await;
    for wave in 0..2 {
        let calls: Vec<_> = (0..6).map(|_| call(&proxy, "GET")).collect();
        for resp in futures_util::future::join_all(calls).await {
            assert_eq!(resp.status(), 200, "wave {wave}");
        }
    }
    assert_eq!(up.count(), 12);
    assert_eq!(
        up.connections(),
        6,
        "the second wave reused the first wave's connections"
    );
}

#[tokio::test]
async fn an_http2_upstream_shares_one_connection() {
    let up = TestUpstream::h2c().await;
    up.set_default(Reply::ok("h2").delay(Duration::from_millis(50)));
    let proxy = TestProxy::start(&config(&up.url(), "    protocol: http2\n")).await;
    let calls: Vec<_> = (0..8).map(|_| call(&proxy, "GET")).collect();
    for resp in futures_util::future::join_all(calls).await {
        assert_eq!(resp.status(), 200);
    }
    for _ in 0..3 {
        assert_eq!(call(&proxy, "GET").await.status(), 200);
    }
    assert_eq!(
        up.connections(),
        1,
        "concurrent first requests wait for one connection"
    );
    assert_eq!(up.count(), 11);
}

#[tokio::test]
async fn a_connection_the_upstream_closes_is_replaced_without_a_failed_try() {
    let up = TestUpstream::http1().await;
    up.set_default(Reply::ok("bye").header("connection", "close"));
    let proxy = TestProxy::start(&config(&up.url(), "")).await;
    for _ in 0..10 {
        assert_eq!(call(&proxy, "GET").await.status(), 200);
    }
    assert_eq!(up.connections(), 10, "a closed connection is never reused");
    assert_eq!(failed_tries(&proxy), 0.0);
}

#[tokio::test]
async fn idle_connections_close_after_the_idle_timeout() {
    let up = TestUpstream::http1().await;
    let proxy = TestProxy::start(&config(&up.url(), "    timeouts: { idle: 200ms }\n")).await;
    assert_eq!(call(&proxy, "GET").await.status(), 200);
    let svc = proxy.app().router().get("svc").cloned().unwrap();
    let pool = svc.endpoints()[0].pool.clone();
    assert_eq!(pool.idle_count(), 1, "the connection went back to the pool");

    // No event marks the expiry, so poll within a bound well past the timeout.
    let started = Instant::now();
    while pool.idle_count() > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "still idle after 3 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(call(&proxy, "GET").await.status(), 200);
    assert_eq!(
        up.connections(),
        2,
        "a new connection after the idle one closed"
    );
}
