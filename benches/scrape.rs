//! Cost of one /metrics scrape with 100 upstreams (and 10 removed ones whose series are still
//! registered): the filtered render that /metrics serves against the plain render it replaced.
//! The filter is one pass over the text plus a hash lookup per sample with an upstream label.

use criterion::{Criterion, criterion_group, criterion_main};
use rampart::admin::{scrape, upstreams::refresh_breakers};
use rampart::metrics::Metrics;
use rampart::routing::Router;
use rampart::upstream::Upstream;

const UPSTREAMS: usize = 100;

fn setup() -> (std::sync::Arc<Metrics>, Router) {
    let mut yaml = String::from("upstreams:\n");
    for i in 0..UPSTREAMS {
        yaml.push_str(&format!(
            "  u{i}:\n    endpoints: [\"http://127.0.0.1:{0}\", \"http://127.0.0.2:{0}\"]\n    hosts: [\"svc{i}.internal\"]\n    circuit_breaker: {{ scope: endpoint }}\n",
            10000 + i
        ));
    }
    let config = rampart::config::parse(&yaml, &|_| None).expect("bench config parses");
    let metrics = Metrics::new();
    let upstreams = config
        .upstreams
        .iter()
        .map(|p| Upstream::new(p.clone(), &metrics).unwrap())
        .collect();
    for i in 0..10 {
        metrics
            .upstream(&format!("removed{i}"))
            .request_done(200, 0.01);
    }
    for (i, u) in config.upstreams.iter().enumerate() {
        let m = metrics.upstream(&u.name);
        for code in [200, 503] {
            m.request_done(code, 0.001 * i as f64);
        }
    }
    (metrics, Router::new(upstreams, None))
}

fn render(c: &mut Criterion) {
    let (metrics, router) = setup();
    let text = scrape::render(&metrics, &router);
    assert!(!text.contains("removed0") && text.contains("upstream=\"u99\""));
    eprintln!(
        "{} bytes, {} lines served; {} lines unfiltered",
        text.len(),
        text.lines().count(),
        metrics.render().lines().count()
    );
    let mut group = c.benchmark_group("scrape");
    group.bench_function("unfiltered_baseline", |b| {
        b.iter(|| {
            refresh_breakers(&router);
            metrics.render()
        })
    });
    group.bench_function("filtered", |b| b.iter(|| scrape::render(&metrics, &router)));
    group.finish();
}

criterion_group!(benches, render);
criterion_main!(benches);
