//! Active health checks through the running server: a failing endpoint leaves rotation after
//! `unhealthy_after` probes and returns after `healthy_after`.

use std::time::Duration;

use crate::support::client::{self, request};
use crate::support::{Reply, TestProxy, TestUpstream, empty};

/// Polls `condition` every 20 ms for at most `within`.
async fn eventually(within: Duration, mut condition: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if condition().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

async fn get(proxy: &TestProxy) -> u16 {
    let req = request("GET", &proxy.url("/x"))
        .header("host", "svc")
        .body(empty())
        .unwrap();
    client::collect(client::send(req).await.unwrap())
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_failing_endpoint_leaves_rotation_and_comes_back() {
    let flaky = TestUpstream::http1().await;
    let steady = TestUpstream::http1().await;
    let yaml = format!(
        "upstreams:\n  svc:\n    endpoints: [\"{}\", \"{}\"]\n    hosts: [svc]\n    retry: {{ attempts: 1 }}\n    health_check: {{ path: /healthz, interval: 100ms, timeout: 50ms, unhealthy_after: 2, healthy_after: 2 }}\n",
        flaky.url(),
        steady.url()
    );
    flaky.set_default(Reply::status(503));
    let proxy = TestProxy::start(&yaml).await;

    // Two failed probes take the flaky endpoint out; once a third probe was sent the second
    // one's result has been applied. Every request then succeeds.
    let out = eventually(Duration::from_secs(3), async || {
        flaky
            .received()
            .iter()
            .filter(|r| r.path() == "/healthz")
            .count()
            >= 3
    })
    .await;
    assert!(out, "probes reached the endpoint");
    let before = flaky.received().iter().filter(|r| r.path() == "/x").count();
    for _ in 0..20 {
        assert_eq!(get(&proxy).await, 200);
    }
    let after = flaky.received().iter().filter(|r| r.path() == "/x").count();
    assert_eq!(before, after, "no request went to the unhealthy endpoint");
    assert!(flaky.last().header("user-agent") == Some("rampart-health-check"));

    // Recovery: two good probes bring it back into rotation.
    flaky.set_default(Reply::echo());
    let back = eventually(Duration::from_secs(3), async || {
        get(&proxy).await;
        flaky.received().iter().any(|r| r.path() == "/x")
    })
    .await;
    assert!(back, "the endpoint returned to rotation");
}

#[tokio::test]
async fn the_probe_task_stops_when_a_reload_drops_its_upstream() {
    let old = TestUpstream::http1().await;
    let new = TestUpstream::http1().await;
    let yaml = |up: &TestUpstream| {
        format!(
            "upstreams:\n  svc:\n    endpoints: [\"{}\"]\n    hosts: [svc]\n    health_check: {{ path: /healthz, interval: 50ms, timeout: 50ms, unhealthy_after: 2, healthy_after: 1 }}\n",
            up.url()
        )
    };
    let probes = |up: &TestUpstream| {
        up.received()
            .iter()
            .filter(|r| r.path() == "/healthz")
            .count()
    };
    let proxy = TestProxy::start_file(&yaml(&old)).await;
    old.wait_for(2).await;

    proxy.write_config(&yaml(&new));
    let summary = proxy.app().reload().await.expect("reload");
    assert_eq!(summary.changed, vec!["svc".to_owned()]);
    let at_reload = probes(&old);
    // Three probe intervals of the new task; the old one would have probed as often.
    tokio::time::timeout(Duration::from_secs(10), new.wait_for(3))
        .await
        .expect("the rebuilt upstream's task probes");
    assert!(
        probes(&old) <= at_reload + 1,
        "the dropped upstream's task kept probing: {} after {at_reload}",
        probes(&old)
    );
    assert_eq!(probes(&new), new.count());
}

/// A reload builds upstreams on a blocking thread, and each one's probe task must keep
/// running. The task used to be spawned inside `Arc::new_cyclic`: the runtime could poll it
/// before the `Arc` existed, and it stopped at its first tick for good. That race showed
/// under CPU load in about 1 of 15 runs of the test above; this one checks every upstream
/// of a large reload.
#[tokio::test]
async fn every_upstream_a_reload_rebuilds_keeps_probing() {
    const UPSTREAMS: usize = 40;
    let up = TestUpstream::http1().await;
    let yaml = |generation: u32| {
        let mut yaml = String::from("upstreams:\n");
        for i in 0..UPSTREAMS {
            yaml.push_str(&format!(
                "  u{i}:\n    endpoints: [\"{}\"]\n    hosts: [u{i}]\n    health_check: {{ path: /g{generation}/u{i}, interval: 50ms, timeout: 50ms }}\n",
                up.url()
            ));
        }
        yaml
    };
    let proxy = TestProxy::start_file(&yaml(0)).await;
    proxy.write_config(&yaml(1));
    let summary = proxy.app().reload().await.expect("reload");
    assert_eq!(summary.changed.len(), UPSTREAMS);

    // Two probes each: a task that probed once and then stopped would not do.
    let unprobed = || {
        let mut probes = std::collections::HashMap::<String, usize>::new();
        for r in up.received() {
            *probes.entry(r.path().to_owned()).or_default() += 1;
        }
        (0..UPSTREAMS)
            .filter(|i| probes.get(&format!("/g1/u{i}")).copied().unwrap_or(0) < 2)
            .collect::<Vec<_>>()
    };
    let all_probed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            // Counted before the log is read: a request logged after the read has counted
            // past `seen`, so the wait cannot miss it.
            let seen = up.count();
            if unprobed().is_empty() {
                break;
            }
            up.wait_for(seen + 1).await;
        }
    })
    .await;
    assert!(
        all_probed.is_ok(),
        "upstreams whose probe task stopped: {:?}",
        unprobed()
    );
}
