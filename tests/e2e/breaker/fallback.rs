//! Fallback: while a breaker is open, requests go to the fallback upstream (through its own
//! policies), along a chain; the fallback is found in the live routing table, so a reload
//! that replaces it takes effect, and an unchanged upstream keeps its (forced) breaker state.

use super::{breaker_action, error_code, get, rejected, upstream};
use crate::support::{Reply, TestProxy, TestUpstream};

#[tokio::test]
async fn an_open_breaker_sends_requests_to_the_fallback() {
    let primary = TestUpstream::http1().await;
    primary.set_default(Reply::status(503));
    let backup = TestUpstream::http1().await;
    backup.set_default(Reply::ok("from backup"));
    // The backup's own retry policy (the default 3 attempts) applies to what it takes over.
    backup.push(Reply::status(503));
    let yaml = format!(
        "upstreams:\n{}{}",
        upstream(
            "primary",
            &[primary.url()],
            "    retry: { attempts: 1 }\n    circuit_breaker: { consecutive_failures: 2, failure_rate: off, open_for: 10s }\n    fallback: backup\n",
        ),
        upstream("backup", &[backup.url()], "")
    );
    let proxy = TestProxy::start(&yaml).await;
    for _ in 0..2 {
        assert_eq!(get(&proxy, "primary").await.status(), 503);
    }
    for attempts in ["2", "1", "1"] {
        let resp = get(&proxy, "primary").await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.body().as_ref(), b"from backup");
        assert_eq!(
            crate::support::client::header(&resp, "x-rampart-attempts"),
            Some(attempts)
        );
    }
    assert_eq!((primary.count(), backup.count()), (2, 4));
    assert_eq!(backup.last().path(), "/x");
    let m = super::scrape(&proxy).await;
    // The fallback's own series count the tries; the refusals stay on the primary.
    assert_eq!(
        m.value(
            "rampart_upstream_attempts_total",
            &[("upstream", "backup"), ("outcome", "success")]
        ),
        Some(3.0)
    );
    assert_eq!(
        m.value(
            "rampart_retries_total",
            &[("upstream", "backup"), ("reason", "status_503")]
        ),
        Some(1.0)
    );
    assert_eq!(rejected(&m, "primary"), Some(3.0));
}

#[tokio::test]
async fn a_chain_of_fallbacks_is_followed_while_each_is_open() {
    let ups = [
        TestUpstream::http1().await,
        TestUpstream::http1().await,
        TestUpstream::http1().await,
    ];
    let yaml = format!(
        "upstreams:\n{}{}{}",
        upstream("a", &[ups[0].url()], "    fallback: b\n"),
        upstream("b", &[ups[1].url()], "    fallback: c\n"),
        upstream("c", &[ups[2].url()], ""),
    );
    let proxy = TestProxy::start(&yaml).await;
    breaker_action(&proxy, "a", "force-open").await;
    assert_eq!(get(&proxy, "a").await.status(), 200);
    assert_eq!(ups.each_ref().map(TestUpstream::count), [0, 1, 0]);
    breaker_action(&proxy, "b", "force-open").await;
    assert_eq!(get(&proxy, "a").await.status(), 200);
    assert_eq!(ups.each_ref().map(TestUpstream::count), [0, 1, 1]);
    // The end of the chain open too: circuit_open from the last one.
    breaker_action(&proxy, "c", "force-open").await;
    let resp = get(&proxy, "a").await;
    assert_eq!(error_code(&resp), "circuit_open");
    assert_eq!(crate::support::client::json(&resp)["upstream"], "a");
    breaker_action(&proxy, "a", "reset").await;
    assert_eq!(get(&proxy, "a").await.status(), 200);
    assert_eq!(ups.each_ref().map(TestUpstream::count), [1, 1, 1]);
}

#[tokio::test]
async fn the_fallback_is_looked_up_live_and_a_reload_keeps_unchanged_breakers() {
    let primary = TestUpstream::http1().await;
    let (old_backup, new_backup) = (TestUpstream::http1().await, TestUpstream::http1().await);
    let config = |backup: &TestUpstream| {
        format!(
            "upstreams:\n{}{}",
            upstream("primary", &[primary.url()], "    fallback: backup\n"),
            upstream("backup", &[backup.url()], ""),
        )
    };
    let proxy = TestProxy::start_file(&config(&old_backup)).await;
    breaker_action(&proxy, "primary", "force-open").await;
    assert_eq!(get(&proxy, "primary").await.status(), 200);
    assert_eq!(old_backup.count(), 1);

    proxy.write_config(&config(&new_backup));
    let summary = proxy.app().reload().await.expect("reload");
    assert_eq!(summary.unchanged, vec!["primary".to_owned()]);
    assert_eq!(summary.changed, vec!["backup".to_owned()]);
    // The primary is the same upstream, still forced open; the fallback is the new one.
    assert_eq!(get(&proxy, "primary").await.status(), 200);
    assert_eq!(
        (old_backup.count(), new_backup.count(), primary.count()),
        (1, 1, 0)
    );
}
