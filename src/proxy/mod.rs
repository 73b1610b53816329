//! The per-request service on every client connection: request id, overrides, routing, the
//! upstream stack, generated answers, `requests_total`, and one access-log event.

pub mod app_body;
pub mod body;
pub mod connect;
pub mod head;
pub mod headers;
pub mod local_response;
pub mod overrides;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use http::{HeaderValue, Method, Request, Response};
use hyper::body::Incoming;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{ConnectPolicy, LimitsPolicy};
use crate::error::ProxyError;
use crate::metrics::{Metrics, UpstreamMetrics};
use crate::routing::{Miss, RouteKey, Router};
use crate::secret::Secret;
use crate::upstream::try_timer::TryTimer;
use crate::upstream::{Exchange, Forward, Upstream};
use app_body::{AppBody, Unread};
use body::{RequestBody, ResponseBody};
use headers::{X_RAMPART_ATTEMPTS, X_RAMPART_UPSTREAM, X_REQUEST_ID};

/// State shared by every connection of one running app.
#[derive(Debug)]
pub struct Shared {
    /// The current routing table; a reload swaps it atomically.
    pub router: ArcSwap<Router>,
    /// The app's metrics registry.
    pub metrics: Arc<Metrics>,
    /// `limits.max_request_header_bytes` (reloadable).
    pub max_header_bytes: AtomicUsize,
    /// `admin.token` (reloadable); empty: the admin API is open.
    pub admin_token: ArcSwap<Secret>,
    /// `connect` (reloadable): where CONNECT tunnels may go.
    pub connect: ArcSwap<ConnectPolicy>,
    /// CONNECT tunnels outlive their request; shutdown waits for them...
    pub tunnels: TaskTracker,
    /// ...then cuts them through this token.
    pub cancel: CancellationToken,
}

impl Shared {
    /// State for a fresh app.
    pub fn new(
        router: Router,
        metrics: Arc<Metrics>,
        limits: &LimitsPolicy,
        admin_token: Secret,
    ) -> Self {
        Self {
            router: ArcSwap::from_pointee(router),
            metrics,
            max_header_bytes: AtomicUsize::new(limits.max_request_header_bytes),
            admin_token: ArcSwap::from_pointee(admin_token),
            connect: ArcSwap::from_pointee(ConnectPolicy::default()),
            tunnels: TaskTracker::new(),
            cancel: CancellationToken::new(),
        }
    }

    /// Applies reloaded limits that are read per request.
    pub fn apply_limits(&self, limits: &LimitsPolicy) {
        self.max_header_bytes
            .store(limits.max_request_header_bytes, Ordering::Relaxed);
    }

    /// Replaces the admin token after a reload.
    pub fn set_admin_token(&self, token: Secret) {
        self.admin_token.store(Arc::new(token));
    }

    /// Applies the configured (or reloaded) CONNECT policy.
    pub fn set_connect_policy(&self, policy: ConnectPolicy) {
        self.connect.store(Arc::new(policy));
    }
}

/// Where a connection arrived.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    /// The app's address (for `x-forwarded-for` and keyed limits).
    pub client: SocketAddr,
    /// Set on an upstream's dedicated listener: everything goes there.
    pub dedicated: Option<Arc<str>>,
    /// `client`'s IP as a header value, formatted once per connection.
    client_ip: HeaderValue,
    /// The per-try timer this connection's requests reuse.
    try_timer: TryTimer,
}

impl ConnInfo {
    /// A connection from `client`, on a dedicated listener when `dedicated` is set.
    pub fn new(client: SocketAddr, dedicated: Option<Arc<str>>) -> Self {
        Self {
            client,
            dedicated,
            client_ip: headers::client_ip_value(client.ip()),
            try_timer: TryTimer::default(),
        }
    }
}

