//! One endpoint's connections: idle HTTP/1.1 connections on a stack (the most recently used
//! first, so the rest can age out) and one shared HTTP/2 connection. A connection returns to
//! the stack when its response body has been read to the end; a reused connection that turns
//! out closed before the request was written is replaced transparently, since nothing was
//! sent. Idle connections close after `timeouts.idle`.
//!
//! Plain HTTP/1.1 requests whose body is in memory go through rampart's own client (`h1`);
//! a streamed body goes through hyper's, which takes over an idle connection's socket when
//! it gets one. Either kind of idle connection serves either kind of request.
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
use crate::upstream::client::{self, Conn, ConnectError, Connector};
use crate::upstream::endpoint::Endpoint;
use crate::upstream::h1::{self, H1Body, H1Conn};
use crate::upstream::outgoing::Outgoing;

/// A response body's error, from either client.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

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
    /// rampart's own client: the exchange failed after the request started.
    #[error("{0}")]
    Exchange(h1::Error),
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
    conn: Pooled,
    since: Instant,
}

impl Idle {
    /// Still open and idle for less than `max_idle` at `now`.
    fn usable(&self, now: Instant, max_idle: Duration) -> bool {
        now.duration_since(self.since) < max_idle && self.conn.is_open()
    }
}

/// An idle HTTP/1.1 connection of either client.
#[derive(Debug)]
enum Pooled {
    Own(H1Conn),
    Hyper(http1::SendRequest<RequestBody>),
}

