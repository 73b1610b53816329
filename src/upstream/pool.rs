//! One endpoint's connections: idle HTTP/1.1 connections on a stack (the most recently used
//! first, so the rest can age out) and one shared HTTP/2 connection. A connection returns to
//! the stack when its response body has been read to the end; a reused connection that turns
//! out closed before the request was written is replaced transparently, since nothing was
//! sent. Idle connections close after `timeouts.idle`.
//!
//! Why not hyper-util's pool: it is keyed by scheme and authority (a SipHash per checkout and
//! per return) and wraps every request in a large future; here the endpoint is known, so the
//! pool is a short critical section on an uncontended mutex.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderValue, Request, Response, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use tokio::time::Instant;

use crate::proxy::body::RequestBody;
use crate::upstream::client::{Conn, ConnectError, Connector};
use crate::upstream::endpoint::Endpoint;

/// Idle HTTP/1.1 connections kept per endpoint; more are closed when they come back.
const MAX_IDLE: usize = 256;

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection could be opened: nothing was sent.
    #[error("connect: {0}")]
    Connect(#[from] ConnectError),
    /// The connection failed after the request started; `is_user()` when the request's own
    /// body failed.
    #[error("{0}")]
    Request(hyper::Error),
}

/// The pooled connections of one endpoint.
#[derive(Debug)]
pub struct EndpointPool {
    idle: Mutex<Vec<Idle>>,
    h2: Mutex<Option<http2::SendRequest<RequestBody>>>,
    /// Held while an HTTP/2 connection is being opened, so concurrent first requests share
    /// one instead of each opening their own.
    h2_connecting: tokio::sync::Mutex<()>,
    /// The endpoint spoke HTTP/2 (prior knowledge or ALPN) the last time it was connected.
    speaks_h2: AtomicBool,
    /// A reaper task is running for this pool.
    reaping: AtomicBool,
    /// `timeouts.idle`.
    max_idle: Duration,
}

#[derive(Debug)]
struct Idle {
    sender: http1::SendRequest<RequestBody>,
    since: Instant,
}

// === impl EndpointPool ===

impl EndpointPool {
    /// An empty pool whose idle connections close after `max_idle`.
    pub fn new(max_idle: Duration) -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
            h2: Mutex::new(None),
            h2_connecting: tokio::sync::Mutex::new(()),
            speaks_h2: AtomicBool::new(false),
            reaping: AtomicBool::new(false),
            max_idle,
        }
    }

    /// Sends `req` on a pooled or new connection, until response headers. Its target is
    /// origin-form (a try) or absolute with the endpoint's authority (a health probe); the
    /// connection's protocol decides the form that goes out.
    pub async fn send(
        self: &Arc<Self>,
        connector: &Connector,
        endpoint: &Endpoint,
        mut req: Request<RequestBody>,
    ) -> Result<Response<PooledBody>, SendError> {
        if let Some(mut sender) = self.shared_h2() {
            to_absolute_form(&mut req, endpoint);
            *req.version_mut() = Version::HTTP_2;
            return match sender.try_send_request(req).await {
                Ok(response) => Ok(response.map(PooledBody::unpooled)),
                Err(mut e) => match e.take_message() {
                    // The shared connection closed before this request was written.
                    Some(req) => Box::pin(self.send_fresh(connector, endpoint, req)).await,
                    None => Err(SendError::Request(e.into_error())),
                },
            };
        }
        while let Some(mut sender) = self.checkout() {
            // Ready once the previous exchange is fully done; an error means it closed.
            if sender.ready().await.is_err() {
                continue;
            }
            to_origin_form(&mut req, endpoint);
            match sender.try_send_request(req).await {
                Ok(response) => return Ok(self.pooled(response, sender)),
                Err(mut e) => match e.take_message() {
                    // Closed by the endpoint before this request was written: another.
                    Some(back) => req = back,
                    None => return Err(SendError::Request(e.into_error())),
                },
            }
        }
        // Boxed: opening a connection (TCP, TLS, handshake) is a large future that most
        // requests never need, and inline it would make every request's future that large.
        Box::pin(self.send_fresh(connector, endpoint, req)).await
    }

    /// Opens a connection for `req`; a failure here is the endpoint's, never retried inside.
    async fn send_fresh(
        self: &Arc<Self>,
        connector: &Connector,
        endpoint: &Endpoint,
        mut req: Request<RequestBody>,
    ) -> Result<Response<PooledBody>, SendError> {
        let connecting = if connector.prefers_h2() || self.speaks_h2.load(Ordering::Relaxed) {
            let guard = self.h2_connecting.lock().await;
            // Another request may have opened the shared connection meanwhile.
            if let Some(mut sender) = self.shared_h2() {
                to_absolute_form(&mut req, endpoint);
                *req.version_mut() = Version::HTTP_2;
                return sender
                    .send_request(req)
                    .await
                    .map(|response| response.map(PooledBody::unpooled))
                    .map_err(SendError::Request);
            }
            Some(guard)
        } else {
            None
        };
        let conn = connector.connect(endpoint).await?;
        self.speaks_h2
            .store(matches!(conn, Conn::Http2(_)), Ordering::Relaxed);
        match conn {
            Conn::Http1(mut sender) => {
                to_origin_form(&mut req, endpoint);
                *req.version_mut() = Version::HTTP_11;
                let response = sender.send_request(req).await.map_err(SendError::Request)?;
                Ok(self.pooled(response, sender))
            }
            Conn::Http2(mut sender) => {
                to_absolute_form(&mut req, endpoint);
                *req.version_mut() = Version::HTTP_2;
                *self.h2.lock().expect("h2 slot") = Some(sender.clone());
                drop(connecting);
                let response = sender.send_request(req).await.map_err(SendError::Request)?;
                Ok(response.map(PooledBody::unpooled))
            }
        }
    }

    /// The endpoint's HTTP/2 connection, when one is open.
    fn shared_h2(&self) -> Option<http2::SendRequest<RequestBody>> {
        let mut slot = self.h2.lock().expect("h2 slot");
        match slot.as_ref() {
            Some(sender) if !sender.is_closed() => Some(sender.clone()),
            Some(_) => {
                *slot = None;
                None
            }
            None => None,
        }
    }

    /// The most recently returned idle connection that is still open and young enough.
    fn checkout(&self) -> Option<http1::SendRequest<RequestBody>> {
        let now = Instant::now();
        let mut idle = self.idle.lock().expect("idle stack");
        while let Some(entry) = idle.pop() {
            if !entry.sender.is_closed() && now.duration_since(entry.since) < self.max_idle {
                return Some(entry.sender);
            }
        }
        None
    }

    fn pooled(
        self: &Arc<Self>,
        response: Response<Incoming>,
        sender: http1::SendRequest<RequestBody>,
    ) -> Response<PooledBody> {
        let checkin = Checkin {
            pool: Arc::downgrade(self),
            sender,
        };
        response.map(|body| PooledBody {
            body,
            checkin: Some(checkin),
        })
    }

    /// Puts a connection whose exchange is complete back on the stack.
    fn put(self: &Arc<Self>, sender: http1::SendRequest<RequestBody>) {
        if sender.is_closed() {
            return;
        }
        {
            let mut idle = self.idle.lock().expect("idle stack");
            if idle.len() >= MAX_IDLE {
                return;
            }
            idle.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
        if !self.reaping.swap(true, Ordering::AcqRel) {
            tokio::spawn(reap(Arc::downgrade(self)));
        }
    }

    /// Idle HTTP/1.1 connections now (for tests and the admin view).
    pub fn idle_count(&self) -> usize {
        self.idle.lock().expect("idle stack").len()
    }
}

