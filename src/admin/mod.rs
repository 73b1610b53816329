//! The admin listener (SPEC §6): /metrics, /healthz, /readyz, and the token-guarded
//! /admin/* API. It answers until the process exits, including while draining.

pub mod auth;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::proxy::Shared;
use crate::proxy::body::ResponseBody;
use crate::proxy::local_response::plain;
use crate::secret::Secret;

/// How often histogram samples are folded into buckets between scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// What the admin endpoints read.
#[derive(Debug)]
pub struct AdminState {
    /// Routing table and metrics of the running proxy.
    pub shared: Arc<Shared>,
    /// False before config is loaded and from the first shutdown signal on.
    pub ready: Arc<AtomicBool>,
    /// Bearer token for /admin/*; empty: open.
    pub token: Secret,
}

/// Serves the admin API on `listener` until `stop` fires.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>, stop: CancellationToken) {
    let metrics = state.shared.metrics.clone();
    let upkeep = tokio::spawn(periodic_upkeep(metrics, stop.clone()));
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let state = state.clone();
        let service = hyper::service::service_fn(move |req| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(handle(&state, req)) }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = conn => {}
                () = stop.cancelled() => {}
            }
        });
    }
    upkeep.abort();
}

async fn periodic_upkeep(metrics: Arc<Metrics>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(UPKEEP_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => metrics.upkeep(),
            () = stop.cancelled() => return,
        }
    }
}

fn handle(state: &AdminState, req: Request<Incoming>) -> Response<ResponseBody> {
    let path = req.uri().path();
    match (req.method(), path) {
        (&Method::GET, "/metrics") => {
            state.shared.metrics.upkeep();
            let text = state.shared.metrics.render();
            let mut response = Response::new(ResponseBody::full(Bytes::from(text)));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        (&Method::GET, "/healthz") => plain(StatusCode::OK, "ok\n"),
        (&Method::GET, "/readyz") => {
            if state.ready.load(Ordering::Acquire) {
                plain(StatusCode::OK, "ready\n")
            } else {
                plain(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
            }
        }
        (_, p) if p.starts_with("/admin/") || p == "/admin" => {
            if !auth::authorized(&state.token, req.headers()) {
                return json(
                    StatusCode::UNAUTHORIZED,
                    r#"{"error":"unauthorized"}"#.into(),
                );
            }
            json(StatusCode::NOT_FOUND, r#"{"error":"not_found"}"#.into())
        }
        _ => plain(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// A JSON answer.
fn json(status: StatusCode, body: String) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
