//! Router match cost against the number of upstreams: it must not grow with config size
//! (hash probes per path segment, not a scan). Naive baseline: a linear scan over the same
//! prefixes, which is what the router replaces.

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rampart::metrics::Metrics;
use rampart::routing::{RouteKey, Router};
use rampart::upstream::Upstream;

fn config_with(n: usize) -> String {
    let mut yaml = String::from("upstreams:\n");
    for i in 0..n {
        yaml.push_str(&format!(
            "  u{i}:\n    endpoints: [\"http://127.0.0.1:{}\"]\n    hosts: [\"svc{i}.internal\"]\n  p{i}:\n    endpoints: [\"http://127.0.0.1:{}\"]\n    path_prefix: /api/v1/p{i}\n",
            10000 + i % 50000,
            10000 + i % 50000
        ));
    }
    yaml
}

fn router(n: usize) -> Router {
    let config = rampart::config::parse(&config_with(n), &|_| None).expect("bench config parses");
    let metrics = Metrics::new();
    let upstreams = config
        .upstreams
        .iter()
        .map(|p| Upstream::new(p.clone(), &metrics).unwrap())
        .collect();
    Router::new(upstreams, None)
}

fn matching(c: &mut Criterion) {
    let mut group = c.benchmark_group("router");
    for n in [1usize, 10_000] {
        let r = router(n);
        let host = format!("svc{}.internal", n - 1);
        group.bench_with_input(BenchmarkId::new("by_host", n), &host, |b, host| {
            b.iter(|| {
                r.route(RouteKey {
                    name: None,
                    host: Some(host),
                    port: Some(80),
                    path: "/orders/42",
                })
                .unwrap()
            })
        });
        let path = format!("/api/v1/p{}/items/7", n - 1);
        group.bench_with_input(BenchmarkId::new("by_prefix", n), &path, |b, path| {
            b.iter(|| {
                r.route(RouteKey {
                    name: None,
                    host: None,
                    port: None,
                    path,
                })
                .unwrap()
            })
        });
        let prefixes: Vec<(String, Arc<Upstream>)> = r
            .upstreams()
            .iter()
            .filter_map(|u| u.policy().path_prefix.clone().map(|p| (p, u.clone())))
            .collect();
        group.bench_with_input(
            BenchmarkId::new("naive_linear_scan", n),
            &path,
            |b, path| {
                b.iter(|| {
                    prefixes
                        .iter()
                        .filter(|(p, _)| rampart::upstream::prefix_matches(p, path))
                        .max_by_key(|(p, _)| p.len())
                        .map(|(_, u)| u.clone())
                        .unwrap()
                })
            },
        );
    }
    group.finish();
}

fn config_load(c: &mut Criterion) {
    let yaml = config_with(5_000); // 10,000 upstreams
    let mut group = c.benchmark_group("config");
    group.sample_size(10);
    group.bench_function("parse_and_validate_10000_upstreams", |b| {
        b.iter(|| rampart::config::parse(&yaml, &|_| None).unwrap())
    });
    group.finish();
}

criterion_group!(benches, matching, config_load);
criterion_main!(benches);
