//! Rate-limit decision costs: a local check (target < 100 ns), a keyed check among 100k live
//! keys, a flood of 1,000,000 distinct keys against the LRU bound (memory printed), and a
//! global decision in Redis against its naive floor, a plain PING round trip. The Redis part
//! starts its own redis-server and is skipped (saying so) when none is installed.

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use rampart::rate_limit::global::GlobalBuckets;
use rampart::rate_limit::key::RequestKey;
use rampart::rate_limit::local::{LocalBuckets, MAX_KEYS};
use rampart::rate_limit::policy::{GlobalLimitPolicy, OnRedisError, Rate, RedisTlsPolicy};
use rampart::secret::Secret;

fn rate(tokens: u32) -> Rate {
    Rate {
        tokens,
        period: Duration::from_secs(1),
    }
}

fn ip(i: u32) -> RequestKey<'static> {
    RequestKey::Ip(IpAddr::from(i.to_be_bytes()))
}

fn local(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let mut group = c.benchmark_group("rate_limit_local");
    let open = LocalBuckets::new(rate(u32::MAX), u32::MAX, false);
    group.bench_function("check_taken", |b| {
        b.iter(|| open.check(&RequestKey::Shared))
    });
    let empty = LocalBuckets::new(rate(1), 1, false);
    empty.check(&RequestKey::Shared);
    group.bench_function("check_empty", |b| {
        b.iter(|| empty.check(&RequestKey::Shared))
    });

    let keyed = LocalBuckets::new(rate(1_000_000), 1_000, true);
    for i in 0..100_000 {
        keyed.check(&ip(i));
    }
    assert_eq!(keyed.keys(), 100_000);
    let mut i = 0u32;
    group.bench_function("keyed_check_100k_live_keys", |b| {
        b.iter(|| {
            i = (i + 7919) % 100_000;
            keyed.check(&ip(i))
        })
    });

    let flood = LocalBuckets::new(rate(10), 10, true);
    let before = rss_kib();
    for i in 0..1_000_000 {
        flood.check(&ip(i));
    }
    let after = rss_kib();
    assert_eq!(flood.keys(), MAX_KEYS, "the LRU bound holds under a flood");
    eprintln!(
        "1,000,000 distinct keys: {} kept, RSS {before} KiB -> {after} KiB (+{} KiB)",
        flood.keys(),
        after.saturating_sub(before)
    );
    let mut next = 1_000_000u32;
    group.bench_function("keyed_check_new_key_at_bound", |b| {
        b.iter(|| {
            next = next.wrapping_add(1);
            flood.check(&ip(next))
        })
    });
    group.finish();
}

fn global(c: &mut Criterion) {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let policy = GlobalLimitPolicy {
        redis_url: Secret::new(format!("redis://{}/0", redis.addr)),
        on_error: OnRedisError::Local,
        tls: RedisTlsPolicy::default(),
    };
    let buckets = rt.block_on(async {
        let b = GlobalBuckets::new(
            &policy,
            rate(1_000_000),
            1_000,
            "bench",
            metrics::Gauge::noop(),
        );
        for _ in 0..500 {
            if b.is_up() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(b.is_up(), "redis-server on {} answers", redis.addr);
        b
    });
    let conn = rt.block_on(async {
        let client = redis::Client::open(policy.redis_url.expose()).unwrap();
        redis::aio::ConnectionManager::new(client).await.unwrap()
    });
    let mut group = c.benchmark_group("rate_limit_global");
    group.bench_function("redis_ping_round_trip", |b| {
        b.to_async(&rt).iter(|| {
            let mut c = conn.clone();
            async move {
                redis::cmd("PING")
                    .query_async::<String>(&mut c)
                    .await
                    .unwrap()
            }
        })
    });
    group.bench_function("global_decision", |b| {
        b.to_async(&rt)
            .iter(|| buckets.decide(&RequestKey::Shared, Duration::ZERO))
    });
    group.finish();
}

/// Resident memory of this process in KiB (Linux), 0 elsewhere.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4)
}

/// A throwaway redis-server on a free loopback port, killed when dropped.
struct RedisServer {
    addr: SocketAddr,
    child: Child,
}

impl RedisServer {
    fn start() -> Option<Self> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .ok()?
            .port();
        let spawned = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = spawned else {
            assert!(
                std::env::var_os("RAMPART_TEST_STRICT").is_none(),
                "redis-server is not installed"
            );
            eprintln!("SKIPPED rate_limit_global: redis-server is not installed");
            return None;
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let server = Self { addr, child };
        for _ in 0..250 {
            if TcpStream::connect(addr).is_ok() {
                return Some(server);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not listen on {addr}");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

criterion_group!(benches, local, global);
criterion_main!(benches);
