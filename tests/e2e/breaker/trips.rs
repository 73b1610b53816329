//! The three trip rules, Retry-After on `circuit_open`, recovery through probes, a failed
//! probe re-opening for longer, retries stopped by an opening breaker (also during their
//! backoff), and dry run.

use std::time::Duration;

use super::{
    error_code, failure_ratio, get, opened, rejected, scrape, state, transitions, upstream,
};
use crate::support::client;
use crate::support::{Reply, TestProxy, TestUpstream};

/// `svc` with one attempt per request and this breaker.
fn config(up: &TestUpstream, breaker: &str) -> String {
    format!(
        "upstreams:\n{}",
        upstream(
            "svc",
            &[up.url()],
            &format!("    retry: {{ attempts: 1 }}\n    circuit_breaker: {{ {breaker} }}\n")
        )
    )
}

#[tokio::test]
async fn consecutive_failures_open_it_and_circuit_open_carries_retry_after() {
    let up = TestUpstream::http1().await;
    up.set_default(Reply::status(503));
    let breaker = "consecutive_failures: 3, failure_rate: off, open_for: 2500ms";
    let proxy = TestProxy::start(&config(&up, breaker)).await;
    for _ in 0..3 {
        let resp = get(&proxy, "svc").await;
        assert_eq!((resp.status().as_u16(), error_code(&resp)), (503, ""));
    }
    let resp = get(&proxy, "svc").await;
    assert_eq!(resp.status(), 503);
    assert_eq!(error_code(&resp), "circuit_open");
    // 2.5 s minus a few milliseconds, in whole seconds rounded up.
    assert_eq!(client::header(&resp, "retry-after"), Some("3"));
    let body = client::json(&resp);
    assert_eq!(body["error"], "circuit_open");
    assert_eq!(body["upstream"], "svc");
    let ms = body["retry_after_ms"].as_u64().unwrap();
    assert!((2000..=2500).contains(&ms), "{ms}");
    assert_eq!(client::header(&resp, "x-rampart-attempts"), Some("0"));
    assert_eq!(
        up.count(),
        3,
        "the refused request never reached the upstream"
    );

    let m = scrape(&proxy).await;
    assert_eq!(state(&m, "svc"), Some(2.0));
    assert_eq!(opened(&m, "svc", "consecutive_failures"), 1.0);
    assert_eq!(transitions(&m, "svc", "closed", "open"), 1.0);
    assert_eq!(rejected(&m, "svc"), Some(1.0));
    assert_eq!(failure_ratio(&m, "svc"), Some(1.0));
}

#[tokio::test]
async fn the_failure_rate_opens_it_once_minimum_calls_are_reached() {
    let up = TestUpstream::http1().await;
    for _ in 0..4 {
        up.push(Reply::status(200));
        up.push(Reply::status(500));
    }
    let breaker = "consecutive_failures: 0, failure_rate: 50%, minimum_calls: 6, window: 10s";
    let proxy = TestProxy::start(&config(&up, breaker)).await;
    // S F S F S: 2/5, under minimum_calls; the sixth call (F) makes 3/6 = 50 %.
    for expected in [200, 500, 200, 500, 200] {
        assert_eq!(get(&proxy, "svc").await.status(), expected);
    }
    let m = scrape(&proxy).await;
    assert_eq!(state(&m, "svc"), Some(0.0));
    assert_eq!(failure_ratio(&m, "svc"), Some(0.4));
    assert_eq!(get(&proxy, "svc").await.status(), 500);
    assert_eq!(error_code(&get(&proxy, "svc").await), "circuit_open");
    let m = scrape(&proxy).await;
    assert_eq!(opened(&m, "svc", "failure_rate"), 1.0);
    assert_eq!(failure_ratio(&m, "svc"), Some(0.5));
}

#[tokio::test]
async fn slow_calls_open_it() {
    let up = TestUpstream::http1().await;
    let slow = || Reply::status(200).delay(Duration::from_millis(120));
    for reply in [Reply::status(200), Reply::status(200), slow(), slow()] {
        up.push(reply);
    }
    let breaker = "consecutive_failures: 0, failure_rate: off, minimum_calls: 4, slow_call: { duration: 100ms, rate: 50% }";
    let proxy = TestProxy::start(&config(&up, breaker)).await;
    for _ in 0..4 {
        assert_eq!(get(&proxy, "svc").await.status(), 200, "slow is not failed");
    }
    assert_eq!(error_code(&get(&proxy, "svc").await), "circuit_open");
    assert_eq!(opened(&scrape(&proxy).await, "svc", "slow_call_rate"), 1.0);
}