/// What answers one client connection's requests, whichever HTTP/1.1 or HTTP/2 server
/// reads them: hyper's ([`service`]) or rampart's own loop for body-less HTTP/1.1 requests
/// (`server::h1`). Its per-request future is a concrete (inferred) type, so hyper keeps it
/// in the connection's one future slot: a boxed `dyn Future` cost an allocation and a free
/// of about 3 KiB per request, a size glibc's thread cache does not keep. The future owns
/// what it uses through one `Arc`, the connection's, which holds the app's state too: one
/// reference count per request.
///
/// hyper moves that future into its slot, and each layer below moves its inner future
/// into its own state, so every byte of it is copied several times per request. Hence the
/// layers are functions that do their synchronous work first and return an `async move`
/// block, not `async fn`s: an `async fn` keeps each argument twice in its future (the
/// captured value and the local it is bound to), and a local that was ever borrowed keeps
/// its slot until its scope ends, even once moved on.
#[derive(Clone)]
pub struct Handler(Arc<(Arc<Shared>, ConnInfo)>);

impl Handler {
    /// The handler of a connection from `conn`.
    pub fn new(shared: Arc<Shared>, conn: ConnInfo) -> Self {
        Self(Arc::new((shared, conn)))
    }

    /// Answers `req`; its body is read through [`IntoAppBody`].
    pub fn handle<B: IntoAppBody>(
        &self,
        req: Request<B>,
    ) -> impl Future<Output = Result<Response<ResponseBody>, Infallible>> + Send + 'static + use<B>
    {
        let prepared = prepare(&self.0.0, &self.0.1, req);
        respond(self.0.clone(), prepared)
    }
}

/// A request body as the server hands it over, turned into the [`AppBody`] rampart reads.
pub trait IntoAppBody {
    /// Wraps the body of a request of `version`; `expects`: it carries `Expect`.
    fn into_app_body(self, version: http::Version, expects: bool) -> (AppBody, Unread);
}

impl IntoAppBody for Incoming {
    fn into_app_body(self, version: http::Version, expects: bool) -> (AppBody, Unread) {
        AppBody::new(self, version, expects)
    }
}

/// No body at all: what rampart's own HTTP/1.1 loop hands over.
impl IntoAppBody for () {
    fn into_app_body(self, _: http::Version, _: bool) -> (AppBody, Unread) {
        (AppBody::empty(), Unread::default())
    }
}

/// hyper's service for one client connection (HTTP/2, and HTTP/1.1 requests that rampart's
/// own loop hands over).
pub fn service(
    handler: Handler,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<ResponseBody>,
    Error = Infallible,
    Future: Send + 'static,
> + Clone
+ Send
+ 'static {
    hyper::service::service_fn(move |req| handler.handle(req))
}

/// What the access log and metrics need to know about a finished request.
#[derive(Clone, Copy)]
struct Done<'a> {
    meta: &'a Meta,
    upstream: Option<&'a Arc<Upstream>>,
    attempts: u32,
}

/// A request's own facts for its log line and metrics, kept while it is away upstream.
struct Meta {
    started: Instant,
    request_id: HeaderValue,
    method: Method,
    /// Whether the request body is unfinished beyond what rampart reads to its end.
    unread: Unread,
}

impl Meta {
    fn done<'a>(&'a self, upstream: Option<&'a Arc<Upstream>>, attempts: u32) -> Done<'a> {
        Done {
            meta: self,
            upstream,
            attempts,
        }
    }
}

/// A request once its head is checked and routed, before anything is awaited.
enum Prepared {
    /// Answered here: refused, or no route.
    Answered(Response<ResponseBody>),
    /// A CONNECT tunnel through the upstream.
    Tunnel(Meta, Arc<Upstream>, Request<AppBody>),
    /// A request for the upstream's stack, and the app's HTTP version.
    Forward(
        Meta,
        Arc<Upstream>,
        Request<RequestBody>,
        Forward,
        http::Version,
    ),
}

