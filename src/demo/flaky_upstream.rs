//! A small HTTP/1.1 upstream on 127.0.0.1:0 whose health can be switched at run time: healthy
//! answers 200 after a short random latency, failing answers 503. Used by `rampart demo`; it
//! is no test fixture (tests/e2e/support has a scriptable one).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use rand::Rng;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A running flaky upstream; dropping it stops the accept loop.
#[derive(Debug)]
pub struct FlakyUpstream {
    addr: SocketAddr,
    state: Arc<State>,
    accept: JoinHandle<()>,
}

#[derive(Debug)]
struct State {
    failing: AtomicBool,
    max_latency: Duration,
    received: AtomicU64,
}

// === impl FlakyUpstream ===

impl FlakyUpstream {
    /// Binds 127.0.0.1:0 and serves until dropped; answers take up to `max_latency`.
    pub async fn start(max_latency: Duration) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            failing: AtomicBool::new(false),
            max_latency,
            received: AtomicU64::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, state.clone()));
        Ok(Self {
            addr,
            state,
            accept,
        })
    }

    /// `http://127.0.0.1:PORT`, for an endpoint list.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Switches between answering 503 (true) and 200 (false).
    pub fn set_failing(&self, failing: bool) {
        self.state.failing.store(failing, Ordering::Relaxed);
    }

    /// Whether it answers 503 now.
    pub fn is_failing(&self) -> bool {
        self.state.failing.load(Ordering::Relaxed)
    }

    /// Requests received so far (every try the proxy made, retries and probes included).
    pub fn received(&self) -> u64 {
        self.state.received.load(Ordering::Relaxed)
    }
}

impl Drop for FlakyUpstream {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    let builder = Builder::new(TokioExecutor::new());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let state = state.clone();
        let service = hyper::service::service_fn(move |req| answer(state.clone(), req));
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        tokio::spawn(conn);
    }
}

async fn answer(
    state: Arc<State>,
    _req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    state.received.fetch_add(1, Ordering::Relaxed);
    let latency = rand::rng().random_range(Duration::ZERO..=state.max_latency);
    tokio::time::sleep(latency).await;
    let (status, body) = if state.failing.load(Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "failing\n")
    } else {
        (StatusCode::OK, "ok\n")
    };
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    Ok(response)
}
