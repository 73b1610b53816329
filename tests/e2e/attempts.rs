//! `rampart_upstream_attempts_total` counts every try once, the ones that ended without an
//! outcome of the endpoint's included (`outcome="cancelled"`: the try a hedge beat, a try
//! whose app went away or whose app's body broke), so it agrees with `x-rampart-attempts` and
//! with what the endpoints received. Found by the chaos suite and the soak, where such tries
//! went uncounted.

use std::time::Duration;

use tokio::time::Instant;

use crate::support::client::{self, request};
use crate::support::{Metrics, Reply, TestProxy, TestUpstream, empty};

fn outcome(m: &Metrics, outcome: &str) -> f64 {
    m.sum(
        "rampart_upstream_attempts_total",
        &[("upstream", "svc"), ("outcome", outcome)],
    )
}

#[tokio::test]
async fn the_try_a_hedge_beat_counts_as_cancelled() {
    let slow = TestUpstream::http1().await;
    slow.set_default(Reply::hang());
    let fast = TestUpstream::http1().await;
    let yaml = format!(
        "upstreams:\n  svc:\n    endpoints: [\"{}\", \"{}\"]\n    hosts: [svc]\n    load_balancing: round_robin\n    retry: {{ attempts: 2, hedge: {{ delay: 50ms }} }}\n",
        slow.url(),
        fast.url()
    );
    let proxy = TestProxy::start(&yaml).await;
    // The requests that start on the hung endpoint get a hedge, which wins.
    let (mut tries, mut hedged) = (0, 0);
    for _ in 0..4 {
        let req = request("GET", &proxy.url("/x"))
            .header("host", "svc")
            .body(empty())
            .unwrap();
        let resp = client::collect(client::send(req).await.unwrap()).await;
        assert_eq!(resp.status(), 200);
        let n: u32 = client::header(&resp, "x-rampart-attempts")
            .unwrap()
            .parse()
            .unwrap();
        tries += n;
        hedged += u32::from(n == 2);
    }
    assert!(hedged > 0, "no request started on the hung endpoint");
    assert_eq!(slow.count(), hedged as usize);
    assert_eq!(fast.count(), 4);
    let m = proxy.metrics();
    assert_eq!(outcome(&m, "success"), 4.0);
    assert_eq!(
        outcome(&m, "cancelled"),
        f64::from(hedged),
        "the hung tries hedges beat"
    );
    let all = m.sum("rampart_upstream_attempts_total", &[("upstream", "svc")]);
    assert_eq!(all, f64::from(tries));
}

#[tokio::test]
async fn a_try_whose_app_went_away_counts_as_cancelled() {
    let up = TestUpstream::http1().await;
    up.set_default(Reply::hang());
    let yaml = format!(
        "upstreams:\n  svc:\n    endpoints: [\"{}\"]\n    hosts: [svc]\n",
        up.url()
    );
    let proxy = TestProxy::start(&yaml).await;
    let req = request("GET", &proxy.url("/x"))
        .header("host", "svc")
        .body(empty())
        .unwrap();
    let sent = tokio::spawn(client::send(req));
    up.wait_for(1).await;
    // The app gives up: its connection closes, and the proxy drops the request.
    sent.abort();
    let deadline = Instant::now() + Duration::from_secs(5);
    while outcome(&proxy.metrics(), "cancelled") == 0.0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let m = proxy.metrics();
    assert_eq!(outcome(&m, "cancelled"), 1.0);
    let all = m.sum("rampart_upstream_attempts_total", &[("upstream", "svc")]);
    assert_eq!(all, 1.0, "no other outcome for that try");
    assert_eq!(
        m.value("rampart_requests_in_flight", &[("upstream", "svc")]),
        Some(0.0)
    );
}

#[tokio::test]
async fn a_try_cut_short_by_the_apps_broken_body_counts_as_cancelled() {
    let up = TestUpstream::http1().await;
    // One try: the body streams to the endpoint instead of being buffered first.
    let yaml = format!(
        "upstreams:\n  svc:\n    endpoints: [\"{}\"]\n    hosts: [svc]\n    retry: {{ attempts: 1 }}\n",
        up.url()
    );
    let proxy = TestProxy::start(&yaml).await;
    let request = "POST /x HTTP/1.1\r\nhost: svc\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n";
    let answer = client::raw(proxy.addr, request.as_bytes(), Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let m = proxy.metrics();
    assert_eq!(
        outcome(&m, "cancelled"),
        1.0,
        "the app's, not the endpoint's"
    );
    let all = m.sum("rampart_upstream_attempts_total", &[("upstream", "svc")]);
    assert_eq!(all, 1.0);
}
