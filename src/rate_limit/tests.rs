//! Exact admitted counts: governor's fake clock for the buckets, paused tokio time for the
//! layer (waits, dry run, metrics).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use governor::clock::FakeRelativeClock;
use http::HeaderMap;

use super::key::RequestKey;
use super::local::{Check, LocalBuckets};
use super::policy::{LimitMode, Rate, RateLimitKey, RateLimitPolicy};
use super::*;
use crate::metrics::Metrics;

fn rate(tokens: u32, secs: u64) -> Rate {
    Rate {
        tokens,
        period: Duration::from_secs(secs),
    }
}

fn policy(tokens: u32, burst: u32, mode: LimitMode) -> RateLimitPolicy {
    RateLimitPolicy {
        rate: rate(tokens, 1),
        burst,
        mode,
        dry_run: false,
        key: RateLimitKey::None,
        global: None,
    }
}

fn limiter(policy: &RateLimitPolicy) -> (RateLimiter, Arc<Metrics>) {
    let metrics = Metrics::new();
    let up = metrics.upstream("payments");
    (RateLimiter::new(policy, "payments", &up), metrics)
}

fn counted(metrics: &Metrics, action: &str) -> u64 {
    let needle =
        format!("rampart_rate_limited_total{{upstream=\"payments\",action=\"{action}\"}} ");
    metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(&needle))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[test]
fn the_fake_clock_admits_burst_then_one_token_per_interval() {
    let clock = FakeRelativeClock::default();
    let buckets = LocalBuckets::with_clock(rate(10, 1), 5, false, 10, clock.clone());
    assert_eq!(buckets.available(), 5);
    let taken = (0..20)
        .filter(|_| buckets.check(&RequestKey::Shared) == Check::Taken)
        .count();
    assert_eq!(taken, 5);
    assert_eq!(buckets.available(), 0);
    assert_eq!(
        buckets.check(&RequestKey::Shared),
        Check::Empty(Duration::from_millis(100))
    );
    clock.advance(Duration::from_millis(40));
    assert_eq!(
        buckets.check(&RequestKey::Shared),
        Check::Empty(Duration::from_millis(60))
    );
    clock.advance(Duration::from_millis(60));
    assert_eq!(buckets.available(), 1);
    assert_eq!(buckets.check(&RequestKey::Shared), Check::Taken);
    assert_eq!(buckets.available(), 0);
    clock.advance(Duration::from_secs(10));
    assert_eq!(
        buckets.available(),
        5,
        "refills to the burst, never past it"
    );
}

#[test]
fn keyed_buckets_are_isolated_and_bounded() {
    let clock = FakeRelativeClock::default();
    let buckets = LocalBuckets::with_clock(rate(1, 60), 2, true, 1_000, clock);
    let a = RequestKey::Header(b"tenant-a");
    let b = RequestKey::Header(b"tenant-b");
    assert_eq!(buckets.check(&a), Check::Taken);
    assert_eq!(buckets.check(&a), Check::Taken);
    assert!(matches!(buckets.check(&a), Check::Empty(_)));
    assert_eq!(
        buckets.check(&b),
        Check::Taken,
        "another key has its own bucket"
    );
    assert_eq!(
        buckets.available(),
        2,
        "keyless requests share one more bucket"
    );
    for i in 0..10_000u32 {
        let ip = std::net::IpAddr::from(i.to_be_bytes());
        assert_eq!(buckets.check(&RequestKey::Ip(ip)), Check::Taken);
    }
    assert_eq!(buckets.keys(), 1_000, "the LRU holds at most max_keys");
    assert_eq!(
        buckets.check(&a),
        Check::Taken,
        "an evicted key comes back with a full bucket"
    );
}

