//! Chaos: the upstream fails every request for 3 s, then recovers, under steady traffic from
//! several clients. The breaker must open within the configured calls, let at most
//! `half_open_calls` probes through per open period, and have traffic back to normal within
//! `open_for` plus a probe round trip of the recovery.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::{error_code, get, scrape, state, transitions, upstream};
use crate::support::{Reply, TestProxy, TestUpstream};

const WORKERS: usize = 4;
const CONSECUTIVE: usize = 5;
const HALF_OPEN_CALLS: usize = 2;
const OPEN_FOR: Duration = Duration::from_millis(200);
/// Allowance for one probe round trip (and scheduling on a busy 2-core CI machine).
const PROBE_ROUND_TRIP: Duration = Duration::from_millis(100);

/// One request as a client saw it.
struct Seen {
    started: Instant,
    ok: bool,
    refused: bool,
}

#[tokio::test]
async fn a_three_second_outage_opens_probes_sparingly_and_recovers_fast() {
    let up = TestUpstream::http1().await;
    up.set_default(Reply::status(500));
    let breaker = format!(
        "    retry: {{ attempts: 1 }}\n    circuit_breaker: {{ consecutive_failures: {CONSECUTIVE}, failure_rate: off, open_for: 200ms, max_open_for: 200ms, half_open_calls: {HALF_OPEN_CALLS}, success_threshold: 2 }}\n"
    );
    let proxy = Arc::new(
        TestProxy::start(&format!(
            "upstreams:\n{}",
            upstream("svc", &[up.url()], &breaker)
        ))
        .await,
    );

    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..WORKERS {
        let (proxy, stop) = (proxy.clone(), stop.clone());
        workers.spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let resp = get(&proxy, "svc").await;
                seen.push(Seen {
                    started,
                    ok: resp.status() == 200,
                    refused: error_code(&resp) == "circuit_open",
                });
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            seen
        });
    }

    let outage = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during_outage = up.count();
    let half_opened = transitions(&scrape(&proxy).await, "svc", "open", "half_open");
    let recovered = Instant::now();
    up.set_default(Reply::status(200));
    // Long enough after recovery for every client to make ten requests on a busy machine
    // (the chaos suite's proxy may be running beside this test).
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    let mut seen = Vec::new();
    while let Some(w) = workers.join_next().await {
        seen.extend(w.unwrap());
    }
    seen.sort_by_key(|s| s.started);

    // Opened within the configured calls (plus what other clients already had in flight).
    let first_refusal = seen
        .iter()
        .position(|s| s.refused)
        .expect("the breaker opened");
    let tried_before = seen[..first_refusal]
        .iter()
        .filter(|s| s.started >= outage)
        .count();
    assert!(
        tried_before < CONSECUTIVE + WORKERS,
        "{tried_before} requests reached the failing upstream before the first refusal"
    );
    // After that, only probes: at most half_open_calls per open period.
    assert!(half_opened >= 5.0, "open periods cycled: {half_opened}");
    let probes = during_outage - tried_before;
    assert!(
        probes as f64 <= half_opened * HALF_OPEN_CALLS as f64,
        "{probes} probes in {half_opened} half-open periods"
    );
    assert!(
        seen.iter().filter(|s| s.refused).count() > during_outage,
        "most requests were refused instead of reaching the upstream"
    );
    // Back to normal within open_for + one probe round trip of the recovery.
    let normal_from = recovered + OPEN_FOR + PROBE_ROUND_TRIP;
    let after: Vec<&Seen> = seen.iter().filter(|s| s.started >= normal_from).collect();
    assert!(
        after.len() >= WORKERS * 10,
        "traffic continued: {}",
        after.len()
    );
    assert!(
        after.iter().all(|s| s.ok),
        "a request failed after recovery"
    );
    let m = scrape(&proxy).await;
    assert_eq!(state(&m, "svc"), Some(0.0));
    assert_eq!(transitions(&m, "svc", "half_open", "closed"), 1.0);
}
