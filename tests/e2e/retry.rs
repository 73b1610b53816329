//! Retries through the running server: exact receipt counts at the upstream, method safety,
//! Retry-After in both forms, deadline, budget under a failure storm, body replay, endpoint
//! choice, hedging, overrides.

use std::time::Duration;

use tokio::time::Instant;

use crate::support::binary::free_port;
use crate::support::client::{self, request};
use crate::support::{Reply, TestProxy, TestUpstream, empty, full};

/// One upstream `svc` on `endpoints` with extra `retry` fields. The breaker is off: these
/// failure storms are about retries (tests/e2e/breaker.rs has the two together).
fn config(endpoints: &[String], retry: &str) -> String {
    let list: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    format!(
        "upstreams:\n  svc:\n    endpoints: [{}]\n    hosts: [svc]\n    circuit_breaker: off\n    timeouts: {{ connect: 500ms, request: 5s, per_try: 2s }}\n    retry: {{ backoff: {{ strategy: fixed, base: 1ms, max: 1ms }}, {retry} }}\n",
        list.join(", ")
    )
}

async fn call(
    proxy: &TestProxy,
    method: &str,
    headers: &[(&str, &str)],
    body: Option<&'static [u8]>,
) -> http::Response<bytes::Bytes> {
    let mut req = request(method, &proxy.url("/r")).header("host", "svc");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body = body.map_or_else(empty, |b| full(bytes::Bytes::from_static(b)));
    client::collect(client::send(req.body(body).unwrap()).await.unwrap()).await
}

fn attempts(resp: &http::Response<bytes::Bytes>) -> &str {
    client::header(resp, "x-rampart-attempts").unwrap_or("")
}