#[tokio::test]
async fn probes_close_it_again_and_a_failed_probe_reopens_for_longer() {
    let up = TestUpstream::http1().await;
    up.set_default(Reply::status(502));
    let breaker = "consecutive_failures: 2, failure_rate: off, open_for: 200ms, max_open_for: 1s, half_open_calls: 1, success_threshold: 2";
    let proxy = TestProxy::start(&config(&up, breaker)).await;
    for _ in 0..2 {
        assert_eq!(get(&proxy, "svc").await.status(), 502);
    }
    assert_eq!(state(&scrape(&proxy).await, "svc"), Some(2.0));

    // Open time passes; with no traffic the scrape itself finds the breaker half-open.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let m = scrape(&proxy).await;
    assert_eq!(state(&m, "svc"), Some(1.0));
    assert_eq!(transitions(&m, "svc", "open", "half_open"), 1.0);

    // The probe fails: open again, for twice as long (less up to 10 % jitter).
    assert_eq!(get(&proxy, "svc").await.status(), 502);
    let resp = get(&proxy, "svc").await;
    assert_eq!(error_code(&resp), "circuit_open");
    let ms = client::json(&resp)["retry_after_ms"].as_u64().unwrap();
    assert!((300..=400).contains(&ms), "re-opened for {ms} ms");
    let m = scrape(&proxy).await;
    assert_eq!(opened(&m, "svc", "probe_failed"), 1.0);
    assert_eq!(transitions(&m, "svc", "half_open", "open"), 1.0);

    // The upstream recovers: two successful probes, one at a time, close it.
    up.set_default(Reply::status(200));
    tokio::time::sleep(Duration::from_millis(ms)).await;
    let before = up.count();
    for _ in 0..2 {
        assert_eq!(get(&proxy, "svc").await.status(), 200);
    }
    assert_eq!(up.count(), before + 2);
    let m = scrape(&proxy).await;
    assert_eq!(state(&m, "svc"), Some(0.0));
    assert_eq!(transitions(&m, "svc", "half_open", "closed"), 1.0);
    for _ in 0..5 {
        assert_eq!(get(&proxy, "svc").await.status(), 200);
    }
}

#[tokio::test]
async fn a_breaker_that_opens_stops_the_retries() {
    let up = TestUpstream::http1().await;
    up.set_default(Reply::status(503));
    let yaml = format!(
        "upstreams:\n{}",
        upstream(
            "svc",
            &[up.url()],
            "    retry: { attempts: 4, backoff: { strategy: fixed, base: 1ms, max: 1ms } }\n    circuit_breaker: { consecutive_failures: 2, failure_rate: off }\n",
        )
    );
    let proxy = TestProxy::start(&yaml).await;
    let resp = get(&proxy, "svc").await;
    // The second try opened the breaker: the app gets that try's own 503.
    assert_eq!((resp.status().as_u16(), error_code(&resp)), (503, ""));
    assert_eq!(client::header(&resp, "x-rampart-attempts"), Some("2"));
    assert_eq!(up.count(), 2);
    let m = scrape(&proxy).await;
    assert_eq!(
        m.value(
            "rampart_retries_skipped_total",
            &[("upstream", "svc"), ("reason", "circuit_open")]
        ),
        Some(1.0)
    );
}

/// Found by the chaos suite: a retry refused because another request opened the breaker
/// during its backoff was counted twice, in `retries_total` and in `retries_skipped_total`.
#[tokio::test]
async fn a_retry_refused_after_its_backoff_is_skipped_not_made() {
    let up = TestUpstream::http1().await;
    up.set_default(Reply::status(503));
    let yaml = format!(
        "upstreams:\n{}",
        upstream(
            "svc",
            &[up.url()],
            "    retry: { attempts: 2, backoff: { strategy: fixed, base: 1s, max: 1s } }\n    circuit_breaker: { consecutive_failures: 2, failure_rate: off }\n",
        )
    );
    let proxy = std::sync::Arc::new(TestProxy::start(&yaml).await);
    // The first request fails once and waits out its 1 s backoff; the second one's failure
    // opens the breaker meanwhile (whichever of the two is recorded second opens it and is
    // not retried; the other one's retry is refused after its backoff).
    let first = tokio::spawn({
        let proxy = proxy.clone();
        async move { get(&proxy, "svc").await }
    });
    up.wait_for(1).await;
    let second = get(&proxy, "svc").await;
    let first = first.await.unwrap();
    let mut answers = [first, second].map(|r| (r.status().as_u16(), error_code(&r).to_owned()));
    answers.sort();
    assert_eq!(
        answers,
        [(503, String::new()), (503, "circuit_open".to_owned())]
    );
    assert_eq!(up.count(), 2);
    let m = scrape(&proxy).await;
    let retries = m.sum("rampart_retries_total", &[("upstream", "svc")]);
    assert_eq!(retries, 0.0, "no retry was made");
    assert_eq!(
        m.value(
            "rampart_retries_skipped_total",
            &[("upstream", "svc"), ("reason", "circuit_open")]
        ),
        Some(2.0)
    );
}

#[tokio::test]
async fn dry_run_tracks_the_state_and_refuses_nothing() {
    let up = TestUpstream::http1().await;
    up.set_default(Reply::status(500));
    let breaker = "consecutive_failures: 2, failure_rate: off, dry_run: true";
    let proxy = TestProxy::start(&config(&up, breaker)).await;
    for _ in 0..5 {
        let resp = get(&proxy, "svc").await;
        assert_eq!((resp.status().as_u16(), error_code(&resp)), (500, ""));
    }
    assert_eq!(up.count(), 5);
    let m = scrape(&proxy).await;
    assert_eq!(state(&m, "svc"), Some(2.0));
    assert_eq!(
        rejected(&m, "svc"),
        Some(3.0),
        "what would have been refused is counted"
    );
}