/// The part of a request's handling that awaits: the upstream's answer, or a tunnel.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn keeps its arguments twice"
)]
fn respond(
    both: Arc<(Arc<Shared>, ConnInfo)>,
    prepared: Prepared,
) -> impl Future<Output = Result<Response<ResponseBody>, Infallible>> + Send + 'static {
    async move {
        let shared = &both.0;
        Ok(match prepared {
            Prepared::Answered(response) => response,
            Prepared::Tunnel(meta, upstream, req) => {
                let waiting = Abandoned::arm(shared, meta.done(Some(&upstream), 1));
                let result = connect::tunnel(shared, &upstream, req, both.1.client.ip()).await;
                finish(shared, waiting.disarm(), result)
            }
            Prepared::Forward(meta, upstream, req, fwd, version) => {
                let waiting = Abandoned::arm(shared, meta.done(Some(&upstream), 0));
                let Exchange { result, attempts } = upstream.call(req, fwd, &shared.router).await;
                let done = Done {
                    attempts,
                    ..waiting.disarm()
                };
                let result = result.map(|mut response| {
                    // Answer in the app's protocol, not the upstream's: an HTTP/1.0 upstream
                    // must not make the app's keep-alive connection close. An HTTP/1 answer
                    // says 1.1 even to an HTTP/1.0 app: hyper then writes `HTTP/1.0` with
                    // `connection: keep-alive` when the app asked for it, where a 1.0 answer
                    // would close every such connection.
                    *response.version_mut() = version.max(http::Version::HTTP_11);
                    let clean = response.body().hop_by_hop_removed();
                    headers::prepare_response(response.headers_mut(), version, clean);
                    response
                });
                finish(shared, done, result)
            }
        })
    }
}

/// Request id, size limit, overrides, route and the upstream's request head: everything
/// before the first await, outside the future hyper moves. It runs when hyper hands over
/// the request: for HTTP/2 in the connection's task, before the stream's task starts, so
/// a request's duration and deadline count from there.
fn prepare<B: IntoAppBody>(shared: &Shared, conn: &ConnInfo, req: Request<B>) -> Prepared {
    let started = Instant::now();
    let present = headers::scan(req.headers());
    let request_id = match present
        .request_id
        .then(|| req.headers().get(&X_REQUEST_ID))
        .flatten()
    {
        Some(id) if !id.is_empty() => id.clone(),
        _ => headers::new_request_id(),
    };
    let method = req.method().clone();
    let (parts, body) = req.into_parts();
    let (body, unread) = body.into_app_body(parts.version, present.expect);
    let req = Request::from_parts(parts, body);
    let meta = Meta {
        started,
        request_id,
        method,
        unread,
    };
    let answer = |e| Prepared::Answered(finish(shared, meta.done(None, 0), Err(e)));

    if headers::head_size(req.method(), req.uri(), present.header_bytes)
        > shared.max_header_bytes.load(Ordering::Relaxed)
    {
        return answer(ProxyError::RequestHeadersTooLarge);
    }
    let overrides = match present.rampart.then(|| overrides::parse(req.headers())) {
        None => overrides::Overrides::default(),
        Some(Ok(o)) => o,
        Some(Err(e)) => return answer(e),
    };
    let upstream = match route(
        &shared.router.load(),
        conn.dedicated.as_deref(),
        &req,
        present,
    ) {
        Ok(upstream) => upstream,
        Err(e) => return answer(e),
    };
    if req.method() == Method::CONNECT {
        return Prepared::Tunnel(meta, upstream, req);
    }

    let (mut parts, body) = req.into_parts();
    let forwarding = headers::prepare_request(
        &mut parts.headers,
        present,
        &parts.uri,
        parts.version,
        &conn.client_ip,
        &meta.request_id,
    );
    let fwd = Forward {
        attempts_cap: overrides.attempts,
        timeout_cap: overrides.timeout,
        client: Some(conn.client.ip()),
        fallback_hops: 0,
        forwarding,
        // HTTP/2 streams run as tasks of their own: each try arms its own timer.
        try_timer: (parts.version <= http::Version::HTTP_11).then(|| conn.try_timer.clone()),
        arrived: Some(started),
    };
    let version = parts.version;
    let req = Request::from_parts(parts, RequestBody::Streaming(body));
    Prepared::Forward(meta, upstream, req, fwd, version)
}