#[tokio::test]
async fn two_503s_then_200_with_three_attempts_is_a_200_after_three_receipts() {
    let up = TestUpstream::http1().await;
    up.push(Reply::status(503));
    up.push(Reply::status(503));
    let proxy = TestProxy::start(&config(&[up.url()], "attempts: 3")).await;
    let resp = call(&proxy, "GET", &[], None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(up.count(), 3);
    assert_eq!(attempts(&resp), "3");
    let m = proxy.metrics();
    assert_eq!(
        m.value(
            "rampart_retries_total",
            &[("upstream", "svc"), ("reason", "status_503")]
        ),
        Some(2.0)
    );
    assert_eq!(
        m.value(
            "rampart_upstream_attempts_total",
            &[("upstream", "svc"), ("outcome", "http_error")]
        ),
        Some(2.0)
    );
    assert_eq!(
        m.value(
            "rampart_upstream_attempts_total",
            &[("upstream", "svc"), ("outcome", "success")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn with_two_attempts_the_app_gets_the_upstreams_own_last_503() {
    let up = TestUpstream::http1().await;
    up.push(Reply::status(503).body("first"));
    up.push(
        Reply::status(503)
            .header("x-from", "upstream")
            .body("second"),
    );
    let proxy = TestProxy::start(&config(&[up.url()], "attempts: 2")).await;
    let resp = call(&proxy, "GET", &[], None).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(client::text(&resp), "second");
    assert_eq!(client::header(&resp, "x-from"), Some("upstream"));
    assert!(
        client::header(&resp, "x-rampart-error").is_none(),
        "a real response is not a generated one"
    );
    assert_eq!(attempts(&resp), "2");
    assert_eq!(up.count(), 2);
}

#[tokio::test]
async fn post_is_never_duplicated_without_an_idempotency_key() {
    let up = TestUpstream::http1().await;
    up.set_default(Reply::status(503));
    let proxy = TestProxy::start(&config(&[up.url()], "attempts: 3")).await;
    for _ in 0..5 {
        let resp = call(&proxy, "POST", &[], Some(b"charge")).await;
        assert_eq!(resp.status(), 503);
        assert_eq!(attempts(&resp), "1");
    }
    assert_eq!(up.count(), 5, "each POST reached the upstream exactly once");
    let skipped = proxy.metrics().value(
        "rampart_retries_skipped_total",
        &[("upstream", "svc"), ("reason", "method")],
    );
    assert_eq!(skipped, Some(5.0));

    // With an Idempotency-Key the app declares the POST safe to repeat.
    let resp = call(
        &proxy,
        "POST",
        &[("idempotency-key", "k1")],
        Some(b"charge"),
    )
    .await;
    assert_eq!(resp.status(), 503);
    assert_eq!(attempts(&resp), "3");
    let received = up.received();
    assert_eq!(received.len(), 8);
    assert!(
        received[5..]
            .iter()
            .all(|r| r.body_text() == "charge" && r.header("idempotency-key") == Some("k1"))
    );
}

#[tokio::test]
async fn post_is_retried_after_a_connect_failure_on_another_endpoint() {
    let up = TestUpstream::http1().await;
    let closed = format!("http://127.0.0.1:{}", free_port());
    let proxy = TestProxy::start(&config(&[closed, up.url()], "attempts: 2")).await;
    for _ in 0..4 {
        let resp = call(&proxy, "POST", &[], Some(b"once")).await;
        assert_eq!(resp.status(), 200);
    }
    assert_eq!(
        up.count(),
        4,
        "every POST reached the live endpoint exactly once"
    );
    assert!(up.received().iter().all(|r| r.body_text() == "once"));
}

#[tokio::test]
async fn a_retry_avoids_the_endpoint_that_just_failed() {
    let bad = TestUpstream::http1().await;
    bad.set_default(Reply::status(502));
    let good = TestUpstream::http1().await;
    let proxy = TestProxy::start(&config(&[bad.url(), good.url()], "attempts: 2")).await;
    for _ in 0..10 {
        assert_eq!(call(&proxy, "GET", &[], None).await.status(), 200);
    }
    assert_eq!(good.count(), 10);
    assert!(bad.count() <= 10);
}

#[tokio::test]
async fn retry_after_in_seconds_is_waited_for() {
    let up = TestUpstream::http1().await;
    up.push(Reply::status(503).header("retry-after", "1"));
    let proxy = TestProxy::start(&config(&[up.url()], "attempts: 2")).await;
    let started = Instant::now();
    let resp = call(&proxy, "GET", &[], None).await;
    assert_eq!(resp.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn retry_after_as_an_http_date_is_waited_for() {
    let up = TestUpstream::http1().await;
    let when = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(2));
    up.push(Reply::status(429).header("retry-after", &when));
    let proxy = TestProxy::start(&config(&[up.url()], "attempts: 2, on: [429]")).await;
    let started = Instant::now();
    let resp = call(&proxy, "GET", &[], None).await;
    assert_eq!(resp.status(), 200);
    // HTTP-dates have one-second resolution: the wait is between 1 and 2 seconds.
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[tokio::test]
async fn a_retry_after_longer_than_the_max_returns_the_response_at_once() {
    let up = TestUpstream::http1().await;
    up.push(Reply::status(503).header("retry-after", "60"));
    let proxy = TestProxy::start(&config(
        &[up.url()],
        "attempts: 3, retry_after: { max: 10s }",
    ))
    .await;
    let started = Instant::now();
    let resp = call(&proxy, "GET", &[], None).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(client::header(&resp, "retry-after"), Some("60"));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(up.count(), 1);
    let m = proxy.metrics();
    assert_eq!(
        m.value(
            "rampart_retries_skipped_total",
            &[("upstream", "svc"), ("reason", "retry_after_too_long")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_backoff_that_would_cross_the_deadline_is_skipped() {
    let up = TestUpstream::http1().await;
    up.set_default(Reply::status(503));
    let yaml = format!(
        "upstreams:\n  svc:\n    endpoints: [\"{}\"]\n    hosts: [svc]\n    timeouts: {{ request: 300ms, per_try: 200ms }}\n    retry: {{ attempts: 3, backoff: {{ strategy: fixed, base: 500ms, max: 500ms }} }}\n",
        up.url()
    );
    let proxy = TestProxy::start(&yaml).await;
    let started = Instant::now();
    let resp = call(&proxy, "GET", &[], None).await;
    assert_eq!(
        resp.status(),
        503,
        "the last upstream answer, not a late 504"
    );
    assert!(started.elapsed() < Duration::from_millis(300));
    assert_eq!(up.count(), 1);
    let m = proxy.metrics();
    assert_eq!(
        m.value(
            "rampart_retries_skipped_total",
            &[("upstream", "svc"), ("reason", "deadline")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn the_request_deadline_cuts_a_hanging_upstream_with_504() {
    let up = TestUpstream::http1().await;
    up.set_default(Reply::hang());
    let yaml = format!(
        "upstreams:\n  svc:\n    endpoints: [\"{}\"]\n    hosts: [svc]\n    timeouts: {{ request: 400ms, per_try: 150ms }}\n    retry: {{ attempts: 5, backoff: {{ strategy: fixed, base: 1ms, max: 1ms }} }}\n",
        up.url()
    );
    let proxy = TestProxy::start(&yaml).await;
    let started = Instant::now();
    let resp = call(&proxy, "GET", &[], None).await;
    let took = started.elapsed();
    assert_eq!(resp.status(), 504);
    assert_eq!(
        client::header(&resp, "x-rampart-error"),
        Some("upstream_timeout")
    );
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    // 150 ms per try inside a 400 ms deadline: three tries fit.
    assert_eq!(attempts(&resp), "3");
    let m = proxy.metrics();
    assert_eq!(
        m.value(
            "rampart_upstream_attempts_total",
            &[("upstream", "svc"), ("outcome", "timeout")]
        ),
        Some(3.0)
    );
}

#[tokio::test]
async fn the_budget_caps_retries_in_a_failure_storm() {
    let up = TestUpstream::http1().await;
    up.set_default(Reply::status(503));
    let proxy = TestProxy::start(&config(
        &[up.url()],
        "attempts: 3, budget: { ratio: 20%, min_per_second: 10, window: 10s }",
    ))
    .await;
    let requests = 1000;
    let mut tasks = tokio::task::JoinSet::new();
    let url = proxy.url("/storm");
    for worker in 0..20 {
        let url = url.clone();
        tasks.spawn(async move {
            for _ in 0..requests / 20 {
                let req = request("GET", &url)
                    .header("host", "svc")
                    .body(empty())
                    .unwrap();
                let resp = client::collect(client::send(req).await.unwrap()).await;
                assert_eq!(resp.status(), 503, "worker {worker}");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let retries = up.count() - requests;
    // ratio × requests + floor × window.
    assert!(retries <= 200 + 10 * 10, "retries {retries}");
    let m = proxy.metrics();
    let refused = m
        .value(
            "rampart_retries_skipped_total",
            &[("upstream", "svc"), ("reason", "budget")],
        )
        .unwrap();
    // Every request had a retry due after its first 503: it was either refused once by the
    // budget (which ends the request) or made both retries.
    let both_retries = retries as f64 - (requests as f64 - refused);
    assert!(refused > 0.0 && refused <= requests as f64, "{refused}");
    assert!(
        both_retries >= 0.0 && (requests as f64 - refused) <= retries as f64,
        "refused {refused}, retries {retries}"
    );
    assert_eq!(
        m.value(
            "rampart_retries_total",
            &[("upstream", "svc"), ("reason", "status_503")]
        ),
        Some(retries as f64)
    );
}

#[tokio::test]
async fn small_bodies_are_replayed_and_large_ones_stream_once() {
    let up = TestUpstream::http1().await;
    let proxy = TestProxy::start(&config(&[up.url()], "attempts: 2, max_body_bytes: 1KiB")).await;

    up.push(Reply::status(503));
    let resp = call(&proxy, "PUT", &[], Some(&[b'a'; 512])).await;
    assert_eq!(resp.status(), 200);
    let received = up.received();
    assert_eq!(received.len(), 2);
    assert!(received.iter().all(|r| r.body_len == 512));

    up.push(Reply::status(503));
    let resp = call(&proxy, "PUT", &[], Some(&[b'b'; 4096])).await;
    assert_eq!(resp.status(), 503, "not retried, not failed");
    assert_eq!(up.count(), 3);
    assert_eq!(up.last().body_len, 4096, "the large body arrived whole");
    let m = proxy.metrics();
    assert_eq!(
        m.value(
            "rampart_retries_skipped_total",
            &[("upstream", "svc"), ("reason", "body_too_large")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn the_attempts_header_lowers_attempts_and_is_not_forwarded() {
    let up = TestUpstream::http1().await;
    up.set_default(Reply::status(503));
    let proxy = TestProxy::start(&config(&[up.url()], "attempts: 3")).await;
    let resp = call(&proxy, "GET", &[("x-rampart-attempts", "1")], None).await;
    assert_eq!(attempts(&resp), "1");
    assert_eq!(up.count(), 1);
    assert!(up.last().header("x-rampart-attempts").is_none());
    let resp = call(&proxy, "GET", &[("x-rampart-attempts", "0")], None).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(
        client::header(&resp, "x-rampart-error"),
        Some("bad_request")
    );
}

#[tokio::test]
async fn a_route_can_turn_retries_off() {
    let up = TestUpstream::http1().await;
    up.set_default(Reply::status(503));
    let yaml = format!(
        "{}    routes:\n      - path_prefix: /once\n        retry: {{ attempts: 1 }}\n",
        config(&[up.url()], "attempts: 3")
    );
    let proxy = TestProxy::start(&yaml).await;
    let req = request("GET", &proxy.url("/once/x"))
        .header("host", "svc")
        .body(empty())
        .unwrap();
    let resp = client::collect(client::send(req).await.unwrap()).await;
    assert_eq!(attempts(&resp), "1");
    let resp = call(&proxy, "GET", &[], None).await;
    assert_eq!(attempts(&resp), "3");
    assert_eq!(up.count(), 4);
}

#[tokio::test]
async fn a_hedge_wins_against_a_slow_endpoint() {
    let slow = TestUpstream::http1().await;
    slow.set_default(Reply::echo().delay(Duration::from_millis(800)));
    let fast = TestUpstream::http1().await;
    let yaml = format!(
        "upstreams:\n  svc:\n    endpoints: [\"{}\", \"{}\"]\n    hosts: [svc]\n    load_balancing: round_robin\n    retry: {{ attempts: 2, hedge: {{ delay: 50ms }} }}\n",
        slow.url(),
        fast.url()
    );
    let proxy = TestProxy::start(&yaml).await;
    let started = Instant::now();
    for _ in 0..4 {
        assert_eq!(call(&proxy, "GET", &[], None).await.status(), 200);
    }
    // Without hedging, the two requests that start on the slow endpoint take 800 ms each.
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "{:?}",
        started.elapsed()
    );
    let m = proxy.metrics();
    let won = m
        .value(
            "rampart_hedges_total",
            &[("upstream", "svc"), ("result", "won")],
        )
        .unwrap();
    assert!(won >= 2.0, "{won}");
    assert_eq!(fast.count(), 4);
}

#[tokio::test]
async fn the_timeout_header_shortens_the_deadline_and_cannot_lengthen_it() {
    let up = TestUpstream::http1().await;
    up.set_default(Reply::hang());
    let yaml = format!(
        "upstreams:\n  svc:\n    endpoints: [\"{}\"]\n    hosts: [svc]\n    timeouts: {{ request: 600ms, per_try: 600ms }}\n    retry: {{ attempts: 1 }}\n",
        up.url()
    );
    let proxy = TestProxy::start(&yaml).await;

    let started = Instant::now();
    let resp = call(&proxy, "GET", &[("x-rampart-timeout-ms", "100")], None).await;
    let took = started.elapsed();
    assert_eq!(resp.status(), 504);
    assert!(
        took >= Duration::from_millis(100) && took < Duration::from_millis(500),
        "the 100 ms override bounds the request: {took:?}"
    );

    // A larger value is capped at the configured 600 ms.
    let started = Instant::now();
    let resp = call(&proxy, "GET", &[("x-rampart-timeout-ms", "60000")], None).await;
    let took = started.elapsed();
    assert_eq!(resp.status(), 504);
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_millis(2000),
        "capped at the configured request timeout: {took:?}"
    );
    assert!(up.last().header("x-rampart-timeout-ms").is_none());
}

/// Found by the chaos suite: a hedged request answered before the hedge delay reported
/// `x-rampart-attempts: 2` for its one try, and lost one of its retries to the hedge that
/// never went out.
#[tokio::test]
async fn a_hedge_that_never_went_out_is_not_a_try() {
    let a = TestUpstream::http1().await;
    let b = TestUpstream::http1().await;
    let yaml = format!(
        "upstreams:\n  svc:\n    endpoints: [\"{}\", \"{}\"]\n    hosts: [svc]\n    retry: {{ attempts: 3, backoff: {{ strategy: fixed, base: 1ms, max: 1ms }}, hedge: {{ delay: 500ms }} }}\n",
        a.url(),
        b.url()
    );
    let proxy = TestProxy::start(&yaml).await;
    let resp = call(&proxy, "GET", &[], None).await;
    assert_eq!((resp.status().as_u16(), attempts(&resp)), (200, "1"));
    assert_eq!(a.count() + b.count(), 1);

    // Every try answers 503 at once: three tries, the last 503 passed through.
    a.set_default(Reply::status(503));
    b.set_default(Reply::status(503));
    let resp = call(&proxy, "GET", &[], None).await;
    assert_eq!((resp.status().as_u16(), attempts(&resp)), (503, "3"));
    assert_eq!(a.count() + b.count(), 4);
    let m = proxy.metrics();
    let up = [("upstream", "svc")];
    assert_eq!(m.sum("rampart_upstream_attempts_total", &up), 4.0);
    assert_eq!(m.sum("rampart_retries_total", &up), 2.0);
    assert_eq!(m.sum("rampart_hedges_total", &up), 0.0);
}
