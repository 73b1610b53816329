//! The whole proxy against its naive baseline: one GET round trip from a keep-alive client to
//! an in-process upstream (hyper, "ok\n"), directly and through a running rampart (the
//! bench config's policies: retries with a budget, a rate limit far above the load, the
//! moderate breaker). Same runtime, same loopback sockets; the difference is what rampart
//! adds per request.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// An upstream answering every request with `ok\n`, like the load harness's nginx.
async fn upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = hyper::service::service_fn(|_req| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok\n"))))
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    addr
}

/// A keep-alive client connection to `addr`.
async fn client(addr: SocketAddr) -> SendRequest<Empty<Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    sender
}

async fn get(sender: &mut SendRequest<Empty<Bytes>>, host: &str) {
    sender.ready().await.unwrap();
    let req = Request::get("/")
        .header(http::header::HOST, host)
        .body(Empty::new())
        .unwrap();
    let response = sender.send_request(req).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"ok\n");
}

fn stack(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (mut direct, mut proxied, _app) = rt.block_on(async {
        let up = upstream().await;
        let yaml = format!(
            "listen: 127.0.0.1:0\nadmin: {{ listen: 127.0.0.1:0 }}\nupstreams:\n  bench:\n    endpoints: [\"http://{up}\"]\n    path_prefix: /\n    retry:\n      attempts: 3\n      budget: {{ ratio: 20%, min_per_second: 10, window: 10s }}\n    rate_limit: {{ rate: 1000000/s, burst: 100000 }}\n    circuit_breaker: {{ preset: moderate }}\n"
        );
        let config = rampart::config::parse(&yaml, &|_| None).unwrap();
        let app = rampart::app::start(config, None).await.unwrap();
        let proxied = client(app.listen_addr).await;
        (client(up).await, proxied, app)
    });
    let mut group = c.benchmark_group("stack");
    group.bench_function("direct_to_upstream", |b| {
        b.iter(|| rt.block_on(get(&mut direct, "bench")))
    });
    group.bench_function("through_rampart", |b| {
        b.iter(|| rt.block_on(get(&mut proxied, "bench")))
    });
    group.finish();
}

criterion_group!(benches, stack);
criterion_main!(benches);