impl Pooled {
    fn is_open(&self) -> bool {
        match self {
            Pooled::Own(conn) => conn.is_open(),
            Pooled::Hyper(sender) => !sender.is_closed(),
        }
    }
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
    ///
    /// A block, not an `async fn`: it keeps one copy of each argument (see
    /// `proxy::Handler`).
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn keeps its arguments twice"
    )]
    pub fn send(
        self: &Arc<Self>,
        connector: &Connector,
        endpoint: &Endpoint,
        req: Outgoing<'_>,
    ) -> impl Future<Output = Result<Response<PooledBody>, SendError>> + Send {
        async move {
            let own = in_memory(req.body()) && endpoint.scheme != http::uri::Scheme::HTTPS;
            // The usual case inline: an idle connection of rampart's own client on top of
            // the stack. Everything else (hyper's clients, a new connection) is a larger
            // future that every request would carry and move if it were inline here, so it
            // is boxed. Own-client connections exist only for plain endpoints that answered
            // HTTP/1.1, so trying them before the shared HTTP/2 connection changes nothing.
            if own {
                while let Some(Pooled::Own(conn)) = self.checkout(|c| matches!(c, Pooled::Own(_))) {
                    if let Some(result) = self.send_on_idle(conn, &req, endpoint).await {
                        req.recycle();
                        return result;
                    }
                }
            }
            Box::pin(self.send_any(connector, endpoint, req, own)).await
        }
    }

    /// [`send`](Self::send) on whatever the pool holds: the shared HTTP/2 connection, an
    /// idle HTTP/1.1 one of either client, or a new connection.
    async fn send_any(
        self: &Arc<Self>,
        connector: &Connector,
        endpoint: &Endpoint,
        mut req: Outgoing<'_>,
        own: bool,
    ) -> Result<Response<PooledBody>, SendError> {
        if let Some(mut sender) = self.shared_h2() {
            let mut req = req.into_request();
            to_absolute_form(&mut req, endpoint);
            *req.version_mut() = Version::HTTP_2;
            return match sender.try_send_request(req).await {
                Ok(response) => Ok(response.map(PooledBody::unpooled)),
                Err(mut e) => match e.take_message() {
                    // The shared connection closed before this request was written.
                    Some(req) => self.send_fresh(connector, endpoint, req.into(), own).await,
                    None => Err(SendError::Request(e.into_error())),
                },
            };
        }
        while let Some(conn) = self.checkout(|_| true) {
            let mut sender = match conn {
                Pooled::Own(conn) if own => match self.send_on_idle(conn, &req, endpoint).await {
                    Some(result) => return result,
                    None => continue,
                },
                Pooled::Own(conn) => match client::hyper_http1(conn).await {
                    Ok(sender) => sender,
                    Err(_) => continue,
                },
                Pooled::Hyper(sender) => sender,
            };
            // Ready once the previous exchange is fully done; an error means it closed.
            if sender.ready().await.is_err() {
                continue;
            }
            let mut owned = req.into_request();
            to_origin_form(&mut owned, endpoint);
            match sender.try_send_request(owned).await {
                Ok(response) => return Ok(self.pooled(response, sender)),
                Err(mut e) => match e.take_message() {
                    // Closed by the endpoint before this request was written: another.
                    Some(back) => req = back.into(),
                    None => return Err(SendError::Request(e.into_error())),
                },
            }
        }
        self.send_fresh(connector, endpoint, req, own).await
    }

    /// Opens a connection for `req`; a failure here is the endpoint's, never retried inside.
    /// `own`: a plain HTTP/1.1 connection uses rampart's own client.
    async fn send_fresh(
        self: &Arc<Self>,
        connector: &Connector,
        endpoint: &Endpoint,
        req: Outgoing<'_>,
        own: bool,
    ) -> Result<Response<PooledBody>, SendError> {
        let connecting = if connector.prefers_h2() || self.speaks_h2.load(Ordering::Relaxed) {
            let guard = self.h2_connecting.lock().await;
            // Another request may have opened the shared connection meanwhile.
            if let Some(mut sender) = self.shared_h2() {
                let mut req = req.into_request();
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
        let conn = connector.connect(endpoint, own).await?;
        self.speaks_h2
            .store(matches!(conn, Conn::Http2(_)), Ordering::Relaxed);
        match conn {
            Conn::Own(mut conn) => match exchange(&mut conn, &req, endpoint).await {
                Ok(head) => Ok(self.own_response(conn, head)),
                Err(failure) => Err(SendError::Exchange(failure.error)),
            },
            Conn::Http1(mut sender) => {
                let mut req = req.into_request();
                to_origin_form(&mut req, endpoint);
                *req.version_mut() = Version::HTTP_11;
                let response = sender.send_request(req).await.map_err(SendError::Request)?;
                Ok(self.pooled(response, sender))
            }
            Conn::Http2(mut sender) => {
                let mut req = req.into_request();
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

    /// The most recently returned idle connection that is still open and young enough,
    /// while the one on top is one `take` wants; unusable ones on top are dropped on the way.
    fn checkout(&self, take: impl Fn(&Pooled) -> bool) -> Option<Pooled> {
        let now = Instant::now();
        let mut idle = self.idle.lock().expect("idle stack");
        while let Some(entry) = idle.pop_if(|entry| take(&entry.conn)) {
            if entry.usable(now, self.max_idle) {
                return Some(entry.conn);
            }
        }
        None
    }

    /// One exchange on an idle own-client connection. `None`: the endpoint had closed it
    /// before any of the request was written, so the request can go on another.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn keeps its arguments twice"
    )]
    fn send_on_idle(
        self: &Arc<Self>,
        mut conn: H1Conn,
        req: &Outgoing<'_>,
        endpoint: &Endpoint,
    ) -> impl Future<Output = Option<Result<Response<PooledBody>, SendError>>> {
        async move {
            match exchange(&mut conn, req, endpoint).await {
                Ok(head) => Some(Ok(self.own_response(conn, head))),
                Err(failure) if failure.unsent => None,
                Err(failure) => Some(Err(SendError::Exchange(failure.error))),
            }
        }
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
        response.map(|body| {
            PooledBody(Inner::Hyper {
                body,
                checkin: Some(checkin),
            })
        })
    }

    fn own_response(self: &Arc<Self>, conn: H1Conn, head: h1::Head) -> Response<PooledBody> {
        let pool = Arc::downgrade(self);
        conn.response(head)
            .map(|body| PooledBody(Inner::Own { body, pool }))
    }

    /// Puts a connection whose exchange is complete back on the stack.
    fn put(self: &Arc<Self>, conn: Pooled) {
        if let Pooled::Hyper(sender) = &conn
            && sender.is_closed()
        {
            return;
        }
        {
            let mut idle = self.idle.lock().expect("idle stack");
            if idle.len() >= MAX_IDLE {
                return;
            }
            idle.push(Idle {
                conn,
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
        idle.retain(|entry| entry.usable(now, pool.max_idle));
        if idle.is_empty() {
            pool.reaping.store(false, Ordering::Release);
            return;
        }
    }
}

/// True when the body is in memory and small enough for rampart's own client.
fn in_memory(body: &RequestBody) -> bool {
    match body {
        RequestBody::Buffered(body) => body.as_ref().is_none_or(|b| b.len() <= h1::MAX_BODY),
        _ => false,
    }
}

/// One exchange on rampart's own client; `req`'s body is in memory. The head goes out in
/// origin-form, with the endpoint's authority as Host when the app sent none.
async fn exchange(
    conn: &mut H1Conn,
    req: &Outgoing<'_>,
    endpoint: &Endpoint,
) -> Result<h1::Head, h1::SendFailure> {
    let body = match req.body() {
        RequestBody::Buffered(body) => body.as_ref(),
        _ => None,
    };
    let head = h1::RequestHead {
        method: req.method(),
        uri: req.uri(),
        headers: req.headers(),
        forwarding: req.forwarding,
        default_host: endpoint.authority.as_str(),
    };
    conn.send(head, body).await
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
            pool.put(Pooled::Hyper(self.sender));
        }
    }
}

/// An upstream response body; returns its connection to the pool once read to the end.
#[derive(Debug)]
pub struct PooledBody(Inner);

#[derive(Debug)]
enum Inner {
    Hyper {
        body: Incoming,
        checkin: Option<Checkin>,
    },
    Own {
        body: H1Body,
        pool: Weak<EndpointPool>,
    },
}

impl PooledBody {
    fn unpooled(body: Incoming) -> Self {
        Self(Inner::Hyper {
            body,
            checkin: None,
        })
    }

    /// Whether its response's hop-by-hop headers were left out when the head was parsed,
    /// as rampart's own client does (`h1::response_head`); hyper's keeps them.
    pub fn hop_by_hop_removed(&self) -> bool {
        matches!(self.0, Inner::Own { .. })
    }
}

/// Returns an own-client connection whose body is complete to its pool.
fn give_back_own(body: &mut H1Body, pool: &Weak<EndpointPool>) {
    if let Some(conn) = body.take_idle()
        && let Some(pool) = pool.upgrade()
    {
        pool.put(Pooled::Own(conn));
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match &mut self.get_mut().0 {
            Inner::Hyper { body, checkin } => {
                let polled = Pin::new(body).poll_frame(cx);
                match &polled {
                    Poll::Ready(None) => {
                        if let Some(checkin) = checkin.take() {
                            checkin.give_back();
                        }
                    }
                    // A broken body leaves its connection unusable.
                    Poll::Ready(Some(Err(_))) => *checkin = None,
                    _ => {}
                }
                polled.map_err(Into::into)
            }
            Inner::Own { body, pool } => {
                let polled = Pin::new(&mut *body).poll_frame(cx);
                if let Poll::Ready(None) = polled {
                    give_back_own(body, pool);
                }
                polled.map_err(Into::into)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Inner::Hyper { body, .. } => body.is_end_stream(),
            Inner::Own { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Inner::Hyper { body, .. } => body.size_hint(),
            Inner::Own { body, .. } => body.size_hint(),
        }
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // A body with nothing left (HEAD, 204, Content-Length: 0, or the last bytes read) may
        // never be polled to its end.
        match &mut self.0 {
            Inner::Hyper { body, checkin } => {
                if body.is_end_stream()
                    && let Some(checkin) = checkin.take()
                {
                    checkin.give_back();
                }
            }
            Inner::Own { body, pool } => give_back_own(body, pool),
        }
    }
}