#[tokio::test(start_paused = true)]
async fn reject_mode_answers_429_with_the_real_wait() {
    let (limiter, metrics) = limiter(&policy(10, 3, LimitMode::Reject));
    let headers = HeaderMap::new();
    let mut admitted = 0;
    let mut refused = Vec::new();
    for _ in 0..10 {
        match limiter.acquire(&headers, None, || Ok(())).await {
            Ok(held) => {
                assert!(held.is_none(), "no bulkhead slot is taken without a wait");
                admitted += 1;
            }
            Err(ProxyError::RateLimited(info)) => refused.push(info),
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(admitted, 3);
    assert_eq!(refused.len(), 7);
    let info = &refused[0];
    assert_eq!(info.retry_after, Duration::from_millis(100));
    assert_eq!(
        (info.quota, info.window_secs, info.burst, info.remaining),
        (10, 1, 3, 0)
    );
    assert_eq!(counted(&metrics, "rejected"), 7);
    tokio::time::advance(Duration::from_millis(250)).await;
    assert_eq!(limiter.available(), 2);
}

#[tokio::test(start_paused = true)]
async fn wait_mode_waits_within_max_wait_then_refuses() {
    let wait = LimitMode::Wait {
        max_wait: Duration::from_millis(250),
    };
    let (limiter, metrics) = limiter(&policy(10, 1, wait));
    let limiter = Arc::new(limiter);
    let holds = Arc::new(AtomicU32::new(0));
    let started = tokio::time::Instant::now();
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (limiter, holds) = (limiter.clone(), holds.clone());
            tokio::spawn(async move {
                let result = limiter
                    .acquire(&HeaderMap::new(), None, || {
                        holds.fetch_add(1, Ordering::Relaxed);
                        Ok(())
                    })
                    .await;
                (result.is_ok(), started.elapsed())
            })
        })
        .collect();
    let mut done = Vec::new();
    for task in tasks {
        done.push(task.await.unwrap());
    }
    let mut admitted: Vec<_> = done.iter().filter(|d| d.0).map(|d| d.1).collect();
    admitted.sort();
    // One token now, then one at 100 ms and one at 200 ms; at 300 ms the wait is past 250 ms.
    assert_eq!(
        admitted,
        [0, 100, 200].map(Duration::from_millis).to_vec(),
        "{done:?}"
    );
    assert_eq!(counted(&metrics, "delayed"), 2);
    assert_eq!(counted(&metrics, "rejected"), 3);
    assert_eq!(
        holds.load(Ordering::Relaxed),
        5,
        "every request that waited held a bulkhead slot"
    );
    let text = metrics.render();
    assert!(
        text.contains(
            "rampart_rate_limit_wait_seconds_bucket{upstream=\"payments\",le=\"0.25\"} 5"
        ),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_wait_past_max_wait_is_refused_at_once_and_a_full_bulkhead_refuses_waiters() {
    let wait = LimitMode::Wait {
        max_wait: Duration::from_millis(50),
    };
    let (limiter, _metrics) = limiter(&policy(10, 1, wait));
    let headers = HeaderMap::new();
    assert!(limiter.acquire(&headers, None, || Ok(())).await.is_ok());
    let before = tokio::time::Instant::now();
    let err = limiter
        .acquire(&headers, None, || Ok(()))
        .await
        .unwrap_err();
    assert_eq!(
        before.elapsed(),
        Duration::ZERO,
        "no wait when the wait is too long"
    );
    assert_eq!(err.retry_after(), Some(Duration::from_millis(100)));
    tokio::time::advance(Duration::from_millis(60)).await;
    let err = limiter
        .acquire(&headers, None, || Err::<(), _>(ProxyError::Overloaded))
        .await
        .unwrap_err();
    assert_eq!(err, ProxyError::Overloaded);
}

#[tokio::test(start_paused = true)]
async fn dry_run_counts_and_limits_nothing() {
    let mut p = policy(10, 2, LimitMode::Reject);
    p.dry_run = true;
    let (limiter, metrics) = limiter(&p);
    for _ in 0..5 {
        assert!(
            limiter
                .acquire(&HeaderMap::new(), None, || Ok(()))
                .await
                .is_ok()
        );
    }
    assert_eq!(counted(&metrics, "dry_run"), 3);
    assert_eq!(counted(&metrics, "rejected"), 0);
}

#[tokio::test(start_paused = true)]
async fn client_ip_keys_separate_clients() {
    let mut p = policy(1, 1, LimitMode::Reject);
    p.key = RateLimitKey::ClientIp;
    let (limiter, _metrics) = limiter(&p);
    let headers = HeaderMap::new();
    let a = Some("10.0.0.1".parse().unwrap());
    let b = Some("10.0.0.2".parse().unwrap());
    assert!(limiter.acquire(&headers, a, || Ok(())).await.is_ok());
    assert!(limiter.acquire(&headers, a, || Ok(())).await.is_err());
    assert!(limiter.acquire(&headers, b, || Ok(())).await.is_ok());
    assert!(limiter.acquire(&headers, None, || Ok(())).await.is_ok());
}
