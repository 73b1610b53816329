//! Local rate limits through the running server: burst then 429 with Retry-After and the
//! draft RateLimit fields, wait mode, keyed buckets (header and client address), dry run,
//! per-route buckets, retries that never take tokens, and waiters bounded by the bulkhead.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use tokio::net::TcpSocket;
use tokio::time::Instant;

use crate::support::client::{self, request};
use crate::support::{Reply, TestProxy, TestUpstream, empty};

/// One upstream `svc` (host `svc`) with `rate_limit: {limit}` and more YAML in `extra`.
fn config(endpoint: &str, limit: &str, extra: &str) -> String {
    format!(
        "upstreams:\n  svc:\n    endpoints: [\"{endpoint}\"]\n    hosts: [svc]\n    rate_limit: {limit}\n{extra}"
    )
}

async fn send(
    proxy: &TestProxy,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Response<Bytes> {
    let mut req = request(method, &proxy.url(path)).header("host", "svc");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    client::collect(client::send(req.body(empty()).unwrap()).await.unwrap()).await
}

async fn get(proxy: &TestProxy) -> Response<Bytes> {
    send(proxy, "GET", "/r", &[]).await
}

/// GET from the source address `from` (a loopback alias such as 127.0.0.2).
async fn get_from(proxy: &TestProxy, from: [u8; 4]) -> Response<Bytes> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    let stream = socket.connect(proxy.addr).await.unwrap();
    let req = request("GET", "/r")
        .header("host", "svc")
        .body(empty())
        .unwrap();
    client::collect(client::send_over(stream, req).await.unwrap()).await
}

fn limited(proxy: &TestProxy, action: &str) -> f64 {
    proxy
        .metrics()
        .value(
            "rampart_rate_limited_total",
            &[("upstream", "svc"), ("action", action)],
        )
        .unwrap_or_else(|| panic!("rampart_rate_limited_total{{action={action}}} is registered"))
}

#[tokio::test]
async fn burst_then_429_with_retry_after_and_ratelimit_fields() {
    let up = TestUpstream::http1().await;
    let proxy = TestProxy::start(&config(&up.url(), "{ rate: 1/m, burst: 3 }", "")).await;
    let svc = proxy.app().router().get("svc").cloned().unwrap();
    assert_eq!(
        limited(&proxy, "rejected"),
        0.0,
        "series exist before traffic"
    );
    assert_eq!(svc.rate_limit_available(), Some(3));

    for _ in 0..3 {
        assert_eq!(get(&proxy).await.status(), 200);
    }
    assert_eq!(svc.rate_limit_available(), Some(0));
    let view = client::get(&proxy.admin_url("/admin/upstreams/svc")).await;
    assert_eq!(
        client::json(&view)["rate_limit"],
        serde_json::json!({"rate": "1/m", "burst": 3, "available": 0}),
        "the admin API shows the bucket"
    );
    let resp = get(&proxy).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(
        client::header(&resp, "x-rampart-error"),
        Some("rate_limited")
    );
    assert_eq!(client::header(&resp, "x-rampart-attempts"), Some("0"));
    let retry_after: u64 = client::header(&resp, "retry-after")
        .unwrap()
        .parse()
        .unwrap();
    assert!((59..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(
        client::header(&resp, "ratelimit-policy"),
        Some("\"default\";q=1;w=60;rampart-burst=3")
    );
    assert_eq!(
        client::header(&resp, "ratelimit"),
        Some(format!("\"default\";r=0;t={retry_after}").as_str())
    );
    let body = client::json(&resp);
    assert_eq!(body["error"], "rate_limited");
    assert_eq!(body["upstream"], "svc");
    let ms = body["retry_after_ms"].as_u64().unwrap();
    assert!((58_000..=60_000).contains(&ms), "{ms}");
    assert_eq!(
        up.count(),
        3,
        "the refused request never reached the upstream"
    );
    assert_eq!(limited(&proxy, "rejected"), 1.0);
}

#[tokio::test]
async fn wait_mode_delays_then_passes_and_refuses_a_wait_past_max_wait_at_once() {
    let up = TestUpstream::http1().await;
    let slow = "  slow:\n    endpoints: [\"URL\"]\n    hosts: [slow]\n    rate_limit: { rate: 1/m, burst: 1, mode: wait, max_wait: 250ms }\n";
    let limit = "{ rate: 10/s, burst: 1, mode: wait, max_wait: 250ms }";
    let proxy = TestProxy::start(&config(&up.url(), limit, &slow.replace("URL", &up.url()))).await;

    assert_eq!(get(&proxy).await.status(), 200);
    let started = Instant::now();
    assert_eq!(get(&proxy).await.status(), 200, "waited for the next token");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(50), "{waited:?}");
    assert_eq!(limited(&proxy, "delayed"), 1.0);
    let m = proxy.metrics();
    assert_eq!(
        m.value(
            "rampart_rate_limit_wait_seconds_count",
            &[("upstream", "svc")]
        ),
        Some(1.0)
    );

    let slow_get = |proxy: &TestProxy| {
        let req = request("GET", &proxy.url("/s")).header("host", "slow");
        client::send(req.body(empty()).unwrap())
    };
    assert_eq!(slow_get(&proxy).await.unwrap().status(), 200);
    let started = Instant::now();
    let resp = slow_get(&proxy).await.unwrap();
    assert_eq!(resp.status(), 429, "a minute's wait is past max_wait");
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "refused at once"
    );
}

