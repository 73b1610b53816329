//! The global (Redis) rate limit through running servers and a real redis-server: three
//! replicas share one bucket under load, a Redis outage falls back to the local bucket and
//! recovers within a second, `on_error: allow | deny`, the password in the Redis URL
//! stays out of logs and /admin/config, and `rediss://` (TLS, private CA, client certificate)
//! decides globally while a wrong CA keeps the limiter in fallback with a log line saying why.

use std::time::Duration;

use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

use crate::support::binary::{free_port, rampart};
use crate::support::client::{self, request};
use crate::support::{Body, Metrics, TestCa, TestProxy, TestRedis, TestUpstream, empty};

fn config(endpoint: &str, limit: &str) -> String {
    format!(
        "upstreams:\n  svc:\n    endpoints: [\"{endpoint}\"]\n    hosts: [svc]\n    retry: {{ attempts: 1 }}\n    rate_limit: {limit}\n"
    )
}

fn global(rate: &str, burst: u32, redis: &str, on_error: &str) -> String {
    format!(
        "{{ rate: {rate}, burst: {burst}, global: {{ redis: \"{redis}\", on_error: {on_error} }} }}"
    )
}

async fn get(proxy: &TestProxy) -> u16 {
    let req = request("GET", &proxy.url("/g")).header("host", "svc");
    let resp = client::send(req.body(empty()).unwrap()).await.unwrap();
    resp.status().as_u16()
}

fn fallback(proxy: &TestProxy) -> f64 {
    proxy
        .metrics()
        .value("rampart_rate_limit_global_fallback", &[("upstream", "svc")])
        .expect("the fallback gauge is registered")
}

