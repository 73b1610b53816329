//! The admin listener (SPEC §6): /metrics, /healthz, /readyz, and the token-guarded
//! /admin/* API. It answers until the process exits, including while draining.

pub mod auth;
pub mod scrape;
pub mod upstreams;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::proxy::Shared;
use crate::proxy::body::ResponseBody;
use crate::proxy::local_response::plain;
use crate::reload::Reloader;

/// What the admin endpoints read.
#[derive(Debug)]
pub struct AdminState {
    /// Routing table and metrics of the running proxy.
    pub shared: Arc<Shared>,
    /// False before config is loaded and from the first shutdown signal on.
    pub ready: Arc<AtomicBool>,
    /// Applies `POST /admin/reload`.
    pub reloader: Arc<Reloader>,
}

/// Serves the admin API on `listener` until `stop` fires.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>, stop: CancellationToken) {
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
            async move { Ok::<_, Infallible>(handle(&state, req).await) }
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
}

async fn handle(state: &AdminState, req: Request<Incoming>) -> Response<ResponseBody> {
    let path = req.uri().path();
    match (req.method(), path) {
        (&Method::GET, "/metrics") => {
            // Rendering 10,000 upstreams takes a good part of a second: a blocking thread
            // does it, so a scrape never stalls the proxy's request threads.
            let shared = state.shared.clone();
            let rendered = tokio::task::spawn_blocking(move || {
                scrape::render(&shared.metrics, &shared.router.load())
            })
            .await;
            let Ok(text) = rendered else {
                return plain(StatusCode::INTERNAL_SERVER_ERROR, "rendering failed\n");
            };
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
            if !auth::authorized(&state.shared.admin_token.load(), req.headers()) {
                return json(
                    StatusCode::UNAUTHORIZED,
                    r#"{"error":"unauthorized"}"#.into(),
                );
            }
            admin_api(state, req).await
        }
        _ => plain(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// The token-guarded /admin/* endpoints.
async fn admin_api(state: &AdminState, req: Request<Incoming>) -> Response<ResponseBody> {
    match (req.method(), req.uri().path()) {
        (&Method::POST, "/admin/reload") => match state.reloader.reload("admin").await {
            Ok(summary) => {
                let body = serde_json::json!({
                    "result": "success",
                    "added": summary.added,
                    "changed": summary.changed,
                    "removed": summary.removed,
                    "unchanged": summary.unchanged,
                });
                json(StatusCode::OK, body.to_string())
            }
            Err(e) => {
                let body = serde_json::json!({ "result": "failure", "errors": e.lines() });
                json(StatusCode::BAD_REQUEST, body.to_string())
            }
        },
        (&Method::GET, "/admin/config") => {
            let config = state.reloader.current().await;
            json(
                StatusCode::OK,
                crate::config::json::effective_json(&config).to_string(),
            )
        }
        (_, "/admin/reload") => json(
            StatusCode::METHOD_NOT_ALLOWED,
            r#"{"error":"method_not_allowed"}"#.into(),
        ),
        (_, path) if path == "/admin/upstreams" || path.starts_with("/admin/upstreams/") => {
            upstreams_api(state, req).await
        }
        _ => json(StatusCode::NOT_FOUND, r#"{"error":"not_found"}"#.into()),
    }
}

/// Largest breaker-action body read.
const MAX_ACTION_BODY: usize = 16 * 1024;

/// `/admin/upstreams`, `/admin/upstreams/{name}` and `/admin/upstreams/{name}/breaker`.
async fn upstreams_api(state: &AdminState, req: Request<Incoming>) -> Response<ResponseBody> {
    use upstreams::ActionError;
    let path = req.uri().path().to_owned();
    let rest = path.strip_prefix("/admin/upstreams").unwrap_or("");
    let router = state.shared.router.load_full();
    let method = req.method().clone();
    match (&method, rest.trim_start_matches('/').split_once('/')) {
        (&Method::GET, None) if rest.is_empty() || rest == "/" => {
            json(StatusCode::OK, upstreams::list(&router).to_string())
        }
        (&Method::GET, None) => match upstreams::one(&router, &rest[1..]) {
            Some(view) => json(StatusCode::OK, view.to_string()),
            None => unknown_upstream(&rest[1..]),
        },
        (&Method::POST, Some((name, "breaker"))) => {
            let body = match http_body_util::Limited::new(req.into_body(), MAX_ACTION_BODY)
                .collect()
                .await
            {
                Ok(b) => b.to_bytes(),
                Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", &e.to_string()),
            };
            match upstreams::act(&router, name, &body) {
                Ok(view) => json(StatusCode::OK, view.to_string()),
                Err(ActionError::UnknownUpstream) => unknown_upstream(name),
                Err(ActionError::BadRequest(m)) => {
                    error(StatusCode::BAD_REQUEST, "bad_request", &m)
                }
                Err(ActionError::UnknownAction(a)) => error(
                    StatusCode::BAD_REQUEST,
                    "unknown_action",
                    &format!("unknown action \"{a}\"; expected force-open, disable or reset"),
                ),
                Err(ActionError::NoBreaker) => error(
                    StatusCode::CONFLICT,
                    "no_breaker",
                    "this upstream runs with circuit_breaker: off",
                ),
            }
        }
        (_, Some((_, "breaker"))) | (_, None) => json(
            StatusCode::METHOD_NOT_ALLOWED,
            r#"{"error":"method_not_allowed"}"#.into(),
        ),
        _ => json(StatusCode::NOT_FOUND, r#"{"error":"not_found"}"#.into()),
    }
}

fn unknown_upstream(name: &str) -> Response<ResponseBody> {
    error(
        StatusCode::NOT_FOUND,
        "unknown_upstream",
        &format!("no upstream named \"{name}\""),
    )
}

/// `{"error": code, "message": ...}`.
fn error(status: StatusCode, code: &str, message: &str) -> Response<ResponseBody> {
    json(
        status,
        serde_json::json!({ "error": code, "message": message }).to_string(),
    )
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