#[tokio::test]
async fn header_keys_get_their_own_buckets_and_keyless_requests_share_one() {
    let up = TestUpstream::http1().await;
    let limit = "{ rate: 1/m, burst: 1, key: \"header:x-tenant\" }";
    let proxy = TestProxy::start(&config(&up.url(), limit, "")).await;
    let tenant = |t: &'static str| [("x-tenant", t)];
    assert_eq!(send(&proxy, "GET", "/", &tenant("a")).await.status(), 200);
    assert_eq!(send(&proxy, "GET", "/", &tenant("a")).await.status(), 429);
    assert_eq!(send(&proxy, "GET", "/", &tenant("b")).await.status(), 200);
    assert_eq!(get(&proxy).await.status(), 200);
    assert_eq!(
        get(&proxy).await.status(),
        429,
        "requests without the header share one bucket"
    );
}

#[tokio::test]
async fn client_ip_keys_separate_client_addresses() {
    let up = TestUpstream::http1().await;
    let limit = "{ rate: 1/m, burst: 1, key: client-ip }";
    let proxy = TestProxy::start(&config(&up.url(), limit, "")).await;
    assert_eq!(get_from(&proxy, [127, 0, 0, 2]).await.status(), 200);
    assert_eq!(get_from(&proxy, [127, 0, 0, 2]).await.status(), 429);
    assert_eq!(get_from(&proxy, [127, 0, 0, 3]).await.status(), 200);
}

#[tokio::test]
async fn dry_run_counts_what_it_would_limit_and_limits_nothing() {
    let up = TestUpstream::http1().await;
    let limit = "{ rate: 1/m, burst: 1, dry_run: true }";
    let proxy = TestProxy::start(&config(&up.url(), limit, "")).await;
    for _ in 0..4 {
        assert_eq!(get(&proxy).await.status(), 200);
    }
    assert_eq!(limited(&proxy, "dry_run"), 3.0);
    assert_eq!(limited(&proxy, "rejected"), 0.0);
}

#[tokio::test]
async fn a_route_with_its_own_rate_limit_has_its_own_bucket() {
    let up = TestUpstream::http1().await;
    let routes = "    routes:\n      - path_prefix: /charge\n        methods: [POST]\n        rate_limit: { rate: 1/m, burst: 2 }\n";
    let proxy = TestProxy::start(&config(&up.url(), "{ rate: 1/m, burst: 1 }", routes)).await;
    assert_eq!(get(&proxy).await.status(), 200);
    assert_eq!(get(&proxy).await.status(), 429);
    for expected in [200, 200, 429] {
        assert_eq!(
            send(&proxy, "POST", "/charge", &[]).await.status(),
            expected
        );
    }
    assert_eq!(
        send(&proxy, "GET", "/charge", &[]).await.status(),
        429,
        "GET does not match the POST route: the upstream's bucket applies"
    );
}

#[tokio::test]
async fn retries_never_take_tokens() {
    let up = TestUpstream::http1().await;
    up.push(Reply::status(503));
    up.push(Reply::status(503));
    let retry = "    retry: { attempts: 3, backoff: { strategy: fixed, base: 1ms, max: 1ms } }\n";
    let proxy = TestProxy::start(&config(&up.url(), "{ rate: 1/m, burst: 1 }", retry)).await;
    let resp = get(&proxy).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(client::header(&resp, "x-rampart-attempts"), Some("3"));
    assert_eq!(up.count(), 3);
    assert_eq!(get(&proxy).await.status(), 429, "one request, one token");
}

#[tokio::test]
async fn a_waiting_request_counts_against_the_bulkhead() {
    let up = TestUpstream::http1().await;
    up.set_default(Reply::ok("slow").delay(Duration::from_millis(400)));
    let limit = "{ rate: 1/s, burst: 1, mode: wait, max_wait: 2s }";
    let bulkhead = "    concurrency: { max_requests: 1 }\n";
    let proxy = TestProxy::start(&config(&up.url(), limit, bulkhead)).await;
    let first = tokio::spawn(client::send(
        request("GET", &proxy.url("/1"))
            .header("host", "svc")
            .body(empty())
            .unwrap(),
    ));
    up.wait_for(1).await;
    let resp = get(&proxy).await;
    assert_eq!(
        resp.status(),
        503,
        "it had to wait, and the one slot is taken"
    );
    assert_eq!(client::header(&resp, "x-rampart-error"), Some("overloaded"));
    assert_eq!(first.await.unwrap().unwrap().status(), 200);
}

#[tokio::test]
async fn buckets_survive_a_reload_that_leaves_the_policy_alone_and_reset_when_it_changes() {
    let up = TestUpstream::http1().await;
    let other = "  other:\n    endpoints: [\"URL\"]\n    hosts: [other]\n";
    let yaml =
        |limit: &str, extra: &str| config(&up.url(), limit, &extra.replace("URL", &up.url()));
    let proxy = TestProxy::start_file(&yaml("{ rate: 1/m, burst: 1 }", "")).await;
    assert_eq!(get(&proxy).await.status(), 200);
    assert_eq!(get(&proxy).await.status(), 429);

    // Another upstream is added; svc's policy is unchanged, so its empty bucket stays.
    proxy.write_config(&yaml("{ rate: 1/m, burst: 1 }", other));
    proxy.app().reload().await.unwrap();
    assert_eq!(get(&proxy).await.status(), 429);

    proxy.write_config(&yaml("{ rate: 1/m, burst: 2 }", other));
    proxy.app().reload().await.unwrap();
    assert_eq!(
        get(&proxy).await.status(),
        200,
        "a changed policy starts with a full bucket"
    );
}