/// Closes idle connections older than `max_idle` until the pool is empty or gone.
async fn reap(pool: Weak<EndpointPool>) {
    loop {
        let every = match pool.upgrade() {
            Some(pool) => (pool.max_idle / 2).max(Duration::from_millis(10)),
            None => return,
        };
        tokio::time::sleep(every).await;
        let Some(pool) = pool.upgrade() else { return };
        let now = Instant::now();
        let mut idle = pool.idle.lock().expect("idle stack");
        idle.retain(|entry| {
            !entry.sender.is_closed() && now.duration_since(entry.since) < pool.max_idle
        });
        if idle.is_empty() {
            pool.reaping.store(false, Ordering::Release);
            return;
        }
    }
}

/// HTTP/1.1 wants origin-form and a Host header (the app's, kept by the proxy; else the
/// endpoint's).
fn to_origin_form(req: &mut Request<RequestBody>, endpoint: &Endpoint) {
    if !req.headers().contains_key(http::header::HOST)
        && let Ok(host) = HeaderValue::from_str(endpoint.authority.as_str())
    {
        req.headers_mut().insert(http::header::HOST, host);
    }
    if req.uri().scheme().is_some() || req.uri().authority().is_some() {
        let path = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *req.uri_mut() = Uri::from(path);
    }
    *req.version_mut() = Version::HTTP_11;
}

/// HTTP/2 wants the scheme and authority (`:scheme`, `:authority`): the endpoint's.
fn to_absolute_form(req: &mut Request<RequestBody>, endpoint: &Endpoint) {
    if req.uri().authority().is_some() {
        return;
    }
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(endpoint.scheme.clone());
    parts.authority = Some(endpoint.authority.clone());
    parts.path_and_query = Some(
        req.uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
    );
    if let Ok(uri) = Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
}

/// An HTTP/1.1 connection on loan to one response; back to its pool when the body is done.
#[derive(Debug)]
struct Checkin {
    pool: Weak<EndpointPool>,
    sender: http1::SendRequest<RequestBody>,
}

impl Checkin {
    fn give_back(self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.put(self.sender);
        }
    }
}

/// An upstream response body; returns its connection to the pool once read to the end.
#[derive(Debug)]
pub struct PooledBody {
    body: Incoming,
    checkin: Option<Checkin>,
}

impl PooledBody {
    fn unpooled(body: Incoming) -> Self {
        Self {
            body,
            checkin: None,
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => {
                if let Some(checkin) = self.checkin.take() {
                    checkin.give_back();
                }
            }
            // A broken body leaves its connection unusable.
            Poll::Ready(Some(Err(_))) => self.checkin = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // A body with nothing left (HEAD, 204, Content-Length: 0) may never be polled.
        if self.body.is_end_stream()
            && let Some(checkin) = self.checkin.take()
        {
            checkin.give_back();
        }
    }
}