/// The status logged and counted for a request whose app went away first (nginx's 499).
const CLIENT_CLOSED: u16 = 499;

/// Held across the awaits on the upstream: when the app closes its connection (or resets
/// its h2 stream) hyper drops the handler future and `finish` never runs, so this counts
/// the request and writes its access-log line instead. Without it, abandoned requests
/// (often the slow ones an operator is hunting) would vanish from logs and metrics.
struct Abandoned<'a> {
    shared: &'a Shared,
    done: Done<'a>,
    armed: bool,
}

impl<'a> Abandoned<'a> {
    fn arm(shared: &'a Shared, done: Done<'a>) -> Self {
        Self {
            shared,
            done,
            armed: true,
        }
    }

    /// The upstream answered (or failed) while the app was still there.
    fn disarm(mut self) -> Done<'a> {
        self.armed = false;
        self.done
    }
}

impl Drop for Abandoned<'_> {
    fn drop(&mut self) {
        if self.armed {
            record(
                self.shared,
                &self.done,
                CLIENT_CLOSED,
                Some("client_closed"),
            );
        }
    }
}

/// Chooses the upstream for a request head that passes [`head::inspect`]: the dedicated
/// listener's upstream, else the router's answer. `present` is [`headers::scan`] of its
/// headers (no lookup for `x-rampart-upstream` unless some `x-rampart-*` header is there).
/// Pure apart from passthrough's table, so the request-head fuzz target drives it directly.
pub fn route<B>(
    router: &Router,
    dedicated: Option<&str>,
    req: &Request<B>,
    present: headers::Present,
) -> Result<Arc<Upstream>, ProxyError> {
    let target = head::inspect(req.uri(), req.headers(), present)?;
    if let Some(name) = dedicated {
        return router.get(name).cloned().ok_or(ProxyError::NoRoute);
    }
    let by_name = present
        .rampart
        .then(|| req.headers().get(&X_RAMPART_UPSTREAM))
        .flatten();
    let name = match by_name {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ProxyError::BadRequest("x-rampart-upstream is not valid text"))?,
        ),
        None => None,
    };
    let path = if req.method() == Method::CONNECT {
        "/"
    } else {
        req.uri().path()
    };
    let key = RouteKey {
        name,
        host: target.host.as_deref(),
        port: target.port,
        path,
    };
    router.route(key).map_err(|miss| match miss {
        Miss::UnknownName | Miss::NoMatch => ProxyError::NoRoute,
    })
}

/// Turns the result into the response the app gets, then counts and logs it.
fn finish(
    shared: &Shared,
    done: Done<'_>,
    result: Result<Response<ResponseBody>, ProxyError>,
) -> Response<ResponseBody> {
    let upstream_name = done.upstream.map(|u| u.label());
    let (mut response, error) = match result {
        Ok(response) => (response, None),
        Err(e) => (
            local_response::local_response(&e, upstream_name),
            Some(e.code()),
        ),
    };
    let headers = response.headers_mut();
    headers.insert(X_REQUEST_ID, done.meta.request_id.clone());
    if done.upstream.is_some() {
        headers.insert(X_RAMPART_ATTEMPTS, headers::attempts_value(done.attempts));
    }
    if done.meta.unread.must_close() {
        headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    record(shared, &done, response.status().as_u16(), error);
    response
}

/// Counts the request in `rampart_requests_total` and the duration histogram, and writes
/// its one access-log event.
fn record(shared: &Shared, done: &Done<'_>, status: u16, error: Option<&str>) {
    let elapsed = done.meta.started.elapsed();
    let metrics: &UpstreamMetrics = match done.upstream {
        Some(u) => u.metrics(),
        None => shared.metrics.unrouted(),
    };
    metrics.request_done(status, elapsed.as_secs_f64());
    tracing::info!(
        target: "rampart::access",
        request_id = done.meta.request_id.to_str().unwrap_or(""),
        method = done.meta.method.as_str(),
        upstream = done.upstream.map_or("", |u| u.name()),
        status,
        attempts = done.attempts,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        error = error.unwrap_or(""),
    );
}
