//! The demo's load: requests at a steady rate to one upstream name through the proxy, fired
//! on a tokio interval and bounded in flight, until cancelled. Loopback only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// Requests one driver keeps in flight at most; beyond it ticks are skipped, not queued.
const MAX_IN_FLIGHT: usize = 64;

/// The client every driver shares: keep-alive connections to the proxy.
pub type DemoClient = Client<HttpConnector, Empty<Bytes>>;

/// A client for the proxy on loopback.
pub fn client() -> DemoClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends `per_second` GETs per second to `proxy` with `Host: upstream` until `stop` fires.
pub async fn drive(
    client: DemoClient,
    proxy: SocketAddr,
    upstream: &'static str,
    per_second: u32,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / per_second.max(1));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let uri: http::Uri = format!("http://{proxy}/demo")
        .parse()
        .expect("a socket address makes a valid URI");
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stop.cancelled() => return,
        }
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let req = Request::get(uri.clone())
            .header(http::header::HOST, upstream)
            .body(Empty::new())
            .expect("static parts make a valid request");
        let client = client.clone();
        tokio::spawn(async move {
            if let Ok(response) = client.request(req).await {
                // Read the body so the connection goes back to the pool.
                let _ = response.into_body().collect().await;
            }
            drop(slot);
        });
    }
}