/// Waits until `proxy` decides in Redis; returns how long that took.
async fn until_global(proxy: &TestProxy, within: Duration) -> Duration {
    let started = Instant::now();
    while fallback(proxy) != 0.0 {
        assert!(
            started.elapsed() < within,
            "still in fallback after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_under_load_share_one_bucket() {
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    let up = TestUpstream::http1().await;
    let yaml = config(&up.url(), &global("100/s", 10, &redis.url(), "local"));
    let mut replicas = Vec::new();
    for _ in 0..3 {
        let proxy = TestProxy::start(&yaml).await;
        until_global(&proxy, Duration::from_secs(5)).await;
        replicas.push(proxy);
    }

    // Two client loops per replica for 5 s: far more than 100 requests/s from every side.
    let run_for = Duration::from_secs(5);
    let deadline = Instant::now() + run_for;
    let mut loops = Vec::new();
    for proxy in &replicas {
        for _ in 0..2 {
            let url = proxy.url("/load");
            loops.push(tokio::spawn(async move {
                let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
                let (mut admitted, mut refused) = (0u32, 0u32);
                while Instant::now() < deadline {
                    let req = request("GET", &url)
                        .header("host", "svc")
                        .body(empty())
                        .unwrap();
                    let resp = client.request(req).await.expect("the proxy answers");
                    match resp.status().as_u16() {
                        200 => admitted += 1,
                        429 => refused += 1,
                        other => panic!("unexpected {other} under load"),
                    }
                    drop(client::collect(resp).await);
                }
                (admitted, refused)
            }));
        }
    }
    let mut per_replica = Vec::new();
    for pair in loops.chunks_mut(2) {
        let mut sum = (0, 0);
        for task in pair {
            let (a, r) = task.await.unwrap();
            sum = (sum.0 + a, sum.1 + r);
        }
        per_replica.push(sum);
    }
    let admitted: u32 = per_replica.iter().map(|p| p.0).sum();
    eprintln!(
        "three replicas, 100/s burst 10 for {run_for:?}: admitted {admitted} (ideal 510), per replica {per_replica:?}"
    );
    assert!(
        (485..=535).contains(&admitted),
        "admitted {admitted}, want 510 ± 5 %; {per_replica:?}"
    );
    assert!(
        per_replica.iter().all(|p| p.0 > 0 && p.1 > 0),
        "{per_replica:?}"
    );
    assert_eq!(up.count(), admitted as usize);
    assert!(replicas.iter().all(|p| fallback(p) == 0.0));
}

#[tokio::test]
async fn a_redis_outage_falls_back_to_the_local_bucket_and_recovers_within_a_second() {
    let Some(mut redis) = TestRedis::start().await else {
        return;
    };
    let up = TestUpstream::http1().await;
    let yaml = config(&up.url(), &global("1/m", 2, &redis.url(), "local"));
    let (a, b) = (TestProxy::start(&yaml).await, TestProxy::start(&yaml).await);
    until_global(&a, Duration::from_secs(5)).await;
    until_global(&b, Duration::from_secs(5)).await;
    assert_eq!(
        [get(&a).await, get(&a).await, get(&b).await],
        [200, 200, 429],
        "one shared bucket"
    );

    redis.stop().await;
    // Each replica now decides with its own (full) bucket of 2; nothing fails.
    assert_eq!(
        [get(&a).await, get(&a).await, get(&a).await],
        [200, 200, 429]
    );
    assert_eq!(get(&b).await, 200);
    assert_eq!((fallback(&a), fallback(&b)), (1.0, 1.0));

    redis.restart().await;
    let back = until_global(&a, Duration::from_secs(1)).await;
    until_global(&b, Duration::from_secs(1)).await;
    eprintln!("global again {back:?} after Redis listened");
    // Redis restarted empty: one shared bucket of 2 again. b's local bucket has one token
    // left, so two 200s on b and then a 429 on a can only come from Redis.
    assert_eq!(
        [get(&b).await, get(&b).await, get(&a).await],
        [200, 200, 429]
    );
}

#[tokio::test]
async fn on_error_allow_admits_and_deny_refuses_while_redis_is_unreachable() {
    let nowhere = format!("redis://127.0.0.1:{}/0", free_port());
    let up = TestUpstream::http1().await;
    let allow = TestProxy::start(&config(&up.url(), &global("1/m", 1, &nowhere, "allow"))).await;
    let deny = TestProxy::start(&config(&up.url(), &global("1/m", 1, &nowhere, "deny"))).await;
    for _ in 0..3 {
        assert_eq!(get(&allow).await, 200);
    }
    let req = request("GET", &deny.url("/g")).header("host", "svc");
    let resp = client::collect(client::send(req.body(empty()).unwrap()).await.unwrap()).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(client::header(&resp, "retry-after"), Some("1"));
    assert_eq!((fallback(&allow), fallback(&deny)), (1.0, 1.0));
}

#[tokio::test]
async fn the_redis_password_stays_out_of_logs_and_admin_config() {
    let password = "s3cr3t-pw-9f2c";
    let Some(mut redis) = TestRedis::start_with(&["--requirepass", password]).await else {
        return;
    };
    let up = TestUpstream::http1().await;
    let (listen, admin) = (free_port(), free_port());
    let url = format!("redis://:{password}@{}/0", redis.addr());
    let yaml = format!(
        "listen: 127.0.0.1:{listen}\nadmin: {{ listen: 127.0.0.1:{admin} }}\nshutdown: {{ drain_delay: 0s, timeout: 2s }}\n{}",
        config(&up.url(), &global("100/s", 10, &url, "local"))
    );
    let process = rampart(&["run"])
        .env("RAMPART_LOG", "info")
        .env("RAMPART_LOG_FORMAT", "json")
        .config(&yaml)
        .spawn();
    // Authenticated with the password: decisions are made in Redis.
    process
        .wait_for_line("deciding in Redis", Duration::from_secs(10))
        .await;
    let config = client::get(&format!("http://127.0.0.1:{admin}/admin/config")).await;
    let text = client::text(&config);
    assert!(text.contains("redis://:<redacted>@"), "{text}");
    assert!(!text.contains(password), "{text}");

    redis.stop().await;
    let req = request("GET", &format!("http://127.0.0.1:{listen}/p")).header("host", "svc");
    let resp = client::send(req.body(empty()).unwrap()).await.unwrap();
    assert_eq!(resp.status(), 200, "decided by the local bucket");
    process
        .wait_for_line("Redis unavailable", Duration::from_secs(5))
        .await;
    let output = process.output();
    assert!(
        output.contains(&redis.addr().to_string()),
        "logs name the Redis host:\n{output}"
    );
    assert!(!output.contains(password), "{output}");
}

/// `rate_limit` with a global bucket on `redis` and `tls` files (`{ ca_file: ..., ... }`).
fn global_tls(rate: &str, burst: u32, redis: &str, tls: &str) -> String {
    format!(
        "{{ rate: {rate}, burst: {burst}, global: {{ redis: \"{redis}\", on_error: local, tls: {tls} }} }}"
    )
}

#[tokio::test]
async fn rediss_with_a_private_ca_and_a_client_certificate_shares_one_bucket() {
    let ca = TestCa::new();
    // The server refuses clients without a certificate from `ca`.
    let Some(redis) = TestRedis::start_tls(&ca, true).await else {
        return;
    };
    let up = TestUpstream::http1().await;
    let tls = format!(
        "{{ ca_file: \"{}\", client_cert: \"{}\", client_key: \"{}\" }}",
        ca.ca_file().display(),
        ca.client_cert_file().display(),
        ca.client_key_file().display()
    );
    let yaml = config(&up.url(), &global_tls("1/m", 2, &redis.url(), &tls));
    assert!(redis.url().starts_with("rediss://"), "{}", redis.url());
    let (a, b) = (TestProxy::start(&yaml).await, TestProxy::start(&yaml).await);
    until_global(&a, Duration::from_secs(5)).await;
    until_global(&b, Duration::from_secs(5)).await;
    // Each replica's local bucket holds 2: a 429 on b after two 200s on a is Redis's answer.
    assert_eq!(
        [get(&a).await, get(&a).await, get(&b).await, get(&b).await],
        [200, 200, 429, 429],
        "one bucket shared over TLS"
    );
    assert_eq!((fallback(&a), fallback(&b)), (0.0, 0.0));
    assert_eq!(up.count(), 2);
}

#[tokio::test]
async fn rediss_with_the_wrong_ca_stays_in_fallback_and_logs_why() {
    let ca = TestCa::new();
    let Some(redis) = TestRedis::start_tls(&ca, false).await else {
        return;
    };
    let wrong = TestCa::new();
    let up = TestUpstream::http1().await;
    let (listen, admin) = (free_port(), free_port());
    let tls = format!("{{ ca_file: \"{}\" }}", wrong.ca_file().display());
    let yaml = format!(
        "listen: 127.0.0.1:{listen}\nadmin: {{ listen: 127.0.0.1:{admin} }}\nshutdown: {{ drain_delay: 0s, timeout: 2s }}\n{}",
        config(&up.url(), &global_tls("1/m", 1, &redis.url(), &tls))
    );
    let process = rampart(&["run"])
        .env("RAMPART_LOG", "info")
        .env("RAMPART_LOG_FORMAT", "json")
        .config(&yaml)
        .spawn();
    let line = process
        .wait_for_line("TLS with Redis failed", Duration::from_secs(10))
        .await;
    assert!(line.contains("\"level\":\"ERROR\""), "{line}");
    assert!(
        line.contains("invalid peer certificate"),
        "the reason names the certificate: {line}"
    );
    assert!(
        line.contains(&redis.addr().to_string()),
        "and the Redis host: {line}"
    );
    assert!(
        !process.output().contains("deciding in Redis"),
        "{}",
        process.output()
    );
    let m = Metrics::scrape(&format!("http://127.0.0.1:{admin}/metrics")).await;
    assert_eq!(
        m.value("rampart_rate_limit_global_fallback", &[("upstream", "svc")]),
        Some(1.0)
    );
    // on_error: local decides with this replica's bucket of 1.
    let url = format!("http://127.0.0.1:{listen}/p");
    let mut codes = Vec::new();
    for _ in 0..2 {
        let req = request("GET", &url).header("host", "svc");
        codes.push(
            client::send(req.body(empty()).unwrap())
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(codes, [200, 429]);
}
